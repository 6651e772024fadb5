//! Freed connection memory given back to the system.
//!
//! glibc's allocator keeps what a program frees for its next allocations
//! and returns to the system only the free space at the top of its heaps.
//! A connection's buffers are freed in the middle, between allocations that
//! live on (other connections, the cache), so after ten thousand clients
//! went idle or left, their pages stayed resident: the memory was free but
//! the process still held it. `malloc_trim` hands back every whole free page
//! of every arena.
//!
//! It walks and locks each arena in turn, so it runs only after many
//! connections released their buffers ([`TRIM_AFTER`]), at most once per
//! [`CHECK_EVERY`], on a blocking thread.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// How many connections must have released their buffers (parked or
/// closed) since the last trim for the next one to run: a thousand
/// connections' buffers are up to 16 MiB.
pub const TRIM_AFTER: usize = 1_000;

/// How often the count is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Connections that released their buffers since the last look.
static RELEASED: AtomicUsize = AtomicUsize::new(0);

/// A connection released its buffers.
pub(crate) fn released() {
    RELEASED.fetch_add(1, Relaxed);
}

/// Whether enough was released since the last trim to trim again.
fn due(released: usize) -> bool {
    released >= TRIM_AFTER
}

/// Looks at the count every [`CHECK_EVERY`] and trims when it is due; runs
/// until dropped.
pub(crate) async fn give_back() {
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = 0;
    loop {
        every.tick().await;
        pending += RELEASED.swap(0, Relaxed);
        if !due(pending) {
            continue;
        }
        pending = 0;
        let started = std::time::Instant::now();
        let gave = tokio::task::spawn_blocking(trim).await.unwrap_or(false);
        tracing::debug!(gave, took = ?started.elapsed(), "freed memory given back");
    }
}

/// `malloc_trim(0)`: true when memory went back to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() -> bool {
    // SAFETY: malloc_trim takes no pointer and has no precondition; glibc
    // serializes it with every other call into the allocator.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators (musl, jemalloc's own decay) give memory back
/// themselves or have no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_after_many_connections_released_their_buffers() {
        assert!(!due(0));
        assert!(!due(TRIM_AFTER - 1));
        assert!(due(TRIM_AFTER));
    }
}
