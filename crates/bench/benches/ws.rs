//! WebSocket codec benchmarks: switchboard-ws against tungstenite, tokio-websockets and
//! fastwebsockets, in one run, on identical inputs.
//!
//! Naming (read by `cargo xtask bench`): group = what is measured (`ws_decode`, ...), function =
//! library (`switchboard` is ours; ratios are `switchboard / peer`), parameter = input.
//!
//! What each path includes is documented in crates/ws/README.md ("Benchmarks"). In short:
//! every decode path copies the wire bytes once into the library's own read buffer (from an
//! in-memory transport, or `BytesMut::from` for our sans-IO decoder), parses headers, unmasks,
//! and yields whole messages; every encode path writes header + payload and copies the frame
//! bytes into an in-memory "socket" (a fixed scratch buffer), masking for the client role.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::hint::black_box;
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use switchboard_ws::frame::Opcode;
use switchboard_ws::{
    Decoder, Encoder, Limits, Message, OutQueue, Payload, Role, StreamConfig, WebSocketStream,
};

/// Frame payload sizes for decode, unmask and encode.
const SIZES: &[usize] = &[16, 125, 1 << 10, 64 << 10, 1 << 20];
/// Payload bytes per iteration (at least one frame): many small frames, or one big one.
const TOTAL: usize = 1 << 20;

fn label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{}MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{}KiB", s >> 10),
        s => format!("{s}B"),
    }
}

fn frames_for(size: usize) -> usize {
    (TOTAL / size).max(1)
}

/// Deterministic pseudo-random bytes (xorshift), so every run sees the same input.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `count` masked client frames (opcode `op`), each carrying `payload`, each with its own key.
fn masked_frames(op: Opcode, payload: &[u8], count: usize) -> Vec<u8> {
    let mut wire = Vec::with_capacity(count * (payload.len() + 14));
    for i in 0..count {
        let k = (i as u32).wrapping_mul(0x9e37_79b9) ^ 0x37fa_213d;
        switchboard_ws::encode_frame_into(&mut wire, true, op, payload, Some(k.to_be_bytes()));
    }
    wire
}

/// Folds a delivered message into a checksum all libraries must agree on.
#[inline]
fn fold(acc: u64, payload: &[u8]) -> u64 {
    let last = payload.last().copied().unwrap_or(0) as u64;
    let first = payload.first().copied().unwrap_or(0) as u64;
    acc.wrapping_mul(31)
        .wrapping_add(payload.len() as u64)
        .wrapping_add(first << 8 | last)
}

// ---------------------------------------------------------------------------------------------
// In-memory transport and a trivial executor

/// A transport that reads from `input` and "sends" by copying into a fixed scratch buffer, as a
/// socket write copies into the kernel: every library pays the same copy, nothing grows.
struct MemStream<'a> {
    input: &'a [u8],
    sink: Box<[u8]>,
    pos: usize,
}

impl<'a> MemStream<'a> {
    fn reader(input: &'a [u8]) -> Self {
        MemStream {
            input,
            sink: Box::new([]),
            pos: 0,
        }
    }
}

impl MemStream<'static> {
    fn writer() -> Self {
        MemStream {
            input: &[],
            sink: vec![0u8; 4 << 20].into_boxed_slice(),
            pos: 0,
        }
    }
}

impl MemStream<'_> {
    fn put(&mut self, mut data: &[u8]) -> usize {
        let n = data.len();
        while !data.is_empty() {
            if self.pos == self.sink.len() {
                self.pos = 0;
            }
            let take = data.len().min(self.sink.len() - self.pos);
            self.sink[self.pos..self.pos + take].copy_from_slice(&data[..take]);
            self.pos += take;
            data = &data[take..];
        }
        n
    }

    fn take(&mut self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.input.len());
        dst[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        n
    }
}

impl io::Read for MemStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.take(buf))
    }
}

impl io::Write for MemStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.put(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncRead for MemStream<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = buf.remaining().min(self.input.len());
        buf.put_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for MemStream<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(self.put(buf)))
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(bufs.iter().map(|b| self.put(b)).sum()))
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs a future whose I/O is all in memory (so it never waits) to completion.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("an in-memory future kept returning Pending");
}

// ---------------------------------------------------------------------------------------------
// Decode: server role, masked client frames in, whole messages out

fn decode_switchboard(wire: &[u8], count: usize) -> u64 {
    // One copy into the read buffer, as a socket read would do.
    let mut buf = BytesMut::from(wire);
    let mut dec = Decoder::new(Role::Server, Limits::default());
    let mut acc = 0;
    for _ in 0..count {
        match dec.decode(&mut buf) {
            Ok(Some(m)) => acc = fold(acc, m.payload()),
            other => panic!("switchboard decode: {other:?}"),
        }
    }
    acc
}

fn decode_switchboard_stream(wire: &[u8], count: usize) -> u64 {
    block_on(async {
        let io = MemStream::reader(wire);
        let mut ws = WebSocketStream::from_raw(
            io,
            Role::Server,
            StreamConfig::default(),
            None,
            BytesMut::new(),
        );
        let mut acc = 0;
        for _ in 0..count {
            match ws.recv().await {
                Some(Ok(m)) => acc = fold(acc, m.payload()),
                other => panic!("switchboard stream: {other:?}"),
            }
        }
        acc
    })
}

fn decode_tungstenite(wire: &[u8], count: usize) -> u64 {
    use tungstenite::protocol::{Role, WebSocket};
    let mut ws = WebSocket::from_raw_socket(MemStream::reader(wire), Role::Server, None);
    let mut acc = 0;
    for _ in 0..count {
        match ws.read() {
            Ok(m) => acc = fold(acc, &m.into_data()),
            Err(e) => panic!("tungstenite: {e}"),
        }
    }
    acc
}

fn decode_tokio_websockets(wire: &[u8], count: usize) -> u64 {
    block_on(async {
        let mut ws = tokio_websockets::ServerBuilder::new().serve(MemStream::reader(wire));
        let mut acc = 0;
        for _ in 0..count {
            match ws.next().await {
                Some(Ok(m)) => acc = fold(acc, m.as_payload()),
                other => panic!("tokio-websockets: {other:?}"),
            }
        }
        acc
    })
}

fn decode_fastwebsockets(wire: &[u8], count: usize) -> u64 {
    use fastwebsockets::{FragmentCollector, Role, WebSocket};
    block_on(async {
        let ws = WebSocket::after_handshake(MemStream::reader(wire), Role::Server);
        let mut ws = FragmentCollector::new(ws);
        let mut acc = 0;
        for _ in 0..count {
            match ws.read_frame().await {
                Ok(f) => acc = fold(acc, &f.payload),
                Err(e) => panic!("fastwebsockets: {e}"),
            }
        }
        acc
    })
}

type DecodeFn = fn(&[u8], usize) -> u64;

const DECODERS: &[(&str, DecodeFn)] = &[
    ("switchboard", decode_switchboard),
    ("switchboard_stream", decode_switchboard_stream),
    ("tungstenite", decode_tungstenite),
    ("tokio-websockets", decode_tokio_websockets),
    ("fastwebsockets", decode_fastwebsockets),
];

fn decode_group(c: &mut Criterion, group: &str, op: Opcode, inputs: &[(String, Vec<u8>)]) {
    let mut g = c.benchmark_group(group);
    for (name, payload) in inputs {
        let count = frames_for(payload.len());
        let wire = masked_frames(op, payload, count);
        // Every library must deliver the same messages before we time anything.
        let expect = decode_switchboard(&wire, count);
        for (lib, f) in DECODERS {
            assert_eq!(
                f(&wire, count),
                expect,
                "{lib} decoded {group}/{name} differently"
            );
        }
        g.throughput(Throughput::Bytes((payload.len() * count) as u64));
        for (lib, f) in DECODERS {
            g.bench_with_input(BenchmarkId::new(*lib, name), &wire, |b, wire| {
                b.iter(|| f(black_box(wire), count))
            });
        }
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let inputs: Vec<_> = SIZES
        .iter()
        .map(|&s| (label(s), pseudo_random(s, s as u64)))
        .collect();
    decode_group(c, "ws_decode", Opcode::Binary, &inputs);
    // Text: the same pipeline plus UTF-8 validation (mixed 1-4 byte code points).
    let inputs: Vec<_> = [1 << 10, 64 << 10]
        .iter()
        .map(|&s| (label(s), mixed_text(s)))
        .collect();
    decode_group(c, "ws_decode_text", Opcode::Text, &inputs);
}

// ---------------------------------------------------------------------------------------------
// Unmasking alone (in place), with memcpy of the same bytes as the ceiling

fn unmask(c: &mut Criterion) {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut g = c.benchmark_group("ws_unmask");
    for &size in SIZES {
        let name = label(size);
        let src = pseudo_random(size, 7);
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = src.clone();
        g.bench_function(BenchmarkId::new("switchboard", &name), |b| {
            b.iter(|| switchboard_ws::mask::apply_mask(black_box(&mut buf), black_box(key)))
        });
        g.bench_function(BenchmarkId::new("fastwebsockets", &name), |b| {
            b.iter(|| fastwebsockets::unmask(black_box(&mut buf), black_box(key)))
        });
        g.bench_function(BenchmarkId::new("memcpy", &name), |b| {
            b.iter(|| black_box(&mut buf).copy_from_slice(black_box(&src)))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// UTF-8 validation of text payloads

/// Valid UTF-8 of exactly `len` bytes mixing 1-, 2-, 3- and 4-byte code points.
fn mixed_text(len: usize) -> Vec<u8> {
    let pieces = ["switchboard ", "κόσμε ", "µ@ßöäü ", "日本語 ", "🦀 "];
    let mut s = String::with_capacity(len + 16);
    let mut i = 0;
    while s.len() < len {
        s.push_str(pieces[i % pieces.len()]);
        i += 1;
    }
    while s.len() > len {
        s.pop();
    }
    while s.len() < len {
        s.push('.');
    }
    s.into_bytes()
}

fn ascii_text(len: usize) -> Vec<u8> {
    let words = b"the quick brown fox jumps over the lazy dog ";
    words.iter().copied().cycle().take(len).collect()
}

fn utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws_utf8");
    for (kind, make) in [
        ("ascii", ascii_text as fn(usize) -> Vec<u8>),
        ("mixed", mixed_text),
    ] {
        for size in [125, 64 << 10, 1 << 20] {
            let name = format!("{kind}_{}", label(size));
            let text = make(size);
            assert!(std::str::from_utf8(&text).is_ok());
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(BenchmarkId::new("switchboard", &name), &text, |b, t| {
                b.iter(|| {
                    let mut v = switchboard_ws::utf8::Utf8Validator::new();
                    v.finish(black_box(t)).is_ok()
                })
            });
            // As bytes arrive from the socket: 16 KiB reads (our stream's read size).
            g.bench_with_input(
                BenchmarkId::new("switchboard_16KiB_chunks", &name),
                &text,
                |b, t| {
                    b.iter(|| {
                        let mut v = switchboard_ws::utf8::Utf8Validator::new();
                        let ok = black_box(t).chunks(16 << 10).all(|c| v.feed(c).is_ok());
                        ok && v.finish(&[]).is_ok()
                    })
                },
            );
            g.bench_with_input(BenchmarkId::new("std", &name), &text, |b, t| {
                b.iter(|| std::str::from_utf8(black_box(t)).is_ok())
            });
            // fastwebsockets and tokio-websockets (and so their Text messages) use simdutf8.
            g.bench_with_input(BenchmarkId::new("simdutf8", &name), &text, |b, t| {
                b.iter(|| simdutf8::basic::from_utf8(black_box(t)).is_ok())
            });
        }
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Encode: binary messages to wire bytes, written to an in-memory socket

/// Bytes our encoder queues before they are written out (tungstenite buffers 128 KiB,
/// tokio-websockets flushes at 8 KiB, fastwebsockets writes each frame at once).
const DRAIN_AT: usize = 64 << 10;

fn drain(out: &mut OutQueue, sink: &mut MemStream<'_>) {
    while !out.is_empty() {
        let mut slices = [IoSlice::new(&[]); 64];
        let k = out.io_slices(&mut slices);
        let n: usize = slices[..k].iter().map(|s| sink.put(s)).sum();
        out.consume(n);
    }
}

struct EncodeInput {
    payload: Bytes,
    count: usize,
}

fn encode_switchboard(role: Role) -> impl FnMut(&EncodeInput) {
    let mut enc = Encoder::new(role);
    let mut out = OutQueue::new();
    let mut sink = MemStream::writer();
    move |inp| {
        for _ in 0..inp.count {
            if let Err(e) = enc.encode(Opcode::Binary, Payload::Shared(&inp.payload), &mut out) {
                panic!("switchboard encode: {e}");
            }
            if out.len() >= DRAIN_AT {
                drain(&mut out, &mut sink);
            }
        }
        drain(&mut out, &mut sink);
    }
}

fn encode_switchboard_stream(role: Role) -> impl FnMut(&EncodeInput) {
    let mut ws = WebSocketStream::from_raw(
        MemStream::writer(),
        role,
        StreamConfig::default(),
        None,
        BytesMut::new(),
    );
    move |inp| {
        block_on(async {
            for _ in 0..inp.count {
                if let Err(e) = ws.feed(Message::Binary(inp.payload.clone())).await {
                    panic!("switchboard stream: {e}");
                }
            }
            if let Err(e) = ws.flush().await {
                panic!("switchboard stream: {e}");
            }
        })
    }
}

fn encode_tungstenite(role: Role) -> impl FnMut(&EncodeInput) {
    use tungstenite::protocol::{Role as R, WebSocket};
    let role = match role {
        Role::Server => R::Server,
        Role::Client => R::Client,
    };
    let mut ws = WebSocket::from_raw_socket(MemStream::writer(), role, None);
    move |inp| {
        for _ in 0..inp.count {
            if let Err(e) = ws.write(tungstenite::Message::Binary(inp.payload.clone())) {
                panic!("tungstenite: {e}");
            }
        }
        if let Err(e) = ws.flush() {
            panic!("tungstenite: {e}");
        }
    }
}

fn encode_tokio_websockets(role: Role) -> impl FnMut(&EncodeInput) {
    let mut ws = match role {
        Role::Server => tokio_websockets::ServerBuilder::new().serve(MemStream::writer()),
        Role::Client => tokio_websockets::ClientBuilder::new().take_over(MemStream::writer()),
    };
    move |inp| {
        block_on(async {
            for _ in 0..inp.count {
                if let Err(e) = ws
                    .feed(tokio_websockets::Message::binary(inp.payload.clone()))
                    .await
                {
                    panic!("tokio-websockets: {e}");
                }
            }
            if let Err(e) = ws.flush().await {
                panic!("tokio-websockets: {e}");
            }
        })
    }
}

fn encode_fastwebsockets(role: Role) -> impl FnMut(&EncodeInput) {
    use fastwebsockets::{Frame, Payload, Role as R, WebSocket};
    let role = match role {
        Role::Server => R::Server,
        Role::Client => R::Client,
    };
    let mut ws = WebSocket::after_handshake(MemStream::writer(), role);
    move |inp| {
        block_on(async {
            for _ in 0..inp.count {
                let frame = Frame::binary(Payload::Borrowed(&inp.payload));
                if let Err(e) = ws.write_frame(frame).await {
                    panic!("fastwebsockets: {e}");
                }
            }
            if let Err(e) = ws.flush().await {
                panic!("fastwebsockets: {e}");
            }
        })
    }
}

fn encode(c: &mut Criterion) {
    for (group, role) in [
        ("ws_encode_server", Role::Server),
        ("ws_encode_client", Role::Client),
    ] {
        let mut g = c.benchmark_group(group);
        for &size in SIZES {
            let name = label(size);
            let inp = EncodeInput {
                payload: Bytes::from(pseudo_random(size, 3)),
                count: frames_for(size),
            };
            g.throughput(Throughput::Bytes((size * inp.count) as u64));
            let mut f = encode_switchboard(role);
            g.bench_with_input(BenchmarkId::new("switchboard", &name), &inp, |b, i| {
                b.iter(|| f(i))
            });
            let mut f = encode_switchboard_stream(role);
            g.bench_with_input(
                BenchmarkId::new("switchboard_stream", &name),
                &inp,
                |b, i| b.iter(|| f(i)),
            );
            let mut f = encode_tungstenite(role);
            g.bench_with_input(BenchmarkId::new("tungstenite", &name), &inp, |b, i| {
                b.iter(|| f(i))
            });
            let mut f = encode_tokio_websockets(role);
            g.bench_with_input(BenchmarkId::new("tokio-websockets", &name), &inp, |b, i| {
                b.iter(|| f(i))
            });
            let mut f = encode_fastwebsockets(role);
            g.bench_with_input(BenchmarkId::new("fastwebsockets", &name), &inp, |b, i| {
                b.iter(|| f(i))
            });
        }
        g.finish();
    }
}

/// Short runs: the machine is a shared 2-core box and this is a comparison, not a profile.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = decode, unmask, utf8, encode
}
criterion_main!(benches);
