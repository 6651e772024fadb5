//! A real example origin for Rampart: the seed applications' endpoints over
//! SQLite with generated data of realistic size, doing real queries (no
//! sleeps pretending to be work). `rampart demo` runs it behind a gateway;
//! `rampart demo --origin-only` runs it alone for other tools.
//!
//! One module per seed application: event registration (000), banking
//! (001), education (002), membership cards (003) and the event manager
//! (004). When told where the gateway's admin listener is, writes send the
//! domain events the gateway's config maps to purges.

pub mod app;
pub mod banking;
pub mod db;
pub mod education;
pub mod event_manager;
pub mod event_registration;
pub mod membership_cards;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::task::JoinHandle;

pub use crate::app::{App, EventSink};
use crate::db::Db;

/// The applications the origin can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// Seed 000.
    EventRegistration,
    /// Seed 001.
    Banking,
    /// Seed 002.
    Education,
    /// Seed 003.
    MembershipCards,
    /// Seed 004.
    EventManager,
}

impl AppKind {
    /// Every application, in seed order.
    pub const ALL: [AppKind; 5] = [
        AppKind::EventRegistration,
        AppKind::Banking,
        AppKind::Education,
        AppKind::MembershipCards,
        AppKind::EventManager,
    ];

    /// Parses a name used on the command line (or the seed's number).
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == name || a.seed() == name)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|a| a.name()).collect();
                format!("unknown app {name:?}; available: {}", names.join(", "))
            })
    }

    /// Its name: the folder of its example under `examples/`.
    pub fn name(self) -> &'static str {
        match self {
            AppKind::EventRegistration => "event-registration",
            AppKind::Banking => "banking",
            AppKind::Education => "education",
            AppKind::MembershipCards => "membership-cards",
            AppKind::EventManager => "event-manager",
        }
    }

    /// The number of its seed guide.
    pub fn seed(self) -> &'static str {
        match self {
            AppKind::EventRegistration => "000",
            AppKind::Banking => "001",
            AppKind::Education => "002",
            AppKind::MembershipCards => "003",
            AppKind::EventManager => "004",
        }
    }

    /// The load profile `rampart demo` runs unless told otherwise.
    pub fn main_scenario(self) -> &'static str {
        match self {
            AppKind::EventRegistration => "registration-spike",
            AppKind::Banking => "load-test",
            AppKind::Education => "vus-100",
            AppKind::MembershipCards => "member-lookup",
            AppKind::EventManager => "api-benchmark",
        }
    }
}

/// A running origin.
pub struct Origin {
    /// Its address.
    pub addr: SocketAddr,
    /// Rows generated: registrations (000), accounts (001), students (002),
    /// members (003) or events (004).
    pub rows: usize,
    requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
    _app: Arc<App>,
}

impl Origin {
    /// Database connections in use now (0 when the origin is idle).
    pub fn busy(&self) -> usize {
        self._app.db.busy()
    }

    /// Takes the origin's database offline or brings it back (an outage
    /// drill: queries fail with 503 while it is off).
    pub fn set_database_available(&self, available: bool) {
        self._app.db.set_available(available);
    }

    /// Domain events the origin has emitted so far.
    pub fn events_emitted(&self) -> u64 {
        self._app.emitted()
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops serving.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Generates the data for `app` at `scale` (1.0 = the guide's full size) in
/// a database file under the system's temporary directory, and serves it on
/// `listen`.
pub async fn start(
    app: AppKind,
    scale: f64,
    listen: SocketAddr,
    events: Option<EventSink>,
) -> Result<Origin, String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "rampart-demo-{}-{}-{}.sqlite",
        app.name(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let db = Db::create(&path, 4).map_err(|e| format!("database {}: {}", path.display(), e.0))?;
    let setup = Arc::clone(&db);
    let rows = tokio::task::spawn_blocking(move || match app {
        AppKind::EventRegistration => event_registration::generate(&setup, scale),
        AppKind::Banking => banking::generate(&setup, scale),
        AppKind::Education => education::generate(&setup, scale),
        AppKind::MembershipCards => membership_cards::generate(&setup, scale),
        AppKind::EventManager => event_manager::generate(&setup, scale),
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("generating data: {}", e.0))?;
    let state = Arc::new(App::new(db, events));
    let requests = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&requests);
    let router = match app {
        AppKind::EventRegistration => event_registration::router(Arc::clone(&state)),
        AppKind::Banking => banking::router(Arc::clone(&state)),
        AppKind::Education => education::router(Arc::clone(&state)),
        AppKind::MembershipCards => membership_cards::router(Arc::clone(&state)),
        AppKind::EventManager => event_manager::router(Arc::clone(&state)),
    }
    .layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            counter.fetch_add(1, Ordering::Relaxed);
            next.run(req)
        },
    ));
    // The backlog a real app server has, so that the users' first burst of
    // connections is not dropped at the origin.
    let listener = rampart_edge::listener::bind(listen)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(Origin {
        addr,
        rows,
        requests,
        task,
        _app: state,
    })
}
