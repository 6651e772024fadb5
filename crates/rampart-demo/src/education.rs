//! Seed 002, the education platform: login → profile, the course
//! catalogue (paginated), enroll → course content, and cart → checkout →
//! payment — the guide's three k6 flows.
//!
//! Generated data is deterministic, so scenario files can name real rows:
//! student `n` (1-based) is `student{n}@example.edu` with password
//! `password{n}` (stored as a salted SHA-256); course `n` costs
//! `(n % 50 + 1) * 100` cents and has ten lessons. Sessions last an hour
//! (the guide's "Session Cache: User sessions (TTL: 1 hour)").

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rusqlite::{params, OptionalExtension};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::app::{db_error, problem, App};
use crate::db::{Db, DbError};

/// Students at scale 1 (ten times the guide's largest run, 10,000 users).
pub const FULL_SCALE: f64 = 100_000.0;

/// Courses per student.
const COURSES_PER_STUDENT: f64 = 0.01;

/// Lessons per course.
const LESSONS: i64 = 10;

/// Session lifetime in seconds.
pub const SESSION_TTL: i64 = 3600;

fn hash(email: &str, password: &str) -> String {
    let digest = Sha256::digest(format!("{email}\n{password}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

const CATEGORIES: [&str; 5] = [
    "programming",
    "mathematics",
    "languages",
    "business",
    "design",
];

/// Creates the schema and the data for `scale` (1.0 = 100,000 students, 1,000 courses).
pub fn generate(db: &Db, scale: f64) -> Result<usize, DbError> {
    let students = ((FULL_SCALE * scale).round() as i64).max(1_000);
    let courses = ((students as f64 * COURSES_PER_STUDENT) as i64).max(100);
    db.setup(|c| {
        c.execute_batch(
            "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
                 password_hash TEXT NOT NULL, created_at TEXT NOT NULL);
             CREATE TABLE sessions(token TEXT PRIMARY KEY, user_id INTEGER NOT NULL, expires_at INTEGER NOT NULL);
             CREATE TABLE courses(id INTEGER PRIMARY KEY, title TEXT NOT NULL, category TEXT NOT NULL,
                 price_cents INTEGER NOT NULL, summary TEXT NOT NULL, created_at TEXT NOT NULL);
             CREATE TABLE lessons(course_id INTEGER NOT NULL, position INTEGER NOT NULL, title TEXT NOT NULL,
                 body TEXT NOT NULL, PRIMARY KEY(course_id, position));
             CREATE TABLE enrollments(user_id INTEGER NOT NULL, course_id INTEGER NOT NULL,
                 enrolled_at TEXT NOT NULL, PRIMARY KEY(user_id, course_id));
             CREATE TABLE cart_items(user_id INTEGER NOT NULL, course_id INTEGER NOT NULL, PRIMARY KEY(user_id, course_id));
             CREATE TABLE orders(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, total_cents INTEGER NOT NULL,
                 status TEXT NOT NULL, created_at TEXT NOT NULL);
             CREATE TABLE order_items(order_id INTEGER NOT NULL, course_id INTEGER NOT NULL);
             CREATE TABLE payments(id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL UNIQUE,
                 amount_cents INTEGER NOT NULL, created_at TEXT NOT NULL);
             CREATE INDEX idx_courses_created ON courses(created_at);
             CREATE INDEX idx_courses_category ON courses(category, id);
             CREATE INDEX idx_order_items ON order_items(order_id);",
        )?;
        let tx = c.transaction()?;
        {
            let mut u = tx.prepare("INSERT INTO users VALUES (?1, ?2, ?3, ?4, ?5)")?;
            for id in 1..=students {
                let email = format!("student{id}@example.edu");
                let password_hash = hash(&email, &format!("password{id}"));
                u.execute(params![
                    id,
                    email,
                    format!("Student {id}"),
                    password_hash,
                    format!("2025-{:02}-{:02}", id % 12 + 1, id % 28 + 1),
                ])?;
            }
            let mut k = tx.prepare("INSERT INTO courses VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
            let mut l = tx.prepare("INSERT INTO lessons VALUES (?1, ?2, ?3, ?4)")?;
            for id in 1..=courses {
                let category = CATEGORIES[id as usize % CATEGORIES.len()];
                k.execute(params![
                    id,
                    format!("Course {id}: {category} {}", id % 7 + 101),
                    category,
                    (id % 50 + 1) * 100,
                    format!("An introduction to {category}, part {id}, in {LESSONS} lessons with exercises and a final project."),
                    format!("2025-{:02}-{:02}", id % 12 + 1, id % 28 + 1),
                ])?;
                for p in 1..=LESSONS {
                    l.execute(params![
                        id,
                        p,
                        format!("Lesson {p}"),
                        format!("Lesson {p} of course {id}. ").repeat(20),
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(students as usize)
    })
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/auth/login", post(login))
        .route("/api/profile", get(profile))
        .route("/api/courses", get(courses))
        .route("/api/courses/{id}", get(course))
        .route("/api/courses/{id}/enroll", post(enroll))
        .route("/api/courses/{id}/content", get(content))
        .route("/api/cart", get(cart).post(add_to_cart))
        .route("/api/checkout", post(checkout))
        .route("/api/payments", post(pay))
        .with_state(app)
}

async fn health(State(app): State<Arc<App>>) -> Response {
    match app
        .db
        .with(|c| c.query_row("SELECT count(*) FROM courses", [], |r| r.get::<_, i64>(0)))
        .await
    {
        Ok(courses) => Json(json!({ "status": "ok", "courses": courses })).into_response(),
        Err(e) => db_error(e),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    email: String,
    password: String,
}

/// `POST /api/auth/login`: a bearer token valid for an hour, or 401.
async fn login(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Response {
    let Ok(login) = serde_json::from_slice::<Login>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the body must be {\"email\": \"…\", \"password\": \"…\"}",
        );
    };
    let token: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let issued = token.clone();
    let found = app
        .db
        .with(move |c| {
            let given = hash(&login.email, &login.password);
            let user = c
                .query_row(
                    "SELECT id, password_hash FROM users WHERE email = ?1",
                    [&login.email],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                )
                .optional()?;
            match user {
                Some((id, stored)) if stored == given => {
                    c.execute(
                        "INSERT INTO sessions VALUES (?1, ?2, ?3)",
                        params![issued, id, now() + SESSION_TTL],
                    )?;
                    Ok(Some(id))
                }
                _ => Ok(None),
            }
        })
        .await;
    match found {
        Ok(Some(user_id)) => {
            Json(json!({ "token": token, "user_id": user_id, "expires_in": SESSION_TTL }))
                .into_response()
        }
        Ok(None) => problem(StatusCode::UNAUTHORIZED, "wrong email or password"),
        Err(e) => db_error(e),
    }
}

/// The session's user, from `Authorization: Bearer …`.
async fn user(app: &Arc<App>, headers: &HeaderMap) -> Result<i64, Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let Some(token) = token else {
        return Err(problem(StatusCode::UNAUTHORIZED, "log in first"));
    };
    let found = app
        .db
        .with(move |c| {
            c.query_row(
                "SELECT user_id FROM sessions WHERE token = ?1 AND expires_at > ?2",
                params![token, now()],
                |r| r.get::<_, i64>(0),
            )
            .optional()
        })
        .await;
    match found {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(problem(
            StatusCode::UNAUTHORIZED,
            "the session has expired or never existed",
        )),
        Err(e) => Err(db_error(e)),
    }
}

/// `GET /api/profile`: the logged-in student (the guide's `select: { id,
/// email, name }`).
async fn profile(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let id = match user(&app, &headers).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let found = app
        .db
        .with(move |c| {
            c.query_row(
                "SELECT id, email, name, created_at FROM users WHERE id = ?1",
                [id],
                |r| {
                    Ok(json!({
                        "id": r.get::<_, i64>(0)?,
                        "email": r.get::<_, String>(1)?,
                        "name": r.get::<_, String>(2)?,
                        "created_at": r.get::<_, String>(3)?,
                    }))
                },
            )
        })
        .await;
    match found {
        Ok(p) => Json(p).into_response(),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
struct CourseQuery {
    page: Option<u32>,
    limit: Option<u32>,
    category: Option<String>,
}

fn course_json(r: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    Ok(json!({
        "id": r.get::<_, i64>(0)?,
        "title": r.get::<_, String>(1)?,
        "category": r.get::<_, String>(2)?,
        "price_cents": r.get::<_, i64>(3)?,
        "summary": r.get::<_, String>(4)?,
    }))
}

/// `GET /api/courses?page=1&limit=20&category=`: the guide's pagination
/// (20 a page by default, at most 100), with the total.
async fn courses(State(app): State<Arc<App>>, Query(q): Query<CourseQuery>) -> Response {
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return problem(StatusCode::BAD_REQUEST, "limit must be 1 to 100");
    }
    let page = q.page.unwrap_or(1).max(1);
    let offset = (page - 1).saturating_mul(limit);
    let category = q.category.unwrap_or_default();
    let listed = app
        .db
        .with(move |c| {
            let rows = c
                .prepare_cached(
                    "SELECT id, title, category, price_cents, summary FROM courses
                     WHERE ?1 = '' OR category = ?1 ORDER BY id LIMIT ?2 OFFSET ?3",
                )?
                .query_map(params![category, limit, offset], course_json)?
                .collect::<Result<Vec<_>, _>>()?;
            let total: i64 = c.query_row(
                "SELECT count(*) FROM courses WHERE ?1 = '' OR category = ?1",
                [&category],
                |r| r.get(0),
            )?;
            Ok((rows, total))
        })
        .await;
    match listed {
        Ok((rows, total)) => {
            Json(json!({ "data": rows, "page": page, "limit": limit, "total": total }))
                .into_response()
        }
        Err(e) => db_error(e),
    }
}

async fn course(State(app): State<Arc<App>>, Path(id): Path<i64>) -> Response {
    let found = app
        .db
        .with(move |c| {
            c.query_row(
                "SELECT id, title, category, price_cents, summary FROM courses WHERE id = ?1",
                [id],
                course_json,
            )
            .optional()
        })
        .await;
    match found {
        Ok(Some(c)) => Json(c).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "no such course"),
        Err(e) => db_error(e),
    }
}

/// `POST /api/courses/{id}/enroll`: 201 (enrolling again is harmless).
async fn enroll(State(app): State<Arc<App>>, Path(id): Path<i64>, headers: HeaderMap) -> Response {
    let user = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let done = app
        .db
        .with(move |c| {
            if c.query_row("SELECT 1 FROM courses WHERE id = ?1", [id], |_| Ok(()))
                .optional()?
                .is_none()
            {
                return Ok(false);
            }
            c.execute(
                "INSERT OR IGNORE INTO enrollments VALUES (?1, ?2, datetime('now'))",
                params![user, id],
            )?;
            Ok(true)
        })
        .await;
    match done {
        Ok(true) => (
            StatusCode::CREATED,
            Json(json!({ "course_id": id, "user_id": user, "enrolled": true })),
        )
            .into_response(),
        Ok(false) => problem(StatusCode::NOT_FOUND, "no such course"),
        Err(e) => db_error(e),
    }
}

/// `GET /api/courses/{id}/content`: the lessons, for enrolled students (403 otherwise).
async fn content(State(app): State<Arc<App>>, Path(id): Path<i64>, headers: HeaderMap) -> Response {
    let user = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let found = app
        .db
        .with(move |c| {
            let enrolled = c
                .query_row(
                    "SELECT 1 FROM enrollments WHERE user_id = ?1 AND course_id = ?2",
                    params![user, id],
                    |_| Ok(()),
                )
                .optional()?;
            if enrolled.is_none() {
                return Ok(None);
            }
            let lessons = c
                .prepare_cached(
                    "SELECT position, title, body FROM lessons WHERE course_id = ?1 ORDER BY position",
                )?
                .query_map([id], |r| {
                    Ok(json!({
                        "position": r.get::<_, i64>(0)?,
                        "title": r.get::<_, String>(1)?,
                        "body": r.get::<_, String>(2)?,
                    }))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(lessons))
        })
        .await;
    match found {
        Ok(Some(lessons)) => Json(json!({ "course_id": id, "lessons": lessons })).into_response(),
        Ok(None) => problem(StatusCode::FORBIDDEN, "enroll in this course first"),
        Err(e) => db_error(e),
    }
}

fn cart_of(c: &rusqlite::Connection, user: i64) -> rusqlite::Result<Value> {
    let items = c
        .prepare_cached(
            "SELECT c.id, c.title, c.price_cents FROM cart_items i JOIN courses c ON c.id = i.course_id
             WHERE i.user_id = ?1 ORDER BY c.id",
        )?
        .query_map([user], |r| {
            Ok(json!({
                "course_id": r.get::<_, i64>(0)?,
                "title": r.get::<_, String>(1)?,
                "price_cents": r.get::<_, i64>(2)?,
            }))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let total: i64 = items
        .iter()
        .map(|i| i["price_cents"].as_i64().unwrap_or(0))
        .sum();
    Ok(json!({ "items": items, "total_cents": total }))
}

async fn cart(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let user = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match app.db.with(move |c| cart_of(c, user)).await {
        Ok(cart) => Json(cart).into_response(),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CartItem {
    course_id: i64,
}

/// `POST /api/cart {"course_id": n}`: 201 with the cart.
async fn add_to_cart(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let user = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(item) = serde_json::from_slice::<CartItem>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the body must be {\"course_id\": n}",
        );
    };
    let done = app
        .db
        .with(move |c| {
            if c.query_row(
                "SELECT 1 FROM courses WHERE id = ?1",
                [item.course_id],
                |_| Ok(()),
            )
            .optional()?
            .is_none()
            {
                return Ok(None);
            }
            c.execute(
                "INSERT OR IGNORE INTO cart_items VALUES (?1, ?2)",
                params![user, item.course_id],
            )?;
            cart_of(c, user).map(Some)
        })
        .await;
    match done {
        Ok(Some(cart)) => (StatusCode::CREATED, Json(cart)).into_response(),
        Ok(None) => problem(StatusCode::NOT_FOUND, "no such course"),
        Err(e) => db_error(e),
    }
}

/// `POST /api/checkout`: turns the cart into a pending order (201), or 422
/// when the cart is empty.
async fn checkout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let user = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let done = app
        .db
        .with(move |c| {
            let tx = crate::db::write_tx(c)?;
            let cart = cart_of(&tx, user)?;
            let total = cart["total_cents"].as_i64().unwrap_or(0);
            let Some(items) = cart["items"].as_array().filter(|i| !i.is_empty()) else {
                return Ok(None);
            };
            tx.execute(
                "INSERT INTO orders(user_id, total_cents, status, created_at) VALUES (?1, ?2, 'pending', datetime('now'))",
                params![user, total],
            )?;
            let order = tx.last_insert_rowid();
            for item in items {
                tx.execute(
                    "INSERT INTO order_items VALUES (?1, ?2)",
                    params![order, item["course_id"].as_i64()],
                )?;
            }
            tx.execute("DELETE FROM cart_items WHERE user_id = ?1", [user])?;
            tx.commit()?;
            Ok(Some(json!({ "order_id": order, "total_cents": total, "status": "pending" })))
        })
        .await;
    match done {
        Ok(Some(order)) => (StatusCode::CREATED, Json(order)).into_response(),
        Ok(None) => problem(StatusCode::UNPROCESSABLE_ENTITY, "the cart is empty"),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payment {
    order_id: i64,
}

enum Paid {
    Done(Value),
    NoOrder,
    Already,
}

/// `POST /api/payments {"order_id": n}`: pays one of the student's pending
/// orders and enrolls them in its courses (201); 404 for someone else's or
/// an unknown order, 409 when it is paid already.
async fn pay(State(app): State<Arc<App>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let user = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(payment) = serde_json::from_slice::<Payment>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "the body must be {\"order_id\": n}",
        );
    };
    let done = app
        .db
        .with(move |c| {
            let tx = crate::db::write_tx(c)?;
            let order = tx
                .query_row(
                    "SELECT total_cents, status FROM orders WHERE id = ?1 AND user_id = ?2",
                    params![payment.order_id, user],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                )
                .optional()?;
            let Some((total, status)) = order else {
                return Ok(Paid::NoOrder);
            };
            if status == "paid" {
                return Ok(Paid::Already);
            }
            tx.execute(
                "UPDATE orders SET status = 'paid' WHERE id = ?1",
                [payment.order_id],
            )?;
            tx.execute(
                "INSERT INTO payments(order_id, amount_cents, created_at) VALUES (?1, ?2, datetime('now'))",
                params![payment.order_id, total],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT OR IGNORE INTO enrollments SELECT ?1, course_id, datetime('now') FROM order_items WHERE order_id = ?2",
                params![user, payment.order_id],
            )?;
            tx.commit()?;
            Ok(Paid::Done(json!({
                "payment_id": id,
                "order_id": payment.order_id,
                "amount_cents": total,
                "status": "paid",
            })))
        })
        .await;
    match done {
        Ok(Paid::Done(receipt)) => (StatusCode::CREATED, Json(receipt)).into_response(),
        Ok(Paid::NoOrder) => problem(StatusCode::NOT_FOUND, "no such order of yours"),
        Ok(Paid::Already) => problem(StatusCode::CONFLICT, "this order is paid already"),
        Err(e) => db_error(e),
    }
}
