//! The load tester's HTTP/1.1 response parser (heads, `Content-Length`,
//! chunked coding with extensions and trailers, bodies to the close), over
//! a stream that hands out the fuzz input in pieces of varying size.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, Method};
use rampart_load::http1::Conn;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A server that answers with `data`, a few bytes at a time, then closes.
struct Canned {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl AsyncRead for Canned {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (self.data.len() - self.at)
            .min(buf.remaining())
            .min(self.step);
        let at = self.at;
        buf.put_slice(&self.data[at..at + n]);
        self.at += n;
        // Pieces of 1 to 64 bytes, varying with the input.
        self.step = 1 + (self.step * 7 + n) % 64;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Canned {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
}

/// Bytes kept of each body.
const KEEP: usize = 256;

/// Two requests' worth of answers read from `data` (a response may be
/// followed by another on a kept-alive connection): every response is
/// refused or read, and no more than [`KEEP`] body bytes are kept.
pub fn http1_response(data: &[u8]) {
    let stream = Canned {
        data: data.to_vec(),
        at: 0,
        step: 1 + data.first().map_or(0, |b| usize::from(*b) % 64),
    };
    let mut conn = Conn::over(stream);
    RUNTIME.with(|rt| {
        rt.block_on(async {
            for method in [Method::GET, Method::HEAD] {
                match conn
                    .send(&method, "/", "fuzz.test", &HeaderMap::new(), b"", KEEP)
                    .await
                {
                    Ok(r) => assert!(r.body.len() <= KEEP),
                    Err(_) => break,
                }
            }
        });
    });
}
