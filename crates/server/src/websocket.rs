//! STOMP over WebSocket: the upgrade on the HTTP listener (origin check, subprotocol
//! negotiation) and the per-connection loop over `switchboard-ws`'s sans-IO [`Connection`].
//!
//! Inbound, text and binary messages are appended to one per-connection buffer that the STOMP
//! parser reads, so a message may hold several frames and a frame may span several messages.
//! Outbound, each STOMP frame (and each heart-beat EOL) is one WebSocket message — text when it
//! is UTF-8, binary otherwise — which is what STOMP clients such as @stomp/stompjs expect.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future as _;
use switchboard_broker::EncodedFrame;
use switchboard_stomp::Version;
use switchboard_ws::handshake::UpgradeRequest;
use switchboard_ws::{
    CloseCode, CloseState, Config as WsConfig, Connection, DeflateConfig, DeflateParams,
    Limits as WsLimits, Message, Opcode, Payload, Role, ServerConfig,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::debug;

use crate::http::{Body, SlotCell, full, text};
use crate::metrics::Transport;
use crate::origin::origin_allowed;
use crate::server::{ConnectionSlot, Shared};
use crate::session::StompConnection;
use crate::transport::{FrameSink, ReadSizer, earliest, pull, release_if_empty};

/// The STOMP subprotocols, in the server's order of preference.
pub const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// How long we wait for the client's Close after sending ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

fn subprotocol_version(p: Option<&str>) -> Option<Vec<Version>> {
    match p {
        Some("v12.stomp") => Some(vec![Version::V1_2]),
        Some("v11.stomp") => Some(vec![Version::V1_1]),
        Some("v10.stomp") => Some(vec![Version::V1_0]),
        // No subprotocol: STOMP 1.2 rules (the client may still negotiate with accept-version).
        _ => None,
    }
}

/// Answers an upgrade request on a WebSocket path: 101 and a spawned connection task, or 4xx.
pub(crate) fn upgrade(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    cell: SlotCell,
) -> Response<Body> {
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()));
    let http11 = req.version() == http::Version::HTTP_11;
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let upgrade = match UpgradeRequest::from_parts(req.method().as_str(), &path, http11, headers) {
        Ok(u) => u,
        Err(e) => {
            shared
                .metrics
                .ws_handshake_failed
                .fetch_add(1, Ordering::Relaxed);
            debug!(%peer, error = %e, "bad WebSocket upgrade request");
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut r = Response::new(full(format!("{e}\n")));
            *r.status_mut() = status;
            if status == StatusCode::UPGRADE_REQUIRED {
                r.headers_mut().insert(
                    header::SEC_WEBSOCKET_VERSION,
                    header::HeaderValue::from_static("13"),
                );
            }
            return r;
        }
    };
    if !origin_allowed(
        upgrade.origin.as_deref(),
        Some(&upgrade.host),
        &shared.config.websocket.allowed_origins,
    ) {
        shared
            .metrics
            .ws_origin_rejected
            .fetch_add(1, Ordering::Relaxed);
        debug!(%peer, origin = ?upgrade.origin, "WebSocket origin rejected");
        return text(StatusCode::FORBIDDEN, "origin not allowed\n");
    }
    if shared.shutdown_signal().is_down() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    let mut handshake = ServerConfig::default().protocols(SUBPROTOCOLS);
    if shared.config.websocket.permessage_deflate {
        handshake = handshake.deflate(deflate_config());
    }
    let accepted = upgrade.accept(&handshake);
    let Some(mut slot) = cell.lock().ok().and_then(|mut c| c.take()) else {
        // Only one upgrade per connection.
        return text(StatusCode::BAD_REQUEST, "already upgraded\n");
    };
    slot.set_transport(Transport::WebSocket);
    let versions = subprotocol_version(accepted.protocol.as_deref());
    let deflate = accepted.deflate;
    let token = crate::auth::token::request_token(req.headers(), req.uri());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let start = Box::new(Start {
        peer,
        versions,
        deflate,
        shared,
        slot,
        token,
    });
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => run(TokioIo::new(upgraded), start).await,
            Err(e) => debug!(peer = %start.peer, error = %e, "WebSocket upgrade did not complete"),
        }
    });
    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in accepted.headers() {
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            r.headers_mut().insert(name, v);
        }
    }
    r
}

/// The WebSocket connection as a frame sink: one STOMP frame per message.
struct WsSink {
    ws: Connection,
}

impl FrameSink for WsSink {
    fn push_frame(&mut self, f: &EncodedFrame) {
        if self.ws.state() != CloseState::Open {
            return;
        }
        let bytes = f.to_bytes();
        let opcode = if std::str::from_utf8(&bytes).is_ok() {
            Opcode::Text
        } else {
            Opcode::Binary
        };
        // Only fails when the connection is closing, checked above.
        let _ = self.ws.send_frame(true, opcode, Payload::Shared(&bytes));
    }
    fn queued_bytes(&mut self) -> usize {
        self.ws.out().len()
    }
}

/// permessage-deflate settings when enabled: no context takeover either way, so a connection
/// keeps no compression window between messages.
fn deflate_config() -> DeflateConfig {
    DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..DeflateConfig::default()
    }
}

fn ws_config(shared: &Shared) -> WsConfig {
    // A WebSocket message carries at most one frame's worth of STOMP plus slack for headers.
    let max = shared
        .config
        .limits
        .max_frame_size
        .saturating_add(shared.config.limits.max_header_line * 4 + 64 * 1024);
    WsConfig::default()
        .limits(WsLimits {
            max_frame_size: max,
            max_message_size: max,
            ..WsLimits::default()
        })
        .deflate(deflate_config())
}

/// What a connection task starts from, in one box: a future keeps what it captured, and an
/// `async fn` its arguments, for its whole life even once they are moved out (rust-lang/rust
/// issue 62958), so passed one by one these would be ~150 dead bytes in every connection's
/// task (twice: the spawned block and `run`); a box is 8, and freed once unpacked.
struct Start {
    peer: SocketAddr,
    versions: Option<Vec<Version>>,
    deflate: Option<DeflateParams>,
    shared: Arc<Shared>,
    slot: ConnectionSlot,
    token: Option<String>,
}

/// Runs one upgraded connection until it closes.
///
/// The task's future is what every idle connection costs most (its size is the largest set of
/// locals live at an `.await`): the loop keeps the socket unsplit (one read-or-write future,
/// no shared half), its timer boxed and only while one is due, and no buffer while quiet.
/// `tests::idle_connection_task_stays_small` holds it to a bound.
async fn run<S>(mut io: S, start: Box<Start>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Start {
        peer,
        versions,
        deflate,
        shared,
        slot,
        token,
    } = {
        // Moved out and the box freed here: destructuring `*start` in place would keep the
        // emptied allocation until `run` returns.
        let boxed = start;
        *boxed
    };
    let mut sink = WsSink {
        ws: Connection::new(Role::Server, ws_config(&shared), deflate),
    };
    let mut conn = StompConnection::new(
        &shared.broker,
        &shared.config,
        Transport::WebSocket,
        peer,
        versions,
        Instant::now(),
    );
    conn.set_token(token);
    let signal = conn.signal();
    let mut wire = BytesMut::new();
    let mut sizer = ReadSizer::default();
    let mut stomp = BytesMut::new();
    let shutdown = shared.shutdown_signal();
    let mut shutting_down = false;
    let mut read_open = true;
    let mut deadline: Option<Instant> = None;
    let mut timer = Timer::default();
    loop {
        let now = Instant::now();
        let grace = shared.config.limits.shutdown_grace();
        // Shutdown is seen here, not awaited: the broker wakes every session when the server
        // goes down (`Broker::shutdown`, right after the signal), and a future waiting on the
        // signal would be 160 bytes more in every connection's task.
        if !shutting_down && shutdown.is_down() {
            shutting_down = true;
            deadline = Some(deadline.map_or(now + grace, |d| d.min(now + grace)));
        }
        if pull(&mut conn, now, &mut sink) {
            // Dropped as a slow consumer: its queued frames, ERROR and Close get the grace
            // period to go out; one that reads nothing is cut off when it runs out.
            deadline = Some(deadline.map_or(now + grace, |d| d.min(now + grace)));
        }
        if conn.is_closed() && sink.ws.state() == CloseState::Open {
            let (code, reason): (CloseCode, &[u8]) = if conn.closed_by_shutdown() {
                (CloseCode::GOING_AWAY, b"server shutting down")
            } else {
                (CloseCode::NORMAL, b"")
            };
            let _ = sink.ws.close(code, reason);
            deadline = Some(deadline.map_or(now + grace, |d| d.min(now + grace)));
        }
        if sink.ws.state() == CloseState::CloseSent {
            let close_by = now + CLOSE_TIMEOUT;
            deadline = Some(deadline.map_or(close_by, |d| d.min(close_by)));
        }
        if sink.ws.is_done() {
            break;
        }
        if !read_open && sink.ws.out().is_empty() {
            break;
        }
        let session_timer = if conn.is_closed() {
            None
        } else {
            conn.poll_timeout()
        };
        timer.set(earliest(session_timer, deadline));
        let want_read = read_open && sink.ws.state() != CloseState::Closed;
        // A quiet connection with nothing buffered reads through the stack (`poll_io`), so
        // it holds no read buffer while it waits.
        let quiet = wire.is_empty() && sizer.is_min();
        let room = if !want_read {
            0
        } else if quiet {
            READ_QUIET
        } else {
            sizer.before_read(&mut wire)
        };
        let want_write = !sink.ws.out().is_empty();
        tokio::select! {
            step = poll_io(&mut io, &mut sink.ws, &mut wire, want_read.then_some(quiet), want_write) => match step {
                IoStep::Read(Ok(0)) => {
                    read_open = false;
                    if sink.ws.state() == CloseState::Open {
                        debug!(peer = %conn.peer(), session = conn.id(), "peer closed without a Close frame");
                        break;
                    }
                }
                IoStep::Read(Ok(n)) => {
                    sizer.after_read(n, room);
                    shared.metrics.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    if !on_wire_bytes(&mut sink.ws, &mut wire, &mut stomp, &mut conn, &shared) {
                        // Protocol error: the ws connection queued a Close; flush it.
                        read_open = false;
                    }
                    // What the STOMP parser left unparsed stays; an emptied buffer is given
                    // back (frame bodies keep their own slices of it), and so is a drained
                    // read buffer while reads are small.
                    release_if_empty(&mut stomp);
                    if sizer.is_min() {
                        release_if_empty(&mut wire);
                    }
                }
                IoStep::Read(Err(e)) => {
                    debug!(peer = %conn.peer(), session = conn.id(), error = %e, "read failed");
                    break;
                }
                IoStep::Wrote(Ok(n)) => {
                    shared.metrics.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    // All written: keep no write buffer while waiting for the next frame.
                    sink.ws.out().release_idle();
                }
                IoStep::Wrote(Err(e)) => {
                    debug!(peer = %conn.peer(), session = conn.id(), error = %e, "write failed");
                    break;
                }
            },
            _ = signal.notified() => {}
            _ = timer.wait() => {
                let now = Instant::now();
                if deadline.is_some_and(|d| d <= now) {
                    debug!(peer = %conn.peer(), session = conn.id(), "closing handshake or flush timed out");
                    break;
                }
                conn.handle_timeout(now);
            }
        }
    }
    conn.transport_closed();
    let _ = tokio::time::timeout(Duration::from_millis(200), io.shutdown()).await;
    drop(conn);
    drop(slot);
}

/// The connection's one timer (session heart-beats and connect timeout, close and flush
/// deadlines): boxed, and only while something is due, so a connection without a deadline
/// keeps no timer entry; re-armed in place when the deadline moves.
#[derive(Default)]
struct Timer(Option<Pin<Box<tokio::time::Sleep>>>);

impl Timer {
    fn set(&mut self, at: Option<Instant>) {
        match (at, &mut self.0) {
            (None, _) => self.0 = None,
            (Some(at), Some(sleep)) => {
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
            }
            (Some(at), None) => self.0 = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// Completes when the deadline passes; never without one.
    fn wait(&mut self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| match &mut self.0 {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => std::task::Poll::Pending,
        })
    }
}

/// What [`poll_io`] did.
enum IoStep {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
}

/// Writes what the connection has queued (when `write`) or reads into `wire` (when `read` is
/// `Some(quiet)`), whichever the socket allows first. With `quiet`, the read goes through a
/// stack buffer first, so a connection waiting for its next message reserves no heap memory for
/// it (the bytes are copied once they come). Everything lives on the stack only during a poll:
/// none of it is part of the task's state.
async fn poll_io<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    ws: &mut Connection,
    wire: &mut BytesMut,
    read: Option<bool>,
    write: bool,
) -> IoStep {
    std::future::poll_fn(|cx| {
        if write && let std::task::Poll::Ready(r) = poll_write_out(io, ws, cx) {
            return std::task::Poll::Ready(IoStep::Wrote(r));
        }
        match read {
            Some(true) => {
                let mut stack = [0u8; READ_QUIET];
                let mut rb = tokio::io::ReadBuf::new(&mut stack);
                match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                    std::task::Poll::Ready(r) => {
                        wire.extend_from_slice(rb.filled());
                        std::task::Poll::Ready(IoStep::Read(r.map(|()| rb.filled().len())))
                    }
                    std::task::Poll::Pending => std::task::Poll::Pending,
                }
            }
            Some(false) => std::pin::pin!(io.read_buf(&mut *wire))
                .poll(cx)
                .map(IoStep::Read),
            None => std::task::Poll::Pending,
        }
    })
    .await
}

/// Decodes WebSocket messages from `wire` and feeds their payloads to the STOMP session.
/// Returns `false` on a WebSocket protocol error.
fn on_wire_bytes(
    ws: &mut Connection,
    wire: &mut BytesMut,
    stomp: &mut BytesMut,
    conn: &mut StompConnection,
    shared: &Shared,
) -> bool {
    loop {
        match ws.receive(wire) {
            Ok(None) => return true,
            Ok(Some(Message::Text(t))) => {
                feed(stomp, t.as_bytes(), conn, shared);
            }
            Ok(Some(Message::Binary(b))) => {
                feed(stomp, &b, conn, shared);
            }
            Ok(Some(Message::Ping(_) | Message::Pong(_))) => {
                conn.note_activity(Instant::now());
            }
            Ok(Some(Message::Close(_))) => {
                // The client is leaving (its Close is answered by the codec).
                conn.transport_closed();
                return true;
            }
            Err(e) => {
                debug!(session = conn.id(), error = %e, "WebSocket protocol error");
                conn.transport_closed();
                return false;
            }
        }
    }
}

fn feed(stomp: &mut BytesMut, payload: &[u8], conn: &mut StompConnection, shared: &Shared) {
    stomp.extend_from_slice(payload);
    conn.receive(stomp, Instant::now(), &shared.config);
}

/// The most a quiet connection reads at once, through a stack buffer.
const READ_QUIET: usize = crate::transport::READ_MIN;

/// Writes the front of the connection's out queue: its contiguous part as one write, else up
/// to 64 slices vectored (the iovec array is built here, on the stack: held across an `.await`
/// it would be 1 KiB more in every connection's task, idle or not).
fn poll_write_out<W: AsyncWrite + Unpin>(
    w: &mut W,
    ws: &mut Connection,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<std::io::Result<usize>> {
    let r = if let Some(bytes) = ws.out().contiguous() {
        Pin::new(&mut *w).poll_write(cx, bytes)
    } else {
        let mut slices = [IoSlice::new(&[]); 64];
        let k = ws.out().io_slices(&mut slices);
        Pin::new(&mut *w).poll_write_vectored(cx, &slices[..k])
    };
    std::task::Poll::Ready(match std::task::ready!(r) {
        Ok(0) => Err(std::io::ErrorKind::WriteZero.into()),
        Ok(n) => {
            ws.out().consume(n);
            Ok(n)
        }
        Err(e) => Err(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connection task's future is most of what an idle connection costs (issue 13: 4 KiB
    /// per idle subscribed connection): it was 2,144 bytes (debug build) before the socket was
    /// kept unsplit, the timer boxed, the shutdown signal checked instead of awaited, the parser
    /// dropped between frames, the broker session slimmed and the start-up arguments boxed
    /// (1,416 since). Of what is left, the ws `Connection` is 616 bytes and the
    /// `StompConnection` ~460.
    #[tokio::test]
    async fn idle_connection_task_stays_small() {
        let mut c = crate::config::Config::default();
        c.listeners.http = "127.0.0.1:0".parse().unwrap();
        c.listeners.stomp = crate::config::Listen::Off;
        let server = crate::server::Server::bind(c).await.unwrap();
        let shared = server.shared().clone();
        let slot = shared.try_open(Transport::WebSocket).unwrap();
        let (io, _peer) = tokio::io::duplex(64);
        let peer = "127.0.0.1:1".parse().unwrap();
        let start = Box::new(Start {
            peer,
            versions: None,
            deflate: None,
            shared: shared.clone(),
            slot,
            token: None,
        });
        let task = run(io, start);
        let size = std::mem::size_of_val(&task);
        assert!(
            size <= 1450,
            "the WebSocket connection task grew to {size} bytes"
        );
        let conn = std::mem::size_of::<StompConnection>();
        assert!(conn <= 480, "StompConnection grew to {conn} bytes");
    }
}
