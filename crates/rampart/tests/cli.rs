//! The `rampart` binary as a user runs it.

use rampart_testkit::TempDir;
use std::process::Command;

fn rampart(args: &[&str]) -> (i32, String) {
    rampart_with(args, &[])
}

fn rampart_with(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .env_remove("RAMPART_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .output()
        .expect("run rampart");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code().unwrap_or(-1), text)
}

/// Writes `text` to `name` in `dir`: its path.
fn write(dir: &TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The example checks once its admin token is set, and never runs on a
/// placeholder: without the variable it names the key and the variable.
#[test]
fn the_example_config_checks() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/basic/rampart.toml"
    );
    let token = [("RAMPART_ADMIN_TOKEN", "4f9c2e7a1b3d5e8f")];
    let (code, text) = rampart_with(&["check", "--config", example], &token);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok ("), "{text}");
    let (code, text) = rampart(&["check", "--config", example]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("admin.token"), "{text}");
    assert!(text.contains("RAMPART_ADMIN_TOKEN is not set"), "{text}");
    let placeholder = [("RAMPART_ADMIN_TOKEN", "change-me")];
    let (code, text) = rampart_with(&["check", "--config", example], &placeholder);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("placeholder"), "{text}");
}

#[test]
fn bad_configs_exit_2_naming_file_line_and_field() {
    let cases = [
        ("typo.toml", "[server]\nlisten = \"127.0.0.1:8080\"\nlisen = \"x\"\n", ":3:", "server.lisen", "unknown field"),
        (
            "duration.toml",
            "[[upstreams]]\nname = \"app\"\ntargets = [\"127.0.0.1:3000\"]\n\n[[routes]]\nmatch = \"GET /\"\nupstream = \"app\"\ncache = { ttl = \"5 minutes\" }\n",
            ":8:",
            "routes[1].cache.ttl",
            "invalid duration",
        ),
        (
            "upstream.toml",
            "[[upstreams]]\nname = \"app\"\ntargets = [\"127.0.0.1:3000\"]\n\n[[routes]]\nmatch = \"GET /\"\nupstream = \"nope\"\n",
            ":7:",
            "routes[1].upstream",
            "no upstream named",
        ),
        ("syntax.toml", "[server\nlisten = 1\n", ":1:8:", "server:", "unclosed table"),
    ];
    let dir = TempDir::new("cli");
    for (name, text, line, field, message) in cases {
        let path = write(&dir, name, text);
        let (code, out) = rampart(&["check", "--config", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{name}: {out}");
        assert!(out.contains(&format!("{name}{line}")), "{name}: {out}");
        assert!(out.contains(field), "{name}: {out}");
        assert!(
            out.to_lowercase().contains(&message.to_lowercase()),
            "{name}: {out}"
        );
        // `serve` refuses the same file the same way, before binding anything.
        let (code, _) = rampart(&["serve", "--config", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{name}");
    }
}

#[test]
fn a_missing_file_and_bad_usage_exit_2() {
    let (code, out) = rampart(&["check", "--config", "/nonexistent/rampart.toml"]);
    assert_eq!(code, 2);
    assert!(out.contains("/nonexistent/rampart.toml"), "{out}");
    let (code, _) = rampart(&["frobnicate"]);
    assert_eq!(code, 2);
}

#[test]
fn demo_runs_the_example_origin_alone_and_through_rampart() {
    let out = std::env::temp_dir().join(format!("rampart-demo-test-{}", std::process::id()));
    let (code, text) = rampart(&[
        "demo",
        "--duration",
        "3s",
        "--scale",
        "0.01",
        "--out-dir",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("origin alone") && text.contains("through Rampart"),
        "{text}"
    );
    let origin_requests: Vec<u64> = text
        .lines()
        .find(|l| l.starts_with("origin requests"))
        .expect("an origin-requests row")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(origin_requests.len(), 2, "{text}");
    assert!(
        origin_requests[1] * 2 < origin_requests[0],
        "through Rampart the origin sees far fewer requests: {origin_requests:?}\n{text}"
    );
    // What each party spent per request, read from its own threads: the
    // gateway only where it was in the path.
    let cpu = |party: &str| -> Vec<String> {
        let row = format!("CPU µs/request: {party}");
        text.lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("a {row} row\n{text}"))[row.len()..]
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let spent = |v: &str| v.parse::<f64>().is_ok_and(|us| us > 0.0);
    let gateway = cpu("Rampart");
    assert!(gateway[0] == "-" && spent(&gateway[1]), "{text}");
    for party in ["origin", "load"] {
        assert!(cpu(party).iter().all(|v| spent(v)), "{party}: {text}");
    }
    // The report's word on the generator's CPU (and so on whether it
    // saturated) is about the generator alone, not the origin and gateway
    // beside it in the process: it agrees with the table's row.
    for (i, name) in ["direct", "rampart"].into_iter().enumerate() {
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let cores = report["generator"]["mean_cpu_cores"].as_f64().unwrap();
        let seconds = report["duration_s"].as_f64().unwrap();
        let requests = report["overall"]["requests"].as_f64().unwrap();
        let reported = cores * seconds * 1e6 / requests;
        let row: f64 = cpu("load")[i].parse().unwrap();
        assert!(
            reported < 2.0 * row + 20.0,
            "{name}: the report gives the generator {reported:.1} µs/request, its threads spent {row}\n{text}"
        );
    }
    for f in ["direct.json", "rampart.json", "report.html"] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        page.contains("origin alone") && page.contains("through Rampart"),
        "one page draws both runs"
    );
    let _ = std::fs::remove_dir_all(&out);

    let (code, text) = rampart(&["demo", "--app", "bakery"]);
    assert_eq!(code, 2);
    assert!(
        text.contains("unknown app") && text.contains("event-manager"),
        "{text}"
    );
}

/// Every other seed application runs its main profile side by side too, and
/// the read-heavy ones spare their origin.
#[test]
fn demo_runs_every_seed_application() {
    // Membership cards looks up its 20,000 members in turn: a run must
    // outlast one pass over them (about 2 s) before anything repeats.
    for (app, spared, duration) in [
        ("banking", true, "2s"),
        ("education", false, "2s"),
        ("membership-cards", true, "6s"),
        ("event-manager", true, "2s"),
    ] {
        let out = std::env::temp_dir().join(format!("rampart-demo-{app}-{}", std::process::id()));
        let (code, text) = rampart(&[
            "demo",
            "--app",
            app,
            "--duration",
            duration,
            "--scale",
            "0.01",
            "--out-dir",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{app}: {text}");
        assert!(text.contains("guide's targets:"), "{app}: {text}");
        let origin_requests: Vec<u64> = text
            .lines()
            .find(|l| l.starts_with("origin requests"))
            .expect("an origin-requests row")
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert!(origin_requests[0] > 0, "{app}: {text}");
        if spared {
            assert!(
                origin_requests[1] < origin_requests[0],
                "{app}: through Rampart the origin sees fewer requests\n{text}"
            );
        }
        assert!(out.join("report.html").is_file(), "{app}");
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// `rampart demo --origin-only` is stopped the way services are (SIGTERM,
/// as systemd and container runtimes send it) as cleanly as by Ctrl-C: it
/// exits 0 and its generated database leaves nothing in the temp folder.
#[tokio::test]
async fn the_example_origin_stops_on_sigterm_and_removes_its_database() {
    let listen = free();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args([
            "demo",
            "--app",
            "education",
            "--origin-only",
            "--scale",
            "0.01",
        ])
        .args(["--listen", &listen.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the origin");
    rampart_testkit::eventually_async("the origin listens", || async {
        tokio::net::TcpStream::connect(listen).await.is_ok()
    })
    .await;
    let database =
        std::env::temp_dir().join(format!("rampart-demo-education-{}-0.sqlite", child.id()));
    assert!(database.is_file(), "{} while it serves", database.display());
    rampart_testkit::terminate(&child);
    let status = child.wait().expect("the origin ends");
    assert_eq!(status.code(), Some(0), "{status}");
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", database.display());
        assert!(!std::path::Path::new(&file).exists(), "{file} left behind");
    }
}

/// `kill -HUP` reloads the config file: a good one is applied, a broken one
/// is logged and refused, and the process serves on either way.
#[tokio::test]
async fn sighup_reloads_the_config_and_never_kills_the_process() {
    let origin =
        rampart_testkit::Origin::simple(|_| rampart_testkit::respond(200, &[], "ok")).await;
    let (listen, admin) = (free(), free());
    let config = |route: &str| {
        format!(
            "[server]\nlisten = \"{listen}\"\n[admin]\nlisten = \"{admin}\"\n\
             [[upstreams]]\nname = \"app\"\ntargets = [\"{}\"]\n\
             [[routes]]\nmatch = \"GET {route}\"\nupstream = \"app\"\n",
            origin.addr
        )
    };
    let dir = TempDir::new("cli");
    let path = write(&dir, "sighup.toml", &config("/one"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start rampart serve");
    let client = rampart_testkit::TestClient::new();
    let status = |url: String| {
        let client = client.clone();
        async move { client.get(&url, &[]).await.status.as_u16() }
    };
    rampart_testkit::eventually_async("rampart listens", || async {
        tokio::net::TcpStream::connect(listen).await.is_ok()
    })
    .await;
    assert_eq!(status(format!("http://{listen}/one")).await, 200);

    let hup = || rampart_testkit::signal(child.id(), "HUP");
    std::fs::write(&path, config("/two")).expect("write");
    hup();
    rampart_testkit::eventually_async("the new route serves", || async {
        status(format!("http://{listen}/two")).await == 200
    })
    .await;

    std::fs::write(&path, "[server]\nlisten = 12\n").expect("write");
    hup();
    rampart_testkit::eventually_async("the rejection is counted", || async {
        client
            .get(&format!("http://{admin}/metrics"), &[])
            .await
            .text()
            .contains("rampart_config_reloads_total{result=\"rejected\"} 1")
    })
    .await;
    assert!(
        child.try_wait().expect("wait").is_none(),
        "rampart is alive"
    );
    assert_eq!(status(format!("http://{listen}/two")).await, 200);

    rampart_testkit::terminate(&child);
    let out = child.wait_with_output().expect("rampart exits");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("config reload rejected"), "{log}");
    assert!(log.contains("sighup.toml"), "the log names the file: {log}");
}

/// A key that is not the certificate's, or a file that is no certificate,
/// fails `check` and `serve` with exit 2 naming the file.
#[test]
fn bad_certificates_exit_2_naming_the_file() {
    let dir = TempDir::new("cli-tls");
    let ca = rampart_testkit::tls::TestCa::new("CLI CA");
    let a = ca.leaf(&dir.path, "a", &["a.test"], 2099);
    let b = ca.leaf(&dir.path, "b", &["b.test"], 2099);
    let text = |cert: &std::path::Path, key: &std::path::Path| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n\
             [[upstreams]]\nname = \"app\"\ntargets = [\"127.0.0.1:9\"]\n\
             [[routes]]\nmatch = \"GET /*\"\nupstream = \"app\"\n",
            cert.display(),
            key.display()
        )
    };
    let good = write(&dir, "tls-good.toml", &text(&a.cert, &a.key));
    let (code, out) = rampart(&["check", "--config", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("valid for"), "{out}");

    let bad = write(&dir, "tls-bad.toml", &text(&a.cert, &b.key));
    for command in ["check", "serve"] {
        let (code, out) = rampart(&[command, "--config", bad.to_str().unwrap()]);
        assert_eq!(code, 2, "{command}: {out}");
        assert!(out.contains("tls-bad.toml"), "{out}");
        assert!(out.contains(&b.key.display().to_string()), "{out}");
        assert!(out.contains("does not belong"), "{out}");
    }
}

/// Runs `rampart serve` on `config`, makes the requests `drive` makes,
/// stops it and returns the JSON lines it logged.
async fn served_log<F, Fut>(name: &str, config: &str, drive: F) -> Vec<serde_json::Value>
where
    F: FnOnce(u32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = TempDir::new("cli");
    let path = write(&dir, name, config);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start rampart serve");
    let listen: std::net::SocketAddr = config
        .lines()
        .find_map(|l| l.strip_prefix("listen = \""))
        .and_then(|l| l.trim_end_matches('"').parse().ok())
        .expect("a listen line");
    rampart_testkit::eventually_async("rampart listens", || async {
        tokio::net::TcpStream::connect(listen).await.is_ok()
    })
    .await;
    drive(child.id()).await;
    rampart_testkit::terminate(&child);
    let out = child.wait_with_output().expect("rampart exits");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn free() -> std::net::SocketAddr {
    rampart_testkit::free_addr()
}

/// Every log line of a request, the access line and a warning alike,
/// carries the request id the client got back; the access line says what
/// an operator asks of a request (protocol, sizes, upstream and its time,
/// user agent, referer).
#[tokio::test]
async fn log_lines_name_the_request() {
    let origin =
        rampart_testkit::Origin::simple(|_| rampart_testkit::respond(200, &[], "fine")).await;
    let (listen, gone) = (free(), free());
    let config = format!(
        "[server]\nlisten = \"{listen}\"\n\
         [[upstreams]]\nname = \"app\"\ntargets = [\"{}\"]\n\
         [[upstreams]]\nname = \"gone\"\ntargets = [\"{gone}\"]\n\
         [[routes]]\nmatch = \"GET /ok\"\nupstream = \"app\"\n\
         [[routes]]\nmatch = \"GET /*\"\nupstream = \"gone\"\n",
        origin.addr
    );
    let client = rampart_testkit::TestClient::new();
    let got = std::sync::Mutex::new(Vec::new());
    let log = served_log("request-ids.toml", &config, |_| async {
        let failed = client.get(&format!("http://{listen}/x"), &[]).await;
        let ok = client
            .get(
                &format!("http://{listen}/ok"),
                &[
                    ("user-agent", "probe/1.0"),
                    ("referer", "https://shop.example/"),
                ],
            )
            .await;
        got.lock().unwrap().extend([failed, ok]);
    })
    .await;
    let got = got.into_inner().unwrap();
    let (failed, ok) = (&got[0], &got[1]);
    assert_eq!((failed.status.as_u16(), ok.status.as_u16()), (502, 200));
    let id = failed.header("x-request-id").to_string();
    assert_eq!(id.len(), 36, "{:?}", failed.headers);
    let of = |id: &str| -> Vec<&serde_json::Value> {
        log.iter().filter(|l| l.to_string().contains(id)).collect()
    };
    let lines = of(&id);
    let access = lines
        .iter()
        .find(|l| l["target"] == "rampart::access")
        .unwrap_or_else(|| panic!("an access line with {id}:\n{log:?}"));
    assert_eq!(access["fields"]["request_id"], id.as_str());
    assert_eq!(access["fields"]["status"], 502);
    assert_eq!(access["fields"]["protocol"], "HTTP/1.1");
    assert_eq!(access["fields"]["tls"], false);
    assert_eq!(access["fields"]["bytes_out"], failed.body.len(), "{access}");
    let warning = lines
        .iter()
        .find(|l| l["level"] == "WARN")
        .unwrap_or_else(|| panic!("a warning with {id}:\n{log:?}"));
    assert_eq!(warning["span"]["request_id"], id.as_str(), "{warning}");
    assert!(
        warning.to_string().contains(&gone.to_string()),
        "the log keeps the address the body leaves out: {warning}"
    );

    let served = of(ok.header("x-request-id"));
    let access = served
        .iter()
        .find(|l| l["target"] == "rampart::access")
        .unwrap_or_else(|| panic!("an access line for /ok:\n{log:?}"));
    let fields = &access["fields"];
    assert_eq!(fields["upstream"], origin.addr.to_string(), "{access}");
    assert!(fields["upstream_us"].as_u64().is_some(), "{access}");
    assert_eq!(fields["user_agent"], "probe/1.0");
    assert_eq!(fields["referer"], "https://shop.example/");
    assert_eq!(fields["bytes_out"], 4);
}

/// `access_sample` logs a share of requests; a 5xx is logged whatever the
/// draw.
#[tokio::test]
async fn the_access_log_can_be_sampled() {
    let origin =
        rampart_testkit::Origin::simple(|_| rampart_testkit::respond(200, &[], "fine")).await;
    let (listen, gone) = (free(), free());
    let config = format!(
        "[server]\nlisten = \"{listen}\"\n[log]\naccess_sample = 0.000000001\n\
         [[upstreams]]\nname = \"app\"\ntargets = [\"{}\"]\n\
         [[upstreams]]\nname = \"gone\"\ntargets = [\"{gone}\"]\n\
         [[routes]]\nmatch = \"GET /ok\"\nupstream = \"app\"\n\
         [[routes]]\nmatch = \"GET /*\"\nupstream = \"gone\"\n",
        origin.addr
    );
    let client = rampart_testkit::TestClient::new();
    let log = served_log("sampled.toml", &config, |_| async {
        for _ in 0..20 {
            assert_eq!(
                client.get(&format!("http://{listen}/ok"), &[]).await.status,
                200
            );
        }
        assert_eq!(
            client.get(&format!("http://{listen}/x"), &[]).await.status,
            502
        );
    })
    .await;
    let access: Vec<_> = log
        .iter()
        .filter(|l| l["target"] == "rampart::access")
        .collect();
    assert_eq!(access.len(), 1, "{access:?}");
    assert_eq!(access[0]["fields"]["status"], 502);
}

/// A listen address another process holds: `serve` says which key of which
/// file asked for it, and what to do.
#[test]
fn an_address_in_use_names_the_key_that_asked_for_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = TempDir::new("cli");
    let path = write(
        &dir,
        "addr-in-use.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"127.0.0.1:{port}\"\n\
             [[upstreams]]\nname = \"app\"\ntargets = [\"127.0.0.1:9\"]\n\
             [[routes]]\nmatch = \"GET /*\"\nupstream = \"app\"\n"
        ),
    );
    let (code, out) = rampart(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "addr-in-use.toml:5:9: admin.listen: cannot listen on 127.0.0.1:{port}"
        )),
        "{out}"
    );
    assert!(out.contains("another process listens there"), "{out}");
    drop(taken);
}

/// `access_file` gets combined-format lines; after logrotate moves it,
/// `SIGUSR1` makes Rampart write a new one.
#[tokio::test]
async fn the_access_log_file_is_reopened_on_sigusr1() {
    let origin =
        rampart_testkit::Origin::simple(|_| rampart_testkit::respond(200, &[], "fine")).await;
    let dir = rampart_testkit::TempDir::new("access-file");
    let file = dir.path.join("access.log");
    let moved = dir.path.join("access.log.1");
    let listen = free();
    let config = format!(
        "[server]\nlisten = \"{listen}\"\n\
         [log]\naccess_format = \"combined\"\naccess_file = \"{}\"\n\
         [[upstreams]]\nname = \"app\"\ntargets = [\"{}\"]\n\
         [[routes]]\nmatch = \"GET /*\"\nupstream = \"app\"\n",
        file.display(),
        origin.addr
    );
    let client = rampart_testkit::TestClient::new();
    let lines = |path: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let (client, file, moved) = (&client, &file, &moved);
    let log = served_log("access-file.toml", &config, |pid| async move {
        for path in ["/one", "/two"] {
            let got = client
                .get(
                    &format!("http://{listen}{path}"),
                    &[("user-agent", "probe/1.0")],
                )
                .await;
            assert_eq!(got.status, 200);
        }
        rampart_testkit::eventually("two lines in the file", || lines(file).len() == 2).await;
        std::fs::rename(file, moved).expect("rotate");
        rampart_testkit::signal(pid, "USR1");
        rampart_testkit::eventually_async("a request lands in a new file", || async {
            client.get(&format!("http://{listen}/three"), &[]).await;
            lines(file).iter().any(|l| l.contains("GET /three"))
        })
        .await;
    })
    .await;
    let old = lines(moved);
    assert!(old[0].starts_with("127.0.0.1 - - ["), "{old:?}");
    assert!(
        old[0].contains("\"GET /one HTTP/1.1\" 200 4 \"-\" \"probe/1.0\" rt="),
        "{old:?}"
    );
    assert!(old[1].contains("GET /two"), "{old:?}");
    assert!(
        !log.iter().any(|l| l["target"] == "rampart::access"),
        "lines go to the file, not stderr"
    );
}
