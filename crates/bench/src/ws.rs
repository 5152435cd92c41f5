//! The WebSocket comparison paths shared by `benches/ws.rs` and the `ws_icount` binary: inputs,
//! an in-memory transport, and one decode and one encode function per library, each through
//! that library's most direct public API. crates/ws/README.md ("Benchmarks") says what each
//! path includes.

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use switchboard_ws::frame::Opcode;
use switchboard_ws::{
    Decoder, Encoder, Limits, Message, OutQueue, Payload, Role, StreamConfig, WebSocketStream,
};

/// Frame payload sizes for decode, unmask and encode.
pub const SIZES: &[usize] = &[16, 125, 1 << 10, 64 << 10, 1 << 20];
/// Payload bytes per iteration (at least one frame): many small frames, or one big one.
pub const TOTAL: usize = 1 << 20;

/// A short label for a size: `16B`, `1KiB`, `1MiB`.
pub fn label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s.is_multiple_of(1 << 20) => format!("{}MiB", s >> 20),
        s if s >= 1 << 10 && s.is_multiple_of(1 << 10) => format!("{}KiB", s >> 10),
        s => format!("{s}B"),
    }
}

/// How many frames of `size` bytes make one iteration ([`TOTAL`] bytes, at least one frame).
pub fn frames_for(size: usize) -> usize {
    (TOTAL / size).max(1)
}

/// Deterministic pseudo-random bytes (xorshift), so every run sees the same input.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
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
pub fn masked_frames(op: Opcode, payload: &[u8], count: usize) -> Vec<u8> {
    let mut wire = Vec::with_capacity(count * (payload.len() + 14));
    for i in 0..count {
        let k = (i as u32).wrapping_mul(0x9e37_79b9) ^ 0x37fa_213d;
        switchboard_ws::encode_frame_into(&mut wire, true, op, payload, Some(k.to_be_bytes()));
    }
    wire
}

/// Folds a delivered message into a checksum all libraries must agree on.
#[inline]
pub fn fold(acc: u64, payload: &[u8]) -> u64 {
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
pub struct MemStream<'a> {
    input: &'a [u8],
    sink: Box<[u8]>,
    pos: usize,
}

impl<'a> MemStream<'a> {
    /// A transport whose reads return `input`, then EOF.
    pub fn reader(input: &'a [u8]) -> Self {
        MemStream {
            input,
            sink: Box::new([]),
            pos: 0,
        }
    }
}

impl MemStream<'static> {
    /// A transport that accepts writes into a 4 MiB scratch buffer (wrapping around).
    pub fn writer() -> Self {
        MemStream {
            input: &[],
            sink: vec![0u8; 4 << 20].into_boxed_slice(),
            pos: 0,
        }
    }
}

impl MemStream<'_> {
    /// Copies `data` into the scratch buffer; returns its length.
    pub fn put(&mut self, mut data: &[u8]) -> usize {
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

    /// Copies up to `dst.len()` bytes of the remaining input into `dst`.
    pub fn take(&mut self, dst: &mut [u8]) -> usize {
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
pub fn block_on<F: Future>(f: F) -> F::Output {
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

/// Read size of the [`decode_switchboard`] loop (a common socket read size).
pub const READ_SIZE: usize = 64 << 10;

/// switchboard-ws: [`Decoder`] (server role) over a `BytesMut` read buffer, fed the way a socket
/// loop feeds it: [`Decoder::reserve_read`] with a read size of [`READ_SIZE`], then one "read"
/// into the buffer's spare capacity of at most the bytes it returned.
pub fn decode_switchboard(wire: &[u8], count: usize) -> u64 {
    let mut input = wire;
    let mut buf = BytesMut::new();
    let mut dec = Decoder::new(Role::Server, Limits::default());
    let mut acc = 0;
    let mut n = 0;
    while n < count {
        match dec.decode(&mut buf) {
            Ok(Some(m)) => {
                acc = fold(acc, m.payload());
                n += 1;
            }
            Ok(None) if !input.is_empty() => {
                // the "read": one copy into the buffer's spare capacity
                let want = dec.reserve_read(&mut buf, READ_SIZE).min(input.len());
                buf.extend_from_slice(&input[..want]);
                input = &input[want..];
            }
            other => panic!("switchboard decode: {other:?}"),
        }
    }
    acc
}

/// switchboard-ws: the tokio adapter [`WebSocketStream::recv`] over a [`MemStream`].
pub fn decode_switchboard_stream(wire: &[u8], count: usize) -> u64 {
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

/// tungstenite: `WebSocket::from_raw_socket(.., Role::Server, None).read()` over a [`MemStream`].
pub fn decode_tungstenite(wire: &[u8], count: usize) -> u64 {
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

/// tokio-websockets: `ServerBuilder::serve(..)` as a `Stream` of messages over a [`MemStream`].
pub fn decode_tokio_websockets(wire: &[u8], count: usize) -> u64 {
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

/// fastwebsockets: `FragmentCollector::read_frame` on `WebSocket::after_handshake(.., Role::Server)`.
pub fn decode_fastwebsockets(wire: &[u8], count: usize) -> u64 {
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

/// Decodes `count` messages from `wire`; returns the [`fold`] of their payloads.
pub type DecodeFn = fn(&[u8], usize) -> u64;

/// Every decode path, ours first: (function id, path).
pub const DECODERS: &[(&str, DecodeFn)] = &[
    ("switchboard", decode_switchboard),
    ("switchboard_stream", decode_switchboard_stream),
    ("tungstenite", decode_tungstenite),
    ("tokio-websockets", decode_tokio_websockets),
    ("fastwebsockets", decode_fastwebsockets),
];

/// Valid UTF-8 of exactly `len` bytes mixing 1-, 2-, 3- and 4-byte code points.
pub fn mixed_text(len: usize) -> Vec<u8> {
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

/// ASCII text of exactly `len` bytes.
pub fn ascii_text(len: usize) -> Vec<u8> {
    let words = b"the quick brown fox jumps over the lazy dog ";
    words.iter().copied().cycle().take(len).collect()
}

/// Bytes our encoder queues before they are written out (tungstenite buffers 128 KiB,
/// tokio-websockets flushes at 8 KiB, fastwebsockets writes each frame at once).
pub const DRAIN_AT: usize = 64 << 10;

/// Writes everything `out` holds into `sink` (as our tokio adapter does with vectored writes).
pub fn drain(out: &mut OutQueue, sink: &mut MemStream<'_>) {
    while !out.is_empty() {
        let mut slices = [IoSlice::new(&[]); 64];
        let k = out.io_slices(&mut slices);
        let n: usize = slices[..k].iter().map(|s| sink.put(s)).sum();
        out.consume(n);
    }
}

/// What one encode iteration sends: `count` binary messages carrying `payload`.
pub struct EncodeInput {
    /// The payload of every message.
    pub payload: Bytes,
    /// Messages per iteration.
    pub count: usize,
}

/// switchboard-ws: [`Encoder::encode`] into an [`OutQueue`], drained at [`DRAIN_AT`].
pub fn encode_switchboard(role: Role) -> Box<dyn FnMut(&EncodeInput)> {
    let mut enc = Encoder::new(role);
    let mut out = OutQueue::new();
    let mut sink = MemStream::writer();
    Box::new(move |inp| {
        for _ in 0..inp.count {
            if let Err(e) = enc.encode(Opcode::Binary, Payload::Shared(&inp.payload), &mut out) {
                panic!("switchboard encode: {e}");
            }
            if out.len() >= DRAIN_AT {
                drain(&mut out, &mut sink);
            }
        }
        drain(&mut out, &mut sink);
    })
}

/// switchboard-ws: [`WebSocketStream::feed`] each message, then `flush`.
pub fn encode_switchboard_stream(role: Role) -> Box<dyn FnMut(&EncodeInput)> {
    let mut ws = WebSocketStream::from_raw(
        MemStream::writer(),
        role,
        StreamConfig::default(),
        None,
        BytesMut::new(),
    );
    Box::new(move |inp| {
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
    })
}

/// tungstenite: `WebSocket::write` each message, then `flush`.
pub fn encode_tungstenite(role: Role) -> Box<dyn FnMut(&EncodeInput)> {
    use tungstenite::protocol::{Role as R, WebSocket};
    let role = match role {
        Role::Server => R::Server,
        Role::Client => R::Client,
    };
    let mut ws = WebSocket::from_raw_socket(MemStream::writer(), role, None);
    Box::new(move |inp| {
        for _ in 0..inp.count {
            if let Err(e) = ws.write(tungstenite::Message::Binary(inp.payload.clone())) {
                panic!("tungstenite: {e}");
            }
        }
        if let Err(e) = ws.flush() {
            panic!("tungstenite: {e}");
        }
    })
}

/// tokio-websockets: `SinkExt::feed` each message, then `flush`.
pub fn encode_tokio_websockets(role: Role) -> Box<dyn FnMut(&EncodeInput)> {
    let mut ws = match role {
        Role::Server => tokio_websockets::ServerBuilder::new().serve(MemStream::writer()),
        Role::Client => tokio_websockets::ClientBuilder::new().take_over(MemStream::writer()),
    };
    Box::new(move |inp| {
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
    })
}

/// fastwebsockets: `WebSocket::write_frame` each message (borrowed payload), then `flush`.
pub fn encode_fastwebsockets(role: Role) -> Box<dyn FnMut(&EncodeInput)> {
    use fastwebsockets::{Frame, Payload, Role as R, WebSocket};
    let role = match role {
        Role::Server => R::Server,
        Role::Client => R::Client,
    };
    let mut ws = WebSocket::after_handshake(MemStream::writer(), role);
    Box::new(move |inp| {
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
    })
}

/// Builds one encode path for a role; the returned closure runs one iteration.
pub type EncodeFn = fn(Role) -> Box<dyn FnMut(&EncodeInput)>;

/// Every encode path, ours first: (function id, path).
pub const ENCODERS: &[(&str, EncodeFn)] = &[
    ("switchboard", encode_switchboard),
    ("switchboard_stream", encode_switchboard_stream),
    ("tungstenite", encode_tungstenite),
    ("tokio-websockets", encode_tokio_websockets),
    ("fastwebsockets", encode_fastwebsockets),
];
