//! The reference chat application: a broker handler for `/app/chat`, the server side of the
//! demo page (and of the Spring chat this project was designed from).
//!
//! A SEND to `/app/chat` carries a JSON object `{"from": string, "text": string}` (other members
//! are ignored). The handler adds `"time": "HH:MM"` — the server's clock in **UTC** — and
//! publishes `{"from":...,"text":...,"time":...}` (members in that order, non-ASCII kept as
//! UTF-8) to `/topic/messages` with `content-type:application/json`.
//!
//! A body that is not such an object does not end the connection: the sender gets a
//! `text/plain` MESSAGE saying what is wrong on its user destination `/user/queue/errors`
//! (Spring's convention), and nothing is published.
//!
//! The handler is registered for `/app/chat` only: a SEND to `/app/chat/room` (which the broker
//! routes to the same handler, handlers match by prefix) is published as the
//! `[[app_destinations]]` mappings say, exactly as without the chat app (`/topic/chat/room` by
//! default).

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use switchboard_broker::{AppContext, AppError, AppMessage, BrokerBuilder};
use switchboard_stomp::Headers;

use crate::config::Config;

/// Where clients send chat messages.
pub const CHAT_DESTINATION: &str = "/app/chat";
/// Where chat messages are published.
pub const CHAT_TOPIC: &str = "/topic/messages";
/// The user destination (below `/user`) that gets the sender's errors.
pub const CHAT_ERRORS: &str = "/queue/errors";

/// A chat message as published: members in this order.
#[derive(Serialize)]
struct Stamped<'a> {
    from: &'a str,
    text: &'a str,
    time: &'a str,
}

/// Registers the chat handler on `builder` (what [`crate::broker_builder`] does when
/// `[chat] enabled`).
pub(crate) fn register(builder: BrokerBuilder, config: &Config) -> BrokerBuilder {
    let mappings: Vec<(String, String)> = config
        .app_destinations
        .iter()
        .map(|m| (m.prefix.clone(), m.target.clone()))
        .collect();
    builder.handler(CHAT_DESTINATION, move |msg, ctx| {
        handle(msg, ctx, &mappings, SystemTime::now())
    })
}

fn handle(
    msg: &AppMessage<'_>,
    ctx: &mut AppContext<'_>,
    mappings: &[(String, String)],
    now: SystemTime,
) -> Result<(), AppError> {
    if !msg.path.is_empty() {
        // `/app/chat/...`: not the chat app; route it as the mappings would without it.
        return publish_mapped(msg, ctx, mappings);
    }
    match stamp(msg.body, now) {
        Ok(json) => {
            let mut headers = Headers::new();
            headers.push("content-type", "application/json");
            ctx.publish(CHAT_TOPIC, &headers, Bytes::from(json))?;
        }
        Err(why) => {
            let mut headers = Headers::new();
            headers.push("content-type", "text/plain;charset=utf-8");
            let body = format!(
                "{CHAT_DESTINATION}: {why}; expected a JSON object {{\"from\": string, \"text\": string}}"
            );
            ctx.reply(CHAT_ERRORS, &headers, Bytes::from(body))?;
        }
    }
    Ok(())
}

fn publish_mapped(
    msg: &AppMessage<'_>,
    ctx: &mut AppContext<'_>,
    mappings: &[(String, String)],
) -> Result<(), AppError> {
    for (prefix, target) in mappings {
        if let Some(rest) = msg.destination.strip_prefix(prefix.as_str()) {
            let to = format!("{target}{rest}");
            ctx.publish(&to, msg.headers, msg.body.clone())?;
            return Ok(());
        }
    }
    Err(AppError::new(
        "Invalid destination",
        format!("no handler for application destination {}", msg.destination),
    ))
}

/// Validates a chat message and returns the JSON to publish, or why it is refused.
fn stamp(body: &[u8], now: SystemTime) -> Result<String, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e})"))?;
    let Value::Object(object) = value else {
        return Err(format!("the body is JSON {}, not an object", kind(&value)));
    };
    let field = |name: &str| match object.get(name) {
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(other) => Err(format!("`{name}` is {}, not a string", kind(other))),
        None => Err(format!("`{name}` is missing")),
    };
    let from = field("from")?;
    let text = field("text")?;
    let time = hh_mm_utc(now);
    serde_json::to_string(&Stamped {
        from,
        text,
        time: &time,
    })
    .map_err(|e| format!("cannot encode the message ({e})"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `HH:MM` of `now` in UTC.
fn hh_mm_utc(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let of_day = secs % 86_400;
    format!("{:02}:{:02}", of_day / 3600, (of_day % 3600) / 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 21:00:59 UTC on day 20 000 of the epoch (2024-10-04).
    fn nine_pm() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(20_000 * 86_400 + 21 * 3600 + 59)
    }

    #[test]
    fn clock_is_utc_hours_and_minutes() {
        assert_eq!(hh_mm_utc(UNIX_EPOCH), "00:00");
        assert_eq!(hh_mm_utc(nine_pm()), "21:00");
        assert_eq!(
            hh_mm_utc(UNIX_EPOCH + Duration::from_secs(86_400 + 9 * 3600 + 5 * 60)),
            "09:05"
        );
    }

    #[test]
    fn valid_message_is_stamped_with_keys_in_order() {
        let out = stamp(br#"{"text":"hello","from":"ann"}"#, nine_pm()).unwrap();
        assert_eq!(out, r#"{"from":"ann","text":"hello","time":"21:00"}"#);
    }

    #[test]
    fn unicode_is_kept_as_utf8_byte_for_byte() {
        // The frames of the Spring chat: content-length:30 body in, this body out.
        let body = r#"{"from":"hi","text":"안녕?"}"#;
        assert_eq!(body.len(), 30);
        let out = stamp(body.as_bytes(), nine_pm()).unwrap();
        assert_eq!(out, r#"{"from":"hi","text":"안녕?","time":"21:00"}"#);
        // Escaped input comes out as plain UTF-8; quotes and newlines stay escaped.
        let out = stamp(br#"{"from":"\uc548","text":"say \"hi\"\nnow"}"#, nine_pm()).unwrap();
        assert_eq!(
            out,
            r#"{"from":"안","text":"say \"hi\"\nnow","time":"21:00"}"#
        );
    }

    #[test]
    fn missing_field_is_refused() {
        let e = stamp(br#"{"from":"ann"}"#, nine_pm()).unwrap_err();
        assert_eq!(e, "`text` is missing");
        let e = stamp(br#"{"text":"x"}"#, nine_pm()).unwrap_err();
        assert_eq!(e, "`from` is missing");
    }

    #[test]
    fn non_object_is_refused() {
        // A JSON array would fill a derived struct positionally; it is refused here.
        let e = stamp(br#"["ann","hello"]"#, nine_pm()).unwrap_err();
        assert_eq!(e, "the body is JSON an array, not an object");
        let e = stamp(b"\"hello\"", nine_pm()).unwrap_err();
        assert_eq!(e, "the body is JSON a string, not an object");
    }

    #[test]
    fn non_json_is_refused() {
        let e = stamp(b"hello", nine_pm()).unwrap_err();
        assert!(e.starts_with("the body is not JSON"), "{e}");
        let e = stamp(b"", nine_pm()).unwrap_err();
        assert!(e.starts_with("the body is not JSON"), "{e}");
        let e = stamp(b"{\"from\":\"\xff\",\"text\":\"x\"}", nine_pm()).unwrap_err();
        assert!(e.starts_with("the body is not JSON"), "{e}");
    }

    #[test]
    fn non_string_field_is_refused() {
        let e = stamp(br#"{"from":"ann","text":42}"#, nine_pm()).unwrap_err();
        assert_eq!(e, "`text` is a number, not a string");
        let e = stamp(br#"{"from":null,"text":"x"}"#, nine_pm()).unwrap_err();
        assert_eq!(e, "`from` is null, not a string");
    }

    #[test]
    fn extra_fields_are_ignored() {
        let out = stamp(
            br#"{"from":"ann","time":"forged","text":"hi","room":1}"#,
            nine_pm(),
        )
        .unwrap();
        assert_eq!(out, r#"{"from":"ann","text":"hi","time":"21:00"}"#);
    }
}
