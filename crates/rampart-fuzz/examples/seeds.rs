//! Writes the seed inputs of every fuzz target into `fuzz/seeds/TARGET/`:
//! the example configs and scenario files, header values and responses of
//! the kinds Rampart meets, and an encoded shared-tier entry. `scripts/fuzz`
//! starts each target from them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use rampart_cache::{Entry, Freshness};
use rampart_config::Encoding;

fn write(root: &Path, target: &str, name: &str, data: &[u8]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).expect("a seed folder");
    std::fs::write(dir.join(name), data).expect("a seed file");
}

fn example_files(root: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let seeds = repo.join("fuzz/seeds");
    for (i, path) in example_files(&repo.join("examples"), "rampart.toml")
        .iter()
        .enumerate()
    {
        write(
            &seeds,
            "config",
            &format!("example-{i}"),
            &std::fs::read(path).unwrap(),
        );
    }
    for (i, path) in example_files(&repo.join("examples"), ".toml")
        .iter()
        .filter(|p| p.to_string_lossy().contains("/scenarios/"))
        .enumerate()
    {
        write(
            &seeds,
            "scenario",
            &format!("example-{i}"),
            &std::fs::read(path).unwrap(),
        );
    }
    for (i, text) in ["30s", "1h30m", "250ms", "1d", "256MiB", "10MB", "512"]
        .iter()
        .enumerate()
    {
        write(&seeds, "units", &format!("seed-{i}"), text.as_bytes());
    }
    for (i, text) in [
        "event:{id}",
        "/v2/{rest}",
        "/members/{{id}}?vu={{ vu }}",
        "{\"a\": \"{{x}}\"}",
    ]
    .iter()
    .enumerate()
    {
        write(&seeds, "templates", &format!("seed-{i}"), text.as_bytes());
    }
    for (i, text) in [
        "max-age=60",
        "public, s-maxage=300, stale-while-revalidate=30, stale-if-error=86400",
        "no-cache=\"set-cookie\", must-revalidate",
        "private, no-store",
    ]
    .iter()
    .enumerate()
    {
        write(
            &seeds,
            "cache_control",
            &format!("seed-{i}"),
            text.as_bytes(),
        );
    }
    write(
        &seeds,
        "age",
        "seed-0",
        b"age: 7200, 0\ndate: Sun, 06 Nov 1994 08:49:37 GMT\n",
    );
    write(&seeds, "age", "seed-1", b"age: 30\n");
    write(
        &seeds,
        "dates",
        "seed-0",
        b"date: Sun, 06 Nov 1994 08:49:37 GMT\nexpires: Sunday, 06-Nov-94 09:49:37 GMT\nlast-modified: Sun Nov  6 07:49:37 1994\n",
    );
    write(&seeds, "dates", "seed-1", b"expires: 0\n");
    write(
        &seeds,
        "vary",
        "seed-0",
        b"accept-language: de, en;q=0.5\naccept-encoding: gzip\nx-user:  alice \n",
    );
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.append(
        HeaderName::from_static("x-multi"),
        HeaderValue::from_static("a"),
    );
    let entry = Entry {
        status: StatusCode::OK,
        headers,
        body: Bytes::from_static(b"{\"kpi\": 1}"),
        encoded: vec![(Encoding::Gzip, Bytes::from_static(b"\x1f\x8b"))],
        asked: Default::default(),
        vary: vec![(
            HeaderName::from_static("accept-language"),
            Some(HeaderValue::from_static("pt")),
        )],
        response_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000),
        initial_age: Duration::from_secs(3),
        freshness: Freshness {
            lifetime: Duration::from_secs(600),
            stale_while_revalidate: Duration::from_secs(30),
            stale_if_error: Duration::from_secs(3600),
            keep: Duration::ZERO,
            must_revalidate: false,
        },
        tags: vec!["kpi".into()],
    };
    write(
        &seeds,
        "l2_codec",
        "entry",
        &rampart_cluster::codec::encode(&entry),
    );
    for (i, text) in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 204 No Content\r\n\r\n"[..],
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwiki\r\n0\r\nX-Trailer: 1\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
    ]
    .iter()
    .enumerate()
    {
        write(&seeds, "http1_response", &format!("seed-{i}"), text);
        write(&seeds, "upstream_response", &format!("seed-{i}"), text);
    }
    for (i, text) in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nConnection: close\r\n\r\nabc",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 90\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 ;a=b\r\nhello\r\n0\r\nA: 1\r\nB: 2\r\n\r\n",
    ]
    .iter()
    .enumerate()
    {
        write(&seeds, "upstream_response", &format!("strict-{i}"), text);
    }
    eprintln!("seeds written to {}", seeds.display());
}
