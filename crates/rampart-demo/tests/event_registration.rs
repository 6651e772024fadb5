//! The event-registration origin on a small generated data set: real rows,
//! real aggregates, writes that change them and emit domain events.

use std::time::Duration;

use rampart_demo::{AppKind, EventSink};
use rampart_testkit::{eventually, example_config, respond, Origin, TestClient};
use serde_json::Value;

async fn json(client: &TestClient, url: &str) -> (u16, Value) {
    let got = client.get(url, &[]).await;
    (
        got.status.as_u16(),
        serde_json::from_str(&got.text()).unwrap_or(Value::Null),
    )
}

/// The origin at 1 % scale (10,000 registrations), sending its events to
/// the admin listener at `admin` with `token`.
async fn small_origin(admin: std::net::SocketAddr, token: &str) -> rampart_demo::Origin {
    let sink = EventSink {
        admin: format!("http://{admin}"),
        token: token.into(),
    };
    rampart_demo::start(
        AppKind::EventRegistration,
        0.01,
        "127.0.0.1:0".parse().unwrap(),
        Some(sink),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_serve_generated_data_and_writes_emit_events() {
    let gateway_admin = Origin::simple(|_| respond(200, &[], "{}")).await;
    let origin = small_origin(gateway_admin.addr, "t").await;
    assert_eq!(origin.rows, 10_000);
    let base = format!("http://{}", origin.addr);
    let client = TestClient::new();

    let (status, kpi) = json(&client, &format!("{base}/api/kpi")).await;
    assert_eq!(status, 200);
    let count = |kpi: &Value, s: &str| {
        kpi["by_status"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["payment_status"] == s)
            .map(|r| r["count"].as_i64().unwrap())
    };
    assert_eq!(count(&kpi, "Paid"), Some(7_000));
    assert_eq!(count(&kpi, "Pending"), Some(2_000));
    assert_eq!(count(&kpi, "Failed"), Some(1_000));

    let (_, list) = json(
        &client,
        &format!("{base}/api/registrations?status=Paid&page=2&per_page=50"),
    )
    .await;
    assert_eq!(list["total"], 7_000);
    assert_eq!(list["registrations"].as_array().unwrap().len(), 50);
    assert_eq!(
        list["registrations"][0]["id"], 72,
        "page 2 starts after the 50th paid row"
    );
    assert_eq!(
        json(&client, &format!("{base}/api/registrations?per_page=1000"))
            .await
            .0,
        400
    );

    let (status, cert) = json(&client, &format!("{base}/api/verify/CERT-000000003")).await;
    assert_eq!((status, cert["valid"].clone()), (200, Value::Bool(true)));
    assert_eq!(
        json(&client, &format!("{base}/api/verify/CERT-000000004"))
            .await
            .0,
        404
    );
    assert_eq!(
        json(&client, &format!("{base}/api/pricing")).await.1["pricing"]
            .as_array()
            .unwrap()
            .len(),
        80
    );
    assert_eq!(
        json(&client, &format!("{base}/api/sponsors")).await.1["sponsors"]
            .as_array()
            .unwrap()
            .len(),
        30
    );
    let (_, offline) = json(&client, &format!("{base}/api/qr/offline?event_id=1")).await;
    assert!(!offline["codes"].as_array().unwrap().is_empty());

    // Writes: a payment moves a row to Paid and tells the gateway.
    let confirm = client
        .send(
            "POST",
            &format!("{base}/api/registrations/7/confirm-payment"),
            &[],
            rampart_gateway::body::empty(),
        )
        .await;
    assert_eq!(confirm.status, 200);
    let (_, kpi) = json(&client, &format!("{base}/api/kpi")).await;
    assert_eq!(count(&kpi, "Paid"), Some(7_001));
    let scan = client
        .send(
            "POST",
            &format!("{base}/api/qr/scan"),
            &[("content-type", "application/json")],
            rampart_gateway::body::full(r#"{"qr_code": "QR000000001"}"#),
        )
        .await;
    assert_eq!(scan.status, 200);
    assert!(scan.text().contains("\"admitted\":true"));
    assert_eq!(origin.events_emitted(), 1, "one event for one payment");
    eventually("the event reaches the gateway", || {
        gateway_admin.total() == 1
    })
    .await;
    let seen = gateway_admin.seen();
    assert_eq!(seen.len(), 1, "one event for one payment");
    assert_eq!(seen[0].1, "/admin/events/PaymentConfirmed");
    assert_eq!(seen[0].2["authorization"], "Bearer t");
}

/// The example config in front of the example origin: the KPI aggregate is
/// served from cache until a payment's `PaymentConfirmed` event purges it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_example_config_kpis_are_cached_until_a_payment() {
    let admin = rampart_testkit::free_addr();
    let origin = small_origin(admin, "e2e-token").await;
    let text = example_config("event-registration", origin.addr, admin, "e2e-token");
    let config = rampart_config::parse(&text, "rampart.toml").unwrap_or_else(|e| panic!("{e}"));
    let gw = rampart_gateway::start(&config, std::sync::Arc::new(rampart_gateway::SystemClock))
        .await
        .unwrap();
    let client = TestClient::new();
    let kpi = format!("http://{}/api/kpi", gw.addr);
    let first = client.get(&kpi, &[]).await;
    assert!(first.header("cache-status").contains("fwd=uri-miss"));
    let before = origin.requests();
    for _ in 0..20 {
        let hit = client.get(&kpi, &[]).await;
        assert!(
            hit.header("cache-status").contains("hit"),
            "{}",
            hit.header("cache-status")
        );
        assert_eq!(hit.text(), first.text());
    }
    assert_eq!(
        origin.requests(),
        before,
        "twenty dashboard loads, no query"
    );

    let paid = client
        .send(
            "POST",
            &format!("http://{}/api/registrations/8/confirm-payment", gw.addr),
            &[],
            rampart_gateway::body::empty(),
        )
        .await;
    assert_eq!(paid.status, 200);
    let mut refreshed = false;
    for _ in 0..50 {
        let now = client.get(&kpi, &[]).await;
        if now.text() != first.text() {
            assert!(now.text().contains("\"count\":7001"), "{}", now.text());
            refreshed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refreshed, "PaymentConfirmed purged the cached KPIs");
}
