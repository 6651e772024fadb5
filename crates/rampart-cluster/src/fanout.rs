//! Purges reach every node. A node that accepts a purge applies it to its
//! own L1 and to L2, then records it in Redis: `INCR PREFIX:purge-epoch`
//! gives it a number, it is pushed on a capped log (`PREFIX:purge-log`, the
//! last [`LOG_LEN`]) and published on `PREFIX:purge` for the other nodes'
//! L1s.
//!
//! A node may miss a message (disconnect, restart, partition), so messages
//! are only the fast path. Every node also reads the epoch every
//! `purge_sync / 2`: when it is ahead of the last purge the node applied in
//! order, the node replays the missing purges from the log (purges are
//! idempotent), or flushes its L1 when the log no longer reaches back that
//! far or Redis was reset (the epoch went backwards). A node that has not
//! managed to read the epoch for `purge_sync` stops using its L1 (requests go
//! to the origin, coalesced) until it can, then flushes it. So no node serves
//! purged content for longer than `purge_sync` after the purge was accepted.
//!
//! This module only talks to Redis: what arrives (another node's purge, an
//! application's event, a flush) goes over a channel to the one owner of the
//! cache tiers, the gateway's invalidator, and is acknowledged once applied,
//! so the bookkeeping here never runs ahead of what the tiers hold. Time is
//! the injected clock's.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use rampart_cache::Purge;
use rampart_core::Clock;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::redis::{Op, Redis};

/// Purges kept in the log for nodes that missed their message.
pub const LOG_LEN: isize = 1000;

/// A purge as sent between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Message {
    node: String,
    epoch: u64,
    purge: Purge,
}

/// Why this node's whole memory tier must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushReason {
    /// No successful read of the epoch for longer than `purge_sync`.
    OutOfTouch,
    /// The epoch went backwards: Redis was reset.
    EpochBackwards,
    /// More purges were missed than the log holds.
    LogTooShort,
}

impl FlushReason {
    /// Stable label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FlushReason::OutOfTouch => "out of touch with redis for longer than purge_sync",
            FlushReason::EpochBackwards => "the purge epoch went backwards (redis was reset)",
            FlushReason::LogTooShort => "missed more purges than the log holds",
        }
    }
}

/// What arrives from other nodes and applications.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// Another node's purge (live, or replayed from the log): apply it to
    /// this node's memory tier only.
    Peer(Purge),
    /// An application's event published on `PREFIX:events`, as
    /// `{"name": "event.updated", "data": {"id": 7}}`: purge what it names
    /// everywhere (every node receives it; purges are idempotent).
    Event {
        /// The event's name.
        name: String,
        /// Its JSON data, as bytes.
        data: Vec<u8>,
    },
    /// Empty this node's memory tier.
    Flush(FlushReason),
}

/// One [`Incoming`] and the acknowledgement the owner sends once applied.
#[derive(Debug)]
pub struct Delivery {
    /// What to apply.
    pub incoming: Incoming,
    done: oneshot::Sender<()>,
}

impl Delivery {
    /// Says the delivery was applied.
    pub fn done(self) {
        let _ = self.done.send(());
    }
}

/// The purges this node has applied: every one up to `upto`, and some
/// beyond it that arrived out of order (two nodes numbering purges at once
/// may publish them in either order).
#[derive(Debug, Default)]
struct Applied {
    /// `None` until the epoch is first read.
    upto: Option<u64>,
    /// Applied above `upto`, at most [`LOG_LEN`] of them.
    ahead: BTreeSet<u64>,
}

impl Applied {
    /// Notes the purge numbered `epoch` as applied; false when it already
    /// was (the caller then leaves it).
    fn mark(&mut self, epoch: u64) -> bool {
        let Some(upto) = self.upto else {
            // Before the first read of the epoch: nothing to compare with.
            return true;
        };
        if epoch <= upto || !self.ahead.insert(epoch) {
            return false;
        }
        let mut upto = upto;
        while self.ahead.remove(&(upto + 1)) {
            upto += 1;
        }
        self.upto = Some(upto);
        while self.ahead.len() > LOG_LEN as usize {
            self.ahead.pop_first();
        }
        true
    }

    /// Starts counting afresh from `epoch` (after a flush, or at start).
    fn reset(&mut self, epoch: u64) {
        self.upto = Some(epoch);
        self.ahead.clear();
    }
}

/// The Redis keys of the purge sequence.
#[derive(Debug)]
struct Keys {
    epoch: String,
    log: String,
    purges: String,
    events: String,
}

/// This node's part in the purge fan-out.
pub struct Fanout {
    redis: Arc<Redis>,
    keys: Keys,
    /// This node's random id (its own messages are ignored).
    node: String,
    /// Which purges were applied here, so none is applied twice.
    applied: Mutex<Applied>,
    /// When the epoch was last read successfully, on `clock`.
    synced_at: Mutex<SystemTime>,
    /// The bound: no successful read for this long makes L1 unusable.
    bound: Duration,
    clock: Arc<dyn Clock>,
    /// Serialises replays and flushes.
    replay: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("node", &self.node)
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

/// The owner of the tiers stopped listening (the gateway is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OwnerGone;

impl Fanout {
    /// A node that has just started (L1 is empty: nothing to distrust),
    /// distrusting its L1 once `bound` passes on `clock` without a read of
    /// the epoch.
    pub fn new(redis: Arc<Redis>, bound: Duration, clock: Arc<dyn Clock>) -> Self {
        let p = redis.prefix().to_string();
        Self {
            keys: Keys {
                epoch: format!("{p}:purge-epoch"),
                log: format!("{p}:purge-log"),
                purges: format!("{p}:purge"),
                events: format!("{p}:events"),
            },
            redis,
            node: format!("{:016x}", rand::random::<u64>()),
            applied: Mutex::new(Applied::default()),
            synced_at: Mutex::new(clock.now()),
            bound,
            clock,
            replay: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether L1 may be used: the epoch was read within the bound.
    pub fn l1_usable(&self) -> bool {
        let synced_at = *self.synced_at.lock().unwrap_or_else(|p| p.into_inner());
        self.clock
            .now()
            .duration_since(synced_at)
            .unwrap_or_default()
            <= self.bound
    }

    fn applied(&self) -> std::sync::MutexGuard<'_, Applied> {
        self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a purge accepted (and applied) here and sends it to the
    /// other nodes.
    pub async fn publish(&self, purge: &Purge) {
        let epoch_key = &self.keys.epoch;
        let Some(epoch) = self
            .redis
            .run(Op::Sync, |mut c| async move {
                redis::cmd("INCR")
                    .arg(epoch_key)
                    .query_async::<u64>(&mut c)
                    .await
            })
            .await
        else {
            return;
        };
        let message = Message {
            node: self.node.clone(),
            epoch,
            purge: purge.clone(),
        };
        let Ok(text) = serde_json::to_string(&message) else {
            return;
        };
        let (log_key, channel) = (&self.keys.log, &self.keys.purges);
        self.redis
            .run(Op::Sync, |mut c| async move {
                redis::pipe()
                    .cmd("LPUSH")
                    .arg(log_key)
                    .arg(&text)
                    .ignore()
                    .cmd("LTRIM")
                    .arg(log_key)
                    .arg(0)
                    .arg(LOG_LEN - 1)
                    .ignore()
                    .cmd("PUBLISH")
                    .arg(channel)
                    .arg(&text)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
        self.applied().mark(epoch);
    }

    /// Reads the epoch once and catches up: replays missed purges or
    /// flushes, through `owner`.
    pub async fn check(&self, owner: &mpsc::Sender<Delivery>) {
        let _ = self.check_once(owner).await;
    }

    async fn check_once(&self, owner: &mpsc::Sender<Delivery>) -> Result<(), OwnerGone> {
        let _serial = self.replay.lock().await;
        let was_usable = self.l1_usable();
        let epoch_key = &self.keys.epoch;
        let Some(epoch) = self
            .redis
            .run(Op::Sync, |mut c| async move {
                redis::cmd("GET")
                    .arg(epoch_key)
                    .query_async::<Option<u64>>(&mut c)
                    .await
            })
            .await
        else {
            return Ok(());
        };
        let epoch = epoch.unwrap_or(0);
        let upto = self.applied().upto;
        match upto {
            // First read since start: L1 was empty, so nothing is owed.
            None => self.applied().reset(epoch),
            Some(_) if !was_usable => self.flush(owner, FlushReason::OutOfTouch, epoch).await?,
            Some(applied) if epoch < applied => {
                self.flush(owner, FlushReason::EpochBackwards, epoch)
                    .await?;
            }
            Some(applied) if epoch > applied => {
                let Some(missed) = self.missed(applied, epoch).await else {
                    return Ok(());
                };
                if missed.len() as u64 == epoch - applied {
                    self.replay(owner, &missed).await?;
                } else {
                    self.flush(owner, FlushReason::LogTooShort, epoch).await?;
                }
            }
            Some(_) => {}
        }
        *self.synced_at.lock().unwrap_or_else(|p| p.into_inner()) = self.clock.now();
        Ok(())
    }

    /// The purges of the log numbered in `(applied, epoch]`, newest first;
    /// `None` when Redis does not answer.
    async fn missed(&self, applied: u64, epoch: u64) -> Option<Vec<Message>> {
        let log_key = &self.keys.log;
        let log: Vec<String> = self
            .redis
            .run(Op::Sync, |mut c| async move {
                redis::cmd("LRANGE")
                    .arg(log_key)
                    .arg(0)
                    .arg(LOG_LEN - 1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Some(
            log.iter()
                .filter_map(|m| serde_json::from_str::<Message>(m).ok())
                .filter(|m| m.epoch > applied && m.epoch <= epoch)
                .collect(),
        )
    }

    /// Applies missed purges, oldest first; those the subscription delivered
    /// meanwhile (or out of order before) are applied already.
    async fn replay(
        &self,
        owner: &mpsc::Sender<Delivery>,
        missed: &[Message],
    ) -> Result<(), OwnerGone> {
        let mut replayed = 0;
        for m in missed.iter().rev() {
            if self.applied().mark(m.epoch) && m.node != self.node {
                deliver(owner, Incoming::Peer(m.purge.clone())).await?;
                replayed += 1;
            }
        }
        if replayed > 0 {
            tracing::info!(
                purges = replayed,
                "replayed purges missed while disconnected"
            );
        }
        Ok(())
    }

    async fn flush(
        &self,
        owner: &mpsc::Sender<Delivery>,
        why: FlushReason,
        epoch: u64,
    ) -> Result<(), OwnerGone> {
        deliver(owner, Incoming::Flush(why)).await?;
        self.applied().reset(epoch);
        Ok(())
    }

    /// Runs until `stop`: listens for other nodes' purges and applications'
    /// events and checks the epoch every half bound, handing what arrives to
    /// `owner`.
    pub async fn run(self: Arc<Self>, owner: mpsc::Sender<Delivery>, stop: CancellationToken) {
        let period = (self.bound / 2).max(Duration::from_millis(10));
        let checker = {
            let (fanout, owner, stop) = (Arc::clone(&self), owner.clone(), stop.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        _ = tick.tick() => fanout.check(&owner).await,
                    }
                }
            })
        };
        tokio::select! {
            () = stop.cancelled() => {}
            () = self.listen(&owner) => {}
        }
        let _ = checker.await;
    }

    /// Subscribes and hands over what arrives; reconnects by itself.
    async fn listen(&self, owner: &mpsc::Sender<Delivery>) {
        loop {
            let subscribed = async {
                let mut pubsub = self.redis.client().get_async_pubsub().await.ok()?;
                pubsub.subscribe(&self.keys.purges).await.ok()?;
                pubsub.subscribe(&self.keys.events).await.ok()?;
                Some(pubsub)
            };
            let Ok(Some(mut pubsub)) = tokio::time::timeout(
                self.redis.timeout().max(Duration::from_millis(500)),
                subscribed,
            )
            .await
            else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            // Anything published while unsubscribed is caught up from the log.
            if self.check_once(owner).await.is_err() {
                return;
            }
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let Ok(text) = msg.get_payload::<String>() else {
                    continue;
                };
                let incoming = if msg.get_channel_name() == self.keys.events {
                    match app_event(&text) {
                        Ok(event) => event,
                        Err(e) => {
                            tracing::warn!(error = %e, "ignored an event published on redis");
                            continue;
                        }
                    }
                } else {
                    match serde_json::from_str::<Message>(&text) {
                        Ok(m) if self.applied().mark(m.epoch) && m.node != self.node => {
                            Incoming::Peer(m.purge)
                        }
                        _ => continue,
                    }
                };
                if deliver(owner, incoming).await.is_err() {
                    return;
                }
            }
            tracing::warn!("purge subscription lost; reconnecting");
        }
    }
}

/// Hands `incoming` to the owner and waits until it is applied.
async fn deliver(owner: &mpsc::Sender<Delivery>, incoming: Incoming) -> Result<(), OwnerGone> {
    let (done, applied) = oneshot::channel();
    owner
        .send(Delivery { incoming, done })
        .await
        .map_err(|_| OwnerGone)?;
    applied.await.map_err(|_| OwnerGone)
}

/// An application's event: `{"name": "...", "data": {...}}` (data optional).
fn app_event(text: &str) -> Result<Incoming, serde_json::Error> {
    #[derive(Deserialize)]
    struct AppEvent {
        name: String,
        #[serde(default)]
        data: serde_json::Value,
    }
    let ev: AppEvent = serde_json::from_str(text)?;
    let data = if ev.data.is_null() {
        serde_json::json!({})
    } else {
        ev.data
    };
    Ok(Incoming::Event {
        name: ev.name,
        data: serde_json::to_vec(&data)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_purge_is_applied_once_whatever_order_it_arrives_in() {
        let mut a = Applied::default();
        assert!(a.mark(3), "before the epoch is read, everything applies");
        a.reset(4);
        assert!(!a.mark(4) && !a.mark(2), "at or below the start");
        // 6 is published before 5 by another node, then 5 arrives.
        assert!(a.mark(6));
        assert_eq!(a.upto, Some(4));
        assert!(!a.mark(6), "6 arrives again (from the log)");
        assert!(a.mark(5));
        assert_eq!(a.upto, Some(6), "5 and 6 in order now");
        assert!(a.ahead.is_empty());
        assert!(!a.mark(5) && !a.mark(6));
        // A gap that never fills keeps at most LOG_LEN numbers above it.
        for e in 8..8 + LOG_LEN as u64 + 10 {
            assert!(a.mark(e));
        }
        assert_eq!(a.ahead.len(), LOG_LEN as usize);
        a.reset(2000);
        assert!(a.ahead.is_empty());
        assert!(a.mark(2001));
    }

    #[test]
    fn app_events_carry_their_data() {
        assert_eq!(
            app_event(r#"{"name": "event.updated", "data": {"id": 7}}"#).unwrap(),
            Incoming::Event {
                name: "event.updated".into(),
                data: br#"{"id":7}"#.to_vec()
            }
        );
        assert_eq!(
            app_event(r#"{"name": "kpi"}"#).unwrap(),
            Incoming::Event {
                name: "kpi".into(),
                data: b"{}".to_vec()
            }
        );
        assert!(app_event("not json").is_err());
    }
}
