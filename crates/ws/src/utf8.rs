//! Incremental, fail-fast UTF-8 validation across frame and chunk boundaries.
//!
//! A text message may arrive in many fragments, and each fragment in many reads; a code point may
//! be split anywhere. [`Utf8Validator`] carries at most 3 bytes of an incomplete code point between
//! calls and reports an error as soon as a byte sequence can no longer become valid UTF-8 (not at
//! message end), which is what RFC 6455 §8.1 and Autobahn's 6.4.* cases ask for. A chunk is
//! split before a trailing incomplete code point; the body is checked in one pass with
//! `simdutf8` (SIMD, runtime CPU detection) and the ≤ 3-byte tail must be a valid prefix.

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

/// Where a code point that starts in the last 3 bytes of `data` but does not end in it begins
/// (`data.len()` if there is none).
#[inline]
fn incomplete_tail_start(data: &[u8]) -> usize {
    let len = data.len();
    for j in (len.saturating_sub(3)..len).rev() {
        let b = data[j];
        if b & 0xc0 != 0x80 {
            let w = seq_len(b);
            return if w > 1 && j + w > len { j } else { len };
        }
    }
    len
}

/// Validates a complete byte string (SIMD where available).
#[inline]
pub fn validate(data: &[u8]) -> Result<(), InvalidUtf8> {
    simdutf8::basic::from_utf8(data)
        .map(|_| ())
        .map_err(|_| InvalidUtf8)
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
    #[inline]
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
        // Split off a trailing incomplete code point (at most 3 bytes), validate the body in one
        // SIMD pass, and check that the tail is a valid prefix (fail fast) before carrying it.
        let cut = incomplete_tail_start(data);
        if simdutf8::basic::from_utf8(&data[..cut]).is_err() {
            return Err(InvalidUtf8);
        }
        let rest = &data[cut..];
        if !rest.is_empty() {
            match std::str::from_utf8(rest) {
                Err(e) if e.error_len().is_none() && e.valid_up_to() == 0 => {}
                _ => return Err(InvalidUtf8),
            }
            self.tail[..rest.len()].copy_from_slice(rest);
            self.tail_len = rest.len() as u8;
        }
        Ok(())
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

    proptest::proptest! {
        #[test]
        fn any_split_agrees_with_std(
            bytes in proptest::collection::vec(proptest::prop_oneof![
                proptest::prelude::any::<u8>(),
                proptest::sample::select(vec![0x80u8, 0xbf, 0xc2, 0xe0, 0xed, 0xf0, 0xf4, b'a']),
            ], 0..40),
            text in ".{0,20}",
            cuts in proptest::collection::vec(0usize..60, 0..6),
        ) {
            for data in [bytes.clone(), text.into_bytes()] {
                let expect = std::str::from_utf8(&data).is_ok();
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
                cuts.sort();
                let mut v = Utf8Validator::new();
                let mut prev = 0;
                let mut ok = true;
                for c in cuts {
                    if v.feed(&data[prev..c]).is_err() { ok = false; break; }
                    prev = c;
                }
                let ok = ok && v.finish(&data[prev..]).is_ok();
                proptest::prop_assert_eq!(ok, expect, "{:x?}", data);
            }
        }
    }
}
