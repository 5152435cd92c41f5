//! Server-side counters and the Prometheus text rendering of `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// How a client reached the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// STOMP over plain TCP.
    Tcp,
    /// STOMP over TLS.
    Tls,
    /// STOMP over WebSocket (ws or wss).
    WebSocket,
    /// An HTTP connection not (yet) upgraded to a WebSocket (SockJS requests included).
    Http,
    /// A STOMP session over SockJS, whatever the SockJS transport (its HTTP requests or
    /// WebSocket are counted apart: `http` while they are requests; a SockJS WebSocket is
    /// counted only as this session).
    SockJs,
}

impl Transport {
    /// The label value used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::WebSocket => "websocket",
            Transport::Http => "http",
            Transport::SockJs => "sockjs",
        }
    }
    const ALL: [Transport; 5] = [
        Transport::Tcp,
        Transport::Tls,
        Transport::WebSocket,
        Transport::Http,
        Transport::SockJs,
    ];
    fn index(self) -> usize {
        self as usize
    }
}

/// Counters kept by the server (the broker keeps its own; both appear on `/metrics`).
#[derive(Debug, Default)]
pub struct ServerMetrics {
    accepted: [AtomicU64; 5],
    open: [AtomicU64; 5],
    /// Connections refused because `limits.max_connections` was reached.
    pub refused_over_limit: AtomicU64,
    /// WebSocket upgrades refused because of their `Origin`.
    pub ws_origin_rejected: AtomicU64,
    /// WebSocket upgrade requests that failed the handshake rules.
    pub ws_handshake_failed: AtomicU64,
    /// TLS handshakes that failed.
    pub tls_handshake_failed: AtomicU64,
    /// HTTP requests served (all paths).
    pub http_requests: AtomicU64,
    /// Bytes read from STOMP clients (after TLS; WebSocket framing included).
    pub bytes_in: AtomicU64,
    /// Bytes written to STOMP clients (before TLS; WebSocket framing included).
    pub bytes_out: AtomicU64,
}

impl ServerMetrics {
    /// Counts an accepted connection (open until [`ServerMetrics::connection_closed`]).
    pub fn connection_opened(&self, t: Transport) {
        self.accepted[t.index()].fetch_add(1, Ordering::Relaxed);
        self.open[t.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection closed.
    pub fn connection_closed(&self, t: Transport) {
        self.open[t.index()].fetch_sub(1, Ordering::Relaxed);
    }

    /// Connections currently open over `t`.
    pub fn open(&self, t: Transport) -> u64 {
        self.open[t.index()].load(Ordering::Relaxed)
    }

    /// Connections ever accepted over `t`.
    pub fn accepted(&self, t: Transport) -> u64 {
        self.accepted[t.index()].load(Ordering::Relaxed)
    }

    /// Appends the server's counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        family(
            out,
            "switchboard_connections_accepted_total",
            "counter",
            "Connections accepted, by transport.",
        );
        for t in Transport::ALL {
            let _ = writeln!(
                out,
                "switchboard_connections_accepted_total{{transport=\"{}\"}} {}",
                t.label(),
                self.accepted(t)
            );
        }
        family(
            out,
            "switchboard_connections_open",
            "gauge",
            "Connections open now, by transport.",
        );
        for t in Transport::ALL {
            let _ = writeln!(
                out,
                "switchboard_connections_open{{transport=\"{}\"}} {}",
                t.label(),
                self.open(t)
            );
        }
        let simple = [
            (
                "switchboard_connections_refused_total",
                "Connections refused at the connection limit.",
                &self.refused_over_limit,
            ),
            (
                "switchboard_ws_origin_rejected_total",
                "WebSocket upgrades refused because of their Origin.",
                &self.ws_origin_rejected,
            ),
            (
                "switchboard_ws_handshake_failed_total",
                "WebSocket upgrade requests that broke the handshake rules.",
                &self.ws_handshake_failed,
            ),
            (
                "switchboard_tls_handshake_failed_total",
                "TLS handshakes that failed.",
                &self.tls_handshake_failed,
            ),
            (
                "switchboard_http_requests_total",
                "HTTP requests served.",
                &self.http_requests,
            ),
            (
                "switchboard_received_bytes_total",
                "Bytes received from STOMP clients (after TLS, WebSocket framing included).",
                &self.bytes_in,
            ),
            (
                "switchboard_sent_bytes_total",
                "Bytes sent to STOMP clients (before TLS, WebSocket framing included).",
                &self.bytes_out,
            ),
        ];
        for (name, help, value) in simple {
            family(out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
    }
}

/// Writes the `# HELP` and `# TYPE` lines of a metric family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = ServerMetrics::default();
        m.connection_opened(Transport::WebSocket);
        m.connection_opened(Transport::Tcp);
        m.connection_closed(Transport::Tcp);
        let mut s = String::new();
        m.render(&mut s);
        assert!(s.contains("switchboard_connections_open{transport=\"websocket\"} 1\n"));
        assert!(s.contains("switchboard_connections_open{transport=\"tcp\"} 0\n"));
        assert!(s.contains("switchboard_connections_accepted_total{transport=\"tcp\"} 1\n"));
        assert!(s.contains("# TYPE switchboard_http_requests_total counter\n"));
    }
}
