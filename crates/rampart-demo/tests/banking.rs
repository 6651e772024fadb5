//! The banking origin (seed 001) behind its example config: accounts with
//! their balances cached for an hour until a transfer's `TransferCompleted`
//! event purges both accounts; transfers that cannot happen change nothing.

mod common;

use common::{cache_status, json, Demo};
use rampart_demo::banking::{account_uuid, user_uuid};
use rampart_demo::AppKind;
use serde_json::json;

fn usd(account: &serde_json::Value) -> i64 {
    account["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["asset_code"] == "USD")
        .unwrap()["balance"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_cached_until_a_transfer_moves_their_money() {
    let demo = Demo::start(AppKind::Banking, 0.01).await;
    assert_eq!(demo.origin.rows, 1_000);
    let (a, b) = (account_uuid(2), account_uuid(3));
    let path = format!("/api/accounts/{a}");
    let first = demo.get(&path, &[]).await;
    assert_eq!(first.status, 200);
    assert!(cache_status(&first).contains("fwd=uri-miss"));
    let account = json(&first);
    assert_eq!(account["user_uuid"], user_uuid(1));
    assert_eq!(usd(&account), 100_000_000);
    assert_eq!(
        account["balances"].as_array().unwrap().len(),
        2,
        "USD and EUR"
    );
    let list = format!("/api/accounts?user_uuid={}", user_uuid(1));
    assert_eq!(
        json(&demo.get(&list, &[]).await)["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let before = demo.origin.requests();
    for _ in 0..10 {
        assert!(cache_status(&demo.get(&path, &[]).await).contains("hit"));
        assert!(cache_status(&demo.get(&list, &[]).await).contains("hit"));
    }
    assert_eq!(demo.origin.requests(), before, "twenty reads, no query");

    let transfer = |amount: i64, from: &str| json!({ "from_account": from, "to_account": b, "asset_code": "USD", "amount": amount });
    let moved = demo
        .send_json("POST", "/api/transfers", &[], &transfer(2_500, &a))
        .await;
    assert_eq!(moved.status, 201, "{}", moved.text());
    assert_eq!(json(&moved)["from_balance"], 100_000_000 - 2_500);
    // TransferCompleted purges both accounts and their owners' lists.
    let after = demo.until(&path, |v| usd(v) == 100_000_000 - 2_500).await;
    assert_eq!(after["uuid"], a.as_str());
    assert_eq!(
        usd(&json(&demo.get(&format!("/api/accounts/{b}"), &[]).await)),
        100_000_000 + 2_500
    );
    demo.until(&list, |v| usd(&v["data"][0]) == 100_000_000 - 2_500)
        .await;
    let history = json(
        &demo
            .get(&format!("/api/accounts/{a}/transactions"), &[])
            .await,
    );
    assert_eq!(history["data"][0]["amount"], 2_500);

    // Refused transfers: nothing moves, nothing is purged.
    let cached = demo.get(&path, &[]).await;
    assert!(cache_status(&cached).contains("hit"));
    let emitted = demo.origin.events_emitted();
    for (body, status) in [
        (transfer(1_000_000_000, &a), 422),
        (transfer(1, &account_uuid(999_999)), 404),
        (transfer(-5, &a), 400),
        (json!({ "from_account": a }), 400),
    ] {
        let refused = demo.send_json("POST", "/api/transfers", &[], &body).await;
        assert_eq!(refused.status, status, "{body}: {}", refused.text());
        assert_eq!(refused.header("content-type"), "application/problem+json");
    }
    assert_eq!(
        demo.origin.events_emitted(),
        emitted,
        "a refused transfer emits no event"
    );
    let still = demo.get(&path, &[]).await;
    assert!(cache_status(&still).contains("hit"), "no event, no purge");
    assert_eq!(still.text(), cached.text());
    let direct = demo.client.get(&demo.origin_url(&path), &[]).await;
    assert_eq!(usd(&json(&direct)), 100_000_000 - 2_500, "no money lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_rates_and_new_accounts() {
    let demo = Demo::start(AppKind::Banking, 0.01).await;
    let rate = demo.get("/api/exchange-rates/USD/EUR", &[]).await;
    assert_eq!(rate.status, 200);
    let r = json(&rate)["rate"].as_f64().unwrap();
    assert!((0.9..0.95).contains(&r), "{r}");
    assert!(cache_status(&demo.get("/api/exchange-rates/USD/EUR", &[]).await).contains("hit"));
    assert_eq!(
        demo.get("/api/exchange-rates/USD/XYZ", &[]).await.status,
        404
    );
    let all = json(&demo.get("/api/exchange-rates?base=GBP", &[]).await);
    assert_eq!(all["data"].as_array().unwrap().len(), 5);

    let user = user_uuid(7);
    let list = format!("/api/accounts?user_uuid={user}");
    assert_eq!(
        json(&demo.get(&list, &[]).await)["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let made = demo
        .send_json(
            "POST",
            "/api/accounts",
            &[],
            &json!({ "user_uuid": user, "name": "Savings" }),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text());
    assert_eq!(json(&made)["uuid"], account_uuid(1_001));
    // AccountCreated purges the owner's list.
    demo.until(&list, |v| {
        v["data"].as_array().is_some_and(|d| d.len() == 3)
    })
    .await;
}
