//! Binding the listeners, accepting connections, and shutting down gracefully.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use switchboard_broker::Broker;
use switchboard_sockjs::SockJs;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::metrics::{ServerMetrics, Transport};
use crate::tls::{self, TlsError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: io::Error,
    },
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The configuration is inconsistent.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Cluster mode could not start (Redis unreachable at start, bad URL).
    #[cfg(feature = "cluster")]
    #[error(transparent)]
    Cluster(#[from] switchboard_cluster::ClusterError),
}

/// The addresses the server actually listens on (ports resolved when the config said `:0`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BoundAddrs {
    /// HTTP (or HTTPS when TLS is configured): health, metrics, WebSocket endpoints.
    pub http: Option<SocketAddr>,
    /// STOMP over TCP.
    pub stomp: Option<SocketAddr>,
    /// STOMP over TLS.
    pub stomp_tls: Option<SocketAddr>,
}

/// Asks a running server to shut down gracefully. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl ShutdownHandle {
    /// Stops accepting, closes WebSockets with 1001, SockJS sessions with `c[1001,...]` and
    /// STOMP sessions with an ERROR after flushing what is queued (bounded by
    /// `limits.shutdown_grace_ms`). Idempotent.
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }
}

/// A receiver side of the shutdown signal, given to every task.
#[derive(Clone, Debug)]
pub(crate) struct ShutdownSignal {
    rx: watch::Receiver<bool>,
}

impl ShutdownSignal {
    /// Resolves once shutdown has been requested (immediately if it already was).
    pub(crate) async fn wait(&mut self) {
        // An error means every sender is gone: treat that as shutdown too.
        let _ = self.rx.wait_for(|down| *down).await;
    }

    pub(crate) fn is_down(&self) -> bool {
        *self.rx.borrow()
    }
}

/// Counts open connections, enforces `max_connections`, and lets shutdown wait for them.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    open: AtomicUsize,
    idle: Notify,
    /// Refused connections still being told why (see [`refuse`]); bounded by [`MAX_REFUSING`].
    refusing: AtomicUsize,
}

/// Held by a connection task; releases its slot when dropped.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    shared: Arc<Shared>,
    transport: Transport,
}

impl ConnectionSlot {
    /// The transport the slot is counted under.
    pub(crate) fn transport(&self) -> Transport {
        self.transport
    }

    /// Re-labels the slot (an HTTP connection becomes a WebSocket one after the upgrade).
    pub(crate) fn set_transport(&mut self, t: Transport) {
        if t != self.transport {
            self.shared.metrics.connection_closed(self.transport);
            self.shared.metrics.connection_opened(t);
            self.transport = t;
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.shared.metrics.connection_closed(self.transport);
        if self.shared.connections.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.connections.idle.notify_waiters();
        }
    }
}

/// State shared by every task of one server.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) metrics: ServerMetrics,
    pub(crate) connections: Connections,
    pub(crate) broker: Broker,
    /// The SockJS endpoints, one per WebSocket path (none when SockJS is off).
    pub(crate) sockjs: Vec<SockJs>,
    /// The rendered demo page (when the chat app is on).
    pub(crate) page: Option<Bytes>,
    /// The Redis backend in cluster mode (health and metrics).
    #[cfg(feature = "cluster")]
    pub(crate) cluster: Option<Arc<switchboard_cluster::ClusterBackend>>,
    shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("metrics", &self.metrics)
            .field("connections", &self.connections)
            .field(
                "sockjs",
                &self
                    .sockjs
                    .iter()
                    .map(|e| e.config().prefix.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn shutdown_signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            rx: self.shutdown.clone(),
        }
    }

    /// Takes a connection slot, or `None` at the connection limit.
    pub(crate) fn try_open(self: &Arc<Self>, transport: Transport) -> Option<ConnectionSlot> {
        let max = self.config.limits.max_connections;
        let mut cur = self.connections.open.load(Ordering::Acquire);
        loop {
            if cur >= max {
                self.metrics
                    .refused_over_limit
                    .fetch_add(1, Ordering::Relaxed);
                return None;
            }
            match self.connections.open.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        self.metrics.connection_opened(transport);
        Some(ConnectionSlot {
            shared: self.clone(),
            transport,
        })
    }

    /// Connections open now.
    pub(crate) fn open_connections(&self) -> usize {
        self.connections.open.load(Ordering::Acquire)
    }
}

/// What a plain-TCP STOMP client gets when the connection limit is reached (then the close).
const OVER_LIMIT_ERROR: &[u8] = b"ERROR\nmessage:Too many connections\ncontent-type:text/plain\ncontent-length:56\n\nThe server is at its connection limit; try again later.\n\0";

/// What a plain-HTTP client (a WebSocket handshake included) gets at the connection limit.
const OVER_LIMIT_HTTP: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-type: text/plain\r\ncontent-length: 56\r\n\r\nThe server is at its connection limit; try again later.\n";

/// Most refused connections being answered at once; past that they are closed unanswered.
const MAX_REFUSING: usize = 64;
/// How long a refused connection is kept to deliver its answer.
const REFUSE_LINGER: Duration = Duration::from_secs(1);

/// Tells a connection over the limit why it is refused, then closes it.
///
/// Never blocks the accept loop: the answer is written at once if the socket takes it (a fresh
/// socket always does), and the connection lingers at most [`REFUSE_LINGER`], reading and
/// discarding what the client already sent, so that the close is a FIN after the answer and not
/// a reset that could destroy it. At most [`MAX_REFUSING`] linger at once; beyond that (a flood)
/// connections are closed without an answer, so refusing costs bounded memory.
fn refuse(stream: TcpStream, reply: &'static [u8], shared: &Arc<Shared>) {
    let refusing = &shared.connections.refusing;
    if refusing.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING {
        refusing.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = stream;
        let linger = async {
            stream.write_all(reply).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            // Bounded by the timeout below and by the bytes read.
            let mut left = 64 * 1024usize;
            while left > 0 {
                let n = stream.read(&mut sink).await?;
                if n == 0 {
                    break;
                }
                left = left.saturating_sub(n);
            }
            Ok::<(), io::Error>(())
        };
        let _ = tokio::time::timeout(REFUSE_LINGER, linger).await;
        shared.connections.refusing.fetch_sub(1, Ordering::AcqRel);
    });
}

/// A bound, not yet running server.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use switchboard_server::{Config, Server};
/// let server = Server::bind(Config::default()).await?;
/// println!("listening on {:?}", server.local_addrs());
/// let shutdown = server.shutdown_handle();
/// tokio::spawn(async move {
///     let _ = tokio::signal::ctrl_c().await;
///     shutdown.shutdown();
/// });
/// server.run().await;
/// # Ok(()) }
/// ```
pub struct Server {
    shared: Arc<Shared>,
    http: Option<TcpListener>,
    stomp: Option<TcpListener>,
    stomp_tls: Option<TcpListener>,
    http_tls: Option<TlsAcceptor>,
    stomp_tls_acceptor: Option<TlsAcceptor>,
    addrs: BoundAddrs,
    shutdown_tx: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.addrs)
            .finish()
    }
}

/// Binds `addr` with `SO_REUSEADDR` (a restart does not wait for old connections' TIME_WAIT)
/// and listens with `backlog`.
fn bind_one(
    what: &'static str,
    addr: SocketAddr,
    backlog: u32,
) -> Result<TcpListener, ServerError> {
    let bind = || {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(backlog)
    };
    bind().map_err(|source| ServerError::Bind { what, addr, source })
}

impl Server {
    /// Validates the configuration, loads TLS material and binds every listener that is not
    /// `off`. Nothing is accepted until [`Server::run`]. The embedded broker is built from the
    /// configuration ([`broker_builder`](crate::broker_builder)); with `[cluster] url` set
    /// (`--cluster`), its backend is a [`ClusterBackend`](switchboard_cluster::ClusterBackend)
    /// connected first (the server does not start if Redis does not answer).
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        config.validate()?;
        #[cfg(feature = "cluster")]
        if let Some(backend) = cluster_backend(&config).await? {
            let broker = crate::session::broker_builder(&config)
                .message_id_prefix(backend.message_id_prefix())
                .backend(backend.clone())
                .build();
            return Server::bind_inner(config, broker, Some(backend)).await;
        }
        let broker = crate::session::broker_builder(&config).build();
        Server::bind_with_broker(config, broker).await
    }

    /// Like [`Server::bind`], with a broker of your own — typically
    /// `switchboard_server::broker_builder(&config)` plus application handlers
    /// (`.handler("/app/chat", ...)`), or another backend. The broker's own configuration
    /// (limits, heart-beats, prefixes) is used as it is.
    pub async fn bind_with_broker(config: Config, broker: Broker) -> Result<Server, ServerError> {
        Server::bind_inner(
            config,
            broker,
            #[cfg(feature = "cluster")]
            None,
        )
        .await
    }

    async fn bind_inner(
        config: Config,
        broker: Broker,
        #[cfg(feature = "cluster")] cluster: Option<Arc<switchboard_cluster::ClusterBackend>>,
    ) -> Result<Server, ServerError> {
        config.validate()?;
        let (http_tls, stomp_tls_acceptor) = match &config.tls {
            Some(files) => (
                Some(TlsAcceptor::from(tls::server_config(
                    files,
                    &[b"http/1.1"],
                )?)),
                Some(TlsAcceptor::from(tls::server_config(files, &[])?)),
            ),
            None => (None, None),
        };
        let mut addrs = BoundAddrs::default();
        let http = match config.listeners.http.addr() {
            Some(a) => Some(bind_one("http", a, config.listeners.backlog)?),
            None => None,
        };
        let stomp = match config.listeners.stomp.addr() {
            Some(a) => Some(bind_one("stomp", a, config.listeners.backlog)?),
            None => None,
        };
        let stomp_tls = match config.listeners.stomp_tls.addr() {
            Some(a) => Some(bind_one("stomp-tls", a, config.listeners.backlog)?),
            None => None,
        };
        addrs.http = http.as_ref().and_then(|l| l.local_addr().ok());
        addrs.stomp = stomp.as_ref().and_then(|l| l.local_addr().ok());
        addrs.stomp_tls = stomp_tls.as_ref().and_then(|l| l.local_addr().ok());
        let (tx, rx) = watch::channel(false);
        let page = crate::demo_page::render(&config);
        let shared = Arc::new_cyclic(|weak| Shared {
            sockjs: crate::sockjs::endpoints(&config, weak),
            page,
            config,
            metrics: ServerMetrics::default(),
            connections: Connections::default(),
            broker,
            #[cfg(feature = "cluster")]
            cluster,
            shutdown: rx,
        });
        Ok(Server {
            shared,
            http,
            stomp,
            stomp_tls,
            http_tls,
            stomp_tls_acceptor,
            addrs,
            shutdown_tx: Arc::new(tx),
        })
    }

    /// The state every task shares, for unit tests that build a connection task.
    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The broker, e.g. to publish from outside any session (`broker().publish(...)`).
    pub fn broker(&self) -> &Broker {
        &self.shared.broker
    }

    /// The bound addresses.
    pub fn local_addrs(&self) -> BoundAddrs {
        self.addrs
    }

    /// A handle that stops the server gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            tx: self.shutdown_tx.clone(),
        }
    }

    /// Accepts connections until [`ShutdownHandle::shutdown`], then stops accepting and waits
    /// (at most `limits.shutdown_grace_ms` plus a second) for open connections to close.
    pub async fn run(self) {
        let Server {
            shared,
            http,
            stomp,
            stomp_tls,
            http_tls,
            stomp_tls_acceptor,
            addrs,
            shutdown_tx,
        } = self;
        let tls_note = if http_tls.is_some() { " (TLS)" } else { "" };
        if let Some(a) = addrs.http {
            info!(
                addr = %a,
                paths = ?shared.config.websocket.paths,
                sockjs = !shared.sockjs.is_empty(),
                chat_page = shared.page.is_some(),
                "HTTP/WebSocket/SockJS listener{tls_note}"
            );
        }
        if let Some(a) = addrs.stomp {
            info!(addr = %a, "STOMP listener");
        }
        if let Some(a) = addrs.stomp_tls {
            info!(addr = %a, "STOMP over TLS listener");
        }
        let mut loops = tokio::task::JoinSet::new();
        if let Some(l) = http {
            loops.spawn(accept_loop(l, shared.clone(), Kind::Http(http_tls)));
        }
        if let Some(l) = stomp {
            loops.spawn(accept_loop(l, shared.clone(), Kind::Stomp(None)));
        }
        if let (Some(l), Some(acc)) = (stomp_tls, stomp_tls_acceptor) {
            loops.spawn(accept_loop(l, shared.clone(), Kind::Stomp(Some(acc))));
        }
        let mut signal = shared.shutdown_signal();
        signal.wait().await;
        // Sessions deliver what is queued, then send ERROR "the server is going down".
        shared.broker.shutdown();
        info!(
            open = shared.open_connections(),
            "shutting down: no longer accepting"
        );
        // Accept loops watch the same signal; wait for them so the listeners are closed.
        while loops.join_next().await.is_some() {}
        let grace = shared.config.limits.shutdown_grace();
        let deadline = grace + Duration::from_secs(1);
        let drained = tokio::time::timeout(deadline, async {
            // SockJS sessions close themselves after their ERROR; past the grace period, the
            // ones left (and their streaming responses) are closed at once.
            let backstop = tokio::time::sleep(grace);
            tokio::pin!(backstop);
            let mut backstop_done = false;
            loop {
                let idle = shared.connections.idle.notified();
                if shared.open_connections() == 0 {
                    break;
                }
                tokio::select! {
                    _ = idle => {}
                    _ = &mut backstop, if !backstop_done => {
                        backstop_done = true;
                        for endpoint in &shared.sockjs {
                            endpoint.close_all(1001, "Server shutting down");
                        }
                    }
                }
            }
        })
        .await;
        match drained {
            Ok(()) => info!("shutdown complete"),
            Err(_) => warn!(
                open = shared.open_connections(),
                "shutdown grace period over; dropping remaining connections"
            ),
        }
        // Flush what the sessions handed to Redis (bounded); unacked queue entries stay
        // pending there and other nodes claim them.
        #[cfg(feature = "cluster")]
        if let Some(c) = &shared.cluster {
            c.shutdown().await;
        }
        drop(shutdown_tx);
    }
}

enum Kind {
    Http(Option<TlsAcceptor>),
    Stomp(Option<TlsAcceptor>),
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, kind: Kind) {
    let mut signal = shared.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = signal.wait() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let transport = match &kind {
            Kind::Http(_) => Transport::Http,
            Kind::Stomp(None) => Transport::Tcp,
            Kind::Stomp(Some(_)) => Transport::Tls,
        };
        let Some(slot) = shared.try_open(transport) else {
            debug!(%peer, "connection limit reached; closing");
            let reply = match &kind {
                Kind::Stomp(None) => Some(OVER_LIMIT_ERROR),
                Kind::Http(None) => Some(OVER_LIMIT_HTTP),
                // A TLS client would need a handshake first, which is what the limit saves.
                Kind::Stomp(Some(_)) | Kind::Http(Some(_)) => None,
            };
            if let Some(reply) = reply {
                refuse(stream, reply, &shared);
            }
            continue;
        };
        let shared = shared.clone();
        // One spawn per kind of connection: a task is as big as the largest state of its future,
        // so a plain connection must not carry the room of a TLS handshake (measured: a few KiB
        // per idle connection).
        match &kind {
            Kind::Http(None) => {
                tokio::spawn(crate::http::serve_plain(stream, peer, shared, slot));
            }
            Kind::Http(Some(acc)) => {
                tokio::spawn(crate::http::serve_tls(
                    acc.clone(),
                    stream,
                    peer,
                    shared,
                    slot,
                ));
            }
            Kind::Stomp(None) => {
                tokio::spawn(crate::stomp_tcp::serve(stream, peer, shared, slot));
            }
            Kind::Stomp(Some(acc)) => {
                tokio::spawn(serve_stomp_tls(acc.clone(), stream, peer, shared, slot));
            }
        }
    }
}

/// The cluster backend `[cluster]` asks for, connected; `None` without a URL.
#[cfg(feature = "cluster")]
async fn cluster_backend(
    config: &Config,
) -> Result<Option<Arc<switchboard_cluster::ClusterBackend>>, ServerError> {
    use switchboard_cluster::{ClusterBackend, ClusterConfig};
    let c = &config.cluster;
    let Some(url) = &c.url else {
        return Ok(None);
    };
    let node_id = c
        .node_id
        .clone()
        .unwrap_or_else(switchboard_cluster::generated_node_id);
    let ms = Duration::from_millis;
    let mut cc = ClusterConfig::new(url.clone(), node_id);
    cc.claim_idle = ms(c.claim_idle_ms);
    cc.node_ttl = ms(c.node_ttl());
    cc.max_buffered = c.max_buffered;
    cc.publish_buffer = c.publish_buffer;
    cc.receive_buffer = c.receive_buffer;
    cc.read_batch = c.read_batch;
    cc.poll_interval = ms(c.poll_interval_ms);
    cc.command_timeout = ms(c.command_timeout_ms);
    cc.health_interval = ms(c.health_interval_ms);
    cc.reconnect_max_delay = ms(c.reconnect_max_delay_ms);
    cc.connect_timeout = ms(c.connect_timeout_ms);
    cc.key_prefix = c.key_prefix.clone();
    cc.unsubscribe_linger = ms(c.unsubscribe_linger_ms);
    // What the backend needs of the broker's configuration: queue policies (redeliveries,
    // dead letters); prefixes and the clock are the defaults the server uses too.
    let broker_config = switchboard_broker::BrokerConfig {
        queues: crate::auth::queue_policies(config)?,
        ..switchboard_broker::BrokerConfig::default()
    };
    let backend = ClusterBackend::connect(cc, &broker_config).await?;
    info!(
        node = backend.node_id(),
        mode = backend.mode().as_str(),
        "cluster mode"
    );
    Ok(Some(Arc::new(backend)))
}

async fn serve_stomp_tls(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    slot: ConnectionSlot,
) {
    if let Some(tls_stream) = accept_tls(&acceptor, stream, peer, &shared).await {
        crate::stomp_tcp::serve(tls_stream, peer, shared, slot).await;
    }
}

/// Runs the TLS handshake within the connect timeout; a failure is counted and logged.
pub(crate) async fn accept_tls(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let timeout = shared.config.limits.connect_timeout();
    let failure = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => return Some(s),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    shared
        .metrics
        .tls_handshake_failed
        .fetch_add(1, Ordering::Relaxed);
    debug!(%peer, error = %failure, "TLS handshake failed");
    None
}
