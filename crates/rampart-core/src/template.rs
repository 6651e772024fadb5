//! Templates: literal text with named holes, filled per request, per event
//! or per virtual user. One engine serves two spellings:
//!
//! - [`Syntax::Braces`], `"event:{id}"`: config templates (route tags filled
//!   from a path parameter, `{query.x}` or `{header.x}`; event purges filled
//!   from a field of the event's JSON body, `{user.id}` for a nested one).
//! - [`Syntax::DoubleBraces`], `"/members/{{id}}"`: scenario files, where
//!   single braces are common in JSON bodies.

use std::borrow::Cow;

/// How holes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// `{name}`.
    Braces,
    /// `{{name}}`.
    DoubleBraces,
}

impl Syntax {
    fn delimiters(self) -> (&'static str, &'static str) {
        match self {
            Syntax::Braces => ("{", "}"),
            Syntax::DoubleBraces => ("{{", "}}"),
        }
    }
}

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

/// Why a template could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// An opening delimiter without its closing one.
    #[error("unclosed {open:?} in {text:?}")]
    Unclosed {
        /// The delimiter.
        open: &'static str,
        /// The template.
        text: String,
    },
    /// A closing delimiter without an opening one (`{name}` syntax only).
    #[error("unmatched {close:?} in {text:?}")]
    Unmatched {
        /// The delimiter.
        close: &'static str,
        /// The template.
        text: String,
    },
    /// A hole whose name is empty or holds characters other than letters,
    /// digits and `_ . -`.
    #[error("invalid name {name:?} in {text:?}: use letters, digits and _ . -")]
    BadName {
        /// The name as written.
        name: String,
        /// The template.
        text: String,
    },
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Template {
    /// Parses `text` written in `syntax`.
    pub fn parse_with(text: &str, syntax: Syntax) -> Result<Self, TemplateError> {
        let (open, close) = syntax.delimiters();
        let mut parts = Vec::new();
        let mut rest = text;
        loop {
            let next_open = rest.find(open);
            // With single braces a lone `}` is a mistake; with double braces
            // a single `}` is ordinary text (JSON bodies are full of them).
            if syntax == Syntax::Braces {
                if let Some(c) = rest.find(close) {
                    if next_open.is_none_or(|o| c < o) {
                        return Err(TemplateError::Unmatched {
                            close,
                            text: text.to_string(),
                        });
                    }
                }
            }
            let Some(start) = next_open else { break };
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + open.len()..];
            let end = after.find(close).ok_or_else(|| TemplateError::Unclosed {
                open,
                text: text.to_string(),
            })?;
            let name = after[..end].trim();
            if !valid_name(name) {
                return Err(TemplateError::BadName {
                    name: name.to_string(),
                    text: text.to_string(),
                });
            }
            parts.push(Part::Var(name.to_string()));
            rest = &after[end + close.len()..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Self {
            source: text.to_string(),
            parts,
        })
    }

    /// Text taken as it is, with no holes (a value typed on a command
    /// line, say, where `{{` means itself).
    pub fn literal(text: &str) -> Self {
        Self {
            source: text.to_string(),
            parts: vec![Part::Literal(text.to_string())],
        }
    }

    /// Parses `text` written with `{name}` holes (config templates).
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        Self::parse_with(text, Syntax::Braces)
    }

    /// The names of its holes.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Whether it has no holes.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// Fills the holes with `value`; `Err(name)` names the first hole it
    /// had no value for.
    pub fn render<'v>(
        &self,
        mut value: impl FnMut(&str) -> Option<Cow<'v, str>>,
    ) -> Result<String, &str> {
        let mut out = String::with_capacity(self.source.len());
        for p in &self.parts {
            match p {
                Part::Literal(l) => out.push_str(l),
                Part::Var(v) => out.push_str(&value(v).ok_or(v.as_str())?),
            }
        }
        Ok(out)
    }

    /// Fills the holes with `value`, a hole without one left empty.
    pub fn render_or_empty<'v>(
        &self,
        mut value: impl FnMut(&str) -> Option<Cow<'v, str>>,
    ) -> String {
        self.render(|name| Some(value(name).unwrap_or(Cow::Borrowed(""))))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_braces() {
        let t = Template::parse("event:{id}:guests").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["id"]);
        assert_eq!(
            t.render(|v| (v == "id").then_some(Cow::Borrowed("42")))
                .unwrap(),
            "event:42:guests"
        );
        assert_eq!(t.render(|_| None), Err("id"));
        assert!(Template::parse("pricing").unwrap().is_static());
        assert_eq!(
            Template::parse("{header.x-user}").unwrap().vars().next(),
            Some("header.x-user")
        );
        for bad in ["a{", "a}", "{}", "{a{b}}", "{a b}"] {
            assert!(Template::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn double_braces() {
        let t = Template::parse_with("/members/{{id}}?vu={{ vu }}", Syntax::DoubleBraces).unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["id", "vu"]);
        assert_eq!(
            t.render_or_empty(|v| (v == "id").then_some(Cow::Borrowed("42"))),
            "/members/42?vu="
        );
        let json = Template::parse_with(r#"{"a": {"b": "{{x}}"}}"#, Syntax::DoubleBraces).unwrap();
        assert_eq!(json.vars().collect::<Vec<_>>(), ["x"]);
        assert!(Template::parse_with("/x/{{oops", Syntax::DoubleBraces).is_err());
        assert!(Template::parse_with("/x/{{a b}}", Syntax::DoubleBraces).is_err());
        assert!(Template::parse_with("", Syntax::DoubleBraces)
            .unwrap()
            .is_static());
    }
}
