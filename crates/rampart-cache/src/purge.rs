//! What a purge names (keys, tags, prefixes), checked before anything is
//! removed, and how it applies to the memory tier. The shared tier applies
//! the same [`Purge`] through its own index (`rampart-cluster`); the gateway's
//! invalidator is the one owner that applies a purge to both and fans it out.

use http::Uri;
use serde::{Deserialize, Serialize};

use crate::key::primary_key;
use crate::store::MemoryCache;

/// What to purge (`POST /admin/purge`, a domain event, an unsafe request,
/// another node).
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PurgeSource {
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

impl PurgeSource {
    /// Stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            PurgeSource::Api => "api",
            PurgeSource::Event => "event",
            PurgeSource::Pubsub => "pubsub",
            PurgeSource::Method => "method",
            PurgeSource::Peer => "peer",
            PurgeSource::Flush => "flush",
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

    /// What several tiers removed of the same purge: what they held may
    /// overlap, so the larger count of each kind.
    pub fn max(self, other: Purged) -> Purged {
        Purged {
            keys: self.keys.max(other.keys),
            tags: self.tags.max(other.tags),
            prefixes: self.prefixes.max(other.prefixes),
        }
    }
}

/// A key or prefix, normalised as the cache keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `http://host/path?query`.
    Url(String),
    /// `/path?query`, on any host.
    Path(String),
}

impl Selector {
    /// Whether the cache URL `url` is this key.
    pub fn is(&self, url: &str) -> bool {
        match self {
            Selector::Url(u) => u == url,
            Selector::Path(p) => path_of(url) == p,
        }
    }

    /// Whether the cache URL `url` starts with this prefix.
    pub fn prefixes(&self, url: &str) -> bool {
        match self {
            Selector::Url(u) => url.starts_with(u.as_str()),
            Selector::Path(p) => path_of(url).starts_with(p.as_str()),
        }
    }
}

/// Why a purge was refused (nothing was removed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurgeError {
    /// No keys, tags or prefixes.
    #[error("nothing to purge: give keys, tags or prefixes")]
    Empty,
    /// A key or prefix that is neither a URL nor a path.
    #[error("{0:?}: a key or prefix is a URL (http://host/path) or a path starting with /")]
    NotUrlOrPath(String),
    /// A URL that does not parse.
    #[error("{0:?} is not a valid URL or path")]
    Invalid(String),
    /// An empty tag.
    #[error("empty tag {0:?}")]
    EmptyTag(String),
}

/// Normalises a key or prefix as the cache's keys are.
pub fn selector(text: &str) -> Result<Selector, PurgeError> {
    let text = text.trim();
    if let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    {
        let uri: Uri = format!("http://{rest}")
            .parse()
            .map_err(|_| PurgeError::Invalid(text.to_string()))?;
        return Ok(Selector::Url(primary_key(
            "http",
            &uri,
            &http::HeaderMap::new(),
        )));
    }
    if text.starts_with('/') {
        let uri: Uri = format!("http://h{text}")
            .parse()
            .map_err(|_| PurgeError::Invalid(text.to_string()))?;
        let key = primary_key("http", &uri, &http::HeaderMap::new());
        return Ok(Selector::Path(key["http://h".len()..].to_string()));
    }
    Err(PurgeError::NotUrlOrPath(text.to_string()))
}

/// The path and query of a cache URL.
pub fn path_of(primary: &str) -> &str {
    let rest = primary.split_once("://").map_or(primary, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}

impl Purge {
    /// Checks every key, tag and prefix; the error names the first bad one.
    pub fn validate(&self) -> Result<(), PurgeError> {
        if self.keys.is_empty() && self.tags.is_empty() && self.prefixes.is_empty() {
            return Err(PurgeError::Empty);
        }
        for k in self.keys.iter().chain(&self.prefixes) {
            selector(k)?;
        }
        if let Some(t) = self.tags.iter().find(|t| t.trim().is_empty()) {
            return Err(PurgeError::EmptyTag(t.clone()));
        }
        Ok(())
    }

    /// The keys, normalised (invalid ones skipped: validate first).
    pub fn key_selectors(&self) -> Vec<Selector> {
        self.keys.iter().filter_map(|k| selector(k).ok()).collect()
    }

    /// The prefixes, normalised (invalid ones skipped: validate first).
    pub fn prefix_selectors(&self) -> Vec<Selector> {
        self.prefixes
            .iter()
            .filter_map(|k| selector(k).ok())
            .collect()
    }

    /// Removes what it names from a memory tier. Call [`Purge::validate`]
    /// first: invalid entries are skipped here.
    pub fn apply(&self, l1: &MemoryCache) -> Purged {
        let mut out = Purged::default();
        for k in self.key_selectors() {
            out.keys += match &k {
                Selector::Url(url) => l1.purge_url(url),
                Selector::Path(_) => l1.purge_matching(|u| k.is(u)),
            };
        }
        for t in &self.tags {
            out.tags += l1.purge_tag(t.trim());
        }
        for p in self.prefix_selectors() {
            out.prefixes += l1.purge_matching(|u| p.prefixes(u));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_urls_or_paths() {
        assert_eq!(
            selector("https://Example.com/a?b=2&a=1"),
            Ok(Selector::Url("http://example.com/a?a=1&b=2".into()))
        );
        assert_eq!(
            selector("/a?b=2&a=1"),
            Ok(Selector::Path("/a?a=1&b=2".into()))
        );
        assert!(selector("a/b").is_err());
        assert_eq!(path_of("http://h:8080/x/y?z"), "/x/y?z");
        assert_eq!(path_of("http://h"), "/");
        assert!(Selector::Path("/x".into()).is("http://any/x"));
        assert!(Selector::Url("http://h/x".into()).prefixes("http://h/x/y"));
        assert_eq!(Purge::default().validate(), Err(PurgeError::Empty));
    }
}
