//! The ways a terminal and a service manager ask a command to stop: Ctrl-C
//! (SIGINT) and, on Unix, SIGTERM. `rampart load` and `rampart demo
//! --origin-only` wait for them here; `rampart serve` has its own set (it
//! also reloads on SIGHUP and reopens its log on SIGUSR1).

/// Ctrl-C and SIGTERM, listened for from creation on.
pub struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Starts listening (within a runtime).
    pub fn new() -> Self {
        Self {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    /// Until the next Ctrl-C or SIGTERM: `true`, or `false` when neither
    /// can be listened for any more.
    pub async fn next(&mut self) -> bool {
        #[cfg(unix)]
        if let Some(term) = self.term.as_mut() {
            return tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok(),
                r = term.recv() => r.is_some(),
            };
        }
        tokio::signal::ctrl_c().await.is_ok()
    }
}
