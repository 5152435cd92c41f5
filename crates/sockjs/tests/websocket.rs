//! sockjs-protocol: WebsocketHttpErrors, WebsocketHybi10 (hixie-76 is not supported: browsers
//! no longer speak it), RawWebsocket.

mod common;
use common::*;

use switchboard_ws::{CloseCode, Message, StreamConfig, WebSocketStream};
use tokio::net::TcpStream;

type Ws = WebSocketStream<TcpStream>;

async fn connect(addr: std::net::SocketAddr, path: &str) -> Ws {
    let url = format!("ws://{addr}{path}");
    within(switchboard_ws::connect_url(
        &url,
        StreamConfig::default(),
        None,
    ))
    .await
    .unwrap()
    .0
}

async fn recv_text(ws: &mut Ws) -> String {
    loop {
        match within(ws.recv()).await {
            Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Reads until the close handshake ends; returns the server's close code and reason.
async fn recv_close(ws: &mut Ws) -> Option<(u16, String)> {
    let mut close = None;
    loop {
        match within(ws.recv()).await {
            Some(Ok(Message::Close(c))) => {
                close = c.map(|c| (c.code.0, c.reason.as_str().to_owned()))
            }
            Some(Ok(Message::Text(t))) => panic!("unexpected text {t:?}"),
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return close,
        }
    }
}

#[tokio::test]
async fn http_errors() {
    let a = suite_server().await;
    let r = get(a, "/echo/0/0/websocket").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().contains("Not a valid websocket request"));
    let r = request(
        a,
        "GET",
        "/echo/0/0/websocket",
        &[("Upgrade", "WebSocket"), ("Connection", "close")],
        b"",
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().contains("Not a valid websocket request"));
    for h in [
        &[("Upgrade", "WebSocket"), ("Connection", "Upgrade")][..],
        &[],
    ] {
        let r = request(a, "POST", "/echo/0/0/websocket", h, b"").await;
        assert_405(&r);
        assert_eq!(r.get("allow").as_deref(), Some("GET"));
    }
}

#[tokio::test]
async fn transport() {
    let a = suite_server().await;
    let mut ws = connect(a, &format!("/echo{}/websocket", session())).await;
    assert_eq!(recv_text(&mut ws).await, "o");
    ws.send(Message::text("[\"a\"]")).await.unwrap();
    assert_eq!(recv_text(&mut ws).await, "a[\"a\"]");
    // A single JSON string is accepted too.
    ws.send(Message::text("\"b\"")).await.unwrap();
    assert_eq!(recv_text(&mut ws).await, "a[\"b\"]");
    ws.close(CloseCode::NORMAL, "").await.unwrap();
}

#[tokio::test]
async fn close() {
    let a = suite_server().await;
    let mut ws = connect(a, &format!("/close{}/websocket", session())).await;
    assert_eq!(recv_text(&mut ws).await, "o");
    assert_eq!(recv_text(&mut ws).await, "c[3000,\"Go away!\"]");
    assert_eq!(recv_close(&mut ws).await, Some((3000, "Go away!".into())));
}

#[tokio::test]
async fn headers_sanity() {
    let a = suite_server().await;
    let mut c = Conn::open(a).await;
    c.send(
        "GET",
        &format!("/echo{}/websocket", session()),
        "1.1",
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Origin", "http://asd"),
            ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
        ],
        b"",
    )
    .await;
    let h = c.head().await;
    assert_eq!(h.status, 101);
    assert_eq!(
        h.get("sec-websocket-accept").as_deref(),
        Some("HSmrc0sMlYUkAGmm5OPpG2HaGWk=")
    );
    assert_eq!(h.get("connection").unwrap().to_lowercase(), "upgrade");
    assert_eq!(h.get("upgrade").unwrap().to_lowercase(), "websocket");
    assert!(h.get("content-length").is_none());
}

#[tokio::test]
async fn empty_frames_are_ignored() {
    let a = suite_server().await;
    let mut ws = connect(a, &format!("/echo{}/websocket", session())).await;
    assert_eq!(recv_text(&mut ws).await, "o");
    ws.send(Message::text("")).await.unwrap();
    ws.send(Message::text("[]")).await.unwrap();
    ws.send(Message::text("[\"a\"]")).await.unwrap();
    assert_eq!(recv_text(&mut ws).await, "a[\"a\"]");
}

#[tokio::test]
async fn reuse_session_id() {
    let a = suite_server().await;
    let path = format!("/echo{}/websocket", session());
    let mut ws1 = connect(a, &path).await;
    assert_eq!(recv_text(&mut ws1).await, "o");
    let mut ws2 = connect(a, &path).await;
    assert_eq!(recv_text(&mut ws2).await, "o");
    ws1.send(Message::text("[\"a\"]")).await.unwrap();
    assert_eq!(recv_text(&mut ws1).await, "a[\"a\"]");
    ws2.send(Message::text("[\"b\"]")).await.unwrap();
    assert_eq!(recv_text(&mut ws2).await, "a[\"b\"]");
    ws1.close(CloseCode::NORMAL, "").await.unwrap();
    ws2.close(CloseCode::NORMAL, "").await.unwrap();
    let mut ws1 = connect(a, &path).await;
    assert_eq!(recv_text(&mut ws1).await, "o");
    ws1.send(Message::text("[\"a\"]")).await.unwrap();
    assert_eq!(recv_text(&mut ws1).await, "a[\"a\"]");
}

#[tokio::test]
async fn broken_json_closes_with_3000() {
    let a = suite_server().await;
    let mut ws = connect(a, &format!("/echo{}/websocket", session())).await;
    assert_eq!(recv_text(&mut ws).await, "o");
    ws.send(Message::text("[\"a")).await.unwrap();
    assert_eq!(
        recv_close(&mut ws).await,
        Some((3000, "Broken framing.".into()))
    );
}

#[tokio::test]
async fn disabled_websocket_is_404() {
    let a = suite_server().await;
    let r = request(
        a,
        "GET",
        &format!("/disabled_websocket_echo{}/websocket", session()),
        &[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        get(a, "/disabled_websocket_echo/websocket").await.status(),
        404
    );
}

#[tokio::test]
async fn raw_websocket_transport() {
    let a = suite_server().await;
    let mut ws = connect(a, "/echo/websocket").await;
    ws.send(Message::text("Hello world!\u{ffff}"))
        .await
        .unwrap();
    assert_eq!(recv_text(&mut ws).await, "Hello world!\u{ffff}");
    ws.close(CloseCode::NORMAL, "").await.unwrap();
}

#[tokio::test]
async fn raw_websocket_close() {
    let a = suite_server().await;
    let mut ws = connect(a, "/close/websocket").await;
    assert_eq!(recv_close(&mut ws).await, Some((3000, "Go away!".into())));
}

#[tokio::test]
async fn websocket_message_size_limit_closes_1009() {
    let ep = switchboard_sockjs::SockJs::new(
        switchboard_sockjs::Config::default()
            .prefix("/s")
            .max_message_size(1000),
        echo,
    );
    let a = serve(vec![ep]).await;
    let mut ws = connect(a, &format!("/s{}/websocket", session())).await;
    assert_eq!(recv_text(&mut ws).await, "o");
    ws.send(Message::text(format!("[\"{}\"]", "x".repeat(100_000))))
        .await
        .unwrap();
    let close = recv_close(&mut ws).await;
    assert_eq!(close.map(|c| c.0), Some(1009));
}

#[tokio::test]
async fn websocket_heartbeat_when_idle() {
    let ep = switchboard_sockjs::SockJs::new(
        switchboard_sockjs::Config::default()
            .prefix("/s")
            .heartbeat(std::time::Duration::from_millis(50)),
        echo,
    );
    let a = serve(vec![ep]).await;
    let mut ws = connect(a, &format!("/s{}/websocket", session())).await;
    assert_eq!(recv_text(&mut ws).await, "o");
    assert_eq!(recv_text(&mut ws).await, "h");
    assert_eq!(recv_text(&mut ws).await, "h");
}

#[tokio::test]
async fn close_all_reaches_websocket_sessions() {
    let ep =
        switchboard_sockjs::SockJs::new(switchboard_sockjs::Config::default().prefix("/s"), echo);
    let a = serve(vec![ep.clone()]).await;
    let mut ws = connect(a, &format!("/s{}/websocket", session())).await;
    assert_eq!(recv_text(&mut ws).await, "o");
    ep.close_all(1001, "Server shutting down");
    assert_eq!(recv_text(&mut ws).await, "c[1001,\"Server shutting down\"]");
    assert_eq!(
        recv_close(&mut ws).await,
        Some((1001, "Server shutting down".into()))
    );
    // The session is gone from the registry once its socket closed.
    for _ in 0..200 {
        if ep.metrics().sessions == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(ep.metrics().sessions, 0);
    assert_eq!(ep.metrics().live_session_objects, 0);
}
