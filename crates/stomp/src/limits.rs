//! Parser limits: what a peer may make the parser hold before it gives up.

/// Limits the parser enforces on every frame, each checked before the bytes it guards are kept.
///
/// | limit | default | error when exceeded |
/// |---|---|---|
/// | [`max_command_len`](Limits::max_command_len) | 32 bytes | [`ParseError::CommandTooLong`](crate::ParseError::CommandTooLong) |
/// | [`max_header_line`](Limits::max_header_line) | 8 KiB (one `name:value` line, EOL excluded) | [`ParseError::HeaderLineTooLong`](crate::ParseError::HeaderLineTooLong) |
/// | [`max_headers`](Limits::max_headers) | 128 headers per frame | [`ParseError::TooManyHeaders`](crate::ParseError::TooManyHeaders) |
/// | [`max_body`](Limits::max_body) | 1 MiB | [`ParseError::BodyTooLarge`](crate::ParseError::BodyTooLarge) |
///
/// A `content-length` larger than `max_body` is rejected as soon as the header block ends,
/// before any body byte is waited for. Build custom limits with the `with_*` methods:
///
/// ```
/// use switchboard_stomp::Limits;
/// let limits = Limits::default().with_max_body(16 << 20).with_max_headers(64);
/// assert_eq!(limits.max_body, 16 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Limits {
    /// Longest command line (without its EOL). The longest STOMP command, `UNSUBSCRIBE`, has 11 bytes.
    pub max_command_len: usize,
    /// Longest header line (`name:value`, escapes counted as written, EOL excluded).
    pub max_header_line: usize,
    /// Most headers in one frame (repeats included).
    pub max_headers: usize,
    /// Largest body, whether delimited by `content-length` or by the NUL.
    pub max_body: usize,
}

impl Limits {
    /// The default limits (see the table above).
    pub const DEFAULT: Limits = Limits {
        max_command_len: 32,
        max_header_line: 8 * 1024,
        max_headers: 128,
        max_body: 1024 * 1024,
    };

    /// Sets [`max_command_len`](Limits::max_command_len).
    #[must_use]
    pub const fn with_max_command_len(mut self, n: usize) -> Limits {
        self.max_command_len = n;
        self
    }

    /// Sets [`max_header_line`](Limits::max_header_line).
    #[must_use]
    pub const fn with_max_header_line(mut self, n: usize) -> Limits {
        self.max_header_line = n;
        self
    }

    /// Sets [`max_headers`](Limits::max_headers).
    #[must_use]
    pub const fn with_max_headers(mut self, n: usize) -> Limits {
        self.max_headers = n;
        self
    }

    /// Sets [`max_body`](Limits::max_body).
    #[must_use]
    pub const fn with_max_body(mut self, n: usize) -> Limits {
        self.max_body = n;
        self
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}
