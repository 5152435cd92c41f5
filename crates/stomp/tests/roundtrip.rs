//! proptest: encode → parse gives the frames back, at every version, however the bytes are chunked;
//! and for arbitrary bytes, chunked parsing agrees with whole-buffer parsing.

use bytes::BytesMut;
use proptest::prelude::*;
use switchboard_stomp::{
    Command, Frame, Limits, ParseError, Parsed, Parser, Version, encode_frame, encode_heart_beat,
    parse_frame,
};

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![
        Just(Version::V1_0),
        Just(Version::V1_1),
        Just(Version::V1_2)
    ]
}

fn command() -> impl Strategy<Value = Command> {
    (0..Command::ALL.len()).prop_map(|i| Command::ALL[i])
}

/// Characters biased towards the ones escaping cares about.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        2 => prop::sample::select(vec!['\n', '\r', ':', '\\', ' ', 'c', 'n', 'r', '\0', 'é', '🦀']),
    ]
}

fn text(min: usize, forbid: &'static [char]) -> impl Strategy<Value = String> {
    prop::collection::vec(
        any_char().prop_filter("forbidden", move |c| !forbid.contains(c)),
        min..12,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

/// A frame the encoder can write for `version`.
fn frame(version: Version) -> impl Strategy<Value = Frame> {
    command().prop_flat_map(move |cmd| {
        let escaped = version != Version::V1_0 && cmd.escapes_headers();
        let (name_forbid, value_forbid): (&'static [char], &'static [char]) = if escaped {
            (&[], &[])
        } else {
            (&['\n', '\r', ':'], &['\n', '\r'])
        };
        let header = (text(1, name_forbid), text(0, value_forbid))
            .prop_filter("encoder owns content-length", |(n, _)| {
                n != "content-length"
            });
        let body_len = if cmd.allows_body() || version == Version::V1_0 {
            0..300usize
        } else {
            0..1
        };
        (
            prop::collection::vec(header, 0..8),
            prop::collection::vec(any::<u8>(), body_len),
        )
            .prop_map(move |(headers, body)| {
                let mut f = Frame::new(cmd).body(body);
                for (n, v) in headers {
                    f = f.header(n, v);
                }
                f
            })
    })
}

/// What the parser must give back for `frame` once encoded.
fn expected(frame: &Frame) -> Frame {
    let mut want = frame.clone();
    if frame.command.allows_body() || !frame.body.is_empty() {
        want.headers
            .push("content-length", frame.body.len().to_string());
    }
    want
}

fn parse_chunked(
    bytes: &[u8],
    mut parser: Parser,
    chunks: &[usize],
) -> (Vec<Parsed>, Option<ParseError>, usize) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
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

fn new_parser(version: Option<Version>, limits: Limits) -> Parser {
    match version {
        Some(v) => Parser::new(v, limits),
        None => Parser::before_connect(limits),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_parse_round_trips(
        (version, frames) in version().prop_flat_map(|v| (Just(v), prop::collection::vec(frame(v), 1..4))),
        beats in prop::collection::vec(0..3usize, 4),
        chunks in prop::collection::vec(1..64usize, 1..8),
    ) {
        let mut wire = BytesMut::new();
        let mut want = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            encode_frame(f, version, &mut wire).unwrap();
            want.push(Parsed::Frame(expected(f)));
            for _ in 0..beats[i % beats.len()] {
                encode_heart_beat(&mut wire);
                want.push(Parsed::HeartBeat);
            }
        }
        let (got, err, left) = parse_chunked(&wire, Parser::new(version, Limits::default()), &chunks);
        prop_assert_eq!(err, None);
        prop_assert_eq!(left, 0);
        prop_assert_eq!(&got, &want);

        // The borrowed parser agrees, frame by frame.
        let mut at = 0;
        for item in &want {
            if let Parsed::Frame(f) = item {
                let (r, used) = parse_frame(&wire[at..], Some(version), &Limits::default()).unwrap().unwrap();
                prop_assert_eq!(&r.to_frame(), f);
                at += used;
            }
        }

        // 1.2 frames (and so every CONNECT) also read the same before negotiation.
        if version == Version::V1_2 {
            let (got, err, _) = parse_chunked(&wire, Parser::before_connect(Limits::default()), &chunks);
            prop_assert_eq!(err, None);
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn chunking_never_changes_the_outcome(
        bytes in prop::collection::vec(
            prop_oneof![
                4 => any::<u8>(),
                6 => prop::sample::select(b"\n\r\0:\\cSENDMESSAGEACKcontent-length:3".to_vec()),
            ],
            0..200,
        ),
        version in prop_oneof![Just(None), version().prop_map(Some)],
        chunks in prop::collection::vec(1..16usize, 1..6),
        small in any::<bool>(),
    ) {
        let limits = if small {
            Limits::default().with_max_header_line(12).with_max_headers(3).with_max_body(8).with_max_command_len(9)
        } else {
            Limits::default()
        };
        let whole = parse_chunked(&bytes, new_parser(version, limits), &[usize::MAX]);
        let chunked = parse_chunked(&bytes, new_parser(version, limits), &chunks);
        prop_assert_eq!(&whole, &chunked);
        // parse_frame sees the same first frame (or the same first error).
        if let Some(first) = whole.0.iter().find_map(|i| match i { Parsed::Frame(f) => Some(f), _ => None }) {
            let (r, _) = parse_frame(&bytes, version, &limits).unwrap().unwrap();
            prop_assert_eq!(&r.to_frame(), first);
        } else if let Some(e) = &whole.1 {
            prop_assert_eq!(parse_frame(&bytes, version, &limits), Err(e.clone()));
        }
    }
}
