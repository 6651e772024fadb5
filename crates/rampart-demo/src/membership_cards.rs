//! Seed 003, the digital membership-card system: member lookup by ID
//! number, card data generation for one member, and batch generation for up
//! to 100 members.
//!
//! Generated data is deterministic, so scenario files can name real rows:
//! member `n` (1-based) has ID number `ID{n:08}`, tier `gold` when
//! `n % 10 == 0`, `silver` when `n % 10` is 1–3, else `standard`, and card
//! number `MC-{n:08}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rusqlite::{params, OptionalExtension};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::{db_error, problem, App};
use crate::db::{Db, DbError};

/// Members at scale 1 ("100,000 members").
pub const FULL_SCALE: f64 = 100_000.0;

/// Fewest members generated at any scale: the 20,000 the load profile's
/// users look up (examples/membership-cards/scenarios/members.csv).
pub const MIN_MEMBERS: i64 = 20_000;

/// Most members one batch may name (the guide's "Batch Size: Up to 100").
pub const MAX_BATCH: usize = 100;

/// Creates the schema and the data for `scale` (1.0 = 100,000 members; at
/// least [`MIN_MEMBERS`]).
pub fn generate(db: &Db, scale: f64) -> Result<usize, DbError> {
    let n = ((FULL_SCALE * scale).round() as i64).max(MIN_MEMBERS);
    db.setup(|c| {
        c.execute_batch(
            "CREATE TABLE members(id INTEGER PRIMARY KEY, id_number TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
                 email TEXT NOT NULL, tier TEXT NOT NULL, joined_at TEXT NOT NULL, expires_at TEXT NOT NULL);
             CREATE TABLE cards(member_id INTEGER PRIMARY KEY, card_number TEXT NOT NULL, generated_at TEXT NOT NULL);",
        )?;
        let tx = c.transaction()?;
        {
            let mut m = tx.prepare("INSERT INTO members VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
            for id in 1..=n {
                let tier = match id % 10 {
                    0 => "gold",
                    1..=3 => "silver",
                    _ => "standard",
                };
                m.execute(params![
                    id,
                    format!("ID{id:08}"),
                    format!("Member {id}"),
                    format!("member{id}@example.org"),
                    tier,
                    format!("20{:02}-{:02}-01", 15 + id % 10, id % 12 + 1),
                    format!("2027-{:02}-01", id % 12 + 1),
                ])?;
            }
        }
        tx.commit()?;
        Ok(n as usize)
    })
}

/// The routes of the guide ("Optimized API Endpoints").
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/optimized-cards/member/{id_number}", get(member))
        .route(
            "/api/v1/optimized-cards/generate-data/{member_id}",
            post(generate_card),
        )
        .route("/api/v1/optimized-cards/batch-generate", post(batch))
        .with_state(app)
}

async fn health(State(app): State<Arc<App>>) -> Response {
    match app
        .db
        .with(|c| c.query_row("SELECT count(*) FROM members", [], |r| r.get::<_, i64>(0)))
        .await
    {
        Ok(members) => Json(json!({ "status": "ok", "members": members })).into_response(),
        Err(e) => db_error(e),
    }
}

fn member_json(r: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    Ok(json!({
        "id": r.get::<_, i64>(0)?,
        "id_number": r.get::<_, String>(1)?,
        "name": r.get::<_, String>(2)?,
        "email": r.get::<_, String>(3)?,
        "tier": r.get::<_, String>(4)?,
        "joined_at": r.get::<_, String>(5)?,
        "expires_at": r.get::<_, String>(6)?,
    }))
}

const MEMBER: &str = "SELECT id, id_number, name, email, tier, joined_at, expires_at FROM members";

async fn member(State(app): State<Arc<App>>, Path(id_number): Path<String>) -> Response {
    let found = app
        .db
        .with(move |c| {
            c.query_row(
                &format!("{MEMBER} WHERE id_number = ?1"),
                [&id_number],
                member_json,
            )
            .optional()
        })
        .await;
    match found {
        Ok(Some(m)) => Json(m).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "no member with this ID number"),
        Err(e) => db_error(e),
    }
}

/// The card of one member: its data, a card number and the QR payload the
/// card shows; recorded in `cards` (generating again refreshes it).
fn card(c: &rusqlite::Connection, member_id: i64) -> rusqlite::Result<Option<Value>> {
    let Some(member) = c
        .query_row(&format!("{MEMBER} WHERE id = ?1"), [member_id], member_json)
        .optional()?
    else {
        return Ok(None);
    };
    let number = format!("MC-{member_id:08}");
    c.execute(
        "INSERT INTO cards VALUES (?1, ?2, datetime('now'))
         ON CONFLICT(member_id) DO UPDATE SET generated_at = excluded.generated_at",
        params![member_id, number],
    )?;
    let qr = format!(
        "rampart-demo:card:{number}:{}:{}",
        member["id_number"].as_str().unwrap_or_default(),
        member["expires_at"].as_str().unwrap_or_default()
    );
    Ok(Some(
        json!({ "card_number": number, "qr": qr, "member": member }),
    ))
}

async fn generate_card(State(app): State<Arc<App>>, Path(member_id): Path<String>) -> Response {
    let Ok(member_id) = member_id.parse::<i64>() else {
        return problem(StatusCode::BAD_REQUEST, "member id must be a number");
    };
    match app.db.with(move |c| card(c, member_id)).await {
        Ok(Some(card)) => Json(card).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "no such member"),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    member_ids: Vec<i64>,
}

async fn batch(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let Ok(batch) = serde_json::from_slice::<Batch>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the body must be {\"member_ids\": [1, 2, …]}",
        );
    };
    if batch.member_ids.is_empty() || batch.member_ids.len() > MAX_BATCH {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("a batch names 1 to {MAX_BATCH} members"),
        );
    }
    let ids = batch.member_ids;
    let made = app
        .db
        .with(move |c| {
            let tx = crate::db::write_tx(c)?;
            let mut cards = Vec::new();
            let mut missing = Vec::new();
            for id in ids {
                match card(&tx, id)? {
                    Some(card) => cards.push(card),
                    None => missing.push(id),
                }
            }
            tx.commit()?;
            Ok((cards, missing))
        })
        .await;
    match made {
        Ok((cards, missing)) => {
            Json(json!({ "generated": cards.len(), "cards": cards, "missing": missing }))
                .into_response()
        }
        Err(e) => db_error(e),
    }
}
