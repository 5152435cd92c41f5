//! Upgrading a hyper 1.x server request (feature `hyper`).
//!
//! ```no_run
//! use http_body_util::Empty;
//! use bytes::Bytes;
//! use switchboard_ws::{Message, ServerConfig, StreamConfig};
//!
//! async fn handle(mut req: http::Request<hyper::body::Incoming>)
//!     -> Result<http::Response<Empty<Bytes>>, std::convert::Infallible>
//! {
//!     match switchboard_ws::upgrade::upgrade(&mut req, &ServerConfig::default(), StreamConfig::default()) {
//!         Ok((response, ws)) => {
//!             tokio::spawn(async move {
//!                 let Ok(mut ws) = ws.await else { return };
//!                 while let Some(Ok(m)) = ws.recv().await {
//!                     if m.is_data() && ws.send(m).await.is_err() { break; }
//!                 }
//!             });
//!             Ok(response)
//!         }
//!         Err(e) => Ok(switchboard_ws::upgrade::error_response(&e)),
//!     }
//! }
//! ```

use crate::handshake::{HandshakeError, ServerConfig, UpgradeRequest};
use crate::stream::{StreamConfig, WebSocketStream};
use crate::{Error, Role};
use bytes::BytesMut;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;

/// The stream type an upgraded hyper connection gives.
pub type UpgradedStream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Resolves to the stream once hyper hands over the upgraded connection.
pub type UpgradeFuture =
    Pin<Box<dyn Future<Output = Result<UpgradedStream, Error>> + Send + 'static>>;

/// Validates `req` as a WebSocket upgrade and negotiates with `server`.
///
/// On success returns the `101 Switching Protocols` response to hand back to hyper, and a future
/// that resolves to the stream once hyper has sent the response and released the connection
/// (spawn it; it never completes if the response is not returned to hyper). On failure the
/// error's [`HandshakeError::status`] is the status to answer with ([`error_response`]).
pub fn upgrade<B, R: Default>(
    req: &mut http::Request<B>,
    server: &ServerConfig,
    config: StreamConfig,
) -> Result<(http::Response<R>, UpgradeFuture), HandshakeError> {
    let parsed = request_from_http(req)?;
    upgrade_with(req, &parsed, server, config)
}

/// Like [`upgrade`] for a request already validated with [`request_from_http`] (to check
/// `Origin`, path or cookies in between).
pub fn upgrade_with<B, R: Default>(
    req: &mut http::Request<B>,
    parsed: &UpgradeRequest,
    server: &ServerConfig,
    config: StreamConfig,
) -> Result<(http::Response<R>, UpgradeFuture), HandshakeError> {
    let acc = parsed.accept(server);
    let mut resp = http::Response::builder().status(http::StatusCode::SWITCHING_PROTOCOLS);
    for (k, v) in acc.headers() {
        resp = resp.header(k, v);
    }
    let resp = resp
        .body(R::default())
        .map_err(|_| HandshakeError::Malformed("response header"))?;
    let on = hyper::upgrade::on(req);
    let fut = async move {
        let upgraded = on.await.map_err(|e| Error::Io(std::io::Error::other(e)))?;
        let ws = WebSocketStream::from_raw(
            TokioIo::new(upgraded),
            Role::Server,
            config,
            acc.deflate,
            BytesMut::new(),
        );
        Ok(ws.with_protocol(acc.protocol))
    };
    Ok((resp, Box::pin(fut)))
}

/// Validates the upgrade headers of an `http::Request` (HTTP/1.1 only).
pub fn request_from_http<B>(req: &http::Request<B>) -> Result<UpgradeRequest, HandshakeError> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let http11 = req.version() == http::Version::HTTP_11;
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()));
    UpgradeRequest::from_parts(req.method().as_str(), path, http11, headers)
}

/// An `http::Response` for a handshake error (426 carries `Sec-WebSocket-Version: 13`).
pub fn error_response<R: Default>(e: &HandshakeError) -> http::Response<R> {
    let mut b = http::Response::builder().status(e.status());
    if e.status() == 426 {
        b = b
            .header("sec-websocket-version", "13")
            .header("upgrade", "websocket");
    }
    b.body(R::default()).unwrap_or_default()
}
