//! Incremental, fail-fast UTF-8 validation across frame and chunk boundaries.
//!
//! A text message may arrive in many fragments, and each fragment in many reads; a code point may
//! be split anywhere. [`Utf8Validator`] carries at most 3 bytes of an incomplete code point between
//! calls and reports an error as soon as a byte sequence can no longer become valid UTF-8 (not at
//! message end), which is what RFC 6455 §8.1 and Autobahn's 6.4.* cases ask for. Complete runs
//! are checked with `std::str::from_utf8` (with its ASCII fast path); its `error_len()` tells an
//! invalid sequence (`Some`) from a truncated one (`None`).

/// Error: the bytes are not, and can never become, valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Validates a byte stream incrementally. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    tail: [u8; 4],
    tail_len: u8,
}

/// Length of the UTF-8 sequence a leading byte announces (0 for bytes that cannot lead).
#[inline]
fn seq_len(b: u8) -> usize {
    match b {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets any carried partial code point (start of a new message).
    pub fn reset(&mut self) {
        self.tail_len = 0;
    }

    /// True if no partial code point is pending, i.e. the bytes so far end on a boundary.
    pub fn is_complete(&self) -> bool {
        self.tail_len == 0
    }

    /// Feeds the next bytes. Fails as soon as the data cannot be a prefix of valid UTF-8.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        if self.tail_len > 0 {
            let have = self.tail_len as usize;
            let want = seq_len(self.tail[0]);
            let take = (want - have).min(data.len());
            self.tail[have..have + take].copy_from_slice(&data[..take]);
            let now = have + take;
            match std::str::from_utf8(&self.tail[..now]) {
                Ok(_) => {}
                Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => {
                    // still a valid prefix, still incomplete: data is exhausted
                    self.tail_len = now as u8;
                    return Ok(());
                }
            }
            self.tail_len = 0;
            data = &data[take..];
        }
        match std::str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) => {
                if e.error_len().is_some() {
                    return Err(InvalidUtf8);
                }
                let rest = &data[e.valid_up_to()..];
                // from_utf8 reports `None` only for a truncated valid prefix: at most 3 bytes.
                self.tail[..rest.len()].copy_from_slice(rest);
                self.tail_len = rest.len() as u8;
                Ok(())
            }
        }
    }

    /// Feeds the last bytes of a message: also fails if a code point is left incomplete.
    /// Resets the validator for the next message.
    pub fn finish(&mut self, data: &[u8]) -> Result<(), InvalidUtf8> {
        self.feed(data)?;
        let ok = self.tail_len == 0;
        self.tail_len = 0;
        if ok { Ok(()) } else { Err(InvalidUtf8) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_all_splits(bytes: &[u8]) {
        let expect = std::str::from_utf8(bytes).is_ok();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let mut v = Utf8Validator::new();
                let r = v
                    .feed(&bytes[..i])
                    .and_then(|_| v.feed(&bytes[i..j]))
                    .and_then(|_| v.finish(&bytes[j..]));
                assert_eq!(r.is_ok(), expect, "{bytes:x?} split {i} {j}");
            }
        }
    }

    #[test]
    fn splits_agree_with_std() {
        let cases: &[&[u8]] = &[
            "κόσμε".as_bytes(),
            "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
            "\u{10ffff}a\u{800}b\u{7ff}".as_bytes(),
            &[
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
                0x65, 0x64,
            ],
            &[0xf4, 0x90, 0x80, 0x80],
            &[0xc0, 0xaf],
            &[0xe0, 0x80, 0xaf],
            &[0xed, 0x9f, 0xbf],
            &[0xef, 0xbf, 0xbf],
            &[0xf0, 0x9f, 0x98],
            &[0xff],
            &[0x80],
        ];
        for c in cases {
            check_all_splits(c);
        }
    }

    #[test]
    fn fails_fast_inside_a_code_point() {
        // F4 90 can never start a valid code point (> U+10FFFF): must fail before more bytes come.
        let mut v = Utf8Validator::new();
        v.feed(&[0xf4]).unwrap();
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
        // Surrogate prefix ED A0 fails immediately.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[b'a', 0xed, 0xa0]), Err(InvalidUtf8));
    }

    #[test]
    fn incomplete_at_end_fails() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xe2, 0x82]).unwrap();
        assert!(!v.is_complete());
        assert_eq!(v.finish(&[]), Err(InvalidUtf8));
        // and the validator is reusable afterwards
        assert_eq!(v.finish(b"ok"), Ok(()));
    }
}
