//! Purges: by key (a URL, or a path on any host), by tag, by prefix; and
//! domain events, which name the tags and keys they purge as templates over
//! the event's JSON body. Everything a purge or an event asks for is checked
//! before anything is removed: a bad request purges nothing.

use http::Uri;
use rampart_cache::key::primary_key;
use rampart_config::{EventConfig, Template};
use serde::{Deserialize, Serialize};

use crate::state::Gateway;

/// What to purge (`POST /admin/purge`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Purge {
    /// URLs (`https://host/path?query`) or paths (`/path?query`, any host).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// URL or path prefixes.
    #[serde(default)]
    pub prefixes: Vec<String>,
}

/// Where a purge came from (the `source` label of the purge metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `POST /admin/purge`.
    Api,
    /// `POST /admin/events/{name}`.
    Event,
    /// An application event published on the Redis events channel.
    Pubsub,
    /// A successful unsafe request (POST, PUT, PATCH, DELETE) to the URL.
    Method,
    /// Another node's purge, received on the purge channel or replayed from
    /// the purge log.
    Peer,
    /// The whole memory tier, flushed because this node may have missed
    /// purges (out of touch with Redis for longer than the sync bound).
    Flush,
}

impl Source {
    /// Stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Event => "event",
            Source::Pubsub => "pubsub",
            Source::Method => "method",
            Source::Peer => "peer",
            Source::Flush => "flush",
        }
    }
}

/// How many stored keys a purge removed, by kind.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Purged {
    /// By key.
    pub keys: usize,
    /// By tag.
    pub tags: usize,
    /// By prefix.
    pub prefixes: usize,
}

impl Purged {
    /// All of them.
    pub fn total(&self) -> usize {
        self.keys + self.tags + self.prefixes
    }
}

/// A key or prefix, normalised as the cache keys are.
enum Target {
    /// `http://host/path?query`.
    Url(String),
    /// `/path?query`, on any host.
    Path(String),
}

fn normalise(text: &str) -> Result<Target, String> {
    let text = text.trim();
    if let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    {
        let uri: Uri = format!("http://{rest}")
            .parse()
            .map_err(|_| format!("{text:?} is not a valid URL"))?;
        return Ok(Target::Url(primary_key(
            "http",
            &uri,
            &http::HeaderMap::new(),
        )));
    }
    if text.starts_with('/') {
        let uri: Uri = format!("http://h{text}")
            .parse()
            .map_err(|_| format!("{text:?} is not a valid path"))?;
        let key = primary_key("http", &uri, &http::HeaderMap::new());
        return Ok(Target::Path(key["http://h".len()..].to_string()));
    }
    Err(format!(
        "{text:?}: a key or prefix is a URL (http://host/path) or a path starting with /"
    ))
}

/// The path and query of a cache URL.
fn path_of(primary: &str) -> &str {
    let rest = primary.split_once("://").map_or(primary, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}

impl Purge {
    /// Checks every key and prefix; the error names the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.keys.is_empty() && self.tags.is_empty() && self.prefixes.is_empty() {
            return Err("nothing to purge: give keys, tags or prefixes".into());
        }
        for k in self.keys.iter().chain(&self.prefixes) {
            normalise(k)?;
        }
        if let Some(t) = self.tags.iter().find(|t| t.trim().is_empty()) {
            return Err(format!("empty tag {t:?}"));
        }
        Ok(())
    }

    /// Removes what it names from this node's memory tier. Call
    /// [`Purge::validate`] first: invalid entries are skipped here.
    pub fn apply_local(&self, gw: &Gateway) -> Purged {
        let mut out = Purged::default();
        for k in &self.keys {
            out.keys += match normalise(k) {
                Ok(Target::Url(url)) => gw.l1.purge_url(&url),
                Ok(Target::Path(path)) => gw.l1.purge_matching(|p| path_of(p) == path),
                Err(_) => 0,
            };
        }
        for t in &self.tags {
            out.tags += gw.l1.purge_tag(t.trim());
        }
        for p in &self.prefixes {
            out.prefixes += match normalise(p) {
                Ok(Target::Url(url)) => gw.l1.purge_matching(|k| k.starts_with(url.as_str())),
                Ok(Target::Path(path)) => gw
                    .l1
                    .purge_matching(|k| path_of(k).starts_with(path.as_str())),
                Err(_) => 0,
            };
        }
        out
    }
}

/// Applies a validated purge: this node's memory tier now (later tiers and
/// other nodes through Redis, when configured), and counts it under
/// `source`.
pub async fn purge(gw: &Gateway, purge: &Purge, source: Source) -> Purged {
    let mut purged = purge.apply_local(gw);
    if let Some(redis) = &gw.redis {
        let mut urls = Vec::new();
        let mut paths = Vec::new();
        for k in &purge.keys {
            match normalise(k) {
                Ok(Target::Url(u)) => urls.push(u),
                Ok(Target::Path(p)) => paths.push(p),
                Err(_) => {}
            }
        }
        let l2_keys = crate::l2::purge_urls(redis, &urls).await
            + if paths.is_empty() {
                0
            } else {
                crate::l2::purge_matching(redis, |u| paths.iter().any(|p| path_of(u) == p)).await
            };
        let l2_tags = crate::l2::purge_tags(redis, &purge.tags).await;
        let prefixes: Vec<Target> = purge
            .prefixes
            .iter()
            .filter_map(|p| normalise(p).ok())
            .collect();
        let l2_prefixes = if prefixes.is_empty() {
            0
        } else {
            crate::l2::purge_matching(redis, |u| {
                prefixes.iter().any(|t| match t {
                    Target::Url(p) => u.starts_with(p.as_str()),
                    Target::Path(p) => path_of(u).starts_with(p.as_str()),
                })
            })
            .await
        };
        // What a node's L1 and L2 held may overlap: report the larger.
        purged.keys = purged.keys.max(l2_keys);
        purged.tags = purged.tags.max(l2_tags);
        purged.prefixes = purged.prefixes.max(l2_prefixes);
        crate::sync::publish(gw, purge).await;
    }
    gw.metrics.purged(source.as_str(), purged.total());
    purged
}

/// Whether `signature` (hex) is the HMAC-SHA256 of `body` under `secret`,
/// compared in constant time. Without a secret, no signature is valid.
pub fn signature_ok(secret: Option<&str>, body: &[u8], signature: &str) -> bool {
    use hmac::{Hmac, Mac};
    let Some(secret) = secret else { return false };
    let Some(given) = decode_hex(signature) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Why an event could not be turned into a purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventError {
    /// No `[[events]]` entry of that name.
    Unknown(String),
    /// The body is not a JSON object.
    NotAnObject(String),
    /// A template names a field the body lacks (or holds a non-scalar).
    MissingField {
        /// The template.
        template: String,
        /// The field.
        field: String,
    },
}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventError::Unknown(n) => write!(f, "no event named {n:?} is configured"),
            EventError::NotAnObject(why) => write!(f, "the event body must be a JSON object: {why}"),
            EventError::MissingField { template, field } => write!(
                f,
                "{template:?} needs the field {field:?}, which the event body lacks (or is not a string, number or boolean)"
            ),
        }
    }
}

/// A field of the body by dotted path (`user.id`), as text.
fn field(body: &serde_json::Value, path: &str) -> Option<String> {
    let mut v = body;
    for part in path.split('.') {
        v = match v {
            serde_json::Value::Object(m) => m.get(part)?,
            serde_json::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn render_all(list: &[Template], body: &serde_json::Value) -> Result<Vec<String>, EventError> {
    list.iter()
        .map(|t| {
            t.render(|f| field(body, f).map(std::borrow::Cow::Owned))
                .map_err(|f| EventError::MissingField {
                    template: t.source.clone(),
                    field: f.to_string(),
                })
        })
        .collect()
}

/// The purge an event asks for.
pub fn event_purge(events: &[EventConfig], name: &str, body: &[u8]) -> Result<Purge, EventError> {
    let event = events
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| EventError::Unknown(name.to_string()))?;
    let value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(body).map_err(|e| EventError::NotAnObject(e.to_string()))?
    };
    if !value.is_object() {
        return Err(EventError::NotAnObject("it is not an object".into()));
    }
    let purge = Purge {
        tags: render_all(&event.purge_tags, &value)?,
        keys: render_all(&event.purge_keys, &value)?,
        prefixes: Vec::new(),
    };
    Ok(purge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tags: &[&str], keys: &[&str]) -> EventConfig {
        EventConfig {
            name: "event.updated".into(),
            purge_tags: tags.iter().map(|t| Template::parse(t).unwrap()).collect(),
            purge_keys: keys.iter().map(|t| Template::parse(t).unwrap()).collect(),
        }
    }

    #[test]
    fn events_fill_their_templates_from_the_body() {
        let events = [event(
            &["event:{id}", "events:list", "org:{org.id}"],
            &["/events/{id}"],
        )];
        let p = event_purge(
            &events,
            "event.updated",
            br#"{"id": 42, "org": {"id": "acme"}}"#,
        )
        .unwrap();
        assert_eq!(p.tags, ["event:42", "events:list", "org:acme"]);
        assert_eq!(p.keys, ["/events/42"]);
        assert_eq!(
            event_purge(&events, "event.updated", br#"{"org": {"id": "acme"}}"#),
            Err(EventError::MissingField {
                template: "event:{id}".into(),
                field: "id".into()
            })
        );
        assert!(matches!(
            event_purge(&events, "event.deleted", b"{}"),
            Err(EventError::Unknown(_))
        ));
        assert!(matches!(
            event_purge(&events, "event.updated", b"[1]"),
            Err(EventError::NotAnObject(_))
        ));
    }

    #[test]
    fn keys_are_urls_or_paths() {
        assert!(
            matches!(normalise("https://Example.com/a?b=2&a=1"), Ok(Target::Url(u)) if u == "http://example.com/a?a=1&b=2")
        );
        assert!(matches!(normalise("/a?b=2&a=1"), Ok(Target::Path(p)) if p == "/a?a=1&b=2"));
        assert!(normalise("a/b").is_err());
        assert_eq!(path_of("http://h:8080/x/y?z"), "/x/y?z");
        assert_eq!(path_of("http://h"), "/");
    }
}
