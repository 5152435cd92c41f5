//! The JSON the protocol needs: escaping outgoing strings exactly as sockjs-node does, and a
//! small, tolerant decoder for what clients send (a JSON array of strings, or on the websocket
//! transport also a single JSON string).
//!
//! # Escaping
//! [`encode_str_into`] writes a JSON string literal. Besides `"` and `\` it escapes, as lower-case
//! `\uXXXX`, every character browsers or proxies are known to mangle: U+0000–U+001F (except
//! `\b \t \n \f \r`, which get their short forms, like `JSON.stringify`), U+200C–U+200F,
//! U+2028–U+202F, U+2060–U+206F and U+FFF0–U+FFFF. Everything else (including characters above
//! U+FFFF) is written as UTF-8.
//!
//! # Decoding and lone surrogates
//! The decoder accepts every JSON escape. A UTF-16 surrogate pair written as two `\u` escapes is
//! combined into one character. A *lone* surrogate (`"\ud800"`, or a low surrogate without a
//! high one) cannot exist in a Rust `String`: it is decoded as U+FFFD REPLACEMENT CHARACTER,
//! never an error. Raw control characters inside strings are accepted (tolerance: `JSON.parse`
//! would refuse them, but nothing is gained by refusing). The input must be valid UTF-8.

use bytes::BytesMut;

/// Nesting depth past which a JSON value is refused as broken (values nested this deep are never
/// an array of strings anyway).
const MAX_DEPTH: usize = 64;

/// Why a client payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Empty, or valid JSON that is not an array of strings: HTTP 500 `Payload expected.`
    PayloadExpected,
    /// Not valid JSON (or not UTF-8): HTTP 500 `Broken JSON encoding.`; on a WebSocket, close
    /// 3000 `Broken framing.`
    Broken,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecodeError::PayloadExpected => "Payload expected.",
            DecodeError::Broken => "Broken JSON encoding.",
        })
    }
}

impl std::error::Error for DecodeError {}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_u_escape(out: &mut BytesMut, c: u32) {
    out.extend_from_slice(&[
        b'\\',
        b'u',
        HEX[(c >> 12) as usize & 0xf],
        HEX[(c >> 8) as usize & 0xf],
        HEX[(c >> 4) as usize & 0xf],
        HEX[c as usize & 0xf],
    ]);
}

/// Whether a (non-ASCII) character is one the server escapes.
fn must_escape(c: u32) -> bool {
    matches!(c, 0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfff0..=0xffff)
}

/// Bytes [`encode_str_into`] writes for `s` at least (the exact length without escapes).
pub fn encoded_len_hint(s: &str) -> usize {
    s.len() + 2
}

/// Appends `s` as a JSON string literal (with the quotes), escaped as the module docs say.
pub fn encode_str_into(s: &str, out: &mut BytesMut) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.extend_from_slice(b"\"");
    let mut run = 0; // start of the bytes not yet copied
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' | b'\\' | 0x00..=0x1f => {
                out.extend_from_slice(&bytes[run..i]);
                match b {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    0x08 => out.extend_from_slice(b"\\b"),
                    0x0c => out.extend_from_slice(b"\\f"),
                    _ => push_u_escape(out, u32::from(b)),
                }
                i += 1;
                run = i;
            }
            // U+2000..U+2FFF and U+F000..U+FFFF are the 3-byte sequences led by E2 and EF.
            0xe2 | 0xef if i + 2 < bytes.len() => {
                let c = (u32::from(b & 0x0f) << 12)
                    | (u32::from(bytes[i + 1] & 0x3f) << 6)
                    | u32::from(bytes[i + 2] & 0x3f);
                if must_escape(c) {
                    out.extend_from_slice(&bytes[run..i]);
                    push_u_escape(out, c);
                    i += 3;
                    run = i;
                } else {
                    i += 3;
                }
            }
            _ => i += 1,
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.extend_from_slice(b"\"");
}

/// `s` as a JSON string literal in a new buffer.
pub fn encode_str(s: &str) -> BytesMut {
    let mut out = BytesMut::with_capacity(encoded_len_hint(s));
    encode_str_into(s, &mut out);
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let h = self.s.get(self.i..self.i + 4).ok_or(DecodeError::Broken)?;
        let mut v = 0u32;
        for &d in h {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(DecodeError::Broken),
            };
            v = (v << 4) | u32::from(n);
        }
        self.i += 4;
        Ok(v)
    }

    /// A string; the opening quote is at `self.i`. `self.s` is known to be UTF-8.
    fn string(&mut self) -> Result<String, DecodeError> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(&b) = self.s.get(self.i) {
                if b == b'"' || b == b'\\' {
                    break;
                }
                self.i += 1;
            }
            // Splitting at an ASCII byte keeps UTF-8 boundaries.
            out.push_str(
                std::str::from_utf8(&self.s[start..self.i]).map_err(|_| DecodeError::Broken)?,
            );
            match self.peek() {
                None => return Err(DecodeError::Broken),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                _ => {}
            }
            self.i += 1; // the backslash
            let e = self.peek().ok_or(DecodeError::Broken)?;
            self.i += 1;
            match e {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let c = self.hex4()?;
                    let ch = match c {
                        0xd800..=0xdbff => {
                            // A high surrogate: combine with a following low one, if any.
                            let save = self.i;
                            if self.s.get(self.i..self.i + 2) == Some(b"\\u") {
                                self.i += 2;
                                match self.hex4() {
                                    Ok(lo @ 0xdc00..=0xdfff) => {
                                        let v = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                                        char::from_u32(v).unwrap_or('\u{fffd}')
                                    }
                                    _ => {
                                        self.i = save;
                                        '\u{fffd}'
                                    }
                                }
                            } else {
                                '\u{fffd}'
                            }
                        }
                        0xdc00..=0xdfff => '\u{fffd}',
                        c => char::from_u32(c).unwrap_or('\u{fffd}'),
                    };
                    out.push(ch);
                }
                _ => return Err(DecodeError::Broken),
            }
        }
    }

    /// Skips (validates) any JSON value.
    fn skip_value(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::Broken);
        }
        self.ws();
        match self.peek().ok_or(DecodeError::Broken)? {
            b'"' => self.string().map(drop),
            b'[' => {
                self.i += 1;
                self.ws();
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    self.ws();
                    if self.eat(b']') {
                        return Ok(());
                    }
                    if !self.eat(b',') {
                        return Err(DecodeError::Broken);
                    }
                }
            }
            b'{' => {
                self.i += 1;
                self.ws();
                if self.eat(b'}') {
                    return Ok(());
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(DecodeError::Broken);
                    }
                    self.string()?;
                    self.ws();
                    if !self.eat(b':') {
                        return Err(DecodeError::Broken);
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    if self.eat(b'}') {
                        return Ok(());
                    }
                    if !self.eat(b',') {
                        return Err(DecodeError::Broken);
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(DecodeError::Broken),
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), DecodeError> {
        if self.s.get(self.i..self.i + lit.len()) == Some(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(DecodeError::Broken)
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), DecodeError> {
        self.eat(b'-');
        if self.digits() == 0 {
            return Err(DecodeError::Broken);
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(DecodeError::Broken);
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(DecodeError::Broken);
            }
        }
        Ok(())
    }

    /// After a complete value: only whitespace may follow.
    fn end(&mut self) -> Result<(), DecodeError> {
        self.ws();
        if self.i == self.s.len() {
            Ok(())
        } else {
            Err(DecodeError::Broken)
        }
    }

    /// An array of strings at `self.i` (`[` already seen). `Ok(None)`: valid JSON but some
    /// element is not a string.
    fn string_array(&mut self) -> Result<Option<Vec<String>>, DecodeError> {
        self.i += 1;
        let mut out = Vec::new();
        let mut all_strings = true;
        self.ws();
        if self.eat(b']') {
            return Ok(Some(out));
        }
        loop {
            self.ws();
            if self.peek() == Some(b'"') {
                let s = self.string()?;
                if all_strings {
                    out.push(s);
                }
            } else {
                all_strings = false;
                self.skip_value(1)?;
            }
            self.ws();
            if self.eat(b']') {
                return Ok(all_strings.then_some(out));
            }
            if !self.eat(b',') {
                return Err(DecodeError::Broken);
            }
        }
    }
}

/// Decodes a client payload that must be a JSON array of strings (`xhr_send`, `jsonp_send`).
///
/// Empty input or whitespace, and valid JSON of another shape, give
/// [`DecodeError::PayloadExpected`]; anything else that is not JSON gives [`DecodeError::Broken`].
pub fn decode_array(input: &[u8]) -> Result<Vec<String>, DecodeError> {
    std::str::from_utf8(input).map_err(|_| DecodeError::Broken)?;
    let mut p = Parser { s: input, i: 0 };
    p.ws();
    match p.peek() {
        None => Err(DecodeError::PayloadExpected),
        Some(b'[') => {
            let r = p.string_array()?;
            p.end()?;
            r.ok_or(DecodeError::PayloadExpected)
        }
        Some(_) => {
            p.skip_value(0)?;
            p.end()?;
            Err(DecodeError::PayloadExpected)
        }
    }
}

/// Decodes one message of the `websocket` transport: a JSON array of strings, or a single JSON
/// string. Empty input decodes to no messages. Any other shape is [`DecodeError::Broken`].
pub fn decode_ws_message(input: &[u8]) -> Result<Vec<String>, DecodeError> {
    std::str::from_utf8(input).map_err(|_| DecodeError::Broken)?;
    let mut p = Parser { s: input, i: 0 };
    p.ws();
    match p.peek() {
        None => Ok(Vec::new()),
        Some(b'[') => {
            let r = p.string_array()?;
            p.end()?;
            r.ok_or(DecodeError::Broken)
        }
        Some(b'"') => {
            let s = p.string()?;
            p.end()?;
            Ok(vec![s])
        }
        Some(_) => Err(DecodeError::Broken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(s: &str) -> String {
        String::from_utf8(encode_str(s).to_vec()).unwrap()
    }

    #[test]
    fn escapes_quotes_backslash_and_controls() {
        assert_eq!(enc("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(enc("  \u{0}\n\r "), r#""  \u0000\n\r ""#);
        assert_eq!(enc("\u{1}\u{1f}\t\u{8}\u{c}"), r#""\u0001\u001f\t\b\f""#);
    }

    #[test]
    fn escapes_the_server_ranges_in_lower_case_hex() {
        // The suite's server_killer_string: every char in 255..65536 matching the ranges.
        let mut raw = String::new();
        let mut want = String::from("\"");
        for c in 255u32..65536 {
            let Some(ch) = char::from_u32(c) else {
                continue;
            };
            if must_escape(c) {
                raw.push(ch);
                want.push_str(&format!("\\u{c:04x}"));
            }
        }
        want.push('"');
        assert_eq!(enc(&raw), want);
        // Neighbours are not escaped.
        assert_eq!(
            enc("\u{200b}\u{2010}\u{2030}\u{2070}\u{ffef}é😀"),
            "\"\u{200b}\u{2010}\u{2030}\u{2070}\u{ffef}é😀\""
        );
    }

    #[test]
    fn decodes_arrays_and_escapes() {
        assert_eq!(decode_array(br#"["a"]"#).unwrap(), vec!["a"]);
        assert_eq!(decode_array(b" [ ] ").unwrap(), Vec::<String>::new());
        assert_eq!(
            decode_array(br#"["\u0041\n\/\"", "x"]"#).unwrap(),
            vec!["A\n/\"", "x"]
        );
        assert_eq!(decode_array(br#"["\ud83d\ude00"]"#).unwrap(), vec!["😀"]);
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        assert_eq!(decode_array(br#"["\ud800"]"#).unwrap(), vec!["\u{fffd}"]);
        assert_eq!(decode_array(br#"["\udc00x"]"#).unwrap(), vec!["\u{fffd}x"]);
        assert_eq!(
            decode_array(br#"["\ud800\u0041"]"#).unwrap(),
            vec!["\u{fffd}A"]
        );
        assert_eq!(
            decode_array(br#"["\ud800\ud800\udc00"]"#).unwrap(),
            vec!["\u{fffd}\u{10000}"]
        );
    }

    #[test]
    fn classifies_bad_payloads() {
        assert_eq!(decode_array(b""), Err(DecodeError::PayloadExpected));
        assert_eq!(decode_array(b"  "), Err(DecodeError::PayloadExpected));
        assert_eq!(decode_array(b"{}"), Err(DecodeError::PayloadExpected));
        assert_eq!(decode_array(b"\"a\""), Err(DecodeError::PayloadExpected));
        assert_eq!(
            decode_array(b"[1, {\"a\": [true, null]}]"),
            Err(DecodeError::PayloadExpected)
        );
        assert_eq!(decode_array(br#"["x"#), Err(DecodeError::Broken));
        assert_eq!(decode_array(br#"["x"] x"#), Err(DecodeError::Broken));
        assert_eq!(decode_array(br#"["\x"]"#), Err(DecodeError::Broken));
        assert_eq!(decode_array(br#"["\u12"]"#), Err(DecodeError::Broken));
        assert_eq!(decode_array(b"[\"\xff\"]"), Err(DecodeError::Broken));
        assert_eq!(decode_array(b"p=p"), Err(DecodeError::Broken));
        assert_eq!(decode_array(&[b'['; 1000]), Err(DecodeError::Broken));
        assert_eq!(decode_array(b"[01x]"), Err(DecodeError::Broken));
    }

    #[test]
    fn websocket_messages() {
        assert_eq!(decode_ws_message(b"").unwrap(), Vec::<String>::new());
        assert_eq!(decode_ws_message(b"[]").unwrap(), Vec::<String>::new());
        assert_eq!(decode_ws_message(br#""a""#).unwrap(), vec!["a"]);
        assert_eq!(decode_ws_message(br#"["a","b"]"#).unwrap(), vec!["a", "b"]);
        assert_eq!(decode_ws_message(br#"["a"#), Err(DecodeError::Broken));
        assert_eq!(decode_ws_message(b"5"), Err(DecodeError::Broken));
    }

    proptest! {
        #[test]
        fn decode_of_encode_is_identity(s in any::<String>(), t in any::<String>()) {
            let mut buf = BytesMut::new();
            buf.extend_from_slice(b"[");
            encode_str_into(&s, &mut buf);
            buf.extend_from_slice(b",");
            encode_str_into(&t, &mut buf);
            buf.extend_from_slice(b"]");
            prop_assert_eq!(decode_array(&buf).unwrap(), vec![s.clone(), t]);
            prop_assert_eq!(decode_ws_message(&encode_str(&s)).unwrap(), vec![s]);
        }

        #[test]
        fn decoding_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_array(&b);
            let _ = decode_ws_message(&b);
        }
    }
}
