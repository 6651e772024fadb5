//! Route patterns: `"METHOD /path/{param}/*"`.
//!
//! The method part is optional (`"/static/*"` or `"* /static/*"` match every
//! method) and may list several methods (`"GET|POST /cart"`); a `GET` route
//! also matches `HEAD`. Path segments are literals, `{name}` parameters that
//! match one non-empty segment, or a final `*` that matches the rest of the
//! path (zero or more segments).

use http::Method;

/// A compiled `match` string of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// Methods matched; `None` matches every method.
    pub methods: Option<Vec<Method>>,
    /// The path pattern.
    pub path: PathPattern,
    text: String,
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<Segment>,
    tail: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// Why a route's `match` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A method not in capitals, or not a method.
    #[error(
        "invalid method {method:?} in {text:?}: write methods in capitals, like \"GET /path\""
    )]
    Method {
        /// The method.
        method: String,
        /// The whole `match`.
        text: String,
    },
    /// A path that does not start with `/`.
    #[error("the path must start with \"/\"")]
    NoLeadingSlash,
    /// `*` before the end of the path.
    #[error("\"*\" may only end a path")]
    StarNotLast,
    /// A parameter name that is not letters, digits and `_`.
    #[error("invalid parameter name {0:?}")]
    ParamName(String),
    /// A parameter named twice.
    #[error("parameter {{{0}}} appears twice")]
    ParamTwice(String),
    /// Braces or `*` inside a segment.
    #[error("invalid segment {0:?}: a parameter is a whole segment like {{id}}")]
    Segment(String),
    /// A path error, in the `match` it came from.
    #[error("{source} in {text:?}")]
    In {
        /// The path error.
        source: Box<PatternError>,
        /// The whole `match`.
        text: String,
    },
}

/// Parameters captured by a match, in pattern order.
pub type Params<'a> = Vec<(&'a str, &'a str)>;

impl RouteMatch {
    /// Parses `"GET /members/{id}"`, `"* /static/*"` or `"/health"`.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let trimmed = text.trim();
        let (method_part, path_part) = match trimmed.split_once(char::is_whitespace) {
            Some((m, p)) => (Some(m), p.trim()),
            None => (None, trimmed),
        };
        let methods = match method_part {
            None | Some("*") => None,
            Some(list) => Some(
                list.split('|')
                    .map(|m| {
                        let bad = || PatternError::Method {
                            method: m.to_string(),
                            text: text.to_string(),
                        };
                        if m.is_empty() || !m.chars().all(|c| c.is_ascii_uppercase()) {
                            Err(bad())
                        } else {
                            Method::from_bytes(m.as_bytes()).map_err(|_| bad())
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let path = PathPattern::parse(path_part).map_err(|e| PatternError::In {
            source: Box::new(e),
            text: text.to_string(),
        })?;
        Ok(Self {
            methods,
            path,
            text: trimmed.to_string(),
        })
    }

    /// Whether the method is matched (`GET` routes also match `HEAD`).
    pub fn matches_method(&self, method: &Method) -> bool {
        match &self.methods {
            None => true,
            Some(list) => list
                .iter()
                .any(|m| m == method || (*m == Method::GET && *method == Method::HEAD)),
        }
    }

    /// The text this was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PathPattern {
    /// Parses a path pattern; it must start with `/`.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PatternError::NoLeadingSlash);
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        let mut tail = false;
        for (i, part) in parts.iter().enumerate() {
            if *part == "*" {
                if i + 1 != parts.len() {
                    return Err(PatternError::StarNotLast);
                }
                tail = true;
            } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(PatternError::ParamName(name.to_string()));
                }
                if segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(n) if n == name))
                {
                    return Err(PatternError::ParamTwice(name.to_string()));
                }
                segments.push(Segment::Param(name.to_string()));
            } else if part.contains(['{', '}', '*']) {
                return Err(PatternError::Segment((*part).to_string()));
            } else {
                segments.push(Segment::Literal((*part).to_string()));
            }
        }
        Ok(Self { segments, tail })
    }

    /// Matches a request path (without query), returning captured parameters.
    pub fn matches<'p, 's>(&'p self, path: &'s str) -> Option<Vec<(&'p str, &'s str)>> {
        let rest = path.strip_prefix('/')?;
        let mut params = Vec::new();
        let mut parts = rest.split('/');
        for segment in &self.segments {
            let part = parts.next()?;
            match segment {
                Segment::Literal(lit) => {
                    if lit != part {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    if part.is_empty() {
                        return None;
                    }
                    params.push((name.as_str(), part));
                }
            }
        }
        if self.tail || parts.next().is_none() {
            Some(params)
        } else {
            None
        }
    }

    /// What the final `*` matched in a path this pattern matches: the
    /// rest after the fixed segments, without its leading `/` ("" when
    /// nothing is left or the pattern has no `*`).
    pub fn tail<'s>(&self, path: &'s str) -> &'s str {
        if !self.tail {
            return "";
        }
        let mut rest = path.strip_prefix('/').unwrap_or(path);
        for _ in &self.segments {
            rest = rest.split_once('/').map_or("", |(_, r)| r);
        }
        rest
    }

    /// Whether the pattern ends in `*`.
    pub fn has_tail(&self) -> bool {
        self.tail
    }

    /// Names of the parameters, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) => Some(n.as_str()),
            Segment::Literal(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_params_and_tails() {
        let r = RouteMatch::parse("GET /api/v1/members/{id}").unwrap();
        assert!(r.matches_method(&Method::GET));
        assert!(r.matches_method(&Method::HEAD));
        assert!(!r.matches_method(&Method::POST));
        assert_eq!(
            r.path.matches("/api/v1/members/42"),
            Some(vec![("id", "42")])
        );
        assert_eq!(r.path.matches("/api/v1/members/"), None);
        assert_eq!(r.path.matches("/api/v1/members/42/x"), None);

        let tail = RouteMatch::parse("/static/*").unwrap();
        assert!(tail.matches_method(&Method::DELETE));
        assert!(tail.path.matches("/static").is_some());
        assert!(tail.path.matches("/static/a/b.css").is_some());
        assert!(tail.path.matches("/other").is_none());

        let all = RouteMatch::parse("* /*").unwrap();
        assert!(all.path.matches("/").is_some());
        assert!(all.path.matches("/anything/at/all").is_some());

        let multi = RouteMatch::parse("GET|POST /cart").unwrap();
        assert!(multi.matches_method(&Method::POST));
        assert!(!multi.matches_method(&Method::PUT));
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(RouteMatch::parse("GET pricing").is_err());
        assert!(RouteMatch::parse("get /pricing").is_err());
        assert!(RouteMatch::parse("GET /a/*/b").is_err());
        assert!(RouteMatch::parse("GET /a/{}").is_err());
        assert!(RouteMatch::parse("GET /a/x{id}").is_err());
        assert!(RouteMatch::parse("GET /{id}/{id}").is_err());
    }
}
