//! permessage-deflate (RFC 7692): parameter negotiation and the per-message codec.
//!
//! # Window bits
//! RFC 7692 allows `*_max_window_bits` from 8 to 15. zlib (and zlib-rs, used through flate2)
//! accepts 9–15 for raw deflate. We map a negotiated 8 to 9 on both sides, which is sound:
//! * **compressing** with a 2^9 window never emits a match distance above
//!   `2^9 - MIN_LOOKAHEAD (262) = 250` bytes, which is inside the 256-byte window the peer allowed;
//! * **decompressing** with a 2^9 window reads any stream whose distances are ≤ 256.
//!
//! So we accept offers of 8 (Autobahn 13.3.*/13.5.* offer them) and answer with the value the
//! peer asked for. Inflating stops as soon as output would pass the message limit (1009): a
//! compression bomb costs at most `max_message_size` bytes of memory.

use crate::Error;
use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The extension token.
pub const EXTENSION_NAME: &str = "permessage-deflate";
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The parameters agreed in a handshake (RFC 7692 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compression context after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after each message.
    pub client_no_context_takeover: bool,
    /// LZ77 window bits (8–15) the server compresses with at most.
    pub server_max_window_bits: u8,
    /// LZ77 window bits (8–15) the client compresses with at most.
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

/// Local permessage-deflate configuration: what a client offers, or what a server accepts and
/// requests. Defaults: context takeover both ways, 15-bit windows, compression level 1 (fast),
/// messages under 64 bytes sent uncompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Server side: reset our compressor after every message (always announced in the answer).
    /// Client side: ask the server to do so.
    pub server_no_context_takeover: bool,
    /// Server side: ask the client to reset its compressor after every message.
    /// Client side: announce that we do.
    pub client_no_context_takeover: bool,
    /// The largest window (8–15) the server compresses with. A server lowers its own window to
    /// this; a client requests it.
    pub server_max_window_bits: u8,
    /// The largest window (8–15) the client compresses with. A server requests it only if the
    /// client offered `client_max_window_bits`; a client offers it.
    pub client_max_window_bits: u8,
    /// zlib compression level 0–9 (default 1).
    pub compression_level: u32,
    /// Messages shorter than this are sent uncompressed (default 64 bytes).
    pub min_compress_size: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            compression_level: 1,
            min_compress_size: 64,
        }
    }
}

/// One `name; param; param=value` element of a `Sec-WebSocket-Extensions` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// Extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters with optional (unquoted) values.
    pub params: Vec<(String, Option<String>)>,
}

/// Parses a `Sec-WebSocket-Extensions` header value into its elements (RFC 6455 §9.1 grammar,
/// quoted values unquoted). Returns `None` on a syntax error.
pub fn parse_extensions(value: &str) -> Option<Vec<ExtensionOffer>> {
    let mut out = Vec::new();
    for ext in value.split(',') {
        let ext = ext.trim();
        if ext.is_empty() {
            continue;
        }
        let mut parts = ext.split(';');
        let name = parts.next()?.trim();
        if !is_token(name) {
            return None;
        }
        let mut params = Vec::new();
        for p in parts {
            let p = p.trim();
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => {
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    if !is_token(v) {
                        return None;
                    }
                    (k.trim(), Some(v.to_owned()))
                }
                None => (p, None),
            };
            if !is_token(k) {
                return None;
            }
            params.push((k.to_ascii_lowercase(), v));
        }
        out.push(ExtensionOffer {
            name: name.to_ascii_lowercase(),
            params,
        });
    }
    Some(out)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_bits(v: &str) -> Option<u8> {
    // 1*DIGIT without leading zeros, 8..=15
    if v.len() > 2 || v.starts_with('0') {
        return None;
    }
    let n: u8 = v.parse().ok()?;
    (8..=15).contains(&n).then_some(n)
}

/// The permessage-deflate parameters of one offer, validated (RFC 7692 §7.1). `None` if the
/// offer must be declined: unknown or duplicate parameter, or an invalid value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct OfferParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without value.
    client_max_window_bits: Option<Option<u8>>,
}

fn parse_offer_params(params: &[(String, Option<String>)]) -> Option<OfferParams> {
    let mut o = OfferParams::default();
    let mut seen = [false; 4];
    for (k, v) in params {
        let idx = match k.as_str() {
            "server_no_context_takeover" => {
                if v.is_some() {
                    return None;
                }
                o.server_no_context_takeover = true;
                0
            }
            "client_no_context_takeover" => {
                if v.is_some() {
                    return None;
                }
                o.client_no_context_takeover = true;
                1
            }
            "server_max_window_bits" => {
                o.server_max_window_bits = Some(parse_bits(v.as_deref()?)?);
                2
            }
            "client_max_window_bits" => {
                o.client_max_window_bits = Some(match v {
                    Some(v) => Some(parse_bits(v)?),
                    None => None,
                });
                3
            }
            _ => return None,
        };
        if std::mem::replace(&mut seen[idx], true) {
            return None;
        }
    }
    Some(o)
}

/// Server side: picks the first acceptable permessage-deflate offer among `offers` and returns
/// the agreed parameters and the response header value. Invalid offers are declined (skipped),
/// as RFC 7692 §5 requires.
pub fn negotiate_server(
    offers: &[ExtensionOffer],
    cfg: &DeflateConfig,
) -> Option<(DeflateParams, String)> {
    for offer in offers.iter().filter(|o| o.name == EXTENSION_NAME) {
        let Some(o) = parse_offer_params(&offer.params) else {
            continue;
        };
        let mut p = DeflateParams {
            server_no_context_takeover: o.server_no_context_takeover
                || cfg.server_no_context_takeover,
            client_no_context_takeover: o.client_no_context_takeover
                || cfg.client_no_context_takeover,
            ..Default::default()
        };
        let mut resp = String::from(EXTENSION_NAME);
        if p.server_no_context_takeover {
            resp.push_str("; server_no_context_takeover");
        }
        if p.client_no_context_takeover {
            resp.push_str("; client_no_context_takeover");
        }
        let own = cfg.server_max_window_bits.clamp(8, 15);
        let sbits = o.server_max_window_bits.map_or(own, |req| req.min(own));
        p.server_max_window_bits = sbits;
        if sbits < 15 || o.server_max_window_bits.is_some() {
            resp.push_str(&format!("; server_max_window_bits={sbits}"));
        }
        match o.client_max_window_bits {
            // client did not offer the parameter: we may not limit its window
            None => p.client_max_window_bits = 15,
            Some(offered) => {
                let want = cfg.client_max_window_bits.clamp(8, 15);
                let cbits = offered.map_or(want, |v| v.min(want));
                p.client_max_window_bits = cbits;
                if cbits < 15 || offered.is_some() {
                    resp.push_str(&format!("; client_max_window_bits={cbits}"));
                }
            }
        }
        return Some((p, resp));
    }
    None
}

/// Client side: the `Sec-WebSocket-Extensions` offer for `cfg`.
pub fn client_offer(cfg: &DeflateConfig) -> String {
    let mut s = String::from(EXTENSION_NAME);
    if cfg.server_no_context_takeover {
        s.push_str("; server_no_context_takeover");
    }
    if cfg.client_no_context_takeover {
        s.push_str("; client_no_context_takeover");
    }
    if cfg.server_max_window_bits < 15 {
        s.push_str(&format!(
            "; server_max_window_bits={}",
            cfg.server_max_window_bits.clamp(8, 15)
        ));
    }
    // Always say we can honour a client window limit.
    if cfg.client_max_window_bits < 15 {
        s.push_str(&format!(
            "; client_max_window_bits={}",
            cfg.client_max_window_bits.clamp(8, 15)
        ));
    } else {
        s.push_str("; client_max_window_bits");
    }
    s
}

/// Client side: validates the server's answer against what `cfg` offered (via
/// [`client_offer`]). `Err(())` if the server answered something it may not.
#[allow(clippy::result_unit_err)]
pub fn accept_client(answer: &ExtensionOffer, cfg: &DeflateConfig) -> Result<DeflateParams, ()> {
    if answer.name != EXTENSION_NAME {
        return Err(());
    }
    let o = parse_offer_params(&answer.params).ok_or(())?;
    let mut p = DeflateParams {
        server_no_context_takeover: o.server_no_context_takeover,
        client_no_context_takeover: o.client_no_context_takeover || cfg.client_no_context_takeover,
        ..Default::default()
    };
    if cfg.server_no_context_takeover && !o.server_no_context_takeover {
        return Err(());
    }
    let requested_s = cfg.server_max_window_bits.clamp(8, 15);
    match o.server_max_window_bits {
        Some(b) if b > requested_s => return Err(()),
        Some(b) => p.server_max_window_bits = b,
        None if requested_s < 15 => return Err(()),
        None => p.server_max_window_bits = 15,
    }
    let offered_c = cfg.client_max_window_bits.clamp(8, 15);
    p.client_max_window_bits = match o.client_max_window_bits {
        // the answer must carry a value (RFC 7692 §7.1.2.2)
        Some(None) => return Err(()),
        Some(Some(b)) => b.min(offered_c),
        None => offered_c,
    };
    Ok(p)
}

fn zlib_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// Compresses outgoing messages.
pub struct Deflater {
    c: Compress,
    no_context_takeover: bool,
    min_size: usize,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish()
    }
}

impl Deflater {
    /// A compressor with `window_bits` (8–15) and the given level and context-takeover rule.
    pub fn new(window_bits: u8, level: u32, no_context_takeover: bool, min_size: usize) -> Self {
        Deflater {
            c: Compress::new_with_window_bits(
                Compression::new(level.min(9)),
                false,
                zlib_bits(window_bits),
            ),
            no_context_takeover,
            min_size,
        }
    }

    /// Whether a payload of `len` bytes is worth compressing.
    pub fn wants(&self, len: usize) -> bool {
        len >= self.min_size
    }

    /// Compresses one whole message payload into `out` (appended), without the trailing
    /// `00 00 ff ff` (RFC 7692 §7.2.1).
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve((input.len() - consumed) / 2 + 64);
            }
            let before_in = self.c.total_in();
            let status = self
                .c
                .compress_vec(&input[consumed..], out, FlushCompress::Sync)
                .map_err(|_| Error::InvalidInput("deflate failed"))?;
            consumed += (self.c.total_in() - before_in) as usize;
            let full = out.len() == out.capacity();
            if consumed == input.len() && !full && status != Status::BufError {
                break;
            }
            if status == Status::BufError && !full {
                break;
            }
        }
        if out.len() >= start + 4 && out[out.len() - 4..] == TRAILER {
            out.truncate(out.len() - 4);
        }
        if self.no_context_takeover {
            self.c.reset();
        }
        Ok(())
    }
}

/// Decompresses incoming messages, with the message size limit enforced while inflating.
pub struct Inflater {
    d: Decompress,
    window_bits: u8,
    no_context_takeover: bool,
    ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish()
    }
}

impl Inflater {
    /// A decompressor for a peer compressing with at most `window_bits` (8–15).
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        let window_bits = zlib_bits(window_bits);
        Inflater {
            d: Decompress::new_with_window_bits(false, window_bits),
            window_bits,
            no_context_takeover,
            ended: false,
        }
    }

    /// Inflates `input` (one frame's payload) appending to `out`, never letting `out` grow past
    /// `max` bytes. `on_output` sees each newly produced slice (for incremental UTF-8 checks).
    /// When `last` is set, the RFC 7692 trailer is fed too and the context is reset if needed.
    pub fn inflate(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        max: usize,
        on_output: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.run(input, out, max, on_output)?;
        if last {
            self.run(&TRAILER, out, max, on_output)?;
            if self.no_context_takeover || self.ended {
                self.reset();
            }
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.d = Decompress::new_with_window_bits(false, self.window_bits);
        self.ended = false;
    }

    fn run(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
        on_output: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut consumed = 0usize;
        loop {
            if self.ended {
                // Data after the final deflate block is ignored.
                return Ok(());
            }
            if out.len() == out.capacity() {
                if out.len() >= max {
                    // Full up to the limit: any further output byte breaks it. Probe with one byte.
                    let mut probe = Vec::with_capacity(1);
                    let before_in = self.d.total_in();
                    let st = self
                        .d
                        .decompress_vec(&input[consumed..], &mut probe, FlushDecompress::Sync)
                        .map_err(|_| Error::InvalidDeflateData)?;
                    consumed += (self.d.total_in() - before_in) as usize;
                    if !probe.is_empty() {
                        return Err(Error::MessageTooLarge { max });
                    }
                    if st == Status::StreamEnd {
                        self.ended = true;
                    }
                    if consumed == input.len() || st != Status::Ok {
                        return Ok(());
                    }
                    continue;
                }
                let room = max - out.len();
                out.reserve(
                    (input.len().saturating_mul(4))
                        .clamp(256, 64 << 10)
                        .min(room),
                );
            }
            let start = out.len();
            let before_in = self.d.total_in();
            let status = self
                .d
                .decompress_vec(&input[consumed..], out, FlushDecompress::Sync)
                .map_err(|_| Error::InvalidDeflateData)?;
            consumed += (self.d.total_in() - before_in) as usize;
            if out.len() > max {
                return Err(Error::MessageTooLarge { max });
            }
            if out.len() > start {
                on_output(&out[start..])?;
            }
            match status {
                Status::StreamEnd => {
                    self.ended = true;
                    return Ok(());
                }
                Status::BufError if out.len() < out.capacity() => return Ok(()),
                _ => {}
            }
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }
}

/// The negotiated codec pair for one side of a connection.
#[derive(Debug)]
pub struct DeflateCodec {
    /// Compresses what we send.
    pub deflater: Deflater,
    /// Decompresses what we receive.
    pub inflater: Inflater,
}

impl DeflateCodec {
    /// Builds the pair for `role` from agreed `params` and the local `cfg` (level, min size).
    pub fn new(role: crate::Role, params: &DeflateParams, cfg: &DeflateConfig) -> Self {
        let (own_bits, own_nct, peer_bits, peer_nct) = match role {
            crate::Role::Server => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
                params.client_max_window_bits,
                params.client_no_context_takeover,
            ),
            crate::Role::Client => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
                params.server_max_window_bits,
                params.server_no_context_takeover,
            ),
        };
        DeflateCodec {
            deflater: Deflater::new(
                own_bits,
                cfg.compression_level,
                own_nct,
                cfg.min_compress_size,
            ),
            inflater: Inflater::new(peer_bits, peer_nct),
        }
    }
}

/// Convenience: compress a whole payload into a new `Bytes` (used by tests and benches).
pub fn compress_to_bytes(d: &mut Deflater, input: &[u8]) -> Result<Bytes, Error> {
    let mut v = Vec::new();
    d.compress(input, &mut v)?;
    Ok(Bytes::from(v))
}
