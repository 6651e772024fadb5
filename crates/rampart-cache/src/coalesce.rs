//! Request coalescing.
//!
//! Contract: for one key, at most one *fill* (a request to the origin whose
//! response may be stored) runs at a time through [`Coalescer::join`]. The
//! first caller becomes the leader and gets a [`FillGuard`]; callers that join
//! while it runs become followers and wait for its outcome, each for at most
//! its own timeout. A follower that times out, or learns that the response
//! was not stored (or that the leader gave up, for example because its client
//! disconnected), goes to the origin itself: waiting is bounded and never
//! turns into an error. The leader's slot is released before followers are
//! woken, so a request arriving afterwards finds the stored entry in the cache
//! or becomes a new leader.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::entry::Entry;

/// The outcome of a fill, as followers see it.
#[derive(Debug, Clone)]
pub enum Fill {
    /// Still running.
    Pending,
    /// The response was stored; followers may serve this entry if it matches
    /// their request's `Vary` values.
    Stored(Arc<Entry>),
    /// The response was not stored (uncacheable, error, too large).
    NotStored,
    /// The leader gave up before finishing.
    Abandoned,
}

/// The role of a caller.
#[derive(Debug)]
pub enum Join {
    /// Make the origin request and finish the guard.
    Leader(FillGuard),
    /// Wait with [`wait`].
    Follower(watch::Receiver<Fill>),
}

/// Tracks fills in flight, one per key.
#[derive(Debug, Default)]
pub struct Coalescer {
    inflight: Mutex<HashMap<String, watch::Receiver<Fill>>>,
}

impl Coalescer {
    /// A coalescer with nothing in flight.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Joins the fill for `key`, becoming its leader if none runs.
    pub fn join(self: &Arc<Self>, key: &str) -> Join {
        let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = map.get(key) {
            return Join::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(Fill::Pending);
        map.insert(key.to_string(), rx);
        Join::Leader(FillGuard {
            coalescer: Arc::clone(self),
            key: key.to_string(),
            tx: Some(tx),
        })
    }

    /// Number of fills in flight.
    pub fn in_flight(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// Held by the leader of a fill; dropping it unfinished abandons the fill.
#[derive(Debug)]
pub struct FillGuard {
    coalescer: Arc<Coalescer>,
    key: String,
    tx: Option<watch::Sender<Fill>>,
}

impl FillGuard {
    /// Publishes the outcome to every follower.
    pub fn finish(mut self, fill: Fill) {
        self.release(fill);
    }

    fn release(&mut self, fill: Fill) {
        if let Some(tx) = self.tx.take() {
            self.coalescer
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&self.key);
            tx.send_replace(fill);
        }
    }
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        self.release(Fill::Abandoned);
    }
}

/// Waits up to `timeout` for the leader's outcome; `None` on timeout.
pub async fn wait(mut rx: watch::Receiver<Fill>, timeout: Duration) -> Option<Fill> {
    let waited = tokio::time::timeout(timeout, async {
        loop {
            {
                let current = rx.borrow_and_update();
                if !matches!(*current, Fill::Pending) {
                    return current.clone();
                }
            }
            if rx.changed().await.is_err() {
                return Fill::Abandoned;
            }
        }
    })
    .await;
    waited.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_leader_many_followers() {
        let c = Coalescer::new();
        let Join::Leader(guard) = c.join("k") else {
            panic!("first caller leads")
        };
        let followers: Vec<_> = (0..50)
            .map(|_| match c.join("k") {
                Join::Follower(rx) => tokio::spawn(wait(rx, Duration::from_secs(5))),
                Join::Leader(_) => panic!("only one leader"),
            })
            .collect();
        guard.finish(Fill::NotStored);
        for f in followers {
            assert!(matches!(f.await.unwrap(), Some(Fill::NotStored)));
        }
        assert_eq!(c.in_flight(), 0);
        assert!(matches!(c.join("k"), Join::Leader(_)));
    }

    #[tokio::test]
    async fn dropped_leader_abandons_and_waits_are_bounded() {
        let c = Coalescer::new();
        let guard = c.join("k");
        let Join::Follower(rx) = c.join("k") else {
            panic!()
        };
        tokio::time::pause();
        assert!(wait(rx.clone(), Duration::from_millis(100)).await.is_none());
        drop(guard);
        assert!(matches!(
            wait(rx, Duration::from_millis(100)).await,
            Some(Fill::Abandoned)
        ));
        assert_eq!(c.in_flight(), 0);
    }
}
