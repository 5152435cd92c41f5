//! Arbitrary bytes, arbitrary chunking, every version (and before-CONNECT mode), tight or default
//! limits. Beyond "no panic": feeding the bytes in chunks gives exactly what feeding them whole
//! gives (same frames, heart-beats, error and leftover); `parse_frame` agrees on the first frame
//! or error; every frame respects the limits; a parsed frame re-encodes and parses back the same.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_stomp::{Limits, ParseError, Parsed, Parser, Version, encode_frame, parse_frame};

type Outcome = (Vec<Parsed>, Option<ParseError>, usize);

fn feed(data: &[u8], version: Option<Version>, limits: Limits, chunks: &[usize]) -> Outcome {
    let mut parser = match version {
        Some(v) => Parser::new(v, limits),
        None => Parser::before_connect(limits),
    };
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = data;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = sizes.next().copied().unwrap_or(usize::MAX).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(item)) => out.push(item),
                Ok(None) => break,
                Err(e) => return (out, Some(e), buf.len() + rest.len()),
            }
        }
    }
    (out, None, buf.len())
}

fuzz_target!(|input: &[u8]| {
    let [mode, c0, c1, c2, data @ ..] = input else { return };
    let version = match mode & 3 {
        0 => None,
        1 => Some(Version::V1_0),
        2 => Some(Version::V1_1),
        _ => Some(Version::V1_2),
    };
    let limits = if mode & 4 != 0 {
        Limits::default()
            .with_max_command_len(10)
            .with_max_header_line(24)
            .with_max_headers(4)
            .with_max_body(64)
    } else {
        Limits::default()
    };
    let chunks = [usize::from(*c0) + 1, usize::from(*c1) % 7 + 1, usize::from(*c2) + 1];

    let whole = feed(data, version, limits, &[usize::MAX]);
    let chunked = feed(data, version, limits, &chunks);
    let bytewise = feed(data, version, limits, &[1]);
    assert_eq!(whole, chunked, "chunking changed the outcome");
    assert_eq!(whole, bytewise, "one-byte feeding changed the outcome");

    let first = whole.0.iter().find_map(|i| match i {
        Parsed::Frame(f) => Some(f),
        Parsed::HeartBeat => None,
    });
    match (first, &whole.1) {
        (Some(f), _) => {
            let (r, _) = parse_frame(data, version, &limits)
                .expect("parse_frame fails where Parser succeeded")
                .expect("parse_frame incomplete where Parser completed");
            assert_eq!(&r.to_frame(), f);
        }
        (None, Some(e)) => assert_eq!(parse_frame(data, version, &limits), Err(e.clone())),
        (None, None) => {}
    }

    for item in &whole.0 {
        let Parsed::Frame(f) = item else { continue };
        assert!(f.headers.len() <= limits.max_headers);
        assert!(f.body.len() <= limits.max_body);
        // Re-encode (when this version can carry the frame) and parse back.
        let v = version.unwrap_or(Version::V1_2);
        let mut wire = BytesMut::new();
        if encode_frame(f, v, &mut wire).is_ok() {
            let mut p = Parser::new(v, Limits::default().with_max_body(usize::MAX));
            let back = p.parse(&mut wire).expect("re-encoded frame does not parse");
            let Some(Parsed::Frame(back)) = back else { panic!("re-encoded frame incomplete") };
            assert_eq!(back.command, f.command);
            assert_eq!(back.body, f.body);
            let mut want = f.headers.clone();
            want.remove("content-length");
            let mut got = back.headers.clone();
            got.remove("content-length");
            assert_eq!(got, want);
        }
    }
});
