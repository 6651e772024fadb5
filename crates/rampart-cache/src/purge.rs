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
    /// URL or path globs: `*` stands for any run of characters
    /// (`/api/*/members`, `https://shop.example/*.json`).
    #[serde(default)]
    pub globs: Vec<String>,
}

/// The most globs one purge may carry: each costs a pass over the keys.
pub const MAX_GLOBS: usize = 16;

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
    /// By glob.
    #[serde(default)]
    pub globs: usize,
}

impl Purged {
    /// All of them.
    pub fn total(&self) -> usize {
        self.keys + self.tags + self.prefixes + self.globs
    }

    /// What several tiers removed of the same purge: what they held may
    /// overlap, so the larger count of each kind.
    pub fn max(self, other: Purged) -> Purged {
        Purged {
            keys: self.keys.max(other.keys),
            tags: self.tags.max(other.tags),
            prefixes: self.prefixes.max(other.prefixes),
            globs: self.globs.max(other.globs),
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

/// A glob over cache URLs: a URL pattern (its scheme and host as keys
/// have them) or a path pattern matched on every host; `*` stands for any
/// run of characters, `/` included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    url: bool,
}

impl Glob {
    /// A glob from the text a purge gave.
    pub fn parse(text: &str) -> Result<Self, PurgeError> {
        let text = text.trim();
        if text.len() > 1024 {
            return Err(PurgeError::Invalid(text.chars().take(64).collect()));
        }
        if let Some(rest) = text
            .strip_prefix("http://")
            .or_else(|| text.strip_prefix("https://"))
        {
            // Keys name every URL `http://` and hosts in lowercase.
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            return Ok(Self {
                pattern: format!("http://{}{path}", host.to_ascii_lowercase()),
                url: true,
            });
        }
        if text.starts_with('/') {
            return Ok(Self {
                pattern: text.to_string(),
                url: false,
            });
        }
        Err(PurgeError::NotUrlOrPath(text.to_string()))
    }

    /// Whether the cache URL `url` matches.
    pub fn matches(&self, url: &str) -> bool {
        let subject = if self.url { url } else { path_of(url) };
        wildcard(self.pattern.as_bytes(), subject.as_bytes())
    }
}

/// `*`-only wildcard matching, linear in practice: on a mismatch after a
/// star, the star takes one more character.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Why a purge was refused (nothing was removed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurgeError {
    /// No keys, tags, prefixes or globs.
    #[error("nothing to purge: give keys, tags, prefixes or globs")]
    Empty,
    /// More globs than one purge may carry.
    #[error("at most {MAX_GLOBS} globs in one purge (each is a pass over every key)")]
    TooManyGlobs,
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
        if self.keys.is_empty()
            && self.tags.is_empty()
            && self.prefixes.is_empty()
            && self.globs.is_empty()
        {
            return Err(PurgeError::Empty);
        }
        for k in self.keys.iter().chain(&self.prefixes) {
            selector(k)?;
        }
        if self.globs.len() > MAX_GLOBS {
            return Err(PurgeError::TooManyGlobs);
        }
        for g in &self.globs {
            Glob::parse(g)?;
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

    /// The globs, parsed (invalid ones skipped: validate first).
    pub fn glob_selectors(&self) -> Vec<Glob> {
        self.globs
            .iter()
            .filter_map(|g| Glob::parse(g).ok())
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
        let globs = self.glob_selectors();
        if !globs.is_empty() {
            out.globs += l1.purge_matching(|u| globs.iter().any(|g| g.matches(u)));
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

    #[test]
    fn globs_match_urls_or_paths_on_any_host() {
        let g = |t: &str| Glob::parse(t).unwrap();
        assert!(g("/api/*/members").matches("http://h/api/v1/members"));
        assert!(g("/api/*/members").matches("http://other/api/v1/x/members"));
        assert!(!g("/api/*/members").matches("http://h/api/v1/members/2"));
        assert!(g("/api/*").matches("http://h/api/"));
        assert!(g("https://Shop.Example/*.json").matches("http://shop.example/a/b.json"));
        assert!(!g("https://shop.example/*.json").matches("http://elsewhere/a.json"));
        assert!(g("/*a*b*c").matches("http://h/xxaxxbxxc"));
        assert!(!g("/*a*b*c").matches("http://h/xxaxxcxxb"));
        assert!(Glob::parse("api/*").is_err());
        let many = Purge {
            globs: vec!["/x*".into(); MAX_GLOBS + 1],
            ..Purge::default()
        };
        assert_eq!(many.validate(), Err(PurgeError::TooManyGlobs));
    }
}
