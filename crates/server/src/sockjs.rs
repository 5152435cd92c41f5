//! STOMP over SockJS: one [`SockJs`] endpoint per `[websocket] paths` entry, and the loop that
//! runs one STOMP session per SockJS session, whatever SockJS transport carries it.
//!
//! Inbound, every SockJS message is appended to one per-session buffer that the STOMP parser
//! reads (a message may hold several frames, a frame may span messages). Outbound, every STOMP
//! frame (and every heart-beat EOL) is one SockJS message; the sockjs layer batches whatever is
//! ready into one `a[...]` frame per response or WebSocket message. The raw `<path>/websocket`
//! endpoint runs the same loop, its messages being plain WebSocket text messages.
//!
//! SockJS carries text only. A frame whose bytes are not UTF-8 (a MESSAGE with a binary body
//! published by a TCP client, say) cannot be sent: the session ends with
//! `ERROR message:Body is not UTF-8 text`, as for any frame the transport cannot carry, rather
//! than delivering a silently altered body whose `content-length` no longer matches.
//!
//! Flow control is the other transports': frames are taken off the broker only while the
//! SockJS session holds less than [`WRITE_HIGH_WATER`] bytes not yet taken by a receiving
//! request; then the loop waits for [`Connection::drained`]. A client that stops polling
//! leaves its messages in the broker's bounded outbound queue (slow-consumer policy), and the
//! sockjs layer closes a session nobody polls within the disconnect delay.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::BytesMut;
use switchboard_broker::EncodedFrame;
use switchboard_sockjs::{Connection, SockJs, Transport as SockJsTransport};
use tokio::time::Instant;
use tracing::debug;

use crate::config::Config;
use crate::metrics::Transport;
use crate::origin::origin_allowed;
use crate::server::{ConnectionSlot, Shared};
use crate::session::StompConnection;
use crate::transport::{
    FrameSink, WRITE_HIGH_WATER, earliest, pull, release_if_empty, sleep_until_opt,
};

/// SockJS close code and reason when the STOMP session ended normally (DISCONNECT, ERROR).
const CLOSE_NORMAL: (u16, &str) = (1000, "Normal closure");
/// SockJS close code and reason on server shutdown.
const CLOSE_SHUTDOWN: (u16, &str) = (1001, "Server shutting down");
/// SockJS close code and reason when the server is at its connection limit.
const CLOSE_OVER_LIMIT: (u16, &str) = (1013, "Too many connections");

/// The sockjs crate's transport for a `disabled_transports` name (see
/// [`crate::config::SOCKJS_TRANSPORTS`]).
fn transports_named(name: &str) -> &'static [SockJsTransport] {
    match name {
        "websocket" => &[SockJsTransport::WebSocket, SockJsTransport::RawWebSocket],
        "xhr" => &[SockJsTransport::XhrPolling],
        "xhr_streaming" => &[SockJsTransport::XhrStreaming],
        "eventsource" => &[SockJsTransport::EventSource],
        "htmlfile" => &[SockJsTransport::HtmlFile],
        "jsonp" => &[SockJsTransport::JsonpPolling],
        // Unknown names are refused by `Config::validate`.
        _ => &[],
    }
}

/// The sockjs configuration of the endpoint at `path`.
pub(crate) fn sockjs_config(config: &Config, path: &str) -> switchboard_sockjs::Config {
    let s = &config.sockjs;
    let mut c = switchboard_sockjs::Config::default();
    c.prefix = path.trim_end_matches('/').to_owned();
    c.websocket = !s.disabled_transports.iter().any(|t| t == "websocket");
    c.disabled_transports = s
        .disabled_transports
        .iter()
        .flat_map(|t| transports_named(t).iter().copied())
        .collect();
    c.cookie_needed = s.cookie_needed;
    c.heartbeat = Duration::from_millis(s.heartbeat_ms);
    c.disconnect_delay = Duration::from_millis(s.disconnect_delay_ms);
    c.response_limit = s.response_limit;
    c.max_queued_bytes = s.queued_bytes_limit(&config.limits);
    // One SockJS message may carry one STOMP frame plus its headers (as a WebSocket message).
    c.max_message_size = config
        .limits
        .max_frame_size
        .saturating_add(config.limits.max_header_line * 4 + 64 * 1024);
    c.max_sessions = config.limits.max_connections;
    c.client_url = s.effective_client_url();
    let allowed = config.websocket.allowed_origins.clone();
    c.origin_policy = Some(Arc::new(move |origin: Option<&str>, host: Option<&str>| {
        origin_allowed(origin, host, &allowed)
    }));
    c
}

/// One endpoint per configured path (none when `[sockjs] enabled = false`). New sessions are
/// served by tasks holding `shared` (a weak reference: the endpoints live inside it).
pub(crate) fn endpoints(config: &Config, shared: &Weak<Shared>) -> Vec<SockJs> {
    if !config.sockjs.enabled {
        return Vec::new();
    }
    config
        .websocket
        .paths
        .iter()
        .map(|path| {
            let shared = shared.clone();
            SockJs::new(sockjs_config(config, path), move |conn| {
                on_connection(conn, &shared)
            })
        })
        .collect()
}

fn on_connection(conn: Connection, shared: &Weak<Shared>) {
    let Some(shared) = shared.upgrade() else {
        conn.close(CLOSE_SHUTDOWN.0, CLOSE_SHUTDOWN.1);
        return;
    };
    let Some(slot) = shared.try_open(Transport::SockJs) else {
        debug!(peer = ?conn.peer(), "connection limit reached; closing the SockJS session");
        conn.close(CLOSE_OVER_LIMIT.0, CLOSE_OVER_LIMIT.1);
        return;
    };
    tokio::spawn(serve(conn, shared, slot));
}

/// The SockJS session as a frame sink: one SockJS message per STOMP frame.
struct SockJsSink<'a> {
    conn: &'a Connection,
    /// Set when a frame was not UTF-8 (and so not sent).
    not_text: bool,
}

impl FrameSink for SockJsSink<'_> {
    fn push_frame(&mut self, f: &EncodedFrame) {
        // One copy: the frame's chunks straight into the message's own buffer.
        let mut bytes = Vec::with_capacity(f.len());
        for c in f.chunks() {
            bytes.extend_from_slice(c);
        }
        match String::from_utf8(bytes) {
            // Fails only once the session is closed; the loop sees that through `recv`.
            Ok(text) => {
                let _ = self.conn.send(text);
            }
            Err(_) => self.not_text = true,
        }
    }
    fn queued_bytes(&mut self) -> usize {
        self.conn.buffered_bytes()
    }
}

/// Runs one STOMP session over one SockJS session until either ends.
async fn serve(conn: Connection, shared: Arc<Shared>, slot: ConnectionSlot) {
    let peer = conn
        .peer()
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    debug!(%peer, sockjs_session = conn.id(), transport = conn.transport().label(), "SockJS session opened");
    let mut stomp = StompConnection::new(
        &shared.broker,
        &shared.config,
        Transport::SockJs,
        peer,
        None,
        Instant::now(),
    );
    // A browser's token: `access_token` on the SockJS URL (or a Bearer header, if a client
    // can set one) of the request that opened the session.
    let request = conn.request();
    stomp.set_token(crate::auth::token::request_token(
        &request.headers,
        &request.uri,
    ));
    let signal = stomp.signal();
    let mut sink = SockJsSink {
        conn: &conn,
        not_text: false,
    };
    let mut inbound = BytesMut::new();
    let mut shutdown = shared.shutdown_signal();
    let mut shutting_down = false;
    // Set once the session is over or must be: the time left to hand its last frames over.
    let mut deadline: Option<Instant> = None;
    let grace = shared.config.limits.shutdown_grace();
    let mut client_gone = false;
    loop {
        let now = Instant::now();
        if pull(&mut stomp, now, &mut sink) {
            // Dropped as a slow consumer: what is queued, then the ERROR, get the grace period.
            deadline.get_or_insert(now + grace);
        }
        if std::mem::take(&mut sink.not_text) {
            debug!(%peer, session = stomp.id(), "a frame is not UTF-8; SockJS carries text only");
            stomp.fail(
                "Body is not UTF-8 text",
                "SockJS carries text only: a frame whose body is not UTF-8 cannot be delivered \
                 (use the WebSocket or TCP endpoint for binary bodies)",
            );
            continue;
        }
        if stomp.is_closed() {
            break;
        }
        let timer = earliest(stomp.poll_timeout(), deadline);
        let full = conn.buffered_bytes() >= WRITE_HIGH_WATER;
        tokio::select! {
            m = conn.recv() => match m {
                Some(text) => {
                    inbound.extend_from_slice(text.as_bytes());
                    stomp.receive(&mut inbound, Instant::now(), &shared.config);
                    // Frames keep their own slices; an emptied buffer is given back, so an
                    // idle session holds none.
                    release_if_empty(&mut inbound);
                }
                None => {
                    debug!(%peer, session = stomp.id(), "SockJS session closed");
                    client_gone = true;
                    break;
                }
            },
            _ = conn.drained(WRITE_HIGH_WATER), if full => {}
            _ = signal.notified() => {}
            _ = sleep_until_opt(timer) => {
                let now = Instant::now();
                if deadline.is_some_and(|d| d <= now) {
                    debug!(%peer, session = stomp.id(), "could not hand the last frames over in time");
                    break;
                }
                stomp.handle_timeout(now);
            }
            _ = shutdown.wait(), if !shutting_down => {
                // The broker queues an ERROR after what is already queued; bound the wait.
                shutting_down = true;
                let by = Instant::now() + grace;
                deadline = Some(deadline.map_or(by, |d| d.min(by)));
            }
        }
    }
    if !client_gone {
        // Let a polling client take what is queued (the ERROR or RECEIPT last) before the
        // close frame, within what is left of the grace period.
        let by = deadline.unwrap_or_else(|| Instant::now() + grace);
        tokio::select! {
            _ = conn.drained(1) => {}
            _ = tokio::time::sleep_until(by) => {}
        }
        let (code, reason) = if stomp.closed_by_shutdown() || shutting_down {
            CLOSE_SHUTDOWN
        } else {
            CLOSE_NORMAL
        };
        conn.close(code, reason);
    }
    stomp.transport_closed();
    drop(stomp);
    drop(slot);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SOCKJS_TRANSPORTS;

    #[test]
    fn every_config_name_maps_to_a_transport() {
        for name in SOCKJS_TRANSPORTS {
            assert!(!transports_named(name).is_empty(), "{name}");
        }
        assert!(transports_named("xhr_send").is_empty());
    }

    #[test]
    fn endpoint_config_follows_the_server_config() {
        let mut config = Config::default();
        config.sockjs.disabled_transports = vec!["websocket".into(), "jsonp".into()];
        config.sockjs.heartbeat_ms = 1234;
        config.sockjs.cookie_needed = true;
        config.limits.max_connections = 7;
        let c = sockjs_config(&config, "/chat");
        assert_eq!(c.prefix, "/chat");
        assert!(!c.websocket);
        assert!(
            c.disabled_transports
                .contains(&SockJsTransport::RawWebSocket)
        );
        assert!(
            c.disabled_transports
                .contains(&SockJsTransport::JsonpPolling)
        );
        assert!(!c.disabled_transports.contains(&SockJsTransport::XhrPolling));
        assert_eq!(c.heartbeat, Duration::from_millis(1234));
        assert!(c.cookie_needed);
        assert_eq!(c.max_sessions, 7);
        assert_eq!(c.max_queued_bytes, 2 * (1 << 20) + 256 * 1024);
        assert!(c.max_message_size > config.limits.max_frame_size);
        let policy = c.origin_policy.expect("the server's origin policy");
        assert!(policy(None, Some("example.com")));
        assert!(policy(Some("http://example.com"), Some("example.com")));
        assert!(!policy(Some("https://evil.example"), Some("example.com")));
    }
}
