//! `xhr` (long polling), `xhr_streaming` and `xhr_send`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::receiver::Wrap;
use super::{
    CT_JS, check_method, empty, forbidden, not_found, origin_allowed, read_body, receiving,
    server_error, set_cookie, set_cors, set_no_cache,
};
use crate::endpoint::Shared;
use crate::json::{self, DecodeError};
use crate::{Body, Transport};

/// The `xhr_streaming` prelude: 2048 `h` and a newline, so browsers and proxies that buffer
/// the first bytes of a response pass the frames on at once.
static STREAMING_PRELUDE: [u8; 2049] = {
    let mut p = [b'h'; 2049];
    p[2048] = b'\n';
    p
};

/// POST `.../xhr` and `.../xhr_streaming`.
pub(crate) fn receive<B>(
    ep: &Arc<Shared>,
    req: http::Request<B>,
    session: &str,
    streaming: bool,
    peer: Option<SocketAddr>,
) -> Response<Body> {
    if let Some(r) = check_method(
        ep,
        req.method(),
        req.headers(),
        &Method::POST,
        Some("OPTIONS, POST"),
        "OPTIONS, POST",
    ) {
        return r;
    }
    let (transport, prelude) = if streaming {
        (
            Transport::XhrStreaming,
            Some(Bytes::from_static(&STREAMING_PRELUDE)),
        )
    } else {
        (Transport::XhrPolling, None)
    };
    receiving(
        ep,
        req,
        session,
        transport,
        Wrap::Newline,
        prelude,
        CT_JS,
        true,
        peer,
    )
}

/// The 500 for a payload that does not decode.
pub(crate) fn payload_error(e: DecodeError) -> Response<Body> {
    match e {
        DecodeError::PayloadExpected => server_error("Payload expected."),
        DecodeError::Broken => server_error("Broken JSON encoding."),
    }
}

/// POST `.../xhr_send`: a JSON array of strings; 204. The payload is validated before the
/// session is looked up (a bad payload to an unknown session is 500, a good one 404). The
/// body's content type is not looked at.
pub(crate) async fn send<B>(
    ep: &Arc<Shared>,
    req: http::Request<B>,
    session: &str,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(r) = check_method(
        ep,
        req.method(),
        req.headers(),
        &Method::POST,
        Some("OPTIONS, POST"),
        "OPTIONS, POST",
    ) {
        return r;
    }
    let (parts, body) = req.into_parts();
    if !origin_allowed(ep, &parts.headers) {
        return forbidden();
    }
    let body = match read_body(body, ep.config.max_message_size).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let msgs = match json::decode_array(&body) {
        Ok(m) => m,
        Err(e) => return payload_error(e),
    };
    let Some(cell) = ep.find(session) else {
        return not_found();
    };
    cell.receive(msgs);
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    set_no_cache(h);
    set_cors(h, &parts.headers);
    set_cookie(h, &parts.headers, ep);
    r
}
