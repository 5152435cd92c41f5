//! Header escaping (STOMP 1.1 and 1.2): which escapes a frame uses, checking, decoding, encoding.

use bytes::BytesMut;

use crate::{Command, Version};

/// The escaping rules a frame's headers follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Escaping {
    /// STOMP 1.0, and CONNECT / STOMP / CONNECTED in every version: bytes are taken as they are.
    None,
    /// STOMP 1.1: `\n`, `\c`, `\\`.
    V11,
    /// STOMP 1.2: `\r`, `\n`, `\c`, `\\`.
    V12,
}

impl Escaping {
    /// The escaping of `version` (before negotiation, 1.2's rules: the most lenient that is safe).
    pub(crate) fn of_version(version: Option<Version>) -> Escaping {
        match version {
            Some(Version::V1_0) => Escaping::None,
            Some(Version::V1_1) => Escaping::V11,
            Some(Version::V1_2) | None => Escaping::V12,
        }
    }

    /// The escaping of a frame with `command`, in a session whose version escapes as `self`.
    pub(crate) fn for_command(self, command: Command) -> Escaping {
        if command.escapes_headers() {
            self
        } else {
            Escaping::None
        }
    }

    /// The byte an escape `\<code>` stands for, if the rules define it.
    #[inline]
    pub(crate) fn decode(self, code: u8) -> Option<u8> {
        match (code, self) {
            (_, Escaping::None) => None,
            (b'n', _) => Some(b'\n'),
            (b'c', _) => Some(b':'),
            (b'\\', _) => Some(b'\\'),
            (b'r', Escaping::V12) => Some(b'\r'),
            _ => None,
        }
    }

    /// The escape written for byte `b`, if it needs one.
    #[inline]
    fn encode(self, b: u8) -> Option<&'static [u8]> {
        match (b, self) {
            (_, Escaping::None) => None,
            (b'\n', _) => Some(b"\\n"),
            (b':', _) => Some(b"\\c"),
            (b'\\', _) => Some(b"\\\\"),
            (b'\r', Escaping::V12) => Some(b"\\r"),
            _ => None,
        }
    }
}

/// Checks every escape in `raw`; on an undefined one (or a trailing `\`), the index of its backslash.
pub(crate) fn validate(raw: &[u8], escaping: Escaping) -> Result<(), usize> {
    let mut bytes = raw.iter().enumerate();
    while let Some((i, &b)) = bytes.next() {
        if b == b'\\' {
            match bytes.next() {
                Some((_, &code)) if escaping.decode(code).is_some() => {}
                _ => return Err(i),
            }
        }
    }
    Ok(())
}

/// Decodes the escapes of an already validated `raw` into a new string (`None` if one is undefined).
pub(crate) fn unescape(raw: &str, escaping: Escaping) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut run = 0;
    let mut i = 0;
    while let Some(p) = bytes.get(i..)?.iter().position(|&b| b == b'\\') {
        let at = i + p;
        // Runs between escapes end before an ASCII `\`: always on a char boundary.
        out.push_str(raw.get(run..at)?);
        out.push(char::from(crate::grammar::escape_sequence(
            bytes.get(at..)?,
            escaping,
        )?));
        i = at + 2;
        run = i;
    }
    out.push_str(raw.get(run..)?);
    Some(out)
}

/// The first byte at or after `from` that `escaping` escapes, eight bytes at a time.
#[inline]
fn next_special(s: &[u8], from: usize, escaping: Escaping) -> Option<usize> {
    use crate::grammar::{eq_mask, first};
    let cr = escaping == Escaping::V12;
    let mut i = from;
    while i < s.len() {
        let word = match s.get(i..i + 8) {
            Some(chunk) => {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(chunk);
                u64::from_le_bytes(bytes)
            }
            // The last, short chunk: the string's last eight bytes shifted so the ones already
            // checked fall off (zeros come in, and zeros are never escaped).
            None => match s.len().checked_sub(8).and_then(|start| s.get(start..)) {
                Some(last) => {
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(last);
                    u64::from_le_bytes(bytes) >> (8 * (8 - (s.len() - i)))
                }
                None => s
                    .get(i..)
                    .unwrap_or_default()
                    .iter()
                    .rev()
                    .fold(0, |w, &b| w << 8 | u64::from(b)),
            },
        };
        let mut mask = eq_mask(word, b'\n') | eq_mask(word, b':') | eq_mask(word, b'\\');
        if cr {
            mask |= eq_mask(word, b'\r');
        }
        // Each mask's lowest bit is exact, so the lowest bit of their union is too.
        if mask != 0 {
            return Some(i + first(mask));
        }
        i += 8;
    }
    None
}

/// Appends `s` to `dst` with the escapes `escaping` requires.
#[inline]
pub(crate) fn write_escaped(dst: &mut BytesMut, s: &[u8], escaping: Escaping) {
    if escaping == Escaping::None {
        dst.extend_from_slice(s);
        return;
    }
    let mut run = 0;
    while let Some(at) = next_special(s, run, escaping) {
        dst.extend_from_slice(&s[run..at]);
        if let Some(esc) = escaping.encode(s[at]) {
            dst.extend_from_slice(esc);
        }
        run = at + 1;
    }
    dst.extend_from_slice(&s[run..]);
}

/// How many bytes `s` takes once escaped.
#[cfg(test)]
fn escaped_len(s: &[u8], escaping: Escaping) -> usize {
    if escaping == Escaping::None {
        return s.len();
    }
    let mut len = s.len();
    let mut from = 0;
    while let Some(at) = next_special(s, from, escaping) {
        len += 1;
        from = at + 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_per_version() {
        assert_eq!(Escaping::None.decode(b'n'), None);
        assert_eq!(Escaping::V11.decode(b'n'), Some(b'\n'));
        assert_eq!(Escaping::V11.decode(b'c'), Some(b':'));
        assert_eq!(Escaping::V11.decode(b'\\'), Some(b'\\'));
        assert_eq!(Escaping::V11.decode(b'r'), None);
        assert_eq!(Escaping::V12.decode(b'r'), Some(b'\r'));
        assert_eq!(Escaping::V12.decode(b't'), None);
    }

    #[test]
    fn validate_and_unescape() {
        assert_eq!(validate(br"a\nb\c\\", Escaping::V11), Ok(()));
        assert_eq!(validate(br"a\rb", Escaping::V11), Err(1));
        assert_eq!(validate(br"a\rb", Escaping::V12), Ok(()));
        assert_eq!(validate(br"ab\", Escaping::V12), Err(2));
        assert_eq!(validate(br"\t", Escaping::V12), Err(0));
        assert_eq!(
            unescape(r"a\nb\c\\\r", Escaping::V12).as_deref(),
            Some("a\nb:\\\r")
        );
        assert_eq!(unescape(r"a\r", Escaping::V11), None);
    }

    #[test]
    fn long_strings_escape_like_short_ones() {
        for esc in [Escaping::V11, Escaping::V12] {
            for (len, pos) in (1..41).flat_map(|len| (0..len).map(move |p| (len, p))) {
                for special in [b'\n', b'\r', b':', b'\\', b'x'] {
                    let mut s = vec![b'a'; len];
                    s[pos] = special;
                    s[(pos * 7) % len] = b'\\';
                    let mut slow = Vec::new();
                    for &b in &s {
                        match esc.encode(b) {
                            Some(e) => slow.extend_from_slice(e),
                            None => slow.push(b),
                        }
                    }
                    let mut fast = BytesMut::new();
                    write_escaped(&mut fast, &s, esc);
                    assert_eq!(&fast[..], &slow[..]);
                    assert_eq!(escaped_len(&s, esc), slow.len());
                }
            }
        }
    }

    #[test]
    fn write_and_len() {
        let mut dst = BytesMut::new();
        let s = "a\nb:c\\d\re";
        write_escaped(&mut dst, s.as_bytes(), Escaping::V12);
        assert_eq!(&dst[..], br"a\nb\cc\\d\re");
        assert_eq!(escaped_len(s.as_bytes(), Escaping::V12), dst.len());
        let mut dst = BytesMut::new();
        write_escaped(&mut dst, s.as_bytes(), Escaping::V11);
        assert_eq!(&dst[..], b"a\\nb\\cc\\\\d\re");
        assert_eq!(escaped_len(s.as_bytes(), Escaping::V11), dst.len());
    }
}
