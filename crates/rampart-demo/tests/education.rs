//! The education origin (seed 002) behind its example config: the guide's
//! three flows work end to end, the catalogue is cached for everyone, and a
//! student's own pages are cached per session token, never shared.

mod common;

use common::{cache_status, json, Demo};
use rampart_demo::AppKind;
use serde_json::json;

async fn login(demo: &Demo, n: u32) -> String {
    let got = demo
        .send_json(
            "POST",
            "/api/auth/login",
            &[],
            &json!({ "email": format!("student{n}@example.edu"), "password": format!("password{n}") }),
        )
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(json(&got)["expires_in"], 3600);
    format!("Bearer {}", json(&got)["token"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_profile_enroll_access_cart_checkout_payment() {
    let demo = Demo::start(AppKind::Education, 0.01).await;
    assert_eq!(demo.origin.rows, 1_000);
    let wrong = demo
        .send_json(
            "POST",
            "/api/auth/login",
            &[],
            &json!({ "email": "student1@example.edu", "password": "nope" }),
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("content-type"), "application/problem+json");

    // Authentication flow; profiles are cached per token and never shared.
    let (alice, bob) = (login(&demo, 1).await, login(&demo, 2).await);
    let a = demo.get("/api/profile", &[("authorization", &alice)]).await;
    let b = demo.get("/api/profile", &[("authorization", &bob)]).await;
    assert_eq!(json(&a)["email"], "student1@example.edu");
    assert_eq!(json(&b)["email"], "student2@example.edu");
    let again = demo.get("/api/profile", &[("authorization", &alice)]).await;
    assert!(
        cache_status(&again).contains("hit"),
        "{}",
        cache_status(&again)
    );
    assert_eq!(json(&again)["email"], "student1@example.edu");
    let anonymous = demo.get("/api/profile", &[]).await;
    assert_eq!(anonymous.status, 401);
    let forged = demo
        .get("/api/profile", &[("authorization", "Bearer forged")])
        .await;
    assert_eq!(
        forged.status, 401,
        "a made-up token gets nobody's cached profile"
    );

    // Course enrollment: browse (cached for everyone) → enroll → access.
    let page = demo.get("/api/courses?page=2&limit=20", &[]).await;
    let courses = json(&page);
    assert_eq!(
        (
            courses["total"].as_i64(),
            courses["data"].as_array().unwrap().len()
        ),
        (Some(100), 20)
    );
    assert_eq!(courses["data"][0]["id"], 21);
    assert!(cache_status(&demo.get("/api/courses?page=2&limit=20", &[]).await).contains("hit"));
    assert_eq!(demo.get("/api/courses?limit=500", &[]).await.status, 400);
    let content = "/api/courses/21/content";
    assert_eq!(
        demo.get(content, &[("authorization", &alice)]).await.status,
        403
    );
    let enrolled = demo
        .send_json(
            "POST",
            "/api/courses/21/enroll",
            &[("authorization", &alice)],
            &json!({}),
        )
        .await;
    assert_eq!(enrolled.status, 201);
    let lessons = demo.get(content, &[("authorization", &alice)]).await;
    assert_eq!(lessons.status, 200, "the 403 was not cached");
    assert_eq!(json(&lessons)["lessons"].as_array().unwrap().len(), 10);
    assert_eq!(
        demo.get(content, &[("authorization", &bob)]).await.status,
        403,
        "Alice's cached lessons are not Bob's"
    );

    // Payment processing: cart → checkout → payment enrolls Bob.
    let cart = demo
        .send_json(
            "POST",
            "/api/cart",
            &[("authorization", &bob)],
            &json!({ "course_id": 21 }),
        )
        .await;
    assert_eq!(cart.status, 201);
    assert_eq!(json(&cart)["total_cents"], 2_200);
    let order = demo
        .send_json(
            "POST",
            "/api/checkout",
            &[("authorization", &bob)],
            &json!({}),
        )
        .await;
    assert_eq!(order.status, 201);
    let order_id = json(&order)["order_id"].clone();
    let empty = demo
        .send_json(
            "POST",
            "/api/checkout",
            &[("authorization", &bob)],
            &json!({}),
        )
        .await;
    assert_eq!(empty.status, 422, "the cart was emptied");
    let by_alice = demo
        .send_json(
            "POST",
            "/api/payments",
            &[("authorization", &alice)],
            &json!({ "order_id": order_id }),
        )
        .await;
    assert_eq!(by_alice.status, 404, "nobody pays another student's order");
    let paid = demo
        .send_json(
            "POST",
            "/api/payments",
            &[("authorization", &bob)],
            &json!({ "order_id": order_id }),
        )
        .await;
    assert_eq!(paid.status, 201);
    assert_eq!(json(&paid)["amount_cents"], 2_200);
    let twice = demo
        .send_json(
            "POST",
            "/api/payments",
            &[("authorization", &bob)],
            &json!({ "order_id": order_id }),
        )
        .await;
    assert_eq!(twice.status, 409);
    assert_eq!(
        demo.get(content, &[("authorization", &bob)]).await.status,
        200
    );
}
