//! Upstream connections that acknowledge at once. An origin that writes a
//! response's head and body in two small writes with Nagle's algorithm on
//! (Python's `http.server` does) holds the body until its head is
//! acknowledged, and Linux delays that ACK by up to 40 ms on a kept-alive
//! connection where Rampart has nothing to send. Setting `TCP_QUICKACK`
//! after every read that returns makes the kernel send the ACK it is
//! holding at once, so such an origin answers without the stall. Elsewhere
//! it is a no-op.
//!
//! It is needed after the read that ends a response too, though nothing
//! more is awaited: bytes such an origin writes after a response (a second
//! response nobody asked for) would otherwise wait for the ACK that the
//! next request on the connection carries, and then be read as that
//! request's answer. Acknowledged at once, they arrive while the connection
//! is idle, and the pool's idle check drops it (measured: arming only while
//! a response is incomplete saved one system call per request and let
//! `bytes_after_a_response_never_answer_another_request` fail every time).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// [`HttpConnector`] whose connections set `TCP_QUICKACK` after reads.
#[derive(Clone)]
pub struct QuickAckConnector(pub HttpConnector);

/// A connection that sets `TCP_QUICKACK` after each read that returns.
pub struct QuickAck(TokioIo<TcpStream>);

impl tower_service::Service<Uri> for QuickAckConnector {
    type Response = QuickAck;
    type Error = <HttpConnector as tower_service::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<QuickAck, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map(QuickAck) })
    }
}

impl QuickAck {
    fn arm(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let _ = socket2::SockRef::from(self.0.inner()).set_tcp_quickack(true);
        }
    }
}

impl Read for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.0).poll_read(cx, buf);
        if polled.is_ready() {
            // Setting the option sends an ACK the kernel is holding for
            // what was just read; polls that find nothing pay no syscall.
            self.arm();
        }
        polled
    }
}

impl Write for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

impl Connection for QuickAck {
    fn connected(&self) -> Connected {
        self.0.connected()
    }
}
