//! A circuit breaker per upstream target, as a state machine of the time.
//!
//! Closed: requests pass; it opens after `failures` consecutive failures, or
//! when at least `min_requests` of the last `window` outcomes were seen and
//! the failure share reaches `failure_rate`. Open: requests are refused for
//! `open_for`. Half-open: up to `probes` requests at once may pass; one failed
//! probe opens it again, `probes` successful ones close it.

use std::collections::VecDeque;
use std::time::Duration;

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// Failure share (0–1) over the window that opens it (`None`: off).
    pub failure_rate: Option<f64>,
    /// Outcomes remembered for the failure share.
    pub window: usize,
    /// Outcomes needed before the failure share counts.
    pub min_requests: usize,
    /// How long it stays open.
    pub open_for: Duration,
    /// Probes allowed at once when half-open, and successes needed to close.
    pub probes: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            failures: 10,
            failure_rate: None,
            window: 100,
            min_requests: 20,
            open_for: Duration::from_secs(60),
            probes: 1,
        }
    }
}

/// The breaker's state, as exported in metrics (0 closed, 1 half-open, 2 open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Requests pass.
    Closed,
    /// A few probes pass.
    HalfOpen,
    /// Requests are refused.
    Open,
}

impl State {
    /// The metric value.
    pub fn as_gauge(self) -> u8 {
        match self {
            State::Closed => 0,
            State::HalfOpen => 1,
            State::Open => 2,
        }
    }

    /// A label.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::HalfOpen => "half-open",
            State::Open => "open",
        }
    }
}

/// Refused by an open breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Time until it half-opens (zero when half-open and all probes are out).
    pub retry_after: Duration,
}

/// One breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    settings: Settings,
    state: State,
    consecutive: u32,
    outcomes: VecDeque<bool>,
    opened_at: Duration,
    probes_out: u32,
    probe_successes: u32,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            state: State::Closed,
            consecutive: 0,
            outcomes: VecDeque::new(),
            opened_at: Duration::ZERO,
            probes_out: 0,
            probe_successes: 0,
        }
    }

    /// The state at `now` (an open breaker whose time is up reads half-open).
    pub fn state(&self, now: Duration) -> State {
        match self.state {
            State::Open if now >= self.opened_at + self.settings.open_for => State::HalfOpen,
            s => s,
        }
    }

    /// Asks to send one request at `now`. On `Ok`, report its outcome with
    /// [`Breaker::record`].
    pub fn allow(&mut self, now: Duration) -> Result<(), Refused> {
        if self.state == State::Open {
            let until = self.opened_at + self.settings.open_for;
            if now < until {
                return Err(Refused {
                    retry_after: until - now,
                });
            }
            self.state = State::HalfOpen;
            self.probes_out = 0;
            self.probe_successes = 0;
        }
        if self.state == State::HalfOpen {
            if self.probes_out >= self.settings.probes {
                return Err(Refused {
                    retry_after: Duration::ZERO,
                });
            }
            self.probes_out += 1;
        }
        Ok(())
    }

    /// Reports the outcome of an allowed request (`true` = success; 5xx,
    /// connect errors and timeouts are failures, 4xx are not).
    pub fn record(&mut self, now: Duration, success: bool) {
        match self.state {
            State::HalfOpen => {
                self.probes_out = self.probes_out.saturating_sub(1);
                if success {
                    self.probe_successes += 1;
                    if self.probe_successes >= self.settings.probes {
                        self.close();
                    }
                } else {
                    self.open(now);
                }
            }
            State::Closed => {
                self.outcomes.push_back(success);
                while self.outcomes.len() > self.settings.window.max(1) {
                    self.outcomes.pop_front();
                }
                self.consecutive = if success { 0 } else { self.consecutive + 1 };
                let rate_tripped = self.settings.failure_rate.is_some_and(|limit| {
                    self.outcomes.len() >= self.settings.min_requests.max(1)
                        && self.outcomes.iter().filter(|ok| !**ok).count() as f64
                            / self.outcomes.len() as f64
                            >= limit
                });
                if self.consecutive >= self.settings.failures.max(1) || rate_tripped {
                    self.open(now);
                }
            }
            // A late outcome from before it opened changes nothing.
            State::Open => {}
        }
    }

    /// An allowed request ended without an outcome (its client went away):
    /// a half-open probe slot is given back; nothing else changes.
    pub fn release(&mut self) {
        if self.state == State::HalfOpen {
            self.probes_out = self.probes_out.saturating_sub(1);
        }
    }

    fn open(&mut self, now: Duration) {
        self.state = State::Open;
        self.opened_at = now;
        self.probes_out = 0;
        self.probe_successes = 0;
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.consecutive = 0;
        self.outcomes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn ten_failures_open_it_for_sixty_seconds_then_a_probe_decides() {
        let mut b = Breaker::new(Settings::default());
        for i in 0..9 {
            b.allow(i * S).unwrap();
            b.record(i * S, false);
        }
        assert_eq!(b.state(9 * S), State::Closed);
        b.allow(9 * S).unwrap();
        b.record(9 * S, false);
        assert_eq!(b.state(9 * S), State::Open);
        assert_eq!(
            b.allow(10 * S),
            Err(Refused {
                retry_after: 59 * S
            })
        );
        assert_eq!(b.state(69 * S), State::HalfOpen);
        // Half-open: one probe at a time.
        b.allow(69 * S).unwrap();
        assert_eq!(
            b.allow(69 * S),
            Err(Refused {
                retry_after: Duration::ZERO
            })
        );
        // The probe fails: open again for a full period.
        b.record(70 * S, false);
        assert_eq!(b.state(100 * S), State::Open);
        assert_eq!(b.state(130 * S), State::HalfOpen);
        b.allow(130 * S).unwrap();
        b.record(130 * S, true);
        assert_eq!(b.state(130 * S), State::Closed);
        b.allow(131 * S).unwrap();
    }

    #[test]
    fn successes_reset_the_count_and_a_failure_rate_can_trip_it() {
        let mut b = Breaker::new(Settings {
            failures: 3,
            ..Settings::default()
        });
        for ok in [false, false, true, false, false, true] {
            b.allow(S).unwrap();
            b.record(S, ok);
        }
        assert_eq!(b.state(S), State::Closed, "never three in a row");
        let mut r = Breaker::new(Settings {
            failures: 1000,
            failure_rate: Some(0.5),
            window: 10,
            min_requests: 10,
            ..Settings::default()
        });
        for i in 0..10 {
            r.allow(S).unwrap();
            r.record(S, i % 2 == 0);
            assert_eq!(
                r.state(S),
                if i < 9 { State::Closed } else { State::Open },
                "after {} outcomes",
                i + 1
            );
        }
    }

    #[test]
    fn several_probes_must_all_succeed() {
        let mut b = Breaker::new(Settings {
            failures: 1,
            probes: 3,
            open_for: 10 * S,
            ..Settings::default()
        });
        b.allow(S).unwrap();
        b.record(S, false);
        for _ in 0..3 {
            b.allow(11 * S).unwrap();
        }
        assert!(b.allow(11 * S).is_err(), "at most three probes at once");
        b.release();
        b.allow(11 * S).unwrap();
        b.record(12 * S, true);
        b.record(12 * S, true);
        assert_eq!(b.state(12 * S), State::HalfOpen);
        b.record(12 * S, true);
        assert_eq!(b.state(12 * S), State::Closed);
    }
}
