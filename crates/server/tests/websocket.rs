//! STOMP over WebSocket (`/chat`) against an in-process server.

mod common;

use common::*;
use switchboard_stomp::Command;

#[tokio::test]
async fn subprotocol_preference_and_version() {
    let server = start(test_config()).await;
    let (mut c, proto) = ws_connect(
        server.http(),
        "/chat",
        &["v10.stomp", "v11.stomp", "v12.stomp"],
        None,
    )
    .await
    .unwrap();
    assert_eq!(proto.as_deref(), Some("v12.stomp"));
    assert_eq!(c.connect().await.get("version"), Some("1.2"));

    let (mut c, proto) = ws_connect(server.http(), "/chat", &["v11.stomp"], None)
        .await
        .unwrap();
    assert_eq!(proto.as_deref(), Some("v11.stomp"));
    assert_eq!(c.connect().await.get("version"), Some("1.1"));

    let (mut c, proto) = ws_connect(server.http(), "/chat", &[], None).await.unwrap();
    assert_eq!(proto, None);
    assert_eq!(c.connect().await.get("version"), Some("1.2"));
    server.shutdown().await;
}

#[tokio::test]
async fn send_via_app_receive_on_topic_across_transports() {
    let server = start(test_config()).await;
    let (mut ws, _) = ws_connect(server.http(), "/chat", &["v12.stomp"], None)
        .await
        .unwrap();
    ws.connect().await;
    ws.subscribe("/topic/greetings", "sub-0").await;
    let mut tcp = StompClient::tcp(server.stomp()).await;
    tcp.connect().await;
    tcp.subscribe("/topic/greetings", "t").await;

    ws.send(send_frame("/app/greetings", "from the browser"))
        .await;
    let m = ws.recv().await;
    assert_eq!(m.command, Command::Message);
    assert_eq!(m.get("destination"), Some("/topic/greetings"));
    assert_eq!(&m.body[..], b"from the browser");
    assert_eq!(&tcp.recv().await.body[..], b"from the browser");
    server.shutdown().await;
}

#[tokio::test]
async fn several_frames_per_message_and_frames_split_across_messages() {
    let server = start(test_config()).await;
    let (mut ws, _) = ws_connect(server.http(), "/chat", &["v12.stomp"], None)
        .await
        .unwrap();
    ws.connect().await;
    ws.subscribe("/queue/q", "s").await;
    // Three frames in one text message.
    let mut joined = Vec::new();
    for body in ["a", "b", "c"] {
        joined.extend_from_slice(&encode(&send_frame("/queue/q", body)));
    }
    ws.send_text(&joined).await;
    for want in ["a", "b", "c"] {
        assert_eq!(&ws.recv().await.body[..], want.as_bytes());
    }
    // One frame split over three messages, the last one binary.
    let frame = encode(&send_frame("/queue/q", "split-up"));
    let (x, rest) = frame.split_at(5);
    let (y, z) = rest.split_at(rest.len() - 3);
    ws.send_text(x).await;
    ws.send_text(y).await;
    ws.send_binary(z).await;
    assert_eq!(&ws.recv().await.body[..], b"split-up");
    server.shutdown().await;
}

#[tokio::test]
async fn several_endpoint_paths() {
    let mut config = test_config();
    config.websocket.paths = vec!["/chat".into(), "/stomp".into()];
    let server = start(config).await;
    let (mut c, _) = ws_connect(server.http(), "/stomp", &["v12.stomp"], None)
        .await
        .unwrap();
    c.connect().await;
    let (status, _) = http_get(server.http(), "/elsewhere", "").await;
    assert_eq!(status, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn foreign_origin_is_rejected_with_403() {
    let server = start(test_config()).await;
    let err = ws_connect(
        server.http(),
        "/chat",
        &["v12.stomp"],
        Some("https://evil.example"),
    )
    .await
    .err()
    .expect("rejected");
    assert!(err.to_string().contains("403"), "{err}");
    // Loopback and same-origin pages are fine.
    ws_connect(
        server.http(),
        "/chat",
        &["v12.stomp"],
        Some("http://localhost:3000"),
    )
    .await
    .unwrap();
    let same = format!("http://{}", server.http());
    ws_connect(server.http(), "/chat", &["v12.stomp"], Some(&same))
        .await
        .unwrap();
    let (_, metrics) = http_get(server.http(), "/metrics", "").await;
    assert_eq!(
        metric(&metrics, "switchboard_ws_origin_rejected_total"),
        Some(1)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn configured_origins() {
    let mut config = test_config();
    config.websocket.allowed_origins = vec!["https://app.example".into()];
    let server = start(config).await;
    ws_connect(server.http(), "/chat", &[], Some("https://app.example"))
        .await
        .unwrap();
    assert!(
        ws_connect(server.http(), "/chat", &[], Some("http://localhost:1"))
            .await
            .is_err()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_stomp_over_websocket_gets_error_then_close() {
    let server = start(test_config()).await;
    let (mut ws, _) = ws_connect(server.http(), "/chat", &["v12.stomp"], None)
        .await
        .unwrap();
    ws.send_text(b"HELLO\n\n\0").await;
    match ws.next().await {
        WsEvent::Frame(f) => assert_eq!(f.command, Command::Error),
        other => panic!("expected ERROR, got {other:?}"),
    }
    match ws.next().await {
        WsEvent::Close(code) => assert_eq!(code, Some(1000)),
        other => panic!("expected a close, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn plain_http_endpoints() {
    let server = start(test_config()).await;
    let (status, body) = http_get(server.http(), "/healthz", "").await;
    assert_eq!(status, 200);
    assert!(body.ends_with("ok\n"), "{body}");
    let mut c = StompClient::tcp(server.stomp()).await;
    c.connect().await;
    c.subscribe("/topic/t", "s").await;
    c.send(send_frame("/topic/t", "x")).await;
    c.recv().await;
    let (status, text) = http_get(server.http(), "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE switchboard_sessions gauge"), "{text}");
    assert_eq!(metric(&text, "switchboard_sessions"), Some(1), "{text}");
    assert_eq!(
        metric(&text, "switchboard_messages_in_total{kind=\"topic\"}"),
        Some(1)
    );
    assert_eq!(
        metric(&text, "switchboard_connections_open{transport=\"tcp\"}"),
        Some(1)
    );
    // A plain GET on the endpoint path is SockJS's greeting (tests/sockjs.rs has more).
    let (status, text) = http_get(server.http(), "/chat", "").await;
    assert_eq!(status, 200);
    assert!(text.ends_with("Welcome to SockJS!\n"), "{text}");
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_websockets_with_1001_and_stomp_with_error() {
    let server = start(test_config()).await;
    let (mut ws, _) = ws_connect(server.http(), "/chat", &["v12.stomp"], None)
        .await
        .unwrap();
    ws.connect().await;
    ws.subscribe("/topic/t", "s").await;
    let mut tcp = StompClient::tcp(server.stomp()).await;
    tcp.connect().await;
    // Something already queued is still delivered before the ERROR.
    tcp.send(send_frame("/topic/t", "last words")).await;
    assert_eq!(&ws.recv().await.body[..], b"last words");

    server.stop.shutdown();
    let e = tcp.recv().await;
    assert_eq!(e.command, Command::Error);
    assert!(
        e.get("message")
            .is_some_and(|m| m.contains("shutting down")),
        "{e:?}"
    );
    tcp.expect_closed().await;

    let e = ws.recv().await;
    assert_eq!(e.command, Command::Error);
    match ws.next().await {
        WsEvent::Close(code) => assert_eq!(code, Some(1001)),
        other => panic!("expected close 1001, got {other:?}"),
    }
    tokio::time::timeout(WAIT, server.task)
        .await
        .expect("run returns")
        .unwrap();
}

/// A WebSocket subscriber that never reads is dropped as a slow consumer; a TCP subscriber of
/// the same topic gets every message.
#[tokio::test]
async fn websocket_client_that_never_reads_is_dropped() {
    let mut config = test_config();
    config.limits.outbound_queue_frames = 16;
    config.limits.outbound_queue_bytes = 256 * 1024;
    config.limits.max_frame_size = 64 * 1024;
    let server = start(config).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let tcp = socket.connect(server.http()).await.unwrap();
    let (mut lazy, _) = ws_connect_over(tcp, server.http(), "/chat", &["v12.stomp"], None)
        .await
        .unwrap();
    lazy.connect().await;
    lazy.subscribe("/topic/firehose", "lazy").await;
    let mut reader = StompClient::tcp(server.stomp()).await;
    reader.connect().await;
    reader.subscribe("/topic/firehose", "reader").await;
    let mut publisher = StompClient::tcp(server.stomp()).await;
    publisher.connect().await;
    let body = bytes::Bytes::from(vec![b'x'; 64 * 1024 - 64]);
    for i in 0..512 {
        publisher
            .send(
                switchboard_stomp::Frame::new(Command::Send)
                    .header("destination", "/topic/firehose")
                    .body(body.clone()),
            )
            .await;
        assert_eq!(reader.recv().await.command, Command::Message, "message {i}");
    }
    let sample = "switchboard_errors_total{kind=\"slow_consumer\"}";
    let metrics = wait_for_metric(server.http(), sample, 1).await;
    assert_eq!(metric(&metrics, sample), Some(1), "{metrics}");
    server.shutdown().await;
}

#[tokio::test]
async fn permessage_deflate_when_enabled() {
    use switchboard_ws::DeflateConfig;
    use switchboard_ws::handshake::ClientRequest;
    let offer = |addr: std::net::SocketAddr| {
        ClientRequest::new(addr.to_string(), "/chat")
            .protocols(["v12.stomp"])
            .deflate(DeflateConfig::default())
    };
    // Off by default: the offer is declined, the connection works uncompressed.
    let server = start(test_config()).await;
    let tcp = tokio::net::TcpStream::connect(server.http()).await.unwrap();
    let (mut c, accepted) = ws_handshake(tcp, offer(server.http())).await.unwrap();
    assert_eq!(accepted.deflate, None);
    c.connect().await;
    server.shutdown().await;

    let mut config = test_config();
    config.websocket.permessage_deflate = true;
    let server = start(config).await;
    let tcp = tokio::net::TcpStream::connect(server.http()).await.unwrap();
    let (mut c, accepted) = ws_handshake(tcp, offer(server.http())).await.unwrap();
    assert!(accepted.deflate.is_some(), "permessage-deflate negotiated");
    c.connect().await;
    c.subscribe("/topic/z", "z").await;
    let body: &'static str = "compressible compressible compressible compressible compressible";
    c.send(send_frame("/topic/z", body)).await;
    assert_eq!(&c.recv().await.body[..], body.as_bytes());
    server.shutdown().await;
}

#[tokio::test]
async fn http_over_the_connection_limit_gets_503_then_the_slot_comes_back() {
    let mut config = test_config();
    config.limits.max_connections = 1;
    let server = start(config).await;
    let (ws, _) = ws_connect(server.http(), "/chat", &["v12.stomp"], None)
        .await
        .expect("the first connection fits");
    // A WebSocket handshake over the limit is answered, not just cut off.
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let (status, text) = http_get(server.http(), "/chat", upgrade).await;
    assert_eq!(status, 503, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    assert!(text.ends_with("try again later.\n"), "{text}");
    drop(ws);
    // The slot comes back once the WebSocket is gone (bounded wait).
    let mut status = 0;
    for _ in 0..100 {
        status = http_get(server.http(), "/healthz", "").await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
    server.shutdown().await;
}
