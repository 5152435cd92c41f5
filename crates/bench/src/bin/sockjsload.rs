//! SockJS echo load generator and idle-session memory probe, for any SockJS server (our
//! `switchboard-sockjs`, sockjs-node, ...), built on tokio, hyper's HTTP/1.1 client connection and
//! switchboard-ws's client role.
//!
//! ```text
//! sockjsload [--transport websocket|xhr-streaming] [--sessions N] [--size BYTES] [--secs S]
//!            [--warmup W] [--window N] [--threads T] [--connect-timeout S]
//!            http://HOST:PORT/PREFIX
//! sockjsload idle --sessions N --pid PID [--transport websocket|xhr-streaming] [--stomp]
//!            http://HOST:PORT/PREFIX
//! ```
//!
//! **Echo** (the first form): opens `N` SockJS sessions on the endpoint at `PREFIX` (each waits
//! for the `o` frame), then for `W + S` seconds each session keeps `N` messages in flight
//! (`--window`, default 1): it sends `BYTES`-byte ASCII messages and, for every one the server
//! echoes back (in an `a[...]` frame, which may carry several), sends the next. Only round trips
//! that start after the warm-up and end within the measured `S` seconds count; latency is from
//! the moment a message is handed to the transport to the moment its echo is parsed. With one
//! message in flight the figure is mostly round-trip latency; a window shows what a server does
//! per message when frames carry several (bursts, fan-out), as real SockJS traffic does.
//! Transports, as sockjs-client uses them:
//!
//! - `websocket`: one WebSocket to `PREFIX/<server>/<session>/websocket`; a message goes out as
//!   the text message `["msg"]`, the echo comes back as `a["msg"]`.
//! - `xhr-streaming`: one long `POST PREFIX/<server>/<session>/xhr_streaming` per session whose
//!   chunked body carries the 2 KiB `h` prelude and then one frame per line; every message is a
//!   `POST .../xhr_send` with body `["msg"]` (answered 204) on a second keep-alive connection.
//!   When the server ends a streaming response (its `response_limit`), the next one is opened on
//!   the same session, as sockjs-client does; that cost counts. With a window, messages queued
//!   while an `xhr_send` is in flight go out together in the next one (`["m1","m2",...]`), as
//!   sockjs-client's send buffer does; over `websocket` each message is its own WebSocket
//!   message (as sockjs-client sends them), the ones due together written with one flush.
//!
//! Every echo is checked: it must be exactly the message sent (each carries a sequence number),
//! so a lost, duplicated or mangled echo is an error, not a round trip.
//!
//! **Idle memory** (`idle`): opens `N` sessions that then sit idle and reports how much the
//! resident memory of process `PID` (the server, `/proc/PID/status`) grew per session. With
//! `--stomp`, each session also CONNECTs (STOMP 1.2, heart-beats off) and SUBSCRIBEs to a topic
//! of its own (confirmed by a RECEIPT), as `stompload idle` does over a plain WebSocket; the
//! endpoint is then a STOMP-over-SockJS one such as `switchboard`'s `/chat`. An idle
//! xhr-streaming session keeps its streaming response open; its `xhr_send` connection is closed
//! once set up. The first 50 sessions are opened before the baseline is taken, so one-off
//! allocations do not count.
//!
//! Each form prints a summary and one machine-readable `RESULT ...` line for `cargo xtask load`
//! (echo: `msgs_per_sec`, `p99_us`, `errors`, `all_msgs` (warm-up included), like `wsload`).
//! Everything is bounded: each connect by `--connect-timeout`, each wait for a frame during the
//! echo phase by one watchdog per session that fires [`RECV_TIMEOUT`] after the measured window
//! ends (armed once, so no timer is registered per message), other waits by [`RECV_TIMEOUT`],
//! the whole run by its phases plus [`RUN_SLACK`].

use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::time::Duration;
use switchboard_ws::{CloseCode, Message, StreamConfig, WebSocketStream, connect_url};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// Longest wait for one echo (or any expected frame) before the session counts as failed.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the WebSocket close handshake at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Extra time the whole run may take beyond connect + warm-up + measurement.
const RUN_SLACK: Duration = Duration::from_secs(30);
/// Highest latency the histogram tracks (higher values are clamped): 60 s, in nanoseconds.
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// Sessions opened before the idle baseline is read.
const IDLE_WARM: usize = 50;
/// Sessions the idle test opens at once (bounded, so no listen backlog overflows).
const IDLE_BATCH: usize = 50;
/// Longest line (frame) accepted on a streaming response: a frame longer than this is an error,
/// not a reason to buffer without bound.
const MAX_LINE: usize = 16 << 20;
/// Digits of the sequence number at the start of every message.
const SEQ_DIGITS: usize = 10;

const USAGE: &str = "usage: sockjsload [--transport websocket|xhr-streaming] [--sessions N] \
[--size BYTES] [--secs S] [--warmup W] [--window N] [--threads T] [--connect-timeout S] \
http://HOST:PORT/PREFIX
       sockjsload idle --sessions N --pid PID [--transport websocket|xhr-streaming] [--stomp] \
http://HOST:PORT/PREFIX";

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T = ()> = std::result::Result<T, Error>;

/// The client transports this tool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    WebSocket,
    XhrStreaming,
}

impl Transport {
    fn parse(s: &str) -> Result<Transport> {
        match s {
            "websocket" => Ok(Transport::WebSocket),
            "xhr-streaming" | "xhr_streaming" => Ok(Transport::XhrStreaming),
            _ => Err(format!("unknown transport `{s}` (websocket or xhr-streaming)").into()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::XhrStreaming => "xhr-streaming",
        }
    }
}

/// `http://HOST:PORT/PREFIX`, split.
#[derive(Debug, Clone, PartialEq)]
struct Endpoint {
    /// `HOST:PORT`.
    authority: String,
    /// `/PREFIX` without a trailing slash (empty for a root endpoint).
    prefix: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("`{url}`: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || !authority.contains(':') {
            return Err(format!("`{url}`: the URL needs HOST:PORT").into());
        }
        if path.contains(['?', '#']) {
            return Err(format!("`{url}`: no query or fragment expected").into());
        }
        Ok(Endpoint {
            authority: authority.to_owned(),
            prefix: path.trim_end_matches('/').to_owned(),
        })
    }

    /// `PREFIX/<server>/<session>/<transport>`.
    fn session_path(&self, server: &str, session: &str, transport: &str) -> String {
        format!("{}/{server}/{session}/{transport}", self.prefix)
    }
}

#[derive(Debug, Clone)]
struct Args {
    endpoint: Endpoint,
    transport: Transport,
    sessions: usize,
    size: usize,
    secs: f64,
    warmup: f64,
    /// Messages in flight per session.
    window: usize,
    threads: usize,
    connect_timeout: Duration,
}

#[derive(Debug, Clone)]
struct IdleArgs {
    endpoint: Endpoint,
    transport: Transport,
    sessions: usize,
    pid: u32,
    stomp: bool,
}

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a String> {
    it.next()
        .ok_or_else(|| format!("{flag} needs a value\n{USAGE}").into())
}

fn number<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T> {
    s.parse()
        .map_err(|_| format!("{flag}: not a number: `{s}`\n{USAGE}").into())
}

fn parse_args(argv: &[String]) -> Result<Args> {
    let mut url = None;
    let mut a = Args {
        endpoint: Endpoint {
            authority: String::new(),
            prefix: String::new(),
        },
        transport: Transport::WebSocket,
        sessions: 1,
        size: 16,
        secs: 3.0,
        warmup: 1.0,
        window: 1,
        threads: 1,
        connect_timeout: Duration::from_secs(10),
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--transport" => a.transport = Transport::parse(value(&mut it, arg)?)?,
            "--sessions" => a.sessions = number(value(&mut it, arg)?, arg)?,
            "--size" => a.size = number(value(&mut it, arg)?, arg)?,
            "--secs" => a.secs = number(value(&mut it, arg)?, arg)?,
            "--warmup" => a.warmup = number(value(&mut it, arg)?, arg)?,
            "--window" => a.window = number(value(&mut it, arg)?, arg)?,
            "--threads" => a.threads = number(value(&mut it, arg)?, arg)?,
            "--connect-timeout" => {
                let s: f64 = number(value(&mut it, arg)?, arg)?;
                if !(s > 0.0 && s <= 600.0) {
                    return Err("--connect-timeout must be in (0, 600]".into());
                }
                a.connect_timeout = Duration::from_secs_f64(s);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown flag {s}\n{USAGE}").into()),
            s if url.is_none() => url = Some(s.to_owned()),
            s => return Err(format!("unexpected argument `{s}`\n{USAGE}").into()),
        }
    }
    a.endpoint = Endpoint::parse(&url.ok_or_else(|| format!("missing URL\n{USAGE}"))?)?;
    if a.sessions == 0 || a.threads == 0 || a.sessions > 10_000 || a.threads > 64 {
        return Err("--sessions must be in 1..=10000 and --threads in 1..=64".into());
    }
    if !(a.secs > 0.0 && a.secs <= 3600.0 && a.warmup >= 0.0 && a.warmup <= 600.0) {
        return Err("--secs must be in (0, 3600] and --warmup in [0, 600]".into());
    }
    if a.size == 0 || a.size > 16 << 20 {
        return Err("--size must be in 1..=16777216".into());
    }
    if !(1..=1024).contains(&a.window) {
        return Err("--window must be in 1..=1024".into());
    }
    Ok(a)
}

fn parse_idle(argv: &[String]) -> Result<IdleArgs> {
    let mut url = None;
    let mut sessions = None;
    let mut pid = None;
    let mut transport = Transport::WebSocket;
    let mut stomp = false;
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--sessions" => sessions = Some(number(value(&mut it, arg)?, arg)?),
            "--pid" => pid = Some(number(value(&mut it, arg)?, arg)?),
            "--transport" => transport = Transport::parse(value(&mut it, arg)?)?,
            "--stomp" => stomp = true,
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown flag {s}\n{USAGE}").into()),
            s if url.is_none() => url = Some(s.to_owned()),
            s => return Err(format!("unexpected argument `{s}`\n{USAGE}").into()),
        }
    }
    let (Some(url), Some(sessions), Some(pid)) = (url, sessions, pid) else {
        return Err(format!("idle needs --sessions N, --pid PID and a URL\n{USAGE}").into());
    };
    if !(1..=50_000).contains(&sessions) {
        return Err("--sessions must be in 1..=50000".into());
    }
    Ok(IdleArgs {
        endpoint: Endpoint::parse(&url)?,
        transport,
        sessions,
        pid,
        stomp,
    })
}

// ---------------------------------------------------------------------------------------------
// SockJS framing: JSON strings and arrays of strings, and the frames a server sends.

/// Appends `s` as a JSON string. Besides what JSON requires (`"`, `\` and C0 controls), the
/// ranges the SockJS protocol asks to escape go out as `\uXXXX`, as sockjs-client does.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{200c}'..='\u{200f}'
            | '\u{2028}'..='\u{202f}'
            | '\u{2060}'..='\u{206f}'
            | '\u{fff0}'..='\u{ffff}' => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `["m1","m2",...]`: what a client sends (a WebSocket text message, an `xhr_send` body).
fn encode_messages<'a>(messages: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, m) in messages.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, m);
    }
    out.push(']');
    out
}

/// A JSON text being read: a cursor over its bytes.
struct JsonReader<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> JsonReader<'a> {
    fn new(s: &'a str) -> Self {
        JsonReader { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("JSON: expected `{}` at byte {}", b as char, self.pos).into())
        }
    }

    fn hex4(&mut self) -> Result<u16> {
        let digits = self
            .s
            .get(self.pos..self.pos + 4)
            .ok_or("JSON: truncated \\u escape")?;
        let v = u16::from_str_radix(digits, 16)
            .map_err(|_| format!("JSON: bad \\u escape `{digits}`"))?;
        self.pos += 4;
        Ok(v)
    }

    /// A JSON string at the cursor. A lone surrogate escape becomes U+FFFD.
    fn string(&mut self) -> Result<String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let rest = &self.s[self.pos..];
            let stop = rest
                .find(|c: char| c == '"' || c == '\\' || c < ' ')
                .ok_or("JSON: unterminated string")?;
            out.push_str(&rest[..stop]);
            self.pos += stop;
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let e = self.peek().ok_or("JSON: truncated escape")?;
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xd800..0xdc00).contains(&hi)
                                && self.s[self.pos..].starts_with("\\u")
                            {
                                let save = self.pos;
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if (0xdc00..0xe000).contains(&lo) {
                                    let c = 0x10000
                                        + ((u32::from(hi) - 0xd800) << 10)
                                        + (u32::from(lo) - 0xdc00);
                                    char::from_u32(c).unwrap_or('\u{fffd}')
                                } else {
                                    self.pos = save;
                                    '\u{fffd}'
                                }
                            } else {
                                char::from_u32(u32::from(hi)).unwrap_or('\u{fffd}')
                            };
                            out.push(c);
                        }
                        other => {
                            return Err(format!("JSON: bad escape `\\{}`", other as char).into());
                        }
                    }
                }
                _ => return Err("JSON: control character in a string".into()),
            }
        }
    }

    /// A JSON array of strings at the cursor, and nothing after it.
    fn string_array(mut self) -> Result<Vec<String>> {
        self.skip_ws();
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                items.push(self.string()?);
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(format!("JSON: expected `,` or `]` at {}", self.pos).into()),
                }
            }
        }
        self.skip_ws();
        if self.pos != self.s.len() {
            return Err("JSON: text after the array".into());
        }
        Ok(items)
    }
}

/// A frame from the server.
#[derive(Debug, PartialEq)]
enum Frame {
    Open,
    Heartbeat,
    Messages(Vec<String>),
    Close(String),
}

fn parse_frame(s: &str) -> Result<Frame> {
    match s.as_bytes().first() {
        Some(b'o') if s.len() == 1 => Ok(Frame::Open),
        // `h`, and the 2048-byte `hhh...h` prelude of a streaming response.
        Some(b'h') if s.bytes().all(|b| b == b'h') => Ok(Frame::Heartbeat),
        Some(b'a') => Ok(Frame::Messages(JsonReader::new(&s[1..]).string_array()?)),
        Some(b'c') => Ok(Frame::Close(s[1..].to_owned())),
        _ => Err(format!("not a SockJS frame: {:?}", shorten(s)).into()),
    }
}

fn shorten(s: &str) -> String {
    if s.len() <= 80 {
        return s.to_owned();
    }
    let mut end = 80;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

// ---------------------------------------------------------------------------------------------
// Sessions.

/// A session id (8 lowercase letters and digits, like sockjs-client's default) and a server id
/// (three digits), from a small xorshift generator seeded per session.
fn session_ids(seed: u64) -> (String, String) {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz012345";
    let session: String = (0..8)
        .map(|_| ALPHABET[(next() % 32) as usize] as char)
        .collect();
    (format!("{:03}", next() % 1000), session)
}

/// A seed that differs between runs and between the sessions of one run.
fn run_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id()) << 32
}

type Ws = WebSocketStream<TcpStream>;

/// One HTTP/1.1 keep-alive connection (hyper's client connection; its driver runs on a task of
/// its own, which ends when this is dropped).
async fn http_connection(authority: &str) -> Result<SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(authority).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn post(authority: &str, path: &str, body: Bytes) -> Result<hyper::Request<Full<Bytes>>> {
    Ok(hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "text/plain;charset=UTF-8")
        .body(Full::new(body))?)
}

/// The receiving side of an xhr-streaming session: one long POST whose body is split into lines
/// (frames); reopened when the server ends it.
struct XhrStream {
    endpoint: Endpoint,
    path: String,
    conn: Option<SendRequest<Full<Bytes>>>,
    body: Option<Incoming>,
    buf: BytesMut,
    /// Streaming responses opened, the first included.
    opened: u64,
}

impl XhrStream {
    async fn open(&mut self) -> Result {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => http_connection(&self.endpoint.authority).await?,
        };
        if conn.ready().await.is_err() {
            conn = http_connection(&self.endpoint.authority).await?;
        }
        let req = post(&self.endpoint.authority, &self.path, Bytes::new())?;
        let resp = conn.send_request(req).await?;
        if resp.status() != hyper::StatusCode::OK {
            return Err(format!("xhr_streaming answered {}", resp.status()).into());
        }
        self.body = Some(resp.into_body());
        self.conn = Some(conn);
        self.opened += 1;
        Ok(())
    }

    /// The next frame (a line of the body), opening a new streaming response when the current one
    /// ended. Unbounded: the caller bounds it.
    async fn next_line_unbounded(&mut self) -> Result<String> {
        loop {
            if let Some(i) = memchr_newline(&self.buf) {
                let line = self.buf.split_to(i + 1);
                let text = std::str::from_utf8(&line[..i])
                    .map_err(|_| "xhr_streaming: a frame is not UTF-8")?;
                return Ok(text.to_owned());
            }
            if self.buf.len() > MAX_LINE {
                return Err(format!("xhr_streaming: a frame longer than {MAX_LINE} bytes").into());
            }
            let Some(body) = self.body.as_mut() else {
                if !self.buf.is_empty() {
                    return Err("xhr_streaming: the response ended inside a frame".into());
                }
                self.open().await?;
                continue;
            };
            match body.frame().await {
                None => self.body = None,
                Some(Err(e)) => return Err(format!("xhr_streaming body: {e}").into()),
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// The first `\n` in `b`.
fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// `POST <send_path>` with `payload` on the session's `xhr_send` connection (opened, or
/// reopened when the server closed it); 204 (or 200) is success.
async fn xhr_send(
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    authority: &str,
    send_path: &str,
    payload: &str,
) -> Result {
    let reusable = match conn {
        Some(c) => c.ready().await.is_ok(),
        None => false,
    };
    if !reusable {
        *conn = Some(http_connection(authority).await?);
    }
    let Some(conn) = conn else {
        return Err("no xhr_send connection".into());
    };
    let req = post(
        authority,
        send_path,
        Bytes::copy_from_slice(payload.as_bytes()),
    )?;
    let resp = conn.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if status == hyper::StatusCode::NO_CONTENT || status == hyper::StatusCode::OK {
        Ok(())
    } else {
        Err(format!(
            "xhr_send answered {status}: {}",
            shorten(&String::from_utf8_lossy(&body))
        )
        .into())
    }
}

/// One open SockJS session.
enum Session {
    Ws(Box<Ws>),
    Xhr {
        stream: Box<XhrStream>,
        /// The `xhr_send` connection; `None` once an idle session dropped it.
        send: Option<SendRequest<Full<Bytes>>>,
        send_path: String,
    },
}

impl Session {
    /// Opens a session and waits for its `o` frame.
    async fn open(endpoint: &Endpoint, transport: Transport, seed: u64) -> Result<Session> {
        let (server, id) = session_ids(seed);
        let mut s = match transport {
            Transport::WebSocket => {
                let url = format!(
                    "ws://{}{}",
                    endpoint.authority,
                    endpoint.session_path(&server, &id, "websocket")
                );
                let config = StreamConfig::default().handshake_timeout(Some(RECV_TIMEOUT));
                let (ws, _) = connect_url(&url, config, None)
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                Session::Ws(Box::new(ws))
            }
            Transport::XhrStreaming => {
                let mut stream = XhrStream {
                    endpoint: endpoint.clone(),
                    path: endpoint.session_path(&server, &id, "xhr_streaming"),
                    conn: None,
                    body: None,
                    buf: BytesMut::new(),
                    opened: 0,
                };
                stream.open().await?;
                Session::Xhr {
                    stream: Box::new(stream),
                    send: Some(http_connection(&endpoint.authority).await?),
                    send_path: endpoint.session_path(&server, &id, "xhr_send"),
                }
            }
        };
        match s.next_frame(RECV_TIMEOUT).await? {
            Frame::Open => Ok(s),
            other => Err(format!("expected the `o` frame, got {other:?}").into()),
        }
    }

    /// The next frame other than a heartbeat, bounded by `wait`.
    async fn next_frame(&mut self, wait: Duration) -> Result<Frame> {
        timeout(wait, self.next_frame_unbounded())
            .await
            .map_err(|_| format!("no frame within {wait:?}"))?
    }

    /// [`next_frame`](Self::next_frame) without a bound: the caller bounds it.
    async fn next_frame_unbounded(&mut self) -> Result<Frame> {
        loop {
            let frame = match self {
                Session::Ws(ws) => loop {
                    match ws.recv().await {
                        None => return Err("the server closed the WebSocket".into()),
                        Some(Err(e)) => return Err(format!("WebSocket: {e}").into()),
                        Some(Ok(Message::Text(t))) => break parse_frame(t.as_str())?,
                        Some(Ok(Message::Close(c))) => {
                            return Err(format!("the server closed the WebSocket: {c:?}").into());
                        }
                        // Pings (sockjs-node's heartbeat on this transport) are answered by
                        // the stream itself.
                        Some(Ok(_)) => {}
                    }
                },
                Session::Xhr { stream, .. } => parse_frame(&stream.next_line_unbounded().await?)?,
            };
            match frame {
                Frame::Heartbeat => {}
                Frame::Close(why) => {
                    return Err(format!("the server closed the session: {why}").into());
                }
                f => return Ok(f),
            }
        }
    }

    /// Sends `payload` (a JSON array of strings, already encoded).
    async fn send(&mut self, authority: &str, payload: &str) -> Result {
        match self {
            Session::Ws(ws) => Ok(ws.send(Message::text(payload.to_owned())).await?),
            Session::Xhr {
                send, send_path, ..
            } => xhr_send(send, authority, send_path, payload).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Echo load.

/// What one session measured.
struct Outcome {
    hist: Histogram<u64>,
    msgs: u64,
    all: u64,
    errors: u64,
    first_error: Option<String>,
    reopened: u64,
}

impl Outcome {
    fn new() -> Self {
        Outcome {
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("static histogram bounds are valid"),
            msgs: 0,
            all: 0,
            errors: 0,
            first_error: None,
            reopened: 0,
        }
    }

    fn fail(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

/// The message with sequence number `seq`: its digits, then filler up to `size` bytes.
fn message(seq: u64, size: usize, filler: &str) -> String {
    let mut m = format!("{seq:0SEQ_DIGITS$}");
    m.truncate(size);
    m.push_str(&filler[..size - m.len()]);
    m
}

/// Whether `got` is [`message`]`(seq, size, filler)`, without building it.
fn is_message(got: &str, seq: u64, size: usize, filler: &str) -> bool {
    if got.len() != size {
        return false;
    }
    let mut digits = [b'0'; SEQ_DIGITS];
    let mut n = seq;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let head = size.min(SEQ_DIGITS);
    n == 0
        && got.as_bytes()[..head] == digits[..head]
        && got.as_bytes()[head..] == filler.as_bytes()[..size - head]
}

/// One echo session's load: what it sends, what is in flight, what it measured.
struct EchoState {
    size: usize,
    filler: String,
    window: usize,
    start: Instant,
    end: Instant,
    seq: u64,
    /// Sequence number and send time of every message in flight, oldest first (echoes come back
    /// in order).
    inflight: std::collections::VecDeque<(u64, Instant)>,
    out: Outcome,
}

impl EchoState {
    fn new(size: usize, window: usize, start: Instant, end: Instant) -> Self {
        EchoState {
            size,
            filler: "switchboard sockjs load "
                .chars()
                .cycle()
                .take(size)
                .collect(),
            window,
            start,
            end,
            seq: 0,
            inflight: std::collections::VecDeque::with_capacity(window),
            out: Outcome::new(),
        }
    }

    /// The next message to send, if the run is still on and the window has room.
    fn next_message(&mut self, now: Instant) -> Option<String> {
        if now >= self.end || self.inflight.len() >= self.window {
            return None;
        }
        self.seq += 1;
        self.inflight.push_back((self.seq, now));
        Some(message(self.seq, self.size, &self.filler))
    }

    /// Checks the echoes of one frame against what is in flight and records them.
    fn echoed(&mut self, msgs: &[String]) -> Result {
        let done = Instant::now();
        for m in msgs {
            let Some((seq, sent)) = self.inflight.pop_front() else {
                return Err(format!("an echo nobody sent: {:?}", shorten(m)).into());
            };
            if !is_message(m, seq, self.size, &self.filler) {
                return Err(format!(
                    "echo mismatch: expected message {seq} ({} bytes), got {:?}",
                    self.size,
                    shorten(m)
                )
                .into());
            }
            self.out.all += 1;
            if sent >= self.start && done <= self.end {
                self.out.msgs += 1;
                self.out
                    .hist
                    .saturating_record((done - sent).as_nanos() as u64);
            }
        }
        Ok(())
    }
}

/// Runs one session's echo load; stops sending at `end` and waits for what is in flight.
async fn echo_loop(
    s: Session,
    authority: String,
    size: usize,
    window: usize,
    start: Instant,
    end: Instant,
) -> Outcome {
    let mut st = EchoState::new(size, window, start, end);
    // One timer per session for the whole run, not one per wait.
    let watchdog = tokio::time::sleep_until(end + RECV_TIMEOUT);
    tokio::pin!(watchdog);
    let r = match s {
        Session::Ws(mut ws) => {
            let r = tokio::select! {
                biased;
                r = echo_ws(&mut ws, &mut st) => r,
                () = &mut watchdog => Err(format!("no echo within {RECV_TIMEOUT:?} of the end").into()),
            };
            let _ = timeout(CLOSE_TIMEOUT, ws.close(CloseCode::NORMAL, "")).await;
            r
        }
        Session::Xhr {
            mut stream,
            send,
            send_path,
        } => {
            let r = tokio::select! {
                biased;
                r = echo_xhr(&mut stream, send, authority, send_path, &mut st) => r,
                () = &mut watchdog => Err(format!("no echo within {RECV_TIMEOUT:?} of the end").into()),
            };
            st.out.reopened = stream.opened.saturating_sub(1);
            // Dropping the connections ends the session on the server (after its disconnect
            // delay).
            r
        }
    };
    if let Err(e) = r {
        st.out.fail(e);
    }
    st.out
}

/// The websocket transport: each message its own WebSocket message, the ones due together
/// written with one flush.
async fn echo_ws(ws: &mut Ws, st: &mut EchoState) -> Result {
    let mut payload = String::new();
    loop {
        let now = Instant::now();
        let mut fed = false;
        while let Some(m) = st.next_message(now) {
            payload.clear();
            payload.push('[');
            push_json_string(&mut payload, &m);
            payload.push(']');
            ws.feed(Message::text(payload.as_str())).await?;
            fed = true;
        }
        if fed {
            ws.flush().await?;
        }
        if st.inflight.is_empty() {
            return Ok(());
        }
        let frame = loop {
            match ws.recv().await {
                None => return Err("the server closed the WebSocket".into()),
                Some(Err(e)) => return Err(format!("WebSocket: {e}").into()),
                Some(Ok(Message::Text(t))) => match parse_frame(t.as_str())? {
                    Frame::Heartbeat => {}
                    f => break f,
                },
                Some(Ok(Message::Close(c))) => {
                    return Err(format!("the server closed the WebSocket: {c:?}").into());
                }
                // Pings (sockjs-node's heartbeat on this transport) are answered by the stream.
                Some(Ok(_)) => {}
            }
        };
        match frame {
            Frame::Messages(m) => st.echoed(&m)?,
            other => return Err(format!("expected an echo, got {other:?}").into()),
        }
    }
}

/// xhr-streaming + xhr_send: the stream is read here while a task of its own posts what is
/// queued, one `xhr_send` at a time (messages queued meanwhile go out together in the next, as
/// sockjs-client's send buffer does).
async fn echo_xhr(
    stream: &mut XhrStream,
    send: Option<SendRequest<Full<Bytes>>>,
    authority: String,
    send_path: String,
    st: &mut EchoState,
) -> Result {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut sender = tokio::spawn(async move {
        let mut send = send;
        let mut batch: Vec<String> = Vec::new();
        while let Some(m) = rx.recv().await {
            batch.push(m);
            while let Ok(m) = rx.try_recv() {
                batch.push(m);
            }
            let payload = encode_messages(batch.iter().map(String::as_str));
            batch.clear();
            timeout(
                RECV_TIMEOUT,
                xhr_send(&mut send, &authority, &send_path, &payload),
            )
            .await
            .map_err(|_| format!("no xhr_send answer within {RECV_TIMEOUT:?}"))??;
        }
        Ok::<(), Error>(())
    });
    let result = async {
        loop {
            let now = Instant::now();
            while let Some(m) = st.next_message(now) {
                tx.send(m).map_err(|_| "the xhr_send task ended")?;
            }
            if st.inflight.is_empty() {
                return Ok(());
            }
            let line = tokio::select! {
                biased;
                l = stream.next_line_unbounded() => l?,
                r = &mut sender => {
                    return Err(match r {
                        Ok(Err(e)) => e,
                        Ok(Ok(())) => "the xhr_send task ended".into(),
                        Err(e) => format!("xhr_send task: {e}").into(),
                    });
                }
            };
            match parse_frame(&line)? {
                Frame::Heartbeat => {}
                Frame::Messages(m) => st.echoed(&m)?,
                Frame::Close(why) => {
                    return Err(format!("the server closed the session: {why}").into());
                }
                other => return Err(format!("expected an echo, got {other:?}").into()),
            }
        }
    }
    .await;
    drop(tx);
    if result.is_ok() {
        match sender.await {
            Ok(r) => r?,
            Err(e) => return Err(format!("xhr_send task: {e}").into()),
        }
    } else {
        sender.abort();
    }
    result
}

async fn run(a: Args) -> Result {
    let seed = run_seed();
    let cpu_before = own_cpu_seconds().unwrap_or(0.0);
    let opens = (0..a.sessions).map(|i| {
        let endpoint = a.endpoint.clone();
        async move {
            timeout(
                a.connect_timeout,
                Session::open(&endpoint, a.transport, seed.wrapping_add(i as u64)),
            )
            .await
            .map_err(|_| format!("opening a session took over {:?}", a.connect_timeout))?
        }
    });
    let mut sessions = Vec::with_capacity(a.sessions);
    for r in futures_util::future::join_all(opens).await {
        sessions.push(r.map_err(|e| format!("open session: {e}"))?);
    }
    let start = Instant::now() + Duration::from_secs_f64(a.warmup);
    let end = start + Duration::from_secs_f64(a.secs);
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|s| {
            tokio::spawn(echo_loop(
                s,
                a.endpoint.authority.clone(),
                a.size,
                a.window,
                start,
                end,
            ))
        })
        .collect();
    let mut total = Outcome::new();
    for t in futures_util::future::join_all(tasks).await {
        match t {
            Ok(o) => {
                total.msgs += o.msgs;
                total.all += o.all;
                total.errors += o.errors;
                total.reopened += o.reopened;
                if total.first_error.is_none() {
                    total.first_error = o.first_error;
                }
                total
                    .hist
                    .add(&o.hist)
                    .map_err(|e| format!("histogram: {e}"))?;
            }
            Err(e) => total.fail(format!("session task: {e}")),
        }
    }
    report(&a, &total, own_cpu_seconds().map(|c| c - cpu_before));
    if total.msgs == 0 {
        return Err(format!(
            "no round trip completed in the measured window; first error: {}",
            total.first_error.unwrap_or_else(|| "none".into())
        )
        .into());
    }
    Ok(())
}

/// User + system CPU seconds of this process so far (`/proc/self/stat` fields 14 and 15, in
/// USER_HZ = 100 ticks per second).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// `cpu`: this load generator's CPU seconds over the sessions' lifetime. Its share of the run
/// (`client_cpu_pct`, 100 = one core busy) says whether the client, not the server, was the
/// limit.
fn report(a: &Args, o: &Outcome, cpu: Option<f64>) {
    let us = |q: f64| o.hist.value_at_quantile(q) as f64 / 1000.0;
    let max = o.hist.max() as f64 / 1000.0;
    let rate = o.msgs as f64 / a.secs;
    let cpu_pct = cpu.map_or(-1.0, |c| 100.0 * c / (a.warmup + a.secs));
    println!(
        "sockjsload http://{}{} {}: {} sessions, {} B messages, {} in flight per session, \
         warm-up {}s, measured {}s",
        a.endpoint.authority,
        a.endpoint.prefix,
        a.transport.name(),
        a.sessions,
        a.size,
        a.window,
        a.warmup,
        a.secs
    );
    println!(
        "  {rate:.0} msgs/s ({} round trips, {} errors{})",
        o.msgs,
        o.errors,
        if a.transport == Transport::XhrStreaming {
            format!(", {} streaming responses reopened", o.reopened)
        } else {
            String::new()
        }
    );
    println!(
        "  latency µs: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {max:.1}",
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999)
    );
    if cpu_pct >= 0.0 {
        println!("  load generator CPU: {cpu_pct:.0}% of one core");
    }
    if let Some(e) = &o.first_error {
        println!("  first error: {e}");
    }
    println!(
        "RESULT transport={} sessions={} size={} window={} secs={} msgs={} msgs_per_sec={rate:.1} \
         p50_us={:.1} p90_us={:.1} p99_us={:.1} p999_us={:.1} max_us={max:.1} errors={} \
         all_msgs={} reopened={} client_cpu_pct={cpu_pct:.0}",
        a.transport.name(),
        a.sessions,
        a.size,
        a.window,
        a.secs,
        o.msgs,
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        o.errors,
        o.all,
        o.reopened
    );
}

// ---------------------------------------------------------------------------------------------
// Idle memory.

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status").into())
}

/// Waits for a frame carrying one STOMP frame whose command is `command`.
async fn expect_stomp(s: &mut Session, command: &str) -> Result {
    match s.next_frame(RECV_TIMEOUT).await? {
        Frame::Messages(m) if m.len() == 1 && m[0].starts_with(command) => Ok(()),
        Frame::Messages(m) => Err(format!(
            "expected {command}, got {:?}",
            m.first().map(|f| shorten(f))
        )
        .into()),
        other => Err(format!("expected {command}, got {other:?}").into()),
    }
}

async fn idle_one(a: &IdleArgs, seed: u64, i: usize) -> Result<Session> {
    let mut s = Session::open(&a.endpoint, a.transport, seed).await?;
    if a.stomp {
        let auth = &a.endpoint.authority;
        let connect = "CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\n\n\0";
        s.send(auth, &encode_messages([connect])).await?;
        expect_stomp(&mut s, "CONNECTED").await?;
        let subscribe = format!("SUBSCRIBE\nid:0\ndestination:/topic/idle.{i}\nreceipt:s\n\n\0");
        s.send(auth, &encode_messages([subscribe.as_str()])).await?;
        expect_stomp(&mut s, "RECEIPT").await?;
    }
    if let Session::Xhr { send, .. } = &mut s {
        *send = None;
    }
    Ok(s)
}

async fn open_idle(a: &IdleArgs, seed: u64, range: std::ops::Range<usize>) -> Result<Vec<Session>> {
    let mut held = Vec::with_capacity(range.len());
    let mut i = range.start;
    while i < range.end {
        let batch = (i..range.end.min(i + IDLE_BATCH)).map(|i| async move {
            timeout(
                RECV_TIMEOUT * 2,
                idle_one(a, seed.wrapping_add(i as u64), i),
            )
            .await
            .map_err(|_| -> Error { "opening an idle session timed out".into() })?
        });
        for r in futures_util::future::join_all(batch).await {
            held.push(r.map_err(|e| format!("idle session: {e}"))?);
        }
        i = range.end.min(i + IDLE_BATCH);
    }
    Ok(held)
}

async fn idle(a: IdleArgs) -> Result {
    let seed = run_seed();
    let mut held = open_idle(&a, seed, 0..IDLE_WARM).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = rss_kib(a.pid)?;
    held.extend(open_idle(&a, seed, IDLE_WARM..IDLE_WARM + a.sessions).await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(a.pid)?;
    let per = after.saturating_sub(base) as f64 / a.sessions as f64;
    let kind = format!(
        "sockjs-{}{}",
        a.transport.name(),
        if a.stomp { "-stomp" } else { "" }
    );
    println!(
        "sockjsload idle: {} {} sessions{} at http://{}{}: server RSS {base} -> {after} KiB, \
         {per:.2} KiB per session",
        a.sessions,
        a.transport.name(),
        if a.stomp {
            ", each CONNECTed and SUBSCRIBEd"
        } else {
            ""
        },
        a.endpoint.authority,
        a.endpoint.prefix
    );
    println!(
        "RESULT kind={kind} sessions={} rss_before_kib={base} rss_after_kib={after} \
         kib_per_session={per:.2}",
        a.sessions
    );
    drop(held);
    Ok(())
}

// ---------------------------------------------------------------------------------------------

enum Job {
    Echo(Args),
    Idle(IdleArgs),
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let job = match argv.first().map(String::as_str) {
        Some("idle") => parse_idle(&argv[1..]).map(Job::Idle),
        _ => parse_args(&argv).map(Job::Echo),
    };
    let job = match job {
        Ok(j) => j,
        Err(e) => {
            eprintln!("sockjsload: {e}");
            std::process::exit(2);
        }
    };
    let (threads, budget) = match &job {
        Job::Echo(a) => (
            a.threads,
            a.connect_timeout + Duration::from_secs_f64(a.warmup + a.secs) + RUN_SLACK,
        ),
        Job::Idle(a) => (
            1,
            RECV_TIMEOUT * 2 * (a.sessions / IDLE_BATCH + 2) as u32 + RUN_SLACK,
        ),
    };
    // One thread (the default, and what `cargo xtask load sockjs` pins to one CPU): a
    // current-thread runtime, so no wake-up crosses threads.
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sockjsload: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async {
        let work = async {
            match job {
                Job::Echo(a) => run(a).await,
                Job::Idle(a) => idle(a).await,
            }
        };
        timeout(budget, work)
            .await
            .unwrap_or_else(|_| Err(format!("run did not finish within {budget:?}").into()))
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    if let Err(e) = result {
        eprintln!("sockjsload: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_round_trip() {
        let tricky = "é \u{2028}\u{2029} 😀 \"q\" \\ \n\t\u{0}\u{7f}\u{200d}\u{fff0}/";
        let encoded = encode_messages([tricky, "", "plain"]);
        assert!(encoded.contains("\\u2028") && encoded.contains("\\u0000"));
        assert!(!encoded.contains('\u{2028}'));
        let decoded = JsonReader::new(&encoded).string_array().unwrap();
        assert_eq!(decoded, [tricky, "", "plain"]);
    }

    #[test]
    fn json_arrays_as_servers_write_them() {
        let r = |s| JsonReader::new(s).string_array();
        assert_eq!(r("[]").unwrap(), Vec::<String>::new());
        assert_eq!(r(" [ \"a\" , \"b\" ] ").unwrap(), ["a", "b"]);
        assert_eq!(r("[\"\\ud83d\\ude00\"]").unwrap(), ["😀"]);
        assert_eq!(r("[\"\\u00E9\\/\"]").unwrap(), ["é/"]);
        // A lone surrogate escape (legal JSON, not a Rust char) becomes U+FFFD.
        assert_eq!(r("[\"\\ud800x\"]").unwrap(), ["\u{fffd}x"]);
        assert_eq!(r("[\"\\ud800\\u0041\"]").unwrap(), ["\u{fffd}A"]);
        for bad in [
            "",
            "[",
            "[\"a\"",
            "[\"a\",]",
            "[1]",
            "[\"a\"]x",
            "[\"\\x\"]",
            "[\"\\u12\"]",
            "[\"a\nb\"]",
            "{}",
        ] {
            assert!(r(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn frames() {
        assert_eq!(parse_frame("o").unwrap(), Frame::Open);
        assert_eq!(parse_frame("h").unwrap(), Frame::Heartbeat);
        assert_eq!(parse_frame(&"h".repeat(2048)).unwrap(), Frame::Heartbeat);
        assert_eq!(
            parse_frame("a[\"x\",\"y\"]").unwrap(),
            Frame::Messages(vec!["x".into(), "y".into()])
        );
        assert_eq!(
            parse_frame("c[3000,\"Go away!\"]").unwrap(),
            Frame::Close("[3000,\"Go away!\"]".into())
        );
        for bad in ["", "x", "oo", "hx", "a[", "a{}"] {
            assert!(parse_frame(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:8080/echo/").unwrap();
        assert_eq!(e.authority, "127.0.0.1:8080");
        assert_eq!(
            e.session_path("000", "abc", "xhr_send"),
            "/echo/000/abc/xhr_send"
        );
        assert_eq!(Endpoint::parse("http://h:1").unwrap().prefix, "");
        for bad in ["ws://h:1/echo", "http://h/echo", "http://h:1/e?x=1", "h:1"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_carry_their_sequence_number_and_size() {
        let filler: String = "abc".chars().cycle().take(1024).collect();
        assert_eq!(message(7, 16, &filler), "0000000007abcabc");
        assert_eq!(message(7, 4, &filler), "0000");
        assert_eq!(message(12, 1024, &filler).len(), 1024);
        assert_ne!(message(1, 16, &filler), message(2, 16, &filler));
        for (seq, size) in [(7, 16), (7, 4), (12, 1024), (9_999_999_999, 10), (3, 1)] {
            assert!(is_message(&message(seq, size, &filler), seq, size, &filler));
            assert!(!is_message(
                &message(seq + 1, size.max(10), &filler),
                seq,
                size.max(10),
                &filler
            ));
        }
        assert!(!is_message("0000000007abcab", 7, 16, &filler));
    }

    #[test]
    fn session_ids_look_like_sockjs_clients() {
        let (server, session) = session_ids(42);
        assert_eq!(server.len(), 3);
        assert!(server.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(session.len(), 8);
        assert!(!session.contains(['.', '/']));
        assert_ne!(session_ids(1).1, session_ids(2).1);
    }

    #[test]
    fn argument_errors_are_reported() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert!(parse_args(&args("--sessions 0 http://h:1/e")).is_err());
        assert!(parse_args(&args("--transport jsonp http://h:1/e")).is_err());
        assert!(parse_args(&args("--size 0 http://h:1/e")).is_err());
        assert!(parse_args(&args("--sessions 2")).is_err());
        let a = parse_args(&args(
            "--transport xhr-streaming --sessions 100 http://h:1/e",
        ))
        .unwrap();
        assert_eq!((a.transport, a.sessions), (Transport::XhrStreaming, 100));
        assert!(parse_idle(&args("--sessions 10 http://h:1/e")).is_err());
        let i = parse_idle(&args("--sessions 10 --pid 1 --stomp http://h:1/chat")).unwrap();
        assert!(i.stomp);
    }
}
