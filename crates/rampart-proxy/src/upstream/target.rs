//! One target of an upstream and what is known of it: requests in flight,
//! the verdict of active health checks, and its circuit breaker, whose
//! bookkeeping ([`Pending`]) follows each request until its outcome.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Authority;
use prometheus_client::metrics::counter::Counter;
use rampart_guard::breaker::{Breaker, State};
use rampart_guard::health::Health;

/// One target.
pub(crate) struct Target {
    pub(crate) authority: Authority,
    /// Requests sent whose response has not ended.
    pub(crate) in_flight: Arc<AtomicUsize>,
    /// The last verdict of active health checks (true without them).
    pub(crate) healthy: AtomicBool,
    pub(crate) health: Mutex<Health>,
    pub(crate) breaker: Option<Mutex<Breaker>>,
    /// Transition counters: to closed, half-open, open.
    pub(crate) transitions: [Counter; 3],
}

impl Target {
    pub(crate) fn breaker_state(&self, now: Duration) -> Option<State> {
        self.breaker
            .as_ref()
            .map(|b| b.lock().unwrap_or_else(|p| p.into_inner()).state(now))
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(crate) fn load(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Asks the breaker whether a request may go now; counts a transition.
    pub(crate) fn allow(&self, upstream: &str, now: Duration) -> Result<(), Duration> {
        let Some(b) = &self.breaker else {
            return Ok(());
        };
        let mut b = b.lock().unwrap_or_else(|p| p.into_inner());
        let before = b.state(now);
        let allowed = b.allow(now);
        let after = b.state(now);
        drop(b);
        self.count_transition(upstream, before, after);
        allowed.map_err(|r| r.retry_after)
    }

    fn count_transition(&self, upstream: &str, from: State, to: State) {
        if from != to {
            self.transitions[to.as_gauge() as usize].inc();
            tracing::warn!(
                upstream,
                target = %self.authority,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker changed state"
            );
        }
    }

    /// Counts a request to this target until its outcome is recorded.
    pub(crate) fn pending<'a>(&'a self, upstream: &'a str, now: Duration) -> Pending<'a> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Pending {
            upstream,
            target: self,
            now,
            recorded: false,
            in_flight: Some(InFlight(Arc::clone(&self.in_flight))),
        }
    }
}

/// Holds a target's in-flight count and gives its breaker the outcome, or
/// its probe slot back if the request was abandoned (the client went away)
/// before one was known.
pub(crate) struct Pending<'a> {
    upstream: &'a str,
    target: &'a Target,
    now: Duration,
    recorded: bool,
    in_flight: Option<InFlight>,
}

/// One request counted in a target's in-flight number until dropped.
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pending<'_> {
    /// Gives the breaker the outcome; returns the in-flight count, to be
    /// held by the response body.
    pub(crate) fn record(mut self, success: bool) -> Option<InFlight> {
        self.recorded = true;
        if let Some(b) = &self.target.breaker {
            let mut b = b.lock().unwrap_or_else(|p| p.into_inner());
            let before = b.state(self.now);
            b.record(self.now, success);
            let after = b.state(self.now);
            drop(b);
            self.target.count_transition(self.upstream, before, after);
        }
        self.in_flight.take()
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            if let Some(b) = &self.target.breaker {
                b.lock().unwrap_or_else(|p| p.into_inner()).release();
            }
        }
    }
}
