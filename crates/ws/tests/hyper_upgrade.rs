//! The hyper 1.x upgrade helper, end to end over loopback TCP.
#![cfg(feature = "hyper")]

use bytes::Bytes;
use http_body_util::Empty;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::time::Duration;
use switchboard_ws::{
    CloseCode, DeflateConfig, Message, ServerConfig, StreamConfig, connect_url, upgrade,
};

async fn handle(
    mut req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Empty<Bytes>>, std::convert::Infallible> {
    let server = ServerConfig::default()
        .protocols(["p"])
        .deflate(DeflateConfig::default());
    match upgrade::upgrade(&mut req, &server, StreamConfig::default()) {
        Ok((resp, ws)) => {
            tokio::spawn(async move {
                let mut ws = ws.await.unwrap();
                while let Some(Ok(m)) = ws.recv().await {
                    if m.is_data() && ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
            Ok(resp)
        }
        Err(e) => Ok(upgrade::error_response(&e)),
    }
}

#[tokio::test]
async fn hyper_upgrade_echo() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service_fn(handle))
                    .with_upgrades()
                    .await;
            });
        }
    });
    let run = async {
        let (mut ws, acc) = connect_url(
            &format!("ws://{addr}/x"),
            StreamConfig::default(),
            Some(DeflateConfig::default()),
        )
        .await
        .unwrap();
        assert!(acc.deflate.is_some());
        ws.send(Message::text("over hyper")).await.unwrap();
        assert_eq!(
            ws.recv().await.unwrap().unwrap(),
            Message::text("over hyper")
        );
        ws.close(CloseCode::NORMAL, "").await.unwrap();

        // a plain GET without upgrade headers gets a 4xx from the helper
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        tcp.read_to_end(&mut out).await.unwrap();
        assert!(
            out.starts_with(b"HTTP/1.1 400"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap();
}
