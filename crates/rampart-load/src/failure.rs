//! Why a request failed, in words a report can count: the transport's
//! failures (no whole response) and the responses that count as failed
//! (4xx, 5xx). Checks that fail are counted by their label beside these.

use std::fmt;

/// Why a request got no whole response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failure {
    /// The target refused the connection (nothing listens there).
    ConnectRefused,
    /// The connection was not made before the step's timeout.
    ConnectTimeout,
    /// The connection failed otherwise (name resolution, unreachable).
    ConnectError,
    /// The TLS handshake or the TLS session failed.
    Tls,
    /// The response was not complete before the step's timeout.
    RequestTimeout,
    /// The connection was reset or broken while the request or response
    /// was on it.
    Reset,
    /// The target closed the connection before the whole response.
    Closed,
    /// The response could not be read (a malformed head, say).
    BadResponse,
    /// The request could not be made (a URL that renders badly, say).
    BadRequest,
}

impl Failure {
    /// Every failure, in the order reports list them.
    pub const ALL: [Failure; 9] = [
        Failure::ConnectRefused,
        Failure::ConnectTimeout,
        Failure::ConnectError,
        Failure::Tls,
        Failure::RequestTimeout,
        Failure::Reset,
        Failure::Closed,
        Failure::BadResponse,
        Failure::BadRequest,
    ];

    /// Stable label: the key in reports, the word in the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::ConnectRefused => "connect refused",
            Failure::ConnectTimeout => "connect timeout",
            Failure::ConnectError => "connect error",
            Failure::Tls => "tls error",
            Failure::RequestTimeout => "request timeout",
            Failure::Reset => "reset",
            Failure::Closed => "closed",
            Failure::BadResponse => "bad response",
            Failure::BadRequest => "bad request",
        }
    }

    /// A failure to connect, from its I/O error.
    pub fn of_connect(e: &std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Failure::ConnectRefused,
            std::io::ErrorKind::TimedOut => Failure::ConnectTimeout,
            _ => Failure::ConnectError,
        }
    }

    /// A failure on an open connection, from its I/O error.
    pub fn of_io(e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::UnexpectedEof => Failure::Closed,
            K::TimedOut => Failure::RequestTimeout,
            K::InvalidData if is_tls(e) => Failure::Tls,
            K::InvalidData => Failure::BadResponse,
            _ => Failure::Reset,
        }
    }

    /// A failure of hyper's client (HTTP/2, the shared pool), from its
    /// error and the causes under it.
    pub fn of_hyper(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut cause = Some(e);
        let mut connect = false;
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                return if is_tls(io) {
                    Failure::Tls
                } else if connect || io.kind() == std::io::ErrorKind::ConnectionRefused {
                    Failure::of_connect(io)
                } else {
                    Failure::of_io(io)
                };
            }
            if let Some(h) = c.downcast_ref::<hyper::Error>() {
                if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
                    return Failure::Closed;
                }
                if h.is_parse() || h.is_parse_status() {
                    return Failure::BadResponse;
                }
                if h.is_timeout() {
                    return Failure::RequestTimeout;
                }
            }
            if let Some(h) = c.downcast_ref::<hyper_util::client::legacy::Error>() {
                connect |= h.is_connect();
            }
            cause = c.source();
        }
        if connect {
            Failure::ConnectError
        } else {
            Failure::Reset
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an I/O error carries a TLS error (rustls reports its own as
/// `InvalidData`).
fn is_tls(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

/// A failed request: why, and what was said (for the log of the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Why.
    pub failure: Failure,
    /// What the transport said.
    pub detail: String,
}

impl Failed {
    /// A failure with its detail.
    pub fn new(failure: Failure, detail: impl Into<String>) -> Self {
        Self {
            failure,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.failure, self.detail)
    }
}

/// The label a failed status counts under: `http 4xx`, `http 5xx`.
pub fn status_class(status: u16) -> Option<&'static str> {
    match status {
        400..=499 => Some("http 4xx"),
        500..=599 => Some("http 5xx"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn io_errors_name_what_happened() {
        let refused = Error::from(ErrorKind::ConnectionRefused);
        assert_eq!(Failure::of_connect(&refused), Failure::ConnectRefused);
        assert_eq!(
            Failure::of_connect(&Error::from(ErrorKind::TimedOut)),
            Failure::ConnectTimeout
        );
        assert_eq!(
            Failure::of_io(&Error::from(ErrorKind::ConnectionReset)),
            Failure::Reset
        );
        assert_eq!(
            Failure::of_io(&Error::from(ErrorKind::BrokenPipe)),
            Failure::Reset
        );
        assert_eq!(
            Failure::of_io(&Error::from(ErrorKind::UnexpectedEof)),
            Failure::Closed
        );
        let tls = Error::new(ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(Failure::of_io(&tls), Failure::Tls);
        let labels: std::collections::HashSet<_> =
            Failure::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(labels.len(), Failure::ALL.len(), "labels are distinct");
        assert_eq!(status_class(503), Some("http 5xx"));
        assert_eq!(status_class(404), Some("http 4xx"));
        assert_eq!(status_class(200), None);
    }
}
