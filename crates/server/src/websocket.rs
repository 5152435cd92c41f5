//! STOMP over WebSocket: the upgrade on the HTTP listener (origin check, subprotocol
//! negotiation) and the per-connection loop over `switchboard-ws`'s sans-IO [`Connection`].
//!
//! Inbound, text and binary messages are appended to one per-connection buffer that the STOMP
//! parser reads, so a message may hold several frames and a frame may span several messages.
//! Outbound, each STOMP frame (and each heart-beat EOL) is one WebSocket message — text when it
//! is UTF-8, binary otherwise — which is what STOMP clients such as @stomp/stompjs expect.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
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
use crate::transport::{FrameSink, ReadSizer, earliest, pull, release_if_empty, sleep_until_opt};

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
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                run(
                    TokioIo::new(upgraded),
                    peer,
                    versions,
                    deflate,
                    shared,
                    slot,
                    token,
                )
                .await;
            }
            Err(e) => debug!(%peer, error = %e, "WebSocket upgrade did not complete"),
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

/// Runs one upgraded connection until it closes.
async fn run<S>(
    io: S,
    peer: SocketAddr,
    versions: Option<Vec<Version>>,
    deflate: Option<DeflateParams>,
    shared: Arc<Shared>,
    slot: ConnectionSlot,
    token: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
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
    let mut shutdown = shared.shutdown_signal();
    let mut shutting_down = false;
    let mut read_open = true;
    let mut deadline: Option<Instant> = None;
    let grace = shared.config.limits.shutdown_grace();
    loop {
        let now = Instant::now();
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
        let timer = earliest(session_timer, deadline);
        let want_read = read_open && sink.ws.state() != CloseState::Closed;
        // A quiet connection with nothing buffered reads through the stack (`read_wire`), so
        // it holds no read buffer while it waits.
        let quiet = wire.is_empty() && sizer.is_min();
        let room = if !want_read {
            0
        } else if quiet {
            READ_QUIET
        } else {
            sizer.before_read(&mut wire)
        };
        tokio::select! {
            r = read_wire(&mut rd, &mut wire, quiet), if want_read => match r {
                Ok(0) => {
                    read_open = false;
                    if sink.ws.state() == CloseState::Open {
                        debug!(%peer, session = conn.id(), "peer closed without a Close frame");
                        break;
                    }
                }
                Ok(n) => {
                    sizer.after_read(n, room);
                    shared.metrics.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    if !on_wire_bytes(&mut sink.ws, &mut wire, &mut stomp, &mut conn) {
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
                Err(e) => {
                    debug!(%peer, session = conn.id(), error = %e, "read failed");
                    break;
                }
            },
            r = write_out(&mut sink.ws, &mut wr), if !sink.ws.out().is_empty() => match r {
                Ok(n) => {
                    shared.metrics.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    // All written: keep no write buffer while waiting for the next frame.
                    sink.ws.out().release_idle();
                }
                Err(e) => {
                    debug!(%peer, session = conn.id(), error = %e, "write failed");
                    break;
                }
            },
            _ = signal.notified() => {}
            _ = sleep_until_opt(timer) => {
                let now = Instant::now();
                if deadline.is_some_and(|d| d <= now) {
                    debug!(%peer, session = conn.id(), "closing handshake or flush timed out");
                    break;
                }
                conn.handle_timeout(now);
            }
            _ = shutdown.wait(), if !shutting_down => {
                shutting_down = true;
                let by = Instant::now() + grace;
                deadline = Some(deadline.map_or(by, |d| d.min(by)));
            }
        }
    }
    conn.transport_closed();
    let _ = tokio::time::timeout(Duration::from_millis(200), wr.shutdown()).await;
    drop(conn);
    drop(slot);
}

/// Decodes WebSocket messages from `wire` and feeds their payloads to the STOMP session.
/// Returns `false` on a WebSocket protocol error.
fn on_wire_bytes(
    ws: &mut Connection,
    wire: &mut BytesMut,
    stomp: &mut BytesMut,
    conn: &mut StompConnection,
) -> bool {
    loop {
        match ws.receive(wire) {
            Ok(None) => return true,
            Ok(Some(Message::Text(t))) => {
                feed(stomp, t.as_bytes(), conn);
            }
            Ok(Some(Message::Binary(b))) => {
                feed(stomp, &b, conn);
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

fn feed(stomp: &mut BytesMut, payload: &[u8], conn: &mut StompConnection) {
    stomp.extend_from_slice(payload);
    conn.receive(stomp, Instant::now());
}

/// The most a quiet connection reads at once, through a stack buffer.
const READ_QUIET: usize = crate::transport::READ_MIN;

/// Reads into `wire`; with `quiet`, through a stack buffer first, so a connection waiting for
/// its next message reserves no heap memory for the read (the bytes are copied once they come).
async fn read_wire<R: AsyncRead + Unpin>(
    rd: &mut R,
    wire: &mut BytesMut,
    quiet: bool,
) -> std::io::Result<usize> {
    if !quiet {
        return rd.read_buf(wire).await;
    }
    std::future::poll_fn(|cx| {
        // On the stack only during the poll: never part of the task's state.
        let mut stack = [0u8; READ_QUIET];
        let mut rb = tokio::io::ReadBuf::new(&mut stack);
        std::task::ready!(std::pin::Pin::new(&mut *rd).poll_read(cx, &mut rb))?;
        wire.extend_from_slice(rb.filled());
        std::task::Poll::Ready(Ok(rb.filled().len()))
    })
    .await
}

async fn write_out<W: AsyncWrite + Unpin>(
    ws: &mut Connection,
    w: &mut W,
) -> std::io::Result<usize> {
    // The iovec array is built inside each poll, on the stack: held across an `.await` it would
    // be 1 KiB more in every connection's task, idle or not.
    let n = std::future::poll_fn(|cx| {
        if let Some(bytes) = ws.out().contiguous() {
            return std::pin::Pin::new(&mut *w).poll_write(cx, bytes);
        }
        let mut slices = [IoSlice::new(&[]); 64];
        let k = ws.out().io_slices(&mut slices);
        std::pin::Pin::new(&mut *w).poll_write_vectored(cx, &slices[..k])
    })
    .await?;
    if n == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    ws.out().consume(n);
    Ok(n)
}
