//! Handshake rules, both roles, and permessage-deflate negotiation.

use switchboard_ws::deflate::{negotiate_server, parse_extensions};
use switchboard_ws::handshake::{ClientRequest, RequestParser, accept_key};
use switchboard_ws::{DeflateConfig, DeflateParams, HandshakeError, Limits, ServerConfig};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn request(extra: &str) -> Vec<u8> {
    format!(
        "GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

fn parse(
    bytes: &[u8],
) -> Result<Option<(switchboard_ws::handshake::UpgradeRequest, usize)>, HandshakeError> {
    RequestParser::new(Limits::default()).parse(bytes)
}

#[test]
fn rfc6455_example_request_and_accept_key() {
    assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    let req = request("Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n");
    let (r, n) = parse(&req).unwrap().unwrap();
    assert_eq!(n, req.len());
    assert_eq!(r.path, "/chat?x=1");
    assert_eq!(r.origin.as_deref(), Some("http://example.com"));
    assert_eq!(r.protocols, ["chat", "superchat"]);
    let acc = r.accept(&ServerConfig::default().protocols(["superchat", "chat"]));
    assert_eq!(
        acc.protocol.as_deref(),
        Some("superchat"),
        "server preference"
    );
    let resp = String::from_utf8(acc.response()).unwrap();
    assert!(resp.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(resp.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(resp.ends_with("\r\n\r\n"));
}

#[test]
fn tokens_are_case_insensitive_lists() {
    let req = b"GET / HTTP/1.1\r\nhost: h\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, UPGRADE\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n";
    assert!(parse(req).unwrap().is_some());
}

#[test]
fn each_missing_or_bad_header_has_its_status() {
    let base = "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    let cases: &[(&str, &str, u16)] = &[
        ("Host: h\r\n", "", 400),
        ("Upgrade: websocket\r\n", "Upgrade: h2c\r\n", 400),
        ("Connection: Upgrade\r\n", "Connection: close\r\n", 400),
        (
            "Sec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Version: 8\r\n",
            426,
        ),
        ("Sec-WebSocket-Version: 13\r\n", "", 426),
        ("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ==", 400),
        ("dGhlIHNhbXBsZSBub25jZQ==", "not base64!", 400),
        ("GET / HTTP/1.1", "POST / HTTP/1.1", 405),
        ("GET / HTTP/1.1", "GET / HTTP/1.0", 400),
    ];
    for (from, to, status) in cases {
        let req = format!("{}\r\n", base.replace(from, to));
        let e = parse(req.as_bytes()).unwrap_err();
        assert_eq!(e.status(), *status, "{from} -> {to}: {e}");
        let resp = String::from_utf8(e.response()).unwrap();
        assert!(resp.starts_with(&format!("HTTP/1.1 {status} ")));
        if *status == 426 {
            assert!(resp.contains("Sec-WebSocket-Version: 13\r\n"));
        }
    }
}

#[test]
fn header_flood_and_oversized_head_are_rejected() {
    let limits = Limits {
        max_handshake_headers: 8,
        max_handshake_size: 1024,
        ..Default::default()
    };
    let flood: String = (0..20).map(|i| format!("X-{i}: y\r\n")).collect();
    let e = RequestParser::new(limits)
        .parse(&request(&flood))
        .unwrap_err();
    assert_eq!(
        (e.clone(), e.status()),
        (HandshakeError::TooManyHeaders, 431)
    );
    // a head that never ends
    let mut p = RequestParser::new(limits);
    let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
    let mut result = Ok(None);
    for _ in 0..200 {
        buf.extend_from_slice(b"X-Pad: aaaaaaaaaa\r\n");
        result = p.parse(&buf);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result.unwrap_err(), HandshakeError::TooLarge);
    assert!(
        buf.len() <= 1024 + 19,
        "rejected as soon as the limit was passed"
    );
}

#[test]
fn byte_at_a_time_equals_whole() {
    let req = request("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    let mut p = RequestParser::new(Limits::default());
    for i in 1..req.len() {
        assert!(p.parse(&req[..i]).unwrap().is_none(), "prefix {i}");
    }
    assert_eq!(p.parse(&req).unwrap(), parse(&req).unwrap());
}

fn negotiate(offer: &str, cfg: DeflateConfig) -> Option<(DeflateParams, String)> {
    negotiate_server(&parse_extensions(offer).unwrap(), &cfg)
}

#[test]
fn deflate_negotiation_server_side() {
    let d = DeflateConfig::default();
    // plain offer
    let (p, h) = negotiate("permessage-deflate", d).unwrap();
    assert_eq!(p, DeflateParams::default());
    assert_eq!(h, "permessage-deflate");
    // client_max_window_bits without value: we may answer a value only if we want less than 15
    let (p, h) = negotiate("permessage-deflate; client_max_window_bits", d).unwrap();
    assert_eq!(
        (p.client_max_window_bits, h.as_str()),
        (15, "permessage-deflate")
    );
    let small = DeflateConfig {
        client_max_window_bits: 10,
        ..d
    };
    let (p, h) = negotiate("permessage-deflate; client_max_window_bits", small).unwrap();
    assert_eq!(
        (p.client_max_window_bits, h.as_str()),
        (10, "permessage-deflate; client_max_window_bits=10")
    );
    // client did not offer client_max_window_bits: we must not limit it
    let (p, h) = negotiate("permessage-deflate", small).unwrap();
    assert_eq!(
        (p.client_max_window_bits, h.as_str()),
        (15, "permessage-deflate")
    );
    // server_max_window_bits requested (8 included): honoured in the answer
    for bits in 8..=15 {
        let (p, h) = negotiate(
            &format!("permessage-deflate; server_max_window_bits={bits}"),
            d,
        )
        .unwrap();
        assert_eq!(p.server_max_window_bits, bits);
        assert_eq!(
            h,
            format!("permessage-deflate; server_max_window_bits={bits}")
        );
    }
    // no context takeover both ways, quoted value
    let (p, h) = negotiate(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=\"9\"",
        d,
    )
    .unwrap();
    assert!(p.server_no_context_takeover && p.client_no_context_takeover);
    assert_eq!(p.client_max_window_bits, 9);
    assert_eq!(
        h,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9"
    );
}

#[test]
fn invalid_offers_are_declined_and_the_next_taken() {
    let d = DeflateConfig::default();
    for bad in [
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; unknown_param",
        "x-webkit-deflate-frame",
    ] {
        assert_eq!(negotiate(bad, d), None, "{bad}");
        let (p, _) = negotiate(
            &format!("{bad}, permessage-deflate; server_max_window_bits=12"),
            d,
        )
        .unwrap();
        assert_eq!(p.server_max_window_bits, 12, "{bad}");
    }
}

fn response_for(req: &ClientRequest, server: &ServerConfig) -> Vec<u8> {
    let (r, _) = parse(&req.encode()).unwrap().unwrap();
    r.accept(server).response()
}

#[test]
fn client_validates_the_response() {
    let limits = Limits::default();
    let req = ClientRequest::new("h", "/")
        .protocols(["a", "b"])
        .deflate(DeflateConfig {
            server_max_window_bits: 12,
            ..Default::default()
        });
    let server = ServerConfig::default()
        .protocols(["b"])
        .deflate(DeflateConfig::default());
    let resp = response_for(&req, &server);
    let (acc, n) = req.parse_response(&resp, &limits).unwrap().unwrap();
    assert_eq!(n, resp.len());
    assert_eq!(acc.protocol.as_deref(), Some("b"));
    let p = acc.deflate.unwrap();
    assert_eq!(p.server_max_window_bits, 12);
    // incomplete
    assert!(
        req.parse_response(&resp[..resp.len() - 1], &limits)
            .unwrap()
            .is_none()
    );
    // wrong accept key
    let other = ClientRequest::new("h", "/").protocols(["a", "b"]);
    assert_eq!(
        other.parse_response(&resp, &limits).unwrap_err(),
        HandshakeError::AcceptMismatch
    );
    // a protocol we did not offer
    let bad = String::from_utf8(resp.clone())
        .unwrap()
        .replace("sec-websocket-protocol: b", "sec-websocket-protocol: c");
    assert_eq!(
        req.parse_response(bad.as_bytes(), &limits).unwrap_err(),
        HandshakeError::UnexpectedProtocol
    );
    // an extension we did not offer
    let plain = ClientRequest::new("h", "/");
    let resp = response_for(&plain, &ServerConfig::default());
    let with_ext = String::from_utf8(resp).unwrap().replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    );
    assert_eq!(
        plain
            .parse_response(with_ext.as_bytes(), &limits)
            .unwrap_err(),
        HandshakeError::UnexpectedExtension
    );
    // not 101
    assert_eq!(
        plain
            .parse_response(b"HTTP/1.1 403 Forbidden\r\n\r\n", &limits)
            .unwrap_err(),
        HandshakeError::UnexpectedStatus(403)
    );
}
