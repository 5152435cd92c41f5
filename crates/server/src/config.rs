//! Server configuration: a TOML file (every field optional) overlaid by command-line flags.
//!
//! Everything has a default, so `Config::default()` is a working server: HTTP (the demo chat page
//! at `/`, health, metrics, and the `/chat` endpoint: STOMP over WebSocket at `/chat` itself and
//! STOMP over SockJS under it) on `127.0.0.1:8080` and STOMP over TCP on `127.0.0.1:61613`.
//!
//! ```toml
//! [listeners]
//! http = "127.0.0.1:8080"        # or "off"
//! stomp = "127.0.0.1:61613"      # or "off"
//! stomp_tls = "127.0.0.1:61614"  # STOMP over TLS on its own port; needs [tls]; default off
//! backlog = 4096                 # listen backlog of every listener; default: the kernel's
//!                                # cap net.core.somaxconn (at least 1024)
//!
//! [tls]                          # when set, the HTTP listener serves https/wss
//! cert = "cert.pem"              # PEM certificate chain
//! key = "key.pem"                # PEM private key (PKCS#8, PKCS#1 or SEC1)
//!
//! [websocket]
//! paths = ["/chat"]              # several endpoints allowed
//! allowed_origins = []           # empty: same origin and loopback; "*" allows any origin
//! permessage_deflate = false     # accept RFC 7692 compression when offered
//!
//! [sockjs]                       # SockJS under every [websocket] path (e.g. /chat/info)
//! enabled = true
//! heartbeat_ms = 25000           # SockJS `h` frame after this long with nothing sent (STOMP
//!                                # heart-beats, when negotiated, are sent first and replace it)
//! disconnect_delay_ms = 5000     # a session nobody polls for this long is closed
//! response_limit = 131072        # streaming responses end after this many bytes
//! cookie_needed = false          # /info's cookie_needed, and JSESSIONID cookies
//! disabled_transports = []       # websocket, xhr, xhr_streaming, eventsource, htmlfile, jsonp
//! # max_queued_bytes = ...       # per session, for a client that does not poll; default
//!                                # 2 x limits.max_frame_size + 256 KiB; at least
//!                                # limits.max_frame_size + 128 KiB
//! # client_url = "..."           # SockJS client library for the iframe page; default: the
//!                                # local copy (/lib/sockjs.min.js) with client_dir, else the CDN
//! # client_dir = "node_modules"  # serves /lib/sockjs.min.js and /lib/stomp.umd.min.js from
//!                                # sockjs-client and @stomp/stompjs installed there
//!
//! [chat]                         # the reference chat app: /app/chat handler and the page at /
//! enabled = true
//!
//! [[app_destinations]]           # default: /app/X is published to /topic/X
//! prefix = "/app/"
//! target = "/topic/"
//!
//! [limits]
//! # max_connections = ...        # default: derived from the open-file limit (the binary
//!                                # raises the soft limit to the hard one at start): the limit
//!                                # minus max(256, limit / 32)
//! max_frame_size = 1048576       # body bytes of one STOMP frame
//! max_header_count = 128
//! max_header_line = 8192
//! outbound_queue_frames = 4096   # per session; a client that does not read is dropped beyond it
//! outbound_queue_bytes = 8388608
//! heartbeat_ms = [10000, 10000]  # what the server offers: [send, receive]
//! connect_timeout_ms = 10000     # a connection with no CONNECT by then is closed
//! max_subscriptions = 1024       # per session
//! max_pending_per_queue = 10000  # messages a queue keeps while nobody takes them
//! max_unacked = 1024             # per client-ack subscription: default and cap of prefetch-count
//! max_transactions = 64          # open at once per session
//! max_transaction_frames = 10000 # SEND/ACK/NACK buffered in one transaction
//! max_transaction_bytes = 4194304 # bytes buffered in one session's open transactions
//! shutdown_grace_ms = 5000       # time to flush queued frames on shutdown
//!
//! [[users]]                      # no users and no [auth.jwt]: any login is accepted
//! login = "alice"
//! passcode = "$argon2id$v=19$..."  # `switchboard hash-password`; plain text loads, warned
//! groups = ["staff"]             # for [[acl]] who = "group:staff"
//!
//! [auth]
//! default = "allow"              # [[acl]] decision when no rule matches: "allow" or "deny"
//! passcode_cache = 1024          # verified (login, passcode) pairs remembered; 0: off
//!
//! [auth.jwt]                     # bearer tokens; off unless present; one key source:
//! secret = "..."                 # HS256 (>= 32 bytes), or
//! # public_key = "key.pem"       # RS256 (RSA) / ES256 (P-256) public key, or
//! # jwks_file = "jwks.json"      # a JWKS (the token's kid picks the key)
//! # issuer = "..."               # required iss, if set
//! # audience = "..."             # required aud, if set
//! leeway_s = 30                  # clock skew for exp (required) and nbf
//! principal_claim = "sub"
//! # groups_claim = "groups"
//! # grants_claim = "channels"    # {"subscribe": [...], "send": [...]}
//! login_marker = "jwt"           # CONNECT login meaning "passcode is a token"
//!
//! [auth.backoff]                 # per client IP address, after failed logins
//! enabled = true
//! max_failures = 5               # within window_ms; then refused unchecked for delay_ms,
//! window_ms = 60000              # doubling per further failure up to max_delay_ms
//! delay_ms = 1000
//! max_delay_ms = 60000
//! max_addresses = 10000          # bounded table
//!
//! [[acl]]                        # first matching rule decides SUBSCRIBE/SEND
//! who = "group:staff"            # user:NAME, group:NAME, authenticated, anonymous, anyone
//! destinations = ["/topic/staff.**", "/app/chat"]
//! actions = ["subscribe", "send"]
//! allow = true
//!
//! [cluster]                      # several nodes sharing Redis act as one broker; off unless
//!                                # `url` is set (`--cluster`); needs the `cluster` feature (default)
//! url = "redis://127.0.0.1:6379" # or redis://HOST:PORT/DB, or seeds "redis://a:7000,redis://b:7001";
//!                                # a Redis Cluster is detected
//! # node_id = "..."              # default: hostname-pid-xxxx; prefixes message ids
//! claim_idle_ms = 30000          # a dead node's unacked queue messages are claimed after this
//! # node_ttl_ms = ...            # a node is dead once its liveness key is this old; default
//!                                # claim_idle_ms within 3000..=10000 (10000 by default)
//! max_buffered = 10000           # queue SENDs held while Redis is unreachable
//! publish_buffer = 65536         # topic messages waiting to be written (beyond: lost, counted)
//! receive_buffer = 4096          # Pub/Sub messages waiting to be delivered (preallocated)
//! read_batch = 128               # most entries read from a queue's stream at once
//! poll_interval_ms = 1000        # queue readers re-check without a notification
//! command_timeout_ms = 2000      # every Redis command
//! health_interval_ms = 250       # PING period (/healthz, switchboard_cluster_up)
//! reconnect_max_delay_ms = 2000  # reconnection backoff cap (from 50 ms, doubling)
//! connect_timeout_ms = 5000      # the server does not start without Redis
//! key_prefix = "sb"              # of every Redis key and channel
//! unsubscribe_linger_ms = 30000  # stay subscribed this long after the last local subscriber left
//!
//! [[queues]]                     # first matching pattern applies
//! pattern = "/queue/jobs.*"
//! max_length = 10000             # default limits.max_pending_per_queue
//! overflow = "refuse"            # or "drop-oldest"
//! max_redeliveries = 10          # then dead-lettered; -1: forever
//! dead_letter = "/queue/DLQ.{name}"  # "" discards
//! # ttl_ms = 30000               # default none
//! ```
//!
//! Tokens are also accepted from a WebSocket upgrade's `Authorization: Bearer` header and from
//! an `access_token` query parameter on the WebSocket or SockJS URL. Passcodes, tokens and
//! query strings are never logged.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// Where a listener listens, or that it is switched off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// The listener is not started.
    Off,
    /// Listen on this address (port 0 picks a free port; [`crate::Server::bind`] reports it).
    Addr(SocketAddr),
}

impl Listen {
    /// The address, unless the listener is off.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::Addr(a) => Some(*a),
        }
    }
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Listen, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        s.parse::<SocketAddr>()
            .map(Listen::Addr)
            .map_err(|_| format!("`{s}` is neither `off` nor an address like 127.0.0.1:8080"))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Off => f.write_str("off"),
            Listen::Addr(a) => write!(f, "{a}"),
        }
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Listen, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The whole server configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// The listening sockets.
    pub listeners: Listeners,
    /// Certificate and key; when set, the HTTP listener speaks TLS (https/wss).
    pub tls: Option<TlsFiles>,
    /// WebSocket endpoints and the origin policy.
    pub websocket: WebSocket,
    /// SockJS under every WebSocket path.
    pub sockjs: SockJs,
    /// The reference chat application (`/app/chat` and the demo page at `/`).
    pub chat: Chat,
    /// Application-destination prefixes and where the server publishes what is sent to them.
    pub app_destinations: Vec<AppDestination>,
    /// Resource limits.
    pub limits: Limits,
    /// Static users; empty (and no `[auth.jwt]`) means every login (or none) is accepted.
    pub users: Vec<User>,
    /// Authentication settings: the default access decision, JWT bearer tokens, the
    /// failed-login back-off and the passcode cache.
    pub auth: Auth,
    /// Access rules (`[[acl]]`), first match decides; none: `auth.default` decides everything.
    pub acl: Vec<AclEntry>,
    /// Queue policies (`[[queues]]`), first matching pattern applies.
    pub queues: Vec<QueueEntry>,
    /// Cluster mode (`[cluster]`): off unless `url` is set.
    pub cluster: Cluster,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listeners: Listeners::default(),
            tls: None,
            websocket: WebSocket::default(),
            sockjs: SockJs::default(),
            chat: Chat::default(),
            app_destinations: vec![AppDestination {
                prefix: "/app/".into(),
                target: "/topic/".into(),
            }],
            limits: Limits::default(),
            users: Vec::new(),
            auth: Auth::default(),
            acl: Vec::new(),
            queues: Vec::new(),
            cluster: Cluster::default(),
        }
    }
}

/// `[cluster]`: nodes sharing a Redis (or a Redis Cluster) act as one broker. Every field has
/// a default; cluster mode is on when `url` is set.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Cluster {
    /// `redis://HOST:PORT[/DB]`, or comma-separated seeds. Default none (in-memory broker).
    pub url: Option<String>,
    /// This node's id (message-id prefix, consumer name). Default: `hostname-pid-xxxx`.
    pub node_id: Option<String>,
    /// Idle time after which another node claims a dead node's unacked queue messages.
    /// Default 30 000.
    pub claim_idle_ms: u64,
    /// Lifetime of a node's liveness key: a node that stops refreshing it is dead this long
    /// after (its entries are then claimed once also `claim_idle_ms` idle). Default:
    /// `claim_idle_ms` kept within 3 000..=10 000.
    pub node_ttl_ms: Option<u64>,
    /// Queue SENDs held while Redis is unreachable. Default 10 000.
    pub max_buffered: usize,
    /// Topic messages waiting to be written. Default 65 536.
    pub publish_buffer: usize,
    /// Pub/Sub messages waiting to be delivered (preallocated). Default 4 096.
    pub receive_buffer: usize,
    /// Most entries read from a queue's stream at once. Default 128.
    pub read_batch: usize,
    /// Queue readers re-check this often without a notification. Default 1 000.
    pub poll_interval_ms: u64,
    /// Timeout of every Redis command. Default 2 000.
    pub command_timeout_ms: u64,
    /// Connection check period. Default 250.
    pub health_interval_ms: u64,
    /// Reconnection backoff cap. Default 2 000.
    pub reconnect_max_delay_ms: u64,
    /// How long to wait for Redis at start. Default 5 000.
    pub connect_timeout_ms: u64,
    /// Prefix of every Redis key and channel. Default `sb`.
    pub key_prefix: String,
    /// The node stays subscribed to a destination's Redis channel this long after its last
    /// local subscriber left, so a quick resubscribe (a page reload) misses nothing other
    /// nodes publish. Default 30 000; 0 unsubscribes at once.
    pub unsubscribe_linger_ms: u64,
}

impl Cluster {
    /// The liveness key's lifetime: `node_ttl_ms`, or `claim_idle_ms` within 3 000..=10 000.
    pub fn node_ttl(&self) -> u64 {
        self.node_ttl_ms
            .unwrap_or_else(|| self.claim_idle_ms.clamp(3_000, 10_000))
    }
}

impl Default for Cluster {
    fn default() -> Cluster {
        Cluster {
            url: None,
            node_id: None,
            claim_idle_ms: 30_000,
            node_ttl_ms: None,
            max_buffered: 10_000,
            publish_buffer: 65_536,
            receive_buffer: 4_096,
            read_batch: 128,
            poll_interval_ms: 1_000,
            command_timeout_ms: 2_000,
            health_interval_ms: 250,
            reconnect_max_delay_ms: 2_000,
            connect_timeout_ms: 5_000,
            key_prefix: "sb".to_owned(),
            unsubscribe_linger_ms: 30_000,
        }
    }
}

/// The listening sockets.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Listeners {
    /// HTTP: `/healthz`, `/metrics` and the WebSocket endpoints. Default `127.0.0.1:8080`.
    pub http: Listen,
    /// STOMP over plain TCP. Default `127.0.0.1:61613`.
    pub stomp: Listen,
    /// STOMP over TLS (needs [`Config::tls`]). Default off.
    pub stomp_tls: Listen,
    /// Listen backlog of every listener: connections the kernel completes before the server
    /// accepts them. Default: the kernel's cap, `net.core.somaxconn`, within [1024, 65535]
    /// ([`fd_limit::default_backlog`](crate::fd_limit::default_backlog)); a burst of connects
    /// beyond it loses SYNs, and those clients wait a second for the retry.
    pub backlog: u32,
}

impl Default for Listeners {
    fn default() -> Listeners {
        Listeners {
            http: Listen::Addr(SocketAddr::from(([127, 0, 0, 1], 8080))),
            stomp: Listen::Addr(SocketAddr::from(([127, 0, 0, 1], 61613))),
            stomp_tls: Listen::Off,
            backlog: crate::fd_limit::default_backlog(),
        }
    }
}

/// PEM files for TLS.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// WebSocket endpoint settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct WebSocket {
    /// The request paths that accept a STOMP-over-WebSocket upgrade. Default `["/chat"]`.
    pub paths: Vec<String>,
    /// Origins allowed to open a WebSocket, e.g. `"https://app.example.com"`. Empty (the
    /// default): the same origin as the `Host` header, and loopback origins. `"*"` allows any.
    /// A request without an `Origin` header (not a browser) is always allowed.
    pub allowed_origins: Vec<String>,
    /// Accept permessage-deflate (RFC 7692) when a client offers it. Default off: compression
    /// costs CPU and per-connection memory; when on, both sides reset their compressor after
    /// every message (no context takeover), which keeps idle connections small.
    pub permessage_deflate: bool,
}

impl Default for WebSocket {
    fn default() -> WebSocket {
        WebSocket {
            paths: vec!["/chat".into()],
            allowed_origins: Vec::new(),
            permessage_deflate: false,
        }
    }
}

/// The SockJS transport names `disabled_transports` accepts.
pub const SOCKJS_TRANSPORTS: [&str; 6] = [
    "websocket",
    "xhr",
    "xhr_streaming",
    "eventsource",
    "htmlfile",
    "jsonp",
];

/// SockJS endpoint settings (`[sockjs]`). Every `[websocket] paths` entry, say `/chat`, serves
/// SockJS under it (`/chat/info`, `/chat/<server>/<session>/xhr_streaming`, ...), while an
/// `Upgrade: websocket` request to `/chat` itself stays plain STOMP over WebSocket.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SockJs {
    /// Serve SockJS at all. Default true.
    pub enabled: bool,
    /// A SockJS heartbeat frame (`h`) is sent after this long with nothing else sent. STOMP
    /// heart-beats, when the client negotiates them, go out as SockJS messages more often and
    /// so keep the `h` frames from ever being needed. Default 25 000.
    pub heartbeat_ms: u64,
    /// A session with no receiving request for this long is closed. Default 5000.
    pub disconnect_delay_ms: u64,
    /// Streaming responses (xhr_streaming, eventsource, htmlfile) end after this many body bytes
    /// and the client opens a new one. Default 131 072.
    pub response_limit: usize,
    /// What `/info` says in `cookie_needed` (and `JSESSIONID` cookies are set). Default false.
    pub cookie_needed: bool,
    /// Transports switched off, by name: `websocket`, `xhr`, `xhr_streaming`, `eventsource`,
    /// `htmlfile`, `jsonp` (an unknown name is an error at start). Default none.
    pub disabled_transports: Vec<String>,
    /// Outbound bytes one session may queue for a client that is not receiving; past it the
    /// session is closed. Default (unset): 2 × `limits.max_frame_size` + 256 KiB. The server
    /// itself puts at most 64 KiB plus one frame in a session's queue before waiting for the
    /// client (the rest waits in the broker, under its slow-consumer policy), so this must be at
    /// least `limits.max_frame_size` + 128 KiB.
    pub max_queued_bytes: Option<usize>,
    /// The SockJS client library the iframe page (`<path>/iframe.html`) loads. Default: the
    /// local copy `/lib/sockjs.min.js` when `client_dir` is set, else the public CDN URL.
    pub client_url: Option<String>,
    /// A `node_modules` directory holding `sockjs-client` and `@stomp/stompjs`: the server then
    /// serves `/lib/sockjs.min.js` and `/lib/stomp.umd.min.js` from it (and the demo page uses
    /// them); otherwise the page loads both from the public CDN. Default unset.
    pub client_dir: Option<PathBuf>,
}

impl Default for SockJs {
    fn default() -> SockJs {
        SockJs {
            enabled: true,
            heartbeat_ms: 25_000,
            disconnect_delay_ms: 5_000,
            response_limit: 128 * 1024,
            cookie_needed: false,
            disabled_transports: Vec::new(),
            max_queued_bytes: None,
            client_url: None,
            client_dir: None,
        }
    }
}

/// The public CDN URL of the SockJS client (used when no `client_dir` is configured).
pub const SOCKJS_CDN_URL: &str = "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js";
/// The public CDN URL of the STOMP client (used when no `client_dir` is configured).
pub const STOMPJS_CDN_URL: &str =
    "https://cdn.jsdelivr.net/npm/@stomp/stompjs@7/bundles/stomp.umd.min.js";

impl SockJs {
    /// The per-session queue limit in effect (see [`SockJs::max_queued_bytes`]).
    pub fn queued_bytes_limit(&self, limits: &Limits) -> usize {
        self.max_queued_bytes.unwrap_or_else(|| {
            limits
                .max_frame_size
                .saturating_mul(2)
                .saturating_add(256 * 1024)
        })
    }

    /// The SockJS client URL in effect (see [`SockJs::client_url`]).
    pub fn effective_client_url(&self) -> String {
        match (&self.client_url, &self.client_dir) {
            (Some(url), _) => url.clone(),
            (None, Some(_)) => "/lib/sockjs.min.js".into(),
            (None, None) => SOCKJS_CDN_URL.into(),
        }
    }

    /// The STOMP client URL the demo page loads: the local copy with `client_dir`, else the CDN.
    pub fn stompjs_url(&self) -> String {
        match &self.client_dir {
            Some(_) => "/lib/stomp.umd.min.js".into(),
            None => STOMPJS_CDN_URL.into(),
        }
    }
}

/// The reference chat application (`[chat]`): a handler for `/app/chat` that stamps JSON
/// messages `{"from", "text"}` with the time and publishes them to `/topic/messages`, and the
/// demo page at `/`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Chat {
    /// Serve the chat app. Default true.
    pub enabled: bool,
}

impl Default for Chat {
    fn default() -> Chat {
        Chat { enabled: true }
    }
}

/// An application-destination mapping: a SEND to `prefix + rest` is published to `target + rest`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AppDestination {
    /// The prefix clients send to, e.g. `"/app/"`.
    pub prefix: String,
    /// The prefix the server publishes to, e.g. `"/topic/"`.
    pub target: String,
}

/// A static user.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The STOMP `login` header.
    pub login: String,
    /// The passcode: an argon2 PHC hash (`$argon2id$v=19$...`, printed by
    /// `switchboard hash-password`), or — discouraged, logged as a warning at start — the
    /// passcode itself in plain text.
    pub passcode: String,
    /// Groups for `[[acl]]` rules with `who = "group:NAME"`. Default none.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("login", &self.login)
            .field("passcode", &"<redacted>")
            .field("groups", &self.groups)
            .finish()
    }
}

impl User {
    /// Whether the passcode is stored as a PHC hash (else it is plain text).
    pub fn is_hashed(&self) -> bool {
        self.passcode.starts_with("$argon2")
    }
}

/// `[auth]`: authentication and the default access decision.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Auth {
    /// What `[[acl]]` decides when no rule matches: `"allow"` (the default) or `"deny"`.
    pub default: String,
    /// JWT bearer tokens; off unless the table is present.
    pub jwt: Option<Jwt>,
    /// The per-address back-off after failed logins.
    pub backoff: Backoff,
    /// Verified (login, passcode) pairs remembered, so an argon2 hash (tens of milliseconds of
    /// CPU) is checked once per pair rather than per CONNECT. Keyed by an HMAC-SHA256 under a
    /// per-process random key (the passcode itself is not kept). 0 turns the cache off.
    /// Default 1024.
    pub passcode_cache: usize,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            default: "allow".into(),
            jwt: None,
            backoff: Backoff::default(),
            passcode_cache: 1024,
        }
    }
}

impl Auth {
    /// Whether `default = "allow"`.
    pub fn default_allow(&self) -> Result<bool, ConfigError> {
        match self.default.as_str() {
            "allow" => Ok(true),
            "deny" => Ok(false),
            other => Err(ConfigError::Invalid(format!(
                "auth.default = `{other}`: expected \"allow\" or \"deny\""
            ))),
        }
    }
}

/// `[auth.jwt]`: JWT bearer tokens. Exactly one key source: `secret` (HS256), `public_key`
/// (a PEM file: RS256 for an RSA key, ES256 for a P-256 key) or `jwks_file` (a JSON Web Key
/// Set file; the token's `kid` picks the key).
#[derive(Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Jwt {
    /// HS256 shared secret.
    pub secret: Option<String>,
    /// PEM public key file (RSA → RS256, EC P-256 → ES256).
    pub public_key: Option<PathBuf>,
    /// JWKS file (RS256/ES256 keys).
    pub jwks_file: Option<PathBuf>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud` (one of), if set.
    pub audience: Option<String>,
    /// Clock skew allowed for `exp` and `nbf`, in seconds. Default 30.
    pub leeway_s: Option<u64>,
    /// The claim naming the principal. Default `sub`.
    pub principal_claim: Option<String>,
    /// A claim with the principal's groups (an array of strings, or a space-separated string).
    pub groups_claim: Option<String>,
    /// A claim with destination grants: an object `{"subscribe": [patterns], "send": [patterns]}`
    /// or an array of `{"actions": [...], "destinations": [...]}`.
    pub grants_claim: Option<String>,
    /// The CONNECT `login` value meaning "the passcode is a token". Default `jwt`. An empty or
    /// missing login with a token-shaped passcode (three dot-separated parts) means the same.
    pub login_marker: Option<String>,
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("public_key", &self.public_key)
            .field("jwks_file", &self.jwks_file)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_s", &self.leeway_s)
            .field("principal_claim", &self.principal_claim)
            .field("groups_claim", &self.groups_claim)
            .field("grants_claim", &self.grants_claim)
            .field("login_marker", &self.login_marker)
            .finish()
    }
}

/// `[auth.backoff]`: after `max_failures` failed logins from one IP address within
/// `window_ms`, CONNECTs from it are refused without checking credentials for `delay_ms`,
/// doubling with each further failure up to `max_delay_ms`. The table holds at most
/// `max_addresses` addresses (the stalest entry is evicted first).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Backoff {
    /// Off when false. Default true.
    pub enabled: bool,
    /// Failures tolerated within the window. Default 5.
    pub max_failures: u32,
    /// The window, in milliseconds. Default 60 000.
    pub window_ms: u64,
    /// First refusal period, in milliseconds. Default 1 000.
    pub delay_ms: u64,
    /// Longest refusal period, in milliseconds. Default 60 000.
    pub max_delay_ms: u64,
    /// Addresses tracked at once. Default 10 000.
    pub max_addresses: usize,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            enabled: true,
            max_failures: 5,
            window_ms: 60_000,
            delay_ms: 1_000,
            max_delay_ms: 60_000,
            max_addresses: 10_000,
        }
    }
}

/// An `[[acl]]` rule (see `switchboard_broker::AclRule`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AclEntry {
    /// `user:NAME`, `group:NAME`, `authenticated`, `anonymous` or `anyone`.
    pub who: String,
    /// Destination patterns (`*` one segment, `**` any number, `{username}`).
    pub destinations: Vec<String>,
    /// `subscribe` and/or `send`.
    pub actions: Vec<String>,
    /// Allow (true) or deny (false).
    pub allow: bool,
}

/// A `[[queues]]` policy (see `switchboard_broker::QueuePolicy`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QueueEntry {
    /// Queue destinations (wildcards as in subscriptions), e.g. `/queue/jobs.*`.
    pub pattern: String,
    /// Messages kept while nobody takes them. Default `limits.max_pending_per_queue`.
    pub max_length: Option<usize>,
    /// `refuse` (default) or `drop-oldest`.
    pub overflow: Option<String>,
    /// Redeliveries before a message is dead-lettered. Default 10; `-1` = forever.
    pub max_redeliveries: Option<i64>,
    /// Dead-letter destination (`{name}` = the queue's name). Default `/queue/DLQ.{name}`;
    /// `""` discards dead letters.
    pub dead_letter: Option<String>,
    /// Time to live in milliseconds. Default none.
    pub ttl_ms: Option<u64>,
}

/// Resource limits; every one has a default.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Limits {
    /// Concurrent connections (TCP, TLS, WebSocket and SockJS sessions together). Default:
    /// derived from the open-file limit in force ([`crate::fd_limit::default_max_connections`]:
    /// the limit minus `max(256, limit / 32)`; the binary first raises the soft limit to the hard
    /// one).
    pub max_connections: usize,
    /// Largest STOMP body in bytes. Default 1 MiB.
    pub max_frame_size: usize,
    /// Most headers in one frame. Default 128.
    pub max_header_count: usize,
    /// Longest header line in bytes. Default 8 KiB.
    pub max_header_line: usize,
    /// Frames queued for one session before the slow-consumer policy drops it. Default 4096.
    pub outbound_queue_frames: usize,
    /// Bytes queued for one session before the slow-consumer policy drops it. Default 8 MiB.
    pub outbound_queue_bytes: usize,
    /// Heart-beat the server offers in CONNECTED, `[send_ms, receive_ms]`. Default `[10000, 10000]`.
    pub heartbeat_ms: [u64; 2],
    /// A connection that has not completed CONNECT within this time is closed. Default 10 s.
    pub connect_timeout_ms: u64,
    /// Subscriptions per session. Default 1024.
    pub max_subscriptions: usize,
    /// Messages kept per queue while nobody can take them. Default 10 000.
    pub max_pending_per_queue: usize,
    /// Unacknowledged messages per client-ack subscription: the default and the cap of its
    /// `prefetch-count` header. Default 1024.
    pub max_unacked: u32,
    /// Transactions open at once per session. Default 64.
    pub max_transactions: usize,
    /// SEND/ACK/NACK frames buffered in one transaction. Default 10 000.
    pub max_transaction_frames: usize,
    /// Bytes buffered in one session's open transactions together. Default 4 MiB.
    pub max_transaction_bytes: usize,
    /// How long shutdown waits for queued frames to be flushed. Default 5 s.
    pub shutdown_grace_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: crate::fd_limit::default_max_connections(),
            max_frame_size: 1 << 20,
            max_header_count: 128,
            max_header_line: 8 << 10,
            outbound_queue_frames: 4096,
            outbound_queue_bytes: 8 << 20,
            heartbeat_ms: [10_000, 10_000],
            connect_timeout_ms: 10_000,
            max_subscriptions: 1024,
            max_pending_per_queue: 10_000,
            max_unacked: 1024,
            max_transactions: 64,
            max_transaction_frames: 10_000,
            max_transaction_bytes: 4 << 20,
            shutdown_grace_ms: 5_000,
        }
    }
}

impl Limits {
    /// [`Limits::connect_timeout_ms`] as a `Duration`.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// [`Limits::shutdown_grace_ms`] as a `Duration`.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error (names the key and line).
        source: Box<toml::de::Error>,
    },
    /// The settings contradict each other.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Parses a TOML document; missing fields take their defaults.
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Checks settings that only make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listeners.stomp_tls != Listen::Off && self.tls.is_none() {
            return Err(ConfigError::Invalid(
                "a STOMP-over-TLS listener needs a certificate and key (--tls-cert/--tls-key or [tls])"
                    .into(),
            ));
        }
        for p in &self.websocket.paths {
            if !p.starts_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "WebSocket path `{p}` must start with `/`"
                )));
            }
        }
        if self.sockjs.enabled
            && let Some(p) = self
                .websocket
                .paths
                .iter()
                .find(|p| p.trim_end_matches('/').is_empty())
        {
            return Err(ConfigError::Invalid(format!(
                "WebSocket path `{p}` would put SockJS over every URL; use a path such as `/chat` \
                 (or [sockjs] enabled = false)"
            )));
        }
        for t in &self.sockjs.disabled_transports {
            if !SOCKJS_TRANSPORTS.contains(&t.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "sockjs.disabled_transports: unknown transport `{t}` (known: {})",
                    SOCKJS_TRANSPORTS.join(", ")
                )));
            }
        }
        let floor = self.limits.max_frame_size.saturating_add(128 * 1024);
        if let Some(q) = self.sockjs.max_queued_bytes
            && q < floor
        {
            return Err(ConfigError::Invalid(format!(
                "sockjs.max_queued_bytes = {q} is below limits.max_frame_size + 128 KiB ({floor}): \
                 one large frame would close a session whose client is polling"
            )));
        }
        if self.sockjs.heartbeat_ms == 0 || self.sockjs.disconnect_delay_ms == 0 {
            return Err(ConfigError::Invalid(
                "sockjs.heartbeat_ms and sockjs.disconnect_delay_ms must be > 0".into(),
            ));
        }
        if self.sockjs.response_limit == 0 {
            return Err(ConfigError::Invalid(
                "sockjs.response_limit must be > 0".into(),
            ));
        }
        for m in &self.app_destinations {
            if m.prefix.is_empty() || !m.prefix.starts_with('/') {
                return Err(ConfigError::Invalid(format!(
                    "application prefix `{}` must start with `/`",
                    m.prefix
                )));
            }
        }
        if self.listeners.backlog == 0 {
            return Err(ConfigError::Invalid("listeners.backlog must be > 0".into()));
        }
        if self.limits.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_connections must be > 0".into(),
            ));
        }
        self.auth.default_allow()?;
        crate::auth::acl(self)?;
        crate::auth::queue_policies(self)?;
        crate::auth::ConfigAuthenticator::from_config(self)?;
        let b = &self.auth.backoff;
        if b.enabled && (b.max_failures == 0 || b.window_ms == 0 || b.delay_ms == 0) {
            return Err(ConfigError::Invalid(
                "auth.backoff: max_failures, window_ms and delay_ms must be > 0".into(),
            ));
        }
        let c = &self.cluster;
        if c.url.is_some() {
            if !cfg!(feature = "cluster") {
                return Err(ConfigError::Invalid(
                    "[cluster] url is set but this build has no `cluster` feature".into(),
                ));
            }
            if c.claim_idle_ms == 0
                || c.node_ttl_ms == Some(0)
                || c.max_buffered == 0
                || c.publish_buffer == 0
                || c.receive_buffer == 0
                || c.read_batch == 0
                || c.poll_interval_ms == 0
                || c.command_timeout_ms == 0
                || c.health_interval_ms == 0
                || c.connect_timeout_ms == 0
            {
                return Err(ConfigError::Invalid(
                    "[cluster]: every limit and interval must be > 0".into(),
                ));
            }
            if c.key_prefix.is_empty() {
                return Err(ConfigError::Invalid("cluster.key_prefix is empty".into()));
            }
            if let Some(id) = &c.node_id
                && (id.is_empty() || id.contains(|ch: char| ch.is_whitespace() || ch == '|'))
            {
                return Err(ConfigError::Invalid(format!(
                    "cluster.node_id `{id}`: must be non-empty, without spaces or `|`"
                )));
            }
        }
        if self.limits.max_unacked == 0 {
            // A client-ack subscription could never receive anything.
            return Err(ConfigError::Invalid(
                "limits.max_unacked must be > 0".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_limits_reach_the_broker() {
        let c = Config::from_toml(
            "[limits]\nmax_unacked = 7\nmax_transactions = 2\nmax_transaction_frames = 3\n\
             max_transaction_bytes = 4096\n",
        )
        .unwrap();
        c.validate().unwrap();
        let limits = crate::session::broker_config_for_test(&c);
        assert_eq!(limits.max_unacked_per_subscription, 7);
        assert_eq!(limits.max_transactions_per_session, 2);
        assert_eq!(limits.max_frames_per_transaction, 3);
        assert_eq!(limits.max_transaction_bytes, 4096);
        let zero = Config::from_toml("[limits]\nmax_unacked = 0\n").unwrap();
        assert!(zero.validate().is_err());
    }

    #[test]
    fn cluster_section_parses_with_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.cluster, Cluster::default());
        assert_eq!(c.cluster.url, None);
        let c = Config::from_toml(
            "[cluster]\nurl = \"redis://127.0.0.1:6379\"\nnode_id = \"n1\"\nclaim_idle_ms = 500\n",
        )
        .unwrap();
        assert_eq!(c.cluster.url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(c.cluster.node_id.as_deref(), Some("n1"));
        assert_eq!(c.cluster.claim_idle_ms, 500);
        assert_eq!(c.cluster.read_batch, 128);
        assert_eq!(c.cluster.node_ttl(), 3_000);
        assert_eq!(Cluster::default().node_ttl(), 10_000);
        assert_eq!(c.validate().is_ok(), cfg!(feature = "cluster"));
        let bad = Config::from_toml("[cluster]\nurl = \"redis://h:1\"\nread_batch = 0\n").unwrap();
        assert!(bad.validate().is_err());
        assert!(Config::from_toml("[cluster]\nbogus = 1\n").is_err());
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.listeners.http.to_string(), "127.0.0.1:8080");
        assert_eq!(c.listeners.stomp.to_string(), "127.0.0.1:61613");
        assert_eq!(c.listeners.stomp_tls, Listen::Off);
        assert_eq!(c.websocket.paths, vec!["/chat".to_string()]);
        assert_eq!(c.app_destinations.len(), 1);
        c.validate().unwrap();
    }

    #[test]
    fn full_file_parses() {
        let c = Config::from_toml(
            r#"
            [listeners]
            http = "off"
            stomp = "127.0.0.1:0"
            [websocket]
            paths = ["/chat", "/stomp"]
            allowed_origins = ["https://app.example"]
            [[app_destinations]]
            prefix = "/app/"
            target = "/queue/"
            [limits]
            max_frame_size = 100
            heartbeat_ms = [0, 0]
            [[users]]
            login = "a"
            passcode = "b"
            "#,
        )
        .unwrap();
        assert_eq!(c.listeners.http, Listen::Off);
        assert_eq!(c.websocket.paths.len(), 2);
        assert_eq!(c.app_destinations[0].target, "/queue/");
        assert_eq!(c.limits.max_frame_size, 100);
        assert_eq!(c.limits.max_header_count, 128);
        assert_eq!(c.users[0].login, "a");
    }

    #[test]
    fn unknown_keys_and_bad_addresses_are_rejected() {
        assert!(Config::from_toml("[listeners]\nhtp = \"off\"").is_err());
        assert!(Config::from_toml("[listeners]\nhttp = \"nowhere\"").is_err());
    }

    #[test]
    fn sockjs_and_chat_sections() {
        let c = Config::from_toml("").unwrap();
        assert!(c.sockjs.enabled);
        assert_eq!(c.sockjs.heartbeat_ms, 25_000);
        assert_eq!(c.sockjs.disconnect_delay_ms, 5_000);
        assert_eq!(c.sockjs.response_limit, 131_072);
        assert!(!c.sockjs.cookie_needed);
        assert!(c.sockjs.disabled_transports.is_empty());
        assert_eq!(
            c.sockjs.queued_bytes_limit(&c.limits),
            2 * (1 << 20) + 256 * 1024
        );
        assert_eq!(c.sockjs.effective_client_url(), SOCKJS_CDN_URL);
        assert_eq!(c.sockjs.stompjs_url(), STOMPJS_CDN_URL);
        assert!(c.chat.enabled);

        let c = Config::from_toml(
            r#"
            [sockjs]
            enabled = false
            heartbeat_ms = 1000
            disconnect_delay_ms = 2000
            response_limit = 4096
            cookie_needed = true
            disabled_transports = ["jsonp", "htmlfile"]
            max_queued_bytes = 4194304
            client_dir = "/opt/node_modules"
            [chat]
            enabled = false
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert!(!c.sockjs.enabled);
        assert_eq!(c.sockjs.heartbeat_ms, 1000);
        assert_eq!(c.sockjs.disconnect_delay_ms, 2000);
        assert_eq!(c.sockjs.response_limit, 4096);
        assert!(c.sockjs.cookie_needed);
        assert_eq!(c.sockjs.disabled_transports, ["jsonp", "htmlfile"]);
        assert_eq!(c.sockjs.queued_bytes_limit(&c.limits), 4 << 20);
        assert_eq!(c.sockjs.effective_client_url(), "/lib/sockjs.min.js");
        assert_eq!(c.sockjs.stompjs_url(), "/lib/stomp.umd.min.js");
        assert!(!c.chat.enabled);

        let c = Config::from_toml("[sockjs]\nclient_url = \"https://x.example/s.js\"").unwrap();
        assert_eq!(c.sockjs.effective_client_url(), "https://x.example/s.js");
    }

    #[test]
    fn bad_sockjs_settings_are_refused() {
        let c = Config::from_toml("[sockjs]\ndisabled_transports = [\"xhr_polling\"]").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("unknown transport `xhr_polling`"), "{e}");
        let c = Config::from_toml("[sockjs]\nmax_queued_bytes = 1000").unwrap();
        assert!(c.validate().is_err());
        let c = Config::from_toml("[sockjs]\nheartbeat_ms = 0").unwrap();
        assert!(c.validate().is_err());
        let c = Config::from_toml("[websocket]\npaths = [\"/\"]").unwrap();
        assert!(c.validate().is_err());
        let c =
            Config::from_toml("[websocket]\npaths = [\"/\"]\n[sockjs]\nenabled = false").unwrap();
        c.validate().unwrap();
        assert!(Config::from_toml("[sockjs]\nenable = true").is_err());
        assert!(Config::from_toml("[chat]\nenabled = \"yes\"").is_err());
    }

    #[test]
    fn security_sections_default_and_parse() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.auth.default, "allow");
        assert!(c.auth.default_allow().unwrap());
        assert!(c.auth.jwt.is_none());
        assert_eq!(c.auth.passcode_cache, 1024);
        let b = &c.auth.backoff;
        assert!(b.enabled);
        assert_eq!(
            (
                b.max_failures,
                b.window_ms,
                b.delay_ms,
                b.max_delay_ms,
                b.max_addresses
            ),
            (5, 60_000, 1_000, 60_000, 10_000)
        );
        assert!(c.acl.is_empty() && c.queues.is_empty());
        let c = Config::from_toml(
            r#"
            [auth]
            default = "deny"
            passcode_cache = 0
            [auth.jwt]
            jwks_file = "/etc/jwks.json"
            issuer = "i"
            audience = "a"
            leeway_s = 5
            principal_claim = "uid"
            groups_claim = "roles"
            grants_claim = "channels"
            login_marker = "bearer"
            [auth.backoff]
            enabled = false
            [[users]]
            login = "a"
            passcode = "$argon2id$v=19$m=19456,t=2,p=1$iyfq7T+BTqaO4yUulub/6A$B8dXO3URH9m7xhWRMVfpcMqvWQOyXQXS/9Qi0VHoThg"
            groups = ["g"]
            [[acl]]
            who = "group:g"
            destinations = ["/topic/**"]
            actions = ["subscribe"]
            allow = true
            [[queues]]
            pattern = "/queue/q"
            max_length = 5
            overflow = "drop-oldest"
            max_redeliveries = 0
            dead_letter = "/queue/dead"
            ttl_ms = 1000
            "#,
        )
        .unwrap();
        assert!(!c.auth.default_allow().unwrap());
        let j = c.auth.jwt.as_ref().unwrap();
        assert_eq!(j.jwks_file.as_deref(), Some(Path::new("/etc/jwks.json")));
        assert_eq!(j.leeway_s, Some(5));
        assert_eq!(j.login_marker.as_deref(), Some("bearer"));
        assert!(!c.auth.backoff.enabled);
        assert!(c.users[0].is_hashed());
        assert_eq!(c.users[0].groups, ["g"]);
        assert_eq!(c.acl[0].who, "group:g");
        assert_eq!(c.queues[0].max_redeliveries, Some(0));
        assert_eq!(c.queues[0].ttl_ms, Some(1000));
        // The JWKS file does not exist: validation says so.
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("auth.jwt") && e.contains("/etc/jwks.json"),
            "{e}"
        );
        assert!(
            Config::from_toml(
                "[auth]
defualt = \"deny\""
            )
            .is_err()
        );
        assert!(
            Config::from_toml(
                "[auth.jwt]
secrett = \"x\""
            )
            .is_err()
        );
    }

    #[test]
    fn stomp_tls_needs_tls_files() {
        let mut c = Config::default();
        c.listeners.stomp_tls = "127.0.0.1:0".parse().unwrap();
        assert!(c.validate().is_err());
    }
}
