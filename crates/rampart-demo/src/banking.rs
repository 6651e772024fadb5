//! Seed 001, the banking API: accounts by UUID with their balances, an
//! account's transaction history, transfers between accounts, exchange-rate
//! lookups, account creation and a health check.
//!
//! Generated data is deterministic, so scenario files can name real rows:
//! account `n` (1-based) has UUID [`account_uuid`]`(n)`, belongs to user
//! [`user_uuid`]`(n / 2)`, and holds 1,000,000.00 USD (and EUR when `n` is
//! even). Amounts are integers in minor units (cents). Exchange rates cover
//! every pair of [`ASSETS`] with 48 hourly quotes each.

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

/// Accounts at scale 1 (the guide's "Concurrent Users: 100,000+").
pub const FULL_SCALE: f64 = 100_000.0;

/// The assets accounts hold and rates are quoted for.
pub const ASSETS: [&str; 6] = ["USD", "EUR", "GBP", "CHF", "JPY", "SEK"];

/// Hourly quotes kept per pair.
const QUOTES: i64 = 48;

/// The UUID of generated account `n`.
pub fn account_uuid(n: i64) -> String {
    format!("a0000000-0000-4000-8000-{n:012}")
}

/// The UUID of generated user `n`.
pub fn user_uuid(n: i64) -> String {
    format!("b0000000-0000-4000-8000-{n:012}")
}

/// A price of each asset in USD, to derive consistent cross rates.
fn usd_price(asset: &str) -> f64 {
    match asset {
        "EUR" => 1.08,
        "GBP" => 1.27,
        "CHF" => 1.12,
        "JPY" => 0.0067,
        "SEK" => 0.095,
        _ => 1.0,
    }
}

/// Creates the schema (with the guide's indexes) and the data for `scale`.
pub fn generate(db: &Db, scale: f64) -> Result<usize, DbError> {
    let n = ((FULL_SCALE * scale).round() as i64).max(1_000);
    db.setup(|c| {
        c.execute_batch(
            "CREATE TABLE accounts(id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, user_uuid TEXT NOT NULL,
                 name TEXT NOT NULL, is_active INTEGER NOT NULL, created_at TEXT NOT NULL);
             CREATE TABLE account_balances(account_uuid TEXT NOT NULL, asset_code TEXT NOT NULL,
                 balance INTEGER NOT NULL, PRIMARY KEY(account_uuid, asset_code));
             CREATE TABLE transactions(id INTEGER PRIMARY KEY, from_account TEXT NOT NULL, to_account TEXT NOT NULL,
                 asset_code TEXT NOT NULL, amount INTEGER NOT NULL, created_at TEXT NOT NULL);
             CREATE TABLE exchange_rates(id INTEGER PRIMARY KEY, from_asset TEXT NOT NULL, to_asset TEXT NOT NULL,
                 rate REAL NOT NULL, created_at TEXT NOT NULL);
             CREATE INDEX idx_accounts_user_active ON accounts(user_uuid, is_active);
             CREATE INDEX idx_transactions_from ON transactions(from_account, id DESC);
             CREATE INDEX idx_transactions_to ON transactions(to_account, id DESC);
             CREATE INDEX idx_exchange_rates_lookup ON exchange_rates(from_asset, to_asset, created_at DESC);",
        )?;
        let tx = c.transaction()?;
        {
            let mut a = tx.prepare("INSERT INTO accounts VALUES (?1, ?2, ?3, ?4, 1, ?5)")?;
            let mut b = tx.prepare("INSERT INTO account_balances VALUES (?1, ?2, ?3)")?;
            for id in 1..=n {
                let uuid = account_uuid(id);
                a.execute(params![
                    id,
                    uuid,
                    user_uuid(id / 2),
                    format!("Account {id}"),
                    format!("2025-{:02}-{:02}", id % 12 + 1, id % 28 + 1),
                ])?;
                b.execute(params![uuid, "USD", 100_000_000i64])?;
                if id % 2 == 0 {
                    b.execute(params![uuid, "EUR", 100_000_000i64])?;
                }
            }
            let mut r = tx.prepare(
                "INSERT INTO exchange_rates(from_asset, to_asset, rate, created_at)
                 VALUES (?1, ?2, ?3, datetime('2026-11-20 00:00:00', ?4))",
            )?;
            for from in ASSETS {
                for to in ASSETS.iter().filter(|&&to| to != from) {
                    for h in 0..QUOTES {
                        // A small deterministic wobble around the cross rate.
                        let wobble = 1.0 + ((h * 7 % 11) as f64 - 5.0) / 1000.0;
                        let rate = usd_price(from) / usd_price(to) * wobble;
                        r.execute(params![from, to, rate, format!("+{h} hours")])?;
                    }
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
        .route("/api/accounts", get(list_accounts).post(create_account))
        .route("/api/accounts/{uuid}", get(account))
        .route("/api/accounts/{uuid}/transactions", get(history))
        .route("/api/transfers", axum::routing::post(transfer))
        .route("/api/exchange-rates", get(rates))
        .route("/api/exchange-rates/{from}/{to}", get(rate))
        .with_state(app)
}

/// `GET /api/health`: the guide's shape, `{status, checks, timestamp}`,
/// 200 when the database answers, else 503.
async fn health(State(app): State<Arc<App>>) -> Response {
    let db = app
        .db
        .with(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
        .await;
    let ok = db.is_ok();
    let body = json!({
        "status": if ok { "healthy" } else { "unhealthy" },
        "checks": { "database": { "status": if ok { "ok" } else { "down" } } },
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// An account with its balances (eager loading: one query for both).
fn load_account(c: &rusqlite::Connection, uuid: &str) -> rusqlite::Result<Option<Value>> {
    let Some(mut account) = c
        .query_row(
            "SELECT uuid, user_uuid, name, is_active, created_at FROM accounts WHERE uuid = ?1",
            [uuid],
            |r| {
                Ok(json!({
                    "uuid": r.get::<_, String>(0)?,
                    "user_uuid": r.get::<_, String>(1)?,
                    "name": r.get::<_, String>(2)?,
                    "is_active": r.get::<_, i64>(3)? == 1,
                    "created_at": r.get::<_, String>(4)?,
                }))
            },
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut stmt = c.prepare_cached(
        "SELECT asset_code, balance FROM account_balances WHERE account_uuid = ?1 ORDER BY asset_code",
    )?;
    let balances = stmt
        .query_map([uuid], |r| {
            Ok(json!({ "asset_code": r.get::<_, String>(0)?, "balance": r.get::<_, i64>(1)? }))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    account["balances"] = Value::Array(balances);
    Ok(Some(account))
}

async fn account(State(app): State<Arc<App>>, Path(uuid): Path<String>) -> Response {
    match app.db.with(move |c| load_account(c, &uuid)).await {
        Ok(Some(a)) => Json(a).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "no account with this UUID"),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
struct Page {
    user_uuid: Option<String>,
    page: Option<u32>,
    per_page: Option<u32>,
}

impl Page {
    /// `(limit, offset)`: 50 a page by default, at most 100.
    fn window(&self) -> Result<(u32, u32), &'static str> {
        let per_page = self.per_page.unwrap_or(50);
        if !(1..=100).contains(&per_page) {
            return Err("per_page must be 1 to 100");
        }
        let page = self.page.unwrap_or(1).max(1);
        Ok((per_page, (page - 1).saturating_mul(per_page)))
    }
}

/// `GET /api/accounts?user_uuid=…&page=&per_page=`: a user's accounts.
async fn list_accounts(State(app): State<Arc<App>>, Query(q): Query<Page>) -> Response {
    let (limit, offset) = match q.window() {
        Ok(w) => w,
        Err(m) => return problem(StatusCode::BAD_REQUEST, m),
    };
    let Some(user) = q.user_uuid else {
        return problem(StatusCode::BAD_REQUEST, "user_uuid is required");
    };
    let listed = app
        .db
        .with(move |c| {
            let uuids = c
                .prepare_cached(
                    "SELECT uuid FROM accounts WHERE user_uuid = ?1 AND is_active = 1 ORDER BY id LIMIT ?2 OFFSET ?3",
                )?
                .query_map(params![user, limit, offset], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::new();
            for uuid in uuids {
                out.extend(load_account(c, &uuid)?);
            }
            Ok(out)
        })
        .await;
    match listed {
        Ok(accounts) => Json(json!({ "data": accounts, "per_page": limit })).into_response(),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAccount {
    user_uuid: String,
    name: String,
}

/// `POST /api/accounts`: 201 with the new account (no balances yet);
/// emits `AccountCreated` (`uuid`, `user_uuid`).
async fn create_account(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let Ok(new) = serde_json::from_slice::<NewAccount>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the body must be {\"user_uuid\": \"…\", \"name\": \"…\"}",
        );
    };
    if new.name.trim().is_empty() || new.name.len() > 200 {
        return problem(StatusCode::BAD_REQUEST, "name must be 1 to 200 characters");
    }
    let made = app
        .db
        .with(move |c| {
            let tx = crate::db::write_tx(c)?;
            let id: i64 =
                tx.query_row("SELECT coalesce(max(id), 0) + 1 FROM accounts", [], |r| {
                    r.get(0)
                })?;
            let uuid = account_uuid(id);
            tx.execute(
                "INSERT INTO accounts VALUES (?1, ?2, ?3, ?4, 1, date('now'))",
                params![id, uuid, new.user_uuid, new.name],
            )?;
            let account = load_account(&tx, &uuid)?;
            tx.commit()?;
            Ok(account)
        })
        .await;
    match made {
        Ok(Some(a)) => {
            app.emit(
                "AccountCreated",
                json!({ "uuid": a["uuid"], "user_uuid": a["user_uuid"] }),
            );
            (StatusCode::CREATED, Json(a)).into_response()
        }
        Ok(None) => problem(StatusCode::INTERNAL_SERVER_ERROR, "account vanished"),
        Err(e) => db_error(e),
    }
}

/// `GET /api/accounts/{uuid}/transactions?page=&per_page=`: newest first.
async fn history(
    State(app): State<Arc<App>>,
    Path(uuid): Path<String>,
    Query(q): Query<Page>,
) -> Response {
    let (limit, offset) = match q.window() {
        Ok(w) => w,
        Err(m) => return problem(StatusCode::BAD_REQUEST, m),
    };
    let listed = app
        .db
        .with(move |c| {
            c.prepare_cached(
                "SELECT id, from_account, to_account, asset_code, amount, created_at FROM (
                     SELECT * FROM transactions WHERE from_account = ?1
                     UNION ALL SELECT * FROM transactions WHERE to_account = ?1)
                 ORDER BY id DESC LIMIT ?2 OFFSET ?3",
            )?
            .query_map(params![uuid, limit, offset], |r| {
                Ok(json!({
                    "id": r.get::<_, i64>(0)?,
                    "from_account": r.get::<_, String>(1)?,
                    "to_account": r.get::<_, String>(2)?,
                    "asset_code": r.get::<_, String>(3)?,
                    "amount": r.get::<_, i64>(4)?,
                    "created_at": r.get::<_, String>(5)?,
                }))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .await;
    match listed {
        Ok(rows) => Json(json!({ "data": rows, "per_page": limit })).into_response(),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Transfer {
    from_account: String,
    to_account: String,
    asset_code: String,
    amount: i64,
}

enum Refused {
    NoAccount(String),
    Funds,
}

/// `POST /api/transfers`: moves `amount` minor units in one database
/// transaction (201), or answers 404 (an unknown or inactive account), 422
/// (insufficient funds) or 400. Emits `TransferCompleted` with both
/// accounts and their owners (`from_account`, `to_account`, `from_user`,
/// `to_user`).
async fn transfer(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let Ok(t) = serde_json::from_slice::<Transfer>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the body must be {\"from_account\", \"to_account\", \"asset_code\", \"amount\"}",
        );
    };
    if t.amount <= 0 || t.from_account == t.to_account || !ASSETS.contains(&t.asset_code.as_str()) {
        return problem(
            StatusCode::BAD_REQUEST,
            "amount must be positive, the accounts different and the asset one of USD, EUR, GBP, CHF, JPY, SEK",
        );
    }
    let done = app
        .db
        .with(move |c| {
            let tx = crate::db::write_tx(c)?;
            let mut owners = Vec::new();
            for uuid in [&t.from_account, &t.to_account] {
                let owner = tx
                    .query_row(
                        "SELECT user_uuid FROM accounts WHERE uuid = ?1 AND is_active = 1",
                        [uuid],
                        |r| r.get::<_, String>(0),
                    )
                    .optional()?;
                match owner {
                    Some(o) => owners.push(o),
                    None => return Ok(Err(Refused::NoAccount(uuid.clone()))),
                }
            }
            let debited = tx.execute(
                "UPDATE account_balances SET balance = balance - ?3
                 WHERE account_uuid = ?1 AND asset_code = ?2 AND balance >= ?3",
                params![t.from_account, t.asset_code, t.amount],
            )?;
            if debited == 0 {
                return Ok(Err(Refused::Funds));
            }
            tx.execute(
                "INSERT INTO account_balances VALUES (?1, ?2, ?3)
                 ON CONFLICT(account_uuid, asset_code) DO UPDATE SET balance = balance + excluded.balance",
                params![t.to_account, t.asset_code, t.amount],
            )?;
            tx.execute(
                "INSERT INTO transactions(from_account, to_account, asset_code, amount, created_at)
                 VALUES (?1, ?2, ?3, ?4, datetime('now'))",
                params![t.from_account, t.to_account, t.asset_code, t.amount],
            )?;
            let id = tx.last_insert_rowid();
            let balance: i64 = tx.query_row(
                "SELECT balance FROM account_balances WHERE account_uuid = ?1 AND asset_code = ?2",
                params![t.from_account, t.asset_code],
                |r| r.get(0),
            )?;
            tx.commit()?;
            let event = json!({
                "from_account": t.from_account,
                "to_account": t.to_account,
                "from_user": owners[0],
                "to_user": owners[1],
            });
            Ok(Ok((event, json!({
                "id": id,
                "from_account": t.from_account,
                "to_account": t.to_account,
                "asset_code": t.asset_code,
                "amount": t.amount,
                "from_balance": balance,
            }))))
        })
        .await;
    match done {
        Ok(Ok((event, receipt))) => {
            app.emit("TransferCompleted", event);
            (StatusCode::CREATED, Json(receipt)).into_response()
        }
        Ok(Err(Refused::NoAccount(uuid))) => {
            problem(StatusCode::NOT_FOUND, format!("no active account {uuid}"))
        }
        Ok(Err(Refused::Funds)) => problem(StatusCode::UNPROCESSABLE_ENTITY, "insufficient funds"),
        Err(e) => db_error(e),
    }
}

fn quote(r: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    Ok(json!({
        "from_asset": r.get::<_, String>(0)?,
        "to_asset": r.get::<_, String>(1)?,
        "rate": r.get::<_, f64>(2)?,
        "as_of": r.get::<_, String>(3)?,
    }))
}

/// `GET /api/exchange-rates/{from}/{to}`: the latest quote (the guide's
/// `idx_exchange_rates_lookup`).
async fn rate(State(app): State<Arc<App>>, Path((from, to)): Path<(String, String)>) -> Response {
    let found = app
        .db
        .with(move |c| {
            c.query_row(
                "SELECT from_asset, to_asset, rate, created_at FROM exchange_rates
                 WHERE from_asset = ?1 AND to_asset = ?2 ORDER BY created_at DESC LIMIT 1",
                params![from.to_uppercase(), to.to_uppercase()],
                quote,
            )
            .optional()
        })
        .await;
    match found {
        Ok(Some(q)) => Json(q).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "no rate for this pair"),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
struct Base {
    base: Option<String>,
}

/// `GET /api/exchange-rates?base=USD`: the latest quote of every pair from `base`.
async fn rates(State(app): State<Arc<App>>, Query(q): Query<Base>) -> Response {
    let base = q.base.unwrap_or_else(|| "USD".into()).to_uppercase();
    if !ASSETS.contains(&base.as_str()) {
        return problem(StatusCode::BAD_REQUEST, "unknown base asset");
    }
    let listed = app
        .db
        .with(move |c| {
            c.prepare_cached(
                "SELECT from_asset, to_asset, rate, max(created_at) FROM exchange_rates
                 WHERE from_asset = ?1 GROUP BY to_asset ORDER BY to_asset",
            )?
            .query_map([base], quote)?
            .collect::<Result<Vec<_>, _>>()
        })
        .await;
    match listed {
        Ok(rows) => Json(json!({ "data": rows })).into_response(),
        Err(e) => db_error(e),
    }
}
