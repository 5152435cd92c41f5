//! Security and message lifecycle against an in-process server: `[[users]]` argon2 hashes and
//! JWT bearer tokens over TCP (CONNECT passcode), WebSocket (`Authorization: Bearer`,
//! `access_token`) and SockJS (`access_token` on the session URL); token expiry; the per-address
//! back-off; `[[acl]]` denials; `[[queues]]` dead letters; what `/metrics` counts.

mod common;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use switchboard_server::Config;
use switchboard_stomp::{Command, Frame};
use switchboard_ws::handshake::ClientRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "integration-test-secret-of-32-bytes!";

fn token(sub: &str, ttl_s: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": now + ttl_s, "groups": ["staff"]}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Users `alice` (argon2 hash of `wonderland`) and `guest` (plain text), HS256 tokens, and an
/// ACL: `/topic/staff.**` for group staff only, `/topic/secret` denied to everyone.
fn secure_config(extra: &str) -> Config {
    let hash = switchboard_server::hash_password("wonderland").unwrap();
    let toml = format!(
        r#"
        [auth.jwt]
        secret = "{SECRET}"
        groups_claim = "groups"
        leeway_s = 0
        [[users]]
        login = "alice"
        passcode = "{hash}"
        [[users]]
        login = "guest"
        passcode = "guest"
        [[acl]]
        who = "group:staff"
        destinations = ["/topic/staff.**"]
        actions = ["subscribe", "send"]
        allow = true
        [[acl]]
        who = "anyone"
        destinations = ["/topic/staff.**", "/topic/secret"]
        actions = ["subscribe", "send"]
        allow = false
        {extra}
        "#
    );
    let mut c = Config::from_toml(&toml).unwrap();
    c.validate().unwrap();
    c.listeners = test_config().listeners;
    c
}

fn connect_frame(login: Option<&str>, passcode: Option<&str>) -> Frame {
    let mut f = Frame::new(Command::Connect)
        .header("accept-version", "1.2")
        .header("host", "localhost");
    if let Some(l) = login {
        f = f.header("login", l.to_owned());
    }
    if let Some(p) = passcode {
        f = f.header("passcode", p.to_owned());
    }
    f
}

async fn tcp_connect(addr: SocketAddr, login: Option<&str>, passcode: Option<&str>) -> Frame {
    let mut c = StompClient::tcp(addr).await;
    c.send(connect_frame(login, passcode)).await;
    c.recv().await
}

#[tokio::test]
async fn tcp_hashed_passcodes_and_jwt_passcodes() {
    let server = start(secure_config("")).await;
    let ok = tcp_connect(server.stomp(), Some("alice"), Some("wonderland")).await;
    assert_eq!(ok.command, Command::Connected, "{ok:?}");
    let ok = tcp_connect(server.stomp(), Some("guest"), Some("guest")).await;
    assert_eq!(ok.command, Command::Connected, "{ok:?}");
    let t = token("carol", 600);
    for login in [Some("jwt"), Some(""), None] {
        let ok = tcp_connect(server.stomp(), login, Some(&t)).await;
        assert_eq!(ok.command, Command::Connected, "{login:?}: {ok:?}");
    }
    // Wrong passcode, unknown login, bad token, expired token: one message for all.
    let expired = token("carol", -60);
    for (l, p) in [
        (Some("alice"), "wonderlanD"),
        (Some("bob"), "wonderland"),
        (Some("jwt"), "a.b.c"),
        (Some("jwt"), expired.as_str()),
    ] {
        let e = tcp_connect(server.stomp(), l, Some(p)).await;
        assert_eq!(e.command, Command::Error, "{e:?}");
        assert_eq!(e.get("message"), Some("Access refused"));
    }
    let text = wait_for_metric(server.http(), "switchboard_auth_failures_total", 4).await;
    assert_eq!(
        metric(&text, "switchboard_auth_failures_total"),
        Some(4),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_token_principal_gets_its_groups_and_the_acl_denies_with_a_named_destination() {
    let server = start(secure_config("")).await;
    // carol's token carries group staff: /topic/staff.news is hers.
    let mut carol = StompClient::tcp(server.stomp()).await;
    carol
        .send(connect_frame(Some("jwt"), Some(&token("carol", 600))))
        .await;
    assert_eq!(carol.recv().await.command, Command::Connected);
    carol.subscribe("/topic/staff.news", "0").await;
    // guest has no group: denied, told what and where, disconnected.
    let mut guest = StompClient::tcp(server.stomp()).await;
    guest
        .send(connect_frame(Some("guest"), Some("guest")))
        .await;
    assert_eq!(guest.recv().await.command, Command::Connected);
    guest
        .send(
            Frame::new(Command::Subscribe)
                .header("destination", "/topic/staff.news")
                .header("id", "0"),
        )
        .await;
    let e = guest.recv().await;
    assert_eq!(e.command, Command::Error, "{e:?}");
    let m = e.get("message").unwrap_or_default().to_owned();
    assert!(
        m.contains("subscribe") && m.contains("/topic/staff.news"),
        "{m}"
    );
    guest.expect_closed().await;
    let text = wait_for_metric(
        server.http(),
        "switchboard_errors_total{kind=\"access_denied\"}",
        1,
    )
    .await;
    assert_eq!(
        metric(&text, "switchboard_errors_total{kind=\"access_denied\"}"),
        Some(1),
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_ends_the_session() {
    let server = start(secure_config("")).await;
    let mut c = StompClient::tcp(server.stomp()).await;
    c.send(connect_frame(Some("jwt"), Some(&token("dave", 1))))
        .await;
    assert_eq!(c.recv().await.command, Command::Connected);
    // Within WAIT (10 s) of a 1 s token the broker sends the expiry ERROR.
    let e = c.recv().await;
    assert_eq!(e.command, Command::Error, "{e:?}");
    assert_eq!(e.get("message"), Some("Token expired"));
    c.expect_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_backed_off() {
    let server = start(secure_config(
        "[auth.backoff]\nmax_failures = 2\nwindow_ms = 60000\ndelay_ms = 60000\n",
    ))
    .await;
    for _ in 0..3 {
        let e = tcp_connect(server.stomp(), Some("alice"), Some("nope")).await;
        assert_eq!(e.command, Command::Error);
    }
    // Blocked now: the right passcode is refused, with the same message.
    let e = tcp_connect(server.stomp(), Some("alice"), Some("wonderland")).await;
    assert_eq!(e.command, Command::Error, "{e:?}");
    assert_eq!(e.get("message"), Some("Access refused"));
    let text = wait_for_metric(server.http(), "switchboard_auth_failures_total", 4).await;
    assert_eq!(
        metric(&text, "switchboard_auth_failures_total"),
        Some(4),
        "{text}"
    );
    server.shutdown().await;
}

async fn ws_connect_and_subscribe(req: ClientRequest, addr: SocketAddr) -> Frame {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, _) = ws_connect_with(tcp, req).await.expect("handshake");
    ws.send(connect_frame(None, None)).await;
    let f = ws.recv().await;
    if f.command != Command::Connected {
        return f;
    }
    ws.send(
        Frame::new(Command::Subscribe)
            .header("destination", "/topic/staff.news")
            .header("id", "0")
            .header("receipt", "r"),
    )
    .await;
    ws.recv().await
}

#[tokio::test]
async fn websocket_bearer_header_and_access_token() {
    let server = start(secure_config("")).await;
    let addr = server.http();
    let t = token("erin", 600);
    let req = ClientRequest::new(addr.to_string(), "/chat")
        .protocols(["v12.stomp"])
        .header("Authorization", format!("Bearer {t}"));
    let r = ws_connect_and_subscribe(req, addr).await;
    assert_eq!(r.command, Command::Receipt, "{r:?}");
    let req = ClientRequest::new(addr.to_string(), format!("/chat?access_token={t}"))
        .protocols(["v12.stomp"]);
    let r = ws_connect_and_subscribe(req, addr).await;
    assert_eq!(r.command, Command::Receipt, "{r:?}");
    // No token: refused (authentication is configured); a bad one too.
    let req = ClientRequest::new(addr.to_string(), "/chat").protocols(["v12.stomp"]);
    let r = ws_connect_and_subscribe(req, addr).await;
    assert_eq!(r.command, Command::Error, "{r:?}");
    let req =
        ClientRequest::new(addr.to_string(), "/chat?access_token=x.y.z").protocols(["v12.stomp"]);
    let r = ws_connect_and_subscribe(req, addr).await;
    assert_eq!(r.command, Command::Error, "{r:?}");
    server.shutdown().await;
}

/// One HTTP request with `Connection: close`; the whole response as text.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
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

/// A STOMP frame as a SockJS message array (JSON-escaped).
fn sockjs_send(f: &str) -> String {
    serde_json::to_string(&[f]).unwrap()
}

/// Opens an xhr-polling SockJS session with `query` on the opening URL, sends CONNECT and
/// SUBSCRIBE (with a receipt), and returns every frame text polled until RECEIPT or ERROR.
async fn sockjs_session(addr: SocketAddr, session: &str, query: &str) -> String {
    let base = format!("/chat/000/{session}");
    let open = http(addr, "POST", &format!("{base}/xhr{query}"), "").await;
    assert!(open.contains("\r\n\r\n2\r\no\n"), "{open}");
    let frames = sockjs_send(
        "CONNECT\naccept-version:1.2\nhost:localhost\n\n\u{0}\
         SUBSCRIBE\ndestination:/topic/staff.news\nid:0\nreceipt:r\n\n\u{0}",
    );
    let sent = http(addr, "POST", &format!("{base}/xhr_send"), &frames).await;
    assert!(sent.starts_with("HTTP/1.1 204"), "{sent}");
    let mut all = String::new();
    for _ in 0..10 {
        let r = http(addr, "POST", &format!("{base}/xhr"), "").await;
        all.push_str(&r);
        if all.contains("RECEIPT") || all.contains("ERROR") || r.contains("\r\n\r\nc[") {
            break;
        }
    }
    all
}

#[tokio::test]
async fn sockjs_access_token_on_the_session_url() {
    let server = start(secure_config("")).await;
    let t = token("frank", 600);
    let ok = sockjs_session(server.http(), "s1", &format!("?access_token={t}")).await;
    assert!(ok.contains("CONNECTED") && ok.contains("RECEIPT"), "{ok}");
    let refused = sockjs_session(server.http(), "s2", "").await;
    assert!(
        refused.contains("ERROR") && refused.contains("Access refused"),
        "{refused}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn nacked_past_max_redeliveries_goes_to_the_dead_letter_queue() {
    let mut config = test_config();
    config.queues =
        Config::from_toml("[[queues]]\npattern = \"/queue/work.*\"\nmax_redeliveries = 1\n")
            .unwrap()
            .queues;
    config.validate().unwrap();
    let server = start(config).await;
    let mut c = StompClient::tcp(server.stomp()).await;
    c.connect().await;
    c.send(
        Frame::new(Command::Subscribe)
            .header("destination", "/queue/DLQ.work.x")
            .header("id", "dlq")
            .header("receipt", "r0"),
    )
    .await;
    assert_eq!(c.recv().await.command, Command::Receipt);
    c.send(
        Frame::new(Command::Subscribe)
            .header("destination", "/queue/work.x")
            .header("id", "w")
            .header("ack", "client-individual")
            .header("receipt", "r1"),
    )
    .await;
    assert_eq!(c.recv().await.command, Command::Receipt);
    c.send(send_frame("/queue/work.x", "job")).await;
    let mut redelivered = Vec::new();
    for _ in 0..2 {
        let m = c.recv().await;
        assert_eq!(m.command, Command::Message, "{m:?}");
        assert_eq!(m.get("subscription"), Some("w"));
        redelivered.push(m.get("redelivered").map(str::to_owned));
        c.send(Frame::new(Command::Nack).header("id", m.get("ack").unwrap().to_owned()))
            .await;
    }
    assert_eq!(
        redelivered,
        [Some("false".to_owned()), Some("true".to_owned())]
    );
    let d = c.recv().await;
    assert_eq!(d.command, Command::Message, "{d:?}");
    assert_eq!(d.get("subscription"), Some("dlq"));
    assert_eq!(d.get("original-destination"), Some("/queue/work.x"));
    assert_eq!(d.get("dead-letter-reason"), Some("max-redeliveries"));
    assert_eq!(&d.body[..], b"job");
    let text = wait_for_metric(server.http(), "switchboard_messages_dead_lettered_total", 1).await;
    assert_eq!(
        metric(&text, "switchboard_messages_dead_lettered_total"),
        Some(1),
        "{text}"
    );
    for name in [
        "switchboard_messages_expired_total",
        "switchboard_messages_overflowed_total",
        "switchboard_messages_discarded_total",
    ] {
        assert_eq!(metric(&text, name), Some(0), "{name}: {text}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_second_connect_with_a_fresh_token_keeps_the_session() {
    let server = start(secure_config("")).await;
    let mut c = StompClient::tcp(server.stomp()).await;
    c.send(connect_frame(Some("jwt"), Some(&token("gina", 1))))
        .await;
    assert_eq!(c.recv().await.command, Command::Connected);
    c.send(connect_frame(Some("jwt"), Some(&token("gina", 600))).header("receipt", "refresh"))
        .await;
    let r = c.recv().await;
    assert_eq!(r.command, Command::Receipt, "{r:?}");
    // Past the first token's expiry (1 s, leeway 0) the session still works.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    c.subscribe("/topic/staff.news", "0").await;
    // A refresh naming another principal is refused and ends the session.
    c.send(connect_frame(Some("jwt"), Some(&token("mallory", 600))))
        .await;
    let e = c.recv().await;
    assert_eq!(e.command, Command::Error, "{e:?}");
    c.expect_closed().await;
    server.shutdown().await;
}
