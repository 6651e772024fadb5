//! Which target takes a request: the less busy of two drawn at random
//! ("power of two choices") or the next in turn, among those that pass
//! their health checks and whose circuit allows.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rampart_config::Balance;

use super::target::Pending;
use super::{Upstream, UpstreamError};

impl Upstream {
    /// The first target to try.
    fn first_choice(&self, eligible: impl Fn(usize) -> bool) -> usize {
        let n = self.targets.len();
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        if self.balance == Balance::RoundRobin || n == 1 {
            return turn % n;
        }
        let a = rand::random_range(0..n);
        let b = (a + 1 + rand::random_range(0..n - 1)) % n;
        match (eligible(a), eligible(b)) {
            (true, false) => a,
            (false, true) => b,
            _ => {
                if self.targets[b].load() < self.targets[a].load() {
                    b
                } else {
                    a
                }
            }
        }
    }

    /// Picks a target at `now` (never `exclude`): healthy, and allowed by its
    /// breaker; the first choice, then the others in order.
    pub(super) fn pick(
        &self,
        now: Duration,
        exclude: Option<usize>,
    ) -> Result<(usize, Pending<'_>), UpstreamError> {
        let n = self.targets.len();
        let eligible = |i: usize| Some(i) != exclude && self.targets[i].is_healthy();
        // A retry takes the next target without using up a turn.
        let first = match exclude {
            Some(x) => (x + 1) % n,
            None => self.first_choice(eligible),
        };
        let mut soonest: Option<Duration> = None;
        let mut any_healthy = false;
        for k in 0..n {
            let i = (first + k) % n;
            if !eligible(i) {
                continue;
            }
            any_healthy = true;
            let target = &self.targets[i];
            if let Err(retry_after) = target.allow(&self.name, now) {
                soonest = Some(soonest.map_or(retry_after, |s| s.min(retry_after)));
                continue;
            }
            return Ok((i, target.pending(&self.name, now)));
        }
        if any_healthy || self.health.is_none() {
            Err(UpstreamError::CircuitOpen {
                retry_after: soonest.unwrap_or_default(),
            })
        } else {
            Err(UpstreamError::NoHealthyTarget {
                retry_after: self.health.as_ref().map_or(Duration::ZERO, |h| h.interval),
            })
        }
    }
}
