//! `scope = "cluster"` rate limits counted in a real Redis shared by two
//! gateway nodes, and the fallback to local counting when Redis is down.

use std::sync::Arc;
use std::time::Duration;

use rampart_gateway::SystemClock;
use rampart_testkit::{config_text, gateway, respond, Origin, RedisServer, TestClient};

fn node_config(origin: std::net::SocketAddr, redis: &RedisServer) -> String {
    config_text(
        origin,
        &format!(
            "[[routes]]\nmatch = \"POST /cards/batch\"\nupstream = \"app\"\n\
             limit = {{ name = \"batch\", rate = 5, per = \"1h\", scope = \"cluster\" }}\n\n\
             [cache]\nredis = \"{}\"\nredis_timeout = \"200ms\"\n",
            redis.url()
        ),
    )
}

#[tokio::test]
async fn a_cluster_limit_is_exact_across_nodes_and_falls_back_to_local_without_redis() {
    let mut redis = RedisServer::start();
    let origin = Origin::simple(|_| respond(201, &[], "generated")).await;
    let a = gateway(&node_config(origin.addr, &redis), Arc::new(SystemClock)).await;
    let b = gateway(&node_config(origin.addr, &redis), Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let post = |addr: std::net::SocketAddr| {
        let client = client.clone();
        async move {
            client
                .send(
                    "POST",
                    &format!("http://{addr}/cards/batch"),
                    &[],
                    rampart_gateway::body::full("[]"),
                )
                .await
        }
    };
    // 5 per hour in all: three on node A, two on node B, then both refuse.
    for addr in [a.addr, b.addr, a.addr, b.addr, a.addr] {
        let got = post(addr).await;
        assert_eq!(got.status, 201, "{}", got.text());
    }
    for addr in [a.addr, b.addr] {
        let got = post(addr).await;
        assert_eq!(got.status, 429, "the sixth in the hour, on either node");
        let wait: u64 = got.header("retry-after").parse().unwrap();
        assert!(
            (715..=720).contains(&wait),
            "one slot per 12 minutes: {wait}"
        );
        assert!(got.header("ratelimit").starts_with("\"batch\";r=0;"));
    }
    assert_eq!(origin.total(), 5);
    let keys = redis.call(&["KEYS", "rampart:rl:*"]).unwrap();
    assert_eq!(
        keys.lines().next(),
        Some("*1"),
        "one key per client and limit: {keys}"
    );

    // Redis down: every node counts locally, nothing fails with 5xx.
    redis.stop();
    for addr in [a.addr, b.addr] {
        for _ in 0..5 {
            assert_eq!(post(addr).await.status, 201);
        }
        assert_eq!(
            post(addr).await.status,
            429,
            "the local allowance is the same limit"
        );
    }
    let metrics = client.metrics(&a).await;
    assert!(
        metrics.contains("rampart_redis_errors_total{op=\"rate-limit\"} 6"),
        "{metrics}"
    );
    assert!(metrics.contains("rampart_redis_up 0"), "{metrics}");
    let ready = client
        .get(&format!("http://{}/readyz", a.admin_addr.unwrap()), &[])
        .await;
    assert_eq!(ready.status, 200, "Redis down does not make a node unready");
    assert!(
        ready.text().contains("\"redis\":{\"status\":\"down\"}"),
        "{}",
        ready.text()
    );

    // Redis back (empty): counting returns to Redis by itself.
    redis.resume();
    let mut counted_in_redis = false;
    for _ in 0..50 {
        let _ = post(a.addr).await;
        if redis
            .call(&["KEYS", "rampart:rl:*"])
            .is_some_and(|k| k.starts_with("*1"))
        {
            counted_in_redis = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        counted_in_redis,
        "the gateway reconnects to Redis by itself"
    );
}
