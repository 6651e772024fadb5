//! Spans exported over OTLP: `rampart serve` with `[tracing]` sends each
//! request's spans to a collector (here a fake one that keeps what it is
//! sent), continues a caller's trace, and tells the service behind which
//! span called it.

use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use rampart_testkit::{eventually_async, respond, Origin, TestClient};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            Value::StringValue(s) => s.clone(),
            Value::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

/// A collector that keeps every export request it is sent.
async fn collector() -> (Origin, Arc<Mutex<Vec<ExportTraceServiceRequest>>>) {
    let got: Arc<Mutex<Vec<ExportTraceServiceRequest>>> = Arc::default();
    let keep = Arc::clone(&got);
    let origin = Origin::start(move |req| {
        let keep = Arc::clone(&keep);
        async move {
            assert_eq!(req.uri, "/v1/traces");
            assert_eq!(req.headers["content-type"], "application/x-protobuf");
            assert_eq!(req.headers["x-api-key"], "k3y");
            let body = req.body.collect().await.expect("a body").to_bytes();
            let export = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
            keep.lock().unwrap().push(export);
            respond(200, &[("content-type", "application/x-protobuf")], "")
        }
    })
    .await;
    (origin, got)
}

#[tokio::test]
async fn each_request_is_exported_as_a_trace_the_origin_continues() {
    let (collector, exports) = collector().await;
    // The origin holds /slow until the test lets it go, so a second request
    // for it waits on the first one's fill.
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let gate = Arc::clone(&release);
    let origin = Origin::start(move |req| {
        let gate = Arc::clone(&gate);
        async move {
            if req.uri == "/slow" {
                let _ = gate.acquire().await.map(|p| p.forget());
            }
            respond(200, &[("cache-control", "max-age=60")], "fine")
        }
    })
    .await;
    let (listen, admin) = (rampart_testkit::free_addr(), rampart_testkit::free_addr());
    let dir = rampart_testkit::TempDir::new("traces");
    let path = dir.path.join("traced.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"{listen}\"\n\
             [admin]\nlisten = \"{admin}\"\ntoken = \"an-admin-token\"\n\
             [tracing]\notlp_endpoint = \"http://{}\"\nservice_name = \"edge-test\"\n\
             headers = {{ x-api-key = \"k3y\" }}\n\
             [[upstreams]]\nname = \"app\"\ntargets = [\"{}\"]\n\
             [[routes]]\nmatch = \"GET /*\"\nupstream = \"app\"\ncache = {{ ttl = \"60s\" }}\n",
            collector.addr, origin.addr
        ),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn,rampart::access=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start rampart serve");
    eventually_async("rampart listens", || async {
        tokio::net::TcpStream::connect(listen).await.is_ok()
    })
    .await;

    let client = TestClient::new();
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let continued = client
        .get(
            &format!("http://{listen}/continued"),
            &[("traceparent", caller.as_str()), ("tracestate", "vendor=1")],
        )
        .await;
    assert_eq!(continued.status, 200);
    let begun = client.get(&format!("http://{listen}/begun"), &[]).await;
    assert_eq!(begun.status, 200);
    let (first, second) = {
        let url = format!("http://{listen}/slow");
        let leader = tokio::spawn({
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(&url, &[]).await }
        });
        eventually_async("the fill is in flight", || async {
            origin.count("/slow") == 1
        })
        .await;
        let follower = tokio::spawn({
            let (client, url) = (client.clone(), url.clone());
            async move { client.get(&url, &[]).await }
        });
        let metrics = format!("http://{admin}/metrics");
        eventually_async("the second request waits", || async {
            client
                .get(&metrics, &[])
                .await
                .text()
                .contains("rampart_in_flight_requests 2")
        })
        .await;
        release.add_permits(1);
        (leader.await.unwrap(), follower.await.unwrap())
    };
    assert_eq!((first.status.as_u16(), second.status.as_u16()), (200, 200));
    assert_eq!(origin.count("/slow"), 1, "one fill for both");

    // Stopping sends the spans still queued.
    rampart_testkit::terminate(&child);
    // The collector answers on this thread meanwhile.
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("rampart exits");
    assert!(out.status.success());
    let log: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();

    let exports = exports.lock().unwrap();
    assert!(!exports.is_empty(), "nothing was exported");
    let mut spans = Vec::new();
    for export in exports.iter() {
        for resource in &export.resource_spans {
            let service = resource
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| kv.value.as_ref()?.value.as_ref());
            assert_eq!(
                service,
                Some(&Value::StringValue("edge-test".into())),
                "service.name"
            );
            for scope in &resource.scope_spans {
                spans.extend(scope.spans.iter().cloned());
            }
        }
    }
    let seen = origin.seen();
    let sent_upstream = |path: &str| {
        seen.iter()
            .find(|(_, uri, _)| uri == path)
            .map(|(_, _, h)| h.clone())
            .unwrap_or_else(|| panic!("the origin saw no {path}"))
    };
    let server_span = |path: &str| {
        spans
            .iter()
            .find(|s| {
                s.kind == SpanKind::Server as i32
                    && attribute(s, "url.path").as_deref() == Some(path)
            })
            .unwrap_or_else(|| panic!("no server span for {path} in {spans:#?}"))
    };
    let children = |parent: &Span| -> Vec<&Span> {
        spans
            .iter()
            .filter(|s| s.parent_span_id == parent.span_id && s.trace_id == parent.trace_id)
            .collect()
    };

    // A caller's trace is continued: the request's span is the child of the
    // caller's, and the origin is told the upstream call's span.
    let request = server_span("/continued");
    assert_eq!(hex(&request.trace_id), CALLER_TRACE);
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    assert_eq!(request.name, "GET");
    assert_eq!(
        attribute(request, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attribute(request, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attribute(request, "request_id").as_deref(),
        Some(continued.header("x-request-id"))
    );
    let below = children(request);
    let lookup = below
        .iter()
        .find(|s| s.name == "cache lookup")
        .expect("a cache lookup span");
    assert_eq!(
        attribute(lookup, "rampart.cache.tier").as_deref(),
        Some("l1")
    );
    assert_eq!(
        attribute(lookup, "rampart.cache.result").as_deref(),
        Some("miss")
    );
    let call = below
        .iter()
        .find(|s| s.kind == SpanKind::Client as i32)
        .expect("an upstream call span");
    assert_eq!(call.name, "GET");
    assert_eq!(
        attribute(call, "server.port").as_deref(),
        Some(origin.addr.port().to_string().as_str())
    );
    assert_eq!(
        attribute(call, "http.response.status_code").as_deref(),
        Some("200")
    );
    let headers = sent_upstream("/continued");
    assert_eq!(
        headers["traceparent"],
        format!("00-{CALLER_TRACE}-{}-01", hex(&call.span_id)).as_str()
    );
    assert_eq!(headers["tracestate"], "vendor=1");

    // Without one, the request's span begins a trace, and its id is the one
    // the access log names.
    let request = server_span("/begun");
    assert!(request.parent_span_id.is_empty(), "a root span");
    let trace = hex(&request.trace_id);
    let call = children(request)
        .into_iter()
        .find(|s| s.kind == SpanKind::Client as i32)
        .expect("an upstream call span");
    assert_eq!(
        sent_upstream("/begun")["traceparent"],
        format!("00-{trace}-{}-01", hex(&call.span_id)).as_str()
    );
    let access = log
        .iter()
        .find(|l| l["fields"]["uri"] == "/begun")
        .unwrap_or_else(|| panic!("no access line for /begun in {log:?}"));
    assert_eq!(access["fields"]["trace_id"], trace.as_str());

    // The request that found the fill in flight waited for it.
    let waits: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "coalesced wait")
        .collect();
    assert_eq!(waits.len(), 1, "{spans:#?}");
    let waited = spans
        .iter()
        .find(|s| s.span_id == waits[0].parent_span_id)
        .expect("the wait's request span");
    assert_eq!(attribute(waited, "url.path").as_deref(), Some("/slow"));
    assert_eq!(
        attribute(waited, "http.response.status_code").as_deref(),
        Some("200")
    );
}
