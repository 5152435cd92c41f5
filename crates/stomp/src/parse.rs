//! The streaming parser: [`Parser`] (owned, `Bytes`-backed frames) and [`parse_frame`] (borrowed,
//! allocation-free [`FrameRef`]s).
//!
//! Both share one resumable scanner. It keeps a cursor, so bytes already checked are never scanned
//! again when more arrive, and it consumes nothing of a frame until the frame is complete.

use std::borrow::Cow;

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::ParseError;
use crate::escape::{self, Escaping};
use crate::grammar::{self, LineMarks};
use crate::{Command, Frame, Headers, Limits, Version};

/// What [`Parser::parse`] found at the front of the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete frame.
    Frame(Frame),
    /// One EOL (LF, or CR LF) between frames: a heart-beat, or the optional EOLs after a frame's NUL.
    HeartBeat,
}

/// The line and body rules of one version (or of the frames before CONNECT is parsed).
#[derive(Clone, Copy, Debug)]
struct Rules {
    /// Whether one CR before LF is part of the EOL (1.2, and before negotiation).
    strip_cr: bool,
    /// The escaping of frames that escape headers.
    escaping: Escaping,
    /// Whether a body on frames other than SEND, MESSAGE and ERROR is an error (1.1+).
    strict_body: bool,
}

impl Rules {
    fn of(version: Option<Version>) -> Rules {
        Rules {
            strip_cr: matches!(version, None | Some(Version::V1_2)),
            escaping: Escaping::of_version(version),
            strict_body: version != Some(Version::V1_0),
        }
    }
}

/// Offsets of one header line, relative to the frame's first byte.
#[derive(Clone, Copy, Debug)]
struct RawHeader {
    name_start: usize,
    /// The colon; the value starts right after it.
    name_end: usize,
    value_end: usize,
    /// Whether the name or the value holds an escape to decode.
    escaped: bool,
}

/// Where parsed headers go: a list for owned frames, nowhere for borrowed ones
/// (a [`FrameRef`] re-splits its header block lazily).
trait HeaderSink {
    fn push(&mut self, header: RawHeader);
}

impl HeaderSink for Vec<RawHeader> {
    #[inline]
    fn push(&mut self, header: RawHeader) {
        Vec::push(self, header);
    }
}

struct Discard;

impl HeaderSink for Discard {
    #[inline]
    fn push(&mut self, _: RawHeader) {}
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Command,
    Headers,
    Body,
}

/// Where the parts of a complete frame are, relative to its first byte.
#[derive(Clone, Copy, Debug)]
struct Layout {
    command: Command,
    escaping: Escaping,
    strip_cr: bool,
    /// First byte of the first header line.
    headers_start: usize,
    /// First byte of the blank line ending the headers.
    head_end: usize,
    header_count: usize,
    body_start: usize,
    body_end: usize,
    /// One past the NUL.
    frame_end: usize,
}

/// The resumable scanner of one frame (input offset 0 = the frame's first byte).
#[derive(Clone, Debug)]
struct Scan {
    phase: Phase,
    /// Next byte not yet searched for the current delimiter.
    scan_from: usize,
    line_start: usize,
    /// What the search of the current line has seen.
    marks: LineMarks,
    command: Command,
    escaping: Escaping,
    headers_start: usize,
    head_end: usize,
    header_count: usize,
    content_length: Option<usize>,
    body_start: usize,
}

impl Scan {
    fn new() -> Scan {
        Scan {
            phase: Phase::Command,
            scan_from: 0,
            line_start: 0,
            marks: LineMarks::default(),
            command: Command::Send,
            escaping: Escaping::None,
            headers_start: 0,
            head_end: 0,
            header_count: 0,
            content_length: None,
            body_start: 0,
        }
    }

    /// The LF ending the line that starts at `line_start`, searching from `scan_from` only
    /// (what was searched is noted in `marks`). `Err(())` when more than `limit` (+ a CR) bytes
    /// sit in the unfinished line.
    #[inline]
    fn find_lf(&mut self, input: &[u8], limit: usize) -> Result<Option<usize>, ()> {
        match grammar::scan_line(input, self.scan_from, &mut self.marks) {
            Some(lf) => Ok(Some(lf)),
            None => {
                if input.len().saturating_sub(self.line_start) > limit.saturating_add(1) {
                    return Err(());
                }
                self.scan_from = self.scan_from.max(input.len());
                Ok(None)
            }
        }
    }

    /// Moves to the line starting at `start`.
    #[inline]
    fn next_line(&mut self, start: usize) {
        self.line_start = start;
        self.scan_from = start;
        self.marks = LineMarks::default();
    }

    /// Bytes still missing when the body length is known.
    fn bytes_needed(&self, have: usize) -> Option<usize> {
        match (self.phase, self.content_length) {
            (Phase::Body, Some(n)) => Some(
                self.body_start
                    .saturating_add(n)
                    .saturating_add(1)
                    .saturating_sub(have),
            ),
            _ => None,
        }
    }

    /// Advances over `input` as far as it goes. `Ok(None)`: need more bytes.
    /// `base` is added to error offsets.
    fn run<S: HeaderSink>(
        &mut self,
        input: &[u8],
        rules: Rules,
        limits: &Limits,
        base: usize,
        sink: &mut S,
    ) -> Result<Option<Layout>, ParseError> {
        loop {
            match self.phase {
                Phase::Command => {
                    let too_long = ParseError::CommandTooLong {
                        offset: base,
                        limit: limits.max_command_len,
                    };
                    let lf = match self.find_lf(input, limits.max_command_len) {
                        Ok(Some(lf)) => lf,
                        Ok(None) => return Ok(None),
                        Err(()) => return Err(too_long),
                    };
                    let line = trim_cr(&input[..lf], rules.strip_cr);
                    if line.len() > limits.max_command_len {
                        return Err(too_long);
                    }
                    let command = Command::from_bytes(line)
                        .ok_or(ParseError::UnknownCommand { offset: base })?;
                    self.command = command;
                    self.escaping = rules.escaping.for_command(command);
                    self.headers_start = lf + 1;
                    self.next_line(lf + 1);
                    self.phase = Phase::Headers;
                }
                Phase::Headers => {
                    let line_start = self.line_start;
                    let too_long = ParseError::HeaderLineTooLong {
                        offset: base + line_start,
                        limit: limits.max_header_line,
                    };
                    let lf = match self.find_lf(input, limits.max_header_line) {
                        Ok(Some(lf)) => lf,
                        Ok(None) => return Ok(None),
                        Err(()) => return Err(too_long),
                    };
                    let line = trim_cr(&input[line_start..lf], rules.strip_cr);
                    let marks = self.marks;
                    self.next_line(lf + 1);
                    if line.is_empty() {
                        self.end_headers(line_start, lf + 1, rules, limits, base)?;
                        continue;
                    }
                    if line.len() > limits.max_header_line {
                        return Err(too_long);
                    }
                    if self.header_count >= limits.max_headers {
                        return Err(ParseError::TooManyHeaders {
                            offset: base + line_start,
                            limit: limits.max_headers,
                        });
                    }
                    let colon = marks.colon.ok_or(ParseError::MissingColon {
                        offset: base + line_start,
                    })?;
                    if colon == line_start {
                        return Err(ParseError::EmptyHeaderName {
                            offset: base + line_start,
                        });
                    }
                    let value_start = colon + 1;
                    let value_end = line_start + line.len();
                    let name = &input[line_start..colon];
                    let value = &input[value_start..value_end];
                    let escaped = marks.backslash && self.escaping != Escaping::None;
                    if escaped {
                        escape::validate(name, self.escaping).map_err(|i| {
                            ParseError::InvalidEscape {
                                offset: base + line_start + i,
                            }
                        })?;
                        escape::validate(value, self.escaping).map_err(|i| {
                            ParseError::InvalidEscape {
                                offset: base + value_start + i,
                            }
                        })?;
                    }
                    if self.content_length.is_none() && name == b"content-length" {
                        let n = grammar::content_length(value)
                            .and_then(|n| usize::try_from(n).ok())
                            .ok_or(ParseError::InvalidContentLength {
                                offset: base + value_start,
                            })?;
                        self.content_length = Some(n);
                    }
                    sink.push(RawHeader {
                        name_start: line_start,
                        name_end: colon,
                        value_end,
                        escaped,
                    });
                    self.header_count += 1;
                }
                Phase::Body => return self.body(input, rules, limits, base),
            }
        }
    }

    /// The blank line at `head_end` ends the headers; the body starts at `body_start`.
    fn end_headers(
        &mut self,
        head_end: usize,
        body_start: usize,
        rules: Rules,
        limits: &Limits,
        base: usize,
    ) -> Result<(), ParseError> {
        self.head_end = head_end;
        self.body_start = body_start;
        self.scan_from = body_start;
        self.phase = Phase::Body;
        if let Some(n) = self.content_length {
            self.check_body_len(n, rules, limits, base + body_start)?;
        }
        Ok(())
    }

    /// The two rules a body's length must meet (only SEND, MESSAGE and ERROR carry one in 1.1+;
    /// at most `max_body` bytes), checked in the same order wherever the length comes from.
    fn check_body_len(
        &self,
        len: usize,
        rules: Rules,
        limits: &Limits,
        offset: usize,
    ) -> Result<(), ParseError> {
        if len > 0 && rules.strict_body && !self.command.allows_body() {
            return Err(ParseError::BodyNotAllowed {
                offset,
                command: self.command,
            });
        }
        if len > limits.max_body {
            return Err(ParseError::BodyTooLarge {
                offset,
                limit: limits.max_body,
            });
        }
        Ok(())
    }

    fn body(
        &mut self,
        input: &[u8],
        rules: Rules,
        limits: &Limits,
        base: usize,
    ) -> Result<Option<Layout>, ParseError> {
        let body_start = self.body_start;
        let body_end = match self.content_length {
            Some(n) => {
                let end = body_start.saturating_add(n);
                match input.get(end) {
                    None => return Ok(None),
                    Some(0) => end,
                    Some(_) => return Err(ParseError::MissingNul { offset: base + end }),
                }
            }
            None => {
                let from = self
                    .scan_from
                    .clamp(body_start, input.len().max(body_start));
                let found = match input.get(from..) {
                    // Most frames without content-length have no body: skip the search.
                    Some([0, ..]) => Some(from),
                    Some(rest) => grammar::until_nul(rest).ok().map(|(_, b)| from + b.len()),
                    None => None,
                };
                // Same checks, same order, whether the NUL is here yet or not: the outcome does
                // not depend on how the input was chunked.
                let len = found.unwrap_or(input.len()).saturating_sub(body_start);
                self.check_body_len(len, rules, limits, base + body_start)?;
                match found {
                    Some(end) => end,
                    None => {
                        self.scan_from = input.len();
                        return Ok(None);
                    }
                }
            }
        };
        Ok(Some(Layout {
            command: self.command,
            escaping: self.escaping,
            strip_cr: rules.strip_cr,
            headers_start: self.headers_start,
            head_end: self.head_end,
            header_count: self.header_count,
            body_start,
            body_end,
            frame_end: body_end + 1,
        }))
    }
}

#[inline]
fn trim_cr(line: &[u8], strip_cr: bool) -> &[u8] {
    match line {
        [rest @ .., b'\r'] if strip_cr => rest,
        _ => line,
    }
}

/// What sits at the front of a buffer between frames: `len` bytes of stray NULs and EOLs,
/// `heart_beats` of them EOLs.
struct Lead {
    len: usize,
    heart_beats: usize,
}

/// Skips stray NULs and counts EOLs before a command. Stops at the first EOL when `one_beat`.
/// Returns the bytes to skip, the heart-beats among them, and whether a command starts after them
/// (`false`: the buffer ends, perhaps in a lone CR, before any command byte).
fn skip_lead(input: &[u8], one_beat: bool) -> (Lead, bool) {
    let mut i = 0;
    let mut beats = 0;
    loop {
        match input.get(i) {
            Some(0) => i += 1,
            Some(b'\n') => {
                i += 1;
                beats += 1;
            }
            Some(b'\r') => match input.get(i + 1) {
                Some(b'\n') => {
                    i += 2;
                    beats += 1;
                }
                None => {
                    return (
                        Lead {
                            len: i,
                            heart_beats: beats,
                        },
                        false,
                    );
                }
                Some(_) => {
                    return (
                        Lead {
                            len: i,
                            heart_beats: beats,
                        },
                        true,
                    );
                }
            },
            Some(_) => {
                return (
                    Lead {
                        len: i,
                        heart_beats: beats,
                    },
                    true,
                );
            }
            None => {
                return (
                    Lead {
                        len: i,
                        heart_beats: beats,
                    },
                    false,
                );
            }
        }
        if one_beat && beats == 1 {
            return (
                Lead {
                    len: i,
                    heart_beats: beats,
                },
                false,
            );
        }
    }
}

/// The most [`Parser::parse`] reserves ahead for a `content-length` body still arriving.
const RESERVE_AHEAD: usize = 64 * 1024;

/// A streaming STOMP parser that hands out owned, `Bytes`-backed [`Frame`]s.
///
/// Feed it a [`BytesMut`] that you append to (from a socket, WebSocket messages, ...);
/// each [`parse`](Parser::parse) returns at most one item and removes exactly its bytes from the
/// front of the buffer. Header names, header values and the body of a returned frame are slices
/// of the buffer's bytes (no copy); only a value holding an escape is decoded into a new string.
///
/// Before CONNECT is parsed a server does not know the version: build the parser with
/// [`Parser::before_connect`] and call [`set_version`](Parser::set_version) once negotiated.
/// In that mode a line may end in CR LF (so STOMP 1.2 clients that write CR LF are understood),
/// CONNECT/STOMP/CONNECTED headers are taken verbatim (they are never escaped in any version),
/// and any other frame follows STOMP 1.2's rules.
///
/// Errors are final: once `parse` returned an error it returns the same error forever
/// (the connection must be closed after an ERROR frame anyway).
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_stomp::{Command, Limits, Parsed, Parser, Version};
///
/// let mut parser = Parser::before_connect(Limits::default());
/// let mut buf = BytesMut::from(&b"CONNECT\r\naccept-version:1.2\r\nhost:x\r\n\r\n\0\nSEN"[..]);
/// let Some(Parsed::Frame(connect)) = parser.parse(&mut buf)? else { panic!() };
/// assert_eq!(connect.command, Command::Connect);
/// parser.set_version(Version::V1_2);
/// assert_eq!(parser.parse(&mut buf)?, Some(Parsed::HeartBeat));
/// assert_eq!(parser.parse(&mut buf)?, None); // "SEN": wait for more
/// assert_eq!(&buf[..], b"SEN");
/// # Ok::<(), switchboard_stomp::ParseError>(())
/// ```
#[derive(Debug)]
pub struct Parser {
    version: Option<Version>,
    rules: Rules,
    limits: Limits,
    scan: Scan,
    in_frame: bool,
    raw: Vec<RawHeader>,
    /// Stream offset of the buffer's first byte.
    consumed: usize,
    failed: Option<ParseError>,
}

impl Default for Parser {
    /// [`Parser::before_connect`] with [`Limits::default`].
    fn default() -> Parser {
        Parser::before_connect(Limits::default())
    }
}

impl Parser {
    /// A parser for a connection whose version is known.
    pub fn new(version: Version, limits: Limits) -> Parser {
        Parser::with_version(Some(version), limits)
    }

    /// A parser for the start of a connection, before CONNECT fixed the version
    /// (see the type's documentation for the rules in that mode).
    pub fn before_connect(limits: Limits) -> Parser {
        Parser::with_version(None, limits)
    }

    fn with_version(version: Option<Version>, limits: Limits) -> Parser {
        Parser {
            version,
            rules: Rules::of(version),
            limits,
            scan: Scan::new(),
            in_frame: false,
            raw: Vec::new(),
            consumed: 0,
            failed: None,
        }
    }

    /// Switches to the rules of `version` (after CONNECT/CONNECTED negotiated it).
    /// Takes effect from the next frame; call it between frames.
    pub fn set_version(&mut self, version: Version) {
        self.version = Some(version);
        self.rules = Rules::of(Some(version));
    }

    /// The version whose rules apply (`None` before [`set_version`](Parser::set_version) on a
    /// parser built with [`before_connect`](Parser::before_connect)).
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Replaces the limits (takes effect from the next frame).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Parses the next item at the front of `buf`.
    ///
    /// - `Ok(Some(item))`: the item's bytes have been split off the front of `buf`.
    /// - `Ok(None)`: `buf` holds no complete item yet (stray NULs may have been dropped, nothing
    ///   else); append more bytes and call again. Bytes already checked are not scanned again,
    ///   so only append to `buf` between calls.
    /// - `Err(e)`: the stream breaks a rule; `e` says which and where. Send ERROR and close.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Parsed>, ParseError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.parse_inner(buf);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn parse_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Parsed>, ParseError> {
        if !self.in_frame {
            let (Lead { len, heart_beats }, command_follows) = skip_lead(buf, true);
            buf.advance(len);
            self.consumed += len;
            if heart_beats > 0 {
                return Ok(Some(Parsed::HeartBeat));
            }
            if !command_follows {
                return Ok(None);
            }
            self.in_frame = true;
            self.scan = Scan::new();
            self.raw.clear();
        } else if self.scan.scan_from > buf.len() {
            // The caller shrank the buffer: start the frame over rather than trust old offsets.
            self.scan = Scan::new();
            self.raw.clear();
        }
        let layout =
            match self
                .scan
                .run(buf, self.rules, &self.limits, self.consumed, &mut self.raw)?
            {
                Some(layout) => layout,
                None => {
                    if let Some(missing) = self.scan.bytes_needed(buf.len()) {
                        // Room for the announced body, but never much more than was
                        // received: a peer must not make us allocate with a few header bytes.
                        buf.reserve(missing.min(RESERVE_AHEAD));
                    }
                    return Ok(None);
                }
            };
        self.in_frame = false;
        let base = self.consumed;
        self.consumed += layout.frame_end;
        let bytes = buf.split_to(layout.frame_end).freeze();
        build_frame(bytes, &layout, &self.raw, base).map(|f| Some(Parsed::Frame(f)))
    }
}

/// Turns a complete frame's bytes into a [`Frame`] whose strings and body share them.
fn build_frame(
    bytes: Bytes,
    layout: &Layout,
    raw: &[RawHeader],
    base: usize,
) -> Result<Frame, ParseError> {
    let head = ByteString::try_from(bytes.slice(..layout.head_end)).map_err(|e| {
        ParseError::InvalidUtf8 {
            offset: base + e.valid_up_to(),
        }
    })?;
    let mut headers = Headers::with_capacity(raw.len());
    for h in raw {
        let name = field(
            &head,
            h.name_start,
            h.name_end,
            h.escaped,
            layout.escaping,
            base,
        )?;
        let value = field(
            &head,
            h.name_end + 1,
            h.value_end,
            h.escaped,
            layout.escaping,
            base,
        )?;
        headers.push(name, value);
    }
    Ok(Frame {
        command: layout.command,
        headers,
        body: bytes.slice(layout.body_start..layout.body_end),
    })
}

/// One header name or value: a slice of `head`, or a decoded copy when it holds an escape.
#[inline]
fn field(
    head: &ByteString,
    start: usize,
    end: usize,
    escaped: bool,
    escaping: Escaping,
    base: usize,
) -> Result<ByteString, ParseError> {
    let bad = ParseError::InvalidUtf8 {
        offset: base + start,
    };
    let s: &str = head.get(start..end).ok_or(bad.clone())?;
    if escaped && s.contains('\\') {
        // Validated while scanning; a failure here would be a bug, reported rather than panicking.
        let decoded = escape::unescape(s, escaping).ok_or(ParseError::InvalidEscape {
            offset: base + start,
        })?;
        Ok(ByteString::from(decoded))
    } else {
        Ok(head.slice_ref(s))
    }
}

/// Parses one frame from the front of `input` without allocating, borrowing from `input`.
///
/// Leading stray NULs and EOLs (heart-beats) are skipped. Returns the frame and how many bytes of
/// `input` it used (skipped bytes included), or `Ok(None)` when `input` holds no complete frame.
/// `version` is `None` before CONNECT is parsed (see [`Parser`] for the rules in that mode).
/// Error offsets count from the start of `input`.
///
/// ```
/// use switchboard_stomp::{parse_frame, Command, Limits, Version};
///
/// let input = b"\nSEND\ndestination:/queue/a\nx:a\\cb\n\nhello\0rest";
/// let (frame, used) = parse_frame(input, Some(Version::V1_2), &Limits::default())?.unwrap();
/// assert_eq!(frame.command(), Command::Send);
/// assert_eq!(frame.get("x").as_deref(), Some("a:b")); // decoded escape
/// assert_eq!(frame.body(), b"hello");
/// assert_eq!(&input[used..], b"rest");
/// # Ok::<(), switchboard_stomp::ParseError>(())
/// ```
pub fn parse_frame<'a>(
    input: &'a [u8],
    version: Option<Version>,
    limits: &Limits,
) -> Result<Option<(FrameRef<'a>, usize)>, ParseError> {
    let (Lead { len: start, .. }, command_follows) = skip_lead(input, false);
    if !command_follows {
        return Ok(None);
    }
    let frame = &input[start..];
    let mut scan = Scan::new();
    let Some(layout) = scan.run(frame, Rules::of(version), limits, start, &mut Discard)? else {
        return Ok(None);
    };
    let head =
        std::str::from_utf8(&frame[..layout.head_end]).map_err(|e| ParseError::InvalidUtf8 {
            offset: start + e.valid_up_to(),
        })?;
    let headers = head
        .get(layout.headers_start.min(layout.head_end)..)
        .unwrap_or("");
    Ok(Some((
        FrameRef {
            command: layout.command,
            headers,
            header_count: layout.header_count,
            escaping: layout.escaping,
            strip_cr: layout.strip_cr,
            body: &frame[layout.body_start..layout.body_end],
        },
        start + layout.frame_end,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scanner resumes where it stopped: after an incomplete call its cursor sits at the end
    /// of the input, so the next call searches only the new bytes.
    #[test]
    fn the_cursor_never_goes_back() {
        let rules = Rules::of(Some(Version::V1_2));
        let limits = Limits::default();
        let frame =
            b"SEND\ndestination:/q\nlong:0123456789012345678901234567890123456789\n\nbody...\0";
        let mut scan = Scan::new();
        let mut sink = Vec::new();
        let mut last = 0;
        for end in 1..frame.len() {
            let got = scan
                .run(&frame[..end], rules, &limits, 0, &mut sink)
                .unwrap();
            assert!(got.is_none(), "complete at {end}");
            assert_eq!(scan.scan_from, end, "cursor after {end} bytes");
            assert!(scan.scan_from >= last);
            last = scan.scan_from;
        }
        let layout = scan
            .run(frame, rules, &limits, 0, &mut sink)
            .unwrap()
            .unwrap();
        assert_eq!(layout.frame_end, frame.len());
        assert_eq!(sink.len(), 2);
    }

    /// A content-length body is not scanned at all while it arrives.
    #[test]
    fn content_length_bodies_are_not_scanned() {
        let rules = Rules::of(Some(Version::V1_2));
        let limits = Limits::default();
        let frame = b"SEND\ncontent-length:10\n\n0123456789\0";
        let mut scan = Scan::new();
        let body_start = frame.len() - 11;
        for end in body_start..frame.len() {
            assert!(
                scan.run(&frame[..end], rules, &limits, 0, &mut Discard)
                    .unwrap()
                    .is_none()
            );
            assert_eq!(scan.scan_from, body_start);
            assert_eq!(scan.bytes_needed(end), Some(frame.len() - end));
        }
    }
}

/// A frame borrowed from the input of [`parse_frame`]: nothing allocated. Header names and
/// values are decoded on access (a `Cow::Owned` only for those holding an escape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef<'a> {
    command: Command,
    /// The header lines, each ending in its EOL (already checked: UTF-8, colons, escapes).
    headers: &'a str,
    header_count: usize,
    escaping: Escaping,
    strip_cr: bool,
    body: &'a [u8],
}

impl<'a> FrameRef<'a> {
    /// The command.
    pub fn command(&self) -> Command {
        self.command
    }

    /// The body (empty when the frame has none).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The number of headers (repeats included).
    pub fn header_count(&self) -> usize {
        self.header_count
    }

    /// The headers in wire order, decoded.
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter {
            rest: self.headers,
            escaping: self.escaping,
            strip_cr: self.strip_cr,
        }
    }

    /// The value of the first header called `name` (the spec's "first one wins").
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.headers().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// An owned copy (copies the header strings and the body).
    pub fn to_frame(&self) -> Frame {
        let mut headers = Headers::with_capacity(self.header_count);
        for (name, value) in self.headers() {
            headers.push(name.into_owned(), value.into_owned());
        }
        Frame {
            command: self.command,
            headers,
            body: Bytes::copy_from_slice(self.body),
        }
    }
}

/// The headers of a [`FrameRef`], decoded, in wire order.
#[derive(Clone, Debug)]
pub struct HeaderIter<'a> {
    rest: &'a str,
    escaping: Escaping,
    strip_cr: bool,
}

impl<'a> HeaderIter<'a> {
    fn decode(&self, s: &'a str, escaped: bool) -> Cow<'a, str> {
        if escaped && s.contains('\\') {
            match escape::unescape(s, self.escaping) {
                Some(owned) => Cow::Owned(owned),
                None => Cow::Borrowed(s),
            }
        } else {
            Cow::Borrowed(s)
        }
    }
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.rest.as_bytes();
        let mut marks = LineMarks::default();
        let lf = grammar::scan_line(bytes, 0, &mut marks)?;
        let line_end = match lf.checked_sub(1).map(|i| bytes[i]) {
            Some(b'\r') if self.strip_cr => lf - 1,
            _ => lf,
        };
        let colon = marks.colon?;
        let name = self.rest.get(..colon)?;
        let value = self.rest.get(colon + 1..line_end)?;
        self.rest = self.rest.get(lf + 1..)?;
        let escaped = marks.backslash && self.escaping != Escaping::None;
        Some((self.decode(name, escaped), self.decode(value, escaped)))
    }
}
