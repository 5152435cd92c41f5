//! Parse and encode errors. Every parse error is fatal for the connection (STOMP says: send ERROR, close).

use std::fmt;

use crate::{Command, Version};

/// Why a frame could not be parsed. Each variant names the rule that broke and the byte offset
/// where it broke; [`error_message`](ParseError::error_message) is a short text for the
/// `message` header of the ERROR frame a server sends before closing.
///
/// Offsets count from the start of the slice given to [`parse_frame`](crate::parse_frame), or
/// from the first byte a [`Parser`](crate::Parser) ever saw (a stream offset).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The command line is not one of the STOMP commands (they are case-sensitive).
    UnknownCommand {
        /// Offset of the command line.
        offset: usize,
    },
    /// The command line is longer than [`Limits::max_command_len`](crate::Limits::max_command_len).
    CommandTooLong {
        /// Offset of the command line.
        offset: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A header line is longer than [`Limits::max_header_line`](crate::Limits::max_header_line).
    HeaderLineTooLong {
        /// Offset of the header line.
        offset: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The frame has more headers than [`Limits::max_headers`](crate::Limits::max_headers).
    TooManyHeaders {
        /// Offset of the first header line over the limit.
        offset: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A header line has no `:`.
    MissingColon {
        /// Offset of the header line.
        offset: usize,
    },
    /// A header line starts with `:` (a header name has at least one octet).
    EmptyHeaderName {
        /// Offset of the header line.
        offset: usize,
    },
    /// A `\` escape the negotiated version does not define (1.1: `\n \c \\`; 1.2 adds `\r`),
    /// or a `\` at the end of a name or value. Fatal per the specification.
    InvalidEscape {
        /// Offset of the backslash.
        offset: usize,
    },
    /// The command or a header is not UTF-8.
    InvalidUtf8 {
        /// Offset of the first byte that is not UTF-8.
        offset: usize,
    },
    /// The first `content-length` header is not a decimal number of octets.
    InvalidContentLength {
        /// Offset of the header's value.
        offset: usize,
    },
    /// The body is (or `content-length` announces a body) larger than
    /// [`Limits::max_body`](crate::Limits::max_body).
    BodyTooLarge {
        /// Offset of the body's first byte.
        offset: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The `content-length` octets of the body are not followed by a NUL.
    MissingNul {
        /// Offset where the NUL was expected.
        offset: usize,
    },
    /// A frame other than SEND, MESSAGE or ERROR has a body (STOMP 1.1 and later).
    BodyNotAllowed {
        /// Offset of the body's first byte.
        offset: usize,
        /// The frame's command.
        command: Command,
    },
}

impl ParseError {
    /// The byte offset where the rule broke.
    pub fn offset(&self) -> usize {
        match *self {
            ParseError::UnknownCommand { offset }
            | ParseError::CommandTooLong { offset, .. }
            | ParseError::HeaderLineTooLong { offset, .. }
            | ParseError::TooManyHeaders { offset, .. }
            | ParseError::MissingColon { offset }
            | ParseError::EmptyHeaderName { offset }
            | ParseError::InvalidEscape { offset }
            | ParseError::InvalidUtf8 { offset }
            | ParseError::InvalidContentLength { offset }
            | ParseError::BodyTooLarge { offset, .. }
            | ParseError::MissingNul { offset }
            | ParseError::BodyNotAllowed { offset, .. } => offset,
        }
    }

    /// A short text for the `message` header of the ERROR frame sent to the peer
    /// (no offsets, no user data: safe to echo).
    pub fn error_message(&self) -> &'static str {
        match self {
            ParseError::UnknownCommand { .. } => "Bad command",
            ParseError::CommandTooLong { .. } => "Command line too long",
            ParseError::HeaderLineTooLong { .. } => "Header line too long",
            ParseError::TooManyHeaders { .. } => "Too many headers",
            ParseError::MissingColon { .. } => "Bad header: no colon",
            ParseError::EmptyHeaderName { .. } => "Bad header: empty name",
            ParseError::InvalidEscape { .. } => "Bad header: undefined escape sequence",
            ParseError::InvalidUtf8 { .. } => "Bad header: not UTF-8",
            ParseError::InvalidContentLength { .. } => "Bad content-length",
            ParseError::BodyTooLarge { .. } => "Frame body too large",
            ParseError::MissingNul { .. } => {
                "Frame not terminated by NUL after content-length octets"
            }
            ParseError::BodyNotAllowed { .. } => "Body not allowed on this frame",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.error_message(), self.offset())?;
        match self {
            ParseError::CommandTooLong { limit, .. }
            | ParseError::HeaderLineTooLong { limit, .. }
            | ParseError::TooManyHeaders { limit, .. }
            | ParseError::BodyTooLarge { limit, .. } => write!(f, " (limit {limit})"),
            ParseError::BodyNotAllowed { command, .. } => write!(f, " ({})", command.as_str()),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ParseError {}

/// Why a frame could not be written. The destination buffer is left as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A header's name is empty.
    EmptyHeaderName {
        /// Index of the header in [`Frame::headers`](crate::Frame::headers).
        index: usize,
    },
    /// A header holds a byte the frame cannot carry unescaped: LF (and CR on frames read with
    /// CR-LF line ends) in names or values, or `:` in names, on STOMP 1.0 frames and on
    /// CONNECT, STOMP and CONNECTED frames, which are never escaped.
    Unrepresentable {
        /// Index of the header in [`Frame::headers`](crate::Frame::headers).
        index: usize,
        /// The version the frame was being written for.
        version: Version,
    },
    /// A body on a frame other than SEND, MESSAGE or ERROR (STOMP 1.1 and later).
    BodyNotAllowed {
        /// The frame's command.
        command: Command,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::EmptyHeaderName { index } => write!(f, "header {index} has an empty name"),
            EncodeError::Unrepresentable { index, version } => write!(
                f,
                "header {index} holds a byte STOMP {} cannot carry in this frame",
                version.as_str()
            ),
            EncodeError::BodyNotAllowed { command } => {
                write!(f, "{} frames cannot carry a body", command.as_str())
            }
        }
    }
}

impl std::error::Error for EncodeError {}
