//! # switchboard-sockjs
//!
//! A SockJS server (protocol 0.3.x, as sockjs-node and the `sockjs-protocol` test suite define
//! it): a sans-IO session core ([`session::Session`]) plus every transport as a hyper 1.x
//! service ([`SockJs`]), mounted at any prefix. The application sees each session as a
//! [`Connection`]: a stream of text messages in and out, exactly like a WebSocket. It knows
//! nothing of STOMP and can be used by any Rust application on its own.
//!
//! ```
//! use std::convert::Infallible;
//! use hyper::service::service_fn;
//! use hyper_util::rt::TokioIo;
//! use switchboard_sockjs::{Config, SockJs};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     // An echo application: one small task per session.
//!     let sockjs = SockJs::new(Config::default().prefix("/echo"), |conn| {
//!         tokio::spawn(async move {
//!             while let Some(msg) = conn.recv().await {
//!                 if conn.send(msg).is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     });
//!     // A plain hyper server; route the paths `sockjs.matches(path)` accepts to it.
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     tokio::spawn(async move {
//!         while let Ok((tcp, peer)) = listener.accept().await {
//!             let _ = tcp.set_nodelay(true); // frames are small writes
//!             let sockjs = sockjs.clone();
//!             tokio::spawn(async move {
//!                 let svc = service_fn(move |req| {
//!                     let sockjs = sockjs.clone();
//!                     async move { Ok::<_, Infallible>(sockjs.handle(req, Some(peer)).await) }
//!                 });
//!                 // `with_upgrades` for the websocket transports.
//!                 let _ = hyper::server::conn::http1::Builder::new()
//!                     .serve_connection(TokioIo::new(tcp), svc)
//!                     .with_upgrades()
//!                     .await;
//!             });
//!         }
//!     });
//!
//!     // A client (normally sockjs-client in a browser): open an xhr-polling session.
//!     let mut tcp = tokio::net::TcpStream::connect(addr).await?;
//!     tcp.write_all(b"POST /echo/000/abc/xhr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await?;
//!     let mut response = String::new();
//!     tcp.read_to_string(&mut response).await?;
//!     assert!(response.starts_with("HTTP/1.1 200"));
//!     assert!(response.ends_with("o\n\r\n0\r\n\r\n")); // the open frame, chunked
//!     Ok(())
//! }
//! ```
//!
//! (Serve connections `with_upgrades()` so the websocket transports work, and route only paths
//! for which [`SockJs::matches`] is true to [`SockJs::handle`].)
//!
//! ## URLs (under the prefix)
//! `/` greeting, `/info`, `/iframe*.html`, raw `/websocket`, and
//! `/<server>/<session>/<transport>` for `websocket`, `xhr`, `xhr_send`, `xhr_streaming`,
//! `eventsource`, `htmlfile`, `jsonp`, `jsonp_send`.
//!
//! ## Sessions, heartbeats and limits
//! Messages an application sends are queued (escaped once, at send time) and go out together
//! in ONE `a[...]` frame per flush. A heartbeat frame `h` is sent only when nothing at all was
//! sent to an attached receiver for [`Config::heartbeat`] (25 s): an application that sends
//! its own traffic more often (STOMP heart-beats) never sees `h`. A session without a
//! receiving request for [`Config::disconnect_delay`] (5 s; `xhr_send` does not count) is
//! reaped: its [`Connection::recv`] returns `None`. The outbound queue is bounded by
//! [`Config::max_queued_bytes`] (1 MiB): past it the session is closed with
//! `c[1009,"Message queue full"]` and [`Connection::send`] returns [`SendError::Closed`]; use
//! [`Connection::drained`] for backpressure. Inbound messages are bounded the same way (the
//! websocket transports stop reading instead). Request bodies and WebSocket messages are
//! limited by [`Config::max_message_size`] (413, or close 1009). Past
//! [`Config::max_sessions`] new sessions get 503. A receiving request aborted by the client
//! closes its session with `c[1002,"Connection interrupted"]`.
//!
//! Dropping a [`Connection`] closes the session (1000 `Normal closure`).
//!
//! ## Escaping and lone surrogates
//! See [`json`]: outgoing strings escape the characters sockjs-node escapes (lower-case
//! `\uXXXX`); incoming JSON may use any escape, and a lone UTF-16 surrogate (`"\ud800"`)
//! decodes to U+FFFD, never an error.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::convert::Infallible;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

mod endpoint;
pub mod json;
pub mod session;
mod transport;

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
    /// Outbound bytes (escaped) a session may queue for a client that is not receiving; past
    /// it the session is closed with `c[1009,"Message queue full"]`, its queue dropped, and
    /// it is counted in [`Metrics::closed_queue_full`] (default 1 MiB). The same bound applies
    /// to inbound messages the application has not read yet.
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

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("prefix", &self.prefix)
            .field("websocket", &self.websocket)
            .field("disabled_transports", &self.disabled_transports)
            .field("cookie_needed", &self.cookie_needed)
            .field("heartbeat", &self.heartbeat)
            .field("disconnect_delay", &self.disconnect_delay)
            .field("response_limit", &self.response_limit)
            .field("max_queued_bytes", &self.max_queued_bytes)
            .field("max_message_size", &self.max_message_size)
            .field("max_sessions", &self.max_sessions)
            .field("client_url", &self.client_url)
            .field(
                "origin_policy",
                &self.origin_policy.as_ref().map(|_| "<fn>"),
            )
            .finish()
    }
}

impl Config {
    /// Sets [`Config::prefix`].
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
    /// Sets [`Config::websocket`].
    pub fn websocket(mut self, on: bool) -> Self {
        self.websocket = on;
        self
    }
    /// Sets [`Config::disabled_transports`].
    pub fn disabled_transports(mut self, t: Vec<Transport>) -> Self {
        self.disabled_transports = t;
        self
    }
    /// Sets [`Config::cookie_needed`].
    pub fn cookie_needed(mut self, on: bool) -> Self {
        self.cookie_needed = on;
        self
    }
    /// Sets [`Config::heartbeat`].
    pub fn heartbeat(mut self, d: Duration) -> Self {
        self.heartbeat = d;
        self
    }
    /// Sets [`Config::disconnect_delay`].
    pub fn disconnect_delay(mut self, d: Duration) -> Self {
        self.disconnect_delay = d;
        self
    }
    /// Sets [`Config::response_limit`].
    pub fn response_limit(mut self, n: usize) -> Self {
        self.response_limit = n;
        self
    }
    /// Sets [`Config::max_queued_bytes`].
    pub fn max_queued_bytes(mut self, n: usize) -> Self {
        self.max_queued_bytes = n;
        self
    }
    /// Sets [`Config::max_message_size`].
    pub fn max_message_size(mut self, n: usize) -> Self {
        self.max_message_size = n;
        self
    }
    /// Sets [`Config::max_sessions`].
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n;
        self
    }
    /// Sets [`Config::client_url`].
    pub fn client_url(mut self, url: impl Into<String>) -> Self {
        self.client_url = url.into();
        self
    }
    /// Sets [`Config::origin_policy`].
    pub fn origin_policy(mut self, p: Option<OriginPolicy>) -> Self {
        self.origin_policy = p;
        self
    }
}

/// Why [`Connection::send`] refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The session is closed (by either side, by the disconnect delay, or by the queue limit).
    Closed,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SockJS session closed")
    }
}

impl std::error::Error for SendError {}

/// A point-in-time view of an endpoint's counters.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Metrics {
    /// Sessions open now (from creation until reaped; a closed session awaiting its
    /// disconnect delay still counts), by the transport that opened them.
    pub open: Vec<(Transport, u64)>,
    /// Sessions ever opened, by transport.
    pub opened_total: Vec<(Transport, u64)>,
    /// Sessions closed because their outbound (or unread inbound) queue passed
    /// `max_queued_bytes`.
    pub closed_queue_full: u64,
    /// Sessions reaped after the disconnect delay.
    pub timed_out: u64,
    /// Sessions in the registry now (open, or closed and not yet reaped).
    pub sessions: u64,
    /// Session objects still in memory (held by the registry, a request, a timer task or the
    /// application's [`Connection`]): returns to 0 once every session is reaped and every
    /// `Connection` dropped.
    pub live_session_objects: u64,
}

impl Metrics {
    /// Sessions open now, all transports.
    pub fn open_total(&self) -> u64 {
        self.open.iter().map(|(_, n)| n).sum()
    }
}

/// One SockJS session as the application sees it. Every method takes `&self`, so one task
/// can `select!` over [`recv`](Self::recv) and [`drained`](Self::drained). Dropping it closes
/// the session (1000 `Normal closure`).
pub struct Connection {
    pub(crate) cell: Arc<endpoint::Cell>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id())
            .field("transport", &self.transport())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The session id (from the URL; generated for raw WebSocket).
    pub fn id(&self) -> &str {
        &self.cell.id
    }
    /// The transport of the request that opened the session.
    pub fn transport(&self) -> Transport {
        self.cell.transport
    }
    /// The peer address given to [`SockJs::handle`] for the opening request.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.cell.peer
    }
    /// The opening request's URI (path and query) and headers.
    pub fn request(&self) -> &http::request::Parts {
        &self.cell.parts
    }
    /// The next message from the client; `None` once the session is closed (messages that
    /// arrived before the close are delivered first). Call it from one task at a time.
    pub async fn recv(&self) -> Option<String> {
        poll_fn(|cx| self.cell.poll_recv(cx)).await
    }
    /// Queues a message for the client (batched with others into one `a[...]` frame).
    /// `Err(Closed)` once the session is closed, including when this message would pass
    /// [`Config::max_queued_bytes`] (which closes it).
    pub fn send(&self, message: impl Into<String>) -> Result<(), SendError> {
        let m: String = message.into();
        self.cell.send(&m).map_err(|_| SendError::Closed)
    }
    /// Outbound bytes queued and not yet taken by a receiving request.
    pub fn buffered_bytes(&self) -> usize {
        self.cell.buffered_bytes()
    }
    /// Resolves once [`buffered_bytes`](Self::buffered_bytes) is below `below`, or the
    /// session is closed.
    pub async fn drained(&self, below: usize) {
        poll_fn(|cx| self.cell.poll_drained(below, cx)).await
    }
    /// Closes the session with `c[code,"reason"]` (after the messages already queued). Every
    /// later receiving request gets the same frame until the session is reaped.
    pub fn close(&self, code: u16, reason: &str) {
        self.cell.close(code, reason)
    }
    /// Whether the session is closed.
    pub fn is_closed(&self) -> bool {
        self.cell.is_closed()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.cell.close(1000, "Normal closure");
    }
}

/// A SockJS endpoint: the hyper service for every URL under [`Config::prefix`]. Cheap to clone.
#[derive(Clone)]
pub struct SockJs {
    shared: Arc<endpoint::Shared>,
}

impl std::fmt::Debug for SockJs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SockJs")
            .field("prefix", &self.shared.config.prefix)
            .finish_non_exhaustive()
    }
}

impl SockJs {
    /// An endpoint that calls `on_connection` once per new session (spawn your own task there).
    /// A trailing `/` of the prefix is ignored.
    pub fn new<F>(mut config: Config, on_connection: F) -> SockJs
    where
        F: Fn(Connection) + Send + Sync + 'static,
    {
        while config.prefix.ends_with('/') {
            config.prefix.pop();
        }
        SockJs {
            shared: Arc::new(endpoint::Shared::new(config, Box::new(on_connection))),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Whether `path` belongs to this endpoint (the prefix itself or below it).
    pub fn matches(&self, path: &str) -> bool {
        path.strip_prefix(self.shared.config.prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Answers one request under the prefix. `peer` is passed on to [`Connection::peer`].
    /// Must run inside a tokio runtime (it spawns one timer task per HTTP session and one
    /// task per WebSocket).
    pub async fn handle<B>(
        &self,
        req: http::Request<B>,
        peer: Option<SocketAddr>,
    ) -> http::Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        transport::handle(&self.shared, req, peer).await
    }

    /// The endpoint's counters.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics()
    }

    /// Closes every open session with `c[code,"reason"]` (server shutdown). Receivers get the
    /// frame and end (call it before a graceful shutdown of the HTTP server, which would
    /// otherwise wait for the open streaming responses); websocket sessions get the frame and
    /// a WebSocket close; the sessions are reaped after the disconnect delay.
    pub fn close_all(&self, code: u16, reason: &str) {
        self.shared.close_all(code, reason);
    }
}
