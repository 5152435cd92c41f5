//! Frame headers (RFC 6455 §5.2): parsing every length form and writing headers.

use crate::Error;

/// Longest possible header: 2 + 8 (64-bit length) + 4 (mask key).
pub const MAX_HEADER_LEN: usize = 14;

/// Frame opcodes (RFC 6455 §5.2); reserved values are rejected by the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Opcode {
    /// 0x0: continuation of a fragmented message.
    Continuation = 0x0,
    /// 0x1: text.
    Text = 0x1,
    /// 0x2: binary.
    Binary = 0x2,
    /// 0x8: close.
    Close = 0x8,
    /// 0x9: ping.
    Ping = 0x9,
    /// 0xA: pong.
    Pong = 0xA,
}

impl Opcode {
    /// Parses a 4-bit opcode; reserved ones fail with [`Error::ReservedOpcode`].
    #[inline]
    pub fn from_u8(v: u8) -> Result<Opcode, Error> {
        Ok(match v {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            other => return Err(Error::ReservedOpcode(other)),
        })
    }

    /// Close, Ping and Pong.
    #[inline]
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// RSV1 (permessage-deflate's "compressed" bit).
    pub rsv1: bool,
    /// RSV2.
    pub rsv2: bool,
    /// RSV3.
    pub rsv3: bool,
    /// The opcode.
    pub opcode: Opcode,
    /// The masking key, if the MASK bit was set.
    pub mask: Option<[u8; 4]>,
    /// Payload length as claimed by the header (not yet checked against any limit).
    pub payload_len: u64,
}

/// Parses a frame header at the start of `buf`.
///
/// Returns `Ok(None)` if `buf` holds only part of the header, or the header and its length in
/// bytes. Checks only what the header alone decides: the opcode is not reserved and a 64-bit length
/// has its top bit clear. Role, RSV and limit rules are the [`crate::Decoder`]'s job.
#[inline]
pub fn parse_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, Error> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let opcode = Opcode::from_u8(b0 & 0x0f)?;
    let masked = b1 & 0x80 != 0;
    let (payload_len, mut pos) = match b1 & 0x7f {
        126 => {
            let Some([a, b]) = buf.get(2..4).and_then(|s| <[u8; 2]>::try_from(s).ok()) else {
                return Ok(None);
            };
            (u16::from_be_bytes([a, b]) as u64, 4)
        }
        127 => {
            let Some(s) = buf.get(2..10).and_then(|s| <[u8; 8]>::try_from(s).ok()) else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(s);
            if len >> 63 != 0 {
                return Err(Error::InvalidLength);
            }
            (len, 10)
        }
        n => (n as u64, 2),
    };
    let mask = if masked {
        let Some(k) = buf
            .get(pos..pos + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
        else {
            return Ok(None);
        };
        pos += 4;
        Some(k)
    } else {
        None
    };
    Ok(Some((
        FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode,
            mask,
            payload_len,
        },
        pos,
    )))
}

/// Writes a frame header into `dst` using the shortest length form; returns its length (2–14).
///
/// ```
/// use switchboard_ws::frame::{encode_header, Opcode, MAX_HEADER_LEN};
/// let mut hdr = [0u8; MAX_HEADER_LEN];
/// let n = encode_header(&mut hdr, true, false, Opcode::Text, None, 5);
/// assert_eq!(&hdr[..n], &[0x81, 0x05]);
/// ```
#[inline]
pub fn encode_header(
    dst: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    rsv1: bool,
    opcode: Opcode,
    mask: Option<[u8; 4]>,
    payload_len: u64,
) -> usize {
    dst[0] = (fin as u8) << 7 | (rsv1 as u8) << 6 | opcode as u8;
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut pos = if payload_len < 126 {
        dst[1] = mask_bit | payload_len as u8;
        2
    } else if payload_len <= u16::MAX as u64 {
        dst[1] = mask_bit | 126;
        dst[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        4
    } else {
        dst[1] = mask_bit | 127;
        dst[2..10].copy_from_slice(&payload_len.to_be_bytes());
        10
    };
    if let Some(k) = mask {
        dst[pos..pos + 4].copy_from_slice(&k);
        pos += 4;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_5_7_headers() {
        // unmasked "Hello"
        let (h, n) = parse_header(&[0x81, 0x05, 0x48]).unwrap().unwrap();
        assert_eq!(n, 2);
        assert!(h.fin && h.opcode == Opcode::Text && h.mask.is_none() && h.payload_len == 5);
        // masked "Hello"
        let (h, n) = parse_header(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d])
            .unwrap()
            .unwrap();
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        // fragmented: first "Hel" not fin
        let (h, _) = parse_header(&[0x01, 0x03]).unwrap().unwrap();
        assert!(!h.fin && h.opcode == Opcode::Text);
        // 256 bytes binary, 16-bit length
        let (h, n) = parse_header(&[0x82, 0x7e, 0x01, 0x00]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (256, 4));
        // 64 KiB binary, 64-bit length
        let (h, n) = parse_header(&[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn partial_headers_need_more() {
        let full = [0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for i in 0..full.len() {
            assert!(parse_header(&full[..i]).unwrap().is_none(), "prefix {i}");
        }
        assert!(parse_header(&full).unwrap().is_some());
    }

    #[test]
    fn rejects_reserved_opcodes_and_huge_lengths() {
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert!(
                matches!(parse_header(&[0x80 | op, 0]), Err(Error::ReservedOpcode(o)) if o == op)
            );
        }
        assert!(matches!(
            parse_header(&[0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(Error::InvalidLength)
        ));
    }

    #[test]
    fn encode_parse_roundtrip_all_length_forms() {
        for len in [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut b = [0u8; MAX_HEADER_LEN];
                let n = encode_header(&mut b, true, true, Opcode::Binary, mask, len);
                let (h, m) = parse_header(&b[..n]).unwrap().unwrap();
                assert_eq!(n, m);
                assert_eq!(
                    (h.payload_len, h.mask, h.rsv1, h.fin),
                    (len, mask, true, true)
                );
            }
        }
    }
}
