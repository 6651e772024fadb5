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
//! It walks and locks each arena in turn and makes a system call for each
//! free stretch of pages (37 ms after ten thousand connections went idle,
//! 7 ms after they closed, measured on 2 cores), so it runs only when it
//! has something to give back: when at least [`TRIM_AFTER`] connections
//! released their buffers (parked or closed) and the allocator's free
//! space grew by [`TRIM_GROWTH`] over its lowest since the last trim. A
//! server whose connections come and go steadily reuses what they free,
//! its free space does not grow, and it never trims. Checked every
//! [`CHECK_EVERY`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// How many connections must have released their buffers since the last
/// trim for the next one to run.
pub const TRIM_AFTER: usize = 1_000;

/// How much the allocator's free space must have grown over its lowest
/// since the last trim for the next one to run: about a thousand
/// connections' buffers.
pub const TRIM_GROWTH: usize = 16 << 20;

/// How often the counts are looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Connections that released their buffers since the last look.
static RELEASED: AtomicUsize = AtomicUsize::new(0);

/// A connection released its buffers.
pub(crate) fn released() {
    RELEASED.fetch_add(1, Relaxed);
}

/// Whether to trim: enough connections released their buffers, and the
/// allocator holds that much more free space than at its lowest since the
/// last trim.
fn due(released: usize, free: usize, lowest: usize) -> bool {
    released >= TRIM_AFTER && free >= lowest.saturating_add(TRIM_GROWTH)
}

/// Whether a [`give_back`] loop runs in this process.
static LOOKING: AtomicBool = AtomicBool::new(false);

/// Clears [`LOOKING`] when its loop ends, however it ends.
struct Looking;

impl Drop for Looking {
    fn drop(&mut self) {
        LOOKING.store(false, Relaxed);
    }
}

/// Looks at the counts every [`CHECK_EVERY`] and trims when it is due;
/// runs until dropped. One per process: the counts are the process's, so
/// a second call while one runs (two gateways in one process) returns at
/// once.
pub async fn give_back() {
    if LOOKING.swap(true, Relaxed) {
        return;
    }
    let _looking = Looking;
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = 0;
    let mut lowest = free_bytes();
    loop {
        every.tick().await;
        let released = RELEASED.swap(0, Relaxed);
        if released == 0 {
            continue;
        }
        pending += released;
        let free = free_bytes();
        lowest = lowest.min(free);
        if !due(pending, free, lowest) {
            continue;
        }
        // Trimmed pages stay counted as free: from here, only more counts.
        (pending, lowest) = (0, free);
        let started = std::time::Instant::now();
        let gave = tokio::task::spawn_blocking(trim).await.unwrap_or(false);
        tracing::debug!(gave, free, took = ?started.elapsed(), "freed memory given back");
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

/// The allocator's free space in its arenas (`mallinfo2`'s `fordblks`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn free_bytes() -> usize {
    // SAFETY: mallinfo2 takes nothing and returns a plain struct by value.
    unsafe { libc::mallinfo2() }.fordblks
}

/// Other allocators (musl, jemalloc's own decay) give memory back
/// themselves or have no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn free_bytes() -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_when_many_connections_freed_memory_that_stayed_free() {
        let mib = 1 << 20;
        // A thousand connections parked and 20 MiB more is free: trim.
        assert!(due(TRIM_AFTER, 30 * mib, 10 * mib));
        // Fewer connections: their buffers are not worth a trim.
        assert!(!due(TRIM_AFTER - 1, 30 * mib, 10 * mib));
        // Connections came and went, but what they freed was used again.
        assert!(!due(50 * TRIM_AFTER, 12 * mib, 10 * mib));
        // Used since the last trim, and not yet freed again.
        assert!(!due(TRIM_AFTER, 10 * mib, 10 * mib));
    }
}
