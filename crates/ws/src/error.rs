//! Errors, each naming the rule that broke and the close code (or HTTP status) to send.

use crate::close::CloseCode;

/// A protocol error while decoding or a misuse while sending.
///
/// [`Error::close_code`] says which code the Close frame failing the connection should carry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// RSV2/RSV3 set, or RSV1 set without permessage-deflate or on a frame where it is not allowed.
    #[error("reserved bits set without an extension that defines them")]
    ReservedBits,
    /// An opcode RFC 6455 reserves (3–7, 11–15).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A server received an unmasked frame (clients must mask, RFC 6455 §5.1).
    #[error("client frame is not masked")]
    UnmaskedFrame,
    /// A client received a masked frame (servers must not mask, RFC 6455 §5.1).
    #[error("server frame is masked")]
    MaskedFrame,
    /// The 64-bit length had its most significant bit set.
    #[error("invalid 64-bit payload length")]
    InvalidLength,
    /// A control frame with more than 125 bytes of payload.
    #[error("control frame payload longer than 125 bytes")]
    ControlFrameTooLong,
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// A continuation frame with no message in progress.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A new Text/Binary frame while a fragmented message is unfinished.
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A Close payload of 1 byte.
    #[error("close frame payload of 1 byte")]
    InvalidClosePayload,
    /// A close code a peer may not send (RFC 6455 §7.4).
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// The compressed data of a permessage-deflate message is corrupt.
    #[error("invalid permessage-deflate data")]
    InvalidDeflateData,
    /// Text payload (or close reason) is not valid UTF-8 — detected at the first bad sequence.
    #[error("invalid UTF-8 in text payload")]
    InvalidUtf8,
    /// A frame's claimed length exceeds [`crate::Limits::max_frame_size`].
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Claimed length.
        len: u64,
        /// Limit.
        max: usize,
    },
    /// A message (after decompression) exceeds [`crate::Limits::max_message_size`].
    #[error("message exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Limit.
        max: usize,
    },
    /// More fragments than [`crate::Limits::max_fragments`].
    #[error("message has more than {max} fragments")]
    TooManyFragments {
        /// Limit.
        max: usize,
    },
    /// Sending after the close handshake started (or the connection failed).
    #[error("connection is closing or closed")]
    Closed,
    /// An argument the caller passed is invalid (e.g. a close code that may not be sent, a
    /// control payload over 125 bytes).
    #[error("invalid argument: {0}")]
    InvalidInput(&'static str),
    /// The opening handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(#[from] crate::handshake::HandshakeError),
    /// A timeout of the async adapter expired.
    #[error("{0} timeout expired")]
    Timeout(&'static str),
    /// Transport error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The close code to send to the peer when this error fails the connection, or `None` when
    /// no Close frame should (or can) be sent.
    pub fn close_code(&self) -> Option<CloseCode> {
        use Error::*;
        Some(match self {
            ReservedBits
            | ReservedOpcode(_)
            | UnmaskedFrame
            | MaskedFrame
            | InvalidLength
            | ControlFrameTooLong
            | FragmentedControlFrame
            | UnexpectedContinuation
            | ExpectedContinuation
            | InvalidClosePayload
            | InvalidCloseCode(_)
            | InvalidDeflateData => CloseCode::PROTOCOL_ERROR,
            InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            FrameTooLarge { .. } | MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            TooManyFragments { .. } => CloseCode::POLICY_VIOLATION,
            Timeout(_) => CloseCode::GOING_AWAY,
            Closed | InvalidInput(_) | Handshake(_) | Io(_) => return None,
        })
    }

    /// True if this is a violation by the peer (the connection must be failed).
    pub fn is_protocol_error(&self) -> bool {
        !matches!(
            self,
            Error::Closed
                | Error::InvalidInput(_)
                | Error::Handshake(_)
                | Error::Io(_)
                | Error::Timeout(_)
        )
    }
}
