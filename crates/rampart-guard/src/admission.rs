//! Admission control: at most `max_concurrency` requests at once; others wait
//! in a bounded queue released in weighted priority order (the policy is
//! [`crate::priority`]). When the queue is full the lowest class is shed
//! first; a waiter past its timeout, or whose request was dropped (its client
//! went away), leaves the queue at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use std::time::Duration;

use tokio::sync::oneshot;

use crate::priority::{Admit, PriorityQueue};

/// Admission settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Requests let through at once.
    pub max_concurrency: usize,
    /// Requests that may wait.
    pub queue_size: usize,
    /// How long a request may wait.
    pub queue_timeout: Duration,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// The queue was full of requests of its class or above.
    QueueFull,
    /// A more important request took its place in the queue.
    Displaced,
    /// It waited `queue.timeout` (or its route deadline) without a slot.
    Timeout,
}

impl Shed {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Shed::QueueFull => "queue-full",
            Shed::Displaced => "displaced",
            Shed::Timeout => "timeout",
        }
    }
}

struct Waiter {
    id: u64,
    grant: oneshot::Sender<Result<(), Shed>>,
}

struct Inner {
    in_flight: usize,
    queue: PriorityQueue<Waiter>,
}

/// One admission control (the gateway has one per upstream).
pub struct Admission {
    config: Settings,
    inner: Mutex<Inner>,
    next_id: AtomicU64,
}

/// A slot at the upstream, given back (to the next waiter) on drop.
pub struct Permit {
    admission: Arc<Admission>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.release();
    }
}

/// Removes a waiter whose request was abandoned (client gone) from the queue.
struct Waiting<'a> {
    admission: &'a Admission,
    id: u64,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut inner = self.admission.lock();
            let id = self.id;
            inner.queue.remove(|w| w.id == id);
        }
    }
}

impl Admission {
    /// Admission control with one class per weight (most important first).
    pub fn new(config: Settings, weights: &[u32]) -> Arc<Self> {
        Arc::new(Self {
            config,
            inner: Mutex::new(Inner {
                in_flight: 0,
                queue: PriorityQueue::new(config.queue_size, weights.to_vec()),
            }),
            next_id: AtomicU64::new(1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requests the queue holds at most, all classes together.
    pub fn capacity(&self) -> usize {
        self.config.queue_size
    }

    /// Requests waiting now in class `class`.
    pub fn depth(&self, class: usize) -> usize {
        self.lock().queue.len_of(class)
    }

    /// Requests holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    /// Waits for a slot for a request of class `class` (0 is the most
    /// important), at most `queue_timeout` or until `deadline`.
    pub async fn acquire(
        self: &Arc<Self>,
        class: usize,
        deadline: Instant,
    ) -> Result<Permit, Shed> {
        let (tx, mut rx) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut inner = self.lock();
            if inner.in_flight < self.config.max_concurrency {
                inner.in_flight += 1;
                return Ok(Permit {
                    admission: Arc::clone(self),
                });
            }
            match inner.queue.push(class, Waiter { id, grant: tx }) {
                Admit::Queued => {}
                Admit::Displaced(w) => {
                    let _ = w.grant.send(Err(Shed::Displaced));
                }
                Admit::Shed(_) => return Err(Shed::QueueFull),
            }
        }
        let mut waiting = Waiting {
            admission: self,
            id,
            done: false,
        };
        let until = deadline.min(Instant::now() + self.config.queue_timeout);
        let outcome = tokio::time::timeout_at(until.into(), &mut rx).await;
        waiting.done = true;
        match outcome {
            Ok(Ok(Ok(()))) => Ok(Permit {
                admission: Arc::clone(self),
            }),
            Ok(Ok(Err(shed))) => Err(shed),
            Ok(Err(_)) => Err(Shed::Displaced),
            Err(_) => {
                // Timed out. Still queued: leave. Already popped: the grant
                // (sent under the same lock) is in `rx`; a slot is handed back.
                let mut inner = self.lock();
                if inner.queue.remove(|w| w.id == id).is_none() {
                    drop(inner);
                    if let Ok(Ok(())) = rx.try_recv() {
                        self.release();
                    }
                }
                Err(Shed::Timeout)
            }
        }
    }

    /// Gives a slot back: to the next waiter in weighted order, else frees it.
    fn release(&self) {
        let mut inner = self.lock();
        while let Some(waiter) = inner.queue.pop() {
            if waiter.grant.send(Ok(())).is_ok() {
                return;
            }
        }
        inner.in_flight = inner.in_flight.saturating_sub(1);
    }
}
