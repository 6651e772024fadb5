//! `[cache]` and `[compression]`.

use std::time::Duration;

use crate::model::{CacheConfig, CompressionConfig, Encoding, RedisConfig, DEFAULT_COMPRESSIBLE};
use crate::raw;

use super::common::Invalid;

/// `[cache]`: the memory budget and the optional Redis tier.
pub(super) fn cache(c: raw::RawCache) -> Result<CacheConfig, Invalid> {
    if let Some(m) = &c.memory {
        if m.get_ref().0 == 0 && c.redis.is_none() {
            return Err((
                m.span().start,
                "memory = 0 turns the memory tier off, and without `redis` nothing would be cached; give it a budget or set `redis`".into(),
            ));
        }
    }
    Ok(CacheConfig {
        memory: c.memory.map_or(256 << 20, |v| v.into_inner().0),
        max_object_size: c.max_object_size.map_or(8 << 20, |v| v.0),
        coalesce_timeout: c.coalesce_timeout.map_or(Duration::from_secs(10), |d| d.0),
        max_variants: c.max_variants.map_or(8, |v| v.max(1) as usize),
        expose_tags: c.expose_tags.unwrap_or(false),
        redis: match c.redis {
            None => None,
            Some(url) => {
                let text = url.get_ref().0.trim().to_string();
                if !["redis://", "redis+unix://", "unix://"]
                    .iter()
                    .any(|s| text.starts_with(s))
                {
                    return Err((
                        url.span().start,
                        format!("{text:?} is not a Redis URL; use redis://host:port or redis+unix:///path"),
                    ));
                }
                Some(RedisConfig {
                    url: text,
                    timeout: c.redis_timeout.map_or(Duration::from_millis(100), |d| d.0),
                    prefix: c
                        .redis_prefix
                        .map_or_else(|| "rampart".to_string(), |p| p.0),
                    purge_sync: c
                        .purge_sync
                        .map_or(Duration::from_secs(1), |d| d.0)
                        .max(Duration::from_millis(20)),
                })
            }
        },
    })
}

/// `[compression]`: on by default, br, zstd and gzip.
pub(super) fn compression(z: raw::RawCompression) -> Result<CompressionConfig, Invalid> {
    let mut algorithms = Vec::new();
    for a in z.algorithms.unwrap_or_default() {
        let enc = Encoding::parse(&a.get_ref().0).ok_or_else(|| {
            (
                a.span().start,
                format!(
                    "unknown algorithm {:?}: use \"br\", \"zstd\" or \"gzip\"",
                    a.get_ref().0
                ),
            )
        })?;
        algorithms.push(enc);
    }
    if algorithms.is_empty() {
        algorithms = vec![Encoding::Br, Encoding::Zstd, Encoding::Gzip];
    }
    Ok(CompressionConfig {
        enabled: z.enabled.unwrap_or(true),
        min_size: z.min_size.map_or(1024, |v| v.0),
        types: z.types.map_or_else(
            || DEFAULT_COMPRESSIBLE.iter().map(|s| s.to_string()).collect(),
            |t| t.into_iter().map(|t| t.0.to_ascii_lowercase()).collect(),
        ),
        algorithms,
    })
}
