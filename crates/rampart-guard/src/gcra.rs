//! GCRA (the generic cell rate algorithm) rate limits, and a bounded table of
//! per-key limiter states.
//!
//! A limit of `rate` per `period` with `burst` has an emission interval
//! `T = period / rate` and a tolerance `τ = (burst − 1) · T`. Each key keeps
//! one number, its theoretical arrival time (TAT). A request at `now` is
//! allowed when `max(TAT, now) − now ≤ τ`, and then moves TAT on by `T`. With
//! `burst = rate` (the default) a fresh key may spend its whole allowance at
//! once and then earns one request every `T`: "60 per minute" allows 60 at
//! once and the 61st one second later, never more than `burst + n` requests in
//! `n · T`, for any period ("10 per 5 minutes" is exact: one per 30 s).

use std::collections::HashMap;
use std::time::Duration;

/// A rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests per period.
    pub rate: u32,
    /// The period.
    pub period: Duration,
    /// Requests allowed at once (defaults to `rate`).
    pub burst: u32,
}

impl Limit {
    /// `rate` per `period`, burst = rate.
    pub fn new(rate: u32, period: Duration) -> Self {
        Self {
            rate: rate.max(1),
            period,
            burst: rate.max(1),
        }
    }

    /// The emission interval `T`.
    pub fn interval(&self) -> Duration {
        self.period / self.rate.max(1)
    }

    fn tolerance(&self) -> Duration {
        self.interval() * (self.burst.max(1) - 1)
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allowed {
        /// Further requests allowed right now.
        remaining: u32,
        /// Time until the whole burst is available again.
        reset: Duration,
    },
    /// Refused.
    Limited {
        /// Time until a request would be allowed.
        retry_after: Duration,
        /// Time until the whole burst is available again.
        reset: Duration,
    },
}

/// Decides one request for a key whose TAT is `tat` (`None`: never seen).
/// Returns the decision and the TAT to store.
pub fn check(limit: &Limit, tat: Option<Duration>, now: Duration) -> (Decision, Duration) {
    let t = limit.interval();
    let tau = limit.tolerance();
    let tat = tat.unwrap_or(now).max(now);
    let ahead = tat - now;
    if ahead <= tau {
        let new_tat = tat + t;
        let used = new_tat - now;
        // Requests that still fit: each needs one more interval within τ + T.
        let remaining = ((tau + t).saturating_sub(used).as_nanos() / t.as_nanos().max(1)) as u32;
        (
            Decision::Allowed {
                remaining,
                reset: used,
            },
            new_tat,
        )
    } else {
        (
            Decision::Limited {
                retry_after: ahead - tau,
                reset: ahead,
            },
            tat,
        )
    }
}

/// Why a key could not be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFull {
    /// Every slot holds a key still inside its period.
    Full,
}

/// Per-key limiter states, bounded to `capacity` keys.
///
/// Eviction never hands a client a fresh allowance early: only keys whose TAT
/// has passed are evicted, and such a key is in exactly the state of a key
/// never seen (its whole burst is available). When every slot holds a key
/// still inside its period, a new key is refused ([`TableFull`]) rather than
/// evicting someone mid-period; the gateway answers it 429 and counts it.
#[derive(Debug)]
pub struct Table<K> {
    capacity: usize,
    tats: HashMap<K, Duration>,
}

impl<K: std::hash::Hash + Eq + Clone> Table<K> {
    /// A table for at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            tats: HashMap::new(),
        }
    }

    /// Checks one request for `key` at `now`.
    pub fn check(&mut self, limit: &Limit, key: &K, now: Duration) -> Result<Decision, TableFull> {
        if !self.tats.contains_key(key) && self.tats.len() >= self.capacity {
            self.tats.retain(|_, tat| *tat > now);
            if self.tats.len() >= self.capacity {
                return Err(TableFull::Full);
            }
        }
        let (decision, tat) = check(limit, self.tats.get(key).copied(), now);
        self.tats.insert(key.clone(), tat);
        Ok(decision)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.tats.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.tats.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Requests allowed in a burst at `now`, then whether one more is allowed
    /// just before and exactly at the first refill.
    fn exercise(limit: Limit) {
        let mut tat = None;
        let t0 = Duration::from_secs(1_000);
        let mut allowed = 0;
        loop {
            let (d, next) = check(&limit, tat, t0);
            match d {
                Decision::Allowed { remaining, .. } => {
                    allowed += 1;
                    assert_eq!(
                        remaining,
                        limit.burst - allowed,
                        "remaining after {allowed}"
                    );
                    tat = Some(next);
                }
                Decision::Limited { retry_after, .. } => {
                    assert_eq!(
                        retry_after,
                        limit.interval(),
                        "the next one comes after exactly T"
                    );
                    break;
                }
            }
        }
        assert_eq!(
            allowed, limit.burst,
            "the whole burst at once, not one more"
        );
        let just_before = t0 + limit.interval() - Duration::from_millis(1);
        assert!(matches!(
            check(&limit, tat, just_before).0,
            Decision::Limited { .. }
        ));
        let (at_refill, next) = check(&limit, tat, t0 + limit.interval());
        assert!(matches!(at_refill, Decision::Allowed { remaining: 0, .. }));
        // Over a whole period after the burst, exactly `rate` more are allowed.
        let mut tat = Some(next);
        let mut more = 1;
        let mut now = t0 + limit.interval();
        while now < t0 + limit.period {
            now += limit.interval();
            if now > t0 + limit.period {
                break;
            }
            let (d, next) = check(&limit, tat, now);
            if matches!(d, Decision::Allowed { .. }) {
                more += 1;
                tat = Some(next);
            }
        }
        assert_eq!(
            more, limit.rate,
            "one period after the burst: exactly `rate` more"
        );
    }

    #[test]
    fn seed_limits_are_exact_at_their_boundaries() {
        exercise(Limit::new(60, 60 * S)); // member lookup: 60 per minute
        exercise(Limit::new(10, 300 * S)); // card generation: 10 per 5 minutes
        exercise(Limit::new(1000, 900 * S)); // general API: 1,000 per 15 minutes
        exercise(Limit::new(5, 3600 * S)); // batch generation: 5 per hour
    }

    #[test]
    fn a_smaller_burst_spaces_requests() {
        let limit = Limit {
            rate: 60,
            period: 60 * S,
            burst: 1,
        };
        let (first, tat) = check(&limit, None, 10 * S);
        assert!(matches!(first, Decision::Allowed { remaining: 0, .. }));
        assert!(matches!(
            check(&limit, Some(tat), 10 * S).0,
            Decision::Limited { .. }
        ));
        assert!(matches!(
            check(&limit, Some(tat), 11 * S).0,
            Decision::Allowed { .. }
        ));
    }

    #[test]
    fn the_table_never_evicts_a_key_mid_period() {
        let limit = Limit::new(2, 10 * S);
        let mut table: Table<&str> = Table::new(2);
        let t0 = 100 * S;
        for _ in 0..2 {
            assert!(matches!(
                table.check(&limit, &"a", t0),
                Ok(Decision::Allowed { .. })
            ));
        }
        assert!(matches!(
            table.check(&limit, &"a", t0),
            Ok(Decision::Limited { .. })
        ));
        assert!(table.check(&limit, &"b", t0).is_ok());
        // Full of keys inside their period: a third key is refused, "a" keeps its state.
        assert_eq!(table.check(&limit, &"c", t0), Err(TableFull::Full));
        assert!(matches!(
            table.check(&limit, &"a", t0 + S),
            Ok(Decision::Limited { .. })
        ));
        // Once "b" is past its period it may go; "a" is still limited.
        let later = t0 + 6 * S;
        assert!(table.check(&limit, &"c", later).is_ok());
        assert_eq!(table.len(), 2);
    }
}
