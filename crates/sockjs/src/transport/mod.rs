//! The hyper side: URL routing under the prefix, the headers every transport shares (caching,
//! CORS, the JSESSIONID cookie), error responses, and one module per transport.

pub(crate) mod eventsource;
pub(crate) mod htmlfile;
pub(crate) mod jsonp;
pub(crate) mod receiver;
pub(crate) mod static_pages;
pub(crate) mod websocket;
pub(crate) mod xhr;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Frame;

use crate::endpoint::{Opened, Shared};
use crate::transport::receiver::{ReceiverBody, Wrap};
use crate::{Body, Transport};

/// `Cache-Control` of every response that must not be cached.
pub(crate) const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";
/// One year, the cache lifetime of preflights and the iframe page.
pub(crate) const ONE_YEAR: u64 = 31_536_000;
const CT_TEXT: &str = "text/plain; charset=UTF-8";
pub(crate) const CT_JS: &str = "application/javascript; charset=UTF-8";

/// A fixed body.
pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(b.into()).boxed()
}

/// An empty body.
pub(crate) fn empty() -> Body {
    http_body_util::Empty::new().boxed()
}

/// A body of a few chunks, each written as one chunk (a prelude, then one frame).
pub(crate) struct Chunks(VecDeque<Bytes>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

pub(crate) fn chunks(c: impl IntoIterator<Item = Bytes>) -> Body {
    Chunks(c.into_iter().collect()).boxed()
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CT_TEXT));
    r
}

/// 404 for unknown URLs, disabled transports and unknown sessions.
pub(crate) fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "404 Error: Page not found\n")
}

/// 405 with `Allow`, no body and no content type.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// 403 for a request the origin policy refuses.
pub(crate) fn forbidden() -> Response<Body> {
    text(StatusCode::FORBIDDEN, "Origin not allowed\n")
}

/// 503 when `max_sessions` is reached.
pub(crate) fn unavailable() -> Response<Body> {
    text(StatusCode::SERVICE_UNAVAILABLE, "Too many sessions\n")
}

/// 500 with one of the protocol's error texts.
pub(crate) fn server_error(msg: &'static str) -> Response<Body> {
    text(StatusCode::INTERNAL_SERVER_ERROR, msg)
}

/// An RFC 9110 IMF-fixdate.
pub(crate) fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WD[days.rem_euclid(7) as usize],
        d,
        MON[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `Cache-Control: no-store, ...`.
pub(crate) fn set_no_cache(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
}

/// One year of public caching: `Cache-Control`, `Expires`.
pub(crate) fn set_cache_forever(h: &mut HeaderMap) {
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000"),
    );
    let expires = http_date(SystemTime::now() + Duration::from_secs(ONE_YEAR));
    if let Ok(v) = HeaderValue::from_str(&expires) {
        h.insert(header::EXPIRES, v);
    }
}

/// CORS as sockjs-node does: echo `Origin` (with credentials and `Vary: Origin`), `*`
/// without one; echo `Access-Control-Request-Headers` when present and non-empty.
pub(crate) fn set_cors(h: &mut HeaderMap, req: &HeaderMap) {
    match req.get(header::ORIGIN) {
        Some(o) => {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            h.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        None => {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
    if let Some(v) = req.get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        && !v.is_empty()
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
    }
}

/// `Set-Cookie: JSESSIONID=<incoming or dummy>; path=/` when `cookie_needed`.
pub(crate) fn set_cookie(h: &mut HeaderMap, req: &HeaderMap, ep: &Shared) {
    if !ep.config.cookie_needed {
        return;
    }
    let incoming = req
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("JSESSIONID="))
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b';'));
    let value = format!("JSESSIONID={}; path=/", incoming.unwrap_or("dummy"));
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(header::SET_COOKIE, v);
    }
}

/// A CORS preflight answer: 204, one year of caching, the allowed methods.
pub(crate) fn preflight(req: &HeaderMap, methods: &'static str, ep: &Shared) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    set_cache_forever(h);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("31536000"),
    );
    set_cors(h, req);
    set_cookie(h, req, ep);
    r
}

/// Decodes `%XX` escapes (and `+` as a space when `plus` is set); malformed escapes stay as
/// they are. Invalid UTF-8 is replaced.
pub(crate) fn percent_decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first value of `name` in a query string or form body, percent-decoded.
pub(crate) fn form_value(query: &str, name: &str, plus: bool) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(v, plus))
    })
}

/// The JSONP/htmlfile callback (`c`, or `callback`): `Err` is the 500 to answer.
pub(crate) fn callback(uri: &http::Uri) -> Result<Box<str>, Box<Response<Body>>> {
    let q = uri.query().unwrap_or("");
    let cb = form_value(q, "c", false).or_else(|| form_value(q, "callback", false));
    match cb {
        None => Err(Box::new(server_error("\"callback\" parameter required"))),
        Some(c) if c.is_empty() => Err(Box::new(server_error("\"callback\" parameter required"))),
        Some(c)
            if c.len() <= 32
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
        {
            Ok(c.into())
        }
        Some(_) => Err(Box::new(server_error("invalid \"callback\" parameter"))),
    }
}

/// Reads a request body of at most `limit` bytes: `Err` is 413 (too large) or 400.
pub(crate) async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, Response<Body>>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(text(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large.\n"))
        }
        Err(_) => Err(text(StatusCode::BAD_REQUEST, "Broken request body.\n")),
    }
}

/// Whether the origin policy allows this request.
pub(crate) fn origin_allowed(ep: &Shared, req: &HeaderMap) -> bool {
    match &ep.config.origin_policy {
        None => true,
        Some(p) => {
            let origin = req.get(header::ORIGIN).and_then(|v| v.to_str().ok());
            let host = req.get(header::HOST).and_then(|v| v.to_str().ok());
            p(origin, host)
        }
    }
}

/// Whether a transport is switched on.
pub(crate) fn enabled(ep: &Shared, t: Transport) -> bool {
    let ws = matches!(t, Transport::WebSocket | Transport::RawWebSocket);
    (!ws || ep.config.websocket) && !ep.config.disabled_transports.contains(&t)
}

/// A session segment (`server` or `session`): non-empty, no `.`.
fn valid_segment(s: &str) -> bool {
    !s.is_empty() && !s.contains('.')
}

/// Answers one request under the prefix (`path` is what follows the prefix).
pub(crate) async fn handle<B>(
    ep: &Arc<Shared>,
    mut req: http::Request<B>,
    peer: Option<SocketAddr>,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix(ep.config.prefix.as_str()) else {
        return not_found();
    };
    let rest = rest.to_owned();
    match rest.as_str() {
        "" | "/" => return static_pages::greeting(req.method()),
        "/info" => return static_pages::info(ep, req.method(), req.headers()),
        "/websocket" => {
            if !enabled(ep, Transport::RawWebSocket) {
                return not_found();
            }
            return websocket::handle(ep, &mut req, "", Transport::RawWebSocket, peer);
        }
        r if static_pages::is_iframe(r) => {
            return static_pages::iframe(ep, req.method(), req.headers());
        }
        _ => {}
    }
    let mut parts = rest.split('/');
    let (Some(""), Some(server), Some(session), Some(transport), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return not_found();
    };
    if !valid_segment(server) || !valid_segment(session) {
        return not_found();
    }
    let session = session.to_owned();
    let t = match transport {
        "websocket" => Transport::WebSocket,
        "xhr" | "xhr_send" => Transport::XhrPolling,
        "xhr_streaming" => Transport::XhrStreaming,
        "eventsource" => Transport::EventSource,
        "htmlfile" => Transport::HtmlFile,
        "jsonp" | "jsonp_send" => Transport::JsonpPolling,
        _ => return not_found(),
    };
    // xhr_send serves every xhr-style transport, so only its own switch applies to xhr.
    if transport != "xhr_send" && !enabled(ep, t) {
        return not_found();
    }
    let transport = transport.to_owned();
    match transport.as_str() {
        "websocket" => websocket::handle(ep, &mut req, &session, Transport::WebSocket, peer),
        "xhr" => xhr::receive(ep, req, &session, false, peer),
        "xhr_streaming" => xhr::receive(ep, req, &session, true, peer),
        "xhr_send" => xhr::send(ep, req, &session).await,
        "eventsource" => eventsource::receive(ep, req, &session, peer),
        "htmlfile" => htmlfile::receive(ep, req, &session, peer),
        "jsonp" => jsonp::receive(ep, req, &session, peer),
        _ => jsonp::send(ep, req, &session).await,
    }
}

/// Common part of every receiving HTTP transport: origin check, attach or create, and the
/// response around a [`ReceiverBody`] (or the 2010 answer when another receiver is attached).
/// `headers` adds the transport's content type and the like.
#[allow(clippy::too_many_arguments)]
pub(crate) fn receiving<B>(
    ep: &Arc<Shared>,
    req: http::Request<B>,
    session: &str,
    transport: Transport,
    wrap: Wrap,
    streaming: Option<Bytes>,
    content_type: &'static str,
    cors: bool,
    peer: Option<SocketAddr>,
) -> Response<Body> {
    let (parts, _body) = req.into_parts();
    let is_streaming = streaming.is_some();
    if !origin_allowed(ep, &parts.headers) {
        return forbidden();
    }
    let body = match ep.open_or_attach(session, transport, &parts, peer) {
        Opened::Full => return unavailable(),
        Opened::Busy => {
            let frame = receiver::another_connection(&wrap);
            chunks(streaming.into_iter().chain(std::iter::once(frame)))
        }
        Opened::Attached(cell) => match streaming {
            Some(prelude) => {
                ReceiverBody::streaming(cell, wrap, prelude, ep.config.response_limit).boxed()
            }
            None => ReceiverBody::polling(cell, wrap).boxed(),
        },
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    set_no_cache(h);
    if cors {
        set_cors(h, &parts.headers);
    }
    set_cookie(h, &parts.headers, ep);
    if is_streaming {
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    }
    r
}

/// The first method check of a transport: `Some` is the answer (405, or a preflight).
pub(crate) fn check_method(
    ep: &Shared,
    method: &Method,
    headers: &HeaderMap,
    want: &Method,
    preflight_methods: Option<&'static str>,
    allow: &'static str,
) -> Option<Response<Body>> {
    if method == want {
        return None;
    }
    match preflight_methods {
        Some(m) if method == Method::OPTIONS => {
            if !origin_allowed(ep, headers) {
                return Some(forbidden());
            }
            Some(preflight(headers, m, ep))
        }
        _ => Some(method_not_allowed(allow)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }

    #[test]
    fn percent_decoding_and_forms() {
        assert_eq!(percent_decode("%63allback", false), "callback");
        assert_eq!(percent_decode("a+b%2", true), "a b%2");
        assert_eq!(percent_decode("%zz%", false), "%zz%");
        assert_eq!(
            form_value("d=%5B%22x%22%5D", "d", true).as_deref(),
            Some("[\"x\"]")
        );
        assert_eq!(form_value("p=p", "d", true), None);
        assert_eq!(form_value("d=", "d", true).as_deref(), Some(""));
    }

    #[test]
    fn callbacks() {
        let ok = |q: &str| {
            callback(&format!("/x?{q}").parse().unwrap())
                .ok()
                .map(|c| c.to_string())
        };
        assert_eq!(ok("c=%63allback").as_deref(), Some("callback"));
        assert_eq!(ok("callback=a.b-c_d").as_deref(), Some("a.b-c_d"));
        for bad in ["c=%20", "c=*", "c=abc(", "c=abc%28", "c=", "x=1"] {
            assert!(ok(bad).is_none(), "{bad}");
        }
    }
}
