//! `htmlfile` (GET `?c=<callback>`): a forever-loading HTML page calling
//! `parent.<callback>` with each frame.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response};

use super::receiver::Wrap;
use super::{callback, check_method, receiving};
use crate::endpoint::Shared;
use crate::{Body, Transport};

/// The page head, padded past 1 KiB (browsers render nothing of a smaller document).
fn prelude(cb: &str) -> Bytes {
    let mut s = format!(
        r#"<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{cb};
    c.start();
    function p(d) {{c.message(d);}};
    window.onload = function() {{c.stop();}};
  </script>
"#
    );
    let pad = 1024usize.saturating_sub(s.len()) + 14;
    s.extend(std::iter::repeat_n(' ', pad));
    s.push_str("\r\n\r\n");
    Bytes::from(s)
}

/// GET `.../htmlfile`.
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
    let prelude = prelude(&cb);
    receiving(
        ep,
        req,
        session,
        Transport::HtmlFile,
        Wrap::HtmlFile,
        Some(prelude),
        "text/html; charset=UTF-8",
        false,
        peer,
    )
}
