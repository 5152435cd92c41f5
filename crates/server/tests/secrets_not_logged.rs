//! With every log line of the server's crates captured at trace level, a session authenticated
//! by passcode, by a token in the CONNECT passcode, by `access_token` on a WebSocket URL and on
//! a SockJS URL, and refused for a bad token, leaves neither passcode nor token nor the query
//! string that carried it in the logs; the start-up warning names a plain-text login. (Its own
//! test binary: the log subscriber is process-wide.)

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use switchboard_server::Config;
use switchboard_stomp::{Command, Frame};
use switchboard_ws::handshake::ClientRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "log-test-secret-of-at-least-32-bytes!!";
const PLAIN: &str = "plain-text-passcode-7f3a";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn token(sub: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": now + 600}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("response in time")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn passcodes_tokens_and_query_strings_are_never_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let mut config = Config::from_toml(&format!(
        "[auth.jwt]\nsecret = \"{SECRET}\"\n[[users]]\nlogin = \"plainuser\"\npasscode = \"{PLAIN}\"\n"
    ))
    .unwrap();
    config.validate().unwrap();
    config.listeners = test_config().listeners;
    let server = start(config).await;

    // TCP: passcode, then a token as passcode.
    let mut c = StompClient::tcp(server.stomp()).await;
    c.send(
        Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "x")
            .header("login", "plainuser")
            .header("passcode", PLAIN),
    )
    .await;
    assert_eq!(c.recv().await.command, Command::Connected);
    let t1 = token("tcp-user");
    let mut c = StompClient::tcp(server.stomp()).await;
    c.send(
        Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "x")
            .header("login", "jwt")
            .header("passcode", t1.clone()),
    )
    .await;
    assert_eq!(c.recv().await.command, Command::Connected);

    // WebSocket: access_token, and a refused token.
    let t2 = token("ws-user");
    for (t, ok) in [(t2.clone(), true), ("bad.bad.bad".to_owned(), false)] {
        let tcp = TcpStream::connect(server.http()).await.unwrap();
        let req = ClientRequest::new(server.http().to_string(), format!("/chat?access_token={t}"))
            .protocols(["v12.stomp"]);
        let (mut ws, _) = ws_connect_with(tcp, req).await.unwrap();
        ws.send(
            Frame::new(Command::Connect)
                .header("accept-version", "1.2")
                .header("host", "x"),
        )
        .await;
        let f = ws.recv().await;
        assert_eq!(f.command == Command::Connected, ok, "{f:?}");
    }

    // SockJS: access_token on the session URL.
    let t3 = token("sockjs-user");
    let open = post(
        server.http(),
        &format!("/chat/000/logs/xhr?access_token={t3}"),
        "",
    )
    .await;
    assert!(open.contains("o\n"), "{open}");
    let frame = serde_json::to_string(&["CONNECT\naccept-version:1.2\nhost:x\n\n\u{0}"]).unwrap();
    post(server.http(), "/chat/000/logs/xhr_send", &frame).await;
    let polled = post(server.http(), "/chat/000/logs/xhr", "").await;
    assert!(polled.contains("CONNECTED"), "{polled}");

    server.shutdown().await;
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("session opened"),
        "trace logging reached the capture"
    );
    assert!(
        logs.contains("plain text") && logs.contains("plainuser"),
        "the plain-text passcode warning names the login: {logs}"
    );
    for secret in [PLAIN, SECRET, &t1, &t2, &t3, "bad.bad.bad", "access_token"] {
        assert!(
            !logs.contains(secret),
            "`{secret}` appears in the logs:\n{logs}"
        );
    }
}
