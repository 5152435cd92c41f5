//! How a message travels through Redis: a compact, versioned binary encoding, decoded
//! defensively (every length checked against what is left; nothing allocated from a claimed
//! length; a malformed entry is an error, never a panic).
//!
//! Layout (version 1), integers big-endian:
//!
//! ```text
//! "SB" 0x01 flags:u8 deliveries:u32 kind:u8
//! origin:str16 id:str16 destination:str16
//! header_count:u16 (name:str16 value:str32)*
//! body_len:u32 body
//! ```
//!
//! `str16`/`str32` are a u16/u32 length and UTF-8 bytes. Decoding then encoding an entry gives
//! back the same bytes (the `cluster_wire` fuzz target checks it). `flags`: bit 0 a dead letter, bit 1
//! redelivered (a client saw it before, or it was claimed from a dead node). `deliveries`:
//! how many times a client saw it. `kind`: 0 topic, 1 queue, 2 user, 3 app. Header values and
//! the body of a decoded message are slices of the input (no copy).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use switchboard_broker::{DestinationKind, Message};
use switchboard_stomp::Headers;

/// The version byte written by [`encode`].
pub const VERSION: u8 = 1;
const MAGIC: &[u8; 2] = b"SB";
const DEAD_LETTER: u8 = 1;
const REDELIVERED: u8 = 2;

/// A message as another node sent it.
#[derive(Debug)]
pub struct Decoded {
    /// The node that published it.
    pub origin: ByteString,
    /// How many times a client saw it (queues).
    pub deliveries: u32,
    /// Whether its next delivery says `redelivered:true`.
    pub redelivered: bool,
    /// The message (same id, destination, headers and body as on the origin node).
    pub message: Message,
}

/// Why an entry could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Not ours: the magic bytes are missing.
    NotAMessage,
    /// A version this build does not read.
    Version(u8),
    /// The entry ends before a field does.
    Truncated(&'static str),
    /// A string field is not UTF-8.
    NotUtf8(&'static str),
    /// An unknown destination kind.
    Kind(u8),
    /// Flag bits this version does not define.
    Flags(u8),
    /// Bytes after the body.
    Trailing(usize),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::NotAMessage => f.write_str("not a switchboard message"),
            WireError::Version(v) => write!(f, "unknown wire version {v}"),
            WireError::Truncated(what) => write!(f, "truncated at {what}"),
            WireError::NotUtf8(what) => write!(f, "{what} is not UTF-8"),
            WireError::Kind(k) => write!(f, "unknown destination kind {k}"),
            WireError::Flags(b) => write!(f, "unknown flags {b:#04x}"),
            WireError::Trailing(n) => write!(f, "{n} bytes after the body"),
        }
    }
}

impl std::error::Error for WireError {}

fn kind_byte(k: DestinationKind) -> u8 {
    match k {
        DestinationKind::Topic => 0,
        DestinationKind::Queue => 1,
        DestinationKind::User => 2,
        DestinationKind::App => 3,
    }
}

fn put_str16(buf: &mut BytesMut, s: &str) {
    // Longer strings are cut at a character boundary: ids, destinations and header names are
    // bounded far below 64 KiB by the STOMP parser's header-line limit anyway.
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    buf.put_u16(end as u16);
    buf.put_slice(&s.as_bytes()[..end]);
}

fn put_str32(buf: &mut BytesMut, s: &str) {
    buf.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
    buf.put_slice(&s.as_bytes()[..s.len().min(u32::MAX as usize)]);
}

/// Encodes `message` as published by node `origin`.
pub fn encode(origin: &str, message: &Message, deliveries: u32, redelivered: bool) -> Bytes {
    let headers = message.headers();
    let mut size = 4 + 4 + 1 + 6 + origin.len() + message.id().len();
    size += message.destination().len() + 2 + 4 + message.body().len();
    for h in headers {
        size += 6 + h.name.len() + h.value.len();
    }
    let mut buf = BytesMut::with_capacity(size);
    buf.put_slice(MAGIC);
    buf.put_u8(VERSION);
    let mut flags = 0;
    if message.is_dead_letter() {
        flags |= DEAD_LETTER;
    }
    if redelivered {
        flags |= REDELIVERED;
    }
    buf.put_u8(flags);
    buf.put_u32(deliveries);
    buf.put_u8(kind_byte(message.kind()));
    put_str16(&mut buf, origin);
    put_str16(&mut buf, message.id());
    put_str16(&mut buf, message.destination());
    let n = headers.len().min(u16::MAX as usize);
    buf.put_u16(n as u16);
    for h in headers.as_slice().iter().take(n) {
        put_str16(&mut buf, &h.name);
        put_str32(&mut buf, &h.value);
    }
    let body = message.body();
    let len = body.len().min(u32::MAX as usize);
    buf.put_u32(len as u32);
    buf.put_slice(&body[..len]);
    buf.freeze()
}

struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    fn take(&mut self, n: usize, what: &'static str) -> Result<Bytes, WireError> {
        if self.buf.len() - self.pos < n {
            return Err(WireError::Truncated(what));
        }
        let b = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, len: usize, what: &'static str) -> Result<ByteString, WireError> {
        let b = self.take(len, what)?;
        ByteString::try_from(b).map_err(|_| WireError::NotUtf8(what))
    }

    fn str16(&mut self, what: &'static str) -> Result<ByteString, WireError> {
        let n = self.u16(what)? as usize;
        self.string(n, what)
    }

    fn str32(&mut self, what: &'static str) -> Result<ByteString, WireError> {
        let n = self.u32(what)? as usize;
        self.string(n, what)
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// Decodes an entry written by [`encode`]. Header values and the body share `bytes`.
pub fn decode(bytes: Bytes) -> Result<Decoded, WireError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    if r.left() < 3 || &r.buf[..2] != MAGIC {
        return Err(WireError::NotAMessage);
    }
    r.pos = 2;
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let flags = r.u8("flags")?;
    if flags & !(DEAD_LETTER | REDELIVERED) != 0 {
        return Err(WireError::Flags(flags));
    }
    let deliveries = r.u32("deliveries")?;
    let kind = match r.u8("kind")? {
        0 => DestinationKind::Topic,
        1 => DestinationKind::Queue,
        2 => DestinationKind::User,
        3 => DestinationKind::App,
        k => return Err(WireError::Kind(k)),
    };
    let origin = r.str16("origin")?;
    let id = r.str16("message id")?;
    let destination = r.str16("destination")?;
    let count = r.u16("header count")? as usize;
    // Each header takes at least 6 bytes: never reserve more than the input can hold.
    let mut headers = Headers::with_capacity(count.min(r.left() / 6));
    for _ in 0..count {
        let name = r.str16("header name")?;
        let value = r.str32("header value")?;
        headers.push(name, value);
    }
    let len = r.u32("body length")? as usize;
    let body = r.take(len, "body")?;
    if r.left() != 0 {
        return Err(WireError::Trailing(r.left()));
    }
    let message = Message::from_parts(
        id,
        destination,
        kind,
        headers,
        body,
        flags & DEAD_LETTER != 0,
    );
    Ok(Decoded {
        origin,
        deliveries,
        redelivered: flags & REDELIVERED != 0,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Message {
        let mut h = Headers::new();
        h.push("content-type", "text/plain");
        h.push("x", "a:b\nc");
        Message::new(
            "n1-7",
            "/queue/a",
            DestinationKind::Queue,
            &h,
            Bytes::from_static(b"hello\0world"),
        )
    }

    #[test]
    fn round_trip_keeps_everything() {
        let m = sample();
        let b = encode("n1", &m, 3, true);
        let d = decode(b).unwrap();
        assert_eq!(&*d.origin, "n1");
        assert_eq!(d.deliveries, 3);
        assert!(d.redelivered);
        assert_eq!(d.message.id(), "n1-7");
        assert_eq!(d.message.destination(), "/queue/a");
        assert_eq!(d.message.kind(), DestinationKind::Queue);
        assert_eq!(d.message.headers().get("x"), Some("a:b\nc"));
        assert_eq!(&d.message.body()[..], b"hello\0world");
        assert!(!d.message.is_dead_letter());
        let again = encode(&d.origin, &d.message, d.deliveries, d.redelivered);
        assert_eq!(again, encode("n1", &m, 3, true));
    }

    #[test]
    fn dead_letters_keep_their_headers() {
        let dl = sample().dead_letter(
            "/queue/DLQ.a",
            switchboard_broker::DeadLetterReason::MaxRedeliveries,
            11,
        );
        let d = decode(encode("n2", &dl, 0, false)).unwrap();
        assert!(d.message.is_dead_letter());
        assert_eq!(d.message.headers().get("delivery-count"), Some("11"));
        assert_eq!(
            d.message.headers().get("original-destination"),
            Some("/queue/a")
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let b = encode("n1", &sample(), 0, false);
        for n in 0..b.len() {
            assert!(decode(b.slice(..n)).is_err(), "prefix of {n} bytes");
        }
        let mut long = BytesMut::from(&b[..]);
        long.put_u8(0);
        assert_eq!(decode(long.freeze()).unwrap_err(), WireError::Trailing(1));
        let mut v2 = BytesMut::from(&b[..]);
        v2[2] = 9;
        assert_eq!(decode(v2.freeze()).unwrap_err(), WireError::Version(9));
        let mut flags = BytesMut::from(&b[..]);
        flags[3] = 0x80;
        assert_eq!(decode(flags.freeze()).unwrap_err(), WireError::Flags(0x80));
    }
}
