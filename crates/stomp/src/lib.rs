//! `switchboard-stomp`: a streaming, zero-copy parser and encoder for STOMP 1.0, 1.1 and 1.2 frames.
//!
//! It does framing only — bytes in, frames out, frames in, bytes out — and no I/O: feed it bytes
//! from a TCP socket, WebSocket messages or a test vector. The owned [`Frame`] it returns shares
//! the input's memory (header strings and the body are [`bytes::Bytes`] slices of the read buffer),
//! so a broker can keep a message and fan it out to many sessions without copying it.
//! Its grammar is written with `nom`, which stays an implementation detail.
//!
//! # Parsing
//!
//! ```
//! use bytes::BytesMut;
//! use switchboard_stomp::{Command, Limits, Parsed, Parser, Version};
//!
//! let mut parser = Parser::new(Version::V1_2, Limits::default());
//! let mut buf = BytesMut::new();
//! // Bytes arrive in pieces; a partial frame is never consumed.
//! buf.extend_from_slice(b"SEND\r\ndestination:/queue/a\r\ncontent-length:5\r\n\r\nhe");
//! assert_eq!(parser.parse(&mut buf)?, None);
//! buf.extend_from_slice(b"l\0o\0\n");
//! let Some(Parsed::Frame(frame)) = parser.parse(&mut buf)? else { panic!("a frame") };
//! assert_eq!(frame.command, Command::Send);
//! assert_eq!(frame.destination(), Some("/queue/a"));
//! assert_eq!(&frame.body[..], b"hel\0o"); // content-length counts NULs in the body
//! assert_eq!(parser.parse(&mut buf)?, Some(Parsed::HeartBeat)); // the EOL after the frame
//! assert!(buf.is_empty());
//! # Ok::<(), switchboard_stomp::ParseError>(())
//! ```
//!
//! A server does not know the version before CONNECT: start with [`Parser::before_connect`]
//! and call [`Parser::set_version`] with the result of [`header::negotiate_version`].
//! For allocation-free parsing of a byte slice, [`parse_frame`] returns a borrowed [`FrameRef`].
//!
//! # Encoding
//!
//! ```
//! use bytes::BytesMut;
//! use switchboard_stomp::{encode_frame, encode_heart_beat, Command, Frame, Version};
//!
//! let receipt = Frame::new(Command::Receipt).header("receipt-id", "77");
//! let mut out = BytesMut::new();
//! encode_frame(&receipt, Version::V1_2, &mut out)?;
//! encode_heart_beat(&mut out);
//! assert_eq!(&out[..], b"RECEIPT\nreceipt-id:77\n\n\0\n");
//! # Ok::<(), switchboard_stomp::EncodeError>(())
//! ```
//!
//! # The rules, per version
//!
//! - Commands and header names are case-sensitive; an unknown command is an error.
//! - Lines end in LF in 1.0 and 1.1 (a CR is data); in 1.2 a CR before the LF belongs to the EOL.
//! - Between frames, stray NULs are skipped and each EOL (LF or CR LF, any version) is reported as
//!   [`Parsed::HeartBeat`] — heart-beats and the optional EOLs after a frame's NUL alike.
//! - A header line splits at its first colon; names are non-empty; values are never trimmed, in any
//!   version (1.0 included: `key: value` keeps its space, since trimming would corrupt values).
//! - Repeated headers are all kept, in order; lookups return the first (the spec's rule).
//! - Escapes: none in 1.0; `\n`, `\c`, `\\` in 1.1; 1.2 adds `\r`. CONNECT, STOMP and CONNECTED
//!   are never escaped. Any other escape, or a `\` ending a name or value, is a fatal error.
//! - `content-length` (the first one) gives the body's exact length, NULs included, and must be
//!   followed by a NUL; without it the body ends at the first NUL.
//! - Only SEND, MESSAGE and ERROR may carry a body (1.1 and 1.2; 1.0 does not forbid it).
//! - Header names and values must be UTF-8; bodies are bytes.
//! - Before negotiation ([`Parser::before_connect`], or `None` as the version of
//!   [`parse_frame`]), a CR before LF is accepted — STOMP 1.2 clients may send their CONNECT
//!   with CR LF, and CONNECT values are never escaped, so a CR cannot be data there — and any
//!   other frame follows 1.2's rules.
//!
//! # Limits
//!
//! Every limit is checked before the bytes it guards are waited for; see [`Limits`].
//!
//! | limit | default |
//! |---|---|
//! | command line | 32 bytes |
//! | header line | 8 KiB |
//! | headers per frame | 128 |
//! | body | 1 MiB (a larger `content-length` is rejected at once) |
//!
//! Every [`ParseError`] names the broken rule and its byte offset, and gives a short text for
//! an ERROR frame's `message` header ([`ParseError::error_message`]).
//!
//! # Features
//!
//! - `codec` (off by default): [`codec::StompCodec`], a `tokio_util::codec` `Decoder`/`Encoder`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "codec")]
pub mod codec;
mod encode;
mod error;
mod escape;
pub mod frame;
mod grammar;
pub mod header;
mod limits;
mod parse;

pub use encode::{encode_frame, encode_heart_beat};
pub use error::{EncodeError, ParseError};
pub use frame::{Command, Frame, Header, Headers, Version};
pub use header::{HeartBeat, HeartBeatIntervals, negotiate_heart_beat, negotiate_version};
pub use limits::Limits;
pub use parse::{FrameRef, HeaderIter, Parsed, Parser, parse_frame};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
