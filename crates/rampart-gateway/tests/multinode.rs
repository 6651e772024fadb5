//! Two gateway nodes sharing a real Redis (started by the test on a free
//! port): the shared tier, purges and events reaching both nodes, the bound
//! on a node that missed a purge, and Redis trouble.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_gateway::body::full;
use rampart_gateway::{Clock, ManualClock, Running, SystemClock};
use rampart_testkit::{
    config_text, eventually, eventually_async, gateway, respond, Origin, RedisServer, TestClient,
};

const ROUTES: &str = r#"
[[routes]]
match = "GET /events/{id}"
upstream = "app"
cache = { ttl = "1h", tags = ["event:{id}"] }

[[routes]]
match = "GET /*"
upstream = "app"
cache = { ttl = "1h" }

[[events]]
name = "event.updated"
purge_tags = ["event:{id}", "events:list"]
"#;

const BOUND: Duration = Duration::from_millis(600);

async fn node(origin: SocketAddr, redis: &RedisServer) -> Running {
    node_on(origin, redis, Arc::new(SystemClock)).await
}

async fn node_on(origin: SocketAddr, redis: &RedisServer, clock: Arc<dyn Clock>) -> Running {
    let text = config_text(
        origin,
        &format!(
            "{ROUTES}\n[cache]\nredis = \"{}\"\nredis_timeout = \"200ms\"\npurge_sync = \"{}ms\"\n",
            redis.url(),
            BOUND.as_millis()
        ),
    );
    gateway(&text, clock).await
}

/// Whether the shared tier holds an entry for `url` (its writes happen in
/// the background, after the answer).
fn in_l2(redis: &RedisServer, url: &str) -> bool {
    redis
        .call(&["EXISTS", &format!("rampart:c:{{{url}}}")])
        .is_some_and(|r| r.trim() == ":1")
}

/// Waits until the shared tier holds `path` of the test host.
async fn stored_in_l2(redis: &RedisServer, path: &str) {
    let url = format!("http://events.test{path}");
    eventually(&format!("{url} in L2"), || in_l2(redis, &url)).await;
}

async fn versioned_origin() -> (Origin, Arc<AtomicUsize>) {
    let version = Arc::new(AtomicUsize::new(1));
    let v = Arc::clone(&version);
    let origin = Origin::simple(move |req| {
        let tags: &[(&str, &str)] = if req.uri == "/events" {
            &[("surrogate-key", "events:list")]
        } else {
            &[]
        };
        respond(
            200,
            tags,
            format!("{} v{}", req.uri, v.load(Ordering::SeqCst)),
        )
    })
    .await;
    (origin, version)
}

/// Every node is reached under one public name, as behind a load balancer.
const HOST: (&str, &str) = ("host", "events.test");

async fn text(client: &TestClient, gw: &Running, path: &str) -> String {
    client
        .get(&format!("http://{}{path}", gw.addr), &[HOST])
        .await
        .text()
}

/// `GET` on the admin listener of `gw`, with the token.
async fn admin(client: &TestClient, gw: &Running, path: &str) -> String {
    client
        .get(
            &format!("http://{}{path}", gw.admin_addr.unwrap()),
            &[("authorization", "Bearer test-token")],
        )
        .await
        .text()
}

/// `POST` of a JSON `body` on the admin listener of `gw`, with the token;
/// asserts a 200.
async fn admin_post(client: &TestClient, gw: &Running, path: &str, body: &'static str) {
    let r = client
        .send(
            "POST",
            &format!("http://{}{path}", gw.admin_addr.unwrap()),
            &[("authorization", "Bearer test-token")],
            full(body),
        )
        .await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
}

/// How late a node's timers may fire on a loaded test machine (CI runs the
/// test binaries side by side on 2 cores; 600 ms once proved 2 ms short). A
/// node that never learns of a purge would serve the old copy for its
/// whole hour, so the allowance still tells a node that keeps its bound
/// from one that does not.
const LATE: Duration = Duration::from_millis(1_400);

/// Whether `path` reads `want` within `within` (plus [`LATE`]).
async fn reads_within(
    client: &TestClient,
    gw: &Running,
    path: &str,
    want: &str,
    within: Duration,
) -> bool {
    let until = Instant::now() + within + LATE;
    loop {
        if text(client, gw, path).await == want {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_l2_and_purges_reach_every_node() {
    let redis = RedisServer::start();
    let (origin, version) = versioned_origin().await;
    let (a, b) = (
        node(origin.addr, &redis).await,
        node(origin.addr, &redis).await,
    );
    let client = TestClient::new();

    // A miss on node A is a hit on node B: one origin request in all.
    assert_eq!(text(&client, &a, "/events/7").await, "/events/7 v1");
    stored_in_l2(&redis, "/events/7").await;
    let on_b = client
        .get(&format!("http://{}/events/7", b.addr), &[HOST])
        .await;
    assert_eq!(on_b.text(), "/events/7 v1");
    assert!(
        on_b.header("cache-status").ends_with("detail=l2"),
        "{}",
        on_b.header("cache-status")
    );
    assert_eq!(origin.count("/events/7"), 1);
    // Promoted: the next hit on B comes from its memory.
    let again = client
        .get(&format!("http://{}/events/7", b.addr), &[HOST])
        .await;
    assert!(!again.header("cache-status").contains("l2"));
    let m = admin(&client, &b, "/metrics").await;
    let hits = |tier: &str| {
        format!(r#"rampart_cache_hits_total{{route="GET /events/{{id}}",tier="{tier}"}} 1"#)
    };
    assert!(m.contains(&hits("l2")) && m.contains(&hits("l1")), "{m}");
    for path in ["/events/8", "/events", "/about"] {
        text(&client, &a, path).await;
        stored_in_l2(&redis, path).await;
        text(&client, &b, path).await;
        assert_eq!(origin.count(path), 1, "{path} fetched once for both nodes");
    }

    // An event posted to node A: both nodes serve fresh content next.
    version.store(2, Ordering::SeqCst);
    admin_post(&client, &a, "/admin/events/event.updated", r#"{"id": 7}"#).await;
    for gw in [&a, &b] {
        assert!(
            reads_within(
                &client,
                gw,
                "/events/7",
                "/events/7 v2",
                Duration::from_millis(300)
            )
            .await
        );
        assert!(
            reads_within(
                &client,
                gw,
                "/events",
                "/events v2",
                Duration::from_millis(300)
            )
            .await
        );
        // Exactly the tagged resources: the others are still v1.
        assert_eq!(text(&client, gw, "/events/8").await, "/events/8 v1");
        assert_eq!(text(&client, gw, "/about").await, "/about v1");
    }
    assert_eq!(
        origin.count("/events/7"),
        2,
        "the fresh copy was shared too"
    );

    // A purge by tag through the admin API on node B reaches node A.
    version.store(3, Ordering::SeqCst);
    admin_post(&client, &b, "/admin/purge", r#"{"tags": ["event:8"]}"#).await;
    assert!(
        reads_within(
            &client,
            &a,
            "/events/8",
            "/events/8 v3",
            Duration::from_millis(300)
        )
        .await
    );
    assert_eq!(text(&client, &a, "/events/7").await, "/events/7 v2");

    // An application publishes the event on Redis instead: both nodes purge.
    version.store(4, Ordering::SeqCst);
    redis.call(&[
        "PUBLISH",
        "rampart:events",
        r#"{"name": "event.updated", "data": {"id": 7}}"#,
    ]);
    for gw in [&a, &b] {
        assert!(reads_within(&client, gw, "/events/7", "/events/7 v4", BOUND).await);
        assert_eq!(text(&client, gw, "/about").await, "/about v1");
    }

    // Purges are counted by where they came from: A took the HTTP event, B
    // the admin purge, and both the event published on Redis; each node
    // also applied two of the other's as a peer (its HTTP purge, and its
    // copy of the Redis event, logged for nodes that missed the event).
    // A node may still be working through its messages: wait for them
    // (every purge is applied once, so the counts never overshoot).
    let purges = |source: &str, n: u32| format!(r#"rampart_purges_total{{source="{source}"}} {n}"#);
    let want_a = [purges("event", 1), purges("peer", 2), purges("pubsub", 1)];
    let want_b = [purges("api", 1), purges("peer", 2), purges("pubsub", 1)];
    let until = Instant::now() + Duration::from_secs(3);
    let (ma, mb) = loop {
        let (ma, mb) = (
            admin(&client, &a, "/metrics").await,
            admin(&client, &b, "/metrics").await,
        );
        let settled =
            want_a.iter().all(|w| ma.contains(w)) && want_b.iter().all(|w| mb.contains(w));
        if settled || Instant::now() > until {
            break (ma, mb);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for want in &want_a {
        assert!(ma.contains(want), "{want} on A: {ma}");
    }
    for want in &want_b {
        assert!(mb.contains(want), "{want} on B: {mb}");
    }
    assert!(!ma.contains(r#"source="api""#), "{ma}");
    // What Redis holds: /events/7, /events/8 and /about (the last event
    // took /events), under the tags event:7 and event:8.
    let stats: serde_json::Value =
        serde_json::from_str(&admin(&client, &a, "/admin/cache/stats").await).unwrap();
    assert_eq!(stats["l2"]["complete"], true, "{stats}");
    assert_eq!(stats["l2"]["entries"], 3, "{stats}");
    assert_eq!(stats["l2"]["tags"], 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_missed_a_purge_stops_serving_it_within_the_bound() {
    let redis = RedisServer::start();
    let (origin, version) = versioned_origin().await;
    let a = node(origin.addr, &redis).await;
    let client = TestClient::new();
    assert_eq!(text(&client, &a, "/events/5").await, "/events/5 v1");
    assert_eq!(text(&client, &a, "/events/5").await, "/events/5 v1");
    stored_in_l2(&redis, "/events/5").await;

    // Another node purged event 5, but its message never reached this one:
    // only the epoch and the log in Redis say so. (The L2 copy went too.)
    version.store(2, Ordering::SeqCst);
    redis.call(&["DEL", "rampart:c:{http://events.test/events/5}"]);
    redis.call(&["INCR", "rampart:purge-epoch"]);
    let epoch = redis.call(&["GET", "rampart:purge-epoch"]).unwrap();
    let epoch: u64 = epoch.lines().nth(1).unwrap().parse().unwrap();
    let message = format!(
        r#"{{"node":"elsewhere","epoch":{epoch},"purge":{{"keys":[],"tags":["event:5"],"prefixes":[]}}}}"#
    );
    redis.call(&["LPUSH", "rampart:purge-log", &message]);
    let started = Instant::now();
    assert!(
        reads_within(&client, &a, "/events/5", "/events/5 v2", BOUND).await,
        "still serving the purged copy after {:?}",
        started.elapsed()
    );

    // Purges lost beyond the log: the node flushes its memory tier.
    text(&client, &a, "/about").await;
    stored_in_l2(&redis, "/about").await;
    version.store(3, Ordering::SeqCst);
    redis.call(&["INCRBY", "rampart:purge-epoch", "5000"]);
    redis.call(&["DEL", "rampart:c:{http://events.test/about}"]);
    assert!(reads_within(&client, &a, "/about", "/about v3", BOUND).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_traffic_causes_no_errors_and_is_rejoined() {
    let mut redis = RedisServer::start();
    let (origin, version) = versioned_origin().await;
    let clock = Arc::new(ManualClock::new());
    let a = node_on(origin.addr, &redis, clock.clone()).await;
    let client = TestClient::new();
    let mut statuses = Vec::new();
    for i in 0..40 {
        if i == 10 {
            redis.stop();
        }
        let got = client
            .get(&format!("http://{}/events/{}", a.addr, i % 5), &[HOST])
            .await;
        statuses.push(got.status.as_u16());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    // Out of touch for longer than the bound: the memory tier is not used
    // (a purge elsewhere could not reach this node), the origin answers.
    clock.advance(BOUND + Duration::from_millis(1));
    version.store(2, Ordering::SeqCst);
    assert_eq!(text(&client, &a, "/events/1").await, "/events/1 v2");
    let metrics = client.metrics(&a).await;
    assert!(metrics.contains("rampart_redis_up 0"), "{metrics}");

    // Redis back: the node reconnects by itself and caches again.
    redis.resume();
    let url = format!("http://{}/events/4", a.addr);
    eventually_async("the node caches again", || async {
        client.get(&url, &[HOST]).await;
        let seen = origin.count("/events/4");
        let again = client.get(&url, &[HOST]).await;
        again.header("cache-status").contains("hit") && origin.count("/events/4") == seen
    })
    .await;
}

#[tokio::test]
async fn without_a_memory_tier_every_hit_comes_from_redis() {
    let redis = RedisServer::start();
    let (origin, _) = versioned_origin().await;
    let config = config_text(
        origin.addr,
        &format!(
            "{ROUTES}\n[cache]\nmemory = \"0\"\nredis = \"{}\"\n",
            redis.url()
        ),
    );
    let gw = gateway(&config, Arc::new(SystemClock)).await;
    let client = TestClient::new();
    assert_eq!(text(&client, &gw, "/about").await, "/about v1");
    stored_in_l2(&redis, "/about").await;
    for _ in 0..3 {
        let r = client
            .get(&format!("http://{}/about", gw.addr), &[HOST])
            .await;
        assert_eq!(r.text(), "/about v1");
        assert!(
            r.header("cache-status").ends_with("detail=l2"),
            "{}",
            r.header("cache-status")
        );
    }
    assert_eq!(origin.count("/about"), 1);
}

#[tokio::test]
async fn a_tag_index_holds_only_live_entries() {
    let redis = RedisServer::start();
    let (origin, _) = versioned_origin().await;
    let config = config_text(
        origin.addr,
        &format!(
            "[[routes]]\nmatch = \"GET /news/{{id}}\"\nupstream = \"app\"\n\
             cache = {{ ttl = \"1s\", tags = [\"news\"] }}\n\
             [cache]\nredis = \"{}\"\n",
            redis.url()
        ),
    );
    let gw = gateway(&config, Arc::new(SystemClock)).await;
    let client = TestClient::new();
    let members = || {
        let reply = redis
            .call(&["ZCARD", "rampart:t:{news}"])
            .unwrap_or_default();
        reply
            .trim()
            .trim_start_matches(':')
            .parse::<usize>()
            .unwrap()
    };
    for id in 1..=3 {
        text(&client, &gw, &format!("/news/{id}")).await;
    }
    eventually("three entries indexed", || members() == 3).await;
    // The three expire (on Redis's clock); a tag that keeps being used does
    // not keep them.
    eventually("the entries expire in Redis", || {
        (1..=3).all(|id| !in_l2(&redis, &format!("http://events.test/news/{id}")))
    })
    .await;
    text(&client, &gw, "/news/4").await;
    eventually("expired entries left the tag index", || members() == 1).await;
    // A purge by the tag still reaches the live entry.
    admin_post(&client, &gw, "/admin/purge", r#"{"tags": ["news"]}"#).await;
    assert_eq!(members(), 0);

    // Tag sets an earlier Rampart left as plain sets still purge their
    // entries: one converted by a store, one purged as it is.
    for tag in ["news", "legacy"] {
        redis.call(&["SET", &format!("rampart:c:{{/old-{tag}}}"), "x", "EX", "60"]);
        redis.call(&[
            "SADD",
            &format!("rampart:t:{{{tag}}}"),
            &format!("rampart:c:{{/old-{tag}}}"),
        ]);
        redis.call(&["EXPIRE", &format!("rampart:t:{{{tag}}}"), "60"]);
    }
    text(&client, &gw, "/news/5").await;
    eventually("the old member and the new one", || members() == 2).await;
    admin_post(
        &client,
        &gw,
        "/admin/purge",
        r#"{"tags": ["news", "legacy"]}"#,
    )
    .await;
    for tag in ["news", "legacy"] {
        let gone = redis.call(&["EXISTS", &format!("rampart:c:{{/old-{tag}}}")]);
        assert_eq!(gone.as_deref().map(str::trim), Some(":0"), "{tag}");
    }
    let r = client
        .get(&format!("http://{}/news/4", gw.addr), &[HOST])
        .await;
    assert!(
        r.header("cache-status").contains("miss"),
        "{}",
        r.header("cache-status")
    );
    assert_eq!(origin.count("/news/4"), 2);
}
