//! SQLite behind a small pool: a few connections to one WAL-mode database
//! file, each used on the blocking pool so queries never stall the runtime.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

/// A pool of connections to one database file, removed when dropped. Like
/// an application's connection pool: a request waits at most
/// [`CHECKOUT_TIMEOUT`] for a connection, then fails as busy; a request
/// abandoned while waiting never reaches the database.
pub struct Db {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<tokio::sync::Semaphore>,
    size: usize,
    path: PathBuf,
    unavailable: AtomicBool,
}

/// Longest wait for a free connection.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

impl Drop for Db {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// A query failed.
#[derive(Debug)]
pub struct DbError(pub String);

impl DbError {
    /// Whether every connection was busy.
    pub fn is_busy(&self) -> bool {
        self.0 == BUSY
    }

    /// Whether the database was taken offline ([`Db::set_available`]).
    pub fn is_unavailable(&self) -> bool {
        self.0 == UNAVAILABLE
    }
}

const BUSY: &str = "every database connection is busy";
const UNAVAILABLE: &str = "the database is unavailable";

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError(e.to_string())
    }
}

impl Db {
    /// Opens `size` connections to a new database at `path`.
    pub fn create(path: &Path, size: usize) -> Result<Arc<Self>, DbError> {
        let _ = std::fs::remove_file(path);
        let mut conns = Vec::new();
        for _ in 0..size.max(1) {
            let c = Connection::open(path)?;
            c.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA cache_size = -65536;",
            )?;
            conns.push(c);
        }
        Ok(Arc::new(Self {
            permits: Arc::new(tokio::sync::Semaphore::new(conns.len())),
            size: conns.len(),
            idle: Mutex::new(conns),
            path: path.to_path_buf(),
            unavailable: AtomicBool::new(false),
        }))
    }

    /// Runs `f` with a free connection on the blocking pool.
    pub async fn with<T, F>(self: &Arc<Self>, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
        T: Send + 'static,
    {
        if self.unavailable.load(Ordering::Relaxed) {
            return Err(DbError(UNAVAILABLE.into()));
        }
        let permit =
            tokio::time::timeout(CHECKOUT_TIMEOUT, Arc::clone(&self.permits).acquire_owned())
                .await
                .map_err(|_| DbError(BUSY.into()))?
                .map_err(|_| DbError(BUSY.into()))?;
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut conn = db
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .ok_or_else(|| DbError(BUSY.into()))?;
            let result = f(&mut conn).map_err(DbError::from);
            // Back to the pool even when the request was abandoned meanwhile.
            db.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            drop(permit);
            result
        })
        .await
        .map_err(|e| DbError(e.to_string()))?
    }

    /// Runs `f` with a connection, here and now (for setup, before serving).
    pub fn setup<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, DbError> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let conn = idle.first_mut().ok_or_else(|| DbError(BUSY.into()))?;
        f(conn).map_err(DbError::from)
    }

    /// Takes the database offline (every query fails at once, as when the
    /// server is down) or brings it back: for outage drills.
    pub fn set_available(&self, available: bool) {
        self.unavailable.store(!available, Ordering::Relaxed);
    }

    /// Connections in use now.
    pub fn busy(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).len();
        self.size.saturating_sub(idle)
    }
}

/// Starts a transaction that reads and then writes: it takes the write lock
/// up front (`BEGIN IMMEDIATE`), so two such transactions queue on the busy
/// timeout instead of one failing when it tries to write after reading a
/// snapshot the other has since changed.
pub fn write_tx(c: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}
