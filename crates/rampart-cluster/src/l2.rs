//! The shared tier (L2) in Redis: entries stored by every node, found by any.
//!
//! Keys: an entry lives at `PREFIX:c:{URL}REST`, where `URL` is the cache
//! key's URL and `REST` its digest of extra key parts; the braces are a Redis
//! Cluster hash tag, so every variant of a URL lands in one slot. Each entry
//! expires at its stale horizon (freshness plus the longer stale window).
//! Tag sets `PREFIX:t:{TAG}` are sorted sets of the entry keys a tag covers
//! (every entry is also under its URL's tag), scored by when each entry
//! expires on Redis's clock: every store drops the members already expired,
//! so a tag that lives for ever (refreshed by new entries) holds only live
//! keys, and the set itself expires with its longest-lived member.
//! Every call has the Redis deadline; a failed one is a miss, never an error.

use std::sync::Arc;
use std::time::SystemTime;

use rampart_cache::key::{primary_of, EXTRA_SEPARATOR};
use rampart_cache::purge::Selector;
use rampart_cache::{Entry, Purge, Purged};

use crate::codec;
use crate::redis::{Op, Redis};

/// Lists an entry key (`ARGV[1]`, expiring in `ARGV[2]` ms) under a tag
/// set (`KEYS[1]`): members already expired go, the set lives as long as
/// its longest-lived member. Times are Redis's own, so the nodes' clocks
/// never decide what is pruned. A plain set left by an earlier Rampart is
/// converted first, its members kept as long as the set had left to live.
const INDEX_SCRIPT: &str = "\
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if redis.call('TYPE', KEYS[1])['ok'] == 'set' then
  local members = redis.call('SMEMBERS', KEYS[1])
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then left = ttl end
  redis.call('DEL', KEYS[1])
  for _, m in ipairs(members) do redis.call('ZADD', KEYS[1], now + left, m) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 0";

/// The entry keys listed under a tag set (`KEYS[1]`), whichever form an
/// earlier Rampart left it in.
const MEMBERS_SCRIPT: &str = "\
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'zset' then return redis.call('ZRANGE', KEYS[1], 0, -1) end
if kind == 'set' then return redis.call('SMEMBERS', KEYS[1]) end
return {}";

/// The internal tag every L2 entry of a URL is listed under.
fn url_tag(primary: &str) -> String {
    format!("\u{1}url {primary}")
}

impl Redis {
    fn entry_key(&self, cache_key: &str) -> String {
        let primary = primary_of(cache_key);
        format!(
            "{}:c:{{{primary}}}{}",
            self.prefix(),
            &cache_key[primary.len()..]
        )
    }

    fn tag_key(&self, tag: &str) -> String {
        format!("{}:t:{{{tag}}}", self.prefix())
    }

    /// The cache URL of an entry key, for scans.
    fn url_of<'a>(&self, entry_key: &'a str) -> Option<&'a str> {
        let rest = entry_key
            .strip_prefix(self.prefix())?
            .strip_prefix(":c:{")?;
        let end = rest.rfind('}')?;
        let url = &rest[..end];
        (!url.contains(EXTRA_SEPARATOR)).then_some(url)
    }
}

/// The entry stored in L2 for `cache_key`, if any (and if Redis answers).
pub async fn get(redis: &Redis, cache_key: &str) -> Option<Entry> {
    let key = redis.entry_key(cache_key);
    codec::decode(redis.get(Op::L2Get, key).await.flatten()?)
}

/// Stores an entry in L2 in the background, with its tags, to expire at its
/// stale horizon as seen at `now`.
pub fn put(redis: &Arc<Redis>, cache_key: &str, entry: &Arc<Entry>, now: SystemTime) {
    let left = entry.freshness.horizon().saturating_sub(entry.age(now));
    let millis = left.as_millis() as u64;
    if millis == 0 || !redis.is_up() {
        return;
    }
    let (redis, cache_key, entry) = (Arc::clone(redis), cache_key.to_string(), Arc::clone(entry));
    tokio::spawn(async move {
        let key = redis.entry_key(&cache_key);
        let value = codec::encode(&entry);
        let mut tags: Vec<String> = entry.tags.clone();
        tags.push(url_tag(primary_of(&cache_key)));
        let tag_keys: Vec<String> = tags.iter().map(|t| redis.tag_key(t)).collect();
        redis
            .run(Op::L2Put, |mut c| async move {
                let mut p = redis::pipe();
                p.cmd("SET")
                    .arg(&key)
                    .arg(value.as_ref())
                    .arg("PX")
                    .arg(millis)
                    .ignore();
                for t in &tag_keys {
                    p.cmd("EVAL")
                        .arg(INDEX_SCRIPT)
                        .arg(1)
                        .arg(t)
                        .arg(&key)
                        .arg(millis)
                        .ignore();
                }
                p.query_async::<()>(&mut c).await
            })
            .await;
    });
}

/// Removes what a validated purge names from the shared tier: keys and tags
/// through the tag index, paths, prefixes and globs by a bounded scan.
pub async fn purge(redis: &Redis, purge: &Purge) -> Purged {
    let (mut urls, mut paths) = (Vec::new(), Vec::new());
    for k in purge.key_selectors() {
        match k {
            Selector::Url(u) => urls.push(u),
            path @ Selector::Path(_) => paths.push(path),
        }
    }
    let mut keys = purge_urls(redis, &urls).await;
    if !paths.is_empty() {
        keys += purge_matching(redis, |u| paths.iter().any(|p| p.is(u))).await;
    }
    let prefixes = purge.prefix_selectors();
    let globs = purge.glob_selectors();
    Purged {
        keys,
        tags: purge_tags(redis, &purge.tags).await,
        prefixes: if prefixes.is_empty() {
            0
        } else {
            purge_matching(redis, |u| prefixes.iter().any(|p| p.prefixes(u))).await
        },
        globs: if globs.is_empty() {
            0
        } else {
            purge_matching(redis, |u| globs.iter().any(|g| g.matches(u))).await
        },
    }
}

/// Deletes every entry listed under the tags (and the tag sets). Returns how
/// many entries went.
async fn purge_tags(redis: &Redis, tags: &[String]) -> usize {
    let mut total = 0;
    for tag in tags {
        let tag_key = redis.tag_key(tag);
        let members: Vec<String> = redis
            .run(Op::L2Purge, |mut c| {
                let tag_key = tag_key.clone();
                async move {
                    redis::cmd("EVAL")
                        .arg(MEMBERS_SCRIPT)
                        .arg(1)
                        .arg(&tag_key)
                        .query_async(&mut c)
                        .await
                }
            })
            .await
            .unwrap_or_default();
        let deleted: usize = redis
            .run(Op::L2Purge, |mut c| async move {
                let mut p = redis::pipe();
                for m in &members {
                    p.cmd("DEL").arg(m);
                }
                p.cmd("DEL").arg(&tag_key).ignore();
                let counts: Vec<usize> = p.query_async(&mut c).await?;
                Ok(counts.iter().sum())
            })
            .await
            .unwrap_or(0);
        total += deleted;
    }
    total
}

/// Deletes every entry of the URLs.
async fn purge_urls(redis: &Redis, urls: &[String]) -> usize {
    let tags: Vec<String> = urls.iter().map(|u| url_tag(u)).collect();
    purge_tags(redis, &tags).await
}

/// One SCAN step: the next cursor and the keys matching `pattern`.
async fn scan_step(
    redis: &Redis,
    op: Op,
    pattern: &str,
    cursor: u64,
) -> Option<(u64, Vec<String>)> {
    redis
        .run(op, |mut c| async move {
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await
        })
        .await
}

/// What the shared tier holds under this prefix.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Census {
    /// Stored entries (every variant counts).
    pub entries: usize,
    /// Tag sets (the tag index), not counting the internal per-URL sets.
    pub tags: usize,
    /// False when the count stopped after `MAX_SCANNED` keys or Redis
    /// failed mid-way: the numbers are then lower bounds.
    pub complete: bool,
}

/// Counts entries and tags by a bounded SCAN (for `/admin/cache/stats`; it
/// costs one pass over the prefix's keys, so it is not run per scrape).
/// `None` when Redis does not answer.
pub async fn census(redis: &Redis) -> Option<Census> {
    let pattern = format!("{}:[ct]:*", redis.prefix());
    let entry_start = format!("{}:c:", redis.prefix());
    let url_tags = format!("{}:t:{{{}", redis.prefix(), url_tag(""));
    let mut census = Census::default();
    let mut cursor = 0;
    let mut scanned = 0;
    loop {
        let step = scan_step(redis, Op::L2Get, &pattern, cursor).await;
        let Some((next, keys)) = step else {
            return (scanned > 0).then_some(census);
        };
        scanned += keys.len();
        for k in &keys {
            if k.starts_with(&entry_start) {
                census.entries += 1;
            } else if !k.starts_with(&url_tags) {
                census.tags += 1;
            }
        }
        cursor = next;
        if cursor == 0 {
            census.complete = true;
            return Some(census);
        }
        if scanned >= MAX_SCANNED {
            return Some(census);
        }
    }
}

/// Most keys one scan looks at, so that a purge by prefix on a huge Redis
/// stays bounded in time (the rest expire on their own).
const MAX_SCANNED: usize = 1_000_000;

/// Deletes every entry whose URL satisfies `matches`, by a SCAN of the
/// entry keys.
async fn purge_matching(redis: &Redis, matches: impl Fn(&str) -> bool) -> usize {
    let pattern = format!("{}:c:*", redis.prefix());
    let mut cursor: u64 = 0;
    let mut scanned = 0;
    let mut deleted = 0;
    loop {
        let Some((next, keys)) = scan_step(redis, Op::L2Purge, &pattern, cursor).await else {
            break;
        };
        scanned += keys.len();
        let doomed: Vec<String> = keys
            .into_iter()
            .filter(|k| redis.url_of(k).is_some_and(&matches))
            .collect();
        if !doomed.is_empty() {
            deleted += redis
                .run(Op::L2Purge, |mut c| async move {
                    redis::cmd("DEL")
                        .arg(&doomed)
                        .query_async::<usize>(&mut c)
                        .await
                })
                .await
                .unwrap_or(0);
        }
        cursor = next;
        if cursor == 0 || scanned >= MAX_SCANNED {
            break;
        }
    }
    deleted
}
