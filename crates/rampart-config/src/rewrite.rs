//! What a route changes on the way through: the hosts it answers for, the
//! path sent upstream, and request and response header edits.

use http::{HeaderMap, HeaderName, HeaderValue};
use rampart_core::Template;

/// A host a route answers for: `api.example.com`, or `*.example.com` (any
/// name ending in `.example.com`, at any depth, as nginx's `server_name`).
/// Compared without the port and ignoring case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// One name.
    Exact(String),
    /// Every name ending in this suffix (kept with its leading dot).
    Suffix(String),
}

impl HostPattern {
    /// Parses `"api.example.com"` or `"*.example.com"`, lower-cased.
    pub fn parse(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        let (suffix, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(format!(
                "invalid host {text:?}: write a host name such as \"api.example.com\" or \"*.example.com\", without port or scheme"
            ));
        }
        Ok(if suffix {
            HostPattern::Suffix(format!(".{name}"))
        } else {
            HostPattern::Exact(name.to_string())
        })
    }

    /// Whether a request's `Host` value (port allowed) matches.
    pub fn matches(&self, host: &str) -> bool {
        let name = host_name(host);
        match self {
            HostPattern::Exact(n) => name.eq_ignore_ascii_case(n),
            HostPattern::Suffix(s) => {
                name.len() > s.len()
                    && name.is_char_boundary(name.len() - s.len())
                    && name[name.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }
}

/// The name of a `Host` value: `host:port` → `host`; `[::1]:80` → `[::1]`.
pub fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Header edits: removed first, then set (replacing), then added.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderEdits {
    /// Fields replaced (or created).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Fields added beside any already there.
    pub add: Vec<(HeaderName, HeaderValue)>,
    /// Fields removed.
    pub remove: Vec<HeaderName>,
}

impl HeaderEdits {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Applies the edits to `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// Header fields no edit may touch: they frame the message or choose what
/// is forwarded (`Host` has the upstream's `host_header`).
pub const PROTECTED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-connection",
];

/// How a route changes the path sent upstream; the query is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathRewrite {
    /// A prefix taken off the path (`"/api"`: `/api/users` → `/users`).
    pub strip_prefix: Option<String>,
    /// The new path, a template over the route's parameters and `{rest}`
    /// (what the final `*` matched, without its leading `/`).
    pub path: Option<Template>,
}

impl PathRewrite {
    /// The path sent upstream for `path`, given the route's parameters and
    /// the tail its `*` matched.
    pub fn apply(&self, path: &str, params: &[(&str, &str)], rest: &str) -> String {
        if let Some(template) = &self.path {
            return template.render_or_empty(|name| {
                if name == "rest" {
                    Some(rest.into())
                } else {
                    params
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| (*v).into())
                }
            });
        }
        match &self.strip_prefix {
            Some(prefix) => match path.strip_prefix(prefix.as_str()) {
                Some("") => "/".to_string(),
                Some(rest) if rest.starts_with('/') => rest.to_string(),
                _ => path.to_string(),
            },
            None => path.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_match_names_without_port_and_case() {
        let exact = HostPattern::parse("API.example.com").unwrap();
        assert!(exact.matches("api.example.com:8443"));
        assert!(!exact.matches("www.api.example.com"));
        let wild = HostPattern::parse("*.example.com").unwrap();
        assert!(wild.matches("a.example.com"));
        assert!(wild.matches("a.b.EXAMPLE.com"));
        assert!(!wild.matches("example.com"));
        assert!(!wild.matches("badexample.com"));
        assert!(HostPattern::parse("http://x").is_err());
        assert!(HostPattern::parse("x.com:80").is_err());
        assert!(HostPattern::parse("").is_err());
    }

    #[test]
    fn rewrites_strip_a_prefix_or_fill_a_template() {
        let strip = PathRewrite {
            strip_prefix: Some("/api".into()),
            path: None,
        };
        assert_eq!(strip.apply("/api/users", &[], ""), "/users");
        assert_eq!(strip.apply("/api", &[], ""), "/");
        assert_eq!(strip.apply("/apix", &[], ""), "/apix");
        let template = PathRewrite {
            strip_prefix: None,
            path: Some(Template::parse("/v2/{id}/{rest}").unwrap()),
        };
        assert_eq!(
            template.apply("/u/7/a/b", &[("id", "7")], "a/b"),
            "/v2/7/a/b"
        );
    }
}
