//! Helpers shared by the server's integration tests: an in-process server on ephemeral ports,
//! a raw STOMP client over any byte stream, a STOMP-over-WebSocket client, a tiny HTTP GET.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use switchboard_server::{BoundAddrs, Config, Server, ShutdownHandle};
use switchboard_stomp::{Command, Frame, Limits, Parsed, Parser, Version, encode_frame};
use switchboard_ws::handshake::{ClientAccepted, ClientRequest};
use switchboard_ws::{Message, StreamConfig, WebSocketStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Upper bound for any single wait in these tests (they fail instead of hanging).
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Running {
    pub addrs: BoundAddrs,
    pub stop: ShutdownHandle,
    pub task: JoinHandle<()>,
}

impl Running {
    pub fn stomp(&self) -> SocketAddr {
        self.addrs.stomp.expect("stomp listener")
    }
    pub fn http(&self) -> SocketAddr {
        self.addrs.http.expect("http listener")
    }
    /// Shuts down and waits for `run` to return.
    pub async fn shutdown(self) {
        self.stop.shutdown();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("server stops in time")
            .expect("server task");
    }
}

/// A config listening on ephemeral loopback ports.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.listeners.http = "127.0.0.1:0".parse().unwrap();
    c.listeners.stomp = "127.0.0.1:0".parse().unwrap();
    c
}

pub async fn start(config: Config) -> Running {
    let server = Server::bind(config).await.expect("bind");
    let addrs = server.local_addrs();
    let stop = server.shutdown_handle();
    let task = tokio::spawn(server.run());
    Running { addrs, stop, task }
}

/// A STOMP client over any byte stream, using the stomp crate's encoder and parser.
pub struct StompClient<S> {
    pub io: S,
    buf: BytesMut,
    parser: Parser,
    pub version: Version,
}

impl StompClient<TcpStream> {
    pub async fn tcp(addr: SocketAddr) -> StompClient<TcpStream> {
        StompClient::new(TcpStream::connect(addr).await.expect("connect"))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> StompClient<S> {
    pub fn new(io: S) -> StompClient<S> {
        StompClient {
            io,
            buf: BytesMut::new(),
            parser: Parser::new(Version::V1_2, Limits::default().with_max_body(64 << 20)),
            version: Version::V1_2,
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        encode_frame(&frame, self.version, &mut out).expect("encode");
        self.send_raw(&out).await;
    }

    /// The next frame (heart-beats skipped); panics on EOF or after [`WAIT`].
    pub async fn recv(&mut self) -> Frame {
        match self.try_recv().await {
            Some(f) => f,
            None => panic!("connection closed while waiting for a frame"),
        }
    }

    /// The next frame, or `None` at EOF.
    pub async fn try_recv(&mut self) -> Option<Frame> {
        tokio::time::timeout(WAIT, async {
            loop {
                match self
                    .parser
                    .parse(&mut self.buf)
                    .expect("server frames parse")
                {
                    Some(Parsed::Frame(f)) => return Some(f),
                    Some(Parsed::HeartBeat) => continue,
                    None => {}
                }
                match self.io.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("a frame or EOF in time")
    }

    /// Reads until EOF (or a reset), failing after [`WAIT`].
    pub async fn expect_closed(&mut self) {
        tokio::time::timeout(WAIT, async {
            let mut sink = [0u8; 4096];
            loop {
                match self.io.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("server closes the connection");
    }

    pub async fn connect(&mut self) -> Frame {
        self.send(
            Frame::new(Command::Connect)
                .header("accept-version", "1.2")
                .header("host", "localhost"),
        )
        .await;
        let f = self.recv().await;
        assert_eq!(f.command, Command::Connected, "{f:?}");
        f
    }

    pub async fn subscribe(&mut self, destination: &str, id: &str) {
        self.send(
            Frame::new(Command::Subscribe)
                .header("destination", destination.to_owned())
                .header("id", id.to_owned())
                .header("receipt", format!("sub-{id}")),
        )
        .await;
        let r = self.recv().await;
        assert_eq!(r.command, Command::Receipt, "{r:?}");
    }
}

pub fn send_frame(destination: &str, body: &'static str) -> Frame {
    Frame::new(Command::Send)
        .header("destination", destination.to_owned())
        .body(body)
}

/// A STOMP-over-WebSocket client: frames out as text messages, frames in from messages.
pub struct WsStompClient {
    pub ws: WebSocketStream<TcpStream>,
    buf: BytesMut,
    parser: Parser,
}

pub async fn ws_connect(
    addr: SocketAddr,
    path: &str,
    protocols: &[&str],
    origin: Option<&str>,
) -> Result<(WsStompClient, Option<String>), switchboard_ws::Error> {
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    ws_connect_over(tcp, addr, path, protocols, origin).await
}

pub async fn ws_connect_over(
    tcp: TcpStream,
    addr: SocketAddr,
    path: &str,
    protocols: &[&str],
    origin: Option<&str>,
) -> Result<(WsStompClient, Option<String>), switchboard_ws::Error> {
    let mut req = ClientRequest::new(addr.to_string(), path).protocols(protocols.iter().copied());
    if let Some(o) = origin {
        req = req.header("Origin", o);
    }
    ws_connect_with(tcp, req).await
}

/// The client handshake with a request of the caller's making.
pub async fn ws_connect_with(
    tcp: TcpStream,
    req: ClientRequest,
) -> Result<(WsStompClient, Option<String>), switchboard_ws::Error> {
    let (c, accepted) = ws_handshake(tcp, req).await?;
    Ok((c, accepted.protocol))
}

/// The client handshake, returning everything the server agreed to.
pub async fn ws_handshake(
    tcp: TcpStream,
    req: ClientRequest,
) -> Result<(WsStompClient, ClientAccepted), switchboard_ws::Error> {
    let (ws, accepted) = switchboard_ws::connect(tcp, &req, StreamConfig::default()).await?;
    Ok((
        WsStompClient {
            ws,
            buf: BytesMut::new(),
            parser: Parser::new(Version::V1_2, Limits::default()),
        },
        accepted,
    ))
}

pub fn encode(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    encode_frame(frame, Version::V1_2, &mut out).expect("encode");
    out
}

/// What arrived on a WebSocket STOMP connection.
#[derive(Debug)]
pub enum WsEvent {
    Frame(Frame),
    Close(Option<u16>),
}

impl WsStompClient {
    pub async fn send_text(&mut self, s: &[u8]) {
        let text = std::str::from_utf8(s).expect("utf-8").to_owned();
        self.ws.send(Message::text(text)).await.expect("ws send");
    }

    pub async fn send_binary(&mut self, s: &[u8]) {
        self.ws
            .send(Message::binary(bytes::Bytes::copy_from_slice(s)))
            .await
            .expect("ws send");
    }

    pub async fn send(&mut self, frame: Frame) {
        let b = encode(&frame);
        self.send_text(&b).await;
    }

    /// The next STOMP frame or the Close (heart-beats skipped).
    pub async fn next(&mut self) -> WsEvent {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(p) = self
                    .parser
                    .parse(&mut self.buf)
                    .expect("server frames parse")
                {
                    match p {
                        Parsed::Frame(f) => return WsEvent::Frame(f),
                        Parsed::HeartBeat => continue,
                    }
                }
                match self.ws.recv().await {
                    Some(Ok(Message::Text(t))) => self.buf.extend_from_slice(t.as_bytes()),
                    Some(Ok(Message::Binary(b))) => self.buf.extend_from_slice(&b),
                    Some(Ok(Message::Close(c))) => return WsEvent::Close(c.map(|c| c.code.0)),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => panic!("ws error: {e}"),
                    None => return WsEvent::Close(None),
                }
            }
        })
        .await
        .expect("a WebSocket event in time")
    }

    pub async fn recv(&mut self) -> Frame {
        match self.next().await {
            WsEvent::Frame(f) => f,
            WsEvent::Close(c) => panic!("closed ({c:?}) while waiting for a frame"),
        }
    }

    pub async fn connect(&mut self) -> Frame {
        self.send(
            Frame::new(Command::Connect)
                .header("accept-version", "1.0,1.1,1.2")
                .header("host", "localhost"),
        )
        .await;
        let f = self.recv().await;
        assert_eq!(f.command, Command::Connected, "{f:?}");
        f
    }

    pub async fn subscribe(&mut self, destination: &str, id: &str) {
        self.send(
            Frame::new(Command::Subscribe)
                .header("destination", destination.to_owned())
                .header("id", id.to_owned())
                .header("receipt", format!("sub-{id}")),
        )
        .await;
        let r = self.recv().await;
        assert_eq!(r.command, Command::Receipt, "{r:?}");
    }
}

/// A minimal HTTP/1.1 request; returns (status, headers+body text).
pub async fn http_get(addr: SocketAddr, path: &str, extra: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The value of an unlabelled or labelled sample in Prometheus text.
pub fn metric(text: &str, sample: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Polls `/metrics` until `sample` reads `want` (bounded by [`WAIT`]); returns the last text.
pub async fn wait_for_metric(addr: SocketAddr, sample: &str, want: u64) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, text) = http_get(addr, "/metrics", "").await;
        if metric(&text, sample) == Some(want) || tokio::time::Instant::now() >= deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
