//! STOMP over TCP against an in-process server on ephemeral ports.

mod common;

use common::*;
use switchboard_stomp::{Command, Frame};

#[tokio::test]
async fn connect_subscribe_send_receive() {
    let server = start(test_config()).await;
    let mut a = StompClient::tcp(server.stomp()).await;
    let connected = a.connect().await;
    assert_eq!(connected.get("version"), Some("1.2"));
    assert!(
        connected
            .get("server")
            .is_some_and(|s| s.starts_with("switchboard/"))
    );
    a.subscribe("/topic/news", "0").await;

    let mut b = StompClient::tcp(server.stomp()).await;
    b.connect().await;
    b.send(
        send_frame("/topic/news", "hello")
            .header("x-user", "kept")
            .header("receipt", "r1"),
    )
    .await;
    let r = b.recv().await;
    assert_eq!(
        (r.command, r.get("receipt-id")),
        (Command::Receipt, Some("r1"))
    );

    let m = a.recv().await;
    assert_eq!(m.command, Command::Message);
    assert_eq!(m.get("destination"), Some("/topic/news"));
    assert_eq!(m.get("subscription"), Some("0"));
    assert_eq!(m.get("x-user"), Some("kept"));
    assert_eq!(&m.body[..], b"hello");
    server.shutdown().await;
}

#[tokio::test]
async fn app_prefix_maps_to_topic() {
    let server = start(test_config()).await;
    let mut a = StompClient::tcp(server.stomp()).await;
    a.connect().await;
    a.subscribe("/topic/room", "s").await;
    a.send(send_frame("/app/room", "via app")).await;
    let m = a.recv().await;
    assert_eq!(m.get("destination"), Some("/topic/room"));
    assert_eq!(&m.body[..], b"via app");
    server.shutdown().await;
}

#[tokio::test]
async fn configured_app_prefix_mapping() {
    let mut config = test_config();
    config.app_destinations = vec![switchboard_server::config::AppDestination {
        prefix: "/app/".into(),
        target: "/queue/".into(),
    }];
    let server = start(config).await;
    let mut a = StompClient::tcp(server.stomp()).await;
    a.connect().await;
    a.subscribe("/queue/jobs", "s").await;
    a.send(send_frame("/app/jobs", "job")).await;
    assert_eq!(a.recv().await.get("destination"), Some("/queue/jobs"));
    server.shutdown().await;
}

#[tokio::test]
async fn frames_split_at_every_byte_and_batched() {
    let server = start(test_config()).await;
    let mut a = StompClient::tcp(server.stomp()).await;
    a.connect().await;
    a.subscribe("/queue/q", "s").await;
    // Three SENDs in one write, then one SEND a byte at a time.
    let mut batch = Vec::new();
    for body in ["one", "two", "three"] {
        batch.extend_from_slice(&encode(&send_frame("/queue/q", body)));
    }
    a.send_raw(&batch).await;
    for want in ["one", "two", "three"] {
        assert_eq!(&a.recv().await.body[..], want.as_bytes());
    }
    let bytes = encode(&send_frame("/queue/q", "dribbled"));
    for b in bytes.iter() {
        a.send_raw(&[*b]).await;
    }
    assert_eq!(&a.recv().await.body[..], b"dribbled");
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_gets_error_then_close() {
    let server = start(test_config()).await;
    let mut c = StompClient::tcp(server.stomp()).await;
    c.send_raw(b"\x16\x03\x01\x02\x00GARBAGE\xff\xfe\n\n\0")
        .await;
    let e = c.recv().await;
    assert_eq!(e.command, Command::Error);
    assert!(e.get("message").is_some());
    c.expect_closed().await;
    // The server is still fine.
    let mut ok = StompClient::tcp(server.stomp()).await;
    ok.connect().await;
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_after_connect_gets_error_then_close() {
    let server = start(test_config()).await;
    let mut c = StompClient::tcp(server.stomp()).await;
    c.connect().await;
    c.send_raw(b"NOTACOMMAND\nfoo:bar\n\n\0").await;
    let e = c.recv().await;
    assert_eq!(e.command, Command::Error);
    assert_eq!(e.get("message"), Some("Bad command"));
    c.expect_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn oversize_frame_gets_error_then_close() {
    let mut config = test_config();
    config.limits.max_frame_size = 1024;
    let server = start(config).await;
    let mut c = StompClient::tcp(server.stomp()).await;
    c.connect().await;
    // Announced too large: rejected before the body arrives.
    c.send_raw(b"SEND\ndestination:/queue/x\ncontent-length:100000\n\n")
        .await;
    let e = c.recv().await;
    assert_eq!(e.command, Command::Error);
    assert_eq!(e.get("message"), Some("Frame body too large"));
    c.expect_closed().await;

    // Not announced: the NUL never comes within the limit.
    let mut c = StompClient::tcp(server.stomp()).await;
    c.connect().await;
    let mut big = b"SEND\ndestination:/queue/x\n\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 4096));
    c.send_raw(&big).await;
    let e = c.recv().await;
    assert_eq!(e.command, Command::Error);
    assert_eq!(e.get("message"), Some("Frame body too large"));
    c.expect_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn missing_header_error_carries_receipt_id() {
    let server = start(test_config()).await;
    let mut c = StompClient::tcp(server.stomp()).await;
    c.connect().await;
    c.send(
        Frame::new(Command::Subscribe)
            .header("id", "1")
            .header("receipt", "77"),
    )
    .await;
    let e = c.recv().await;
    assert_eq!(e.command, Command::Error);
    assert_eq!(e.get("receipt-id"), Some("77"));
    c.expect_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn silent_connection_is_closed_after_connect_timeout() {
    let mut config = test_config();
    config.limits.connect_timeout_ms = 200;
    let server = start(config).await;
    let mut c = StompClient::tcp(server.stomp()).await;
    // Send nothing: the server says why and closes (bounded by WAIT, not timed).
    let e = c.recv().await;
    assert_eq!(e.command, Command::Error);
    c.expect_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn disconnect_receipt_then_close() {
    let server = start(test_config()).await;
    let mut c = StompClient::tcp(server.stomp()).await;
    c.connect().await;
    c.send(Frame::new(Command::Disconnect).header("receipt", "bye"))
        .await;
    let r = c.recv().await;
    assert_eq!(
        (r.command, r.get("receipt-id")),
        (Command::Receipt, Some("bye"))
    );
    c.expect_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn static_users_are_checked() {
    let mut config = test_config();
    config.users = vec![switchboard_server::config::User {
        login: "alice".into(),
        passcode: "secret".into(),
        groups: Vec::new(),
    }];
    let server = start(config).await;
    let mut bad = StompClient::tcp(server.stomp()).await;
    bad.send(
        Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "x")
            .header("login", "alice")
            .header("passcode", "wrong"),
    )
    .await;
    assert_eq!(bad.recv().await.command, Command::Error);
    bad.expect_closed().await;
    let mut good = StompClient::tcp(server.stomp()).await;
    good.send(
        Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "x")
            .header("login", "alice")
            .header("passcode", "secret"),
    )
    .await;
    assert_eq!(good.recv().await.command, Command::Connected);
    server.shutdown().await;
}

/// A subscriber that never reads: its outbound queue stays bounded, the broker drops it as a
/// slow consumer, and a reading subscriber of the same topic gets every message.
#[tokio::test]
async fn client_that_never_reads_is_dropped_and_others_are_unaffected() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let mut config = test_config();
    config.limits.outbound_queue_frames = 16;
    config.limits.outbound_queue_bytes = 256 * 1024;
    config.limits.max_frame_size = 64 * 1024;
    let server = start(config).await;

    // A small receive buffer, so the kernel does not absorb megabytes on the lazy side.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let mut lazy = StompClient::new(socket.connect(server.stomp()).await.unwrap());
    lazy.connect().await;
    lazy.subscribe("/topic/firehose", "lazy").await;
    let mut reader = StompClient::tcp(server.stomp()).await;
    reader.connect().await;
    reader.subscribe("/topic/firehose", "reader").await;
    let mut publisher = StompClient::tcp(server.stomp()).await;
    publisher.connect().await;

    // 32 MiB in total: far more than the socket buffers and the 256 KiB outbound bound. The
    // reader keeps up (lock-step with the publisher); the lazy client reads nothing.
    const N: usize = 512;
    let body = bytes::Bytes::from(vec![b'x'; 64 * 1024 - 64]);
    for i in 0..N {
        publisher
            .send(
                Frame::new(Command::Send)
                    .header("destination", "/topic/firehose")
                    .header("seq", i.to_string())
                    .body(body.clone()),
            )
            .await;
        let m = reader.recv().await;
        assert_eq!(m.command, Command::Message, "message {i}: {m:?}");
        assert_eq!(m.get("seq"), Some(i.to_string().as_str()));
    }

    let sample = "switchboard_errors_total{kind=\"slow_consumer\"}";
    let metrics = wait_for_metric(server.http(), sample, 1).await;
    assert_eq!(metric(&metrics, sample), Some(1), "{metrics}");
    // Once it reads, the lazy client gets what was already on its way (a bounded amount), then
    // the ERROR saying why it was dropped, then the close.
    let mut messages = 0;
    let last = loop {
        let f = lazy.recv().await;
        if f.command != Command::Message {
            break f;
        }
        messages += 1;
        assert!(
            messages < N,
            "the lazy client got everything: nothing was dropped"
        );
    };
    assert_eq!(last.command, Command::Error, "{last:?}");
    assert_eq!(last.get("message"), Some("Slow consumer"), "{last:?}");
    assert!(
        String::from_utf8_lossy(&last.body).contains("does not read fast enough"),
        "{last:?}"
    );
    lazy.expect_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn connection_limit_refuses_extra_connections() {
    let mut config = test_config();
    config.limits.max_connections = 2;
    let server = start(config).await;
    let mut a = StompClient::tcp(server.stomp()).await;
    a.connect().await;
    let mut b = StompClient::tcp(server.stomp()).await;
    b.connect().await;
    let mut c = StompClient::tcp(server.stomp()).await;
    let refused = c.recv().await;
    assert_eq!(refused.command, Command::Error);
    assert_eq!(refused.get("message"), Some("Too many connections"));
    c.expect_closed().await;
    drop(a);
    // The slot comes back once the first connection is gone.
    let mut d = None;
    for _ in 0..100 {
        let mut t = StompClient::tcp(server.stomp()).await;
        t.send(
            Frame::new(Command::Connect)
                .header("accept-version", "1.2")
                .header("host", "x"),
        )
        .await;
        if let Some(f) = t.try_recv().await {
            d = Some(f);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(d.map(|f| f.command), Some(Command::Connected));
    let (_, metrics) = http_get(server.http(), "/metrics", "").await;
    assert!(metric(&metrics, "switchboard_connections_refused_total").unwrap_or(0) >= 1);
    server.shutdown().await;
}
