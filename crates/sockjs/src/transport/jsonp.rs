//! `jsonp` polling (GET `?c=<callback>`) and `jsonp_send` (POST, a form field `d` or a raw
//! body).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::receiver::Wrap;
use super::xhr::payload_error;
use super::{
    CT_JS, callback, check_method, forbidden, form_value, full, not_found, origin_allowed,
    read_body, receiving, set_cookie, set_no_cache,
};
use crate::endpoint::Shared;
use crate::json::{self, DecodeError};
use crate::{Body, Transport};

/// GET `.../jsonp`.
pub(crate) fn receive<B>(
    ep: &Arc<Shared>,
    req: http::Request<B>,
    session: &str,
    peer: Option<SocketAddr>,
) -> Response<Body> {
    if let Some(r) = check_method(ep, req.method(), req.headers(), &Method::GET, None, "GET") {
        return r;
    }
    let cb = match callback(req.uri()) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    receiving(
        ep,
        req,
        session,
        Transport::JsonpPolling,
        Wrap::Jsonp(cb),
        None,
        CT_JS,
        false,
        peer,
    )
}

/// POST `.../jsonp_send`: 200 `ok`. A form body (`application/x-www-form-urlencoded`) carries
/// the payload in `d`; any other body is the payload itself.
pub(crate) async fn send<B>(
    ep: &Arc<Shared>,
    req: http::Request<B>,
    session: &str,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(r) = check_method(ep, req.method(), req.headers(), &Method::POST, None, "POST") {
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
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let decoded = if form {
        let text = String::from_utf8_lossy(&body);
        match form_value(&text, "d", true) {
            Some(d) if !d.is_empty() => json::decode_array(d.as_bytes()),
            _ => Err(DecodeError::PayloadExpected),
        }
    } else {
        json::decode_array(&body)
    };
    let msgs = match decoded {
        Ok(m) => m,
        Err(e) => return payload_error(e),
    };
    let Some(cell) = ep.find(session) else {
        return not_found();
    };
    cell.receive(msgs);
    let mut r = Response::new(full(Bytes::from_static(b"ok")));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    set_no_cache(h);
    set_cookie(h, &parts.headers, ep);
    r
}
