//! Time is injected: freshness, rate limits, breakers, the purge bound and
//! the schedules of warmers and health checks read a [`Clock`], so tests
//! move time instead of sleeping.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

/// A future that completes once some time has passed on a clock.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> Sleep;

    /// The current time as the guards (rate limits, breakers) count it: time
    /// since the Unix epoch.
    fn since_epoch(&self) -> Duration {
        self.now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that moves only when told to; what sleeps on it wakes when
/// [`ManualClock::advance`] moves it past their deadline.
#[derive(Debug)]
pub struct ManualClock(watch::Sender<SystemTime>);

impl ManualClock {
    /// A clock reading the current system time until advanced.
    pub fn new() -> Self {
        Self(watch::Sender::new(SystemTime::now()))
    }

    /// Moves the clock forward, waking what sleeps until then.
    pub fn advance(&self, by: Duration) {
        self.0.send_modify(|t| *t += by);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.borrow()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let mut time = self.0.subscribe();
        let deadline = *time.borrow() + duration;
        Box::pin(async move {
            // The sender lives as long as the clock; should the clock go,
            // nothing can wake this, and it stays pending as a stopped
            // clock would.
            if time.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        (**self).sleep(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_when_advanced_past_them() {
        let clock = ManualClock::new();
        let start = clock.now();
        let mut short = clock.sleep(Duration::from_secs(5));
        let mut long = clock.sleep(Duration::from_secs(10));
        let poll = |f: &mut Sleep| {
            let waker = std::task::Waker::noop();
            f.as_mut()
                .poll(&mut std::task::Context::from_waker(waker))
                .is_ready()
        };
        assert!(!poll(&mut short) && !poll(&mut long));
        clock.advance(Duration::from_secs(5));
        assert!(poll(&mut short), "at its deadline");
        assert!(!poll(&mut long));
        clock.advance(Duration::from_secs(5));
        assert!(poll(&mut long));
        assert_eq!(clock.now(), start + Duration::from_secs(10));
    }
}
