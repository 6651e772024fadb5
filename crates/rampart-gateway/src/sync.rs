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

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::invalidate::{Purge, Source};
use crate::redis::Op;
use crate::state::Gateway;

/// Purges kept in the log for nodes that missed their message.
pub const LOG_LEN: isize = 1000;

/// A purge as sent between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Message {
    node: String,
    epoch: u64,
    purge: Purge,
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

/// This node's view of the purge sequence.
#[derive(Debug)]
pub struct SyncState {
    /// This node's random id (its own messages are ignored).
    pub node: String,
    /// Which purges were applied here, so none is applied twice.
    applied: Mutex<Applied>,
    /// When the epoch was last read successfully.
    synced_at: Mutex<Instant>,
    /// The bound: no successful read for this long makes L1 unusable.
    bound: Duration,
    /// Serialises replays and flushes.
    replay: tokio::sync::Mutex<()>,
}

impl SyncState {
    /// A node that has just started (L1 is empty: nothing to distrust).
    pub fn new(bound: Duration) -> Self {
        Self {
            node: format!("{:016x}", rand::random::<u64>()),
            applied: Mutex::new(Applied::default()),
            synced_at: Mutex::new(Instant::now()),
            bound,
            replay: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether L1 may be used: the epoch was read within the bound.
    pub fn l1_usable(&self) -> bool {
        self.synced_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            <= self.bound
    }

    fn applied(&self) -> std::sync::MutexGuard<'_, Applied> {
        self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes the purge numbered `epoch` as applied here; false when it
    /// already was (the caller then leaves it).
    fn mark(&self, epoch: u64) -> bool {
        let mut a = self.applied();
        let Some(upto) = a.upto else {
            // Before the first read of the epoch: nothing to compare with.
            return true;
        };
        if epoch <= upto || !a.ahead.insert(epoch) {
            return false;
        }
        let mut upto = upto;
        while a.ahead.remove(&(upto + 1)) {
            upto += 1;
        }
        a.upto = Some(upto);
        while a.ahead.len() > LOG_LEN as usize {
            a.ahead.pop_first();
        }
        true
    }

    /// Starts counting afresh from `epoch` (after a flush, or at start).
    fn reset(&self, epoch: u64) {
        let mut a = self.applied();
        a.upto = Some(epoch);
        a.ahead.clear();
    }
}

fn keys(gw: &Gateway) -> Option<(String, String, String)> {
    let p = gw.redis.as_ref()?.prefix().to_string();
    Some((
        format!("{p}:purge-epoch"),
        format!("{p}:purge-log"),
        format!("{p}:purge"),
    ))
}

/// Records a purge accepted here and sends it to the other nodes.
pub async fn publish(gw: &Gateway, purge: &Purge) {
    let (Some(redis), Some(sync), Some((epoch_key, log_key, channel))) =
        (gw.redis.as_ref(), gw.sync.as_ref(), keys(gw))
    else {
        return;
    };
    let Some(epoch) = redis
        .run(Op::Sync, |mut c| async move {
            redis::cmd("INCR")
                .arg(&epoch_key)
                .query_async::<u64>(&mut c)
                .await
        })
        .await
    else {
        return;
    };
    let message = Message {
        node: sync.node.clone(),
        epoch,
        purge: purge.clone(),
    };
    let Ok(text) = serde_json::to_string(&message) else {
        return;
    };
    redis
        .run(Op::Sync, |mut c| async move {
            redis::pipe()
                .cmd("LPUSH")
                .arg(&log_key)
                .arg(&text)
                .ignore()
                .cmd("LTRIM")
                .arg(&log_key)
                .arg(0)
                .arg(LOG_LEN - 1)
                .ignore()
                .cmd("PUBLISH")
                .arg(&channel)
                .arg(&text)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await;
    sync.mark(epoch);
}

fn flush(gw: &Gateway, why: &str) {
    let n = gw.l1.purge_all();
    gw.metrics.purged(Source::Flush.as_str(), n);
    tracing::warn!(
        keys = n,
        why,
        "memory cache flushed: purges may have been missed"
    );
}

/// Reads the epoch once and catches up: replays missed purges or flushes.
pub async fn check(gw: &Gateway) {
    let (Some(redis), Some(sync), Some((epoch_key, log_key, _))) =
        (gw.redis.as_ref(), gw.sync.as_ref(), keys(gw))
    else {
        return;
    };
    let _serial = sync.replay.lock().await;
    let was_usable = sync.l1_usable();
    let Some(epoch) = redis
        .run(Op::Sync, |mut c| async move {
            redis::cmd("GET")
                .arg(&epoch_key)
                .query_async::<Option<u64>>(&mut c)
                .await
        })
        .await
    else {
        return;
    };
    let epoch = epoch.unwrap_or(0);
    let upto = sync.applied().upto;
    match upto {
        // First read since start: L1 was empty, so nothing is owed.
        None => sync.reset(epoch),
        Some(_) if !was_usable => {
            flush(gw, "out of touch with redis for longer than purge_sync");
            sync.reset(epoch);
        }
        Some(applied) if epoch < applied => {
            flush(gw, "the purge epoch went backwards (redis was reset)");
            sync.reset(epoch);
        }
        Some(applied) if epoch > applied => {
            let log: Option<Vec<String>> = redis
                .run(Op::Sync, |mut c| async move {
                    redis::cmd("LRANGE")
                        .arg(&log_key)
                        .arg(0)
                        .arg(LOG_LEN - 1)
                        .query_async(&mut c)
                        .await
                })
                .await;
            let Some(log) = log else { return };
            let missed: Vec<Message> = log
                .iter()
                .filter_map(|m| serde_json::from_str::<Message>(m).ok())
                .filter(|m| m.epoch > applied && m.epoch <= epoch)
                .collect();
            if missed.len() as u64 == epoch - applied {
                // Oldest first; those the subscription delivered meanwhile (or
                // out of order before) are applied already.
                let mut replayed = 0;
                for m in missed.iter().rev() {
                    if sync.mark(m.epoch) && m.node != sync.node {
                        let purged = m.purge.apply_local(gw);
                        gw.metrics.purged(Source::Peer.as_str(), purged.total());
                        replayed += 1;
                    }
                }
                if replayed > 0 {
                    tracing::info!(
                        purges = replayed,
                        "replayed purges missed while disconnected"
                    );
                }
            } else {
                flush(gw, "missed more purges than the log holds");
                sync.reset(epoch);
            }
        }
        Some(_) => {}
    }
    *sync.synced_at.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
}

/// Runs until `stop`: listens for other nodes' purges and checks the epoch
/// every half bound.
pub async fn run(gw: Arc<Gateway>, stop: CancellationToken) {
    let Some(sync) = gw.sync.as_ref() else { return };
    let period = (sync.bound / 2).max(Duration::from_millis(10));
    let checker = {
        let (gw, stop) = (Arc::clone(&gw), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => check(&gw).await,
                }
            }
        })
    };
    tokio::select! {
        () = stop.cancelled() => {}
        () = listen(&gw) => {}
    }
    let _ = checker.await;
}

/// An application's event published on `PREFIX:events` as
/// `{"name": "event.updated", "data": {"id": 7}}`. Every node receives it
/// and purges (L1, L2, and the purge log, so that a node that missed it
/// catches up from the others' records); purges are idempotent.
async fn app_event(gw: &Gateway, text: &str) {
    #[derive(Deserialize)]
    struct AppEvent {
        name: String,
        #[serde(default)]
        data: serde_json::Value,
    }
    let parsed = serde_json::from_str::<AppEvent>(text)
        .map_err(|e| e.to_string())
        .and_then(|ev| {
            let data = if ev.data.is_null() {
                serde_json::json!({})
            } else {
                ev.data
            };
            let body = serde_json::to_vec(&data).map_err(|e| e.to_string())?;
            crate::invalidate::event_purge(&gw.events, &ev.name, &body)
                .map(|p| (ev.name, p))
                .map_err(|e| e.to_string())
        });
    match parsed {
        Ok((name, purge)) => {
            gw.metrics.event(&name);
            crate::invalidate::purge(gw, &purge, Source::Pubsub).await;
        }
        Err(e) => tracing::warn!(error = e, "ignored an event published on redis"),
    }
}

/// Subscribes and applies other nodes' purges; reconnects by itself.
async fn listen(gw: &Gateway) {
    let (Some(redis), Some(sync), Some((_, _, channel))) =
        (gw.redis.as_ref(), gw.sync.as_ref(), keys(gw))
    else {
        return;
    };
    let events_channel = format!("{}:events", redis.prefix());
    loop {
        let subscribed = async {
            let mut pubsub = redis.client().get_async_pubsub().await.ok()?;
            pubsub.subscribe(&channel).await.ok()?;
            pubsub.subscribe(&events_channel).await.ok()?;
            Some(pubsub)
        };
        let Ok(Some(mut pubsub)) =
            tokio::time::timeout(redis.timeout().max(Duration::from_millis(500)), subscribed).await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        // Anything published while unsubscribed is caught up from the log.
        check(gw).await;
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let Ok(text) = msg.get_payload::<String>() else {
                continue;
            };
            if msg.get_channel_name() == events_channel {
                app_event(gw, &text).await;
                continue;
            }
            let Ok(m) = serde_json::from_str::<Message>(&text) else {
                continue;
            };
            if sync.mark(m.epoch) && m.node != sync.node {
                let purged = m.purge.apply_local(gw);
                gw.metrics.purged(Source::Peer.as_str(), purged.total());
            }
        }
        tracing::warn!("purge subscription lost; reconnecting");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_purge_is_applied_once_whatever_order_it_arrives_in() {
        let sync = SyncState::new(Duration::from_secs(1));
        assert!(sync.mark(3), "before the epoch is read, everything applies");
        sync.reset(4);
        assert!(!sync.mark(4) && !sync.mark(2), "at or below the start");
        // 6 is published before 5 by another node, then 5 arrives.
        assert!(sync.mark(6));
        assert_eq!(sync.applied().upto, Some(4));
        assert!(!sync.mark(6), "6 arrives again (from the log)");
        assert!(sync.mark(5));
        assert_eq!(sync.applied().upto, Some(6), "5 and 6 in order now");
        assert!(sync.applied().ahead.is_empty());
        assert!(!sync.mark(5) && !sync.mark(6));
        // A gap that never fills keeps at most LOG_LEN numbers above it.
        for e in 8..8 + LOG_LEN as u64 + 10 {
            assert!(sync.mark(e));
        }
        assert_eq!(sync.applied().ahead.len(), LOG_LEN as usize);
        sync.reset(2000);
        assert!(sync.applied().ahead.is_empty());
        assert!(sync.mark(2001));
    }
}
