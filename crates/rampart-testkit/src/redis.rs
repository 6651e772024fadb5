//! A `redis-server` of the test's own, on a free loopback port, that the test
//! can stop and start again on the same port. It keeps nothing on disk.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) test Redis.
pub struct RedisServer {
    /// Its address.
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` on a free port. Panics, saying what to install,
    /// when the program is missing.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: None,
        };
        server.resume();
        server
    }

    /// The `redis://` URL of the server.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Starts the server again (after [`RedisServer::stop`]), empty, on the
    /// same port.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.addr.port().to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): install it with `sudo apt-get install redis-server` \
                     or run ./scripts/install-deps.sh test"
                )
            });
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if self.command("PING").is_some_and(|r| r.starts_with("+PONG")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server on {} did not answer PING within 10 s",
            self.addr
        );
    }

    /// Stops the server (it may be started again with [`RedisServer::resume`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends one inline command and returns the raw reply, `None` when the
    /// server cannot be reached.
    pub fn command(&self, command: &str) -> Option<String> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("{command}\r\n").as_bytes()).ok()?;
        let mut buf = vec![0u8; 64 * 1024];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Sends one command given as arguments (RESP, so any bytes are safe)
    /// and returns the raw reply, `None` when the server cannot be reached.
    pub fn call(&self, args: &[&str]) -> Option<String> {
        let mut text = format!("*{}\r\n", args.len());
        for a in args {
            text.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.command(text.trim_end_matches("\r\n"))
    }

    /// How many keys the server holds.
    pub fn dbsize(&self) -> usize {
        self.command("DBSIZE")
            .and_then(|r| r.trim().trim_start_matches(':').parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
