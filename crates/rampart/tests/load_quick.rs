//! `rampart load URL` as oha and hey users type it: `-c`, `-n`, `-z`, `-q`,
//! `-m`, `-H`, `-d`/`-D`, `--timeout`, `--http2`, and `https://` with
//! `--cacert` or `--insecure`.

use std::process::Command;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use rampart_testkit::tls::{https_origin, TestCa};
use rampart_testkit::{respond, Origin, TempDir};

/// Runs `rampart ARGS` off the test's runtime (the origins run on it).
async fn rampart(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(&args)
            .output()
            .expect("run rampart");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_with_oha_flags_sends_what_they_say() {
    type Seen = Vec<(String, String, Option<String>, String)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let keep = Arc::clone(&seen);
    let origin = Origin::start(move |req| {
        let keep = Arc::clone(&keep);
        async move {
            let header = req
                .headers
                .get("x-run")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = req.body.collect().await.unwrap().to_bytes();
            keep.lock().unwrap().push((
                req.method.to_string(),
                req.uri.clone(),
                header,
                String::from_utf8_lossy(&body).into_owned(),
            ));
            respond(201, &[], "made")
        }
    })
    .await;
    let url = format!("http://{}/orders?x=1", origin.addr);
    // -n: exactly that many requests, shared by -c connections.
    let (code, out, err) = rampart(&[
        "load",
        &url,
        "-n",
        "37",
        "-c",
        "4",
        "-m",
        "post",
        "-H",
        "x-run: {{vu}} 7",
        "-d",
        "{\"qty\":2}",
        "--timeout",
        "5s",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 37, "-n 37 sends 37 requests");
    for (method, uri, header, body) in &got {
        assert_eq!(method, "POST");
        assert_eq!(uri, "/orders?x=1");
        assert_eq!(
            header.as_deref(),
            Some("{{vu}} 7"),
            "a header is sent as typed"
        );
        assert_eq!(body, "{\"qty\":2}");
    }
    assert!(out.contains("37 requests"), "{out}");
    assert!(out.contains("201 ×37"), "{out}");

    // -D reads the body from a file; -z bounds the run by time.
    seen.lock().unwrap().clear();
    let dir = TempDir::new("load-quick");
    let body = dir.path.join("body.json");
    std::fs::write(&body, "from a file").unwrap();
    let (code, out, err) = rampart(&[
        "load",
        &url,
        "-z",
        "1s",
        "-c",
        "2",
        "-D",
        body.to_str().unwrap(),
        "-m",
        "PUT",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let got = seen.lock().unwrap().clone();
    assert!(!got.is_empty());
    assert!(got
        .iter()
        .all(|(m, _, _, b)| m == "PUT" && b == "from a file"));

    // -q with -n: that many requests at that rate.
    seen.lock().unwrap().clear();
    let (code, out, err) = rampart(&["load", &url, "-n", "10", "-q", "20"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(seen.lock().unwrap().len(), 10);

    for (bad, says) in [
        (vec!["-n", "10", "-z", "1s"], "not both"),
        (vec!["-H", "no colon"], "Name: value"),
        (vec!["-m", "BAD METHOD"], "not a method"),
        (vec!["-D", "/nonexistent/body"], "-D /nonexistent/body"),
        (vec!["--timeout", "0s"], "--timeout"),
    ] {
        let mut args = vec!["load", url.as_str()];
        args.extend(bad.iter().copied());
        let (code, _, err) = rampart(&args).await;
        assert_eq!(code, 2, "{bad:?}: {err}");
        assert!(err.contains(says), "{bad:?}: {err}");
    }
    let dir = TempDir::new("load-quick");
    let scenario = dir.path.join("plan.toml");
    std::fs::write(&scenario, "").unwrap();
    let (code, _, err) = rampart(&["load", scenario.to_str().unwrap(), "-c", "5"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("-c apply to a URL"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_targets_are_verified_against_the_system_and_cacert() {
    let dir = TempDir::new("load-quick");
    let ca = TestCa::new("Rampart load test CA");
    let ca_file = ca.write(&dir.path, "ca");
    let leaf = ca.leaf(&dir.path, "site", &["localhost"], 2099);
    let (addr, seen) = https_origin(&leaf, &["h2", "http/1.1"], None).await;
    let url = format!("https://localhost:{}/", addr.port());

    let (code, out, err) = rampart(&[
        "load",
        &url,
        "-n",
        "20",
        "-c",
        "2",
        "--cacert",
        ca_file.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("200 ×20"), "{out}");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 20);
        assert!(seen.iter().all(|s| s.version == http::Version::HTTP_11));
        assert!(seen.iter().all(|s| s.sni.as_deref() == Some("localhost")));
    }

    // HTTP/2 by ALPN.
    seen.lock().unwrap().clear();
    let (code, out, err) = rampart(&[
        "load",
        &url,
        "-n",
        "10",
        "-c",
        "2",
        "--http2",
        "--cacert",
        ca_file.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("200 ×10"), "{out}");
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .all(|s| s.version == http::Version::HTTP_2));

    // A certificate no trusted CA signed fails every request, as a TLS
    // error; --insecure accepts it, and the report says so.
    seen.lock().unwrap().clear();
    let (code, out, err) = rampart(&["load", &url, "-n", "5", "-c", "1"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("tls error ×5"), "{out}");
    assert!(seen.lock().unwrap().is_empty());
    let (code, out, err) = rampart(&["load", &url, "-n", "5", "-c", "1", "--insecure"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("200 ×5"), "{out}");
    assert!(out.contains("--insecure"), "{out}");

    let (code, _, err) = rampart(&["load", &url, "--cacert", "/nonexistent/ca.pem"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--cacert"), "{err}");
}

/// `--shards N` runs N generator processes, each its segment, and merges
/// them exactly into one report, judged by the plan's thresholds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_run_as_processes_and_merge_into_one_report() {
    let origin = Origin::simple(|_| respond(200, &[], "ok")).await;
    let dir = TempDir::new("load-quick");
    let out = dir.path.join("merged.json");
    let url = format!("http://{}/", origin.addr);
    let (code, stdout, err) = rampart(&[
        "load",
        &url,
        "-n",
        "40",
        "-c",
        "4",
        "--shards",
        "2",
        "--out",
        out.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{stdout}{err}");
    assert_eq!(origin.total(), 40, "each shard sent its half");
    let report: rampart_load::Report =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report.shards, 2);
    assert_eq!(report.overall.requests, 40);
    assert_eq!(report.overall.latency.count, 40, "histograms merged");
    assert!(stdout.contains("40 requests"), "{stdout}");

    let scenario = dir.path.join("plan.toml");
    std::fs::write(
        &scenario,
        format!(
            "base_url = \"http://{}\"\n[[scenarios]]\nname = \"s\"\nexecutor = \"shared-iterations\"\nvus = 2\niterations = 20\nflow = \"f\"\n[[flows]]\nname = \"f\"\nsteps = [{{ name = \"home\", url = \"/\" }}]\n[thresholds]\n\"http_reqs\" = [\"count > 30\"]\n",
            origin.addr
        ),
    )
    .unwrap();
    let (code, stdout, err) = rampart(&["load", scenario.to_str().unwrap(), "--shards", "2"]).await;
    assert_eq!(code, 1, "20 requests in all fail count > 30: {stdout}{err}");
    assert!(stdout.contains("FAIL"), "{stdout}");
}
