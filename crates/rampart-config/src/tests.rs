use super::*;
use std::time::Duration;

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"
trusted_proxies = ["127.0.0.1/32", "10.0.0.1"]

[admin]
listen = "127.0.0.1:9090"
token = "${RAMPART_TEST_TOKEN_SET}"

[cache]
memory = "64MiB"

[[upstreams]]
name = "app"
targets = ["127.0.0.1:3000", "127.0.0.1:3001"]

[[routes]]
match = "GET /pricing"
upstream = "app"
cache = { ttl = "10m", stale_while_revalidate = "30s", stale_if_error = "1h" }

[[routes]]
name = "members"
match = "GET /api/v1/members/{id}"
upstream = "app"
cache = { ttl = "1h", key = ["header:authorization"] }

[[routes]]
match = "* /*"
upstream = "app"
"#;

fn parse_ok(text: &str) -> Config {
    std::env::set_var("RAMPART_TEST_TOKEN_SET", "t0k3n-long-enough");
    parse(text, "rampart.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn parse_err(text: &str) -> ConfigError {
    std::env::set_var("RAMPART_TEST_TOKEN_SET", "t0k3n-long-enough");
    parse(text, "rampart.toml").expect_err("config should be rejected")
}

#[test]
fn parses_the_design_sketch() {
    let c = parse_ok(GOOD);
    assert_eq!(c.server.listen.port(), 8080);
    assert_eq!(c.server.trusted_proxies.len(), 2);
    assert_eq!(
        c.admin.as_ref().unwrap().token.as_deref(),
        Some("t0k3n-long-enough")
    );
    assert_eq!(c.cache.memory, 64 << 20);
    assert_eq!(c.upstreams[0].targets.len(), 2);
    assert_eq!(c.routes.len(), 3);
    let pricing = c.routes[0].cache.as_ref().unwrap();
    assert_eq!(pricing.ttl, Some(Duration::from_secs(600)));
    assert_eq!(pricing.stale_if_error, Duration::from_secs(3600));
    assert_eq!(c.routes[1].name, "members");
    assert!(c.routes[1].cache.as_ref().unwrap().keys_on_authorization());
    assert_eq!(c.routes[2].name, "* /*");
    assert!(c.routes[2].cache.is_none());
}

#[test]
fn unknown_keys_are_errors_with_line_and_field() {
    let text = GOOD.replace("memory = \"64MiB\"", "memory = \"64MiB\"\nmemroy = 1");
    let e = parse_err(&text);
    assert_eq!(e.file, "rampart.toml");
    assert_eq!(e.line, 12);
    assert_eq!(e.field, "cache.memroy");
    assert!(e.message.contains("unknown field"), "{e}");
}

#[test]
fn bad_durations_name_the_inline_field() {
    let text = GOOD.replace("ttl = \"10m\"", "ttl = \"10x\"");
    let e = parse_err(&text);
    assert_eq!(e.line, 20);
    assert_eq!(e.field, "routes[1].cache.ttl");
    assert!(e.message.contains("unknown unit"), "{e}");
    assert!(e.to_string().starts_with("rampart.toml:20:"), "{e}");
}

#[test]
fn unknown_upstream_is_named() {
    let text = GOOD.replace(
        "match = \"* /*\"\nupstream = \"app\"",
        "match = \"* /*\"\nupstream = \"api\"",
    );
    let e = parse_err(&text);
    assert_eq!(e.line, 30);
    assert_eq!(e.field, "routes[3].upstream");
    assert!(e.message.contains("no upstream named \"api\""), "{e}");
}

#[test]
fn unset_environment_variable_is_an_error() {
    let text = GOOD.replace("RAMPART_TEST_TOKEN_SET", "RAMPART_TEST_SURELY_UNSET");
    let e = parse_err(&text);
    assert_eq!(e.line, 8);
    assert_eq!(e.field, "admin.token");
    assert!(
        e.message.contains("RAMPART_TEST_SURELY_UNSET is not set"),
        "{e}"
    );
}

#[test]
fn cache_policy_needs_a_freshness_source() {
    let text = GOOD.replace(
        "cache = { ttl = \"1h\", key = [\"header:authorization\"] }",
        "cache = { key = [\"header:authorization\"] }",
    );
    let e = parse_err(&text);
    assert_eq!(e.line, 26);
    assert!(e.field.starts_with("routes[2].cache"), "{e}");
    assert!(e.message.contains("needs `ttl`"), "{e}");
}

#[test]
fn bad_values_are_rejected() {
    for (from, to, field) in [
        ("\"127.0.0.1:8080\"", "\"localhost\"", "server.listen"),
        ("\"10.0.0.1\"", "\"10.0.0.300\"", "server.trusted_proxies"),
        ("\"64MiB\"", "\"64 parsecs\"", "cache.memory"),
        ("\"64MiB\"", "\"0\"", "cache.memory"),
        (
            "\"127.0.0.1:3001\"",
            "\"ftp://x:80\"",
            "upstreams[1].targets",
        ),
        ("\"GET /pricing\"", "\"GET pricing\"", "routes[1].match"),
        (
            "\"header:authorization\"",
            "\"body:x\"",
            "routes[2].cache.key",
        ),
    ] {
        let e = parse_err(&GOOD.replace(from, to));
        assert_eq!(e.field, field, "{e}");
        assert!(e.line > 0, "{e}");
    }
}

#[test]
fn syntax_errors_have_lines() {
    let e = parse_err("[server]\nlisten = \n");
    assert_eq!(e.line, 2);
}

#[test]
fn compressible_types() {
    let c = parse_ok(GOOD);
    assert!(c.compression.compressible("text/html; charset=utf-8"));
    assert!(c.compression.compressible("application/json"));
    assert!(!c.compression.compressible("image/png"));
    // Media types are case-insensitive.
    assert!(c.compression.compressible("Text/HTML; Charset=UTF-8"));
    assert!(c.compression.compressible("APPLICATION/JSON"));
    assert_eq!(c.compression.min_size, 1024);
}

#[test]
fn upstream_health_balance_and_retry() {
    let text = GOOD.replace(
        "targets = [\"127.0.0.1:3000\", \"127.0.0.1:3001\"]",
        "targets = [\"127.0.0.1:3000\", \"127.0.0.1:3001\"]\nhealth = { path = \"/health\", interval = \"2s\" }\nbalance = \"round-robin\"\nretry = false",
    );
    let c = parse_ok(&text);
    let u = &c.upstreams[0];
    let h = u.health.as_ref().unwrap();
    assert_eq!(h.path, "/health");
    assert_eq!(h.interval, Duration::from_secs(2));
    assert_eq!((h.healthy_after, h.unhealthy_after), (2, 3));
    assert_eq!(u.balance, Balance::RoundRobin);
    assert!(!u.retry);
    let defaults = parse_ok(GOOD);
    assert_eq!(defaults.upstreams[0].balance, Balance::LeastInFlight);
    assert!(defaults.upstreams[0].retry);
    assert!(defaults.upstreams[0].health.is_none());

    for (bad, field) in [
        ("balance = \"random\"", "upstreams[1].balance"),
        ("health = { path = \"health\" }", "upstreams[1].health.path"),
        (
            "health = { path = \"/h\", interval = \"0s\" }",
            "upstreams[1].health",
        ),
        (
            "health = { path = \"/h\", every = \"1s\" }",
            "upstreams[1].health.every",
        ),
    ] {
        let e = parse_err(&GOOD.replace(
            "targets = [\"127.0.0.1:3000\", \"127.0.0.1:3001\"]",
            &format!("targets = [\"127.0.0.1:3000\"]\n{bad}"),
        ));
        assert_eq!(e.field, field, "{e}");
    }
}

#[test]
fn tags_and_events() {
    let text = GOOD.replace(
        "cache = { ttl = \"1h\", key = [\"header:authorization\"] }",
        "cache = { ttl = \"1h\", key = [\"header:authorization\"], tags = [\"member:{id}\", \"q:{query.page}\", \"h:{header.x-tenant}\"] }",
    ) + "\n[[events]]\nname = \"PaymentConfirmed\"\npurge_tags = [\"kpi\", \"member:{member.id}\"]\npurge_keys = [\"/members/{member.id}\"]\n";
    let c = parse_ok(&text);
    let tags: Vec<&str> = c.routes[1]
        .cache
        .as_ref()
        .unwrap()
        .tags
        .iter()
        .map(|t| t.source.as_str())
        .collect();
    assert_eq!(
        tags,
        ["member:{id}", "q:{query.page}", "h:{header.x-tenant}"]
    );
    assert_eq!(c.events[0].name, "PaymentConfirmed");
    assert_eq!(
        c.events[0].purge_keys[0].vars().collect::<Vec<_>>(),
        ["member.id"]
    );

    for (bad, field) in [
        ("tags = [\"member:{nope}\"]", "routes[2].cache.tags"),
        ("tags = [\"member:{id\"]", "routes[2].cache.tags"),
    ] {
        let e = parse_err(&GOOD.replace("key = [\"header:authorization\"]", bad));
        assert_eq!(e.field, field, "{e}");
    }
    for (event, field) in [
        ("name = \"x\"", "events[1].name"),
        ("name = \"a b\"\npurge_tags = [\"t\"]", "events[1].name"),
        ("name = \"x\"\npurge_tags = [\"{\"]", "events[1].purge_tags"),
        (
            "name = \"x\"\npurge_tags = [\"t\"]\nflush = true",
            "events[1].flush",
        ),
    ] {
        let e = parse_err(&format!("{GOOD}\n[[events]]\n{event}\n"));
        assert_eq!(e.field, field, "{e}");
    }
}

#[test]
fn memory_tier_can_be_off_only_with_redis() {
    let text = GOOD.replace(
        "memory = \"64MiB\"",
        "memory = \"0\"\nredis = \"redis://127.0.0.1:6379\"",
    );
    let c = parse_ok(&text);
    assert_eq!(c.cache.memory, 0);
    assert!(c.cache.redis.is_some());
}

#[test]
fn a_config_that_routes_nothing_is_refused() {
    for text in ["", "[server]\nlisten = \"127.0.0.1:8080\"\n[[upstreams]]\nname = \"app\"\ntargets = [\"127.0.0.1:3000\"]\n"] {
        let e = parse_err(text);
        let shown = e.to_string();
        let line = text.matches('\n').count() + 1;
        assert!(shown.starts_with(&format!("rampart.toml:{line}:")), "{shown}");
        assert!(shown.contains(": routes: none: the config proxies nothing"), "{shown}");
    }
}

#[test]
fn placeholder_and_short_admin_secrets_are_refused() {
    for (value, says) in [
        ("change-me", "placeholder \"change-me\""),
        ("Demo-Token", "placeholder \"Demo-Token\""),
        ("abc", "shorter than 8 characters"),
        ("  ", "is empty"),
    ] {
        let text = GOOD.replace("${RAMPART_TEST_TOKEN_SET}", value);
        let e = parse_err(&text);
        assert_eq!((e.line, e.field.as_str()), (8, "admin.token"), "{e}");
        assert!(e.message.contains(says), "{value}: {e}");
    }
    let text = GOOD.replace(
        "token = \"${RAMPART_TEST_TOKEN_SET}\"",
        "token = \"a-long-enough-token\"\nwebhook_secret = \"secret\"",
    );
    let e = parse_err(&text);
    assert_eq!(
        (e.line, e.field.as_str()),
        (9, "admin.webhook_secret"),
        "{e}"
    );
}

#[test]
fn readiness_is_serving_unless_upstreams_are_asked_for() {
    let c = parse_ok(GOOD);
    assert_eq!(c.admin.as_ref().unwrap().ready, Readiness::Serving);
    let text = GOOD.replace("[admin]\n", "[admin]\nready = \"upstreams\"\n");
    let c = parse_ok(&text);
    assert_eq!(c.admin.as_ref().unwrap().ready, Readiness::Upstreams);
    let e = parse_err(&GOOD.replace("[admin]\n", "[admin]\nready = \"always\"\n"));
    assert_eq!(e.field, "admin.ready");
    assert!(
        e.message.contains("use \"serving\" or \"upstreams\""),
        "{e}"
    );
}

#[test]
fn an_access_sample_is_a_share() {
    let c = parse_ok(&GOOD.replace("[cache]\n", "[log]\naccess_sample = 0.25\n[cache]\n"));
    assert_eq!(c.log.access_sample, 0.25);
    assert_eq!(parse_ok(GOOD).log.access_sample, 1.0);
    for bad in ["0.0", "1.5", "-0.1"] {
        let e = parse_err(&GOOD.replace(
            "[cache]\n",
            &format!("[log]\naccess_sample = {bad}\n[cache]\n"),
        ));
        assert_eq!(e.field, "log.access_sample", "{bad}: {e}");
        assert!(e.message.contains("above 0 and at most 1"), "{e}");
    }
}

#[test]
fn the_access_log_format_and_file_are_checked() {
    let with = |lines: &str| GOOD.replace("[cache]\n", &format!("[log]\n{lines}\n[cache]\n"));
    let c = parse_ok(&with(
        "access_format = \"combined\"\naccess_file = \"/tmp/rampart-access.log\"",
    ));
    assert_eq!(c.log.access_format, AccessFormat::Combined);
    assert_eq!(
        c.log.access_file.as_deref(),
        Some(std::path::Path::new("/tmp/rampart-access.log"))
    );
    let e = parse_err(&with("access_format = \"apache\""));
    assert_eq!(e.field, "log.access_format");
    assert!(e.message.contains("\"json\" or \"combined\""), "{e}");
    let e = parse_err(&with("access_file = \"/no/such/dir/access.log\""));
    assert_eq!(e.field, "log.access_file");
    assert!(e.message.contains("directory that exists"), "{e}");
}

#[test]
fn tracing_exports_to_a_collector_url() {
    assert_eq!(parse_ok(GOOD).tracing, None, "off unless configured");
    let with =
        |section: &str| GOOD.replace("[cache]\n", &format!("[tracing]\n{section}\n[cache]\n"));
    let c = parse_ok(&with("otlp_endpoint = \"http://collector:4318\""));
    let t = c.tracing.expect("on");
    assert_eq!(t.otlp_endpoint, "http://collector:4318/v1/traces");
    assert_eq!((t.service_name.as_str(), t.sample), ("rampart", 1.0));
    assert_eq!(t.timeout, Duration::from_secs(10));
    let c = parse_ok(&with(
        "otlp_endpoint = \"https://otlp.example.com/api/traces\"\nservice_name = \"edge\"\nsample = 0.05\ntimeout = \"2s\"\nheaders = { x-api-key = \"k\" }",
    ));
    let t = c.tracing.expect("on");
    assert_eq!(t.otlp_endpoint, "https://otlp.example.com/api/traces");
    assert_eq!((t.service_name.as_str(), t.sample), ("edge", 0.05));
    assert_eq!(t.headers[0].0, "x-api-key");
    for (bad, field) in [
        ("service_name = \"x\"", "tracing"),
        (
            "otlp_endpoint = \"collector:4318\"",
            "tracing.otlp_endpoint",
        ),
        (
            "otlp_endpoint = \"ftp://collector/\"",
            "tracing.otlp_endpoint",
        ),
        (
            "otlp_endpoint = \"http://c:4318\"\nsample = 1.5",
            "tracing.sample",
        ),
        (
            "otlp_endpoint = \"http://c:4318\"\ntimeout = \"0s\"",
            "tracing.timeout",
        ),
        (
            "otlp_endpoint = \"http://c:4318\"\nheaders = { \"a b\" = \"1\" }",
            "tracing.headers",
        ),
        (
            "otlp_endpoint = \"http://c:4318\"\nprotocol = \"grpc\"",
            "tracing",
        ),
    ] {
        let e = parse_err(&with(bad));
        assert!(e.field.starts_with(field), "{bad}: {e}");
    }
}
