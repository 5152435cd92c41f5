//! The opening handshake (RFC 6455 §4), sans-IO, both roles.
//!
//! Server: [`RequestParser`] reads a request head from bytes (bounded size and header count,
//! never re-parsing a partial head from scratch), [`UpgradeRequest`] validates it, and
//! [`UpgradeRequest::accept`] negotiates subprotocol and permessage-deflate and writes the 101.
//! Each [`HandshakeError`] maps to an HTTP status and can write its own error response.
//!
//! Client: [`ClientRequest`] writes the request; [`ClientRequest::parse_response`] checks the
//! answer (status 101, `Sec-WebSocket-Accept`, subprotocol and extensions among those offered).

use crate::Limits;
use crate::deflate::{self, DeflateConfig, DeflateParams, ExtensionOffer};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha1::{Digest, Sha1};
use std::fmt::Write as _;

/// The GUID of RFC 6455 §1.3.
pub const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key ++ GUID)).
///
/// ```
/// assert_eq!(
///     switchboard_ws::handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(WS_GUID.as_bytes());
    B64.encode(h.finalize())
}

/// A handshake failure. Server-side variants carry the HTTP status to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The head exceeds [`Limits::max_handshake_size`] (431).
    #[error("handshake head too large")]
    TooLarge,
    /// More header lines than [`Limits::max_handshake_headers`] (431).
    #[error("too many handshake headers")]
    TooManyHeaders,
    /// Not parseable as HTTP/1.1 (400).
    #[error("malformed HTTP: {0}")]
    Malformed(&'static str),
    /// Method other than GET (405).
    #[error("method must be GET")]
    MethodNotAllowed,
    /// A required header is missing or wrong (400): names it.
    #[error("bad or missing header {0}")]
    BadHeader(&'static str),
    /// `Sec-WebSocket-Version` is not 13 (426 with `Sec-WebSocket-Version: 13`).
    #[error("unsupported WebSocket version")]
    UnsupportedVersion,
    /// Client side: the server answered with this status instead of 101.
    #[error("server answered with status {0}")]
    UnexpectedStatus(u16),
    /// Client side: `Sec-WebSocket-Accept` does not match our key.
    #[error("Sec-WebSocket-Accept mismatch")]
    AcceptMismatch,
    /// Client side: the server chose a subprotocol we did not offer.
    #[error("server selected a subprotocol that was not offered")]
    UnexpectedProtocol,
    /// Client side: the server answered an extension we did not offer, or invalid parameters.
    #[error("server selected an extension that was not offered or is invalid")]
    UnexpectedExtension,
    /// The connection ended before the handshake completed.
    #[error("connection closed during handshake")]
    Eof,
}

impl HandshakeError {
    /// The HTTP status a server answers with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::TooLarge | HandshakeError::TooManyHeaders => 431,
            HandshakeError::MethodNotAllowed => 405,
            HandshakeError::UnsupportedVersion => 426,
            _ => 400,
        }
    }

    /// A complete HTTP/1.1 error response for this error (with `Sec-WebSocket-Version: 13` on
    /// 426 and `Allow: GET` on 405), closing the connection.
    pub fn response(&self) -> Vec<u8> {
        let status = self.status();
        let reason = match status {
            405 => "Method Not Allowed",
            426 => "Upgrade Required",
            431 => "Request Header Fields Too Large",
            _ => "Bad Request",
        };
        let body = self.to_string();
        let mut s = format!("HTTP/1.1 {status} {reason}\r\n");
        match status {
            426 => s.push_str("Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n"),
            405 => s.push_str("Allow: GET\r\n"),
            _ => {}
        }
        let _ = write!(
            s,
            "Connection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.into_bytes()
    }
}

/// Finds the end of an HTTP head in a growing buffer without rescanning, then parses it.
#[derive(Debug, Clone)]
pub struct RequestParser {
    limits: Limits,
    scanned: usize,
}

/// Finds `\r\n\r\n` from `from` on; returns the head length.
fn find_head_end(
    buf: &[u8],
    scanned: &mut usize,
    max: usize,
) -> Result<Option<usize>, HandshakeError> {
    let from = scanned.saturating_sub(3);
    if let Some(i) = buf[from.min(buf.len())..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
    {
        let end = from + i + 4;
        if end > max {
            return Err(HandshakeError::TooLarge);
        }
        return Ok(Some(end));
    }
    *scanned = buf.len();
    if buf.len() >= max {
        return Err(HandshakeError::TooLarge);
    }
    Ok(None)
}

impl RequestParser {
    /// A parser with these limits (`max_handshake_size`, `max_handshake_headers`).
    pub fn new(limits: Limits) -> Self {
        RequestParser { limits, scanned: 0 }
    }

    /// Parses and validates a request head at the start of `buf` (which grows between calls).
    /// `Ok(None)`: incomplete. `Ok(Some((req, n)))`: the head was `n` bytes.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<(UpgradeRequest, usize)>, HandshakeError> {
        let Some(end) = find_head_end(buf, &mut self.scanned, self.limits.max_handshake_size)?
        else {
            return Ok(None);
        };
        let mut headers = vec![httparse::EMPTY_HEADER; self.limits.max_handshake_headers];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..end]) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(HandshakeError::Malformed("incomplete head"));
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
            Err(_) => return Err(HandshakeError::Malformed("invalid request head")),
        }
        let method = req.method.unwrap_or_default();
        let path = req.path.unwrap_or_default();
        let v11 = req.version == Some(1);
        let r = UpgradeRequest::from_parts(
            method,
            path,
            v11,
            req.headers.iter().map(|h| (h.name, h.value)),
        )?;
        Ok(Some((r, end)))
    }
}

/// Lower-cased, trimmed comma-separated tokens of a header value.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
}

fn has_token(v: &[u8], token: &str) -> bool {
    tokens(v).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// A validated WebSocket upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// Request target (path and query).
    pub path: String,
    /// `Host` header.
    pub host: String,
    /// `Origin` header, for the application to check (browsers always send it).
    pub origin: Option<String>,
    /// `Sec-WebSocket-Key`.
    pub key: String,
    /// Offered subprotocols, in the client's order.
    pub protocols: Vec<String>,
    /// Offered extensions, in the client's order.
    pub extensions: Vec<ExtensionOffer>,
    /// All headers (name as sent, raw value), e.g. for cookies or authorization.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl UpgradeRequest {
    /// Validates request parts (from [`RequestParser`] or another HTTP stack): GET, HTTP/1.1,
    /// `Host`, `Upgrade: websocket`, `Connection: upgrade` (tokens, case-insensitive),
    /// `Sec-WebSocket-Version: 13`, a key that is base64 of 16 bytes.
    pub fn from_parts<'a>(
        method: &str,
        path: &str,
        http11: bool,
        headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<UpgradeRequest, HandshakeError> {
        if method != "GET" {
            return Err(HandshakeError::MethodNotAllowed);
        }
        if !http11 {
            return Err(HandshakeError::Malformed("HTTP/1.1 required"));
        }
        let mut host = None;
        let mut upgrade = false;
        let mut connection = false;
        let mut version: Option<&[u8]> = None;
        let mut key: Option<&[u8]> = None;
        let mut origin = None;
        let mut protocols = Vec::new();
        let mut ext_value = String::new();
        let mut all = Vec::new();
        for (name, value) in headers {
            all.push((name.to_owned(), value.to_vec()));
            if name.eq_ignore_ascii_case("host") {
                host = Some(String::from_utf8_lossy(value).into_owned());
            } else if name.eq_ignore_ascii_case("upgrade") {
                upgrade |= has_token(value, "websocket");
            } else if name.eq_ignore_ascii_case("connection") {
                connection |= has_token(value, "upgrade");
            } else if name.eq_ignore_ascii_case("sec-websocket-version") {
                if version.is_some() {
                    return Err(HandshakeError::BadHeader("Sec-WebSocket-Version"));
                }
                version = Some(value.trim_ascii());
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                if key.is_some() {
                    return Err(HandshakeError::BadHeader("Sec-WebSocket-Key"));
                }
                key = Some(value.trim_ascii());
            } else if name.eq_ignore_ascii_case("origin") {
                origin = Some(String::from_utf8_lossy(value).into_owned());
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                for t in tokens(value) {
                    let t = std::str::from_utf8(t)
                        .map_err(|_| HandshakeError::BadHeader("Sec-WebSocket-Protocol"))?;
                    protocols.push(t.to_owned());
                }
            } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
                let v = std::str::from_utf8(value)
                    .map_err(|_| HandshakeError::BadHeader("Sec-WebSocket-Extensions"))?;
                if !ext_value.is_empty() {
                    ext_value.push(',');
                }
                ext_value.push_str(v);
            }
        }
        let host = host.ok_or(HandshakeError::BadHeader("Host"))?;
        if !upgrade {
            return Err(HandshakeError::BadHeader("Upgrade"));
        }
        if !connection {
            return Err(HandshakeError::BadHeader("Connection"));
        }
        if version != Some(b"13") {
            return Err(HandshakeError::UnsupportedVersion);
        }
        let key = key.ok_or(HandshakeError::BadHeader("Sec-WebSocket-Key"))?;
        match B64.decode(key) {
            Ok(k) if k.len() == 16 => {}
            _ => return Err(HandshakeError::BadHeader("Sec-WebSocket-Key")),
        }
        let extensions = deflate::parse_extensions(&ext_value)
            .ok_or(HandshakeError::BadHeader("Sec-WebSocket-Extensions"))?;
        Ok(UpgradeRequest {
            path: path.to_owned(),
            host,
            origin,
            key: String::from_utf8_lossy(key).into_owned(),
            protocols,
            extensions,
            headers: all,
        })
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Negotiates with `cfg`: picks the subprotocol (the first of the *server's* list the client
    /// offered) and permessage-deflate (the first acceptable offer).
    pub fn accept(&self, cfg: &ServerConfig) -> Accepted {
        let protocol = cfg
            .protocols
            .iter()
            .find(|p| self.protocols.iter().any(|o| o == *p))
            .cloned();
        let (deflate, extensions) = match &cfg.deflate {
            Some(dc) => match deflate::negotiate_server(&self.extensions, dc) {
                Some((p, h)) => (Some(p), Some(h)),
                None => (None, None),
            },
            None => (None, None),
        };
        Accepted {
            accept_key: accept_key(self.key.as_bytes()),
            protocol,
            deflate,
            extensions,
        }
    }
}

/// Server-side handshake settings.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Supported subprotocols in order of preference.
    pub protocols: Vec<String>,
    /// permessage-deflate settings; `None` declines every offer.
    pub deflate: Option<DeflateConfig>,
}

impl ServerConfig {
    /// Sets the supported subprotocols (preference order).
    pub fn protocols<I: IntoIterator<Item = S>, S: Into<String>>(mut self, p: I) -> Self {
        self.protocols = p.into_iter().map(Into::into).collect();
        self
    }

    /// Accepts permessage-deflate with these settings.
    pub fn deflate(mut self, cfg: DeflateConfig) -> Self {
        self.deflate = Some(cfg);
        self
    }
}

/// The outcome of a successful negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `Sec-WebSocket-Accept` value.
    pub accept_key: String,
    /// Chosen subprotocol.
    pub protocol: Option<String>,
    /// Agreed permessage-deflate parameters.
    pub deflate: Option<DeflateParams>,
    /// `Sec-WebSocket-Extensions` value of the answer.
    pub extensions: Option<String>,
}

impl Accepted {
    /// The response headers besides the status line (for an HTTP stack like hyper).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("upgrade", "websocket".to_owned()),
            ("connection", "Upgrade".to_owned()),
            ("sec-websocket-accept", self.accept_key.clone()),
        ];
        if let Some(p) = &self.protocol {
            h.push(("sec-websocket-protocol", p.clone()));
        }
        if let Some(e) = &self.extensions {
            h.push(("sec-websocket-extensions", e.clone()));
        }
        h
    }

    /// The complete `101 Switching Protocols` response head.
    pub fn response(&self) -> Vec<u8> {
        let mut s = String::from("HTTP/1.1 101 Switching Protocols\r\n");
        for (k, v) in self.headers() {
            let _ = write!(s, "{k}: {v}\r\n");
        }
        s.push_str("\r\n");
        s.into_bytes()
    }
}

/// A client handshake request.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    host: String,
    path: String,
    key: String,
    protocols: Vec<String>,
    deflate: Option<DeflateConfig>,
    headers: Vec<(String, String)>,
}

/// What the server agreed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccepted {
    /// The subprotocol the server selected.
    pub protocol: Option<String>,
    /// The agreed permessage-deflate parameters.
    pub deflate: Option<DeflateParams>,
    /// All response headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ClientRequest {
    /// A request for `path` (e.g. `/chat?x=1`) on `host` (the `Host` header, e.g.
    /// `example.com:8080`), with a fresh random key.
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> Self {
        let nonce: [u8; 16] = rand::random();
        ClientRequest {
            host: host.into(),
            path: path.into(),
            key: B64.encode(nonce),
            protocols: Vec::new(),
            deflate: None,
            headers: Vec::new(),
        }
    }

    /// Offers subprotocols (in preference order).
    pub fn protocols<I: IntoIterator<Item = S>, S: Into<String>>(mut self, p: I) -> Self {
        self.protocols = p.into_iter().map(Into::into).collect();
        self
    }

    /// Offers permessage-deflate.
    pub fn deflate(mut self, cfg: DeflateConfig) -> Self {
        self.deflate = Some(cfg);
        self
    }

    /// Adds a header (e.g. `Origin`, `Authorization`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The `Sec-WebSocket-Key`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The permessage-deflate settings offered, if any.
    pub fn deflate_config(&self) -> Option<&DeflateConfig> {
        self.deflate.as_ref()
    }

    /// The request head bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
            self.path, self.host, self.key
        );
        if !self.protocols.is_empty() {
            let _ = write!(
                s,
                "Sec-WebSocket-Protocol: {}\r\n",
                self.protocols.join(", ")
            );
        }
        if let Some(d) = &self.deflate {
            let _ = write!(
                s,
                "Sec-WebSocket-Extensions: {}\r\n",
                deflate::client_offer(d)
            );
        }
        for (k, v) in &self.headers {
            let _ = write!(s, "{k}: {v}\r\n");
        }
        s.push_str("\r\n");
        s.into_bytes()
    }

    /// Parses and checks the server's response head at the start of `buf`. `Ok(None)`:
    /// incomplete; `Ok(Some((accepted, n)))`: the head was `n` bytes (anything after it is
    /// already WebSocket data).
    pub fn parse_response(
        &self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<(ClientAccepted, usize)>, HandshakeError> {
        let mut scanned = 0;
        let Some(end) = find_head_end(buf, &mut scanned, limits.max_handshake_size)? else {
            return Ok(None);
        };
        let mut headers = vec![httparse::EMPTY_HEADER; limits.max_handshake_headers];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf[..end]) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Err(HandshakeError::Malformed("incomplete head"));
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
            Err(_) => return Err(HandshakeError::Malformed("invalid response head")),
        }
        let code = resp.code.unwrap_or(0);
        if code != 101 {
            return Err(HandshakeError::UnexpectedStatus(code));
        }
        let (mut upgrade, mut connection, mut accept) = (false, false, None);
        let mut protocol = None;
        let mut ext_value = String::new();
        let mut all = Vec::new();
        for h in resp.headers.iter() {
            let (name, value) = (h.name, h.value);
            all.push((name.to_owned(), value.to_vec()));
            if name.eq_ignore_ascii_case("upgrade") {
                upgrade |= has_token(value, "websocket");
            } else if name.eq_ignore_ascii_case("connection") {
                connection |= has_token(value, "upgrade");
            } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
                accept = Some(value.trim_ascii());
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                if protocol.is_some() {
                    return Err(HandshakeError::UnexpectedProtocol);
                }
                let p = String::from_utf8_lossy(value.trim_ascii()).into_owned();
                if !self.protocols.contains(&p) {
                    return Err(HandshakeError::UnexpectedProtocol);
                }
                protocol = Some(p);
            } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
                let v =
                    std::str::from_utf8(value).map_err(|_| HandshakeError::UnexpectedExtension)?;
                if !ext_value.is_empty() {
                    ext_value.push(',');
                }
                ext_value.push_str(v);
            }
        }
        if !upgrade {
            return Err(HandshakeError::BadHeader("Upgrade"));
        }
        if !connection {
            return Err(HandshakeError::BadHeader("Connection"));
        }
        if accept != Some(accept_key(self.key.as_bytes()).as_bytes()) {
            return Err(HandshakeError::AcceptMismatch);
        }
        let exts =
            deflate::parse_extensions(&ext_value).ok_or(HandshakeError::UnexpectedExtension)?;
        let deflate = match (exts.as_slice(), &self.deflate) {
            ([], _) => None,
            ([one], Some(cfg)) => Some(
                deflate::accept_client(one, cfg)
                    .map_err(|_| HandshakeError::UnexpectedExtension)?,
            ),
            _ => return Err(HandshakeError::UnexpectedExtension),
        };
        Ok(Some((
            ClientAccepted {
                protocol,
                deflate,
                headers: all,
            },
            end,
        )))
    }
}
