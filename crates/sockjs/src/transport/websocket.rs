//! The `websocket` transport (`/<server>/<session>/websocket`: SockJS frames, each one text
//! message) and the raw `/websocket` endpoint (plain messages). One task per socket moves
//! frames between the session and the [`switchboard_ws`] stream; it sends the heartbeat
//! itself (websocket sessions need no timer task and no disconnect delay: the session ends
//! with its socket).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use switchboard_ws::upgrade::{error_response, request_from_http};
use switchboard_ws::{
    CloseCode, Limits, Message, Role, ServerConfig, StreamConfig, WebSocketStream,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use super::{forbidden, full, method_not_allowed, origin_allowed, unavailable};
use crate::endpoint::{Cell, Shared};
use crate::json;
use crate::session::{FrameKind, Framing};
use crate::{Body, Transport};

/// Read size of a session's socket: SockJS messages are small and most sessions idle, so reads
/// start small (they grow for a large message and shrink back when idle).
const READ_BUFFER: usize = 512;

/// How long a failing socket may take to write its Close frame.
const FLUSH_ON_ERROR: std::time::Duration = std::time::Duration::from_secs(5);

/// The close a client gets for a message that is not valid SockJS framing.
const BROKEN_FRAMING: (u16, &str) = (3000, "Broken framing.");

/// GET with `Upgrade: websocket`.
pub(crate) fn handle<B>(
    ep: &Arc<Shared>,
    req: &mut http::Request<B>,
    session: &str,
    transport: Transport,
    peer: Option<SocketAddr>,
) -> Response<Body> {
    if req.method() != Method::GET {
        return method_not_allowed("GET");
    }
    if !origin_allowed(ep, req.headers()) {
        return forbidden();
    }
    let parsed = match request_from_http(req) {
        Ok(p) => p,
        Err(e) if e.status() == 400 => {
            let mut r = Response::new(full("Not a valid websocket request"));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=UTF-8"),
            );
            return r;
        }
        Err(e) => return error_response(&e),
    };
    if !ep.has_room() {
        return unavailable();
    }
    let max = ep.config.max_message_size;
    let limits = Limits {
        max_frame_size: max,
        max_message_size: max,
        ..Limits::default()
    };
    let mut stream_config = StreamConfig::default()
        .connection(switchboard_ws::Config::default().limits(limits))
        .max_send_buffer(ep.config.max_queued_bytes.max(64 << 10));
    stream_config.read_buffer_size = READ_BUFFER;
    // The handshake as `switchboard_ws::upgrade::upgrade_with` does it, but the upgraded
    // connection is wrapped in `Lingering` (see there) before it becomes a stream.
    let accepted = parsed.accept(&ServerConfig::default());
    let mut resp = Response::new(super::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (k, v) in accepted.headers() {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    let on_upgrade = hyper::upgrade::on(&mut *req);
    // The session's copy of the request head, sharing no memory with hyper's read buffer.
    let parts = crate::endpoint::request_head(req);
    let framing = if transport == Transport::RawWebSocket {
        Framing::Raw
    } else {
        Framing::SockJs
    };
    let id = if session.is_empty() {
        // Raw websocket sessions get a generated id.
        format!("{:016x}", rand::random::<u64>())
    } else {
        session.to_owned()
    };
    let ep = ep.clone();
    let deflate = accepted.deflate;
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        // Everything the session does not need past its start (the endpoint handle, the id,
        // the request head, now the session's) ends with this block, so the task, which lives
        // as long as the session, does not carry it.
        let (cell, ws) = {
            let io = Lingering(Some(TokioIo::new(upgraded)));
            let ws = WebSocketStream::from_raw(
                io,
                Role::Server,
                stream_config,
                deflate,
                BytesMut::new(),
            );
            (ep.open_ws(&id, transport, framing, parts, peer), ws)
        };
        let Some(cell) = cell else {
            let mut ws = ws;
            let _ = ws
                .close(CloseCode::TRY_AGAIN_LATER, "Too many sessions")
                .await;
            return;
        };
        run(&cell, ws, framing).await;
        cell.finish_ws();
    });
    resp
}

/// A close code a WebSocket Close frame may carry (others become 1000).
fn ws_close_code(code: u16) -> CloseCode {
    match code {
        1000..=1003 | 1007..=1011 | 3000..=4999 => CloseCode(code),
        _ => CloseCode::NORMAL,
    }
}

/// Moves frames until either side closes.
async fn run(cell: &Arc<Cell>, mut ws: WebSocketStream<Lingering>, framing: Framing) {
    // The heartbeat timer. Every frame sent moves the session's heartbeat deadline later; the
    // timer is not re-armed for that (no timer-wheel work per message): it fires at the old
    // deadline, `handle_timeout` finds nothing due, and it is armed again at the new one. It is
    // re-armed early only when the deadline moves earlier.
    let mut sleep = Box::pin(tokio::time::sleep_until(tokio::time::Instant::now()));
    let mut armed: Option<std::time::Instant> = None;
    loop {
        let deadline = cell.poll_timeout();
        if let Some(d) = deadline
            && armed.is_none_or(|a| d < a)
        {
            sleep.as_mut().reset(tokio::time::Instant::from_std(d));
            armed = Some(d);
        }
        tokio::select! {
            m = async {
                poll_fn(|cx| cell.poll_incoming_room(cx)).await;
                ws.recv().await
            } => {
                let text = match m {
                    None => return,
                    Some(Err(e)) => {
                        // A protocol error (e.g. a message over `max_message_size`): the
                        // stream queued its Close (1009, 1002, ...); write it out, bounded.
                        tracing::debug!(session = %cell.id, error = %e, "sockjs websocket: error");
                        let _ = tokio::time::timeout(FLUSH_ON_ERROR, ws.flush()).await;
                        return;
                    }
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(_))) => {
                        let (code, reason) = if framing == Framing::Raw {
                            (CloseCode::UNSUPPORTED_DATA, "Text messages only")
                        } else {
                            (CloseCode(BROKEN_FRAMING.0), BROKEN_FRAMING.1)
                        };
                        cell.close(code.0, reason);
                        let _ = ws.close(code, reason).await;
                        return;
                    }
                    Some(Ok(_)) => continue,
                };
                if framing == Framing::Raw {
                    cell.receive(vec![text.as_str().to_owned()]);
                    continue;
                }
                match json::decode_ws_message(text.as_bytes()) {
                    Ok(msgs) => cell.receive(msgs),
                    Err(e) => {
                        tracing::debug!(session = %cell.id, error = %e, "sockjs websocket: broken framing");
                        cell.close(BROKEN_FRAMING.0, BROKEN_FRAMING.1);
                        let _ = ws.close(CloseCode(BROKEN_FRAMING.0), BROKEN_FRAMING.1).await;
                        return;
                    }
                }
            }
            f = poll_fn(|cx| cell.poll_frame(cx)) => {
                let Some(f) = f else {
                    let _ = ws.close(CloseCode::GOING_AWAY, "Session ended").await;
                    return;
                };
                if f.kind == FrameKind::Close {
                    let (code, reason) = {
                        let g = cell.lock();
                        g.session
                            .close_info()
                            .map(|c| (c.code, c.reason.clone()))
                            .unwrap_or((1000, String::new()))
                    };
                    if framing == Framing::SockJs {
                        let _ = ws.feed(Message::Text(f.bytes.try_into().unwrap_or_default())).await;
                    }
                    let _ = ws.close(ws_close_code(code), &reason).await;
                    return;
                }
                let Ok(text) = f.bytes.try_into() else { return };
                if ws.send(Message::Text(text)).await.is_err() {
                    return;
                }
            }
            () = &mut sleep, if armed.is_some() => {
                armed = None;
                cell.handle_timeout();
            }
        }
    }
}

/// How long a closed socket keeps being read (and discarded) before it is dropped.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// The upgraded connection. When dropped while the peer may still be sending (we closed first,
/// e.g. 1009 for a message over the limit, mid-message), closing a socket with unread input
/// makes the kernel send RST, which can destroy our Close frame before the peer reads it. So
/// on drop the socket is handed to a task that reads and discards until the peer closes, for
/// at most [`LINGER`]; after a normal close handshake that ends at once.
pub(crate) struct Lingering(Option<TokioIo<hyper::upgrade::Upgraded>>);

fn gone() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::NotConnected)
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.0.as_mut() {
            Some(io) => Pin::new(io).poll_read(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.0.as_mut() {
            Some(io) => Pin::new(io).poll_write(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.0.as_mut() {
            Some(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.0.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.0.as_mut() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.0.as_mut() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(mut io) = self.0.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(LINGER, async {
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        });
    }
}
