//! `[server] reload_on_change`: the config file is read on that interval
//! and reloaded when its contents changed (an edit, a `git pull`, a
//! Kubernetes ConfigMap update), exactly as SIGHUP would.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::reload::Gateway;

/// How often the setting itself is looked at while it is off.
const IDLE: Duration = Duration::from_secs(1);

fn fingerprint(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

/// Watches `path` for as long as the gateway runs.
pub(crate) fn spawn(gateway: &Arc<Gateway>, path: PathBuf) {
    let weak: Weak<Gateway> = Arc::downgrade(gateway);
    let stop = gateway.stop.clone();
    gateway.tracker.spawn(async move {
        let mut seen = fingerprint(&path);
        loop {
            let Some(gateway) = weak.upgrade() else {
                return;
            };
            let interval = gateway.reload_interval().await;
            let wait = interval.unwrap_or(IDLE);
            drop(gateway);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            if interval.is_none() {
                continue;
            }
            let now = fingerprint(&path);
            if now == seen || now.is_none() {
                continue;
            }
            seen = now;
            let Some(gateway) = weak.upgrade() else {
                return;
            };
            tracing::info!(file = %path.display(), "config file changed: reloading");
            let _ = gateway.reload_file().await;
        }
    });
}
