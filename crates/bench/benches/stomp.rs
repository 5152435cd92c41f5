//! STOMP frame parsing: switchboard-stomp against `stomp-parser` (nom) and `stomp-rs`
//! (`protocol::FrameParser`), in one run, on identical inputs.
//!
//! Each peer gets the input the way its API wants it, prepared outside the timed part
//! (`iter_batched`): a `BytesMut` for `switchboard::Parser`, a `Vec<u8>` for `stomp-parser`,
//! a fresh `FrameParser` for `stomp-rs`; outputs are dropped outside the timed part too.
//! `switchboard_ref` is the allocation-free borrowed `parse_frame`.
//!
//! Run: `cargo bench -p switchboard-bench --bench stomp` (1 s warm-up, 3 s measurement by default),
//! or `cargo xtask bench stomp_parse --bench stomp --markdown` for the ratio table.
//! Instruction counts per call: `valgrind --tool=callgrind` on the bench binary with
//! `--bench --profile-time 1 'stomp_parse/<peer>/<input>$'`; the `#[inline(never)]` wrappers
//! below are what to read.

#![allow(missing_docs)] // criterion_group! generates undocumented public functions

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stomp_parser::client::ClientFrame;
use stomp_rs::protocol::{ClientCommand, FrameParser, StompMessage};
use switchboard_stomp::{Frame, Limits, Parsed, Parser, Version, parse_frame};

/// The inputs: (name, bytes). All are valid STOMP 1.2 client frames every peer accepts.
fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let subscribe =
        b"SUBSCRIBE\nid:sub-0\ndestination:/topic/chat.room.42\nack:client-individual\n\n\0"
            .to_vec();

    let mut send_100 =
        b"SEND\ndestination:/queue/orders\ncontent-type:text/plain\ncontent-length:100\n\n"
            .to_vec();
    send_100.extend(std::iter::repeat_n(b'x', 100));
    send_100.push(0);

    // 20 headers, a quarter of them with escapes (\c and \n and \\).
    let mut headers_20 = b"SEND\ndestination:/queue/headers\n".to_vec();
    for i in 1..20 {
        if i % 4 == 0 {
            headers_20.extend(format!("x-escaped-{i}:key\\cvalue\\nline\\\\{i}\n").as_bytes());
        } else {
            headers_20.extend(format!("x-header-{i}:value-number-{i}-abcdefgh\n").as_bytes());
        }
    }
    headers_20.extend(b"\nbody\0");

    let mut send_64k = b"SEND\ndestination:/queue/big\ncontent-type:application/octet-stream\ncontent-length:65536\n\n".to_vec();
    send_64k.extend((0..65536u32).map(|i| b'a' + (i % 26) as u8));
    send_64k.push(0);

    vec![
        ("subscribe", subscribe),
        ("send_100b", send_100),
        ("headers_20_escaped", headers_20),
        ("send_64kib", send_64k),
    ]
}

// The per-peer calls are not inlined so `valgrind --tool=callgrind` can count each one's
// instructions per call (stable on a shared machine, unlike wall-clock time).
#[inline(never)]
fn switchboard(parser: &mut Parser, mut buf: BytesMut) -> Parsed {
    match parser.parse(&mut buf) {
        Ok(Some(item)) => item,
        other => panic!("switchboard did not parse the input: {other:?}"),
    }
}

#[inline(never)]
fn stomp_rs(
    mut parser: FrameParser<ClientCommand>,
    input: &[u8],
) -> Vec<StompMessage<ClientCommand>> {
    match parser.parse(input) {
        Ok(frames) if !frames.is_empty() => frames,
        _ => panic!("stomp-rs did not parse the input"),
    }
}

#[inline(never)]
fn switchboard_ref(input: &[u8], limits: &Limits) -> Option<(usize, usize, usize)> {
    parse_frame(input, Some(Version::V1_2), limits)
        .ok()
        .flatten()
        .map(|(f, used)| {
            // Decode every header, as the owned parsers do.
            let h: usize = f.headers().map(|(n, v)| n.len() + v.len()).sum();
            (h, f.body().len(), used)
        })
}

#[inline(never)]
fn stomp_parser(input: Vec<u8>) -> Option<ClientFrame> {
    ClientFrame::try_from(input).ok()
}

fn parse(c: &mut Criterion) {
    let limits = Limits::default();
    // One group, `BenchmarkId::new(library, input)`: the shape `cargo xtask bench` tabulates.
    let mut group = c.benchmark_group("stomp_parse");
    for (name, input) in inputs() {
        // Every peer must accept the input before we time it.
        assert!(
            ClientFrame::try_from(input.clone()).is_ok(),
            "stomp-parser rejects {name}"
        );
        let _ = stomp_rs(FrameParser::new(), &input);
        let mut check = Parser::new(Version::V1_2, limits);
        let _ = switchboard(&mut check, BytesMut::from(&input[..]));

        group.throughput(Throughput::Bytes(input.len() as u64));
        let mut parser = Parser::new(Version::V1_2, limits);
        group.bench_function(BenchmarkId::new("switchboard", name), |b| {
            b.iter_batched(
                || BytesMut::from(&input[..]),
                |buf| switchboard(&mut parser, buf),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(BenchmarkId::new("switchboard_ref", name), |b| {
            b.iter(|| switchboard_ref(black_box(&input), &limits))
        });
        group.bench_function(BenchmarkId::new("stomp-parser", name), |b| {
            b.iter_batched(|| input.clone(), stomp_parser, BatchSize::SmallInput)
        });
        group.bench_function(BenchmarkId::new("stomp-rs", name), |b| {
            b.iter_batched(
                FrameParser::<ClientCommand>::new,
                |p| stomp_rs(p, black_box(&input)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

#[inline(never)]
fn switchboard_encode(frame: &Frame) -> bytes::Bytes {
    match frame.encode(Version::V1_2) {
        Ok(bytes) => bytes,
        Err(e) => panic!("switchboard cannot encode: {e}"),
    }
}

#[inline(never)]
fn stomp_rs_encode(frame: &stomp_rs::protocol::Frame<ClientCommand>) -> Vec<u8> {
    frame.to_bytes()
}

/// Encoding the same frames into a fresh buffer. `stomp-parser` is left out: its frames are
/// serialised by value (`Into<Vec<u8>>`) and are not `Clone`. stomp-rs writes no
/// `content-length` and escapes nothing; switchboard does both.
fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("stomp_encode");
    for (name, input) in inputs() {
        let mut parser = Parser::new(Version::V1_2, Limits::default());
        let Parsed::Frame(ours) = switchboard(&mut parser, BytesMut::from(&input[..])) else {
            panic!("{name}: not a frame")
        };
        let theirs = match stomp_rs(FrameParser::new(), &input).remove(0) {
            StompMessage::Frame(f) => f,
            StompMessage::Ping => panic!("{name}: stomp-rs saw a heart-beat"),
        };
        let size = switchboard_encode(&ours).len() as u64;
        group.throughput(Throughput::Bytes(size));
        group.bench_function(BenchmarkId::new("switchboard", name), |b| {
            b.iter(|| switchboard_encode(black_box(&ours)))
        });
        group.bench_function(BenchmarkId::new("stomp-rs", name), |b| {
            b.iter(|| stomp_rs_encode(black_box(&theirs)))
        });
    }
    group.finish();
}

/// Short runs by default: the machine is shared (command-line flags still override).
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = parse, encode
}
criterion_main!(benches);
