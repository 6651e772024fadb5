//! GCRA counted in Redis, so that a limit is exact across every node that
//! shares the Redis: one atomic script call per request, with the same
//! arithmetic as [`rampart_guard::gcra::check`]. The time is Redis's own (`TIME`),
//! so nodes whose clocks disagree still agree on the allowance. A key
//! expires when its TAT has passed (it is then in the state of a key never
//! seen), so the key space in Redis is bounded by the clients active within
//! one period.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::Script;

use rampart_guard::gcra::{Decision, Limit};

/// The script: KEYS[1] the client's key; ARGV[1] the emission interval T and
/// ARGV[2] the tolerance τ, both in microseconds. Returns
/// `{allowed, remaining_or_retry_after_us, reset_us}`.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local ahead = tat - now
if ahead > tau then
  return {0, ahead - tau, ahead}
end
local new_tat = tat + interval
local used = new_tat - now
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(used / 1000) + 1)
local remaining = math.floor((tau + interval - used) / interval)
if remaining < 0 then remaining = 0 end
return {1, remaining, used}
";

/// The GCRA script, loaded once and sent by its digest (`EVALSHA`, falling
/// back to `EVAL` when Redis does not know it, as after a restart).
#[derive(Debug, Clone)]
pub struct ClusterGcra {
    script: Script,
}

impl Default for ClusterGcra {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterGcra {
    /// The script.
    pub fn new() -> Self {
        Self {
            script: Script::new(GCRA),
        }
    }

    /// Checks one request for `key` under `limit`, in Redis.
    pub async fn check<C: ConnectionLike>(
        &self,
        conn: &mut C,
        limit: &Limit,
        key: &str,
    ) -> redis::RedisResult<Decision> {
        let t = limit.interval();
        let tau = t * (limit.burst.max(1) - 1);
        let (allowed, value, reset): (i64, i64, i64) = self
            .script
            .key(key)
            .arg(t.as_micros() as u64)
            .arg(tau.as_micros() as u64)
            .invoke_async(conn)
            .await?;
        let micros = |v: i64| Duration::from_micros(v.max(0) as u64);
        Ok(if allowed == 1 {
            Decision::Allowed {
                remaining: value.clamp(0, i64::from(u32::MAX)) as u32,
                reset: micros(reset),
            }
        } else {
            Decision::Limited {
                retry_after: micros(value),
                reset: micros(reset),
            }
        })
    }
}
