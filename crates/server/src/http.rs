//! The HTTP listener: the demo page, `/healthz`, `/metrics`, and the STOMP endpoints.
//!
//! Routing of an endpoint path such as `/chat`: a request to exactly `/chat` with an
//! `Upgrade: websocket` header is STOMP over WebSocket ([`crate::websocket`]); every other
//! request to `/chat` or below it (`GET /chat` → `Welcome to SockJS!`, `/chat/info`,
//! `/chat/<server>/<session>/xhr_streaming`, the raw `/chat/websocket`, ...) goes to the
//! endpoint's SockJS service ([`crate::sockjs`]). With `[sockjs] enabled = false` only the
//! exact path answers, as a WebSocket endpoint.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use crate::server::{ConnectionSlot, Shared};

/// The response body type of every HTTP answer: fixed bodies and SockJS streams alike.
pub(crate) type Body = switchboard_sockjs::Body;

/// A fixed response body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// The connection slot, handed from the HTTP connection to the WebSocket task on upgrade.
pub(crate) type SlotCell = Arc<Mutex<Option<ConnectionSlot>>>;

pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serves one plain HTTP connection (and hands WebSocket upgrades to their own task).
pub(crate) async fn serve_plain(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    slot: ConnectionSlot,
) {
    serve_io(stream, peer, shared, slot).await
}

/// Serves one HTTPS connection: the TLS handshake, then HTTP as [`serve_plain`].
pub(crate) async fn serve_tls(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    slot: ConnectionSlot,
) {
    if let Some(s) = crate::server::accept_tls(&acceptor, stream, peer, &shared).await {
        serve_io(s, peer, shared, slot).await;
    }
}

async fn serve_io<S>(io: S, peer: SocketAddr, shared: Arc<Shared>, slot: ConnectionSlot)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cell: SlotCell = Arc::new(Mutex::new(Some(slot)));
    let svc_shared = shared.clone();
    let svc_cell = cell.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let shared = svc_shared.clone();
        let cell = svc_cell.clone();
        async move { Ok::<_, Infallible>(route(req, peer, shared, cell).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(shared.config.limits.connect_timeout())
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut signal = shared.shutdown_signal();
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = signal.wait() => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
    // If no upgrade took the slot, dropping the cell here releases it.
    drop(cell);
}

/// Whether the request asks for a WebSocket (`Upgrade: websocket`, any case, any position).
fn wants_websocket(req: &Request<Incoming>) -> bool {
    req.headers()
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
}

async fn route(
    req: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    cell: SlotCell,
) -> Response<Body> {
    shared.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path();
    let ws_path = shared.config.websocket.paths.iter().any(|p| p == path);
    if ws_path && (wants_websocket(&req) || shared.sockjs.is_empty()) {
        return crate::websocket::upgrade(req, peer, shared, cell);
    }
    if let Some(endpoint) = shared.sockjs.iter().find(|e| e.matches(path)) {
        let endpoint = endpoint.clone();
        return endpoint.handle(req, Some(peer)).await;
    }
    if let Some(name) = path.strip_prefix("/lib/") {
        return match req.method() {
            &Method::GET | &Method::HEAD => {
                crate::demo_page::client_library(&shared.config, name).await
            }
            _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        };
    }
    match (req.method(), path) {
        (&Method::GET | &Method::HEAD, "/" | "/index.html") => match &shared.page {
            Some(page) => crate::demo_page::response(page.clone()),
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
        // Browsers ask for it with every page; an empty answer keeps their consoles quiet.
        (&Method::GET | &Method::HEAD, "/favicon.ico") if shared.page.is_some() => {
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        (&Method::GET | &Method::HEAD, "/healthz") => {
            if shared.shutdown_signal().is_down() {
                return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
            }
            #[cfg(feature = "cluster")]
            if let Some(c) = &shared.cluster {
                let h = c.health();
                if !h.up {
                    let reason = h.reason.unwrap_or_default().replace(['\r', '\n'], " ");
                    let mut r = Response::new(full(format!("backend down: {reason}\n")));
                    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    return r;
                }
            }
            text(StatusCode::OK, "ok\n")
        }
        (&Method::GET, "/metrics") => {
            let body = crate::render_metrics(&shared);
            let mut r = Response::new(full(body));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        (_, "/healthz" | "/metrics") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}
