//! The shared tier's pipelined reads against a scripted Redis: every caller
//! gets its own key's value whatever the framing, and anything that is not
//! a clean reply ends the connection for every caller waiting on it.

use std::time::Duration;

use rampart_cluster::reads::{ReadError, Reads, MAX_IN_FLIGHT, MAX_QUEUED};
use rampart_cluster::redis::read_connection;
use redis::IntoConnectionInfo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A listener on a free port and the `Reads` for it (`path` after the
/// port: `/3`, or credentials go before the host with `userinfo`).
async fn setup(userinfo: &str, path: &str, deadline: Duration) -> (TcpListener, Reads) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{userinfo}{}{path}", listener.local_addr().unwrap());
    let info = url.as_str().into_connection_info().unwrap();
    (
        listener,
        read_connection(&info, deadline).expect("TCP is read directly"),
    )
}

/// Reads from `socket` until `want` whole commands (`*` arrays of bulk
/// strings) have arrived; returns each as its arguments.
async fn commands(socket: &mut TcpStream, want: usize) -> Vec<Vec<String>> {
    let mut bytes = Vec::new();
    loop {
        if let Some(parsed) = parse_commands(&bytes) {
            if parsed.len() >= want {
                return parsed;
            }
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the client closed after {bytes:?}");
        bytes.extend_from_slice(&chunk[..n]);
    }
}

fn parse_commands(mut b: &[u8]) -> Option<Vec<Vec<String>>> {
    let mut out = Vec::new();
    let line = |b: &mut &[u8]| -> Option<String> {
        let end = b.windows(2).position(|w| w == b"\r\n")?;
        let s = String::from_utf8(b[..end].to_vec()).unwrap();
        *b = &b[end + 2..];
        Some(s)
    };
    while !b.is_empty() {
        let n: usize = line(&mut b)?.strip_prefix('*')?.parse().unwrap();
        let mut args = Vec::new();
        for _ in 0..n {
            let len: usize = line(&mut b)?.strip_prefix('$')?.parse().unwrap();
            if b.len() < len + 2 {
                return None;
            }
            args.push(String::from_utf8(b[..len].to_vec()).unwrap());
            b = &b[len + 2..];
        }
        out.push(args);
    }
    Some(out)
}

fn bulk(value: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", value.len()).into_bytes();
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    out
}

#[tokio::test]
async fn each_caller_gets_its_own_keys_value_however_the_replies_are_cut() {
    let (listener, reads) = setup("", "", Duration::from_secs(10)).await;
    // Small and large values (a large one is read into its own
    // allocation), a missing key and an error, for concurrent callers.
    let large: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let values: Vec<Option<Vec<u8>>> = vec![
        Some(b"one".to_vec()),
        None,
        Some(large.clone()),
        Some(Vec::new()),
        Some(b"five\r\n$3\r\nnot".to_vec()),
        Some(large[..20_000].to_vec()),
    ];
    let server = {
        let values = values.clone();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            for piece in [1usize, 7, 4096] {
                let asked = commands(&mut socket, values.len() + 1).await;
                let mut replies = Vec::new();
                for args in &asked {
                    assert_eq!(args[0], "GET");
                    let i: usize = args[1].strip_prefix("key").unwrap().parse().unwrap();
                    match values.get(i) {
                        Some(Some(v)) => replies.extend(bulk(v)),
                        Some(None) => replies.extend_from_slice(b"$-1\r\n"),
                        None => replies.extend_from_slice(b"-WRONGTYPE not a string\r\n"),
                    }
                }
                // The replies cut into pieces of `piece` bytes.
                for chunk in replies.chunks(piece) {
                    socket.write_all(chunk).await.unwrap();
                    socket.flush().await.unwrap();
                }
            }
        })
    };
    for _ in 0..3 {
        let asks = (0..=values.len()).map(|i| reads.get(format!("key{i}")));
        let answers = futures_util::future::join_all(asks).await;
        for (i, answer) in answers.into_iter().enumerate() {
            let answer = answer.expect("not busy");
            match values.get(i) {
                Some(v) => assert_eq!(answer.unwrap().map(|b| b.to_vec()), *v, "key{i}"),
                None => assert!(
                    matches!(&answer, Err(ReadError::Redis(e)) if e.starts_with("WRONGTYPE")),
                    "key{i}: {answer:?}"
                ),
            }
        }
    }
    server.await.unwrap();
}

#[tokio::test]
async fn a_malformed_reply_fails_every_waiting_caller_and_the_next_read_reconnects() {
    let (listener, reads) = setup("", "", Duration::from_secs(10)).await;
    let server = tokio::spawn(async move {
        for bad in [
            &b"+OK\r\n$1\r\nb\r\n"[..],           // a status is no answer to GET
            b"$3\r\nabcXY",                       // no \r\n after the value
            b"$9999999999\r\n",                   // longer than any entry
            b":1\r\n$1\r\nb\r\n",                 // an integer
            b"$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", // one reply too many
        ] {
            let (mut socket, _) = listener.accept().await.unwrap();
            commands(&mut socket, 2).await;
            socket.write_all(bad).await.unwrap();
            // The client closes: the read sees the end.
            let mut rest = Vec::new();
            let _ = socket.read_to_end(&mut rest).await;
        }
        let (mut socket, _) = listener.accept().await.unwrap();
        commands(&mut socket, 1).await;
        socket.write_all(&bulk(b"fine")).await.unwrap();
        socket
    });
    for round in 0..5 {
        let (a, b) = tokio::join!(reads.get("a".into()), reads.get("b".into()));
        let (a, b) = (a.unwrap(), b.unwrap());
        // Either the first reply was taken before the damage was seen, or
        // both callers were told; never the other's value or a made-up one.
        assert!(
            a.is_err() || matches!(&a, Ok(Some(v)) if v.as_ref() == b"a"),
            "round {round}: a = {a:?}"
        );
        assert!(
            b.is_err() || matches!(&b, Ok(Some(v)) if v.as_ref() == b"b"),
            "round {round}: b = {b:?}"
        );
    }
    let fine = reads.get("c".into()).await.unwrap().unwrap();
    assert_eq!(fine.as_deref(), Some(&b"fine"[..]));
    drop(server.await.unwrap());
}

#[tokio::test]
async fn a_new_connection_authenticates_and_selects_the_database_first() {
    let (listener, reads) = setup("user:secret@", "/3", Duration::from_secs(10)).await;
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let hello = commands(&mut socket, 2).await;
        assert_eq!(hello[0], ["AUTH", "user", "secret"]);
        assert_eq!(hello[1], ["SELECT", "3"]);
        socket.write_all(b"+OK\r\n+OK\r\n").await.unwrap();
        let get = commands(&mut socket, 1).await;
        assert_eq!(get[0], ["GET", "k"]);
        socket.write_all(&bulk(b"v")).await.unwrap();
        // Redis closes the idle connection (a restart, a client timeout).
        drop(socket);
        // A refused password is an error for the caller, not a value.
        let (mut socket, _) = listener.accept().await.unwrap();
        commands(&mut socket, 2).await;
        socket
            .write_all(b"-WRONGPASS invalid username-password pair\r\n+OK\r\n")
            .await
            .unwrap();
        socket
    });
    let v = reads.get("k".into()).await.unwrap().unwrap();
    assert_eq!(v.as_deref(), Some(&b"v"[..]));
    // The next read opens another connection (a try that meets the closed
    // one first fails with an error), which is refused.
    let mut refused = None;
    for _ in 0..3 {
        refused = Some(reads.get("k".into()).await.unwrap());
        if matches!(&refused, Some(Err(ReadError::Redis(_)))) {
            break;
        }
    }
    assert!(
        matches!(&refused, Some(Err(ReadError::Redis(e))) if e.starts_with("WRONGPASS")),
        "{refused:?}"
    );
    drop(server.await.unwrap());
}

#[tokio::test]
async fn a_redis_that_stops_answering_fails_the_waiting_reads_at_the_deadline() {
    let deadline = Duration::from_millis(300);
    let (listener, reads) = setup("", "", deadline).await;
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        commands(&mut socket, 1).await;
        socket.write_all(&bulk(b"first")).await.unwrap();
        commands(&mut socket, 1).await;
        // Never answers the second; the client gives the connection up.
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest).await;
        let (mut socket, _) = listener.accept().await.unwrap();
        commands(&mut socket, 1).await;
        socket.write_all(&bulk(b"third")).await.unwrap();
        socket
    });
    let first = reads.get("1".into()).await.unwrap().unwrap();
    assert_eq!(first.as_deref(), Some(&b"first"[..]));
    let started = tokio::time::Instant::now();
    let second = reads.get("2".into()).await.unwrap();
    assert!(
        matches!(second, Err(ReadError::Stalled(d)) if d == deadline),
        "{second:?}"
    );
    assert!(started.elapsed() >= deadline);
    let third = reads.get("3".into()).await.unwrap().unwrap();
    assert_eq!(third.as_deref(), Some(&b"third"[..]));
    drop(server.await.unwrap());
}

#[tokio::test]
async fn reads_past_the_bound_are_given_back_not_queued() {
    let (listener, reads) = setup("", "", Duration::from_millis(500)).await;
    let reads = std::sync::Arc::new(reads);
    // A Redis that takes the commands and never answers.
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut sink = Vec::new();
        let _ = socket.read_to_end(&mut sink).await;
    });
    let total = MAX_IN_FLIGHT + MAX_QUEUED + 10;
    let asks: Vec<_> = (0..total)
        .map(|i| {
            let reads = reads.clone();
            tokio::spawn(async move { reads.get(format!("k{i}")).await })
        })
        .collect();
    // Those held fail at the deadline (or when the next connection is
    // refused); the rest get their key back at once.
    let (mut given_back, mut failed) = (Vec::new(), 0);
    for ask in asks {
        match ask.await.unwrap() {
            Err(key) => given_back.push(key),
            Ok(Err(_)) => failed += 1,
            Ok(Ok(value)) => panic!("a value nobody sent: {value:?}"),
        }
    }
    assert!(
        given_back.len() >= 10,
        "{failed} reads were held, {} given back",
        given_back.len()
    );
    assert!(failed <= MAX_IN_FLIGHT + MAX_QUEUED);
    drop(reads);
    server.await.unwrap();
}

#[tokio::test]
async fn the_password_is_not_in_debug_output() {
    let (_listener, reads) = setup("user:hunter2secret@", "", Duration::from_secs(1)).await;
    let shown = format!("{reads:?}");
    // Neither as text nor as the list of its bytes.
    let as_bytes = format!("{:?}", b"hunter2secret");
    let as_bytes = as_bytes.trim_matches(['[', ']']);
    assert!(
        !shown.contains("hunter2secret") && !shown.contains(as_bytes),
        "{shown}"
    );
}
