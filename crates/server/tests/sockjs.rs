//! STOMP over SockJS (`/chat/...`) against an in-process server: xhr_streaming and xhr polling
//! (with xhr_send) through a small raw HTTP/1.1 client, the SockJS `websocket` transport and the
//! raw `/chat/websocket` through `switchboard-ws`'s client.

mod common;

use std::net::SocketAddr;

use bytes::BytesMut;
use common::*;
use serde_json::Value;
use switchboard_stomp::{Command, Frame, Limits, Parsed, Parser, Version};
use switchboard_ws::handshake::ClientRequest;
use switchboard_ws::{Message, StreamConfig, WebSocketStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: one request per connection, body read as it arrives.

struct HttpResponse {
    status: u16,
    head: String,
    tcp: TcpStream,
    /// Raw bytes after the head not yet decoded.
    raw: Vec<u8>,
    /// Decoded body bytes not yet consumed.
    body: Vec<u8>,
    chunked: bool,
    /// Body bytes left with a content-length.
    remaining: Option<usize>,
    done: bool,
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> HttpResponse {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.expect("write head");
    tcp.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    let head_end = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                return i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = tcp.read(&mut chunk).await.expect("read head");
            assert!(n > 0, "EOF before the response head: {raw:?}");
            raw.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("response head in time");
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let rest = raw[head_end..].to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let lower = head.to_ascii_lowercase();
    let chunked = lower.contains("transfer-encoding: chunked");
    let remaining = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    let mut r = HttpResponse {
        status,
        head,
        tcp,
        raw: rest,
        body: Vec::new(),
        chunked,
        remaining,
        done: false,
    };
    r.decode();
    r
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<String> {
        let name = name.to_ascii_lowercase();
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim().to_ascii_lowercase() == name).then(|| v.trim().to_owned())
        })
    }

    /// Moves what can be decoded from `raw` to `body`.
    fn decode(&mut self) {
        if self.chunked {
            loop {
                let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                    return;
                };
                let size_line = String::from_utf8_lossy(&self.raw[..eol]).into_owned();
                let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                    .expect("chunk size");
                if size == 0 {
                    self.done = true;
                    return;
                }
                if self.raw.len() < eol + 2 + size + 2 {
                    return;
                }
                self.body
                    .extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
                self.raw.drain(..eol + 2 + size + 2);
            }
        } else {
            let take = match self.remaining {
                Some(left) => left.min(self.raw.len()),
                None => self.raw.len(),
            };
            self.body.extend(self.raw.drain(..take));
            if let Some(left) = &mut self.remaining {
                *left -= take;
                if *left == 0 {
                    self.done = true;
                }
            }
        }
    }

    /// Reads more; `false` at the end of the body.
    async fn read_more(&mut self) -> bool {
        if self.done {
            return false;
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(WAIT, self.tcp.read(&mut chunk))
            .await
            .expect("response bytes in time")
            .unwrap_or(0);
        if n == 0 {
            self.done = true;
            return false;
        }
        self.raw.extend_from_slice(&chunk[..n]);
        self.decode();
        true
    }

    /// The whole body (reads to its end).
    async fn text(mut self) -> String {
        while self.read_more().await {}
        String::from_utf8(self.body).expect("utf-8 body")
    }

    /// The next `\n`-terminated line of the body, `None` at its end.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.body.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=i).collect();
                return Some(String::from_utf8(line[..i].to_vec()).expect("utf-8 line"));
            }
            if !self.read_more().await {
                return None;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SockJS frames and transports.

#[derive(Debug, PartialEq)]
enum SjFrame {
    Open,
    Heartbeat,
    Messages(Vec<String>),
    Close(u64, String),
}

fn parse_sj(s: &str) -> SjFrame {
    match s.as_bytes().first() {
        Some(b'o') if s == "o" => SjFrame::Open,
        Some(b'h') if s == "h" => SjFrame::Heartbeat,
        Some(b'a') => {
            let v: Vec<String> = serde_json::from_str(&s[1..]).expect("a[...] is a JSON array");
            SjFrame::Messages(v)
        }
        Some(b'c') => {
            let v: Value = serde_json::from_str(&s[1..]).expect("c[...] is JSON");
            (
                v[0].as_u64().expect("close code"),
                v[1].as_str().expect("close reason").to_owned(),
            )
                .into()
        }
        _ => panic!("not a SockJS frame: {s:?}"),
    }
}

impl From<(u64, String)> for SjFrame {
    fn from((code, reason): (u64, String)) -> SjFrame {
        SjFrame::Close(code, reason)
    }
}

enum Link {
    /// `xhr_streaming` for receiving, `xhr_send` for sending.
    XhrStreaming(HttpResponse),
    /// `xhr` polling for receiving, `xhr_send` for sending.
    XhrPolling,
    /// The SockJS `websocket` transport: SockJS frames as WebSocket text messages.
    WebSocket(WebSocketStream<TcpStream>),
    /// `<path>/websocket`: STOMP frames as plain WebSocket messages.
    Raw(WebSocketStream<TcpStream>),
}

/// A STOMP client over one SockJS session.
struct SockJsStomp {
    addr: SocketAddr,
    base: String,
    link: Link,
    /// Messages received and not yet parsed.
    pending: std::collections::VecDeque<String>,
    buf: BytesMut,
    parser: Parser,
    /// The number of messages in every `a[...]` frame seen.
    batches: Vec<usize>,
    closed: Option<(u64, String)>,
}

fn session_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}s{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl SockJsStomp {
    async fn open(addr: SocketAddr, kind: &str) -> SockJsStomp {
        let base = format!("/chat/123/{}", session_id());
        let link = match kind {
            "xhr_streaming" => {
                let r = request(addr, "POST", &format!("{base}/xhr_streaming"), "", b"").await;
                assert_eq!(r.status, 200, "{}", r.head);
                Link::XhrStreaming(r)
            }
            "xhr" => Link::XhrPolling,
            "websocket" => {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let req = ClientRequest::new(addr.to_string(), format!("{base}/websocket"));
                let (ws, _) = switchboard_ws::connect(tcp, &req, StreamConfig::default())
                    .await
                    .expect("SockJS websocket handshake");
                Link::WebSocket(ws)
            }
            "raw" => {
                let tcp = TcpStream::connect(addr).await.unwrap();
                let req = ClientRequest::new(addr.to_string(), "/chat/websocket");
                let (ws, _) = switchboard_ws::connect(tcp, &req, StreamConfig::default())
                    .await
                    .expect("raw websocket handshake");
                Link::Raw(ws)
            }
            other => panic!("unknown transport {other}"),
        };
        let mut c = SockJsStomp {
            addr,
            base,
            link,
            pending: Default::default(),
            buf: BytesMut::new(),
            parser: Parser::new(Version::V1_2, Limits::default()),
            batches: Vec::new(),
            closed: None,
        };
        if !matches!(c.link, Link::Raw(_)) {
            assert_eq!(c.next_sj().await, Some(SjFrame::Open));
        }
        c
    }

    /// The next SockJS frame (`None` when the link ended). Raw links have no SockJS frames.
    async fn next_sj(&mut self) -> Option<SjFrame> {
        let line = match &mut self.link {
            Link::XhrStreaming(r) => loop {
                let line = r.line().await?;
                // The prelude: 2048 `h` that defeat buffering, not a heartbeat.
                if line.len() == 2048 && line.bytes().all(|b| b == b'h') {
                    continue;
                }
                break line;
            },
            Link::XhrPolling => {
                let r = request(self.addr, "POST", &format!("{}/xhr", self.base), "", b"").await;
                assert_eq!(r.status, 200, "{}", r.head);
                let body = r.text().await;
                body.strip_suffix('\n')
                    .expect("a frame and a newline")
                    .to_owned()
            }
            Link::WebSocket(ws) => loop {
                match tokio::time::timeout(WAIT, ws.recv())
                    .await
                    .expect("ws in time")
                {
                    Some(Ok(Message::Text(t))) => {
                        break std::str::from_utf8(t.as_bytes()).unwrap().to_owned();
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                    Some(Ok(_)) => {}
                }
            },
            Link::Raw(_) => panic!("no SockJS framing on the raw endpoint"),
        };
        Some(parse_sj(&line))
    }

    /// Sends SockJS messages (one call = one xhr_send request or one WebSocket message).
    async fn send_messages(&mut self, messages: &[String]) {
        let json = serde_json::to_string(messages).unwrap();
        match &mut self.link {
            Link::XhrStreaming(_) | Link::XhrPolling => {
                let r = request(
                    self.addr,
                    "POST",
                    &format!("{}/xhr_send", self.base),
                    "Content-Type: text/plain;charset=UTF-8\r\n",
                    json.as_bytes(),
                )
                .await;
                assert_eq!(r.status, 204, "{}", r.head);
            }
            Link::WebSocket(ws) => ws.send(Message::text(json)).await.expect("ws send"),
            Link::Raw(ws) => {
                for m in messages {
                    ws.send(Message::text(m.clone())).await.expect("ws send");
                }
            }
        }
    }

    async fn send(&mut self, frame: Frame) {
        let text = String::from_utf8(encode(&frame).to_vec()).unwrap();
        self.send_messages(&[text]).await;
    }

    /// The next STOMP frame, heart-beats skipped; `None` once the session is closed.
    async fn try_recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(p) = self
                .parser
                .parse(&mut self.buf)
                .expect("server frames parse")
            {
                match p {
                    Parsed::Frame(f) => return Some(f),
                    Parsed::HeartBeat => continue,
                }
            }
            if let Some(m) = self.pending.pop_front() {
                self.buf.extend_from_slice(m.as_bytes());
                continue;
            }
            if self.closed.is_some() {
                return None;
            }
            if let Link::Raw(ws) = &mut self.link {
                match tokio::time::timeout(WAIT, ws.recv())
                    .await
                    .expect("ws in time")
                {
                    Some(Ok(Message::Text(t))) => {
                        self.pending
                            .push_back(std::str::from_utf8(t.as_bytes()).unwrap().to_owned());
                    }
                    Some(Ok(Message::Close(c))) => {
                        let code = c.as_ref().map_or(0, |c| u64::from(c.code.0));
                        self.closed = Some((code, String::new()));
                    }
                    None | Some(Err(_)) => self.closed = Some((0, String::new())),
                    Some(Ok(_)) => {}
                }
                continue;
            }
            match self.next_sj().await {
                Some(SjFrame::Messages(ms)) => {
                    self.batches.push(ms.len());
                    self.pending.extend(ms);
                }
                Some(SjFrame::Heartbeat) => {}
                Some(SjFrame::Open) => panic!("a second open frame"),
                Some(SjFrame::Close(code, reason)) => self.closed = Some((code, reason)),
                None => self.closed = Some((0, "link ended".into())),
            }
        }
    }

    async fn recv(&mut self) -> Frame {
        match tokio::time::timeout(WAIT, self.try_recv())
            .await
            .expect("a frame in time")
        {
            Some(f) => f,
            None => panic!(
                "session closed ({:?}) while waiting for a frame",
                self.closed
            ),
        }
    }

    /// Reads until the session closes; returns the close code and reason.
    async fn expect_closed(&mut self) -> (u64, String) {
        tokio::time::timeout(WAIT, async {
            while let Some(f) = self.try_recv().await {
                assert_ne!(f.command, Command::Message, "unexpected {f:?}");
            }
        })
        .await
        .expect("closed in time");
        self.closed.clone().unwrap()
    }

    async fn connect(&mut self) -> Frame {
        self.send(
            Frame::new(Command::Connect)
                .header("accept-version", "1.0,1.1,1.2")
                .header("host", "localhost")
                .header("heart-beat", "0,0"),
        )
        .await;
        let f = self.recv().await;
        assert_eq!(f.command, Command::Connected, "{f:?}");
        f
    }

    async fn subscribe(&mut self, destination: &str, id: &str) {
        self.send(
            Frame::new(Command::Subscribe)
                .header("destination", destination.to_owned())
                .header("id", id.to_owned())
                .header("receipt", format!("sub-{id}")),
        )
        .await;
        let r = self.recv().await;
        assert_eq!(r.command, Command::Receipt, "{r:?}");
        assert_eq!(r.get("receipt-id"), Some(format!("sub-{id}").as_str()));
    }
}

const SPRING_SEND: &[u8] =
    "SEND\ndestination:/app/chat\ncontent-length:30\n\n{\"from\":\"hi\",\"text\":\"안녕?\"}\0"
        .as_bytes();

/// Checks a MESSAGE of the chat app: `{"from":"hi","text":"안녕?","time":"HH:MM"}`.
fn assert_chat_message(m: &Frame) {
    assert_eq!(m.command, Command::Message, "{m:?}");
    assert_eq!(m.get("destination"), Some("/topic/messages"));
    assert_eq!(m.get("content-type"), Some("application/json"));
    let body = std::str::from_utf8(&m.body).expect("UTF-8 body");
    let (head, time) = body.split_at(body.len() - 7);
    assert_eq!(head, r#"{"from":"hi","text":"안녕?","time":""#, "{body}");
    let time = time.strip_suffix("\"}").expect("ends the object");
    let (h, mm) = time.split_once(':').expect("HH:MM");
    assert!(h.len() == 2 && h.parse::<u8>().unwrap() < 24, "{time}");
    assert!(mm.len() == 2 && mm.parse::<u8>().unwrap() < 60, "{time}");
}

/// CONNECT, SUBSCRIBE with a receipt, the Spring chat SEND, the chat MESSAGE (also seen by a
/// TCP subscriber), then DISCONNECT with a receipt and the SockJS close.
async fn chat_round_trip(kind: &str) {
    let server = start(test_config()).await;
    let mut tcp = StompClient::tcp(server.stomp()).await;
    tcp.connect().await;
    tcp.subscribe("/topic/messages", "tcp").await;

    let mut c = SockJsStomp::open(server.http(), kind).await;
    let connected = c.connect().await;
    assert_eq!(connected.get("version"), Some("1.2"));
    c.subscribe("/topic/messages", "s0").await;
    let text = String::from_utf8(SPRING_SEND.to_vec()).unwrap();
    c.send_messages(&[text]).await;
    let m = c.recv().await;
    assert_chat_message(&m);
    assert_eq!(m.get("subscription"), Some("s0"));
    assert_chat_message(&tcp.recv().await);

    // From TCP to the SockJS client.
    tcp.send(send_frame("/topic/messages", "from tcp")).await;
    let m = c.recv().await;
    assert_eq!(&m.body[..], b"from tcp");

    c.send(Frame::new(Command::Disconnect).header("receipt", "bye"))
        .await;
    let r = c.recv().await;
    assert_eq!(r.command, Command::Receipt);
    assert_eq!(r.get("receipt-id"), Some("bye"));
    if kind == "raw" {
        let (code, _) = c.expect_closed().await;
        assert_eq!(code, 1000);
    } else {
        assert_eq!(c.expect_closed().await, (1000, "Normal closure".into()));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn stomp_over_xhr_streaming() {
    chat_round_trip("xhr_streaming").await;
}

#[tokio::test]
async fn stomp_over_xhr_polling() {
    chat_round_trip("xhr").await;
}

#[tokio::test]
async fn stomp_over_the_sockjs_websocket_transport() {
    chat_round_trip("websocket").await;
}

#[tokio::test]
async fn stomp_over_the_raw_websocket_endpoint() {
    chat_round_trip("raw").await;
}

#[tokio::test]
async fn frames_ready_together_go_out_in_one_array() {
    let server = start(test_config()).await;
    let mut c = SockJsStomp::open(server.http(), "xhr").await;
    c.connect().await;
    c.subscribe("/queue/batch", "q").await;
    let batches_before = c.batches.len();
    // Four frames in one SockJS message: the session answers them in one go, and the next
    // poll carries three MESSAGEs and the RECEIPT in one `a[...]`.
    let mut joined = String::new();
    for body in ["one", "two", "three"] {
        joined.push_str(std::str::from_utf8(&encode(&send_frame("/queue/batch", body))).unwrap());
    }
    joined.push_str(
        std::str::from_utf8(&encode(
            &Frame::new(Command::Send)
                .header("destination", "/topic/nobody")
                .header("receipt", "r1"),
        ))
        .unwrap(),
    );
    c.send_messages(&[joined]).await;
    for want in ["one", "two", "three"] {
        let m = c.recv().await;
        assert_eq!(m.command, Command::Message);
        assert_eq!(&m.body[..], want.as_bytes());
    }
    assert_eq!(c.recv().await.command, Command::Receipt);
    let batches = &c.batches[batches_before..];
    assert_eq!(
        batches,
        [4],
        "one a[...] frame with four messages: {batches:?}"
    );
    // Inbound too: a frame split across SockJS messages, several messages per xhr_send.
    let frame = String::from_utf8(encode(&send_frame("/queue/batch", "split")).to_vec()).unwrap();
    let (a, b) = frame.split_at(7);
    c.send_messages(&[a.to_owned(), b.to_owned()]).await;
    assert_eq!(&c.recv().await.body[..], b"split");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_chat_message_gets_an_error_message_and_the_session_stays() {
    let server = start(test_config()).await;
    let mut c = SockJsStomp::open(server.http(), "xhr_streaming").await;
    c.connect().await;
    c.subscribe("/user/queue/errors", "errors").await;
    c.subscribe("/topic/messages", "chat").await;
    c.send(send_frame("/app/chat", r#"{"from":"ann"}"#)).await;
    let e = c.recv().await;
    assert_eq!(e.command, Command::Message);
    assert_eq!(e.get("subscription"), Some("errors"));
    let why = std::str::from_utf8(&e.body).unwrap();
    assert!(why.contains("`text` is missing"), "{why}");
    c.send_messages(&[String::from_utf8(SPRING_SEND.to_vec()).unwrap()])
        .await;
    assert_chat_message(&c.recv().await);
    server.shutdown().await;
}

#[tokio::test]
async fn binary_body_ends_a_sockjs_session_with_error() {
    let server = start(test_config()).await;
    let mut c = SockJsStomp::open(server.http(), "xhr_streaming").await;
    c.connect().await;
    c.subscribe("/topic/bin", "b").await;
    let mut tcp = StompClient::tcp(server.stomp()).await;
    tcp.connect().await;
    tcp.send(
        Frame::new(Command::Send)
            .header("destination", "/topic/bin")
            .body(bytes::Bytes::from_static(b"\xff\xfe not text")),
    )
    .await;
    let e = c.recv().await;
    assert_eq!(e.command, Command::Error, "{e:?}");
    assert_eq!(e.get("message"), Some("Body is not UTF-8 text"));
    assert_eq!(c.expect_closed().await.0, 1000);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_sends_error_then_sockjs_close() {
    let server = start(test_config()).await;
    let mut c = SockJsStomp::open(server.http(), "xhr_streaming").await;
    c.connect().await;
    server.stop.shutdown();
    let e = c.recv().await;
    assert_eq!(e.command, Command::Error);
    assert!(
        e.get("message")
            .is_some_and(|m| m.contains("shutting down")),
        "{e:?}"
    );
    assert_eq!(
        c.expect_closed().await,
        (1001, "Server shutting down".into())
    );
    tokio::time::timeout(WAIT, server.task)
        .await
        .expect("run returns")
        .unwrap();
}

#[tokio::test]
async fn metrics_count_sockjs_sessions_by_transport() {
    let server = start(test_config()).await;
    let mut c = SockJsStomp::open(server.http(), "xhr_streaming").await;
    c.connect().await;
    let (_, text) = http_get(server.http(), "/metrics", "").await;
    let open = "switchboard_sockjs_sessions_open{endpoint=\"/chat\",transport=\"xhr_streaming\"}";
    assert_eq!(metric(&text, open), Some(1), "{text}");
    assert_eq!(
        metric(
            &text,
            "switchboard_sockjs_sessions_opened_total{endpoint=\"/chat\",transport=\"xhr_streaming\"}"
        ),
        Some(1)
    );
    assert_eq!(
        metric(
            &text,
            "switchboard_sockjs_sessions_open{endpoint=\"/chat\",transport=\"xhr\"}"
        ),
        Some(0)
    );
    assert_eq!(
        metric(&text, "switchboard_connections_open{transport=\"sockjs\"}"),
        Some(1)
    );
    assert_eq!(metric(&text, "switchboard_sessions"), Some(1));
    assert!(text.contains("switchboard_sockjs_closed_queue_full_total{endpoint=\"/chat\"} 0"));
    assert!(text.contains("switchboard_sockjs_timed_out_total{endpoint=\"/chat\"} 0"));
    c.send(Frame::new(Command::Disconnect)).await;
    c.expect_closed().await;
    let sample = "switchboard_connections_open{transport=\"sockjs\"}";
    let text = wait_for_metric(server.http(), sample, 0).await;
    assert_eq!(metric(&text, sample), Some(0), "{text}");
    server.shutdown().await;
}

/// A SockJS subscriber that stops polling: the server keeps at most its high-water mark in the
/// SockJS queue, the broker's queue overflows, and the slow-consumer policy drops it; a TCP
/// subscriber of the same topic gets every message.
#[tokio::test]
async fn sockjs_client_that_stops_polling_is_dropped() {
    let mut config = test_config();
    config.limits.outbound_queue_frames = 16;
    config.limits.outbound_queue_bytes = 256 * 1024;
    config.limits.max_frame_size = 64 * 1024;
    config.limits.shutdown_grace_ms = 500;
    config.sockjs.disconnect_delay_ms = 60_000;
    let server = start(config).await;
    let mut lazy = SockJsStomp::open(server.http(), "xhr").await;
    lazy.connect().await;
    lazy.subscribe("/topic/firehose", "lazy").await;
    let mut reader = StompClient::tcp(server.stomp()).await;
    reader.connect().await;
    reader.subscribe("/topic/firehose", "reader").await;
    let mut publisher = StompClient::tcp(server.stomp()).await;
    publisher.connect().await;
    let body = "x".repeat(16 * 1024);
    for i in 0..64 {
        publisher
            .send(
                Frame::new(Command::Send)
                    .header("destination", "/topic/firehose")
                    .body(body.clone()),
            )
            .await;
        assert_eq!(reader.recv().await.command, Command::Message, "message {i}");
    }
    let sample = "switchboard_errors_total{kind=\"slow_consumer\"}";
    let metrics = wait_for_metric(server.http(), sample, 1).await;
    assert_eq!(metric(&metrics, sample), Some(1), "{metrics}");
    let sample = "switchboard_connections_open{transport=\"sockjs\"}";
    let metrics = wait_for_metric(server.http(), sample, 0).await;
    assert_eq!(metric(&metrics, sample), Some(0), "{metrics}");
    server.shutdown().await;
}

#[tokio::test]
async fn greeting_info_and_websocket_routing() {
    let server = start(test_config()).await;
    let (status, text) = http_get(server.http(), "/chat", "").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("\r\n\r\nWelcome to SockJS!\n"), "{text}");
    let r = request(server.http(), "GET", "/chat/info", "", b"").await;
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let info: Value = serde_json::from_str(&r.text().await).unwrap();
    assert_eq!(info["websocket"], Value::Bool(true));
    assert_eq!(info["cookie_needed"], Value::Bool(false));
    let r = request(server.http(), "GET", "/chat/iframe.html", "", b"").await;
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .await
            .contains(switchboard_server::config::SOCKJS_CDN_URL)
    );
    // /chat with Upgrade is still STOMP over WebSocket.
    let (mut ws, proto) = ws_connect(server.http(), "/chat", &["v12.stomp"], None)
        .await
        .unwrap();
    assert_eq!(proto.as_deref(), Some("v12.stomp"));
    ws.connect().await;
    // A foreign origin is refused on SockJS as on WebSocket.
    let r = request(
        server.http(),
        "POST",
        "/chat/000/evil/xhr",
        "Origin: https://evil.example\r\n",
        b"",
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.head);
    server.shutdown().await;
}

#[tokio::test]
async fn disabled_transports_and_sockjs_off() {
    let mut config = test_config();
    config.sockjs.disabled_transports = vec!["xhr".into(), "websocket".into()];
    // The xhr_streaming session below is left unpolled: shutdown waits this long for it.
    config.limits.shutdown_grace_ms = 300;
    let server = start(config).await;
    let r = request(server.http(), "POST", "/chat/000/abc/xhr", "", b"").await;
    assert_eq!(r.status, 404, "{}", r.head);
    let r = request(server.http(), "GET", "/chat/info", "", b"").await;
    let info: Value = serde_json::from_str(&r.text().await).unwrap();
    assert_eq!(info["websocket"], Value::Bool(false));
    let r = request(
        server.http(),
        "POST",
        "/chat/000/abc/xhr_streaming",
        "",
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.head);
    drop(r);
    server.shutdown().await;

    let mut config = test_config();
    config.sockjs.enabled = false;
    let server = start(config).await;
    let (status, _) = http_get(server.http(), "/chat", "").await;
    assert_eq!(
        status, 400,
        "a plain GET on a WebSocket path is not an upgrade"
    );
    let (status, _) = http_get(server.http(), "/chat/info", "").await;
    assert_eq!(status, 404);
    let (_, text) = http_get(server.http(), "/metrics", "").await;
    assert!(!text.contains("switchboard_sockjs_"), "{text}");
    let (mut ws, _) = ws_connect(server.http(), "/chat", &["v12.stomp"], None)
        .await
        .unwrap();
    ws.connect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_transport_name_is_refused_at_start() {
    let mut config = test_config();
    config.sockjs.disabled_transports = vec!["xhr_polling".into()];
    let e = switchboard_server::Server::bind(config).await.unwrap_err();
    assert!(
        e.to_string().contains("unknown transport `xhr_polling`"),
        "{e}"
    );
}

#[tokio::test]
async fn sockjs_session_over_the_connection_limit_is_closed() {
    let mut config = test_config();
    config.limits.max_connections = 2;
    let server = start(config).await;
    // One TCP connection holds a slot and the xhr request the second while it is open: the
    // session would need a third.
    let mut tcp = StompClient::tcp(server.stomp()).await;
    tcp.connect().await;
    let mut frames = Vec::new();
    for _ in 0..100 {
        let r = request(server.http(), "POST", "/chat/000/full/xhr", "", b"").await;
        if r.status == 503 {
            // The previous request's connection has not released its slot yet.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        }
        assert_eq!(r.status, 200, "{}", r.head);
        let body = r.text().await;
        let closed = body.starts_with('c');
        frames.push(body);
        if closed {
            break;
        }
    }
    let last = frames.last().expect("answers");
    assert_eq!(last, "c[1013,\"Too many connections\"]\n", "{frames:?}");
    assert!(frames.len() <= 2, "{frames:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn stomp_heart_beats_go_out_as_sockjs_messages() {
    let mut config = test_config();
    config.limits.heartbeat_ms = [50, 0];
    let server = start(config).await;
    let mut c = SockJsStomp::open(server.http(), "xhr_streaming").await;
    c.send(
        Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "localhost")
            .header("heart-beat", "0,50"),
    )
    .await;
    assert_eq!(c.recv().await.command, Command::Connected);
    // The next SockJS frames: heart-beat EOLs as messages, each its own message.
    let mut eols = 0;
    for _ in 0..3 {
        match c.next_sj().await {
            Some(SjFrame::Messages(ms)) => {
                assert!(ms.iter().all(|m| m == "\n"), "{ms:?}");
                eols += ms.len();
            }
            other => panic!("expected heart-beats, got {other:?}"),
        }
    }
    assert!(eols >= 3);
    server.shutdown().await;
}

#[tokio::test]
async fn sockjs_session_without_connect_gets_error_after_the_connect_timeout() {
    let mut config = test_config();
    config.limits.connect_timeout_ms = 200;
    let server = start(config).await;
    let mut c = SockJsStomp::open(server.http(), "xhr_streaming").await;
    let e = c.recv().await;
    assert_eq!(e.command, Command::Error, "{e:?}");
    assert_eq!(c.expect_closed().await, (1000, "Normal closure".into()));
    server.shutdown().await;
}
