//! The static URLs: the greeting, `/info` and the iframe page.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use super::{
    empty, forbidden, full, method_not_allowed, origin_allowed, preflight, set_cache_forever,
    set_cors, set_no_cache, text,
};
use crate::endpoint::Shared;
use crate::{Body, Transport};

/// `<prefix>` and `<prefix>/`.
pub(crate) fn greeting(method: &Method) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed("GET");
    }
    text(StatusCode::OK, "Welcome to SockJS!\n")
}

/// `<prefix>/info`: GET gives the capabilities and fresh entropy, OPTIONS the preflight.
pub(crate) fn info(ep: &Shared, method: &Method, headers: &HeaderMap) -> Response<Body> {
    if !origin_allowed(ep, headers) {
        return forbidden();
    }
    if method == Method::OPTIONS {
        return preflight(headers, "OPTIONS, GET", ep);
    }
    if method != Method::GET {
        return method_not_allowed("OPTIONS, GET");
    }
    let websocket = super::enabled(ep, Transport::WebSocket);
    let entropy: u32 = rand::random();
    let body = format!(
        "{{\"websocket\":{websocket},\"origins\":[\"*:*\"],\"cookie_needed\":{},\"entropy\":{entropy}}}",
        ep.config.cookie_needed
    );
    let mut r = Response::new(full(body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    set_no_cache(h);
    set_cors(h, headers);
    r
}

/// Whether `rest` is `/iframe.html` or `/iframe<[0-9a-z._-]*>.html`.
pub(crate) fn is_iframe(rest: &str) -> bool {
    rest.strip_prefix("/iframe")
        .and_then(|r| r.strip_suffix(".html"))
        .is_some_and(|v| {
            v.bytes().all(|b| {
                b.is_ascii_digit() || b.is_ascii_lowercase() || matches!(b, b'-' | b'.' | b'_')
            })
        })
}

/// The iframe page for the iframe-based transports; loads [`crate::Config::client_url`].
pub(crate) fn iframe_html(client_url: &str) -> String {
    let url = client_url.replace('"', "%22").replace('<', "%3C");
    format!(
        r#"<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{url}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"#
    )
}

/// The page's `ETag`: a hash of its content (stable for one configuration).
pub(crate) fn etag(page: &str) -> String {
    // FNV-1a: deterministic across processes and Rust versions.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in page.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

/// `<prefix>/iframe*.html`: cacheable for a year, `ETag`, 304 on `If-None-Match`.
pub(crate) fn iframe(ep: &Shared, method: &Method, headers: &HeaderMap) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed("GET");
    }
    let page = iframe_html(&ep.config.client_url);
    let tag = etag(&page);
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == tag || t.trim() == "*");
    let mut r = if matches {
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(full(page));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=UTF-8"),
        );
        r
    };
    let h = r.headers_mut();
    set_cache_forever(h);
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iframe_urls() {
        for ok in [
            "/iframe.html",
            "/iframe-a.html",
            "/iframe-.html",
            "/iframe-0.1.2.html",
            "/iframe-0.1.2abc-dirty.2144.html",
        ] {
            assert!(is_iframe(ok), "{ok}");
        }
        for bad in [
            "/iframe.htm",
            "/iframe",
            "/IFRAME.HTML",
            "/IFRAME",
            "/iframe.HTML",
            "/iframe.xml",
            "/iframe-/.html",
        ] {
            assert!(!is_iframe(bad), "{bad}");
        }
    }

    #[test]
    fn etag_is_stable_and_content_dependent() {
        assert_eq!(etag(&iframe_html("/a.js")), etag(&iframe_html("/a.js")));
        assert_ne!(etag(&iframe_html("/a.js")), etag(&iframe_html("/b.js")));
    }
}
