//! Handshake parsing over arbitrary bytes, server request and client response.
//! Property beyond "no panic": the request parser gives the same result fed in chunks as fed
//! whole (no state lost between calls, no rescanning bugs), and any accepted request yields a 101
//! response carrying the RFC 6455 accept key. Inputs are either raw bytes or a request head built
//! from known header names with arbitrary values, so validation paths are reached.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use switchboard_ws::handshake::{ClientRequest, RequestParser, accept_key};
use switchboard_ws::{DeflateConfig, Limits, ServerConfig};

const NAMES: &[&str] = &[
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Origin",
    "X-Other",
];
const GOOD: &[&str] = &[
    "h",
    "websocket",
    "Upgrade",
    "dGhlIHNhbXBsZSBub25jZQ==",
    "13",
    "chat, a",
    "permessage-deflate; client_max_window_bits",
    "http://o",
    "v",
];

#[derive(Debug, Arbitrary)]
enum Head {
    Raw(Vec<u8>),
    Built { method_get: bool, path: String, headers: Vec<(u8, Option<String>)> },
}

#[derive(Debug, Arbitrary)]
struct Input {
    chunk: u8,
    head: Head,
}

fn bytes(h: &Head) -> Vec<u8> {
    match h {
        Head::Raw(b) => b.clone(),
        Head::Built { method_get, path, headers } => {
            let mut s = format!("{} /{} HTTP/1.1\r\n", if *method_get { "GET" } else { "PUT" }, path);
            for (i, v) in headers {
                let i = *i as usize % NAMES.len();
                s.push_str(&format!("{}: {}\r\n", NAMES[i], v.as_deref().unwrap_or(GOOD[i])));
            }
            s.push_str("\r\n");
            s.into_bytes()
        }
    }
}

fuzz_target!(|i: Input| {
    let data = bytes(&i.head);
    let limits = Limits { max_handshake_size: 2048, max_handshake_headers: 16, ..Default::default() };
    let whole = RequestParser::new(limits).parse(&data);
    let mut p = RequestParser::new(limits);
    let step = i.chunk as usize + 1;
    let mut chunked = Ok(None);
    for end in (step..data.len() + step).step_by(step) {
        chunked = p.parse(&data[..end.min(data.len())]);
        if !matches!(chunked, Ok(None)) {
            break;
        }
    }
    if !data.is_empty() {
        assert_eq!(whole, chunked);
    }
    if let Ok(Some((req, _))) = whole {
        let server = ServerConfig::default().protocols(["a", "b"]).deflate(DeflateConfig::default());
        let acc = req.accept(&server);
        assert_eq!(acc.accept_key, accept_key(req.key.as_bytes()));
        assert!(acc.response().starts_with(b"HTTP/1.1 101"));
    }
    let client = ClientRequest::new("h", "/").protocols(["a"]).deflate(DeflateConfig::default());
    let _ = client.parse_response(&data, &limits);
});
