//! The frame encoder and the outbound byte queue.

use crate::deflate::Deflater;
use crate::frame::{MAX_HEADER_LEN, Opcode, encode_header};
use crate::mask::{apply_mask, mask_copy};
use crate::{Error, Role};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;

/// Payloads at least this long are queued as their own `Bytes` (zero-copy, written with a
/// vectored write) instead of being copied next to their header.
pub const ZERO_COPY_THRESHOLD: usize = 4096;

/// Bytes waiting to be written: a list of `Bytes` chunks plus a tail buffer that small frames
/// are appended to. Implements [`bytes::Buf`], including `chunks_vectored` for vectored writes.
#[derive(Debug, Default)]
pub struct OutQueue {
    /// The header of a zero-copy payload queued while the queue was empty, kept here (before
    /// `chunks`) instead of being split off `tail` into a `Bytes` of its own: 10 x 64 KiB echo,
    /// ~150 instructions less per message. Bytes `head_pos..head_end` are queued.
    head: [u8; MAX_HEADER_LEN],
    head_pos: u8,
    head_end: u8,
    chunks: VecDeque<Bytes>,
    tail: BytesMut,
    len: usize,
    /// Total bytes ever advanced past (written).
    written: u64,
    /// End offsets (in the `written` numbering) of queued automatic Pongs.
    pong_ends: VecDeque<u64>,
}

impl OutQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Automatic Pongs queued and not yet fully written.
    pub fn pending_pongs(&self) -> usize {
        self.pong_ends.len()
    }

    fn mark_pong(&mut self) {
        self.pong_ends.push_back(self.written + self.len as u64);
    }

    /// Appends bytes by copying them into the tail buffer.
    pub fn push_slice(&mut self, b: &[u8]) {
        self.tail.extend_from_slice(b);
        self.len += b.len();
    }

    /// Appends a `Bytes` without copying.
    pub fn push_bytes(&mut self, b: Bytes) {
        if b.is_empty() {
            return;
        }
        if !self.tail.is_empty() {
            self.chunks.push_back(self.tail.split().freeze());
        }
        self.len += b.len();
        self.chunks.push_back(b);
    }

    /// Appends a frame's header and payload to the tail buffer with one capacity check.
    fn push_frame(&mut self, hdr: &[u8], data: &[u8]) {
        let n = hdr.len() + data.len();
        self.tail.reserve(n);
        self.tail.put_slice(hdr);
        self.tail.put_slice(data);
        self.len += n;
    }

    /// Appends a frame's header and its payload, the payload without copying.
    fn push_frame_bytes(&mut self, hdr: &[u8], b: Bytes) {
        if self.len == 0 && hdr.len() <= MAX_HEADER_LEN {
            self.head[..hdr.len()].copy_from_slice(hdr);
            self.head_pos = 0;
            self.head_end = hdr.len() as u8;
            self.len = hdr.len();
            if !b.is_empty() {
                self.len += b.len();
                self.chunks.push_back(b);
            }
        } else {
            self.push_slice(hdr);
            self.push_bytes(b);
        }
    }

    fn head(&self) -> &[u8] {
        &self.head[self.head_pos as usize..self.head_end as usize]
    }

    /// Appends a 2-byte header and its payload (at most 125 bytes) to the tail buffer.
    #[inline]
    fn push_short_frame(&mut self, hdr: [u8; 2], data: &[u8]) {
        let n = 2 + data.len();
        self.tail.reserve(n);
        self.tail.extend_from_slice(&hdr);
        self.tail.extend_from_slice(data);
        self.len += n;
    }

    /// Appends `n` bytes written by `f` into the tail buffer (masking in place, for example).
    fn push_with(&mut self, n: usize, f: impl FnOnce(&mut [u8])) {
        let start = self.tail.len();
        self.tail.reserve(n);
        self.tail.put_bytes(0, n);
        f(&mut self.tail[start..]);
        self.len += n;
    }

    /// Gives the queue's memory back when nothing is queued (the tail buffer and the chunk and
    /// pong lists keep their capacity otherwise). For connections that expect to sit idle:
    /// the next frame queued allocates again.
    pub fn release_idle(&mut self) {
        if self.len == 0 {
            if self.tail.capacity() > 0 {
                self.tail = BytesMut::new();
            }
            if self.chunks.capacity() > 0 {
                self.chunks = VecDeque::new();
            }
            if self.pong_ends.capacity() > 0 {
                self.pong_ends = VecDeque::new();
            }
        }
    }

    /// The queued bytes when they are one contiguous slice (the common case of small frames,
    /// all copied into the tail buffer): a plain `write` of it skips building an iovec array.
    pub fn contiguous(&self) -> Option<&[u8]> {
        if self.head_pos < self.head_end {
            return (self.chunks.is_empty() && self.tail.is_empty()).then(|| self.head());
        }
        match (self.chunks.len(), self.tail.is_empty()) {
            (0, _) => Some(&self.tail),
            (1, true) => self.chunks.front().map(|c| &c[..]),
            _ => None,
        }
    }

    /// How many slices [`OutQueue::io_slices`] fills at most: the `Bytes` chunks and the tail.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len() + 2
    }

    /// Fills `dst` with the queued chunks in order; returns how many slices were filled.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for c in std::iter::once(self.head())
            .chain(self.chunks.iter().map(|b| &b[..]))
            .chain(std::iter::once(&self.tail[..]))
        {
            if n == dst.len() {
                break;
            }
            if !c.is_empty() {
                dst[n] = IoSlice::new(c);
                n += 1;
            }
        }
        n
    }

    /// Drops `n` written bytes from the front.
    pub fn consume(&mut self, mut n: usize) {
        if n >= self.len && self.chunks.is_empty() && self.pong_ends.is_empty() {
            // Everything written, and it was all in the tail (small frames): start over at the
            // front of the tail's allocation.
            self.written += self.len as u64;
            self.len = 0;
            self.tail.clear();
            self.head_pos = 0;
            self.head_end = 0;
            return;
        }
        n = n.min(self.len);
        self.len -= n;
        self.written += n as u64;
        let in_head = (self.head_end - self.head_pos) as usize;
        if in_head > 0 {
            let k = n.min(in_head);
            self.head_pos += k as u8;
            n -= k;
        }
        while n > 0 {
            if let Some(front) = self.chunks.front_mut() {
                if front.len() <= n {
                    n -= front.len();
                    self.chunks.pop_front();
                } else {
                    front.advance(n);
                    n = 0;
                }
            } else if n == self.tail.len() {
                // All written: keep writing from the start of the allocation, so the next push
                // finds its capacity without `reserve` reclaiming the advanced-over front.
                self.tail.clear();
                n = 0;
            } else {
                self.tail.advance(n);
                n = 0;
            }
        }
        if self.tail.is_empty() {
            self.tail.clear();
        }
        while self.pong_ends.front().is_some_and(|&e| e <= self.written) {
            self.pong_ends.pop_front();
        }
    }
}

impl Buf for OutQueue {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        if self.head_pos < self.head_end {
            return self.head();
        }
        match self.chunks.front() {
            Some(c) => c,
            None => &self.tail,
        }
    }

    fn advance(&mut self, cnt: usize) {
        self.consume(cnt);
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.io_slices(dst)
    }
}

/// Encodes frames for an endpoint of a given role: clients mask every frame with a fresh random
/// key, servers never mask. Data messages are compressed when permessage-deflate is on and the
/// payload is long enough.
#[derive(Debug)]
pub struct Encoder {
    role: Role,
    deflater: Option<Deflater>,
    scratch: Vec<u8>,
    /// Client masking keys: a ChaCha12 CSPRNG seeded from the thread RNG (RFC 6455 §5.3 asks for
    /// unpredictable keys), kept per encoder so each key costs a buffered read, not a TLS lookup.
    /// Boxed: its 64-word block buffer would otherwise be ~330 bytes in every server-role
    /// connection, which never masks.
    rng: Option<Box<rand::rngs::StdRng>>,
}

/// A payload to encode: borrowed (copied into the queue) or shared (`Bytes`, queued zero-copy
/// when large, unmasked and uncompressed).
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// Copied.
    Slice(&'a [u8]),
    /// Referenced.
    Shared(&'a Bytes),
}

impl Payload<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Slice(s) => s,
            Payload::Shared(b) => b,
        }
    }
}

impl Encoder {
    /// An encoder for `role`, without compression.
    pub fn new(role: Role) -> Self {
        let rng = match role {
            Role::Client => Some(Box::new(rand::SeedableRng::from_rng(&mut rand::rng()))),
            Role::Server => None,
        };
        Encoder {
            role,
            deflater: None,
            scratch: Vec::new(),
            rng,
        }
    }

    /// Enables permessage-deflate for data messages.
    pub fn with_deflater(mut self, d: Deflater) -> Self {
        self.deflater = Some(d);
        self
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Encodes one unfragmented frame (a whole message) into `out`.
    ///
    /// Control frames must carry at most 125 bytes ([`Error::InvalidInput`] otherwise).
    #[inline]
    pub fn encode(
        &mut self,
        opcode: Opcode,
        payload: Payload<'_>,
        out: &mut OutQueue,
    ) -> Result<(), Error> {
        self.encode_frame(true, opcode, payload, out)
    }

    /// Encodes one frame with an explicit FIN bit (for sending a message in fragments: the first
    /// frame with `Text`/`Binary`, then `Continuation`s, the last with `fin`). Fragmented frames
    /// are never compressed.
    #[inline]
    pub fn encode_frame(
        &mut self,
        fin: bool,
        opcode: Opcode,
        payload: Payload<'_>,
        out: &mut OutQueue,
    ) -> Result<(), Error> {
        let data = payload.as_slice();
        if opcode.is_control() && (data.len() > 125 || !fin) {
            return Err(Error::InvalidInput(
                "control frame payload over 125 bytes or fragmented",
            ));
        }
        let compress = fin
            && matches!(opcode, Opcode::Text | Opcode::Binary)
            && self.deflater.as_ref().is_some_and(|d| d.wants(data.len()));
        if compress {
            self.encode_compressed(opcode, data, out)?;
        } else if self.role == Role::Server && data.len() <= 125 {
            // Unmasked with a 7-bit length: the header is two bytes (small echoes and chat
            // messages, the common case for a server).
            let hdr = [(fin as u8) << 7 | opcode as u8, data.len() as u8];
            out.push_short_frame(hdr, data);
            if opcode == Opcode::Pong {
                out.mark_pong();
            }
        } else {
            self.put(fin, false, opcode, payload, out);
        }
        Ok(())
    }

    /// Compresses `data` and queues it as one frame with RSV1 set.
    fn encode_compressed(
        &mut self,
        opcode: Opcode,
        data: &[u8],
        out: &mut OutQueue,
    ) -> Result<(), Error> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let r = match &mut self.deflater {
            Some(d) => d.compress(data, &mut buf),
            None => Ok(()),
        };
        if let Err(e) = r {
            self.scratch = buf;
            return Err(e);
        }
        self.put(true, true, opcode, Payload::Slice(&buf), out);
        if buf.capacity() <= 256 << 10 {
            self.scratch = buf;
        }
        Ok(())
    }

    fn put(
        &mut self,
        fin: bool,
        rsv1: bool,
        opcode: Opcode,
        payload: Payload<'_>,
        out: &mut OutQueue,
    ) {
        let data = payload.as_slice();
        let mut hdr = [0u8; MAX_HEADER_LEN];
        match self.role {
            Role::Client => {
                let key: [u8; 4] = match &mut self.rng {
                    Some(r) => rand::Rng::random(r.as_mut()),
                    None => rand::random(),
                };
                let n = encode_header(&mut hdr, fin, rsv1, opcode, Some(key), data.len() as u64);
                out.push_slice(&hdr[..n]);
                out.push_with(data.len(), |dst| mask_copy(dst, data, key));
            }
            Role::Server => {
                let n = encode_header(&mut hdr, fin, rsv1, opcode, None, data.len() as u64);
                match payload {
                    Payload::Shared(b) if b.len() >= ZERO_COPY_THRESHOLD => {
                        out.push_frame_bytes(&hdr[..n], b.clone())
                    }
                    _ => out.push_frame(&hdr[..n], data),
                }
            }
        }
        if opcode == Opcode::Pong {
            out.mark_pong();
        }
    }
}

/// Encodes one frame into `dst` (header then payload, masked with `mask` if given). A
/// convenience for tests, benches and simple callers; [`Encoder`] is the streaming form.
///
/// ```
/// use switchboard_ws::{encode_frame_into, frame::Opcode};
/// let mut out = Vec::new();
/// encode_frame_into(&mut out, true, Opcode::Text, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d]));
/// assert_eq!(out, [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// ```
pub fn encode_frame_into(
    dst: &mut Vec<u8>,
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let mut hdr = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut hdr, fin, false, opcode, mask, payload.len() as u64);
    dst.reserve(n + payload.len());
    dst.extend_from_slice(&hdr[..n]);
    let start = dst.len();
    dst.extend_from_slice(payload);
    if let Some(k) = mask {
        apply_mask(&mut dst[start..], k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_slot_keeps_order_through_partial_writes() {
        let payload: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let hdr = [0x82, 126, 0x13, 0x88];
        let mut expect = hdr.to_vec();
        expect.extend_from_slice(&payload);
        expect.extend_from_slice(b"small frame");
        expect.extend_from_slice(&hdr);
        expect.extend_from_slice(&payload);
        for step in [1, 3, 4, 5, 100, 4999, 5004, 6000, 20000] {
            let mut q = OutQueue::new();
            q.push_frame_bytes(&hdr, Bytes::from(payload.clone()));
            assert!(
                q.head_end > 0,
                "an empty queue keeps the header in the slot"
            );
            assert_eq!(q.contiguous(), None);
            q.push_slice(b"small frame");
            // not empty any more: header into the tail, payload a chunk of its own
            q.push_frame_bytes(&hdr, Bytes::from(payload.clone()));
            assert_eq!(q.len(), expect.len());
            let mut got = Vec::new();
            while !q.is_empty() {
                // what a vectored write would send equals what `chunk` walks through
                let mut slices = [IoSlice::new(&[]); 8];
                let k = q.io_slices(&mut slices);
                let flat: Vec<u8> = slices[..k].iter().flat_map(|s| s.iter().copied()).collect();
                assert_eq!(flat.len(), q.len(), "step {step}");
                let n = step.min(q.len());
                assert_eq!(
                    &q.chunk()[..n.min(q.chunk().len())],
                    &flat[..n.min(q.chunk().len())]
                );
                got.extend_from_slice(&flat[..n]);
                q.consume(n);
            }
            assert_eq!(got, expect, "step {step}");
            assert!(q.is_empty() && q.contiguous() == Some(&[][..]));
        }
    }

    #[test]
    fn release_idle_frees_only_an_empty_queue() {
        let mut q = OutQueue::new();
        q.push_slice(b"hello");
        q.release_idle();
        assert_eq!(q.len(), 5, "queued bytes are kept");
        assert!(q.tail.capacity() >= 5);
        q.consume(5);
        assert!(
            q.tail.capacity() > 0,
            "consume keeps the capacity for the next frame"
        );
        q.release_idle();
        assert_eq!(q.tail.capacity(), 0);
        assert_eq!(q.chunks.capacity(), 0);
        q.push_slice(b"again");
        assert_eq!(q.chunk(), b"again");
        assert_eq!(q.contiguous(), Some(&b"again"[..]));
        q.push_bytes(Bytes::from(vec![1u8; 300]));
        assert_eq!(q.contiguous(), None, "two chunks need a vectored write");
        q.consume(5);
        assert_eq!(q.contiguous().map(<[u8]>::len), Some(300));
    }
}
