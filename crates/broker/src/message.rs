//! Published messages (shared by every delivery) and the broker's frame encoding.
//!
//! A [`Message`] is created once per SEND and shared (`Arc`) by every delivery: fan-out costs a
//! refcount bump. The part of its MESSAGE frame that is the same for every subscriber (command,
//! `destination`, `message-id`, user headers, `content-length`) is encoded at most once per STOMP
//! version, lazily, by the first session that sends it; the body is never copied.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use switchboard_stomp::{Headers, Version};

use crate::destination::DestinationKind;

/// Headers of a SEND that are not passed on to MESSAGE frames (the broker sets its own; the
/// dead-letter headers only the broker may write).
const RESERVED: [&str; 11] = [
    "destination",
    "transaction",
    "receipt",
    "content-length",
    "message-id",
    "subscription",
    "ack",
    "redelivered",
    "original-destination",
    "dead-letter-reason",
    "delivery-count",
];

/// Why a message was dead-lettered (the `dead-letter-reason` header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadLetterReason {
    /// NACKed or abandoned after its last allowed delivery (`max-redeliveries`).
    MaxRedeliveries,
    /// Its `expires` time or its queue's TTL passed before it was delivered (`expired`).
    Expired,
    /// Dropped as the oldest message of a full `drop-oldest` queue (`max-length`).
    MaxLength,
}

impl DeadLetterReason {
    /// The header value: `max-redeliveries`, `expired` or `max-length`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::MaxRedeliveries => "max-redeliveries",
            DeadLetterReason::Expired => "expired",
            DeadLetterReason::MaxLength => "max-length",
        }
    }
}

/// Parses an `expires` header: milliseconds since the Unix epoch, `0` = never. `Err` if it is
/// not a number.
pub fn parse_expires(value: &str) -> Result<Option<SystemTime>, std::num::ParseIntError> {
    let ms: u64 = value.trim().parse()?;
    Ok((ms != 0).then(|| UNIX_EPOCH + Duration::from_millis(ms)))
}

/// A published message: destination, broker-assigned id, user headers and body.
#[derive(Debug)]
pub struct Message {
    id: ByteString,
    destination: ByteString,
    kind: DestinationKind,
    headers: Headers,
    body: Bytes,
    size_hint: usize,
    expires: Option<SystemTime>,
    dead_letter: bool,
    encoded: [OnceLock<Bytes>; 3],
}

impl Message {
    /// A message shown to subscribers as sent to `destination` with id `id`.
    ///
    /// `headers` are the SEND's headers: `destination`, `transaction`, `receipt`,
    /// `content-length`, `message-id`, `subscription`, `ack` and `redelivered` are dropped (the
    /// broker writes its own; so are `original-destination`, `dead-letter-reason` and
    /// `delivery-count`, which only dead letters carry); everything else, `content-type` and
    /// `expires` included, is passed on. An `expires` header (milliseconds since the Unix epoch,
    /// 0 = never) sets [`expires`](Self::expires); one that is not a number is ignored here (a
    /// session refuses such a SEND).
    pub fn new(
        id: impl Into<ByteString>,
        destination: impl Into<ByteString>,
        kind: DestinationKind,
        headers: &Headers,
        body: Bytes,
    ) -> Message {
        let mut kept = Headers::new();
        let mut size = 0usize;
        let mut expires = None;
        for h in headers {
            if &*h.name == "expires" {
                expires = parse_expires(&h.value).ok().flatten();
            }
            if !RESERVED.contains(&&*h.name) {
                size += h.name.len() + h.value.len() + 2;
                kept.push(h.name.clone(), h.value.clone());
            }
        }
        let id = id.into();
        let destination = destination.into();
        size += body.len() + id.len() + destination.len() + 80;
        Message {
            id,
            destination,
            kind,
            headers: kept,
            body,
            size_hint: size,
            expires,
            dead_letter: false,
            encoded: Default::default(),
        }
    }

    /// A message rebuilt from its parts as another broker node encoded them (a clustered
    /// backend moving messages between nodes): `headers` are kept as given (they were filtered
    /// when the message was first made; a dead letter's `original-destination`,
    /// `dead-letter-reason` and `delivery-count` stay), `expires` is read from them again.
    pub fn from_parts(
        id: impl Into<ByteString>,
        destination: impl Into<ByteString>,
        kind: DestinationKind,
        headers: Headers,
        body: Bytes,
        dead_letter: bool,
    ) -> Message {
        let id = id.into();
        let destination = destination.into();
        let mut size = body.len() + id.len() + destination.len() + 80;
        let mut expires = None;
        for h in &headers {
            if !dead_letter && &*h.name == "expires" {
                expires = parse_expires(&h.value).ok().flatten();
            }
            size += h.name.len() + h.value.len() + 2;
        }
        Message {
            id,
            destination,
            kind,
            headers,
            body,
            size_hint: size,
            expires,
            dead_letter,
            encoded: Default::default(),
        }
    }

    /// This message as a dead letter sent to `destination`: same id, headers and body (shared,
    /// not copied), without `expires`, plus `original-destination` (where it was),
    /// `dead-letter-reason` and `delivery-count` (how many times consumers received it).
    pub fn dead_letter(
        &self,
        destination: impl Into<ByteString>,
        reason: DeadLetterReason,
        delivery_count: u32,
    ) -> Message {
        let destination = destination.into();
        let mut kept = Headers::new();
        let mut size = 0usize;
        for h in &self.headers {
            if &*h.name != "expires" {
                size += h.name.len() + h.value.len() + 2;
                kept.push(h.name.clone(), h.value.clone());
            }
        }
        let extra = [
            ("original-destination", self.destination.clone()),
            (
                "dead-letter-reason",
                ByteString::from_static(reason.as_str()),
            ),
            (
                "delivery-count",
                ByteString::from(itoa(u64::from(delivery_count)).as_str().to_owned()),
            ),
        ];
        for (name, value) in extra {
            size += name.len() + value.len() + 2;
            kept.push(ByteString::from_static(name), value);
        }
        size += self.body.len() + self.id.len() + destination.len() + 80;
        Message {
            id: self.id.clone(),
            destination,
            kind: DestinationKind::Queue,
            headers: kept,
            body: self.body.clone(),
            size_hint: size,
            expires: None,
            dead_letter: true,
            encoded: Default::default(),
        }
    }

    /// When the message expires (its `expires` header), if ever.
    pub fn expires(&self) -> Option<SystemTime> {
        self.expires
    }

    /// Whether this is a dead letter (made by [`dead_letter`](Self::dead_letter)). A dead letter
    /// is never dead-lettered again: if it expires, overflows or exceeds its redeliveries in its
    /// dead-letter queue, it is discarded (and counted).
    pub fn is_dead_letter(&self) -> bool {
        self.dead_letter
    }

    /// The `message-id`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `destination` shown in MESSAGE frames.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// What kind of destination it was sent to.
    pub fn kind(&self) -> DestinationKind {
        self.kind
    }

    /// User headers passed on to subscribers (`content-type` included).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The body (shared, never copied).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// An upper estimate of one delivery's encoded size, used for outbound byte limits.
    pub fn size_hint(&self) -> usize {
        self.size_hint
    }

    /// The subscriber-independent head of the MESSAGE frame for `version`, encoded once.
    pub(crate) fn shared_head(&self, version: Version) -> &Bytes {
        let slot = match version {
            Version::V1_0 => &self.encoded[0],
            Version::V1_1 => &self.encoded[1],
            Version::V1_2 => &self.encoded[2],
        };
        slot.get_or_init(|| {
            let mut buf = BytesMut::with_capacity(self.size_hint - self.body.len());
            buf.put_slice(b"MESSAGE\n");
            put_header(&mut buf, "destination", &self.destination, version);
            put_header(&mut buf, "message-id", &self.id, version);
            for h in &self.headers {
                put_header(&mut buf, &h.name, &h.value, version);
            }
            put_header(
                &mut buf,
                "content-length",
                itoa(self.body.len() as u64).as_str(),
                version,
            );
            buf.freeze()
        })
    }
}

/// Decimal formatting without `format!` machinery on the hot path.
pub(crate) fn itoa(mut n: u64) -> Itoa {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Itoa { buf, start: i }
}

/// A formatted integer (see [`itoa`]).
pub(crate) struct Itoa {
    buf: [u8; 20],
    start: usize,
}

impl Itoa {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits were written.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("0")
    }
}

/// Writes `name:value\n`, escaped for `version` (1.1: `\n \c \\`; 1.2 adds `\r`). STOMP 1.0 has no
/// escaping, so CR/LF (which would break framing) become spaces and a `:` in a name becomes `_`.
pub(crate) fn put_header(buf: &mut BytesMut, name: &str, value: &str, version: Version) {
    put_escaped(buf, name, version, true);
    buf.put_u8(b':');
    put_escaped(buf, value, version, false);
    buf.put_u8(b'\n');
}

/// Writes a header with no escaping (CONNECTED frames are never escaped).
pub(crate) fn put_raw_header(buf: &mut BytesMut, name: &str, value: &str) {
    put_escaped(buf, name, Version::V1_0, true);
    buf.put_u8(b':');
    put_escaped(buf, value, Version::V1_0, false);
    buf.put_u8(b'\n');
}

fn put_escaped(buf: &mut BytesMut, s: &str, version: Version, is_name: bool) {
    let bytes = s.as_bytes();
    let special = |b: u8| matches!(b, b'\n' | b'\r' | b':' | b'\\');
    if !bytes.iter().any(|&b| special(b)) {
        buf.put_slice(bytes);
        return;
    }
    for &b in bytes {
        match (version, b) {
            (Version::V1_0, b'\n' | b'\r') => buf.put_u8(b' '),
            (Version::V1_0, b':') if is_name => buf.put_u8(b'_'),
            (Version::V1_0, _) => buf.put_u8(b),
            (_, b'\n') => buf.put_slice(b"\\n"),
            (_, b':') => buf.put_slice(b"\\c"),
            (_, b'\\') => buf.put_slice(b"\\\\"),
            (Version::V1_2, b'\r') => buf.put_slice(b"\\r"),
            // 1.1 cannot escape CR; a raw CR is data in 1.1.
            _ => buf.put_u8(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(name: &str, value: &str, v: Version) -> String {
        let mut b = BytesMut::new();
        put_header(&mut b, name, value, v);
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn escaping_per_version() {
        assert_eq!(
            enc("a", "x:y\\z\n\r", Version::V1_2),
            "a:x\\cy\\\\z\\n\\r\n"
        );
        assert_eq!(enc("a", "x:y\\z\n\r", Version::V1_1), "a:x\\cy\\\\z\\n\r\n");
        assert_eq!(enc("a:b", "x:y\n", Version::V1_0), "a_b:x:y \n");
        assert_eq!(enc("plain", "value", Version::V1_2), "plain:value\n");
    }

    #[test]
    fn itoa_formats() {
        assert_eq!(itoa(0).as_str(), "0");
        assert_eq!(itoa(1234567890).as_str(), "1234567890");
        assert_eq!(itoa(u64::MAX).as_str(), u64::MAX.to_string());
    }

    #[test]
    fn reserved_headers_dropped_and_head_cached() {
        let mut h = Headers::new();
        h.push("destination", "/topic/x");
        h.push("receipt", "r1");
        h.push("content-type", "text/plain");
        h.push("custom", "1");
        let m = Message::new(
            "m-1",
            "/topic/x",
            DestinationKind::Topic,
            &h,
            Bytes::from_static(b"hi"),
        );
        assert_eq!(m.headers().len(), 2);
        let a = m.shared_head(Version::V1_2).clone();
        let b = m.shared_head(Version::V1_2).clone();
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(
            &a[..],
            b"MESSAGE\ndestination:/topic/x\nmessage-id:m-1\ncontent-type:text/plain\ncustom:1\ncontent-length:2\n"
        );
    }
}
