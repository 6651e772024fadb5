//! What operators deploy Rampart with, under `deploy/`, checked here: the
//! Prometheus rules (`promtool check rules` and their unit tests), the
//! Grafana dashboard and the rules against the metrics a running gateway
//! exports, the systemd unit (`systemd-analyze verify`), and the Kubernetes
//! manifests — structurally only (parsed, cross-referenced, their config
//! checked by `rampart check`), since no cluster runs here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Runs a program the test needs; fails saying what to install when it is
/// missing.
fn run(program: &str, package: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program}: {e}: install Debian's {package} (bash scripts/install-deps.sh test)")
        })
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

#[test]
fn prometheus_rules_check_and_pass_their_unit_tests() {
    let dir = deploy().join("prometheus");
    let check = run(
        "promtool",
        "prometheus",
        &["check", "rules", "rampart-rules.yml"],
        &dir,
    );
    assert!(check.status.success(), "{}", text(&check));
    let tests = run(
        "promtool",
        "prometheus",
        &["test", "rules", "rampart-rules.test.yml"],
        &dir,
    );
    assert!(tests.status.success(), "{}", text(&tests));
    assert!(text(&tests).contains("SUCCESS"), "{}", text(&tests));
}

/// Every `rampart_*` and `process_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let starts = (i == 0 || !word(bytes[i - 1]))
            && (text[i..].starts_with("rampart_") || text[i..].starts_with("process_"));
        if starts {
            let end = (i..bytes.len())
                .find(|&j| !word(bytes[j]))
                .unwrap_or(bytes.len());
            names.insert(text[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

/// The sample names an exposition can hold: every sample's, and each
/// family's by its type (a family with no series yet has only its `# TYPE`).
fn exported(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut parts = declared.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') {
            if let Some(name) = line.split(['{', ' ']).next() {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// A gateway with every part that exports metrics of its own configured
/// (TLS, Redis, a breaker, a queue, a rate limit), driven so that every
/// family has a series (a hit, a miss, a refusal, a shed request, a purge,
/// a reload), and its `/metrics`.
async fn full_exposition() -> String {
    let origin = rampart_testkit::Origin::start(|req| async move {
        if req.uri == "/slow" {
            // Holds the upstream's one slot while the next request queues.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        rampart_testkit::respond(200, &[], "ok")
    })
    .await;
    let redis = rampart_testkit::RedisServer::start();
    let dir = rampart_testkit::TempDir::new("deploy-metrics");
    let ca = rampart_testkit::tls::TestCa::new("Deploy CA");
    let leaf = ca.leaf(&dir.path, "site", &["shop.test"], 2099);
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [server.tls]\ncert = \"{}\"\nkey = \"{}\"\nredirect_from = \"127.0.0.1:0\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"deploy-test-token\"\n\
         [cache]\nredis = \"{}\"\n\
         [[upstreams]]\nname = \"app\"\ntargets = [\"{}\"]\n\
         circuit = {{ failures = 5 }}\nmax_concurrency = 1\nqueue = {{ size = 1, timeout = \"50ms\" }}\n\
         [[routes]]\nmatch = \"GET /limited\"\nupstream = \"app\"\n\
         limit = {{ name = \"per-ip\", rate = 1, per = \"1m\" }}\n\
         [[routes]]\nmatch = \"GET /*\"\nupstream = \"app\"\ncache = {{ ttl = \"1m\" }}\n",
        leaf.cert.display(),
        leaf.key.display(),
        redis.url(),
        origin.addr,
    );
    let path = dir.path.join("rampart.toml");
    std::fs::write(&path, &config).expect("write config");
    let parsed = rampart_config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let gw = rampart_gateway::start_from(
        &parsed,
        Arc::new(rampart_gateway::SystemClock),
        Some(path.clone()),
    )
    .await
    .expect("gateway starts");
    let client = rampart_testkit::TestClient::new();
    let https = rampart_testkit::tls::client(&[ca.der()], &["http/1.1"]);
    let get = |path: &'static str| {
        let https = Arc::clone(&https);
        let addr = gw.addr;
        async move { rampart_testkit::tls::get(&https, addr, "shop.test", path).await }
    };
    get("/page").await;
    get("/page").await;
    get("/limited").await;
    get("/limited").await;
    let slow = tokio::spawn(get("/slow"));
    rampart_testkit::eventually("the slow request holds the slot", || {
        origin.count("/slow") == 1
    })
    .await;
    get("/queued").await;
    slow.await.expect("the slow request");
    let admin = gw.admin_addr.expect("admin listener");
    let auth = [("authorization", "Bearer deploy-test-token")];
    let purge = client
        .send(
            "POST",
            &format!("http://{admin}/admin/purge"),
            &auth,
            rampart_gateway::body::full(r#"{"keys": ["/page"]}"#),
        )
        .await;
    assert_eq!(purge.status, 200, "{}", purge.text());
    let reload = client
        .send(
            "POST",
            &format!("http://{admin}/admin/reload"),
            &auth,
            rampart_gateway::body::empty(),
        )
        .await;
    assert_eq!(reload.status, 200, "{}", reload.text());
    client.metrics(&gw).await
}

#[tokio::test]
async fn the_dashboard_and_the_rules_name_only_exported_metrics() {
    let exposition = full_exposition().await;
    let exported = exported(&exposition);
    let dashboard_text =
        std::fs::read_to_string(deploy().join("grafana/rampart.json")).expect("dashboard");
    let dashboard: serde_json::Value =
        serde_json::from_str(&dashboard_text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "a dashboard worth opening");
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            assert!(
                target["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{panel}"
            );
        }
    }
    let rules =
        std::fs::read_to_string(deploy().join("prometheus/rampart-rules.yml")).expect("rules");
    for (file, text) in [("dashboard", &dashboard_text), ("rules", &rules)] {
        let named = metric_names(text);
        assert!(named.len() >= 10, "{file}: {named:?}");
        let unknown: Vec<_> = named.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "the {file} names metrics the gateway does not export: {unknown:?}\n{exposition}"
        );
    }
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(deploy().join("systemd/rampart.service")).expect("unit");
    assert!(
        unit.contains("ExecReload=/bin/kill -HUP $MAINPID"),
        "reload is SIGHUP"
    );
    assert!(
        unit.contains("RestartPreventExitStatus=2"),
        "a config error is not retried"
    );
    // `verify` wants the binary where ExecStart says: point it at this build.
    let dir = rampart_testkit::TempDir::new("deploy-systemd");
    let local = dir.path.as_path().join("rampart.service");
    std::fs::write(
        &local,
        unit.replace("/usr/local/bin/rampart", env!("CARGO_BIN_EXE_rampart")),
    )
    .expect("write unit");
    let out = run(
        "systemd-analyze",
        "systemd",
        &["verify", local.to_str().expect("utf-8 path")],
        dir.path.as_path(),
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    // `verify` only warns about keys and values it cannot use.
    assert!(!said.contains("rampart.service"), "{said}");
}

/// Every document of a YAML file, as JSON (Debian's Python and its yaml
/// module parse).
fn yaml_documents(path: &Path) -> Vec<serde_json::Value> {
    let out = run(
        "/usr/bin/python3",
        "python3-yaml",
        &[
            "-c",
            "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
            path.to_str().expect("utf-8 path"),
        ],
        &deploy(),
    );
    assert!(out.status.success(), "{}: {}", path.display(), text(&out));
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).expect("JSON")
}

#[test]
fn the_kubernetes_manifests_hold_together() {
    let mut all = Vec::new();
    for file in std::fs::read_dir(deploy().join("k8s")).expect("deploy/k8s") {
        let path = file.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            all.extend(yaml_documents(&path));
        }
    }
    let find = |kind: &str, name: &str| {
        all.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("a {kind} named {name}"))
    };
    let deployment = find("Deployment", "rampart");
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        pod["metadata"]["labels"]
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(container["lifecycle"]["preStop"].is_object(), "{container}");
    let port = |name: &str| {
        container["ports"]
            .as_array()
            .and_then(|ports| ports.iter().find(|p| p["name"] == name))
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("a container port named {name}"))
    };
    let service = find("Service", "rampart");
    assert_eq!(service["spec"]["selector"], pod["metadata"]["labels"]);
    let hpa = find("HorizontalPodAutoscaler", "rampart");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "rampart");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    let redis = find("Service", "rampart-redis");
    let redis_port = redis["spec"]["ports"][0]["port"].as_u64().expect("port");
    assert_eq!(
        redis["spec"]["selector"],
        find("Deployment", "rampart-redis")["spec"]["template"]["metadata"]["labels"]
    );

    // The config the pods mount checks, and agrees with the pod's ports and
    // the Redis Service.
    let config = find("ConfigMap", "rampart")["data"]["rampart.toml"]
        .as_str()
        .expect("rampart.toml");
    assert!(config.contains(&format!("listen = \"0.0.0.0:{}\"", port("http"))));
    assert!(config.contains(&format!("listen = \"0.0.0.0:{}\"", port("admin"))));
    assert!(config.contains(&format!("redis://rampart-redis:{redis_port}")));
    let dir = rampart_testkit::TempDir::new("deploy-k8s");
    let path = dir.path.as_path().join("rampart.toml");
    std::fs::write(&path, config).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["check", "--config", path.to_str().expect("utf-8 path")])
        .env("RAMPART_ADMIN_TOKEN", "a-token-from-the-secret")
        .output()
        .expect("run rampart check");
    assert!(out.status.success(), "{}", text(&out));
    let secret = &container["env"]
        .as_array()
        .and_then(|env| env.iter().find(|e| e["name"] == "RAMPART_ADMIN_TOKEN"))
        .expect("the token from a Secret")["valueFrom"]["secretKeyRef"];
    assert_eq!(secret["name"], "rampart-admin");
}

/// The load test Job runs N shards, each its segment from the completion
/// index, on a scenario that parses; the merge Job reads what they wrote.
#[test]
fn the_load_job_runs_every_segment_and_the_merge_reads_them() {
    let docs: Vec<serde_json::Value> = ["load-job.yaml", "load-merge-job.yaml"]
        .iter()
        .flat_map(|f| yaml_documents(&deploy().join("k8s/load").join(f)))
        .collect();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("a {kind} named {name}"))
    };
    let job = find("Job", "rampart-load");
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    let n = job["spec"]["completions"].as_u64().expect("completions");
    assert_eq!(job["spec"]["parallelism"].as_u64(), Some(n), "all at once");
    let pod = &job["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    let segment = args
        .iter()
        .position(|a| *a == "--segment")
        .map(|i| args[i + 1])
        .expect("--segment");
    assert_eq!(segment, format!("index:$(JOB_COMPLETION_INDEX)/{n}"));
    assert!(
        container["env"]
            .as_array()
            .is_some_and(|env| env.iter().any(|e| e["name"] == "JOB_COMPLETION_INDEX")),
        "declared, so $(JOB_COMPLETION_INDEX) expands"
    );
    // Every shard's --segment is one the command accepts.
    for i in 0..n {
        let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args([
                "load",
                "--segment",
                &segment.replace("$(JOB_COMPLETION_INDEX)", &i.to_string()),
                "/nonexistent.toml",
            ])
            .output()
            .expect("run rampart");
        assert!(
            text(&out).contains("/nonexistent.toml"),
            "shard {i}: the segment is accepted, the file is what fails: {}",
            text(&out)
        );
    }
    let scenario = find("ConfigMap", "rampart-load-scenario")["data"]["scenario.toml"]
        .as_str()
        .expect("scenario.toml");
    let plan = rampart_load::parse(scenario, "scenario.toml", std::path::Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!plan.thresholds.is_empty(), "the merge judges thresholds");
    let claim = |job: &serde_json::Value| {
        job["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == "reports"))
            .map(|v| v["persistentVolumeClaim"]["claimName"].clone())
            .expect("a reports volume")
    };
    let merge = find("Job", "rampart-load-merge");
    assert_eq!(claim(job), claim(merge));
    assert_eq!(
        claim(job),
        find("PersistentVolumeClaim", "rampart-load-reports")["metadata"]["name"]
    );
    let merge_args = &merge["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(merge_args[0], "report");
    assert_eq!(merge_args[1], "merge");
    assert_eq!(merge_args[2], "/reports");
}
