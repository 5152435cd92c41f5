//! The STOMP grammar pieces, written with nom. Private: no nom type leaves this module.
//!
//! The frame-level state machine (`parse.rs`) decides *where* to look (it keeps a cursor so it
//! never rescans bytes it already checked); these parsers decide *what* the bytes mean.

use nom::bytes::{complete, streaming};
use nom::character::complete::{space0, u32 as dec_u32, u64 as dec_u64};
use nom::combinator::{all_consuming, rest};
use nom::sequence::{delimited, separated_pair};
use nom::{IResult, Parser};

use crate::escape::Escaping;

/// nom results here carry no error details: the caller knows the offset and the rule.
type Res<'a, O> = IResult<&'a [u8], O, ()>;

/// Streaming: the bytes before the next LF (`Err(Incomplete)` when there is none yet).
#[inline]
pub(crate) fn until_lf(input: &[u8]) -> Res<'_, &[u8]> {
    streaming::take_until(&b"\n"[..])(input)
}

/// Streaming: the bytes before the next NUL (`Err(Incomplete)` when there is none yet).
#[inline]
pub(crate) fn until_nul(input: &[u8]) -> Res<'_, &[u8]> {
    streaming::take_until(&b"\0"[..])(input)
}

/// A complete header line: `name ":" value`, split at the first colon.
#[inline]
pub(crate) fn header_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    separated_pair(
        complete::take_until::<_, _, ()>(&b":"[..]),
        complete::tag(&b":"[..]),
        rest,
    )
    .parse(line)
    .ok()
    .map(|(_, pair)| pair)
}

/// A `content-length` value: decimal digits only, nothing else (no sign, no spaces).
#[inline]
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    all_consuming(dec_u64::<_, ()>)
        .parse(value)
        .ok()
        .map(|(_, n)| n)
}

/// A `heart-beat` value `x,y` in milliseconds (spaces around either number tolerated).
pub(crate) fn heart_beat(value: &[u8]) -> Option<(u32, u32)> {
    all_consuming(separated_pair(
        delimited(space0::<_, ()>, dec_u32, space0),
        complete::tag(&b","[..]),
        delimited(space0, dec_u32, space0),
    ))
    .parse(value)
    .ok()
    .map(|(_, pair): (_, (u32, u32))| pair)
}

/// An escape sequence `\x` at the start of `input`: the byte it stands for, if `escaping` defines it.
#[inline]
pub(crate) fn escape_sequence(input: &[u8], escaping: Escaping) -> Option<u8> {
    let (_, code): (_, &[u8]) = nom::sequence::preceded(
        complete::tag::<_, _, ()>(&b"\\"[..]),
        complete::take(1usize),
    )
    .parse(input)
    .ok()?;
    escaping.decode(*code.first()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(until_lf(b"abc\ndef"), Ok((&b"\ndef"[..], &b"abc"[..])));
        assert!(matches!(until_lf(b"abc"), Err(nom::Err::Incomplete(_))));
        assert_eq!(until_nul(b"ab\0"), Ok((&b"\0"[..], &b"ab"[..])));
    }

    #[test]
    fn headers() {
        assert_eq!(header_line(b"a:b:c"), Some((&b"a"[..], &b"b:c"[..])));
        assert_eq!(header_line(b":x"), Some((&b""[..], &b"x"[..])));
        assert_eq!(header_line(b"abc"), None);
        assert_eq!(header_line(b"a:"), Some((&b"a"[..], &b""[..])));
    }

    #[test]
    fn numbers() {
        assert_eq!(content_length(b"123"), Some(123));
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b" 1"), None);
        assert_eq!(content_length(b"1 "), None);
        assert_eq!(content_length(b"-1"), None);
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"99999999999999999999999"), None);
        assert_eq!(heart_beat(b"10000,20000"), Some((10000, 20000)));
        assert_eq!(heart_beat(b"0, 0"), Some((0, 0)));
        assert_eq!(heart_beat(b"0"), None);
        assert_eq!(heart_beat(b"1,2,3"), None);
    }

    #[test]
    fn escapes() {
        assert_eq!(escape_sequence(b"\\n", Escaping::V11), Some(b'\n'));
        assert_eq!(escape_sequence(b"\\", Escaping::V11), None);
        assert_eq!(escape_sequence(b"\\r", Escaping::V11), None);
        assert_eq!(escape_sequence(b"\\r", Escaping::V12), Some(b'\r'));
    }
}
