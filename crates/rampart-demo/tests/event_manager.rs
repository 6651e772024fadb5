//! The event-manager origin (seed 004) behind its example config: events
//! and guest lists are served from cache, and the guide's
//! `guest.registered` and `event.updated` events purge exactly what they
//! change.

mod common;

use common::{cache_status, json, Demo};
use rampart_demo::AppKind;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_registrations_and_event_updates_purge_what_they_change() {
    let demo = Demo::start(AppKind::EventManager, 0.01).await;
    assert_eq!(demo.origin.rows, 50);
    let list = "/api/events?page=1&limit=20";
    let events = json(&demo.get(list, &[]).await);
    assert_eq!(events["data"].as_array().unwrap().len(), 20);
    assert!(events["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["status"] == "active"));
    let detail = "/api/events/7";
    let event = json(&demo.get(detail, &[]).await);
    assert_eq!(event["guests"], json!({ "total": 100, "checked_in": 33 }));
    let guests = "/api/guests?event_id=7&page=1&limit=20";
    let by_event = "/api/events/7/guests?page=5&limit=20";
    assert_eq!(
        json(&demo.get(guests, &[]).await)["data"][0]["ticket_number"],
        "T000007-0001"
    );
    assert_eq!(
        json(&demo.get(by_event, &[]).await)["data"]
            .as_array()
            .unwrap()
            .len(),
        20
    );
    let other = "/api/events/8";
    demo.get(other, &[]).await;
    let before = demo.origin.requests();
    for path in [list, detail, guests, by_event, other] {
        let got = demo.get(path, &[]).await;
        assert!(
            cache_status(&got).contains("hit"),
            "{path}: {}",
            cache_status(&got)
        );
    }
    assert_eq!(demo.origin.requests(), before);
    assert_eq!(demo.get("/api/guests", &[]).await.status, 400);
    assert_eq!(demo.get("/api/events/9999", &[]).await.status, 404);

    // guest.registered: event 7's guest lists and counts, nothing else.
    let registered = demo
        .send_json(
            "POST",
            "/api/events/7/guests",
            &[],
            &json!({ "name": "Ada", "email": "ada@example.com" }),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.text());
    demo.until(detail, |e| e["guests"]["total"] == 101).await;
    demo.until("/api/events/7/guests?page=6&limit=20", |g| {
        g["data"][0]["name"] == "Ada"
    })
    .await;
    assert!(cache_status(&demo.get(other, &[]).await).contains("hit"));
    assert!(cache_status(&demo.get(list, &[]).await).contains("hit"));

    // event.updated: the event and the list.
    let updated = demo
        .send_json(
            "PUT",
            "/api/events/1",
            &[],
            &json!({ "name": "Renamed", "date": "2027-01-01" }),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    demo.until(list, |l| l["data"][0]["name"] == "Renamed")
        .await;
    demo.until("/api/events/1", |e| e["name"] == "Renamed")
        .await;
    assert!(cache_status(&demo.get(other, &[]).await).contains("hit"));
    for bad in [
        json!({ "date": "soon" }),
        json!({ "status": "gone" }),
        json!({ "colour": "red" }),
    ] {
        let refused = demo.send_json("PUT", "/api/events/1", &[], &bad).await;
        assert_eq!(refused.status, 400, "{bad}");
    }

    // event.created: the list again.
    let created = demo
        .send_json(
            "POST",
            "/api/events",
            &[],
            &json!({ "name": "First", "date": "2027-01-01", "status": "active",
                     "venue": { "name": "Hall 1", "city": "Lima" } }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    demo.until(list, |l| {
        l["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "First")
    })
    .await;
}
