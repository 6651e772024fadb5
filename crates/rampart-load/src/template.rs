//! `{{name}}` templates in URLs, headers and bodies, filled from a virtual
//! user's variables (feeder columns, extracted values, built-ins).

use std::collections::HashMap;

/// Variables every iteration has: `vu` (the virtual user's number), `iter`
/// (its iteration count), `scenario`.
pub const BUILTINS: &[&str] = &["vu", "iter", "scenario"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`, where `{{name}}` is a variable.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed \"{{{{\" in {text:?}"))?;
            let name = after[..end].trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                return Err(format!("invalid variable name {name:?} in {text:?}"));
            }
            parts.push(Part::Var(name.to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// The variables it uses.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Fills the template; a variable without a value becomes empty (the
    /// plan's validation guarantees every variable is defined somewhere).
    pub fn render(&self, vars: &HashMap<String, String>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => out.push_str(vars.get(v).map_or("", String::as_str)),
            }
        }
        out
    }

    /// The text of a template without variables ("" otherwise).
    pub fn static_text(&self) -> &str {
        match self.parts.as_slice() {
            [Part::Text(t)] => t,
            _ => "",
        }
    }

    /// Whether it has no variables.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }
}

/// Renders every string inside a JSON value as a template.
pub fn render_json(value: &serde_json::Value, vars: &HashMap<String, String>) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => match Template::parse(s) {
            Ok(t) if !t.is_static() => Value::String(t.render(vars)),
            _ => value.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|v| render_json(v, vars)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), render_json(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every template variable used in a JSON value.
pub fn json_vars(value: &serde_json::Value, out: &mut Vec<String>) -> Result<(), String> {
    use serde_json::Value;
    match value {
        Value::String(s) => out.extend(Template::parse(s)?.vars().map(str::to_string)),
        Value::Array(a) => {
            for v in a {
                json_vars(v, out)?;
            }
        }
        Value::Object(o) => {
            for v in o.values() {
                json_vars(v, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_variables() {
        let t = Template::parse("/members/{{id}}?vu={{ vu }}").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), vec!["id", "vu"]);
        let vars = HashMap::from([
            ("id".to_string(), "42".to_string()),
            ("vu".to_string(), "3".to_string()),
        ]);
        assert_eq!(t.render(&vars), "/members/42?vu=3");
        assert!(Template::parse("/x/{{oops").is_err());
        assert!(Template::parse("/x/{{a b}}").is_err());
        let json = serde_json::json!({"email": "{{id}}@example.com", "n": 1, "list": ["{{vu}}"]});
        assert_eq!(
            render_json(&json, &vars),
            serde_json::json!({"email": "42@example.com", "n": 1, "list": ["3"]})
        );
    }
}
