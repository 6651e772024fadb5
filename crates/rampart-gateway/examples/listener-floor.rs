//! Rampart's listener with the cheapest possible handler: the files of one
//! directory, read into memory at start, answered by path with no cache, no
//! routing, no metrics. `bench/cache-hit.sh` runs it beside Rampart and nginx
//! as the ceiling of any handler behind this connection layer (hyper, tokio,
//! the same limits and runtime as `rampart serve`): the gap between it and
//! Rampart is what the cache path costs per hit.
//!
//! Usage: `listener-floor ADDR DIR`

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use rampart_edge::{serve, ConnLimits};
use rampart_gateway::body::{empty, full};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, dir] = args.as_slice() else {
        eprintln!("usage: listener-floor ADDR DIR");
        return ExitCode::from(2);
    };
    let files = match read_dir(dir) {
        Ok(files) => Arc::new(files),
        Err(e) => {
            eprintln!("listener-floor: cannot read {dir}: {e}");
            return ExitCode::from(2);
        }
    };
    // As `rampart serve`: one worker per core the affinity mask allows.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("listener-floor: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(addr.as_str()).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("listener-floor: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let limits = ConnLimits {
            max_header_size: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            shutdown_timeout: Duration::from_secs(1),
        };
        serve(
            std::sync::Arc::new(listener),
            limits,
            rampart_edge::Stops {
                accepting: CancellationToken::new(),
                shutdown: CancellationToken::new(),
            },
            // Counted as Rampart's listeners count theirs: the same work.
            (None, rampart_edge::ConnGauges::default()),
            move |req, _peer| {
                let files = Arc::clone(&files);
                async move {
                    let response = match files.get(req.uri().path()) {
                        Some(body) => Response::builder()
                            .header(http::header::CONTENT_TYPE, "text/plain")
                            .body(full(body.clone())),
                        None => Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(empty()),
                    };
                    Ok::<_, Infallible>(response.unwrap_or_else(|_| Response::new(empty())))
                }
            },
        )
        .await;
        ExitCode::SUCCESS
    })
}

/// `/NAME` → contents, for every regular file directly in `dir`.
fn read_dir(dir: &str) -> std::io::Result<HashMap<String, Bytes>> {
    let mut files = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            files.insert(
                format!("/{name}"),
                Bytes::from(std::fs::read(entry.path())?),
            );
        }
    }
    Ok(files)
}
