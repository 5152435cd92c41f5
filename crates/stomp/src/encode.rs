//! The encoder: frames and heart-beats into a `BytesMut`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::EncodeError;
use crate::escape::{self, Escaping};
use crate::{Frame, Version, header};

/// Appends `frame` to `dst`, written for a session speaking `version`.
///
/// - Header names and values are escaped as `version` requires (1.1: `\n \c \\`; 1.2 adds `\r`),
///   except on CONNECT, STOMP and CONNECTED frames, which are never escaped.
/// - The encoder owns `content-length`: any `content-length` header of `frame` is dropped, and
///   the right one is written (after the other headers) whenever the command may carry a body
///   (SEND, MESSAGE, ERROR) or the body is not empty (STOMP 1.0).
/// - `dst` grows once, by the frame's size (plus again if escapes lengthen it). On error nothing
///   is written.
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_stomp::{encode_frame, Command, Frame, Version};
///
/// let frame = Frame::new(Command::Message)
///     .header("destination", "/topic/a")
///     .header("note", "a:b")
///     .body("hi");
/// let mut out = BytesMut::new();
/// encode_frame(&frame, Version::V1_2, &mut out)?;
/// assert_eq!(&out[..], &b"MESSAGE\ndestination:/topic/a\nnote:a\\cb\ncontent-length:2\n\nhi\0"[..]);
/// # Ok::<(), switchboard_stomp::EncodeError>(())
/// ```
pub fn encode_frame(
    frame: &Frame,
    version: Version,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let escaping = Escaping::of_version(Some(version)).for_command(frame.command);
    let allows_body = frame.command.allows_body();
    if !frame.body.is_empty() && !allows_body && version != Version::V1_0 {
        return Err(EncodeError::BodyNotAllowed {
            command: frame.command,
        });
    }
    // Check everything and size the frame (unescaped) before writing a byte.
    let command = frame.command.as_str().as_bytes();
    let mut size = command.len() + 1;
    for (index, h) in frame.headers.as_slice().iter().enumerate() {
        let (name, value) = (h.name.as_bytes(), h.value.as_bytes());
        if name.is_empty() {
            return Err(EncodeError::EmptyHeaderName { index });
        }
        if name == header::CONTENT_LENGTH.as_bytes() {
            continue;
        }
        if escaping == Escaping::None {
            let bad_name = name.iter().any(|&b| b == b'\n' || b == b'\r' || b == b':');
            let bad_value = value.iter().any(|&b| b == b'\n' || b == b'\r');
            if bad_name || bad_value {
                return Err(EncodeError::Unrepresentable { index, version });
            }
            size += name.len() + value.len() + 2;
        } else {
            // Escapes are rare: size for none, and let an escaped header grow the buffer.
            size += name.len() + value.len() + 2;
        }
    }
    let write_length = allows_body || !frame.body.is_empty();
    let mut digits = [0u8; 20];
    let digits = decimal(frame.body.len(), &mut digits);
    if write_length {
        size += header::CONTENT_LENGTH.len() + 1 + digits.len() + 1;
    }
    size += 1 + frame.body.len() + 1;

    dst.reserve(size);
    dst.put_slice(command);
    dst.put_u8(b'\n');
    for h in frame.headers.as_slice() {
        let (name, value) = (h.name.as_bytes(), h.value.as_bytes());
        if name == header::CONTENT_LENGTH.as_bytes() {
            continue;
        }
        escape::write_escaped(dst, name, escaping);
        dst.put_u8(b':');
        escape::write_escaped(dst, value, escaping);
        dst.put_u8(b'\n');
    }
    if write_length {
        dst.put_slice(header::CONTENT_LENGTH.as_bytes());
        dst.put_u8(b':');
        dst.put_slice(digits);
        dst.put_u8(b'\n');
    }
    dst.put_u8(b'\n');
    dst.put_slice(&frame.body);
    dst.put_u8(0);
    Ok(())
}

/// Appends one heart-beat (an LF) to `dst`.
pub fn encode_heart_beat(dst: &mut BytesMut) {
    dst.put_u8(b'\n');
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

impl Frame {
    /// The frame encoded for `version` as one `Bytes` (see [`encode_frame`]); handy to encode a
    /// MESSAGE once and send it to many sessions.
    pub fn encode(&self, version: Version) -> Result<Bytes, EncodeError> {
        let mut dst = BytesMut::new();
        encode_frame(self, version, &mut dst)?;
        Ok(dst.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;

    fn enc(frame: &Frame, v: Version) -> Result<Vec<u8>, EncodeError> {
        frame.encode(v).map(|b| b.to_vec())
    }

    #[test]
    fn decimal_digits() {
        let mut b = [0; 20];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(65536, &mut b), b"65536");
        assert_eq!(
            decimal(usize::MAX, &mut b),
            usize::MAX.to_string().as_bytes()
        );
    }

    #[test]
    fn escapes_per_version() {
        let f = Frame::new(Command::Subscribe).header("a:b", "c\nd\re\\");
        assert_eq!(
            enc(&f, Version::V1_2).unwrap(),
            b"SUBSCRIBE\na\\cb:c\\nd\\re\\\\\n\n\0"
        );
        assert_eq!(
            enc(&f, Version::V1_1).unwrap(),
            b"SUBSCRIBE\na\\cb:c\\nd\re\\\\\n\n\0"
        );
        assert_eq!(
            enc(&f, Version::V1_0),
            Err(EncodeError::Unrepresentable {
                index: 0,
                version: Version::V1_0
            })
        );
        let ok10 = Frame::new(Command::Subscribe).header("a", "b:c\\n");
        assert_eq!(
            enc(&ok10, Version::V1_0).unwrap(),
            b"SUBSCRIBE\na:b:c\\n\n\n\0"
        );
    }

    #[test]
    fn connect_is_never_escaped() {
        let f = Frame::new(Command::Connect).header("passcode", "a:b\\c");
        assert_eq!(
            enc(&f, Version::V1_2).unwrap(),
            b"CONNECT\npasscode:a:b\\c\n\n\0"
        );
        let bad = Frame::new(Command::Connected).header("x", "a\nb");
        assert!(matches!(
            enc(&bad, Version::V1_2),
            Err(EncodeError::Unrepresentable { index: 0, .. })
        ));
    }

    #[test]
    fn content_length_is_owned_by_the_encoder() {
        let f = Frame::new(Command::Send)
            .header("content-length", "999")
            .header("destination", "/q")
            .body(&b"a\0b"[..]);
        assert_eq!(
            enc(&f, Version::V1_2).unwrap(),
            b"SEND\ndestination:/q\ncontent-length:3\n\na\0b\0"
        );
        let empty = Frame::new(Command::Send).header("destination", "/q");
        assert_eq!(
            enc(&empty, Version::V1_1).unwrap(),
            b"SEND\ndestination:/q\ncontent-length:0\n\n\0"
        );
        let ack = Frame::new(Command::Ack).header("id", "1");
        assert_eq!(enc(&ack, Version::V1_2).unwrap(), b"ACK\nid:1\n\n\0");
    }

    #[test]
    fn body_rules() {
        let f = Frame::new(Command::Subscribe).body("x");
        assert_eq!(
            enc(&f, Version::V1_2),
            Err(EncodeError::BodyNotAllowed {
                command: Command::Subscribe
            })
        );
        assert_eq!(
            enc(&f, Version::V1_0).unwrap(),
            b"SUBSCRIBE\ncontent-length:1\n\nx\0"
        );
        let empty_name = Frame::new(Command::Send).header("", "x");
        assert_eq!(
            enc(&empty_name, Version::V1_2),
            Err(EncodeError::EmptyHeaderName { index: 0 })
        );
    }

    #[test]
    fn nothing_written_on_error() {
        let mut dst = BytesMut::from(&b"keep"[..]);
        let f = Frame::new(Command::Connect).header("a", "b\nc");
        assert!(encode_frame(&f, Version::V1_2, &mut dst).is_err());
        assert_eq!(&dst[..], b"keep");
        encode_heart_beat(&mut dst);
        assert_eq!(&dst[..], b"keep\n");
    }
}
