//! Active health of one upstream target, as a pure state machine: a healthy
//! target turns unhealthy after `unhealthy_after` failed checks in a row, an
//! unhealthy one healthy again after `healthy_after` passed checks in a row
//! (the same hysteresis as nginx's `fails`/`passes` and Envoy's thresholds).
//! A target starts healthy, so traffic flows before the first check.

/// Thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Passed checks in a row that make an unhealthy target healthy.
    pub healthy_after: u32,
    /// Failed checks in a row that make a healthy target unhealthy.
    pub unhealthy_after: u32,
}

/// One target's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    healthy: bool,
    streak: u32,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// A healthy target with no checks yet.
    pub fn new() -> Self {
        Self {
            healthy: true,
            streak: 0,
        }
    }

    /// Whether the target takes traffic.
    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// Records one check's result; returns the new state when it changed.
    pub fn record(&mut self, passed: bool, t: Thresholds) -> Option<bool> {
        if passed == self.healthy {
            // A result agreeing with the state resets the opposite streak.
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.healthy {
            t.unhealthy_after
        } else {
            t.healthy_after
        };
        if self.streak >= needed.max(1) {
            self.healthy = passed;
            self.streak = 0;
            Some(passed)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        healthy_after: 2,
        unhealthy_after: 3,
    };

    #[test]
    fn needs_consecutive_failures_to_go_down() {
        let mut h = Health::new();
        assert_eq!(h.record(false, T), None);
        assert_eq!(h.record(false, T), None);
        // A pass in between starts the count again.
        assert_eq!(h.record(true, T), None);
        assert_eq!(h.record(false, T), None);
        assert_eq!(h.record(false, T), None);
        assert!(h.is_healthy());
        assert_eq!(h.record(false, T), Some(false));
        assert!(!h.is_healthy());
    }

    #[test]
    fn needs_consecutive_passes_to_come_back() {
        let mut h = Health::new();
        for _ in 0..3 {
            h.record(false, T);
        }
        assert!(!h.is_healthy());
        assert_eq!(h.record(true, T), None);
        assert_eq!(h.record(false, T), None);
        assert_eq!(h.record(true, T), None);
        assert_eq!(h.record(true, T), Some(true));
        assert!(h.is_healthy());
    }
}
