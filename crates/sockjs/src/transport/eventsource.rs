//! `eventsource` (GET): `text/event-stream`, frames as `data: <frame>\r\n\r\n`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response};

use super::receiver::Wrap;
use super::{check_method, receiving};
use crate::endpoint::Shared;
use crate::{Body, Transport};

/// GET `.../eventsource`. The prelude is one `\r\n` (an old Opera needed it).
pub(crate) fn receive<B>(
    ep: &Arc<Shared>,
    req: http::Request<B>,
    session: &str,
    peer: Option<SocketAddr>,
) -> Response<Body> {
    if let Some(r) = check_method(ep, req.method(), req.headers(), &Method::GET, None, "GET") {
        return r;
    }
    receiving(
        ep,
        req,
        session,
        Transport::EventSource,
        Wrap::EventSource,
        Some(Bytes::from_static(b"\r\n")),
        "text/event-stream",
        true,
        peer,
    )
}
