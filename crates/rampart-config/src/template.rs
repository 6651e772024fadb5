//! Templates such as `"event:{id}"`: literal text and `{name}` holes filled
//! per request (route tags: a path parameter, `{query.x}`, `{header.x}`) or
//! per event (a field of its JSON body, `{user.id}` for a nested one).

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text copied as is.
    Literal(String),
    /// A hole, by name.
    Var(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The source text.
    pub source: String,
    /// Its pieces, in order.
    pub parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; `{{` and `}}` are not special: braces must pair up
    /// around a non-empty name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(format!("unmatched '}}' in {text:?}"));
            }
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in {text:?}"))?;
            let name = after[..close].trim();
            if name.is_empty() || name.contains('{') {
                return Err(format!("empty or nested {{}} in {text:?}"));
            }
            parts.push(Part::Var(name.to_string()));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        if parts.is_empty() {
            return Err("a template may not be empty".into());
        }
        Ok(Self {
            source: text.to_string(),
            parts,
        })
    }

    /// The names of its holes.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Fills the holes with `value`; `Err(name)` names the first hole it
    /// had no value for.
    pub fn render(&self, mut value: impl FnMut(&str) -> Option<String>) -> Result<String, &str> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Var(v) => out.push_str(&value(v).ok_or(v.as_str())?),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let t = Template::parse("event:{id}:guests").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["id"]);
        assert_eq!(
            t.render(|v| (v == "id").then(|| "42".to_string())).unwrap(),
            "event:42:guests"
        );
        assert_eq!(t.render(|_| None), Err("id"));
        assert_eq!(Template::parse("pricing").unwrap().vars().count(), 0);
        for bad in ["a{", "a}", "{}", "", "{a{b}}"] {
            assert!(Template::parse(bad).is_err(), "{bad:?}");
        }
    }
}
