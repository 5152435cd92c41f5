//! The tokio adapter end to end over in-memory and TCP transports.
#![cfg(feature = "tokio")]

use bytes::Bytes;
use std::time::Duration;
use switchboard_ws::handshake::ClientRequest;
use switchboard_ws::{
    CloseCode, DeflateConfig, Error, Message, ServerConfig, StreamConfig, accept, connect,
};

async fn pair(
    deflate: bool,
) -> (
    switchboard_ws::WebSocketStream<tokio::io::DuplexStream>,
    switchboard_ws::WebSocketStream<tokio::io::DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(64 << 10);
    let mut server = ServerConfig::default().protocols(["v2.stomp", "v1.stomp"]);
    if deflate {
        server = server.deflate(DeflateConfig::default());
    }
    let srv =
        tokio::spawn(async move { accept(a, &server, StreamConfig::default()).await.unwrap() });
    let mut req = ClientRequest::new("localhost", "/ws").protocols(["v1.stomp", "v2.stomp"]);
    if deflate {
        req = req.deflate(DeflateConfig::default());
    }
    let (client, acc) = connect(b, &req, StreamConfig::default()).await.unwrap();
    assert_eq!(
        acc.protocol.as_deref(),
        Some("v2.stomp"),
        "server preference wins"
    );
    assert_eq!(acc.deflate.is_some(), deflate);
    let (server, req) = srv.await.unwrap();
    assert_eq!(req.path, "/ws");
    assert_eq!(server.protocol(), Some("v2.stomp"));
    (server, client)
}

#[tokio::test]
async fn echo_and_close_both_ways() {
    for deflate in [false, true] {
        let (mut server, mut client) = pair(deflate).await;
        let echo = tokio::spawn(async move {
            while let Some(m) = server.recv().await {
                if let m @ (Message::Text(_) | Message::Binary(_)) = m.unwrap() {
                    server.send(m).await.unwrap();
                }
            }
        });
        let big = Bytes::from(vec![7u8; 300_000]);
        client.send(Message::text("hello")).await.unwrap();
        client.send(Message::Binary(big.clone())).await.unwrap();
        assert_eq!(
            client.recv().await.unwrap().unwrap(),
            Message::text("hello")
        );
        assert_eq!(client.recv().await.unwrap().unwrap(), Message::Binary(big));
        client
            .send(Message::Ping(Bytes::from_static(b"p")))
            .await
            .unwrap();
        assert_eq!(
            client.recv().await.unwrap().unwrap(),
            Message::Pong(Bytes::from_static(b"p"))
        );
        client.close(CloseCode::NORMAL, "bye").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), echo)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn split_halves_work_concurrently() {
    let (server, mut client) = pair(false).await;
    let (mut rd, mut wr) = server.split();
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while let Some(m) = rd.recv().await {
            if m.unwrap().is_data() {
                n += 1;
            }
        }
        n
    });
    let writer = tokio::spawn(async move {
        for i in 0..100 {
            wr.send(Message::text(format!("m{i}"))).await.unwrap();
        }
        wr
    });
    for i in 0..50 {
        client
            .send(Message::binary(vec![i as u8; 10]))
            .await
            .unwrap();
    }
    for i in 0..100 {
        assert_eq!(
            client.recv().await.unwrap().unwrap(),
            Message::text(format!("m{i}"))
        );
    }
    let _wr = writer.await.unwrap();
    client.close(CloseCode::NORMAL, "").await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .unwrap()
            .unwrap(),
        50
    );
}

#[tokio::test]
async fn protocol_error_sends_close_code() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (a, mut b) = tokio::io::duplex(4096);
    let srv = tokio::spawn(async move {
        let (mut ws, _) = accept(a, &ServerConfig::default(), StreamConfig::default())
            .await
            .unwrap();
        ws.recv().await
    });
    let req = ClientRequest::new("h", "/");
    b.write_all(&req.encode()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = b.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 101"));
    // unmasked frame from a client: protocol error → close 1002
    b.write_all(&[0x81, 0x01, b'a']).await.unwrap();
    let r = srv.await.unwrap();
    assert!(matches!(r, Some(Err(Error::UnmaskedFrame))));
    let n = b.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], &[0x88, 0x02, 0x03, 0xea]);
}

#[tokio::test]
async fn bad_handshakes_get_http_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cases: &[(&[u8], &str)] = &[
        (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", "HTTP/1.1 426"),
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n", "HTTP/1.1 400"),
    ];
    for (req, want) in cases {
        let (a, mut b) = tokio::io::duplex(4096);
        let srv = tokio::spawn(async move {
            accept(a, &ServerConfig::default(), StreamConfig::default())
                .await
                .is_err()
        });
        b.write_all(req).await.unwrap();
        let mut out = Vec::new();
        b.read_to_end(&mut out).await.unwrap();
        assert!(
            String::from_utf8_lossy(&out).starts_with(want),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert!(srv.await.unwrap());
    }
}

#[tokio::test]
async fn idle_timeout_fails_the_connection() {
    let (server, _client) = pair(false).await;
    drop(server);
    let (a, b) = tokio::io::duplex(4096);
    let cfg = StreamConfig::default().idle_timeout(Some(Duration::from_millis(50)));
    let srv = tokio::spawn(async move {
        let (mut ws, _) = accept(a, &ServerConfig::default(), cfg).await.unwrap();
        ws.recv().await
    });
    let (_client, _) = connect(b, &ClientRequest::new("h", "/"), StreamConfig::default())
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), srv)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(r, Some(Err(Error::Timeout("idle")))));
}

#[tokio::test]
async fn send_waits_when_the_peer_does_not_read() {
    let (a, b) = tokio::io::duplex(1024);
    let cfg = StreamConfig::default().max_send_buffer(8 << 10);
    let srv =
        tokio::spawn(async move { accept(a, &ServerConfig::default(), cfg).await.unwrap().0 });
    let (mut client, _) = connect(b, &ClientRequest::new("h", "/"), StreamConfig::default())
        .await
        .unwrap();
    let mut server = srv.await.unwrap();
    let msg = Message::binary(vec![1u8; 1000]);
    let mut sent = 0;
    // The peer reads nothing: feeding must stall once the bound is reached.
    while let Ok(r) =
        tokio::time::timeout(Duration::from_millis(100), server.feed(msg.clone())).await
    {
        r.unwrap();
        sent += 1;
        assert!(sent < 1000, "feed never waited");
    }
    assert!(server.connection().queued_bytes() <= (8 << 10) + 1100);
    // The peer starts reading: everything arrives.
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while let Some(m) = client.recv().await {
            if m.unwrap().is_data() {
                n += 1;
            }
        }
        n
    });
    server.flush().await.unwrap();
    server.close(CloseCode::NORMAL, "").await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .unwrap()
            .unwrap(),
        sent
    );
}

#[tokio::test]
async fn ping_flood_without_reading_pongs_stays_bounded() {
    use tokio::io::AsyncWriteExt;
    let (a, mut b) = tokio::io::duplex(4096);
    let cfg = StreamConfig::default().max_send_buffer(4 << 10);
    let srv = tokio::spawn(async move {
        let (mut ws, _) = accept(a, &ServerConfig::default(), cfg).await.unwrap();
        let mut pings = 0usize;
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), ws.recv()).await {
            if matches!(m, Ok(Message::Ping(_))) {
                pings += 1;
            }
            assert!(ws.connection().queued_bytes() <= (4 << 10) + 200);
        }
        (pings, ws.connection().queued_bytes())
    });
    let req = ClientRequest::new("h", "/");
    b.write_all(&req.encode()).await.unwrap();
    let mut ping = Vec::new();
    switchboard_ws::encode_frame_into(
        &mut ping,
        true,
        switchboard_ws::Opcode::Ping,
        &[0; 100],
        Some([1, 2, 3, 4]),
    );
    let flood: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 2000)
        .collect();
    // the client never reads, so after the 101 the server's writes block
    let _ = tokio::time::timeout(Duration::from_secs(2), b.write_all(&flood)).await;
    let (pings, queued) = srv.await.unwrap();
    assert!(pings > 0);
    // Pings are still delivered, but unanswered pongs are capped (default 16), so the queue
    // never grows with the flood.
    assert!(queued <= 16 * (2 + 125), "{queued} bytes queued");
}
