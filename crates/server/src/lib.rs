//! switchboard-server: the `switchboard` binary as a library — configuration, listeners, and the
//! composition of `switchboard-ws`, `switchboard-stomp`, `switchboard-sockjs` and
//! `switchboard-broker`.
//!
//! One [`Server`] serves:
//! - STOMP over TCP (default `127.0.0.1:61613`) and, with a certificate, over TLS on its own port;
//! - HTTP (default `127.0.0.1:8080`): `/healthz`, Prometheus `/metrics`, the demo chat page at
//!   `/`, and on every configured endpoint path (default `/chat`):
//!   - STOMP over WebSocket at the path itself (a request with `Upgrade: websocket`),
//!     subprotocols `v12.stomp`, `v11.stomp`, `v10.stomp` (no subprotocol: STOMP 1.2 rules);
//!   - STOMP over SockJS under it (`/chat/info`, `/chat/<server>/<session>/<transport>`, and the
//!     raw `/chat/websocket`), every SockJS transport; one STOMP frame per SockJS message;
//!
//!   https/wss when TLS is configured.
//! - The reference chat app ([`chat`], on by default): `/app/chat` stamps JSON chat messages with
//!   the time and publishes them to `/topic/messages`.
//!
//! STOMP runs the same way over every transport: inbound bytes go to one STOMP parser per
//! session, frames are taken off the broker only while the transport is below its high-water
//! mark, heart-beats and the connect timeout are the broker session's, and shutdown sends an
//! ERROR before closing (WebSocket close 1001, SockJS `c[1001,"Server shutting down"]`). SockJS
//! carries text only: a frame whose body is not UTF-8 ends a SockJS session with an ERROR. The
//! SockJS `h` heartbeat is sent only after `[sockjs] heartbeat_ms` with nothing else sent, so
//! negotiated STOMP heart-beats (sent as SockJS messages) take its place.
//!
//! Every connection gets a task; protocol logic lives in the sans-IO crates it composes.
//!
//! Cluster mode (cargo feature `cluster`, on by default): with `[cluster] url` or
//! `--cluster redis://HOST:PORT`, [`Server::bind`] connects a `switchboard_cluster`
//! Redis backend first, and several servers sharing that Redis (or Redis Cluster) act as one
//! broker; `/healthz` answers 503 `backend down: <reason>` while Redis is unreachable and
//! `/metrics` adds the `switchboard_cluster_*` families.
//!
//! Security and message lifecycle come from the configuration (see [`config`]): `[[users]]`
//! with argon2id passcode hashes ([`hash_password`], `switchboard hash-password`), `[auth.jwt]`
//! bearer tokens (HS256, RS256, ES256, JWKS) from the CONNECT passcode, a WebSocket upgrade's
//! `Authorization: Bearer` header or an `access_token` query parameter on the WebSocket or
//! SockJS URL, a per-address back-off after failed logins, `[[acl]]` rules for SUBSCRIBE and
//! SEND, and `[[queues]]` policies (length, overflow, redeliveries, dead letters, TTL).
//! [`broker_builder`] installs them on the broker. Passcodes and tokens are never logged.
//!
//! ```no_run
//! use switchboard_server::{Config, Server};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = Config::default();
//! config.listeners.http = "127.0.0.1:0".parse()?;
//! config.listeners.stomp = "127.0.0.1:0".parse()?;
//! let server = Server::bind(config).await?;
//! let addrs = server.local_addrs();
//! println!("STOMP on {:?}, HTTP on {:?}", addrs.stomp, addrs.http);
//! let stop = server.shutdown_handle();
//! let running = tokio::spawn(server.run());
//! // ... later:
//! stop.shutdown();
//! running.await?;
//! # Ok(()) }
//! ```
//!
//! Configuration: see [`config`] for the TOML file and every default.
//!
//! Application handlers (the `@MessageMapping` equivalent) go on the broker:
//!
//! ```no_run
//! use bytes::Bytes;
//! use switchboard_server::{Config, Server, broker_builder};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::default();
//! let broker = broker_builder(&config)
//!     .handler("/app/shout", |msg, ctx| {
//!         let loud = String::from_utf8_lossy(msg.body).to_uppercase();
//!         ctx.publish("/topic/shouts", msg.headers, Bytes::from(loud))?;
//!         Ok(())
//!     })
//!     .build();
//! Server::bind_with_broker(config, broker).await?.run().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
pub mod chat;
pub mod cli;
pub mod config;
mod demo_page;
pub mod fd_limit;
mod http;
pub mod metrics;
pub mod origin;
mod server;
mod session;
mod sockjs;
mod stomp_tcp;
pub mod tls;
mod transport;
mod websocket;

use std::fmt::Write as _;

pub use auth::hash_password;
pub use config::Config;
pub use server::{BoundAddrs, Server, ServerError, ShutdownHandle};
pub use session::broker_builder;
pub use websocket::SUBPROTOCOLS;

/// Renders `/metrics`: the server's counters, then the broker's.
pub(crate) fn render_metrics(shared: &server::Shared) -> String {
    let mut out = String::with_capacity(4096);
    shared.metrics.render(&mut out);
    let sockjs: Vec<(&str, switchboard_sockjs::Metrics)> = shared
        .sockjs
        .iter()
        .map(|e| (e.config().prefix.as_str(), e.metrics()))
        .collect();
    render_sockjs_metrics(&sockjs, &mut out);
    render_broker_metrics(&shared.broker.metrics(), &mut out);
    #[cfg(feature = "cluster")]
    if let Some(c) = &shared.cluster {
        render_cluster_metrics(&c.stats(), &mut out);
    }
    out
}

/// The Redis backend's gauges and counters (cluster mode only).
#[cfg(feature = "cluster")]
fn render_cluster_metrics(s: &switchboard_cluster::ClusterStats, out: &mut String) {
    use metrics::family;
    let gauges = [
        (
            "switchboard_cluster_up",
            "1 while Redis is reachable, 0 while it is not.",
            u64::from(s.up),
        ),
        (
            "switchboard_cluster_buffered",
            "Queue SENDs held until Redis is reachable.",
            s.buffered as u64,
        ),
    ];
    for (name, help, v) in gauges {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    let counters = [
        (
            "switchboard_cluster_reconnects_total",
            "Times the connection to Redis came back after an outage.",
            s.reconnects,
        ),
        (
            "switchboard_cluster_published_total",
            "Messages written to Redis (topic publishes and queue entries).",
            s.published,
        ),
        (
            "switchboard_cluster_received_total",
            "Messages received from Redis (other nodes' topic messages, queue entries read).",
            s.received,
        ),
        (
            "switchboard_cluster_claimed_total",
            "Queue entries claimed from nodes that are gone.",
            s.claimed,
        ),
        (
            "switchboard_cluster_lost_total",
            "Topic messages not published (Redis down, buffer full) or not received (reader behind).",
            s.lost,
        ),
        (
            "switchboard_cluster_malformed_total",
            "Entries from Redis that did not decode (skipped).",
            s.malformed,
        ),
    ];
    for (name, help, v) in counters {
        family(out, name, "counter", help);
        let _ = writeln!(out, "{name} {v}");
    }
}

/// The SockJS transports, in the order `/metrics` lists them.
const SOCKJS_TRANSPORTS: [switchboard_sockjs::Transport; 7] = {
    use switchboard_sockjs::Transport as T;
    [
        T::WebSocket,
        T::RawWebSocket,
        T::XhrPolling,
        T::XhrStreaming,
        T::EventSource,
        T::HtmlFile,
        T::JsonpPolling,
    ]
};

/// SockJS sessions by endpoint and transport (every known transport listed, zeros included).
fn render_sockjs_metrics(endpoints: &[(&str, switchboard_sockjs::Metrics)], out: &mut String) {
    use metrics::family;
    if endpoints.is_empty() {
        return;
    }
    let by_transport = [
        (
            "switchboard_sockjs_sessions_open",
            "gauge",
            "SockJS sessions open now, by endpoint and the transport that opened them.",
            (|m: &switchboard_sockjs::Metrics| &m.open)
                as fn(&switchboard_sockjs::Metrics) -> &Vec<_>,
        ),
        (
            "switchboard_sockjs_sessions_opened_total",
            "counter",
            "SockJS sessions ever opened, by endpoint and transport.",
            |m: &switchboard_sockjs::Metrics| &m.opened_total,
        ),
    ];
    for (name, kind, help, pick) in by_transport {
        family(out, name, kind, help);
        for (endpoint, m) in endpoints {
            let endpoint = label_value(endpoint);
            let values = pick(m);
            let extra = values
                .iter()
                .filter(|(t, _)| !SOCKJS_TRANSPORTS.contains(t))
                .map(|(t, _)| *t);
            for t in SOCKJS_TRANSPORTS.into_iter().chain(extra) {
                let v = values.iter().find(|(x, _)| *x == t).map_or(0, |(_, v)| *v);
                let _ = writeln!(
                    out,
                    "{name}{{endpoint=\"{endpoint}\",transport=\"{}\"}} {v}",
                    t.label()
                );
            }
        }
    }
    let counters = [
        (
            "switchboard_sockjs_closed_queue_full_total",
            "SockJS sessions closed because their outbound queue passed max_queued_bytes.",
            (|m: &switchboard_sockjs::Metrics| m.closed_queue_full)
                as fn(&switchboard_sockjs::Metrics) -> u64,
        ),
        (
            "switchboard_sockjs_timed_out_total",
            "SockJS sessions closed after the disconnect delay without a receiving request.",
            |m: &switchboard_sockjs::Metrics| m.timed_out,
        ),
    ];
    for (name, help, pick) in counters {
        family(out, name, "counter", help);
        for (endpoint, m) in endpoints {
            let _ = writeln!(
                out,
                "{name}{{endpoint=\"{}\"}} {}",
                label_value(endpoint),
                pick(m)
            );
        }
    }
}

/// Escapes a Prometheus label value.
fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_broker_metrics(m: &switchboard_broker::MetricsSnapshot, out: &mut String) {
    use metrics::family;
    let gauges = [
        (
            "switchboard_sessions",
            "STOMP sessions open now.",
            m.connections,
        ),
        (
            "switchboard_subscriptions",
            "Subscriptions now.",
            m.subscriptions,
        ),
        (
            "switchboard_queues",
            "Queues that exist.",
            m.backend.queues as u64,
        ),
        (
            "switchboard_queued_messages",
            "Messages waiting in queues.",
            m.backend.pending as u64,
        ),
    ];
    for (name, help, v) in gauges {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    let counters = [
        (
            "switchboard_sessions_total",
            "STOMP sessions ever opened.",
            m.connections_total,
        ),
        (
            "switchboard_sessions_refused_total",
            "STOMP sessions refused at the connection limit.",
            m.connections_refused,
        ),
        (
            "switchboard_subscriptions_total",
            "Subscriptions ever made.",
            m.subscriptions_total,
        ),
        (
            "switchboard_messages_dropped_total",
            "Deliveries dropped (full outbound queue, no credit).",
            m.messages_dropped,
        ),
        (
            "switchboard_messages_redelivered_total",
            "Queue messages given back for redelivery.",
            m.messages_redelivered,
        ),
        (
            "switchboard_auth_failures_total",
            "Failed logins (refused CONNECTs, including those refused by the per-address back-off).",
            m.auth_failures,
        ),
        (
            "switchboard_messages_expired_total",
            "Messages whose TTL or expires header passed before delivery.",
            m.backend.expired,
        ),
        (
            "switchboard_messages_dead_lettered_total",
            "Messages moved to a dead-letter queue (max redeliveries, expiry, overflow).",
            m.backend.dead_lettered,
        ),
        (
            "switchboard_messages_overflowed_total",
            "Messages dropped from a full drop-oldest queue.",
            m.backend.overflowed,
        ),
        (
            "switchboard_messages_discarded_total",
            "Messages discarded (expired, overflowed or past max redeliveries with no dead-letter queue).",
            m.backend.discarded,
        ),
    ];
    for (name, help, v) in counters {
        family(out, name, "counter", help);
        let _ = writeln!(out, "{name} {v}");
    }
    family(
        out,
        "switchboard_messages_in_total",
        "counter",
        "Messages published, by destination kind.",
    );
    for (kind, v) in m.messages_in.iter() {
        let _ = writeln!(out, "switchboard_messages_in_total{{kind=\"{kind}\"}} {v}");
    }
    family(
        out,
        "switchboard_messages_out_total",
        "counter",
        "MESSAGE frames sent, by destination kind.",
    );
    for (kind, v) in m.messages_out.iter() {
        let _ = writeln!(out, "switchboard_messages_out_total{{kind=\"{kind}\"}} {v}");
    }
    family(
        out,
        "switchboard_errors_total",
        "counter",
        "ERROR frames sent, by kind (slow_consumer = slow consumers dropped).",
    );
    for (kind, v) in &m.errors {
        let _ = writeln!(
            out,
            "switchboard_errors_total{{kind=\"{}\"}} {v}",
            kind.as_str()
        );
    }
}
