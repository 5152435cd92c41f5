//! # switchboard-sockjs
//!
//! A SockJS server (protocol 0.3.x, as sockjs-node and the `sockjs-protocol` test suite define
//! it): a sans-IO session core ([`session::Session`]) plus every transport as a hyper 1.x
//! service ([`SockJs`]), mounted at any prefix. The application sees each session as a
//! [`Connection`]: a stream of text messages in and out, exactly like a WebSocket. It knows
//! nothing of STOMP.
//!
//! API CONTRACT (skeleton written by the coordinator; the implementation fills it in and keeps
//! these public names and signatures so `switchboard-server` can build against them).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// The body of every response [`SockJs::handle`] gives (fixed bodies and streams alike).
pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// An origin policy: `(Origin header, Host header) -> allowed`. A refused request gets 403.
pub type OriginPolicy = Arc<dyn Fn(Option<&str>, Option<&str>) -> bool + Send + Sync>;

/// The server-side transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// `/<server>/<session>/websocket`: SockJS framing over one WebSocket.
    WebSocket,
    /// `<prefix>/websocket`: a raw WebSocket, no SockJS framing.
    RawWebSocket,
    /// `xhr` polling (with `xhr_send`).
    XhrPolling,
    /// `xhr_streaming` (with `xhr_send`).
    XhrStreaming,
    /// `eventsource` (with `xhr_send`).
    EventSource,
    /// `htmlfile` (with `xhr_send`).
    HtmlFile,
    /// `jsonp` polling (with `jsonp_send`).
    JsonpPolling,
}

impl Transport {
    /// A stable lower-case label (metrics, config): `websocket`, `raw_websocket`, `xhr`,
    /// `xhr_streaming`, `eventsource`, `htmlfile`, `jsonp`.
    pub fn label(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::RawWebSocket => "raw_websocket",
            Transport::XhrPolling => "xhr",
            Transport::XhrStreaming => "xhr_streaming",
            Transport::EventSource => "eventsource",
            Transport::HtmlFile => "htmlfile",
            Transport::JsonpPolling => "jsonp",
        }
    }
}

/// Configuration of one SockJS endpoint. Every field has a documented default.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Where the endpoint is mounted, e.g. `/chat` (default `/sockjs`). No trailing slash.
    pub prefix: String,
    /// Whether the `websocket` transports are offered (`/info` says so; default true).
    pub websocket: bool,
    /// Transports switched off (their URLs answer 404).
    pub disabled_transports: Vec<Transport>,
    /// `/info`'s `cookie_needed`, and `Set-Cookie: JSESSIONID=...` on session responses
    /// (default false).
    pub cookie_needed: bool,
    /// Heartbeat frame `h` after this long without a frame to an attached receiver (25 s).
    pub heartbeat: Duration,
    /// A session with no receiving request for this long is closed and forgotten (5 s).
    pub disconnect_delay: Duration,
    /// Streaming responses are ended after this many body bytes (128 KiB).
    pub response_limit: usize,
    /// Outbound bytes a session may queue for a client that is not receiving; past it the
    /// session is closed (code 1009 ... see implementation docs) and counted (default 1 MiB).
    pub max_queued_bytes: usize,
    /// Largest inbound request body / WebSocket message (default 1 MiB).
    pub max_message_size: usize,
    /// Most sessions open at once (default 100,000); past it new sessions get 503.
    pub max_sessions: usize,
    /// The SockJS client library URL the iframe page loads.
    pub client_url: String,
    /// The origin policy for WebSocket upgrades and every HTTP transport; `None` allows any.
    pub origin_policy: Option<OriginPolicy>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            prefix: "/sockjs".into(),
            websocket: true,
            disabled_transports: Vec::new(),
            cookie_needed: false,
            heartbeat: Duration::from_secs(25),
            disconnect_delay: Duration::from_secs(5),
            response_limit: 128 * 1024,
            max_queued_bytes: 1024 * 1024,
            max_message_size: 1024 * 1024,
            max_sessions: 100_000,
            client_url: "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js".into(),
            origin_policy: None,
        }
    }
}

/// Why [`Connection::send`] refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The session is closed (by either side, by the disconnect delay, or by the queue limit).
    Closed,
}

/// A point-in-time view of an endpoint's counters.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Metrics {
    /// Sessions open now, by the transport that opened them.
    pub open: Vec<(Transport, u64)>,
    /// Sessions ever opened, by transport.
    pub opened_total: Vec<(Transport, u64)>,
    /// Sessions closed because their outbound queue passed `max_queued_bytes`.
    pub closed_queue_full: u64,
    /// Sessions reaped after the disconnect delay.
    pub timed_out: u64,
}

/// One SockJS session as the application sees it. Every method takes `&self`, so one task
/// can `select!` over [`recv`](Self::recv) and [`drained`](Self::drained).
pub struct Connection {
    _private: (),
}

impl Connection {
    /// The session id (from the URL; generated for raw WebSocket).
    pub fn id(&self) -> &str {
        ""
    }
    /// The transport of the request that opened the session.
    pub fn transport(&self) -> Transport {
        Transport::WebSocket
    }
    /// The peer address given to [`SockJs::handle`] for the opening request.
    pub fn peer(&self) -> Option<SocketAddr> {
        None
    }
    /// The opening request's URI (path and query) and headers.
    pub fn request(&self) -> &http::request::Parts {
        unreachable!("skeleton")
    }
    /// The next message from the client; `None` once the session is closed.
    pub async fn recv(&self) -> Option<String> {
        None
    }
    /// Queues a message for the client (batched with others into one `a[...]` frame).
    pub fn send(&self, _message: impl Into<String>) -> Result<(), SendError> {
        Err(SendError::Closed)
    }
    /// Outbound bytes queued and not yet taken by a receiving request.
    pub fn buffered_bytes(&self) -> usize {
        0
    }
    /// Resolves once [`buffered_bytes`](Self::buffered_bytes) is below `below`, or the
    /// session is closed.
    pub async fn drained(&self, _below: usize) {}
    /// Closes the session with `c[code,"reason"]`.
    pub fn close(&self, _code: u16, _reason: &str) {}
    /// Whether the session is closed.
    pub fn is_closed(&self) -> bool {
        true
    }
}

/// A SockJS endpoint: the hyper service for every URL under [`Config::prefix`]. Cheap to clone.
#[derive(Clone)]
pub struct SockJs {
    config: Arc<Config>,
}

impl SockJs {
    /// An endpoint that calls `on_connection` once per new session (spawn your own task there).
    pub fn new<F>(config: Config, on_connection: F) -> SockJs
    where
        F: Fn(Connection) + Send + Sync + 'static,
    {
        let _ = on_connection;
        SockJs {
            config: Arc::new(config),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether `path` belongs to this endpoint (the prefix itself or below it).
    pub fn matches(&self, path: &str) -> bool {
        path.strip_prefix(self.config.prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Answers one request under the prefix. `peer` is passed on to [`Connection::peer`].
    pub async fn handle<B>(
        &self,
        req: http::Request<B>,
        peer: Option<SocketAddr>,
    ) -> http::Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let _ = (req, peer);
        let mut r = http::Response::new(Body::default());
        *r.status_mut() = http::StatusCode::NOT_IMPLEMENTED;
        r
    }

    /// The endpoint's counters.
    pub fn metrics(&self) -> Metrics {
        Metrics::default()
    }

    /// Closes every open session with `c[code,"reason"]` (server shutdown).
    pub fn close_all(&self, code: u16, reason: &str) {
        let _ = (code, reason);
    }
}
