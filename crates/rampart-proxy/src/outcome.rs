//! Outcomes of the request path's stages that are not the cache's (those are
//! `rampart_cache::status`): each value's `as_str()` is the metric label and
//! the log field, so no string is invented twice.

/// How an exchange with an upstream ended (the `outcome` label of
/// `rampart_upstream_duration_seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamOutcome {
    /// A response with a status of this class: 1 to 5.
    Status(u8),
    /// No connection could be made.
    ConnectError,
    /// No response headers within the deadline.
    Timeout,
    /// The exchange broke after connecting.
    Error,
    /// The client's request body failed while it was sent (not the
    /// upstream's fault).
    ClientError,
    /// Every target's circuit was open; nothing was sent.
    CircuitOpen,
    /// No target passed its health checks; nothing was sent.
    NoHealthyTarget,
}

impl UpstreamOutcome {
    /// The outcome of a response with `status`.
    pub fn of_status(status: http::StatusCode) -> Self {
        UpstreamOutcome::Status((status.as_u16() / 100).clamp(1, 5) as u8)
    }

    /// Stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamOutcome::Status(1) => "1xx",
            UpstreamOutcome::Status(2) => "2xx",
            UpstreamOutcome::Status(3) => "3xx",
            UpstreamOutcome::Status(4) => "4xx",
            UpstreamOutcome::Status(_) => "5xx",
            UpstreamOutcome::ConnectError => "connect_error",
            UpstreamOutcome::Timeout => "timeout",
            UpstreamOutcome::Error => "error",
            UpstreamOutcome::ClientError => "client_error",
            UpstreamOutcome::CircuitOpen => "circuit_open",
            UpstreamOutcome::NoHealthyTarget => "no_healthy_target",
        }
    }
}

/// Why a request was sent to an upstream a second time (the `reason` label
/// of `rampart_upstream_retries_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryReason {
    /// The first target could not be connected to.
    ConnectError,
    /// The first target answered 503.
    Unavailable,
    /// The connection closed before any of the response arrived.
    Closed,
}

impl RetryReason {
    /// Every reason, in label order.
    pub const ALL: [RetryReason; 3] = [
        RetryReason::ConnectError,
        RetryReason::Unavailable,
        RetryReason::Closed,
    ];

    /// Stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::ConnectError => "connect-error",
            RetryReason::Unavailable => "503",
            RetryReason::Closed => "closed",
        }
    }
}

/// Why a rate limit refused a request (the `reason` label of
/// `rampart_rate_limited_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitRefusal {
    /// The client is over its allowance.
    Limited,
    /// The limit's key table is full of clients inside their period.
    TableFull,
}

impl LimitRefusal {
    /// Stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitRefusal::Limited => "limited",
            LimitRefusal::TableFull => "table-full",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_fall_into_their_class() {
        for (status, label) in [
            (101, "1xx"),
            (204, "2xx"),
            (304, "3xx"),
            (404, "4xx"),
            (503, "5xx"),
        ] {
            let s = http::StatusCode::from_u16(status).unwrap();
            assert_eq!(UpstreamOutcome::of_status(s).as_str(), label);
        }
    }
}
