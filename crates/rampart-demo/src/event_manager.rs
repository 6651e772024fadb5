//! Seed 004, the event manager: events (list, detail with guest counts,
//! creation, update) and their guests (by event, registration).
//!
//! Generated data is deterministic, so scenario files can name real rows:
//! event `n` (1-based) is `active` unless `n % 10 == 0` (`draft`), holds
//! [`GUESTS_PER_EVENT`] guests of its capacity of 1,000, every third of
//! them checked in; guest tickets are `T{event:06}-{k:04}`. Writes emit the
//! guide's events: `event.updated` and `guest.registered` (and
//! `event.created`, which changes the list).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::{params, OptionalExtension};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::{db_error, problem, App};
use crate::db::{Db, DbError};

/// Events at scale 1.
pub const FULL_SCALE: f64 = 5_000.0;

/// Guests generated per event (500,000 at scale 1).
pub const GUESTS_PER_EVENT: i64 = 100;

/// Seats per generated event.
const CAPACITY: i64 = 1_000;

const CITIES: [&str; 6] = ["Lisbon", "Nairobi", "Toronto", "Osaka", "Berlin", "Lima"];

/// Creates the schema (with the guide's indexes) and the data for `scale`.
pub fn generate(db: &Db, scale: f64) -> Result<usize, DbError> {
    let n = ((FULL_SCALE * scale).round() as i64).max(50);
    db.setup(|c| {
        c.execute_batch(
            "CREATE TABLE events(id INTEGER PRIMARY KEY, name TEXT NOT NULL, date TEXT NOT NULL,
                 venue_name TEXT NOT NULL, venue_city TEXT NOT NULL, status TEXT NOT NULL,
                 capacity INTEGER NOT NULL, description TEXT NOT NULL, updated_at TEXT NOT NULL);
             CREATE TABLE guests(id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL, name TEXT NOT NULL,
                 email TEXT NOT NULL, ticket_number TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
                 registered_at TEXT NOT NULL);
             CREATE INDEX idx_events_name ON events(name);
             CREATE INDEX idx_events_date ON events(date);
             CREATE INDEX idx_events_status_date ON events(status, date);
             CREATE INDEX idx_guests_event ON guests(event_id, id);
             CREATE INDEX idx_guests_email ON guests(email);
             CREATE INDEX idx_guests_event_status ON guests(event_id, status);",
        )?;
        let tx = c.transaction()?;
        {
            let mut e = tx.prepare("INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?;
            let mut g = tx.prepare("INSERT INTO guests VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
            for id in 1..=n {
                let city = CITIES[id as usize % CITIES.len()];
                e.execute(params![
                    id,
                    format!("Event {id} in {city}"),
                    format!("2027-{:02}-{:02}", id % 12 + 1, id % 28 + 1),
                    format!("Hall {}", id % 40 + 1),
                    city,
                    if id % 10 == 0 { "draft" } else { "active" },
                    CAPACITY,
                    format!("Event {id}: talks, workshops and a closing reception in {city}."),
                    "2026-11-01 00:00:00",
                ])?;
                for k in 1..=GUESTS_PER_EVENT {
                    g.execute(params![
                        (id - 1) * GUESTS_PER_EVENT + k,
                        id,
                        format!("Guest {k} of event {id}"),
                        format!("guest{k}.e{id}@example.com"),
                        format!("T{id:06}-{k:04}"),
                        if k % 3 == 0 { "checked_in" } else { "registered" },
                        "2026-10-01 00:00:00",
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(n as usize)
    })
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/events", get(events).post(create_event))
        .route("/api/events/{id}", get(event).put(update_event))
        .route(
            "/api/events/{id}/guests",
            get(guests_of_event).post(register_guest),
        )
        .route("/api/guests", get(guests))
        .with_state(app)
}

async fn health(State(app): State<Arc<App>>) -> Response {
    match app
        .db
        .with(|c| c.query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0)))
        .await
    {
        Ok(events) => Json(json!({ "status": "ok", "events": events })).into_response(),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<u32>,
    limit: Option<u32>,
    status: Option<String>,
    event_id: Option<i64>,
}

impl ListQuery {
    /// `(page, limit, offset)`: 20 a page by default, at most 100.
    fn window(&self) -> Result<(u32, u32, u32), &'static str> {
        let limit = self.limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err("limit must be 1 to 100");
        }
        let page = self.page.unwrap_or(1).max(1);
        Ok((page, limit, (page - 1).saturating_mul(limit)))
    }
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    Ok(json!({
        "id": r.get::<_, i64>(0)?,
        "name": r.get::<_, String>(1)?,
        "date": r.get::<_, String>(2)?,
        "venue": { "name": r.get::<_, String>(3)?, "city": r.get::<_, String>(4)? },
        "status": r.get::<_, String>(5)?,
        "capacity": r.get::<_, i64>(6)?,
    }))
}

const EVENT: &str = "SELECT id, name, date, venue_name, venue_city, status, capacity FROM events";

/// `GET /api/events?status=active&page=&limit=`: by date (the guide's
/// `{status: 1, date: 1}` index).
async fn events(State(app): State<Arc<App>>, Query(q): Query<ListQuery>) -> Response {
    let (page, limit, offset) = match q.window() {
        Ok(w) => w,
        Err(m) => return problem(StatusCode::BAD_REQUEST, m),
    };
    let status = q.status.unwrap_or_else(|| "active".into());
    let listed = app
        .db
        .with(move |c| {
            c.prepare_cached(&format!(
                "{EVENT} WHERE status = ?1 ORDER BY date, id LIMIT ?2 OFFSET ?3"
            ))?
            .query_map(params![status, limit, offset], event_row)?
            .collect::<Result<Vec<_>, _>>()
        })
        .await;
    match listed {
        Ok(rows) => Json(json!({ "data": rows, "page": page, "limit": limit })).into_response(),
        Err(e) => db_error(e),
    }
}

/// One event with its guest counts (the guide's `guests { total checked_in }`).
fn load_event(c: &rusqlite::Connection, id: i64) -> rusqlite::Result<Option<Value>> {
    let Some((mut event, description)) = c
        .query_row(
            "SELECT id, name, date, venue_name, venue_city, status, capacity, description
             FROM events WHERE id = ?1",
            [id],
            |r| Ok((event_row(r)?, r.get::<_, String>(7)?)),
        )
        .optional()?
    else {
        return Ok(None);
    };
    let (total, checked_in): (i64, i64) = c.query_row(
        "SELECT count(*), coalesce(sum(status = 'checked_in'), 0) FROM guests WHERE event_id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    event["description"] = description.into();
    event["guests"] = json!({ "total": total, "checked_in": checked_in });
    Ok(Some(event))
}

async fn event(State(app): State<Arc<App>>, Path(id): Path<i64>) -> Response {
    match app.db.with(move |c| load_event(c, id)).await {
        Ok(Some(e)) => Json(e).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "no such event"),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFields {
    name: Option<String>,
    date: Option<String>,
    venue: Option<Venue>,
    status: Option<String>,
    capacity: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Venue {
    name: String,
    city: String,
}

impl EventFields {
    fn check(&self) -> Result<(), &'static str> {
        let bad = Err;
        if self
            .name
            .as_ref()
            .is_some_and(|n| n.trim().is_empty() || n.len() > 200)
        {
            return bad("name must be 1 to 200 characters");
        }
        if self.date.as_ref().is_some_and(|d| !is_date(d)) {
            return bad("date must be YYYY-MM-DD");
        }
        if self
            .status
            .as_ref()
            .is_some_and(|s| !["active", "draft", "cancelled"].contains(&s.as_str()))
        {
            return bad("status must be active, draft or cancelled");
        }
        if self.capacity.is_some_and(|c| !(1..=1_000_000).contains(&c)) {
            return bad("capacity must be 1 to 1,000,000");
        }
        Ok(())
    }
}

fn is_date(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// `POST /api/events`: 201 with the new event; emits `event.created`.
async fn create_event(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let Ok(f) = serde_json::from_slice::<EventFields>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the body must be {\"name\", \"date\", \"venue\": {\"name\", \"city\"}, \"capacity\"}",
        );
    };
    if let Err(m) = f.check() {
        return problem(StatusCode::BAD_REQUEST, m);
    }
    let (Some(name), Some(date), Some(venue)) = (f.name, f.date, f.venue) else {
        return problem(StatusCode::BAD_REQUEST, "name, date and venue are required");
    };
    let status = f.status.unwrap_or_else(|| "draft".into());
    let capacity = f.capacity.unwrap_or(CAPACITY);
    let made = app
        .db
        .with(move |c| {
            c.execute(
                "INSERT INTO events(name, date, venue_name, venue_city, status, capacity, description, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', datetime('now'))",
                params![name, date, venue.name, venue.city, status, capacity],
            )?;
            load_event(c, c.last_insert_rowid())
        })
        .await;
    match made {
        Ok(Some(e)) => {
            app.emit("event.created", json!({ "id": e["id"] }));
            (StatusCode::CREATED, Json(e)).into_response()
        }
        Ok(None) => problem(StatusCode::INTERNAL_SERVER_ERROR, "event vanished"),
        Err(e) => db_error(e),
    }
}

/// `PUT /api/events/{id}`: changes the given fields; emits `event.updated`.
async fn update_event(
    State(app): State<Arc<App>>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(f) = serde_json::from_slice::<EventFields>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the body names some of name, date, venue {name, city}, status, capacity",
        );
    };
    if let Err(m) = f.check() {
        return problem(StatusCode::BAD_REQUEST, m);
    }
    let updated = app
        .db
        .with(move |c| {
            let (venue_name, venue_city) = f.venue.map(|v| (v.name, v.city)).unzip();
            let changed = c.execute(
                "UPDATE events SET name = coalesce(?2, name), date = coalesce(?3, date),
                     venue_name = coalesce(?4, venue_name), venue_city = coalesce(?5, venue_city),
                     status = coalesce(?6, status), capacity = coalesce(?7, capacity),
                     updated_at = datetime('now')
                 WHERE id = ?1",
                params![id, f.name, f.date, venue_name, venue_city, f.status, f.capacity],
            )?;
            if changed == 0 {
                return Ok(None);
            }
            load_event(c, id)
        })
        .await;
    match updated {
        Ok(Some(e)) => {
            app.emit("event.updated", json!({ "id": id }));
            Json(e).into_response()
        }
        Ok(None) => problem(StatusCode::NOT_FOUND, "no such event"),
        Err(e) => db_error(e),
    }
}

/// Guests of one event, newest registrations last (the guide's covered
/// query: `select('name email status')`).
async fn list_guests(app: &Arc<App>, event_id: i64, q: &ListQuery) -> Response {
    let (page, limit, offset) = match q.window() {
        Ok(w) => w,
        Err(m) => return problem(StatusCode::BAD_REQUEST, m),
    };
    let status = q.status.clone().unwrap_or_default();
    let listed = app
        .db
        .with(move |c| {
            if c.query_row("SELECT 1 FROM events WHERE id = ?1", [event_id], |_| Ok(()))
                .optional()?
                .is_none()
            {
                return Ok(None);
            }
            c.prepare_cached(
                "SELECT id, name, email, ticket_number, status FROM guests
                 WHERE event_id = ?1 AND (?2 = '' OR status = ?2) ORDER BY id LIMIT ?3 OFFSET ?4",
            )?
            .query_map(params![event_id, status, limit, offset], |r| {
                Ok(json!({
                    "id": r.get::<_, i64>(0)?,
                    "name": r.get::<_, String>(1)?,
                    "email": r.get::<_, String>(2)?,
                    "ticket_number": r.get::<_, String>(3)?,
                    "status": r.get::<_, String>(4)?,
                }))
            })?
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
        })
        .await;
    match listed {
        Ok(Some(rows)) => {
            Json(json!({ "event_id": event_id, "data": rows, "page": page, "limit": limit }))
                .into_response()
        }
        Ok(None) => problem(StatusCode::NOT_FOUND, "no such event"),
        Err(e) => db_error(e),
    }
}

async fn guests_of_event(
    State(app): State<Arc<App>>,
    Path(id): Path<i64>,
    Query(q): Query<ListQuery>,
) -> Response {
    list_guests(&app, id, &q).await
}

/// `GET /api/guests?event_id=…`: the guide's `/api/guests` benchmark endpoint.
async fn guests(State(app): State<Arc<App>>, Query(q): Query<ListQuery>) -> Response {
    let Some(event_id) = q.event_id else {
        return problem(StatusCode::BAD_REQUEST, "event_id is required");
    };
    list_guests(&app, event_id, &q).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGuest {
    name: String,
    email: String,
}

enum Registered {
    Done(Value),
    NoEvent,
    Full,
}

/// `POST /api/events/{id}/guests`: 201 with a ticket, 409 when the event
/// is full; emits `guest.registered`.
async fn register_guest(
    State(app): State<Arc<App>>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(g) = serde_json::from_slice::<NewGuest>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the body must be {\"name\": \"…\", \"email\": \"…\"}",
        );
    };
    if g.name.trim().is_empty() || !g.email.contains('@') || g.email.len() > 200 {
        return problem(
            StatusCode::BAD_REQUEST,
            "a name and an email address are needed",
        );
    }
    let done = app
        .db
        .with(move |c| {
            let tx = crate::db::write_tx(c)?;
            let Some(capacity) = tx
                .query_row("SELECT capacity FROM events WHERE id = ?1", [id], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?
            else {
                return Ok(Registered::NoEvent);
            };
            let taken: i64 = tx.query_row(
                "SELECT count(*) FROM guests WHERE event_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            if taken >= capacity {
                return Ok(Registered::Full);
            }
            let guest_id: i64 =
                tx.query_row("SELECT coalesce(max(id), 0) + 1 FROM guests", [], |r| {
                    r.get(0)
                })?;
            let ticket = format!("T{id:06}-G{guest_id}");
            tx.execute(
                "INSERT INTO guests VALUES (?1, ?2, ?3, ?4, ?5, 'registered', datetime('now'))",
                params![guest_id, id, g.name, g.email, ticket],
            )?;
            tx.commit()?;
            Ok(Registered::Done(json!({
                "id": guest_id,
                "event_id": id,
                "name": g.name,
                "email": g.email,
                "ticket_number": ticket,
                "status": "registered",
            })))
        })
        .await;
    match done {
        Ok(Registered::Done(guest)) => {
            app.emit("guest.registered", json!({ "id": id }));
            (StatusCode::CREATED, Json(guest)).into_response()
        }
        Ok(Registered::NoEvent) => problem(StatusCode::NOT_FOUND, "no such event"),
        Ok(Registered::Full) => problem(StatusCode::CONFLICT, "the event is full"),
        Err(e) => db_error(e),
    }
}
