//! The frame decoder and message assembler: bytes from a `BytesMut` in, [`Message`]s out.

use crate::deflate::Inflater;
use crate::frame::{Opcode, parse_header};
use crate::mask::apply_mask_offset;
use crate::message::{CloseFrame, Message, Utf8Bytes};
use crate::utf8::Utf8Validator;
use crate::{CloseCode, Error, Limits, Role};
use bytes::{Buf, Bytes, BytesMut};

/// Text payloads are unmasked and UTF-8-checked in blocks of this size: small enough to be
/// validated while still in L1, large enough that per-block costs stay small (8 KiB blocks cost
/// ~1.5k more instructions per 10 x 64 KiB text echo round trip).
const UTF8_BLOCK: usize = 32 << 10;

/// How much of a frame's claimed length [`Decoder::reserve_read`] reserves before any of it
/// arrived; beyond that, room for at most [`CLAIM_GROWTH`] times the bytes received.
const CLAIM_TRUST: usize = 64 << 10;

/// How far past a large frame's end [`Decoder::reserve_read`] lets a read go: enough for the
/// next frame's header, so at most this many bytes of a following frame are ever moved.
const READ_PAST_FRAME: usize = 64;

/// Growth factor of the read buffer inside a large frame. A buffer that grows moves the part of
/// the frame already received into the new allocation: doubling would copy a 1 MiB frame about
/// once more in total, growing 16-fold copies it once from 64 KiB (6% of it), while a peer
/// still has to send 1 byte for every 16 reserved (untouched reserved pages cost no RSS).
const CLAIM_GROWTH: usize = 16;

/// A frame whose header has been consumed and whose payload is (partly) in the buffer.
#[derive(Debug, Clone, Copy)]
struct PartialFrame {
    fin: bool,
    compressed: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    len: usize,
    /// Payload bytes already unmasked and UTF-8 checked (`check_utf8` frames; others are
    /// unmasked whole, when complete).
    done: usize,
    check_utf8: bool,
}

/// A fragmented (or compressed) data message being assembled.
#[derive(Debug)]
struct PartialMessage {
    text: bool,
    compressed: bool,
    data: Vec<u8>,
    fragments: usize,
}

/// Decodes frames from a read buffer and assembles messages (RFC 6455 §5, RFC 7692 §6).
///
/// * [`Decoder::decode`] takes bytes from the front of the buffer as frames complete and returns
///   `Ok(None)` when it needs more; it never rescans: each payload byte is unmasked exactly
///   once. Uncompressed text is unmasked and UTF-8 checked as it arrives, so invalid UTF-8 fails
///   fast even inside a partially received frame; other payloads (nothing to check byte by
///   byte) are unmasked in one pass once the frame is whole.
/// * Between messages, a whole unfragmented, uncompressed Text or Binary frame already in the
///   buffer takes a short path without the partial-frame bookkeeping (same checks).
/// * An unfragmented, uncompressed message's payload is `split_to(len).freeze()` of the read
///   buffer: no copy, no allocation.
/// * Control frames may arrive between fragments and are returned at once.
/// * After an error the decoder is failed: further calls return [`Error::Closed`].
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_ws::{Decoder, Limits, Message, Role};
/// // RFC 6455 §5.7: a masked "Hello" from a client
/// let mut buf = BytesMut::from(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58][..]);
/// let mut dec = Decoder::new(Role::Server, Limits::default());
/// assert_eq!(dec.decode(&mut buf).unwrap(), Some(Message::text("Hello")));
/// assert!(buf.is_empty());
/// ```
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    limits: Limits,
    frame: Option<PartialFrame>,
    msg: Option<PartialMessage>,
    utf8: Utf8Validator,
    inflater: Option<Inflater>,
    failed: bool,
}

impl Decoder {
    /// A decoder for an endpoint of `role` (a server decodes masked client frames).
    pub fn new(role: Role, limits: Limits) -> Self {
        Decoder {
            role,
            limits,
            frame: None,
            msg: None,
            utf8: Utf8Validator::new(),
            inflater: None,
            failed: false,
        }
    }

    /// Enables permessage-deflate decompression (RSV1 on the first frame of a data message).
    pub fn with_inflater(mut self, inflater: Inflater) -> Self {
        self.inflater = Some(inflater);
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Payload bytes of the current frame still missing from the buffer (0 between frames).
    /// A hint for how much to read; it is a claimed length, so cap it before allocating.
    pub fn frame_bytes_missing(&self, buf: &BytesMut) -> usize {
        self.frame.map_or(0, |f| f.len.saturating_sub(buf.len()))
    }

    /// Prepares `buf` for the next read from the transport and returns the most bytes that read
    /// should ask for (read into `buf`'s spare capacity, at most this many).
    ///
    /// * Between frames, and inside frames shorter than `read_size`: `read_size` (and at least
    ///   that much spare capacity). Not more even when the buffer has more room: a read that
    ///   runs on past the end of a large frame leaves the start of the next one at the end of
    ///   the allocation, to be moved to its front when the buffer runs out of room.
    /// * Inside a frame of at least `read_size` bytes whose header is parsed: room for the rest
    ///   of the frame, trusting its claimed length only up to 16 times what has arrived or
    ///   64 KiB, whichever is larger (geometric growth: nothing is allocated from a claimed
    ///   length up front), and the read stops at the frame's end plus 64 bytes. So the next
    ///   large frame starts at the front of a buffer holding at most its first 64 bytes, whose
    ///   allocation `BytesMut::reserve` takes back in place (moving those bytes) once the
    ///   previous payload is dropped: no more than 64 bytes of a partial frame are ever moved.
    ///   The 64 bytes make a read that finds nothing after the frame come back short, which
    ///   tells the runtime the socket is drained (no extra read that fails with `EAGAIN`).
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use switchboard_ws::{Decoder, Limits, Role};
    /// let dec = Decoder::new(Role::Server, Limits::default());
    /// let mut buf = BytesMut::new();
    /// let n = dec.reserve_read(&mut buf, 16 << 10);
    /// assert!(n == 16 << 10 && buf.capacity() - buf.len() >= n);
    /// ```
    #[inline]
    pub fn reserve_read(&self, buf: &mut BytesMut, read_size: usize) -> usize {
        let read_size = read_size.max(1);
        match self.frame {
            Some(f) if f.len >= read_size && f.len > buf.len() => {
                let missing = f.len - buf.len();
                let trusted = missing.min(buf.len().saturating_mul(CLAIM_GROWTH).max(CLAIM_TRUST));
                if trusted == missing {
                    // The whole rest fits: ask for a few bytes more, so that when nothing
                    // follows the frame (a peer waiting for our reply) the read comes back
                    // short and the runtime knows the socket is drained — without them the
                    // next read is a wasted EAGAIN system call per message.
                    buf.reserve(missing + READ_PAST_FRAME);
                    return missing + READ_PAST_FRAME;
                }
                buf.reserve(trusted);
                missing.min(buf.capacity() - buf.len())
            }
            _ => {
                buf.reserve(read_size);
                read_size
            }
        }
    }

    /// Decodes the next message from the front of `buf`.
    ///
    /// `Ok(None)` means "need more bytes"; consumed bytes are removed from `buf`, and a partial
    /// frame's header is consumed too (the decoder remembers it). `Err` fails the connection:
    /// close with [`Error::close_code`].
    #[inline]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, Error> {
        if self.failed {
            return Err(Error::Closed);
        }
        if self.frame.is_none()
            && self.msg.is_none()
            && let Some(r) = self.decode_whole(buf)
        {
            if r.is_err() {
                self.failed = true;
            }
            return r.map(Some);
        }
        self.decode_general(buf)
    }

    /// Every frame the short path leaves: partial frames, fragments, control frames, deflate,
    /// 64-bit lengths, and every error.
    #[inline(never)]
    fn decode_general(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, Error> {
        let r = self.decode_inner(buf);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// The common case, between messages: a whole unfragmented, uncompressed Text or Binary
    /// frame with a 7- or 16-bit length, masked as the role requires and within the limits, is
    /// already in `buf`. Decodes it without the partial-frame bookkeeping; `None` (nothing
    /// consumed, nothing changed) leaves every other case, errors included, to the general path.
    #[inline]
    fn decode_whole(&mut self, buf: &mut BytesMut) -> Option<Result<Message, Error>> {
        let (&b0, &b1) = (buf.first()?, buf.get(1)?);
        // FIN set, RSV bits clear, opcode Text or Binary
        let text = match b0 {
            0x81 => true,
            0x82 => false,
            _ => return None,
        };
        let masked = b1 & 0x80 != 0;
        if masked != (self.role == Role::Server) {
            return None;
        }
        let (len, hlen) = match b1 & 0x7f {
            126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
            127 => return None,
            n => (n as usize, 2),
        };
        let hlen = if masked { hlen + 4 } else { hlen };
        if buf.len() < hlen + len
            || len > self.limits.max_frame_size
            || len > self.limits.max_message_size
        {
            return None;
        }
        let (head, rest) = buf.split_at_mut(hlen);
        let data = &mut rest[..len];
        if masked {
            let key = [
                head[hlen - 4],
                head[hlen - 3],
                head[hlen - 2],
                head[hlen - 1],
            ];
            apply_mask_offset(data, key, 0);
        }
        if text && crate::utf8::validate(data).is_err() {
            return Some(Err(Error::InvalidUtf8));
        }
        let mut payload = buf.split_to(hlen + len).freeze();
        payload.advance(hlen);
        Some(Ok(if text {
            Message::Text(Utf8Bytes::from_validated(payload))
        } else {
            Message::Binary(payload)
        }))
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, Error> {
        loop {
            let mut f = match self.frame {
                Some(f) => f,
                None => {
                    let Some((h, hlen)) = parse_header(buf)? else {
                        return Ok(None);
                    };
                    let f = self.start_frame(h)?;
                    buf.advance(hlen);
                    f
                }
            };
            let avail = buf.len().min(f.len);
            if f.check_utf8 && avail > f.done {
                // Unmask and validate block by block, so each block is validated while it is
                // still in L1 (and an invalid sequence stops the work early).
                let mut at = f.done;
                while at < avail {
                    let end = avail.min(at + UTF8_BLOCK);
                    let block = &mut buf[at..end];
                    if let Some(k) = f.mask {
                        apply_mask_offset(block, k, at);
                    }
                    if self.utf8.feed(block).is_err() {
                        return Err(Error::InvalidUtf8);
                    }
                    at = end;
                }
                f.done = avail;
            } else if !f.check_utf8 && avail == f.len {
                // Nothing to check as bytes arrive: unmask in one pass once the frame is whole
                // (one call instead of one per read; 10 x 64 KiB echo, ~150 instructions less
                // per message).
                if let Some(k) = f.mask {
                    apply_mask_offset(&mut buf[f.done..avail], k, f.done);
                }
                f.done = avail;
            }
            if f.done < f.len {
                self.frame = Some(f);
                return Ok(None);
            }
            self.frame = None;
            let payload = buf.split_to(f.len).freeze();
            if let Some(m) = self.finish_frame(f, payload)? {
                return Ok(Some(m));
            }
        }
    }

    /// Header rules: RSV bits, masking by role, control-frame rules, fragmentation order, limits.
    fn start_frame(&mut self, h: crate::frame::FrameHeader) -> Result<PartialFrame, Error> {
        if h.rsv2 || h.rsv3 {
            return Err(Error::ReservedBits);
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(Error::UnmaskedFrame),
            (Role::Client, true) => return Err(Error::MaskedFrame),
            _ => {}
        }
        let mut check_utf8 = false;
        let mut compressed = false;
        if h.opcode.is_control() {
            if !h.fin {
                return Err(Error::FragmentedControlFrame);
            }
            if h.payload_len > 125 {
                return Err(Error::ControlFrameTooLong);
            }
            if h.rsv1 {
                return Err(Error::ReservedBits);
            }
        } else {
            if h.payload_len > self.limits.max_frame_size as u64 {
                return Err(Error::FrameTooLarge {
                    len: h.payload_len,
                    max: self.limits.max_frame_size,
                });
            }
            let len = h.payload_len as usize;
            if h.opcode == Opcode::Continuation {
                let Some(m) = &self.msg else {
                    return Err(Error::UnexpectedContinuation);
                };
                if h.rsv1 {
                    return Err(Error::ReservedBits);
                }
                if m.fragments >= self.limits.max_fragments {
                    return Err(Error::TooManyFragments {
                        max: self.limits.max_fragments,
                    });
                }
                if !m.compressed && m.data.len().saturating_add(len) > self.limits.max_message_size
                {
                    return Err(Error::MessageTooLarge {
                        max: self.limits.max_message_size,
                    });
                }
                compressed = m.compressed;
                check_utf8 = m.text && !m.compressed;
            } else {
                if self.msg.is_some() {
                    return Err(Error::ExpectedContinuation);
                }
                if h.rsv1 && self.inflater.is_none() {
                    return Err(Error::ReservedBits);
                }
                compressed = h.rsv1;
                if !compressed && len > self.limits.max_message_size {
                    return Err(Error::MessageTooLarge {
                        max: self.limits.max_message_size,
                    });
                }
                if h.opcode == Opcode::Text {
                    self.utf8.reset();
                    check_utf8 = !compressed;
                }
            }
        }
        Ok(PartialFrame {
            fin: h.fin,
            compressed,
            opcode: h.opcode,
            mask: h.mask,
            len: h.payload_len as usize,
            done: 0,
            check_utf8,
        })
    }

    fn finish_frame(&mut self, f: PartialFrame, payload: Bytes) -> Result<Option<Message>, Error> {
        match f.opcode {
            Opcode::Ping => Ok(Some(Message::Ping(payload))),
            Opcode::Pong => Ok(Some(Message::Pong(payload))),
            Opcode::Close => parse_close(payload).map(|c| Some(Message::Close(c))),
            Opcode::Text | Opcode::Binary => {
                let text = f.opcode == Opcode::Text;
                if f.compressed {
                    let mut data = Vec::new();
                    self.inflate(text, &payload, f.fin, &mut data)?;
                    if f.fin {
                        return self.complete(text, Bytes::from(data)).map(Some);
                    }
                    self.msg = Some(PartialMessage {
                        text,
                        compressed: true,
                        data,
                        fragments: 1,
                    });
                    Ok(None)
                } else if f.fin {
                    self.complete(text, payload).map(Some)
                } else {
                    self.msg = Some(PartialMessage {
                        text,
                        compressed: false,
                        data: payload.to_vec(),
                        fragments: 1,
                    });
                    Ok(None)
                }
            }
            Opcode::Continuation => {
                let Some(mut m) = self.msg.take() else {
                    return Err(Error::UnexpectedContinuation);
                };
                m.fragments += 1;
                if m.compressed {
                    self.inflate(m.text, &payload, f.fin, &mut m.data)?;
                } else {
                    m.data.extend_from_slice(&payload);
                }
                if f.fin {
                    self.complete(m.text, Bytes::from(m.data)).map(Some)
                } else {
                    self.msg = Some(m);
                    Ok(None)
                }
            }
        }
    }

    fn inflate(
        &mut self,
        text: bool,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let Self {
            inflater,
            utf8,
            limits,
            ..
        } = self;
        let Some(inflater) = inflater else {
            return Err(Error::ReservedBits);
        };
        let mut check = |s: &[u8]| -> Result<(), Error> {
            if text {
                utf8.feed(s).map_err(|_| Error::InvalidUtf8)
            } else {
                Ok(())
            }
        };
        inflater.inflate(input, last, out, limits.max_message_size, &mut check)
    }

    fn complete(&mut self, text: bool, data: Bytes) -> Result<Message, Error> {
        if text {
            if !self.utf8.is_complete() {
                return Err(Error::InvalidUtf8);
            }
            Ok(Message::Text(Utf8Bytes::from_validated(data)))
        } else {
            Ok(Message::Binary(data))
        }
    }
}

/// Parses a Close payload: empty, or a valid code followed by a UTF-8 reason.
fn parse_close(payload: Bytes) -> Result<Option<CloseFrame>, Error> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(Error::InvalidClosePayload),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_valid_received() {
                return Err(Error::InvalidCloseCode(code.0));
            }
            let reason = payload.slice(2..);
            if crate::utf8::validate(&reason).is_err() {
                return Err(Error::InvalidUtf8);
            }
            Ok(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_validated(reason),
            }))
        }
    }
}
