//! Scenario templates: `{{name}}` holes in URLs, headers and bodies (the
//! one engine of [`rampart_core::template`], double-brace spelling), filled
//! from a virtual user's variables (feeder columns, extracted values,
//! built-ins).

use std::borrow::Cow;
use std::collections::HashMap;

use rampart_core::template::Syntax;
pub use rampart_core::template::Template;

/// Variables every iteration has: `vu` (the virtual user's number), `iter`
/// (its iteration count), `scenario`.
pub const BUILTINS: &[&str] = &["vu", "iter", "scenario"];

/// Parses scenario text, where `{{name}}` is a variable.
pub fn parse(text: &str) -> Result<Template, String> {
    Template::parse_with(text, Syntax::DoubleBraces).map_err(|e| e.to_string())
}

/// Fills a template from a user's variables; a variable without a value
/// becomes empty (the plan's validation guarantees every variable is
/// defined somewhere).
pub fn render(template: &Template, vars: &HashMap<String, String>) -> String {
    template.render_or_empty(|name| vars.get(name).map(|v| Cow::Borrowed(v.as_str())))
}

/// Renders every string inside a JSON value as a template.
pub fn render_json(value: &serde_json::Value, vars: &HashMap<String, String>) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => match parse(s) {
            Ok(t) if !t.is_static() => Value::String(render(&t, vars)),
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
        Value::String(s) => out.extend(parse(s)?.vars().map(str::to_string)),
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
        let t = parse("/members/{{id}}?vu={{ vu }}").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), vec!["id", "vu"]);
        let vars = HashMap::from([
            ("id".to_string(), "42".to_string()),
            ("vu".to_string(), "3".to_string()),
        ]);
        assert_eq!(render(&t, &vars), "/members/42?vu=3");
        assert!(parse("/x/{{oops").is_err());
        assert!(parse("/x/{{a b}}").is_err());
        let json = serde_json::json!({"email": "{{id}}@example.com", "n": 1, "list": ["{{vu}}"]});
        assert_eq!(
            render_json(&json, &vars),
            serde_json::json!({"email": "42@example.com", "n": 1, "list": ["3"]})
        );
    }
}
