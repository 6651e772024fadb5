//! The engine against an in-process target with known, injected latency.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_load::{parse, run, RunOptions};
use rampart_testkit::{respond, Origin};

/// A target whose every response takes `delay` (slept on a blocking thread,
/// so the delay is precise rather than rounded to the timer's millisecond).
async fn target(delay: Duration) -> Origin {
    Origin::start(move |_| async move {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(delay)).await;
        respond(200, &[("content-type", "text/plain")], "ok")
    })
    .await
}

fn plan(text: &str) -> rampart_load::Plan {
    parse(text, "test.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrival_rate_is_held_and_latency_is_measured_exactly() {
    let origin = target(Duration::from_millis(20)).await;
    let p = plan(&format!(
        r#"
base_url = "http://{}"
[[scenarios]]
name = "steady"
executor = "constant-arrival-rate"
rate = 200
duration = "3s"
max_vus = 50
flow = "one"
[[flows]]
name = "one"
steps = [{{ name = "get", url = "/x" }}]
"#,
        origin.addr
    ));
    let report = run(&p, &RunOptions::default(), |_| {}).await.unwrap();
    let expected = 200.0 * 3.0;
    let got = report.overall.requests as f64;
    assert!(
        (got - expected).abs() / expected <= 0.02,
        "{got} requests, expected {expected} ± 2 %"
    );
    assert_eq!(origin.total() as u64, report.overall.requests);
    // Never under the injected delay; above it only by this machine's
    // wake-up costs (a blocking thread waking a runtime worker costs ~1.5 ms
    // on small VMs), and the schedule itself adds little on top of the
    // service time.
    let p50 = report.overall.latency.p50_ms;
    let service = report.overall.service.p50_ms;
    assert!(
        (20.0..=23.0).contains(&p50),
        "p50 {p50} ms for an injected 20 ms (service p50 {service} ms)"
    );
    assert!(
        p50 - service <= 1.5,
        "the schedule added {} ms at the median",
        p50 - service
    );
    assert_eq!(report.overall.failures, 0);
    assert_eq!(report.dropped_iterations, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_latency_but_not_in_service_time() {
    let stall_until: Arc<Mutex<Option<Instant>>> = Arc::default();
    let flag = Arc::clone(&stall_until);
    let origin = Origin::start(move |_| {
        let until = *flag.lock().unwrap();
        async move {
            if let Some(until) = until.filter(|u| *u > Instant::now()) {
                tokio::time::sleep_until(until.into()).await;
            }
            respond(200, &[], "ok")
        }
    })
    .await;
    let p = plan(&format!(
        r#"
base_url = "http://{}"
[[scenarios]]
name = "steady"
executor = "constant-arrival-rate"
rate = 100
duration = "3s"
max_vus = 2
flow = "one"
[[flows]]
name = "one"
steps = [{{ name = "get", url = "/x" }}]
"#,
        origin.addr
    ));
    let stall = Arc::clone(&stall_until);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        *stall.lock().unwrap() = Some(Instant::now() + Duration::from_secs(1));
    });
    let report = run(&p, &RunOptions::default(), |_| {}).await.unwrap();
    let latency = &report.overall.latency;
    let service = &report.overall.service;
    // About a third of the iterations were scheduled during the stall and
    // waited for a user: their latency from the intended start shows it.
    assert!(
        latency.p90_ms > 300.0,
        "latency p90 {} ms should show the stall",
        latency.p90_ms
    );
    assert!(latency.max_ms > 900.0, "latency max {} ms", latency.max_ms);
    // Sent once a user was free, they were served at once.
    assert!(
        service.p90_ms < 50.0,
        "service p90 {} ms should not",
        service.p90_ms
    );
    assert!(
        report.late_starts > 50,
        "{} late starts",
        report.late_starts
    );
    assert_eq!(report.dropped_iterations, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_extract_feed_and_check() {
    let origin = Origin::simple(|req| match req.uri.as_str() {
        "/login" => {
            let email = req
                .headers
                .get("x-email")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            respond(
                200,
                &[("content-type", "application/json")],
                format!(r#"{{"token":"tok-{email}","ok":true}}"#),
            )
        }
        "/profile" => {
            let auth = req
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if auth.starts_with("Bearer tok-") && auth.ends_with("@example.com") {
                respond(200, &[("cache-status", "rampart; hit; ttl=5")], "profile")
            } else {
                respond(401, &[], "who are you")
            }
        }
        _ => respond(404, &[], ""),
    })
    .await;
    let dir = rampart_testkit::TempDir::new("load-feed");
    std::fs::write(
        dir.path.join("users.csv"),
        "email\na@example.com\nb@example.com\n",
    )
    .unwrap();
    let text = format!(
        r#"
base_url = "http://{}"
[[feeders]]
name = "users"
csv = "users.csv"
[[scenarios]]
name = "members"
executor = "constant-vus"
vus = 2
duration = "1s"
flow = "login-profile"
feeder = "users"
[[flows]]
name = "login-profile"
[[flows.steps]]
name = "login"
method = "POST"
url = "/login"
headers = {{ x-email = "{{{{email}}}}" }}
json = {{ email = "{{{{email}}}}" }}
extract = {{ token = {{ json = "/token" }} }}
checks = {{ status = 200, json = {{ "/ok" = true }} }}
[[flows.steps]]
name = "profile"
url = "/profile"
headers = {{ authorization = "Bearer {{{{token}}}}" }}
checks = {{ status = 200, body_contains = "profile" }}
"#,
        origin.addr
    );
    let p = parse(&text, "flow.toml", &dir.path).unwrap_or_else(|e| panic!("{e}"));
    let report = run(&p, &RunOptions::default(), |_| {}).await.unwrap();
    let profile = report.steps.iter().find(|s| s.step == "profile").unwrap();
    assert!(profile.requests > 10);
    assert_eq!(
        profile.failures, 0,
        "every profile request carried the extracted token"
    );
    assert_eq!(profile.checks_failed, 0);
    assert_eq!(profile.hit_rate(), Some(1.0));
    let login = report.steps.iter().find(|s| s.step == "login").unwrap();
    assert_eq!(login.checks_failed, 0);
    assert_eq!(login.checks_passed, 2 * login.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_responses_are_survived() {
    let origin = Origin::simple(|req| match req.uri.as_str() {
        "/huge" => respond(200, &[], vec![b'x'; 8 << 20]),
        _ => respond(
            200,
            &[("content-type", "text/plain")],
            vec![0xff, 0xfe, 0x00, 0xc3],
        ),
    })
    .await;
    let p = plan(&format!(
        r#"
base_url = "http://{}"
[[scenarios]]
name = "odd"
executor = "constant-vus"
vus = 2
duration = "1s"
flow = "odd"
[[flows]]
name = "odd"
steps = [
  {{ name = "huge", url = "/huge", checks = {{ body_contains = "xxx" }} }},
  {{ name = "binary", url = "/binary", extract = {{ v = {{ json = "/x" }} }}, checks = {{ json = {{ "/x" = 1 }} }} }},
  {{ name = "closed", url = "http://127.0.0.1:1/nothing", timeout = "500ms" }},
]
"#,
        origin.addr
    ));
    let report = run(&p, &RunOptions::default(), |_| {}).await.unwrap();
    let by = |n: &str| report.steps.iter().find(|s| s.step == n).unwrap().clone();
    assert!(by("huge").requests > 0 && by("huge").failures == 0);
    assert!(
        by("binary").checks_failed > 0,
        "a JSON check on binary fails, without panicking"
    );
    assert_eq!(
        by("closed").failures,
        by("closed").requests,
        "a refused connection is a failure"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramping_arrival_rate_follows_its_stages() {
    let origin = target(Duration::from_millis(1)).await;
    // 0 → 200/s over 2 s (200 iterations), then 200/s for 1 s (200 more).
    let p = plan(&format!(
        r#"
base_url = "http://{}"
[[scenarios]]
name = "ramp"
executor = "ramping-arrival-rate"
start_rate = 0
stages = [{{ duration = "2s", target = 200 }}, {{ duration = "1s", target = 200 }}]
max_vus = 50
flow = "one"
[[flows]]
name = "one"
steps = [{{ name = "get", url = "/x" }}]
"#,
        origin.addr
    ));
    let report = run(&p, &RunOptions::default(), |_| {}).await.unwrap();
    let got = report.overall.requests as f64;
    assert!(
        (got - 400.0).abs() / 400.0 <= 0.02,
        "{got} requests, expected 400 ± 2 %"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_scenarios_run_over_http2() {
    let origin = target(Duration::from_millis(1)).await;
    let config = rampart_testkit::config_text(
        origin.addr,
        "[[routes]]\nmatch = \"/*\"\nupstream = \"app\"\n",
    );
    let gw = rampart_testkit::gateway(&config, Arc::new(rampart_gateway::SystemClock)).await;
    let p = plan(&format!(
        r#"
base_url = "http://{}"
[[scenarios]]
name = "h2"
executor = "constant-vus"
vus = 4
duration = "1s"
protocol = "h2c"
flow = "one"
[[flows]]
name = "one"
steps = [{{ name = "get", url = "/x", checks = {{ status = 200 }} }}]
"#,
        gw.addr
    ));
    let report = run(&p, &RunOptions::default(), |_| {}).await.unwrap();
    assert!(report.overall.requests > 50, "{}", report.overall.requests);
    assert_eq!(report.overall.failures, 0);
    assert_eq!(report.overall.checks_failed, 0);
}

/// An HTTP/2-only origin that answers how many body bytes each request
/// carried and refuses every stream after a connection's third with
/// `REFUSED_STREAM` (as a server at its `max_requests` or draining does),
/// unread.
async fn h2_origin_ending_connections() -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>)
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (connections, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (c, r) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let r = r.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                let mut accepted = 0;
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    accepted += 1;
                    if accepted > 3 {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    let r = r.clone();
                    tokio::spawn(async move {
                        let mut body = req.into_body();
                        let mut len = 0;
                        while let Some(Ok(data)) = body.data().await {
                            len += data.len();
                            let _ = body.flow_control().release_capacity(data.len());
                        }
                        r.fetch_add(1, Ordering::SeqCst);
                        let Ok(mut out) = respond.send_response(http::Response::new(()), false)
                        else {
                            return;
                        };
                        let _ = out.send_data(bytes::Bytes::from(format!("got {len} bytes")), true);
                    });
                }
            });
        }
    });
    (addr, connections, requests)
}

/// HTTP/2 users send bodies, read them for checks, and send a request the
/// server refused unread once more on a new connection: none is lost or
/// counted as failed, and each is answered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_users_carry_on_when_the_server_ends_a_connection() {
    let (addr, connections, requests) = h2_origin_ending_connections().await;
    let p = plan(&format!(
        r#"
base_url = "http://{addr}"
[[scenarios]]
name = "h2"
executor = "shared-iterations"
vus = 2
iterations = 60
max_duration = "30s"
protocol = "h2c"
flow = "one"
[[flows]]
name = "one"
steps = [{{ name = "post", method = "POST", url = "/x", body = "hello", checks = {{ status = 200, body_contains = "got 5 bytes" }} }}]
"#
    ));
    let report = run(&p, &RunOptions::default(), |_| {}).await.unwrap();
    let o = &report.overall;
    assert_eq!(o.requests, 60);
    assert_eq!(o.failures, 0, "{:?}", o.errors);
    assert_eq!(o.checks_failed, 0);
    assert_eq!(requests.load(Ordering::SeqCst), 60);
    // Three requests a connection: at least 20 connections.
    assert!(
        connections.load(Ordering::SeqCst) >= 20,
        "{}",
        connections.load(Ordering::SeqCst)
    );
    assert!(o.bytes_received >= 60 * 11, "{}", o.bytes_received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_needing_more_sockets_than_allowed_are_refused_before_starting() {
    let origin = target(Duration::from_millis(1)).await;
    let limit = rampart_load::engine::raise_fd_limit();
    let p = plan(&format!(
        r#"
base_url = "http://{}"
[[scenarios]]
name = "crowd"
executor = "users"
users = {}
duration = "1s"
rate_per_user = 0.1
flow = "one"
[[flows]]
name = "one"
steps = [{{ name = "get", url = "/x" }}]
"#,
        origin.addr,
        limit + 1
    ));
    let err = run(&p, &RunOptions::default(), |_| {})
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("pool") && text.contains("--segment"),
        "{text}"
    );
    assert_eq!(origin.total(), 0, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_stops_the_run_early() {
    let origin = target(Duration::from_millis(20)).await;
    let p = plan(&format!(
        r#"
base_url = "http://{}"
[[scenarios]]
name = "long"
executor = "constant-vus"
vus = 2
duration = "20s"
flow = "one"
[[flows]]
name = "one"
steps = [{{ name = "get", url = "/x" }}]
[thresholds]
http_req_duration = [{{ threshold = "max < 5ms", abort_on_fail = true }}]
"#,
        origin.addr
    ));
    let started = Instant::now();
    let report = run(&p, &RunOptions::default(), |_| {}).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped after {:?}",
        started.elapsed()
    );
    assert!(!report.thresholds[0].ok);
    assert!(
        report
            .generator
            .warnings
            .iter()
            .any(|w| w.contains("abort_on_fail")),
        "{:?}",
        report.generator.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_is_retried_once_when_a_kept_alive_connection_closes_under_it() {
    let addr = rampart_testkit::one_answer_per_connection().await;
    let p = plan(&format!(
        r#"
base_url = "http://{addr}"
[[scenarios]]
name = "race"
executor = "constant-vus"
vus = 2
duration = "500ms"
flow = "race"
[[flows]]
name = "race"
steps = [
  {{ name = "first", url = "/r" }},
  {{ name = "read", url = "/r" }},
  {{ name = "write", method = "POST", url = "/w", body = "{{}}" }},
]
"#
    ));
    let report = run(&p, &RunOptions::default(), |_| {}).await.unwrap();
    let by = |n: &str| report.steps.iter().find(|s| s.step == n).unwrap().clone();
    assert!(by("read").requests > 0);
    assert_eq!(
        by("read").failures,
        0,
        "a GET the server never answered is sent again on a new connection"
    );
    assert_eq!(
        by("write").failures,
        by("write").requests,
        "a POST the server may have acted on is never sent twice"
    );
}

/// A target that drops every connection once it has read a request: with
/// `reset`, abortively (RST), else with a plain close (FIN).
async fn dropping(reset: bool) -> std::net::SocketAddr {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                if reset {
                    let _ = stream.set_zero_linger();
                }
            });
        }
    });
    addr
}

/// Every output says what went wrong: responses by status code, failures by
/// reason (no response at all, 4xx, 5xx, a failed check by name), per step
/// and in all, with the bytes sent and received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_went_wrong_is_counted_by_status_and_reason() {
    let origin = Origin::start(|req| async move {
        match req.uri.as_str() {
            "/unavailable" => respond(503, &[], "busy"),
            "/missing" => respond(404, &[], "no such thing"),
            "/stalled" => std::future::pending().await,
            _ => respond(200, &[], "fine"),
        }
    })
    .await;
    let (closing, resetting) = (dropping(false).await, dropping(true).await);
    let p = plan(&format!(
        r#"
base_url = "http://{}"
[[scenarios]]
name = "mixed"
executor = "constant-vus"
vus = 2
duration = "1s"
flow = "mixed"
[[flows]]
name = "mixed"
steps = [
  {{ name = "ok", url = "/ok" }},
  {{ name = "unavailable", url = "/unavailable", checks = {{ status = 200 }} }},
  {{ name = "missing", url = "/missing" }},
  {{ name = "closed", url = "http://{closing}/x" }},
  {{ name = "reset", url = "http://{resetting}/x" }},
  {{ name = "refused", url = "http://127.0.0.1:1/x" }},
  {{ name = "stalled", url = "/stalled", timeout = "100ms" }},
]
"#,
        origin.addr
    ));
    let report = run(&p, &RunOptions::default(), |_| {}).await.unwrap();
    let by = |n: &str| report.steps.iter().find(|s| s.step == n).unwrap().clone();
    let counts = |m: &std::collections::BTreeMap<String, u64>| -> Vec<(String, u64)> {
        m.iter().map(|(k, v)| (k.clone(), *v)).collect()
    };
    let ok = by("ok");
    assert!(ok.requests > 0);
    assert_eq!(counts(&ok.statuses), [("200".to_string(), ok.requests)]);
    assert!(ok.errors.is_empty(), "{:?}", ok.errors);
    assert!(ok.bytes_sent >= ok.requests * "GET /ok HTTP/1.1\r\n".len() as u64);
    assert!(ok.bytes_received >= ok.requests * "HTTP/1.1 200 OK\r\n\r\nfine".len() as u64);

    let unavailable = by("unavailable");
    let n = unavailable.requests;
    assert_eq!(counts(&unavailable.statuses), [("503".to_string(), n)]);
    assert_eq!(
        counts(&unavailable.errors),
        [
            (
                "check failed: status in [200] (mixed/unavailable)".to_string(),
                n
            ),
            ("http 5xx".to_string(), n),
        ]
    );
    let missing = by("missing");
    assert_eq!(
        counts(&missing.errors),
        [("http 4xx".to_string(), missing.requests)]
    );
    for (step, reason) in [
        ("closed", "closed"),
        ("reset", "reset"),
        ("refused", "connect refused"),
        ("stalled", "request timeout"),
    ] {
        let s = by(step);
        assert!(s.requests > 0, "{step}");
        assert!(s.statuses.is_empty(), "{step}: {:?}", s.statuses);
        assert_eq!(
            counts(&s.errors),
            [(reason.to_string(), s.requests)],
            "{step}"
        );
    }
    let all = &report.overall;
    let counted: u64 = all.statuses.values().sum::<u64>()
        + ["closed", "reset", "connect refused", "request timeout"]
            .iter()
            .map(|r| all.errors[*r])
            .sum::<u64>();
    assert_eq!(counted, all.requests, "every request is counted once");
    let per_second: u64 = report
        .series
        .iter()
        .map(|p| p.classes.values().sum::<u64>() + p.errors.values().sum::<u64>())
        .sum();
    assert_eq!(per_second, all.requests, "and once in the series");

    let summary = rampart_load::summary::render(&report);
    for shown in [
        "503 ×",
        "404 ×",
        "connect refused ×",
        "request timeout ×",
        "check failed: status in [200] (mixed/unavailable) ×",
        "data:",
    ] {
        assert!(
            summary.contains(shown),
            "the summary shows {shown:?}:\n{summary}"
        );
    }
    let html = rampart_load::html::render(&report, "t");
    assert!(
        html.contains("What went wrong") && html.contains("reset ×"),
        "{html}"
    );
    let json = serde_json::to_string(&report).unwrap();
    let back: rampart_load::Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back.overall.errors, report.overall.errors);
    assert_eq!(back.schema, "rampart-load/2");
}
