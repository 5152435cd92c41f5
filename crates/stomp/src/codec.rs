//! A tokio-util [`Decoder`]/[`Encoder`] pair (feature `codec`), for STOMP on a byte stream.

use std::{fmt, io};

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::{
    EncodeError, Frame, Limits, ParseError, Parsed, Parser, Version, encode_frame,
    encode_heart_beat,
};

/// Decodes [`Parsed`] items with a [`Parser`] and encodes [`Frame`]s (and heart-beats) for one
/// version. Built with [`StompCodec::before_connect`] on servers; call
/// [`set_version`](StompCodec::set_version) once CONNECT is answered.
///
/// ```
/// use bytes::BytesMut;
/// use tokio_util::codec::{Decoder, Encoder};
/// use switchboard_stomp::{codec::StompCodec, Command, Frame, Limits, Parsed, Version};
///
/// let mut codec = StompCodec::new(Version::V1_2, Limits::default());
/// let mut wire = BytesMut::new();
/// codec.encode(Frame::new(Command::Send).header("destination", "/q").body("x"), &mut wire)?;
/// let Some(Parsed::Frame(f)) = codec.decode(&mut wire)? else { panic!() };
/// assert_eq!(f.destination(), Some("/q"));
/// # Ok::<(), switchboard_stomp::codec::CodecError>(())
/// ```
#[derive(Debug)]
pub struct StompCodec {
    parser: Parser,
    version: Version,
}

impl StompCodec {
    /// A codec for a connection whose version is known.
    pub fn new(version: Version, limits: Limits) -> StompCodec {
        StompCodec {
            parser: Parser::new(version, limits),
            version,
        }
    }

    /// A codec for a connection before CONNECT: parses as [`Parser::before_connect`] and encodes
    /// as STOMP 1.2 (CONNECT/CONNECTED frames are never escaped, so the version does not show).
    pub fn before_connect(limits: Limits) -> StompCodec {
        StompCodec {
            parser: Parser::before_connect(limits),
            version: Version::V1_2,
        }
    }

    /// Switches both directions to `version`.
    pub fn set_version(&mut self, version: Version) {
        self.parser.set_version(version);
        self.version = version;
    }

    /// The parser, e.g. to read its version or limits.
    pub fn parser(&self) -> &Parser {
        &self.parser
    }
}

/// A codec error: I/O from the stream, or a STOMP rule broken.
#[derive(Debug)]
#[non_exhaustive]
pub enum CodecError {
    /// The underlying stream failed.
    Io(io::Error),
    /// The peer broke a framing rule (send ERROR with [`ParseError::error_message`], then close).
    Parse(ParseError),
    /// A frame could not be written.
    Encode(EncodeError),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Io(e) => write!(f, "i/o error: {e}"),
            CodecError::Parse(e) => write!(f, "STOMP parse error: {e}"),
            CodecError::Encode(e) => write!(f, "STOMP encode error: {e}"),
        }
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CodecError::Io(e) => Some(e),
            CodecError::Parse(e) => Some(e),
            CodecError::Encode(e) => Some(e),
        }
    }
}

impl From<io::Error> for CodecError {
    fn from(e: io::Error) -> CodecError {
        CodecError::Io(e)
    }
}

impl From<ParseError> for CodecError {
    fn from(e: ParseError) -> CodecError {
        CodecError::Parse(e)
    }
}

impl From<EncodeError> for CodecError {
    fn from(e: EncodeError) -> CodecError {
        CodecError::Encode(e)
    }
}

impl Decoder for StompCodec {
    type Item = Parsed;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Parsed>, CodecError> {
        Ok(self.parser.parse(src)?)
    }
}

impl Encoder<Frame> for StompCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(encode_frame(&frame, self.version, dst)?)
    }
}

impl Encoder<&Frame> for StompCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(encode_frame(frame, self.version, dst)?)
    }
}

impl Encoder<Parsed> for StompCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Parsed, dst: &mut BytesMut) -> Result<(), CodecError> {
        match item {
            Parsed::Frame(frame) => Ok(encode_frame(&frame, self.version, dst)?),
            Parsed::HeartBeat => {
                encode_heart_beat(dst);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;

    #[test]
    fn decode_split_stream() {
        let mut codec = StompCodec::before_connect(Limits::default());
        let mut wire = BytesMut::new();
        codec
            .encode(
                Frame::new(Command::Connect).header("accept-version", "1.1"),
                &mut wire,
            )
            .unwrap();
        codec.encode(Parsed::HeartBeat, &mut wire).unwrap();
        let all = wire.split().freeze();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in all.iter() {
            buf.extend_from_slice(&[*b]);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                out.push(item);
            }
        }
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0], Parsed::Frame(f) if f.accept_version() == Some("1.1")));
        assert_eq!(out[1], Parsed::HeartBeat);
        codec.set_version(Version::V1_1);
        assert_eq!(codec.parser().version(), Some(Version::V1_1));
        let mut bad = BytesMut::from(&b"send\n\n\0"[..]);
        assert!(matches!(
            codec.decode(&mut bad),
            Err(CodecError::Parse(ParseError::UnknownCommand { .. }))
        ));
    }
}
