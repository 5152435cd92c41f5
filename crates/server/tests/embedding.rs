//! The server as a library: application handlers on the broker, publishing from outside.

mod common;

use bytes::Bytes;
use common::*;
use switchboard_server::{Server, broker_builder};
use switchboard_stomp::{Command, Headers};

#[tokio::test]
async fn app_handler_replies_to_the_sender_and_broker_publishes_from_outside() {
    let config = test_config();
    let broker = broker_builder(&config)
        .handler("/app/shout", |msg, ctx| {
            let loud = String::from_utf8_lossy(msg.body).to_uppercase();
            ctx.reply("/queue/shouts", &Headers::new(), Bytes::from(loud))?;
            Ok(())
        })
        .build();
    let server = Server::bind_with_broker(config, broker).await.unwrap();
    let addrs = server.local_addrs();
    let outside = server.broker().clone();
    let stop = server.shutdown_handle();
    let task = tokio::spawn(server.run());
    let running = Running { addrs, stop, task };

    let (mut ws, _) = ws_connect(running.http(), "/chat", &["v12.stomp"], None)
        .await
        .unwrap();
    ws.connect().await;
    ws.subscribe("/user/queue/shouts", "mine").await;
    ws.subscribe("/topic/news", "news").await;
    let mut other = StompClient::tcp(running.stomp()).await;
    other.connect().await;
    other.subscribe("/user/queue/shouts", "theirs").await;

    ws.send(send_frame("/app/shout", "hello")).await;
    let reply = ws.recv().await;
    assert_eq!(reply.command, Command::Message);
    assert_eq!(reply.get("subscription"), Some("mine"));
    assert_eq!(&reply.body[..], b"HELLO");

    outside
        .publish(
            "/topic/news",
            &Headers::new(),
            Bytes::from_static(b"from Rust"),
        )
        .unwrap();
    let news = ws.recv().await;
    assert_eq!(news.get("subscription"), Some("news"));
    assert_eq!(&news.body[..], b"from Rust");

    // The reply went to the sender only (anonymous users are their own session).
    other
        .send(send_frame("/topic/sync", "").header("receipt", "sync"))
        .await;
    assert_eq!(other.recv().await.command, Command::Receipt);
    running.shutdown().await;
}
