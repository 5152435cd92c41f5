//! The reference chat app (`/app/chat`) over TCP against an in-process server.

mod common;

use common::*;
use switchboard_stomp::{Command, Frame};

/// The SEND of the Spring chat this project was designed from, byte for byte.
const SPRING_SEND: &[u8] =
    "SEND\ndestination:/app/chat\ncontent-length:30\n\n{\"from\":\"hi\",\"text\":\"안녕?\"}\0"
        .as_bytes();

/// The `HH:MM` of a chat body, after checking everything else in it.
fn chat_time<'a>(body: &'a str, from: &str, text: &str) -> &'a str {
    let prefix = format!(r#"{{"from":"{from}","text":"{text}","time":""#);
    let time = body
        .strip_prefix(&prefix)
        .and_then(|t| t.strip_suffix("\"}"))
        .unwrap_or_else(|| panic!("not a chat message: {body}"));
    let (h, m) = time.split_once(':').expect("HH:MM");
    assert!(h.len() == 2 && h.parse::<u8>().unwrap() < 24, "{time}");
    assert!(m.len() == 2 && m.parse::<u8>().unwrap() < 60, "{time}");
    time
}

#[tokio::test]
async fn spring_chat_frames_byte_for_byte() {
    let server = start(test_config()).await;
    let mut sub = StompClient::tcp(server.stomp()).await;
    sub.connect().await;
    sub.subscribe("/topic/messages", "s").await;
    let mut sender = StompClient::tcp(server.stomp()).await;
    sender.connect().await;
    sender.send_raw(SPRING_SEND).await;
    let m = sub.recv().await;
    assert_eq!(m.command, Command::Message);
    assert_eq!(m.get("destination"), Some("/topic/messages"));
    assert_eq!(m.get("content-type"), Some("application/json"));
    let body = std::str::from_utf8(&m.body).unwrap();
    let time = chat_time(body, "hi", "안녕?");
    assert_eq!(body.len(), 30 + r#","time":"21:00""#.len());
    assert_eq!(
        m.get("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(time.len(), 5);
    server.shutdown().await;
}

#[tokio::test]
async fn json_escapes_come_out_as_utf8_and_extra_fields_are_dropped() {
    let server = start(test_config()).await;
    let mut c = StompClient::tcp(server.stomp()).await;
    c.connect().await;
    c.subscribe("/topic/messages", "s").await;
    c.send(send_frame(
        "/app/chat",
        r#"{"room":7,"text":"caf\u00e9 \"ok\"","from":"\uc548","time":"forged"}"#,
    ))
    .await;
    let m = c.recv().await;
    let body = std::str::from_utf8(&m.body).unwrap();
    chat_time(body, "안", r#"café \"ok\""#);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_bodies_get_a_message_on_user_queue_errors_and_the_connection_stays() {
    let server = start(test_config()).await;
    let mut c = StompClient::tcp(server.stomp()).await;
    c.connect().await;
    c.subscribe("/user/queue/errors", "errors").await;
    c.subscribe("/topic/messages", "chat").await;
    let mut other = StompClient::tcp(server.stomp()).await;
    other.connect().await;
    other.subscribe("/user/queue/errors", "theirs").await;
    let cases = [
        ("not json", "the body is not JSON"),
        (
            "[\"hi\",\"there\"]",
            "the body is JSON an array, not an object",
        ),
        ("{\"from\":\"ann\"}", "`text` is missing"),
        (
            "{\"from\":\"ann\",\"text\":1}",
            "`text` is a number, not a string",
        ),
    ];
    for (body, why) in cases {
        c.send(send_frame("/app/chat", body)).await;
        let e = c.recv().await;
        assert_eq!(e.command, Command::Message, "{body}: {e:?}");
        assert_eq!(e.get("subscription"), Some("errors"));
        assert_eq!(e.get("content-type"), Some("text/plain;charset=utf-8"));
        let text = std::str::from_utf8(&e.body).unwrap();
        assert!(text.starts_with("/app/chat: "), "{text}");
        assert!(text.contains(why), "{body}: {text}");
    }
    // Still connected: a good message goes through, and the errors went to the sender only.
    c.send(send_frame("/app/chat", r#"{"from":"ann","text":"ok"}"#))
        .await;
    let m = c.recv().await;
    assert_eq!(m.get("subscription"), Some("chat"));
    chat_time(std::str::from_utf8(&m.body).unwrap(), "ann", "ok");
    other
        .send(send_frame("/topic/sync", "").header("receipt", "sync"))
        .await;
    assert_eq!(other.recv().await.command, Command::Receipt);
    server.shutdown().await;
}

#[tokio::test]
async fn other_app_destinations_keep_the_mapping() {
    let server = start(test_config()).await;
    let mut c = StompClient::tcp(server.stomp()).await;
    c.connect().await;
    c.subscribe("/topic/greetings", "g").await;
    c.subscribe("/topic/chat/room1", "r").await;
    c.send(send_frame("/app/greetings", "hello")).await;
    let m = c.recv().await;
    assert_eq!(m.get("destination"), Some("/topic/greetings"));
    assert_eq!(&m.body[..], b"hello");
    // Below /app/chat is not the chat app: the mapping applies, the body is untouched.
    c.send(send_frame("/app/chat/room1", "not json")).await;
    let m = c.recv().await;
    assert_eq!(m.get("destination"), Some("/topic/chat/room1"));
    assert_eq!(&m.body[..], b"not json");
    server.shutdown().await;
}

#[tokio::test]
async fn chat_off_maps_app_chat_like_any_other() {
    let mut config = test_config();
    config.chat.enabled = false;
    let server = start(config).await;
    let mut c = StompClient::tcp(server.stomp()).await;
    c.connect().await;
    c.subscribe("/topic/chat", "c").await;
    c.send(
        Frame::new(Command::Send)
            .header("destination", "/app/chat")
            .body("plain"),
    )
    .await;
    let m = c.recv().await;
    assert_eq!(m.get("destination"), Some("/topic/chat"));
    assert_eq!(&m.body[..], b"plain");
    let (status, _) = http_get(server.http(), "/", "").await;
    assert_eq!(status, 404, "no demo page without the chat app");
    server.shutdown().await;
}
