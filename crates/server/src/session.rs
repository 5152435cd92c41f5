//! One STOMP connection's protocol state, whatever carries its bytes: the STOMP parser feeding a
//! broker [`Session`], and the broker configuration built from the server's [`Config`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use switchboard_broker::{
    AclAuthorizer, AppMapping, Broker, BrokerBuilder, BrokerConfig, CloseReason, EncodedFrame,
    ErrorKind, HeartBeat, OutboundSignal, Session, SessionOptions,
};
use switchboard_stomp::{Limits as StompLimits, ParseError, Parsed, Parser, Version};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::config::Config;
use crate::metrics::Transport;

/// A broker builder configured from the server configuration (limits, heart-beats, app prefix
/// mappings, static users, and the reference chat app's `/app/chat` handler unless
/// `[chat] enabled = false`); add application handlers and `build()` it, then hand the broker
/// to [`Server::bind_with_broker`](crate::Server::bind_with_broker).
pub fn broker_builder(config: &Config) -> BrokerBuilder {
    let mut builder = Broker::builder(broker_config(config));
    if config.chat.enabled {
        builder = crate::chat::register(builder, config);
    }
    if let Some(a) = crate::auth::authenticator(config) {
        builder = builder.authenticator(a);
    }
    match crate::auth::acl(config) {
        Ok(Some(acl)) => builder.authorizer(Arc::new(acl)),
        Ok(None) => builder,
        Err(e) => {
            // Fail closed: Config::validate reports this at start.
            tracing::error!(error = %e, "[[acl]] misconfigured: every SUBSCRIBE and SEND is denied");
            match AclAuthorizer::new(Vec::new(), false) {
                Ok(deny) => builder.authorizer(Arc::new(deny)),
                Err(_) => builder,
            }
        }
    }
}

/// The broker's limits as configured (for the config tests).
#[cfg(test)]
pub(crate) fn broker_config_for_test(config: &Config) -> switchboard_broker::Limits {
    broker_config(config).limits
}

fn broker_config(config: &Config) -> BrokerConfig {
    let l = &config.limits;
    let mut bc = BrokerConfig {
        heart_beat: HeartBeat {
            send_ms: u32::try_from(l.heartbeat_ms[0]).unwrap_or(u32::MAX),
            receive_ms: u32::try_from(l.heartbeat_ms[1]).unwrap_or(u32::MAX),
        },
        connect_timeout: Duration::from_millis(l.connect_timeout_ms),
        app_mappings: config
            .app_destinations
            .iter()
            .map(|m| AppMapping {
                from: m.prefix.clone(),
                to: m.target.clone(),
            })
            .collect(),
        queues: crate::auth::queue_policies(config).unwrap_or_else(|e| {
            tracing::error!(error = %e, "[[queues]] misconfigured: the default policy applies");
            Vec::new()
        }),
        ..BrokerConfig::default()
    };
    bc.limits.max_connections = l.max_connections;
    bc.limits.max_subscriptions_per_session = l.max_subscriptions;
    bc.limits.outbound_max_frames = l.outbound_queue_frames;
    bc.limits.outbound_max_bytes = l.outbound_queue_bytes;
    bc.limits.max_pending_per_queue = l.max_pending_per_queue;
    bc.limits.max_unacked_per_subscription = l.max_unacked;
    bc.limits.max_transactions_per_session = l.max_transactions;
    bc.limits.max_frames_per_transaction = l.max_transaction_frames;
    bc.limits.max_transaction_bytes = l.max_transaction_bytes;
    bc
}

/// The STOMP parser limits from the server configuration.
pub(crate) fn stomp_limits(config: &Config) -> StompLimits {
    StompLimits::default()
        .with_max_body(config.limits.max_frame_size)
        .with_max_headers(config.limits.max_header_count)
        .with_max_header_line(config.limits.max_header_line)
}

/// A parser and a broker session, wired together. Transports move bytes in and frames out.
pub(crate) struct StompConnection {
    session: Session,
    /// The STOMP parser, only while part of a frame is buffered: between frames a connection
    /// holds none (a parser is ~190 bytes plus the scratch space its last frame's headers left,
    /// and an idle connection is nearly always between frames). A new one starts with the
    /// negotiated version and the configured limits.
    parser: Option<Box<Parser>>,
    /// Bytes of the stream consumed so far, and where the current parser started: parse errors
    /// report stream offsets, as one parser for the whole connection would.
    consumed: usize,
    parser_base: usize,
    peer: SocketAddr,
    /// Input is ignored once the session has failed or is closing.
    input_closed: bool,
}

impl StompConnection {
    /// Opens a broker session. `versions` restricts negotiation (a WebSocket subprotocol);
    /// `None` allows every version the broker speaks.
    pub(crate) fn new(
        broker: &Broker,
        config: &Config,
        transport: Transport,
        peer: SocketAddr,
        versions: Option<Vec<Version>>,
        now: Instant,
    ) -> StompConnection {
        let session = broker.open_session_with(SessionOptions { versions }, now.into_std());
        debug!(%peer, transport = transport.label(), session = session.id(), "session opened");
        StompConnection {
            session,
            parser: Some(Box::new(Parser::before_connect(stomp_limits(config)))),
            consumed: 0,
            parser_base: 0,
            peer,
            input_closed: false,
        }
    }

    /// A bearer token the transport received outside STOMP (see [`crate::auth::token`]), for
    /// the authenticator to read at CONNECT.
    pub(crate) fn set_token(&mut self, token: Option<String>) {
        if let Some(t) = token {
            self.session.set_token(t);
        }
    }

    /// The peer's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The broker session id.
    pub(crate) fn id(&self) -> &str {
        self.session.id()
    }

    /// The handle that fires when the session has something to send.
    pub(crate) fn signal(&self) -> OutboundSignal {
        self.session.signal()
    }

    /// Parses every complete frame in `buf` and hands it to the session. Consumed bytes are
    /// removed from `buf`; a partial frame stays for the next call. `config` gives the parser
    /// limits when a new parser is needed.
    pub(crate) fn receive(&mut self, buf: &mut BytesMut, now: Instant, config: &Config) {
        let now = now.into_std();
        if self.input_closed {
            buf.clear();
            return;
        }
        self.session.note_activity(now);
        let len_before = buf.len();
        let mut parser = match self.parser.take() {
            Some(p) => p,
            None => {
                self.parser_base = self.consumed;
                let mut p = Box::new(Parser::before_connect(stomp_limits(config)));
                if let Some(v) = self.session.version() {
                    p.set_version(v);
                }
                p
            }
        };
        loop {
            match parser.parse(buf) {
                Ok(None) => break,
                Ok(Some(Parsed::HeartBeat)) => {}
                Ok(Some(Parsed::Frame(frame))) => {
                    // The authenticator reads the peer's address for its back-off.
                    let session = &mut self.session;
                    crate::auth::with_peer(self.peer.ip(), || session.handle_frame(frame, now));
                    if parser.version().is_none()
                        && let Some(v) = self.session.version()
                    {
                        parser.set_version(v);
                    }
                    if self.session.close_reason().is_some() || self.session.is_closed() {
                        // ERROR or DISCONNECT: the client must not send more; ignore the rest.
                        self.input_closed = true;
                        buf.clear();
                        break;
                    }
                }
                Err(e) => {
                    let detail = stream_error(&e, self.parser_base);
                    debug!(peer = %self.peer, session = self.session.id(), error = %detail, "unparsable input");
                    self.session.protocol_error(e.error_message(), &detail);
                    self.input_closed = true;
                    buf.clear();
                    break;
                }
            }
        }
        self.consumed += len_before - buf.len();
        // Between frames the parser holds nothing worth keeping: drop it (and its scratch).
        if !buf.is_empty() && !self.input_closed {
            self.parser = Some(parser);
        }
    }

    /// The next encoded frame to write.
    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<EncodedFrame> {
        self.session.poll_transmit(now.into_std())
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.session.poll_timeout().map(Instant::from_std)
    }

    /// Runs the session's timers (connect timeout, heart-beats).
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now.into_std());
    }

    /// Whether everything the session will ever send has been polled.
    pub(crate) fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// Whether the session is over or finishing (DISCONNECT or ERROR seen): its last frames may
    /// still have to be flushed.
    pub(crate) fn is_closing(&self) -> bool {
        self.session.close_reason().is_some() || self.session.is_closed()
    }

    /// Applies the broker's pending decisions (slow-consumer drop, shutdown) without taking a
    /// frame off the outbound queue.
    pub(crate) fn refresh(&mut self) {
        self.session.refresh();
    }

    /// Whether the broker dropped this session because its outbound queue overflowed.
    pub(crate) fn dropped_as_slow_consumer(&self) -> bool {
        self.session.close_reason() == Some(CloseReason::Error(ErrorKind::SlowConsumer))
    }

    /// Ends the session with ERROR `message` (and `detail` as body) after what is already
    /// queued, as for unparsable input: for what the transport cannot carry.
    pub(crate) fn fail(&mut self, message: &str, detail: &str) {
        self.session.protocol_error(message, detail);
        self.input_closed = true;
    }

    /// Records liveness (a WebSocket ping, for example) without frame bytes.
    pub(crate) fn note_activity(&mut self, now: Instant) {
        self.session.note_activity(now.into_std());
    }

    /// Whether the session ended because the server is going down.
    pub(crate) fn closed_by_shutdown(&self) -> bool {
        self.session.close_reason() == Some(CloseReason::Error(ErrorKind::Shutdown))
    }

    /// The transport is gone (peer closed, I/O error, deadline): release subscriptions and
    /// redeliver unacknowledged messages.
    pub(crate) fn transport_closed(&mut self) {
        if !self.session.is_closed() {
            match self.session.close_reason() {
                Some(CloseReason::Error(ErrorKind::SlowConsumer)) => {
                    warn!(peer = %self.peer, session = self.session.id(), "slow consumer dropped");
                }
                Some(reason) => {
                    debug!(peer = %self.peer, session = self.session.id(), ?reason, "closed before flushing")
                }
                None => {}
            }
        }
        self.session.transport_closed();
    }
}

/// A parse error as text, its offset made a stream offset (`base` = the stream offset of the
/// parser's first byte): the text one parser for the whole connection would give.
fn stream_error(e: &ParseError, base: usize) -> String {
    let text = e.to_string();
    let local = format!("{} at byte {}", e.error_message(), e.offset());
    match text.strip_prefix(&local) {
        Some(rest) => format!(
            "{} at byte {}{rest}",
            e.error_message(),
            base.saturating_add(e.offset())
        ),
        None => text,
    }
}

impl Drop for StompConnection {
    fn drop(&mut self) {
        self.session.transport_closed();
        debug!(peer = %self.peer, session = self.session.id(), reason = ?self.session.close_reason(), "session closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(config: &Config) -> (Broker, StompConnection) {
        let broker = broker_builder(config).build();
        let conn = StompConnection::new(
            &broker,
            config,
            Transport::Tcp,
            "127.0.0.1:9".parse().unwrap(),
            None,
            Instant::now(),
        );
        (broker, conn)
    }

    fn sent(conn: &mut StompConnection) -> String {
        let mut out = String::new();
        while let Some(f) = conn.poll_transmit(Instant::now()) {
            out.push_str(&String::from_utf8_lossy(&f.to_bytes()));
        }
        out
    }

    #[test]
    fn parser_only_while_a_frame_is_partial_and_errors_keep_stream_offsets() {
        let config = Config::default();
        let (_broker, mut conn) = connection(&config);
        let connect = &b"CONNECT\naccept-version:1.2\nhost:/\n\n\0"[..];
        let mut buf = BytesMut::from(connect);
        conn.receive(&mut buf, Instant::now(), &config);
        assert!(sent(&mut conn).starts_with("CONNECTED\n"));
        assert!(conn.parser.is_none(), "no parser between frames");
        // Half a frame: the parser stays with it; the rest completes it.
        let send = &b"SEND\ndestination:/topic/a\n\nhi\0"[..];
        let mut buf = BytesMut::from(&send[..10]);
        conn.receive(&mut buf, Instant::now(), &config);
        assert!(conn.parser.is_some(), "a partial frame keeps its parser");
        buf.extend_from_slice(&send[10..]);
        conn.receive(&mut buf, Instant::now(), &config);
        assert!(buf.is_empty() && conn.parser.is_none());
        // A fresh parser with the negotiated version (1.2 allows CR LF line ends), and an error
        // reported at its offset in the whole stream, as one parser would.
        let mut buf = BytesMut::from(&b"\r\nBOGUS\n\n\0"[..]);
        conn.receive(&mut buf, Instant::now(), &config);
        let error = sent(&mut conn);
        let at = connect.len() + send.len() + 2;
        assert!(error.starts_with("ERROR\n"), "{error}");
        assert!(error.contains(&format!("at byte {at}")), "{error}");
    }
}
