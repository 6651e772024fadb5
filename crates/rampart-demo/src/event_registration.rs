//! Seed 000, the event-registration platform: KPI dashboard counts (an
//! aggregate over every registration), pricing, sponsors, certificate
//! verification, the paid-registration list, payment confirmation,
//! certificate issue, pricing updates, QR scans at the accreditation desk,
//! and the offline QR list. Writes tell the gateway what changed
//! (`PaymentConfirmed`, `CertificateIssued`, `PricingUpdated`).
//!
//! Generated data is deterministic, so scenario files can name real rows:
//! registration `n` belongs to event `n % 20 + 1`, is `Paid` when `n % 10 < 7`
//! (`Pending` for 7 and 8, `Failed` for 9), has QR code `QR{n:09}`, and, when
//! paid and `n % 3 == 0`, certificate `CERT-{n:09}`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rusqlite::{params, OptionalExtension};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::app::{db_error, problem, App};
use crate::db::{Db, DbError};

/// Registrations at scale 1.
pub const FULL_SCALE: f64 = 1_000_000.0;
const EVENTS: i64 = 20;

/// Creates the schema and the data for `scale` (1.0 = one million
/// registrations).
pub fn generate(db: &Db, scale: f64) -> Result<usize, DbError> {
    let n = ((FULL_SCALE * scale).round() as i64).max(100);
    db.setup(|c| {
        c.execute_batch(
            "CREATE TABLE events(id INTEGER PRIMARY KEY, name TEXT NOT NULL, starts_at TEXT NOT NULL);
             CREATE TABLE pricing(id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL, tier TEXT NOT NULL, price_cents INTEGER NOT NULL);
             CREATE TABLE sponsors(id INTEGER PRIMARY KEY, name TEXT NOT NULL, level TEXT NOT NULL, logo_url TEXT NOT NULL);
             CREATE TABLE registrations(id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL,
                 payment_status TEXT NOT NULL, amount_cents INTEGER NOT NULL, qr_code TEXT NOT NULL, attendance_status TEXT NOT NULL);
             CREATE TABLE certificates(id TEXT PRIMARY KEY, registration_id INTEGER NOT NULL UNIQUE, issued_at TEXT NOT NULL);",
        )?;
        let tx = c.transaction()?;
        {
            let mut ev = tx.prepare("INSERT INTO events VALUES (?1, ?2, ?3)")?;
            let mut pr = tx.prepare("INSERT INTO pricing(event_id, tier, price_cents) VALUES (?1, ?2, ?3)")?;
            for e in 1..=EVENTS {
                ev.execute(params![e, format!("Conference {e}"), format!("2027-{:02}-15", e % 12 + 1)])?;
                for (t, tier) in ["early-bird", "regular", "late", "student"].iter().enumerate() {
                    pr.execute(params![e, tier, 15000 + 5000 * t as i64])?;
                }
            }
            let mut sp = tx.prepare("INSERT INTO sponsors(name, level, logo_url) VALUES (?1, ?2, ?3)")?;
            for s in 1..=30 {
                let level = ["gold", "silver", "bronze"][s % 3];
                sp.execute(params![format!("Sponsor {s}"), level, format!("https://cdn.example/logos/{s}.svg")])?;
            }
            let mut reg = tx.prepare("INSERT INTO registrations VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'Absent')")?;
            let mut cert = tx.prepare("INSERT INTO certificates VALUES (?1, ?2, '2026-11-01T10:00:00Z')")?;
            for id in 1..=n {
                let status = match id % 10 {
                    0..=6 => "Paid",
                    7 | 8 => "Pending",
                    _ => "Failed",
                };
                reg.execute(params![
                    id,
                    id % EVENTS + 1,
                    format!("Attendee {id}"),
                    format!("attendee{id}@example.org"),
                    status,
                    15000 + 5000 * (id % 4),
                    format!("QR{id:09}"),
                ])?;
                if status == "Paid" && id % 3 == 0 {
                    cert.execute(params![format!("CERT-{id:09}"), id])?;
                }
            }
        }
        tx.commit()?;
        c.execute_batch(
            "CREATE INDEX reg_status ON registrations(payment_status, id);
             CREATE INDEX reg_event ON registrations(event_id, id);
             CREATE UNIQUE INDEX reg_qr ON registrations(qr_code);
             ANALYZE;",
        )?;
        Ok(n as usize)
    })
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/kpi", get(kpi))
        .route("/api/pricing", get(pricing))
        .route("/api/pricing/{id}", put(update_price))
        .route("/api/sponsors", get(sponsors))
        .route("/api/verify/{certificate_id}", get(verify))
        .route("/api/registrations", get(registrations))
        .route(
            "/api/registrations/{id}/confirm-payment",
            post(confirm_payment),
        )
        .route("/api/certificates", post(issue_certificate))
        .route("/api/qr/scan", post(scan))
        .route("/api/qr/offline", get(offline_qr))
        .with_state(app)
}

async fn health(State(app): State<Arc<App>>) -> Response {
    match app
        .db
        .with(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
        .await
    {
        Ok(_) => Json(json!({ "status": "ok" })).into_response(),
        Err(e) => db_error(e),
    }
}

/// `GET /api/kpi`: counts and revenue by payment status over every
/// registration (the guide's `GROUP BY payment_status`), and certificates.
async fn kpi(State(app): State<Arc<App>>) -> Response {
    let result = app
        .db
        .with(|c| {
            let mut st = c.prepare_cached(
                "SELECT payment_status, COUNT(*), SUM(amount_cents) FROM registrations GROUP BY payment_status ORDER BY payment_status",
            )?;
            let rows = st
                .query_map([], |r| {
                    Ok(json!({ "payment_status": r.get::<_, String>(0)?, "count": r.get::<_, i64>(1)?, "amount_cents": r.get::<_, i64>(2)? }))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let certificates: i64 = c.query_row("SELECT COUNT(*) FROM certificates", [], |r| r.get(0))?;
            Ok(json!({ "by_status": rows, "certificates_issued": certificates }))
        })
        .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => db_error(e),
    }
}

async fn pricing(State(app): State<Arc<App>>) -> Response {
    let result = app
        .db
        .with(|c| {
            let mut st = c.prepare_cached(
                "SELECT p.id, p.event_id, e.name, p.tier, p.price_cents FROM pricing p JOIN events e ON e.id = p.event_id ORDER BY p.event_id, p.id",
            )?;
            let rows = st
                .query_map([], |r| {
                    Ok(json!({ "id": r.get::<_, i64>(0)?, "event_id": r.get::<_, i64>(1)?, "event": r.get::<_, String>(2)?,
                               "tier": r.get::<_, String>(3)?, "price_cents": r.get::<_, i64>(4)? }))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(json!({ "pricing": rows }))
        })
        .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
struct PriceUpdate {
    price_cents: i64,
}

/// `PUT /api/pricing/{id}`: emits `PricingUpdated`.
async fn update_price(
    State(app): State<Arc<App>>,
    Path(id): Path<i64>,
    Json(body): Json<PriceUpdate>,
) -> Response {
    if body.price_cents < 0 {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "price_cents must not be negative",
        );
    }
    let price = body.price_cents;
    match app
        .db
        .with(move |c| {
            c.execute(
                "UPDATE pricing SET price_cents = ?1 WHERE id = ?2",
                params![price, id],
            )
        })
        .await
    {
        Ok(0) => problem(StatusCode::NOT_FOUND, format!("no price {id}")),
        Ok(_) => {
            app.emit("PricingUpdated", json!({ "pricing_id": id }));
            Json(json!({ "id": id, "price_cents": price })).into_response()
        }
        Err(e) => db_error(e),
    }
}

async fn sponsors(State(app): State<Arc<App>>) -> Response {
    let result = app
        .db
        .with(|c| {
            let mut st = c.prepare_cached("SELECT id, name, level, logo_url FROM sponsors ORDER BY level, id")?;
            let rows = st
                .query_map([], |r| {
                    Ok(json!({ "id": r.get::<_, i64>(0)?, "name": r.get::<_, String>(1)?, "level": r.get::<_, String>(2)?, "logo_url": r.get::<_, String>(3)? }))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(json!({ "sponsors": rows }))
        })
        .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => db_error(e),
    }
}

/// `GET /api/verify/{certificate_id}`: a public certificate check.
async fn verify(State(app): State<Arc<App>>, Path(cert): Path<String>) -> Response {
    let result = app
        .db
        .with(move |c| {
            c.query_row(
                "SELECT c.id, c.issued_at, r.name, e.name FROM certificates c JOIN registrations r ON r.id = c.registration_id
                 JOIN events e ON e.id = r.event_id WHERE c.id = ?1",
                [&cert],
                |r| Ok(json!({ "certificate_id": r.get::<_, String>(0)?, "issued_at": r.get::<_, String>(1)?,
                               "attendee": r.get::<_, String>(2)?, "event": r.get::<_, String>(3)?, "valid": true })),
            )
            .optional()
        })
        .await;
    match result {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "no such certificate"),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
}

/// `GET /api/registrations?status=Paid&page=1&per_page=50`.
async fn registrations(State(app): State<Arc<App>>, Query(q): Query<ListQuery>) -> Response {
    let status = q.status.unwrap_or_else(|| "Paid".into());
    if !["Paid", "Pending", "Failed"].contains(&status.as_str()) {
        return problem(StatusCode::BAD_REQUEST, "status is Paid, Pending or Failed");
    }
    let per_page = q.per_page.unwrap_or(50);
    let page = q.page.unwrap_or(1);
    if !(1..=200).contains(&per_page) || page < 1 {
        return problem(
            StatusCode::BAD_REQUEST,
            "page from 1, per_page from 1 to 200",
        );
    }
    let result = app
        .db
        .with(move |c| {
            let mut st = c.prepare_cached(
                "SELECT id, event_id, name, email, amount_cents FROM registrations WHERE payment_status = ?1 ORDER BY id LIMIT ?2 OFFSET ?3",
            )?;
            let rows = st
                .query_map(params![status, per_page, (page - 1) * per_page], |r| {
                    Ok(json!({ "id": r.get::<_, i64>(0)?, "event_id": r.get::<_, i64>(1)?, "name": r.get::<_, String>(2)?,
                               "email": r.get::<_, String>(3)?, "amount_cents": r.get::<_, i64>(4)? }))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let total: i64 = c.query_row("SELECT COUNT(*) FROM registrations WHERE payment_status = ?1", [&status], |r| r.get(0))?;
            Ok(json!({ "status": status, "page": page, "per_page": per_page, "total": total, "registrations": rows }))
        })
        .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => db_error(e),
    }
}

/// `POST /api/registrations/{id}/confirm-payment`: emits `PaymentConfirmed`.
async fn confirm_payment(State(app): State<Arc<App>>, Path(id): Path<i64>) -> Response {
    let result = app
        .db
        .with(move |c| {
            let event: Option<i64> = c
                .query_row(
                    "SELECT event_id FROM registrations WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            if event.is_some() {
                c.execute(
                    "UPDATE registrations SET payment_status = 'Paid' WHERE id = ?1",
                    [id],
                )?;
            }
            Ok(event)
        })
        .await;
    match result {
        Ok(Some(event_id)) => {
            app.emit(
                "PaymentConfirmed",
                json!({ "registration": { "id": id, "event_id": event_id } }),
            );
            Json(json!({ "id": id, "payment_status": "Paid" })).into_response()
        }
        Ok(None) => problem(StatusCode::NOT_FOUND, format!("no registration {id}")),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
struct CertificateRequest {
    registration_id: i64,
}

/// `POST /api/certificates`: issues one for a paid registration; emits
/// `CertificateIssued`.
async fn issue_certificate(
    State(app): State<Arc<App>>,
    Json(body): Json<CertificateRequest>,
) -> Response {
    let id = body.registration_id;
    let result = app
        .db
        .with(move |c| {
            let status: Option<String> = c
                .query_row("SELECT payment_status FROM registrations WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            if status.as_deref() != Some("Paid") {
                return Ok(Err(status.is_none()));
            }
            let cert = format!("CERT-{id:09}");
            c.execute(
                "INSERT INTO certificates VALUES (?1, ?2, datetime('now')) ON CONFLICT(registration_id) DO NOTHING",
                params![cert, id],
            )?;
            Ok(Ok(cert))
        })
        .await;
    match result {
        Ok(Ok(cert)) => {
            app.emit("CertificateIssued", json!({ "certificate_id": cert }));
            (StatusCode::CREATED, Json(json!({ "certificate_id": cert }))).into_response()
        }
        Ok(Err(true)) => problem(StatusCode::NOT_FOUND, format!("no registration {id}")),
        Ok(Err(false)) => problem(
            StatusCode::CONFLICT,
            "only paid registrations get certificates",
        ),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
struct Scan {
    qr_code: String,
}

/// `POST /api/qr/scan`: the accreditation desk checks a QR code in.
async fn scan(State(app): State<Arc<App>>, Json(body): Json<Scan>) -> Response {
    let result = app
        .db
        .with(move |c| {
            let row: Option<(i64, String, String)> = c
                .query_row(
                    "SELECT id, name, payment_status FROM registrations WHERE qr_code = ?1",
                    [&body.qr_code],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some((id, _, status)) = &row {
                if status == "Paid" {
                    c.execute(
                        "UPDATE registrations SET attendance_status = 'Physical' WHERE id = ?1",
                        [id],
                    )?;
                }
            }
            Ok(row)
        })
        .await;
    match result {
        Ok(Some((id, name, status))) => Json(json!({ "registration_id": id, "name": name, "admitted": status == "Paid", "payment_status": status })).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "unknown QR code"),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
struct OfflineQuery {
    event_id: i64,
    page: Option<i64>,
}

/// `GET /api/qr/offline?event_id=1&page=1`: paid registrations' QR codes,
/// 5,000 per page, for tablets that scan without a network.
async fn offline_qr(State(app): State<Arc<App>>, Query(q): Query<OfflineQuery>) -> Response {
    let page = q.page.unwrap_or(1).max(1);
    let event = q.event_id;
    let result = app
        .db
        .with(move |c| {
            let mut st = c.prepare_cached(
                "SELECT qr_code, name FROM registrations WHERE event_id = ?1 AND payment_status = 'Paid' ORDER BY id LIMIT 5000 OFFSET ?2",
            )?;
            let rows: Vec<Value> = st
                .query_map(params![event, (page - 1) * 5000], |r| {
                    Ok(json!([r.get::<_, String>(0)?, r.get::<_, String>(1)?]))
                })?
                .collect::<Result<_, _>>()?;
            Ok(json!({ "event_id": event, "page": page, "codes": rows }))
        })
        .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => db_error(e),
    }
}
