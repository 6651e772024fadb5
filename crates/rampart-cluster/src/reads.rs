//! The shared tier's reads (`GET`) on a connection of their own, pipelined.
//!
//! An L2 hit is one `GET`. Through the general Redis client its reply is
//! parsed into a generic value, copied out of it and handed back through
//! the client's machinery. This module keeps one lean connection for
//! `GET`s: callers queue their key on a bounded channel, and one task
//! writes the keys queued in a scheduler tick together (it lets the tasks
//! ready at that moment run first), reads every reply that has arrived in
//! one go, and hands each caller its value as bytes of the value's exact
//! size (which the entry decoder then slices without copying). A caller
//! that finds [`MAX_QUEUED`] keys already waiting gets its key back and
//! uses the general client instead; at most [`MAX_IN_FLIGHT`] `GET`s are
//! sent and unanswered at once.
//!
//! It speaks to Redis over TCP or a Unix socket, with the URL's user,
//! password and database. A reply that is not a bulk string, nil or an
//! error, a length past [`MAX_REPLY`], a reply nobody asked for, or no
//! reply within the Redis deadline while some are awaited ends the
//! connection: every waiting caller gets the error and the next `GET` opens
//! a new one, so nothing Redis sends can be read as another key's value.

use std::collections::VecDeque;
use std::future::Future as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Most `GET`s sent and not yet answered on the connection.
pub const MAX_IN_FLIGHT: usize = 1024;

/// Most keys queued for the connection's task; past it callers get their
/// key back.
pub const MAX_QUEUED: usize = 1024;

/// Longest value read. Redis allows strings up to 512 MiB; an entry larger
/// than this is treated as damaged.
pub const MAX_REPLY: usize = 256 << 20;

/// What is read at most per call while no large value is being read.
const READ_CHUNK: usize = 64 << 10;

/// A value longer than this is read into an allocation of its own size
/// rather than through the connection's buffer and copied out.
const OWN_ALLOCATION: usize = 16 << 10;

/// Longest first line of a reply (an error message, or `$` and a length).
const MAX_LINE: usize = 4096;

/// Why a read gave no value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// Connecting, writing or reading failed.
    #[error("redis connection: {0}")]
    Io(Arc<std::io::Error>),
    /// Redis answered this key with an error.
    #[error("redis replied with an error: {0}")]
    Redis(String),
    /// Redis sent something that is not a reply to `GET`.
    #[error("redis sent a malformed reply")]
    Malformed,
    /// Replies were awaited and none came within the deadline.
    #[error("no reply from redis within {0:?}")]
    Stalled(Duration),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(Arc::new(e))
    }
}

type Answer = Result<Option<Bytes>, ReadError>;

/// One queued `GET`.
struct Ask {
    key: String,
    reply: oneshot::Sender<Answer>,
}

/// Where to connect.
#[derive(Debug, Clone)]
pub enum Target {
    /// A host and port.
    Tcp(String, u16),
    /// A Unix socket.
    Unix(PathBuf),
}

/// Who to be on a new connection: `AUTH` (with the user when given) when
/// there is a password, `SELECT` when the database is not 0.
#[derive(Clone, Copy, Default)]
pub struct Login<'a> {
    /// The ACL user.
    pub username: Option<&'a str>,
    /// The password.
    pub password: Option<&'a str>,
    /// The database number.
    pub db: i64,
}

/// What the connection's task needs.
struct Setup {
    target: Target,
    /// `AUTH` and `SELECT` as sent on a new connection, and how many
    /// replies they bring.
    hello: Vec<u8>,
    hello_replies: usize,
    /// Connecting, and waiting for awaited replies, may take this long.
    deadline: Duration,
}

impl std::fmt::Debug for Setup {
    // Not the greeting: it holds the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("target", &self.target)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// `GET`s on a pipelined connection of their own.
#[derive(Debug)]
pub struct Reads {
    tx: mpsc::Sender<Ask>,
    /// The task is started on first use (inside the runtime).
    pending_start: Mutex<Option<(Setup, mpsc::Receiver<Ask>)>>,
    started: AtomicBool,
}

/// A command as RESP: an array of bulk strings.
fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let _ = write!(out, "*{}\r\n", args.len());
    for a in args {
        let _ = write!(out, "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

impl Reads {
    /// Reads from the Redis at `target`, logged in as `login`; `deadline`
    /// bounds connecting and waiting.
    pub fn new(target: Target, login: Login<'_>, deadline: Duration) -> Self {
        let (mut hello, mut hello_replies) = (Vec::new(), 0);
        if let Some(password) = login.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = login.username {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            command(&mut hello, &args);
            hello_replies += 1;
        }
        if login.db != 0 {
            let db = login.db.to_string();
            command(&mut hello, &[b"SELECT", db.as_bytes()]);
            hello_replies += 1;
        }
        let (tx, rx) = mpsc::channel(MAX_QUEUED);
        let setup = Setup {
            target,
            hello,
            hello_replies,
            deadline,
        };
        Self {
            tx,
            pending_start: Mutex::new(Some((setup, rx))),
            started: AtomicBool::new(false),
        }
    }

    /// The value at `key`, `None` when there is none; `Err` gives the key
    /// back when too many are queued.
    pub async fn get(&self, key: String) -> Result<Answer, String> {
        if !self.started.load(Ordering::Acquire) {
            self.start();
        }
        let (reply, answer) = oneshot::channel();
        if let Err(e) = self.tx.try_send(Ask { key, reply }) {
            let ask = match e {
                mpsc::error::TrySendError::Full(a) | mpsc::error::TrySendError::Closed(a) => a,
            };
            return Err(ask.key);
        }
        Ok(answer
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the connection's task ended").into())))
    }

    fn start(&self) {
        let taken = self
            .pending_start
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((setup, rx)) = taken {
            tokio::spawn(run(setup, rx));
        }
        self.started.store(true, Ordering::Release);
    }
}

/// The connection's task: connects when there is something to read, drives
/// the connection until it fails, and ends when the [`Reads`] is dropped.
async fn run(setup: Setup, mut rx: mpsc::Receiver<Ask>) {
    while let Some(first) = rx.recv().await {
        let conn = match tokio::time::timeout(setup.deadline, connect(&setup)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                fail_queued(first, &mut rx, e);
                continue;
            }
            Err(_) => {
                fail_queued(first, &mut rx, ReadError::Stalled(setup.deadline));
                continue;
            }
        };
        let mut drive = Drive::new(conn, setup.deadline);
        drive.ask(first);
        loop {
            match std::future::poll_fn(|cx| drive.poll(cx, &mut rx)).await {
                Ok(Flow::Yield) => tokio::task::yield_now().await,
                Ok(Flow::Closed) => return,
                Err(()) => break,
            }
        }
    }
}

/// Why driving a connection paused.
enum Flow {
    /// Keys were queued: let the other ready tasks queue theirs first, so
    /// that one write carries them all.
    Yield,
    /// The [`Reads`] is gone and every caller answered.
    Closed,
}

/// Answers `first` and every key queued now with `error`.
fn fail_queued(first: Ask, rx: &mut mpsc::Receiver<Ask>, error: ReadError) {
    let _ = first.reply.send(Err(error.clone()));
    while let Ok(ask) = rx.try_recv() {
        let _ = ask.reply.send(Err(error.clone()));
    }
}

/// A socket of either kind.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<std::io::Result<usize>> {
        match self {
            Stream::Tcp(s) => tokio_util::io::poll_read_buf(Pin::new(s), cx, buf),
            Stream::Unix(s) => tokio_util::io::poll_read_buf(Pin::new(s), cx, buf),
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<std::io::Result<usize>> {
        match self {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, bytes),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, bytes),
        }
    }
}

/// A new connection, greeted.
async fn connect(setup: &Setup) -> Result<Stream, ReadError> {
    let mut stream = match &setup.target {
        Target::Tcp(host, port) => {
            let s = TcpStream::connect((host.as_str(), *port)).await?;
            s.set_nodelay(true)?;
            Stream::Tcp(s)
        }
        Target::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
    };
    if setup.hello_replies == 0 {
        return Ok(stream);
    }
    match &mut stream {
        Stream::Tcp(s) => s.write_all(&setup.hello).await?,
        Stream::Unix(s) => s.write_all(&setup.hello).await?,
    }
    let mut reader = Replies::default();
    let mut answered = 0;
    while answered < setup.hello_replies {
        let read = std::future::poll_fn(|cx| stream.poll_read(cx, reader.buffer())).await?;
        if read == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        while let Some(reply) = reader.next()? {
            match reply {
                Reply::Status => answered += 1,
                Reply::Error(e) => return Err(ReadError::Redis(e)),
                Reply::Nil | Reply::Value(_) => return Err(ReadError::Malformed),
            }
        }
    }
    if reader.has_bytes() {
        return Err(ReadError::Malformed);
    }
    Ok(stream)
}

/// One connection at work.
struct Drive {
    stream: Stream,
    /// `GET`s encoded and not yet written (from `written` on).
    out: Vec<u8>,
    written: usize,
    /// Callers in the order their `GET`s were queued.
    waiting: VecDeque<oneshot::Sender<Answer>>,
    replies: Replies,
    deadline: Duration,
    /// When the last byte arrived, or the first caller of a quiet spell
    /// started waiting.
    progress: Instant,
    stall: Pin<Box<tokio::time::Sleep>>,
    yielded: bool,
}

impl Drive {
    fn new(stream: Stream, deadline: Duration) -> Self {
        let now = Instant::now();
        Self {
            stream,
            out: Vec::with_capacity(4096),
            written: 0,
            waiting: VecDeque::new(),
            replies: Replies::default(),
            deadline,
            progress: now,
            stall: Box::pin(tokio::time::sleep_until(now + deadline)),
            yielded: false,
        }
    }

    fn ask(&mut self, ask: Ask) {
        if self.waiting.is_empty() {
            self.progress = Instant::now();
        }
        command(&mut self.out, &[b"GET", ask.key.as_bytes()]);
        self.waiting.push_back(ask.reply);
    }

    /// Takes queued keys, writes, reads and answers until nothing more can
    /// be done now. Ready(Ok(Yield)) when keys under load should wait a
    /// tick before they are written; Ready(Ok(Closed)) when the [`Reads`]
    /// is gone and every caller answered; Ready(Err) when the connection
    /// failed (every waiting caller has been told).
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        rx: &mut mpsc::Receiver<Ask>,
    ) -> Poll<Result<Flow, ()>> {
        match self.step(cx, rx) {
            Poll::Ready(Ok(flow)) => Poll::Ready(Ok(flow)),
            Poll::Ready(Err(e)) => {
                for w in self.waiting.drain(..) {
                    let _ = w.send(Err(e.clone()));
                }
                Poll::Ready(Err(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn step(
        &mut self,
        cx: &mut Context<'_>,
        rx: &mut mpsc::Receiver<Ask>,
    ) -> Poll<Result<Flow, ReadError>> {
        loop {
            let mut progressed = false;
            let mut closed = false;
            while self.waiting.len() < MAX_IN_FLIGHT {
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(ask)) => {
                        self.ask(ask);
                        progressed = true;
                    }
                    Poll::Ready(None) => {
                        closed = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            // Under load (more than one `GET` unanswered), keys just queued
            // are written after the tasks ready now have run and queued
            // theirs: one write then carries many `GET`s (half the system
            // calls per read) and Redis reads them in one go. A lone `GET`
            // goes at once.
            if !self.yielded && self.written < self.out.len() && self.waiting.len() > 1 {
                self.yielded = true;
                return Poll::Ready(Ok(Flow::Yield));
            }
            while self.written < self.out.len() {
                match self.stream.poll_write(cx, &self.out[self.written..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(std::io::Error::from(
                            std::io::ErrorKind::WriteZero,
                        )
                        .into()))
                    }
                    Poll::Ready(Ok(n)) => {
                        self.written += n;
                        progressed = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                    Poll::Pending => break,
                }
            }
            if self.written == self.out.len() {
                self.out.clear();
                self.written = 0;
                self.yielded = false;
            }
            // Read even with nobody waiting, so that a connection Redis
            // closes while idle is let go of at once, not found out by the
            // next caller.
            match self.stream.poll_read(cx, self.replies.buffer()) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::Error::from(
                        std::io::ErrorKind::UnexpectedEof,
                    )
                    .into()))
                }
                Poll::Ready(Ok(_)) => {
                    self.progress = Instant::now();
                    progressed = true;
                    while let Some(reply) = self.replies.next()? {
                        let answer = match reply {
                            Reply::Nil => Ok(None),
                            Reply::Value(v) => Ok(Some(v)),
                            Reply::Error(e) => Err(ReadError::Redis(e)),
                            Reply::Status => return Poll::Ready(Err(ReadError::Malformed)),
                        };
                        // A reply nobody asked for: the stream is not what
                        // it seems.
                        let Some(caller) = self.waiting.pop_front() else {
                            return Poll::Ready(Err(ReadError::Malformed));
                        };
                        let _ = caller.send(answer);
                    }
                    if self.waiting.is_empty() && self.replies.has_bytes() {
                        return Poll::Ready(Err(ReadError::Malformed));
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => {}
            }
            if closed && self.waiting.is_empty() {
                return Poll::Ready(Ok(Flow::Closed));
            }
            if progressed {
                continue;
            }
            if !self.waiting.is_empty() {
                // Armed at most once per deadline, not per reply.
                // The timer is re-armed only once it has gone off (so at
                // most once per deadline, not per reply); going off early
                // only means looking again.
                let (due, now) = (self.progress + self.deadline, Instant::now());
                if now >= due {
                    return Poll::Ready(Err(ReadError::Stalled(self.deadline)));
                }
                if self.stall.deadline() <= now {
                    self.stall.as_mut().reset(due);
                }
                if self.stall.as_mut().poll(cx).is_ready() {
                    continue;
                }
            }
            return Poll::Pending;
        }
    }
}

/// One RESP2 reply, as far as `GET` and the greeting need.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// `+…` (`OK`).
    Status,
    /// `-…`.
    Error(String),
    /// `$-1`.
    Nil,
    /// `$n` and its bytes.
    Value(Bytes),
}

/// Replies read off a connection: the bytes not yet taken, and a large value
/// being read into an allocation of its own.
#[derive(Default)]
struct Replies {
    buf: BytesMut,
    /// A value longer than [`OWN_ALLOCATION`]: its bytes so far (with
    /// room for all of them and the `\r\n` after) and its length.
    large: Option<(BytesMut, usize)>,
}

impl Replies {
    /// Where the next read goes.
    fn buffer(&mut self) -> &mut BytesMut {
        if let Some((value, _)) = &mut self.large {
            return value;
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        &mut self.buf
    }

    /// Whether bytes were read that no reply took yet.
    fn has_bytes(&self) -> bool {
        !self.buf.is_empty() || self.large.is_some()
    }

    /// The next whole reply, `None` while more bytes are needed.
    fn next(&mut self) -> Result<Option<Reply>, ReadError> {
        if let Some((value, len)) = &mut self.large {
            if value.len() < *len + 2 {
                return Ok(None);
            }
            let len = *len;
            let mut value = self.large.take().map(|(v, _)| v).unwrap_or_default();
            check_end(&value[len..len + 2])?;
            // Whatever came after the value starts the next reply.
            self.buf.extend_from_slice(&value[len + 2..]);
            value.truncate(len);
            return Ok(Some(Reply::Value(value.freeze())));
        }
        let Some((line_end, head)) = parse_line(&self.buf)? else {
            return Ok(None);
        };
        let reply = match head {
            Head::Status => Reply::Status,
            Head::Error => {
                Reply::Error(String::from_utf8_lossy(&self.buf[1..line_end - 2]).into_owned())
            }
            Head::Nil => Reply::Nil,
            Head::Bulk(len) => {
                let whole = line_end + len + 2;
                if self.buf.len() >= whole {
                    check_end(&self.buf[line_end + len..whole])?;
                    // Copied at its exact size: the value may be kept in
                    // memory as an entry, and must not hold the buffer.
                    let value = Bytes::copy_from_slice(&self.buf[line_end..line_end + len]);
                    self.buf.advance(whole);
                    return Ok(Some(Reply::Value(value)));
                }
                if len > OWN_ALLOCATION {
                    let mut value = BytesMut::with_capacity(len + 2);
                    value.extend_from_slice(&self.buf[line_end..]);
                    self.buf.clear();
                    self.large = Some((value, len));
                }
                return Ok(None);
            }
        };
        self.buf.advance(line_end);
        Ok(Some(reply))
    }
}

fn check_end(crlf: &[u8]) -> Result<(), ReadError> {
    if crlf == b"\r\n" {
        Ok(())
    } else {
        Err(ReadError::Malformed)
    }
}

/// The first line of a reply.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    Status,
    Error,
    Nil,
    Bulk(usize),
}

/// The first line in `buf` (its end, past `\r\n`, and what it starts),
/// `None` while it is incomplete.
fn parse_line(buf: &[u8]) -> Result<Option<(usize, Head)>, ReadError> {
    let Some(nl) = buf.iter().take(MAX_LINE).position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_LINE {
            Err(ReadError::Malformed)
        } else {
            Ok(None)
        };
    };
    if nl == 0 || buf[nl - 1] != b'\r' {
        return Err(ReadError::Malformed);
    }
    let body = &buf[1..nl - 1];
    let head = match buf[0] {
        b'+' => Head::Status,
        b'-' => Head::Error,
        b'$' if body == b"-1" => Head::Nil,
        b'$' => {
            if body.is_empty() || body.len() > 10 || !body.iter().all(u8::is_ascii_digit) {
                return Err(ReadError::Malformed);
            }
            let len = body
                .iter()
                .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
            if len > MAX_REPLY {
                return Err(ReadError::Malformed);
            }
            Head::Bulk(len)
        }
        _ => return Err(ReadError::Malformed),
    };
    Ok(Some((nl + 1, head)))
}
