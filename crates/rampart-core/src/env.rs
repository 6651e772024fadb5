//! `${NAME}` interpolation of environment variables in config strings.
//!
//! `${NAME}` must be set (an unset variable is an error, never an empty
//! string); `${NAME:-fallback}` uses the fallback when unset or empty;
//! `$$` writes a literal `$`.

/// The process's environment, as [`expand`] looks it up.
pub fn process(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Why `${...}` could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// `${` without its `}`.
    #[error("unclosed \"${{\" in {0:?}")]
    Unclosed(String),
    /// A name that is not letters, digits and `_`.
    #[error("invalid variable name {name:?} in {text:?}")]
    BadName {
        /// The name.
        name: String,
        /// The text.
        text: String,
    },
    /// A variable that is not set and has no fallback.
    #[error("environment variable {0} is not set (write ${{{0}:-default}} for a fallback)")]
    Unset(String),
}

/// Expands `${NAME}` and `${NAME:-fallback}` with `lookup`.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, EnvError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| EnvError::Unclosed(text.to_string()))?;
            let inner = &after[..end];
            let (name, fallback) = match inner.split_once(":-") {
                Some((name, fallback)) => (name, Some(fallback)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(EnvError::BadName {
                    name: name.to_string(),
                    text: text.to_string(),
                });
            }
            match (
                lookup(name).filter(|v| !v.is_empty() || fallback.is_none()),
                fallback,
            ) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(fallback)) => out.push_str(fallback),
                (None, None) => return Err(EnvError::Unset(name.to_string())),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands() {
        assert_eq!(expand("Bearer ${TOKEN}", env).unwrap(), "Bearer s3cret");
        assert_eq!(expand("${MISSING:-x}", env).unwrap(), "x");
        assert_eq!(expand("${EMPTY:-x}", env).unwrap(), "x");
        assert_eq!(expand("${EMPTY}", env).unwrap(), "");
        assert_eq!(expand("cost $$5 $x", env).unwrap(), "cost $5 $x");
        assert!(expand("${MISSING}", env)
            .unwrap_err()
            .to_string()
            .contains("MISSING is not set"));
        assert!(expand("${TOKEN", env).is_err());
        assert!(expand("${BAD NAME}", env).is_err());
    }
}
