//! The `websocket` transport (`/<server>/<session>/websocket`: SockJS frames, each one text
//! message) and the raw `/websocket` endpoint (plain messages). One task per socket moves
//! frames between the session and the [`switchboard_ws`] stream; it sends the heartbeat
//! itself (websocket sessions need no timer task and no disconnect delay: the session ends
//! with its socket).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use switchboard_ws::upgrade::{UpgradedStream, error_response, request_from_http, upgrade_with};
use switchboard_ws::{CloseCode, Limits, Message, ServerConfig, StreamConfig};

use super::{forbidden, full, method_not_allowed, origin_allowed, unavailable};
use crate::endpoint::{Cell, Shared};
use crate::json;
use crate::session::{FrameKind, Framing};
use crate::{Body, Transport};

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
    let stream_config = StreamConfig::default()
        .connection(switchboard_ws::Config::default().limits(limits))
        .max_send_buffer(ep.config.max_queued_bytes.max(64 << 10));
    let (resp, fut) =
        match upgrade_with::<_, Body>(req, &parsed, &ServerConfig::default(), stream_config) {
            Ok(x) => x,
            Err(e) => return error_response(&e),
        };
    let mut parts = http::Request::new(()).into_parts().0;
    parts.method = req.method().clone();
    parts.uri = req.uri().clone();
    parts.version = req.version();
    parts.headers = req.headers().clone();
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
    tokio::spawn(async move {
        let Ok(ws) = fut.await else { return };
        let Some(cell) = ep.open_ws(&id, transport, framing, &parts, peer) else {
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
async fn run(cell: &Arc<Cell>, mut ws: UpgradedStream, framing: Framing) {
    let mut sleep = Box::pin(tokio::time::sleep_until(tokio::time::Instant::now()));
    loop {
        let deadline = cell.poll_timeout();
        if let Some(d) = deadline {
            sleep.as_mut().reset(tokio::time::Instant::from_std(d));
        }
        tokio::select! {
            m = async {
                poll_fn(|cx| cell.poll_incoming_room(cx)).await;
                ws.recv().await
            } => {
                let text = match m {
                    None | Some(Err(_)) => return,
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
            () = &mut sleep, if deadline.is_some() => {
                cell.handle_timeout();
            }
        }
    }
}
