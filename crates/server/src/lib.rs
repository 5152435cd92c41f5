//! switchboard-server: the `switchboard` binary as a library — configuration, listeners, and the
//! composition of `switchboard-ws`, `switchboard-stomp` and `switchboard-broker`.
//!
//! One [`Server`] serves:
//! - STOMP over TCP (default `127.0.0.1:61613`) and, with a certificate, over TLS on its own port;
//! - HTTP (default `127.0.0.1:8080`): `/healthz`, Prometheus `/metrics`, and STOMP over
//!   WebSocket on the configured paths (default `/chat`), subprotocols `v12.stomp`, `v11.stomp`,
//!   `v10.stomp` (no subprotocol: STOMP 1.2 rules); https/wss when TLS is configured.
//!
//! Every connection gets a task; protocol logic lives in the sans-IO crates it composes.
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

pub mod cli;
pub mod config;
mod http;
pub mod metrics;
pub mod origin;
mod server;
mod session;
mod stomp_tcp;
pub mod tls;
mod transport;
mod websocket;

use std::fmt::Write as _;

pub use config::Config;
pub use server::{BoundAddrs, Server, ServerError, ShutdownHandle};
pub use session::broker_builder;
pub use websocket::SUBPROTOCOLS;

/// Renders `/metrics`: the server's counters, then the broker's.
pub(crate) fn render_metrics(shared: &server::Shared) -> String {
    let mut out = String::with_capacity(4096);
    shared.metrics.render(&mut out);
    render_broker_metrics(&shared.broker.metrics(), &mut out);
    out
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
