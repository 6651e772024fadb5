//! The guards as tower layers around plain `service_fn` services, on a
//! manual clock.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use rampart_core::ManualClock;
use rampart_guard::admission::Settings as AdmissionSettings;
use rampart_guard::breaker::{Settings as BreakerSettings, State};
use rampart_guard::gcra::Limit;
use rampart_guard::layer::{AdmissionLayer, CircuitBreakerLayer, RateLimitLayer};
use tower::{service_fn, Layer, Service, ServiceExt};

/// Polls `condition` until it holds (at most 10 s): background work is
/// waited for by what it does, not by a fixed sleep.
async fn until(condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn req(key: Option<&str>) -> Request<String> {
    let mut b = Request::builder().uri("/cards/generate");
    if let Some(k) = key {
        b = b.header("x-member", k);
    }
    b.body(String::new()).unwrap()
}

#[tokio::test]
async fn rate_limit_layer_counts_per_key_exactly_over_five_minutes() {
    let clock = Arc::new(ManualClock::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let inner = service_fn(move |_r: Request<String>| {
        seen.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(String::from("card"))) }
    });
    let layer = RateLimitLayer::new(
        Limit::new(10, Duration::from_secs(300)),
        1_000,
        |r: &Request<String>| {
            r.headers()
                .get("x-member")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        },
        clock.clone(),
    );
    let mut svc = layer.layer(inner);
    for i in 0..10 {
        let r = svc
            .ready()
            .await
            .unwrap()
            .call(req(Some("m1")))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["ratelimit-policy"], "q=10;w=300");
        assert!(r.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with(&format!("r={};", 9 - i)));
    }
    let refused = svc
        .ready()
        .await
        .unwrap()
        .call(req(Some("m1")))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "30");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert!(refused.body().contains("urn:rampart:problem:rate-limited"));
    // Another member, and a request with no key, are not affected.
    let other = svc
        .ready()
        .await
        .unwrap()
        .call(req(Some("m2")))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    let anonymous = svc.ready().await.unwrap().call(req(None)).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::OK);
    clock.advance(Duration::from_secs(29));
    let early = svc
        .ready()
        .await
        .unwrap()
        .call(req(Some("m1")))
        .await
        .unwrap();
    assert_eq!(early.status(), StatusCode::TOO_MANY_REQUESTS);
    clock.advance(Duration::from_secs(1));
    let refilled = svc
        .ready()
        .await
        .unwrap()
        .call(req(Some("m1")))
        .await
        .unwrap();
    assert_eq!(refilled.status(), StatusCode::OK);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        13,
        "refusals never reach the service"
    );
}

#[tokio::test]
async fn circuit_breaker_layer_opens_refuses_fast_then_probes_and_closes() {
    let clock = Arc::new(ManualClock::new());
    let failing = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let (flag, seen) = (Arc::clone(&failing), Arc::clone(&calls));
    let inner = service_fn(move |_r: Request<String>| {
        seen.fetch_add(1, Ordering::SeqCst);
        let status = if flag.load(Ordering::SeqCst) {
            500
        } else {
            200
        };
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .body(String::new())
                    .unwrap(),
            )
        }
    });
    let layer = CircuitBreakerLayer::new(
        BreakerSettings {
            failures: 3,
            failure_rate: None,
            window: 100,
            min_requests: 20,
            open_for: Duration::from_secs(60),
            probes: 1,
        },
        clock.clone(),
    );
    let mut svc = layer.layer(inner);
    for _ in 0..3 {
        let r = svc.ready().await.unwrap().call(req(None)).await.unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(layer.state(), State::Open);
    let fast = svc.ready().await.unwrap().call(req(None)).await.unwrap();
    assert_eq!(fast.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(fast.headers()["retry-after"], "60");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "an open circuit does not call the service"
    );

    failing.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(60));
    assert_eq!(layer.state(), State::HalfOpen);
    let probe = svc.ready().await.unwrap().call(req(None)).await.unwrap();
    assert_eq!(probe.status(), StatusCode::OK);
    assert_eq!(layer.state(), State::Closed);
}

#[tokio::test]
async fn admission_layer_releases_by_priority_and_sheds_the_lowest() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (log, g) = (Arc::clone(&order), Arc::clone(&gate));
    let inner = service_fn(move |r: Request<String>| {
        let (log, g) = (Arc::clone(&log), Arc::clone(&g));
        async move {
            log.lock().unwrap().push(r.uri().path().to_string());
            g.acquire().await.unwrap().forget();
            Ok::<_, Infallible>(Response::new(String::from("done")))
        }
    });
    let layer = AdmissionLayer::new(
        AdmissionSettings {
            max_concurrency: 1,
            queue_size: 2,
            queue_timeout: Duration::from_secs(10),
        },
        &[100, 10],
        |r: &Request<String>| usize::from(!r.uri().path().starts_with("/webhook")),
    );
    let svc = layer.layer(inner);
    let send = |path: &'static str| {
        let svc = svc.clone();
        tokio::spawn(async move {
            svc.oneshot(Request::builder().uri(path).body(String::new()).unwrap())
                .await
                .unwrap()
                .status()
        })
    };
    let admission = Arc::clone(layer.admission());
    let queued = |n: usize| {
        let admission = Arc::clone(&admission);
        until(move || admission.depth(0) + admission.depth(1) == n)
    };
    // Each arrival is in place before the next is sent.
    let first = send("/browse/1");
    until(|| order.lock().unwrap().len() == 1).await;
    let low = send("/browse/2");
    queued(1).await;
    let webhook = send("/webhook/payment");
    queued(2).await;
    // Queue full (two waiting); a low newcomer cannot displace a low waiter.
    let shed = send("/browse/3").await.unwrap();
    assert_eq!(shed, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(layer.admission().depth(0) + layer.admission().depth(1), 2);
    gate.add_permits(3);
    for t in [first, low, webhook] {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        *order.lock().unwrap(),
        ["/browse/1", "/webhook/payment", "/browse/2"],
        "the webhook, queued later, is released first"
    );
}
