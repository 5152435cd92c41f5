//! Protocol error kinds: what went wrong, what the ERROR frame says, and the metric label.

use std::fmt;

/// Why a session sent ERROR and closed. Each kind is a metric label (`as_str`) and has the
/// `message` header text the client sees (`message`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A frame other than CONNECT/STOMP before CONNECT.
    NotConnected,
    /// A second CONNECT/STOMP.
    AlreadyConnected,
    /// No common protocol version (ERROR carries a `version` header).
    UnsupportedVersion,
    /// The authenticator refused the CONNECT.
    AuthFailed,
    /// A required header is missing.
    MissingHeader,
    /// A header value is invalid (`ack`, `prefetch-count`, `heart-beat`, ...).
    InvalidHeader,
    /// A server command or an unknown command from the client (or NACK in 1.0).
    BadCommand,
    /// SUBSCRIBE with an `id` already in use on this connection.
    DuplicateSubscription,
    /// UNSUBSCRIBE (or ACK/NACK) naming no subscription of this connection.
    UnknownSubscription,
    /// ACK/NACK naming no unacknowledged message.
    BadAck,
    /// BEGIN with a transaction id already open.
    DuplicateTransaction,
    /// COMMIT/ABORT/SEND/ACK naming no open transaction.
    UnknownTransaction,
    /// A destination the broker cannot route (e.g. subscribing to an application destination).
    InvalidDestination,
    /// A configured limit was exceeded (subscriptions, transactions, ...).
    Limit,
    /// Too many connections.
    TooManyConnections,
    /// A queue is full.
    QueueFull,
    /// The backend failed.
    Backend,
    /// An application handler refused the message.
    Application,
    /// The session's outbound queue overflowed.
    SlowConsumer,
    /// The client was silent for longer than its heart-beat interval plus grace.
    HeartBeatTimeout,
    /// No CONNECT in time.
    ConnectTimeout,
    /// The transport could not parse a frame (reported by the server through
    /// `Session::protocol_error`).
    Frame,
    /// The broker is shutting down.
    Shutdown,
    /// The authorizer (or the privacy of user destinations) refused a SUBSCRIBE or SEND; the
    /// ERROR's `message` names the action and the destination.
    AccessDenied,
    /// The session's authentication expired (`message:Token expired`) and it did not
    /// re-authenticate in time.
    AuthExpired,
}

impl ErrorKind {
    /// Every kind (indexes the error counters).
    pub const ALL: [ErrorKind; 25] = [
        ErrorKind::NotConnected,
        ErrorKind::AlreadyConnected,
        ErrorKind::UnsupportedVersion,
        ErrorKind::AuthFailed,
        ErrorKind::MissingHeader,
        ErrorKind::InvalidHeader,
        ErrorKind::BadCommand,
        ErrorKind::DuplicateSubscription,
        ErrorKind::UnknownSubscription,
        ErrorKind::BadAck,
        ErrorKind::DuplicateTransaction,
        ErrorKind::UnknownTransaction,
        ErrorKind::InvalidDestination,
        ErrorKind::Limit,
        ErrorKind::TooManyConnections,
        ErrorKind::QueueFull,
        ErrorKind::Backend,
        ErrorKind::Application,
        ErrorKind::SlowConsumer,
        ErrorKind::HeartBeatTimeout,
        ErrorKind::ConnectTimeout,
        ErrorKind::Frame,
        ErrorKind::Shutdown,
        ErrorKind::AccessDenied,
        ErrorKind::AuthExpired,
    ];

    /// snake_case label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotConnected => "not_connected",
            ErrorKind::AlreadyConnected => "already_connected",
            ErrorKind::UnsupportedVersion => "unsupported_version",
            ErrorKind::AuthFailed => "auth_failed",
            ErrorKind::MissingHeader => "missing_header",
            ErrorKind::InvalidHeader => "invalid_header",
            ErrorKind::BadCommand => "bad_command",
            ErrorKind::DuplicateSubscription => "duplicate_subscription",
            ErrorKind::UnknownSubscription => "unknown_subscription",
            ErrorKind::BadAck => "bad_ack",
            ErrorKind::DuplicateTransaction => "duplicate_transaction",
            ErrorKind::UnknownTransaction => "unknown_transaction",
            ErrorKind::InvalidDestination => "invalid_destination",
            ErrorKind::Limit => "limit",
            ErrorKind::TooManyConnections => "too_many_connections",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::Backend => "backend",
            ErrorKind::Application => "application",
            ErrorKind::SlowConsumer => "slow_consumer",
            ErrorKind::HeartBeatTimeout => "heart_beat_timeout",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Frame => "frame",
            ErrorKind::Shutdown => "shutdown",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::AuthExpired => "auth_expired",
        }
    }

    /// The ERROR frame's `message` header for this kind.
    pub fn message(self) -> &'static str {
        match self {
            ErrorKind::NotConnected => "Not connected",
            ErrorKind::AlreadyConnected => "Already connected",
            ErrorKind::UnsupportedVersion => "Supported protocol versions are 1.0,1.1,1.2",
            ErrorKind::AuthFailed => "Access refused",
            ErrorKind::MissingHeader => "Missing header",
            ErrorKind::InvalidHeader => "Invalid header",
            ErrorKind::BadCommand => "Bad command",
            ErrorKind::DuplicateSubscription => "Duplicated subscription identifier",
            ErrorKind::UnknownSubscription => "Unknown subscription",
            ErrorKind::BadAck => "Invalid ack",
            ErrorKind::DuplicateTransaction => "Transaction already started",
            ErrorKind::UnknownTransaction => "Unknown transaction",
            ErrorKind::InvalidDestination => "Invalid destination",
            ErrorKind::Limit => "Limit exceeded",
            ErrorKind::TooManyConnections => "Too many connections",
            ErrorKind::QueueFull => "Queue full",
            ErrorKind::Backend => "Broker unavailable",
            ErrorKind::Application => "Application error",
            ErrorKind::SlowConsumer => "Slow consumer",
            ErrorKind::HeartBeatTimeout => "Heart-beat timeout",
            ErrorKind::ConnectTimeout => "Connect timeout",
            ErrorKind::Frame => "Malformed frame",
            ErrorKind::Shutdown => "Server shutting down",
            ErrorKind::AccessDenied => "Access denied",
            ErrorKind::AuthExpired => "Token expired",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// A protocol error about to become an ERROR frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StompError {
    pub(crate) kind: ErrorKind,
    /// `message` header (defaults to `kind.message()`).
    pub(crate) message: String,
    /// The ERROR body.
    pub(crate) detail: String,
}

impl StompError {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> StompError {
        StompError {
            kind,
            message: kind.message().to_owned(),
            detail: detail.into(),
        }
    }

    pub(crate) fn with_message(mut self, message: impl Into<String>) -> StompError {
        self.message = message.into();
        self
    }

    pub(crate) fn missing(command: &str, header: &str) -> StompError {
        StompError::new(
            ErrorKind::MissingHeader,
            format!("{command} frames need a '{header}' header"),
        )
    }
}
