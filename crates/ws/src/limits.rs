//! Resource limits, all configurable, with defaults safe for a public server.

/// Limits applied while decoding frames and handshakes. Every limit is checked *before* any
/// allocation it guards; a claimed length is never allocated up front.
///
/// Build with struct update syntax:
/// ```
/// let limits = switchboard_ws::Limits { max_message_size: 1 << 20, ..Default::default() };
/// assert_eq!(limits.max_frame_size, 16 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame payload accepted (default 16 MiB). Exceeding it closes with 1009.
    pub max_frame_size: usize,
    /// Largest message, summed over fragments and measured *after* decompression
    /// (default 16 MiB). Exceeding it closes with 1009; inflating stops at the limit.
    pub max_message_size: usize,
    /// Most frames one data message may consist of (default 4096). Guards against floods of tiny
    /// or empty continuation frames. Exceeding it closes with 1008.
    pub max_fragments: usize,
    /// Most automatic Pongs waiting to be written (default 16). Further Pings are still delivered
    /// to the application but not answered until the queue drains (RFC 6455 §5.5.3 allows
    /// answering only the most recent Ping).
    pub max_pending_pongs: usize,
    /// Largest HTTP handshake head, request or response (default 8 KiB) → 431/400.
    pub max_handshake_size: usize,
    /// Most header lines in the handshake head (default 64) → 431/400.
    pub max_handshake_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            max_fragments: 4096,
            max_pending_pongs: 16,
            max_handshake_size: 8 << 10,
            max_handshake_headers: 64,
        }
    }
}

impl Limits {
    /// Limits suitable for conformance testing (Autobahn 9.* sends 16 MiB messages in 64-byte
    /// fragments): 64 MiB frames and messages, 1 Mi fragments. Not for untrusted peers.
    pub fn permissive() -> Self {
        Limits {
            max_frame_size: 64 << 20,
            max_message_size: 64 << 20,
            max_fragments: 1 << 20,
            max_pending_pongs: 1024,
            ..Default::default()
        }
    }
}
