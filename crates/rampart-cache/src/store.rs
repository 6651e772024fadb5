//! The in-memory tier (L1): a byte-bounded moka cache of URL keys to their
//! `Vary` variants, plus an index from tags to keys so that purges find every
//! entry a tag covers without scanning.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderMap;
use moka::notification::RemovalCause;
use moka::Expiry;

use crate::entry::Entry;
use crate::key::{primary_of, EXTRA_SEPARATOR};

/// The variants stored for one key.
#[derive(Debug)]
pub struct Variants {
    /// Newest first; at most `max_variants`.
    pub entries: Vec<Arc<Entry>>,
    /// The key they are stored under (the table holds only its [`Slot`]).
    key: String,
    generation: u64,
    tags: Vec<String>,
    weight: u32,
}

impl Variants {
    /// The tags of every variant.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// A variant matching the request.
    Found(Arc<Entry>),
    /// Variants exist for the URL, none for this request's `Vary` values.
    VaryMiss,
    /// Nothing stored.
    Miss,
}

const SHARDS: usize = 16;

/// Tag → keys, with the generation of the value that registered each pair so
/// that the removal of an old value never unregisters its replacement.
#[derive(Debug)]
struct TagIndex {
    shards: Vec<Mutex<HashMap<String, HashMap<String, u64>>>>,
}

impl TagIndex {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, tag: &str) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, u64>>> {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in tag.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.shards[(h as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, tag: &str, key: &str, generation: u64) {
        self.shard(tag)
            .entry(tag.to_string())
            .or_default()
            .insert(key.to_string(), generation);
    }

    fn remove(&self, tag: &str, key: &str, generation: u64) {
        let mut shard = self.shard(tag);
        if let Some(keys) = shard.get_mut(tag) {
            if keys.get(key) == Some(&generation) {
                keys.remove(key);
            }
            if keys.is_empty() {
                shard.remove(tag);
            }
        }
    }

    fn keys(&self, tag: &str) -> Vec<String> {
        self.shard(tag)
            .get(tag)
            .map(|k| k.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn size(&self) -> TagIndexSize {
        let mut size = TagIndexSize::default();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            for (tag, keys) in shard.iter() {
                if !tag.starts_with(URL_TAG) {
                    size.tags += 1;
                    size.links += keys.len();
                }
            }
        }
        size
    }
}

/// The size of the tag index: what purging by tag has to look through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TagIndexSize {
    /// Distinct tags with at least one stored entry.
    pub tags: usize,
    /// (tag, key) pairs: the sum over tags of the keys each covers.
    pub links: usize,
}

/// The start of the internal tags below.
const URL_TAG: &str = "\u{1}url ";

/// Keys whose entries were stored with extra key parts are indexed under this
/// internal tag of their URL, so that an unsafe request to the URL removes
/// every user's copy.
fn url_tag(primary: &str) -> String {
    format!("{URL_TAG}{primary}")
}

/// A key's place in the table: the key hashed once, with a random SipHash
/// key picked when the cache is made (as the standard library's maps hash
/// theirs). The table takes the slot as its hash ([`SlotHasher`]), so
/// growing it or clearing the tombstones removals leave never hashes a key
/// again: that rehashed every key of a segment inside one request's insert,
/// and made misses' p99 rise with the cache's size (docs/benchmarks.md, "A
/// miss's p99 and the key table"). Two keys may share a slot; the key is
/// kept with its variants and compared on every read, so one never answers
/// for the other (the later simply replaces the earlier, as an eviction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Slot(u64);

/// Hashes a [`Slot`] to itself: it already is a keyed hash.
#[derive(Debug, Default)]
struct SlotHasher(u64);

impl Hasher for SlotHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only a `Slot` (one u64) is ever hashed here.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
}

/// Builds [`SlotHasher`]s.
#[derive(Debug, Clone, Default)]
struct BuildSlotHasher;

impl BuildHasher for BuildSlotHasher {
    type Hasher = SlotHasher;

    fn build_hasher(&self) -> SlotHasher {
        SlotHasher::default()
    }
}

struct HorizonExpiry;

impl Expiry<Slot, Arc<Variants>> for HorizonExpiry {
    fn expire_after_create(&self, _: &Slot, value: &Arc<Variants>, _: Instant) -> Option<Duration> {
        Some(horizon(value))
    }
    fn expire_after_update(
        &self,
        _: &Slot,
        value: &Arc<Variants>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(horizon(value))
    }
}

/// How long the longest-lived variant remains useful (fresh or stale-servable).
fn horizon(value: &Variants) -> Duration {
    value
        .entries
        .iter()
        .map(|e| e.freshness.horizon().saturating_sub(e.initial_age))
        .max()
        .unwrap_or(Duration::ZERO)
        .clamp(Duration::from_secs(1), crate::freshness::MAX_DELTA)
}

/// The in-memory cache.
///
/// Bounded by bytes: every value is weighed with [`Entry::weight`] (bodies,
/// compressed copies, headers, tags and a fixed bookkeeping overhead), and the
/// least valuable entries are evicted (TinyLFU) past the budget. Entries
/// also leave once their last stale window has passed.
pub struct MemoryCache {
    cache: moka::sync::Cache<Slot, Arc<Variants>, BuildSlotHasher>,
    /// The random key slots are hashed with.
    slots: RandomState,
    /// How a key becomes its slot (always hashing with `slots`, but for
    /// tests that make keys collide).
    slot_of: fn(&RandomState, &str) -> u64,
    index: Arc<TagIndex>,
    generation: AtomicU64,
    max_variants: usize,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("entries", &self.cache.entry_count())
            .field("bytes", &self.cache.weighted_size())
            .finish()
    }
}

impl MemoryCache {
    /// A cache holding at most `budget` bytes and `max_variants` variants per key.
    pub fn new(budget: u64, max_variants: usize) -> Self {
        let index = Arc::new(TagIndex::new());
        let listener_index = Arc::clone(&index);
        let cache = moka::sync::Cache::builder()
            .max_capacity(budget)
            .weigher(|_: &Slot, v: &Arc<Variants>| v.weight)
            .expire_after(HorizonExpiry)
            .eviction_listener(move |_: Arc<Slot>, value: Arc<Variants>, cause| {
                // A replacement manages the index itself (see `insert`).
                if cause != RemovalCause::Replaced {
                    for tag in &value.tags {
                        listener_index.remove(tag, &value.key, value.generation);
                    }
                }
            })
            .build_with_hasher(BuildSlotHasher);
        Self {
            cache,
            slots: RandomState::new(),
            slot_of: |slots, key| slots.hash_one(key),
            index,
            generation: AtomicU64::new(1),
            max_variants: max_variants.max(1),
        }
    }

    fn slot(&self, key: &str) -> Slot {
        Slot((self.slot_of)(&self.slots, key))
    }

    /// The variants stored under `key`.
    fn get(&self, key: &str) -> Option<Arc<Variants>> {
        self.cache.get(&self.slot(key)).filter(|v| v.key == key)
    }

    /// Finds the variant of `key` that matches the request headers.
    pub fn lookup(&self, key: &str, request: &HeaderMap) -> Lookup {
        match self.get(key) {
            None => Lookup::Miss,
            Some(v) => v
                .entries
                .iter()
                .find(|e| e.matches(request))
                .map_or(Lookup::VaryMiss, |e| Lookup::Found(Arc::clone(e))),
        }
    }

    /// Stores `entry` under `key`, replacing a variant with the same `Vary`
    /// values and keeping at most `max_variants` (newest first). Returns the
    /// stored entry.
    pub fn insert(&self, key: &str, entry: Entry) -> Arc<Entry> {
        let entry = Arc::new(entry);
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let mut entries: Vec<Arc<Entry>> = Vec::with_capacity(2);
        entries.push(Arc::clone(&entry));
        let slot = self.slot(key);
        let (existing, displaced) = match self.cache.get(&slot) {
            Some(v) if v.key == key => (Some(v), None),
            other => (None, other),
        };
        if let Some(existing) = &existing {
            entries.extend(
                existing
                    .entries
                    .iter()
                    .filter(|e| e.vary != entry.vary)
                    .take(self.max_variants - 1)
                    .cloned(),
            );
        }
        let mut tags: Vec<String> = Vec::new();
        for e in &entries {
            for t in &e.tags {
                if !tags.contains(t) {
                    tags.push(t.clone());
                }
            }
        }
        if key.contains(EXTRA_SEPARATOR) {
            tags.push(url_tag(primary_of(key)));
        }
        let weight: u64 = entries.iter().map(|e| e.weight(key.len())).sum();
        for tag in &tags {
            self.index.add(tag, key, generation);
        }
        if let Some(old) = &existing {
            for tag in old.tags.iter().filter(|t| !tags.contains(t)) {
                self.index.remove(tag, key, old.generation);
            }
        }
        // Another key in the same slot goes, as if evicted.
        if let Some(other) = &displaced {
            for tag in &other.tags {
                self.index.remove(tag, &other.key, other.generation);
            }
        }
        self.cache.insert(
            slot,
            Arc::new(Variants {
                key: key.to_string(),
                entries,
                generation,
                tags,
                weight: u32::try_from(weight).unwrap_or(u32::MAX),
            }),
        );
        entry
    }

    /// Adds compressed copies of `entry`'s body to the variant stored under
    /// `key` that holds that same body (the entry itself, or a copy of it
    /// that gained other codings or was revalidated meanwhile), atomically;
    /// a coding it already has is kept. Nothing is added once the body is
    /// no longer stored (a purge or a newer response wins). Returns whether
    /// the copies were added.
    pub fn add_encodings(
        &self,
        key: &str,
        entry: &Entry,
        extra: Vec<(rampart_config::Encoding, bytes::Bytes)>,
    ) -> bool {
        use moka::ops::compute::{CompResult, Op};
        let same_body = |e: &Arc<Entry>| {
            e.body.as_ptr() == entry.body.as_ptr() && e.body.len() == entry.body.len()
        };
        let result = self
            .cache
            .entry(self.slot(key))
            .and_compute_with(|current| {
                let Some(current) = current else {
                    return Op::Nop;
                };
                let variants = current.into_value();
                if variants.key != key {
                    return Op::Nop;
                }
                let Some(pos) = variants.entries.iter().position(same_body) else {
                    return Op::Nop;
                };
                let mut updated = Entry::clone(&variants.entries[pos]);
                for (encoding, bytes) in extra {
                    if !updated.encoded.iter().any(|(e, _)| *e == encoding) {
                        updated.encoded.push((encoding, bytes));
                    }
                }
                let mut entries = variants.entries.clone();
                entries[pos] = Arc::new(updated);
                let weight: u64 = entries.iter().map(|e| e.weight(key.len())).sum();
                // Same tags and generation: the index already points here.
                Op::Put(Arc::new(Variants {
                    key: variants.key.clone(),
                    entries,
                    generation: variants.generation,
                    tags: variants.tags.clone(),
                    weight: u32::try_from(weight).unwrap_or(u32::MAX),
                }))
            });
        matches!(result, CompResult::ReplacedWith(_))
    }

    /// Removes one key. Returns whether it was present.
    pub fn purge_key(&self, key: &str) -> bool {
        use moka::ops::compute::{CompResult, Op};
        let result = self
            .cache
            .entry(self.slot(key))
            .and_compute_with(|current| match current {
                Some(c) if c.value().key == key => Op::Remove,
                _ => Op::Nop,
            });
        matches!(result, CompResult::Removed(_))
    }

    /// Removes a URL: its plain key and every key that extends it with extra
    /// key parts. Returns how many keys went.
    pub fn purge_url(&self, primary: &str) -> usize {
        let mut n = usize::from(self.purge_key(primary));
        n += self.purge_tag(&url_tag(primary));
        n
    }

    /// Removes every key a tag covers. Returns how many went.
    pub fn purge_tag(&self, tag: &str) -> usize {
        self.index
            .keys(tag)
            .iter()
            .filter(|k| self.purge_key(k))
            .count()
    }

    /// Removes every key whose URL (`http://host/path?query`) satisfies
    /// `matches`, by a scan of all keys (for purges by path or prefix, which
    /// the tag index cannot answer). Returns how many went.
    pub fn purge_matching(&self, matches: impl Fn(&str) -> bool) -> usize {
        let doomed: Vec<String> = self
            .cache
            .iter()
            .filter(|(_, v)| matches(primary_of(&v.key)))
            .map(|(_, v)| v.key.clone())
            .collect();
        doomed.iter().filter(|k| self.purge_key(k)).count()
    }

    /// Removes every entry. Returns how many keys went.
    pub fn purge_all(&self) -> usize {
        let n = self.cache.iter().count();
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
        n
    }

    /// Number of keys stored (after pending maintenance).
    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Bytes charged against the budget (after pending maintenance).
    pub fn weighted_size(&self) -> u64 {
        self.cache.weighted_size()
    }

    /// How many tags, and (tag, key) pairs, the tag index holds.
    pub fn tag_index_size(&self) -> TagIndexSize {
        self.index.size()
    }

    /// What is stored for a URL: its plain key and every key that extends
    /// it with extra key parts, each with its variants.
    pub fn url_entries(&self, primary: &str) -> Vec<(String, Arc<Variants>)> {
        let mut keys = self.index.keys(&url_tag(primary));
        keys.push(primary.to_string());
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|k| self.get(&k).map(|v| (k, v)))
            .collect()
    }

    /// A page of what is stored: the first `limit` keys after `after` (in
    /// key order) whose URL `select` accepts, carrying `tag` when given.
    /// One pass over the keys (or, with a tag, over the tag's keys) that
    /// holds at most `limit` of them.
    pub fn page(
        &self,
        select: impl Fn(&str) -> bool,
        tag: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(String, Arc<Variants>)> {
        let mut page: std::collections::BTreeMap<String, Arc<Variants>> =
            std::collections::BTreeMap::new();
        let mut consider = |key: &str, variants: Arc<Variants>| {
            if after.is_some_and(|a| key <= a) || limit == 0 {
                return;
            }
            let beyond = page.len() >= limit
                && page
                    .last_key_value()
                    .is_some_and(|(last, _)| key >= last.as_str());
            if beyond
                || !select(primary_of(key))
                || !tag.is_none_or(|t| variants.tags.iter().any(|have| have == t))
            {
                return;
            }
            page.insert(key.to_string(), variants);
            if page.len() > limit {
                page.pop_last();
            }
        };
        match tag {
            Some(t) => {
                for key in self.index.keys(t) {
                    if let Some(v) = self.get(&key) {
                        consider(&key, v);
                    }
                }
            }
            None => {
                for (_, v) in self.cache.iter() {
                    let held = Arc::clone(&v);
                    consider(&held.key, v);
                }
            }
        }
        page.into_iter().collect()
    }

    /// Runs pending eviction and expiry work now (moka batches it).
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::freshness::Freshness;
    use bytes::Bytes;
    use http::{HeaderName, HeaderValue, StatusCode};
    use std::time::SystemTime;

    fn entry(body: &str, tags: &[&str], vary: Option<&'static str>) -> Entry {
        Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
            encoded: vec![],
            asked: Default::default(),
            vary: vary
                .map(|v| {
                    vec![(
                        HeaderName::from_static("accept-language"),
                        Some(HeaderValue::from_static(v)),
                    )]
                })
                .unwrap_or_default(),
            response_time: SystemTime::now(),
            initial_age: Duration::ZERO,
            freshness: Freshness {
                lifetime: Duration::from_secs(60),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                keep: Duration::ZERO,
                must_revalidate: false,
            },
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn lang(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("accept-language", HeaderValue::from_static(v));
        h
    }

    #[test]
    fn variants_and_vary_misses() {
        let c = MemoryCache::new(1 << 20, 4);
        c.insert("k", entry("en", &[], Some("en")));
        c.insert("k", entry("fr", &[], Some("fr")));
        assert!(matches!(c.lookup("k", &lang("en")), Lookup::Found(e) if e.body == "en"));
        assert!(matches!(c.lookup("k", &lang("fr")), Lookup::Found(e) if e.body == "fr"));
        assert!(matches!(c.lookup("k", &lang("de")), Lookup::VaryMiss));
        assert!(matches!(c.lookup("other", &lang("de")), Lookup::Miss));
        c.insert("k", entry("en2", &[], Some("en")));
        assert!(matches!(c.lookup("k", &lang("en")), Lookup::Found(e) if e.body == "en2"));
        assert!(matches!(c.lookup("k", &lang("fr")), Lookup::Found(_)));
    }

    #[test]
    fn keys_that_share_a_slot_never_answer_for_each_other() {
        let mut c = MemoryCache::new(1 << 20, 4);
        c.slot_of = |_, _| 7;
        let none = HeaderMap::new();
        c.insert("http://h/a", entry("a", &["ta"], None));
        assert!(matches!(c.lookup("http://h/a", &none), Lookup::Found(e) if e.body == "a"));
        assert!(matches!(c.lookup("http://h/b", &none), Lookup::Miss));
        assert!(!c.purge_key("http://h/b"));
        let stored = c.insert("http://h/a", entry("a2", &["ta"], None));
        assert!(!c.add_encodings(
            "http://h/b",
            &stored,
            vec![(rampart_config::Encoding::Gzip, Bytes::from_static(b"z"))]
        ));
        // The second key takes the slot: the first is gone, as if evicted,
        // and its tag no longer reaches anything.
        c.insert("http://h/b", entry("b", &["tb"], None));
        assert!(matches!(c.lookup("http://h/a", &none), Lookup::Miss));
        assert!(matches!(c.lookup("http://h/b", &none), Lookup::Found(e) if e.body == "b"));
        assert_eq!(c.purge_tag("ta"), 0);
        assert!(!c.purge_key("http://h/a"));
        assert_eq!(c.purge_matching(|url| url.ends_with("/a")), 0);
        let listed = c.page(|_| true, None, None, 10);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, "http://h/b");
        assert_eq!(c.purge_tag("tb"), 1);
        assert!(matches!(c.lookup("http://h/b", &none), Lookup::Miss));
    }

    #[test]
    fn tag_purge_removes_exactly_the_tagged_keys() {
        let c = MemoryCache::new(1 << 20, 4);
        c.insert("a", entry("a", &["event:1", "events"], None));
        c.insert("b", entry("b", &["event:2", "events"], None));
        c.insert("c", entry("c", &["other"], None));
        assert_eq!(c.purge_tag("event:1"), 1);
        assert!(matches!(c.lookup("a", &HeaderMap::new()), Lookup::Miss));
        assert!(matches!(c.lookup("b", &HeaderMap::new()), Lookup::Found(_)));
        assert_eq!(c.purge_tag("events"), 1);
        assert!(matches!(c.lookup("c", &HeaderMap::new()), Lookup::Found(_)));
        c.run_pending_tasks();
        assert_eq!(c.purge_tag("event:1"), 0);
    }

    #[test]
    fn replacing_a_value_keeps_its_tags_indexed() {
        let c = MemoryCache::new(1 << 20, 4);
        c.insert("a", entry("1", &["t"], None));
        c.insert("a", entry("2", &["t"], None));
        c.run_pending_tasks();
        assert_eq!(c.purge_tag("t"), 1);
    }

    #[test]
    fn codings_are_added_only_to_the_entry_still_stored() {
        let c = MemoryCache::new(1 << 20, 4);
        let first = c.insert("k", entry("v1", &["t"], None));
        let coding = |e: rampart_config::Encoding| vec![(e, Bytes::from_static(b"z"))];
        assert!(c.add_encodings("k", &first, coding(rampart_config::Encoding::Gzip)));
        // A second coding made from the same first entry joins the first
        // (codings made at the same time are all kept).
        assert!(c.add_encodings("k", &first, coding(rampart_config::Encoding::Br)));
        assert!(
            matches!(c.lookup("k", &HeaderMap::new()), Lookup::Found(e) if e.encoded.len() == 2)
        );
        assert!(c.add_encodings("k", &first, coding(rampart_config::Encoding::Br)));
        assert!(
            matches!(c.lookup("k", &HeaderMap::new()), Lookup::Found(e) if e.encoded.len() == 2),
            "a coding already there is not added twice"
        );
        // Tags still reach it after the in-place update.
        c.run_pending_tasks();
        assert_eq!(c.purge_tag("t"), 1);
        // Purged, or replaced by a newer response: nothing is resurrected.
        assert!(!c.add_encodings("k", &first, coding(rampart_config::Encoding::Gzip)));
        assert!(matches!(c.lookup("k", &HeaderMap::new()), Lookup::Miss));
        let second = c.insert("k", entry("v2", &[], None));
        assert!(!c.add_encodings("k", &first, coding(rampart_config::Encoding::Gzip)));
        assert!(
            matches!(c.lookup("k", &HeaderMap::new()), Lookup::Found(e) if Arc::ptr_eq(&e, &second) && e.encoded.is_empty())
        );
    }

    #[test]
    fn retagged_replacements_drop_old_tags() {
        let c = MemoryCache::new(1 << 20, 4);
        c.insert("a", entry("1", &["old", "both"], None));
        c.insert("a", entry("2", &["new", "both"], None));
        c.run_pending_tasks();
        assert_eq!(c.purge_tag("old"), 0);
        c.insert("b", entry("3", &["both"], None));
        c.insert("http://h/me#aaaa", entry("keyed", &[], None));
        c.run_pending_tasks();
        assert_eq!(
            c.tag_index_size(),
            TagIndexSize { tags: 2, links: 3 },
            "new → a, both → a and b; the internal URL tag of the keyed copy is not counted"
        );
        assert_eq!(c.purge_tag("both"), 2);
        c.run_pending_tasks();
        assert_eq!(c.tag_index_size(), TagIndexSize::default());
    }

    #[test]
    fn url_purge_reaches_keyed_copies() {
        let c = MemoryCache::new(1 << 20, 4);
        c.insert("http://h/me#aaaa", entry("alice", &[], None));
        c.insert("http://h/me#bbbb", entry("bob", &[], None));
        c.insert("http://h/me", entry("anon", &[], None));
        c.insert("http://h/other#aaaa", entry("x", &[], None));
        assert_eq!(c.purge_url("http://h/me"), 3);
        assert!(matches!(
            c.lookup("http://h/other#aaaa", &HeaderMap::new()),
            Lookup::Found(_)
        ));
    }

    #[test]
    fn what_is_stored_can_be_listed_page_by_page() {
        let c = MemoryCache::new(1 << 20, 4);
        for (key, tag) in [
            ("http://h/a", "x"),
            ("http://h/b", "y"),
            ("http://h/c", "x"),
            ("http://h/c#0123", "x"),
            ("http://g/d", "x"),
        ] {
            c.insert(key, entry("v", &[tag], None));
        }
        let keys = |page: Vec<(String, Arc<Variants>)>| -> Vec<String> {
            page.into_iter().map(|(k, _)| k).collect()
        };
        let on_h = |u: &str| u.starts_with("http://h/");
        assert_eq!(
            keys(c.page(on_h, None, None, 2)),
            ["http://h/a", "http://h/b"]
        );
        assert_eq!(
            keys(c.page(on_h, None, Some("http://h/b"), 2)),
            ["http://h/c", "http://h/c#0123"]
        );
        assert!(c.page(on_h, None, Some("http://h/c#0123"), 2).is_empty());
        assert_eq!(
            keys(c.page(|_| true, Some("x"), None, 10)),
            ["http://g/d", "http://h/a", "http://h/c", "http://h/c#0123"]
        );
        assert!(c.page(|_| true, None, None, 0).is_empty());
        assert_eq!(
            keys(c.url_entries("http://h/c")),
            ["http://h/c", "http://h/c#0123"]
        );
        assert!(c.url_entries("http://h/zzz").is_empty());
    }

    #[test]
    fn stays_within_its_byte_budget() {
        let budget = 1 << 20;
        let c = MemoryCache::new(budget, 4);
        for i in 0..20_000 {
            c.insert(&format!("http://h/{i}"), entry(&"x".repeat(500), &[], None));
        }
        c.run_pending_tasks();
        assert!(
            c.weighted_size() <= budget,
            "{} > {budget}",
            c.weighted_size()
        );
        assert!(c.entry_count() > 500);
    }
}
