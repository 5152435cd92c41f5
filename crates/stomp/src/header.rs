//! Well-known header names, and the `accept-version` and `heart-beat` negotiations.

use std::fmt;
use std::time::Duration;

use crate::Version;

/// `accept-version` (CONNECT): the versions the client speaks, comma-separated.
pub const ACCEPT_VERSION: &str = "accept-version";
/// `ack` (SUBSCRIBE: the ack mode; MESSAGE 1.2: the id to ACK/NACK with).
pub const ACK: &str = "ack";
/// `content-length`: the body's length in octets.
pub const CONTENT_LENGTH: &str = "content-length";
/// `content-type`: the body's MIME type.
pub const CONTENT_TYPE: &str = "content-type";
/// `destination` (SEND, SUBSCRIBE, MESSAGE).
pub const DESTINATION: &str = "destination";
/// `heart-beat` (CONNECT, CONNECTED): `x,y` in milliseconds.
pub const HEART_BEAT: &str = "heart-beat";
/// `host` (CONNECT): the virtual host.
pub const HOST: &str = "host";
/// `id` (SUBSCRIBE, UNSUBSCRIBE; ACK/NACK in 1.2).
pub const ID: &str = "id";
/// `login` (CONNECT).
pub const LOGIN: &str = "login";
/// `message` (ERROR): a short description.
pub const MESSAGE: &str = "message";
/// `message-id` (MESSAGE; ACK/NACK in 1.0 and 1.1).
pub const MESSAGE_ID: &str = "message-id";
/// `passcode` (CONNECT).
pub const PASSCODE: &str = "passcode";
/// `receipt` (any client frame but CONNECT): asks for a RECEIPT.
pub const RECEIPT: &str = "receipt";
/// `receipt-id` (RECEIPT, ERROR).
pub const RECEIPT_ID: &str = "receipt-id";
/// `server` (CONNECTED).
pub const SERVER: &str = "server";
/// `session` (CONNECTED).
pub const SESSION: &str = "session";
/// `subscription` (MESSAGE; ACK/NACK in 1.1).
pub const SUBSCRIPTION: &str = "subscription";
/// `transaction` (SEND, ACK, NACK, BEGIN, COMMIT, ABORT).
pub const TRANSACTION: &str = "transaction";
/// `version` (CONNECTED; ERROR when no version is common).
pub const VERSION: &str = "version";

/// A `heart-beat` header: `x,y` in milliseconds.
///
/// On CONNECT `x` is how often the client can send (0: never) and `y` how often it wants to
/// receive (0: never); on CONNECTED the same from the server's side. A missing header is `0,0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeartBeat {
    /// The smallest interval at which the sender of the header can send heart-beats, in ms (0: never).
    pub send_ms: u32,
    /// The interval at which the sender of the header wants to receive heart-beats, in ms (0: never).
    pub receive_ms: u32,
}

impl HeartBeat {
    /// No heart-beats either way (`0,0`).
    pub const NONE: HeartBeat = HeartBeat {
        send_ms: 0,
        receive_ms: 0,
    };

    /// A heart-beat header value.
    pub const fn new(send_ms: u32, receive_ms: u32) -> HeartBeat {
        HeartBeat {
            send_ms,
            receive_ms,
        }
    }

    /// Parses `x,y` (decimal milliseconds; spaces around the numbers tolerated).
    pub fn parse(value: &str) -> Option<HeartBeat> {
        crate::grammar::heart_beat(value.as_bytes()).map(|(send_ms, receive_ms)| HeartBeat {
            send_ms,
            receive_ms,
        })
    }
}

impl fmt::Display for HeartBeat {
    /// `x,y`, as written in the header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.send_ms, self.receive_ms)
    }
}

/// The heart-beat intervals a connection settled on (`None`: that direction has none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeartBeatIntervals {
    /// How often the client must send something (the server's read deadline, before any grace margin).
    pub client_to_server: Option<Duration>,
    /// How often the server must send something.
    pub server_to_client: Option<Duration>,
}

/// Negotiates heart-beats from the client's CONNECT header and the server's CONNECTED header:
/// client→server is `max(cx, sy)` unless either is 0; server→client is `max(sx, cy)` unless
/// either is 0.
///
/// ```
/// use std::time::Duration;
/// use switchboard_stomp::header::{negotiate_heart_beat, HeartBeat};
///
/// let hb = negotiate_heart_beat(HeartBeat::new(5000, 0), HeartBeat::new(10000, 10000));
/// assert_eq!(hb.client_to_server, Some(Duration::from_millis(10000)));
/// assert_eq!(hb.server_to_client, None); // the client does not want any
/// ```
pub fn negotiate_heart_beat(client: HeartBeat, server: HeartBeat) -> HeartBeatIntervals {
    fn interval(sender: u32, receiver: u32) -> Option<Duration> {
        (sender != 0 && receiver != 0)
            .then(|| Duration::from_millis(u64::from(sender.max(receiver))))
    }
    HeartBeatIntervals {
        client_to_server: interval(client.send_ms, server.receive_ms),
        server_to_client: interval(server.send_ms, client.receive_ms),
    }
}

/// Picks the highest version both sides speak, from a CONNECT's `accept-version` header.
///
/// A missing header means the client speaks only 1.0. Items are trimmed of spaces; unknown items
/// are ignored. `None` means there is no common version: the server must send an ERROR with a
/// `version` header listing its versions (see [`version_list`]) and close.
///
/// ```
/// use switchboard_stomp::{header::negotiate_version, Version};
///
/// let all = [Version::V1_0, Version::V1_1, Version::V1_2];
/// assert_eq!(negotiate_version(Some("1.0,1.1,1.2"), &all), Some(Version::V1_2));
/// assert_eq!(negotiate_version(None, &all), Some(Version::V1_0));
/// assert_eq!(negotiate_version(Some("2.0"), &all), None);
/// ```
pub fn negotiate_version(accept_version: Option<&str>, supported: &[Version]) -> Option<Version> {
    match accept_version {
        None => supported.contains(&Version::V1_0).then_some(Version::V1_0),
        Some(list) => list
            .split(',')
            .filter_map(|item| Version::from_str_exact(item.trim()))
            .filter(|v| supported.contains(v))
            .max(),
    }
}

/// `versions` as a comma-separated list (`"1.0,1.1,1.2"`), for `version` headers.
pub fn version_list(versions: &[Version]) -> String {
    let mut out = String::with_capacity(versions.len() * 4);
    for (i, v) in versions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(v.as_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heart_beat_rules() {
        let none = negotiate_heart_beat(HeartBeat::NONE, HeartBeat::new(10000, 10000));
        assert_eq!(none, HeartBeatIntervals::default());
        let both = negotiate_heart_beat(HeartBeat::new(4000, 30000), HeartBeat::new(10000, 2000));
        assert_eq!(both.client_to_server, Some(Duration::from_millis(4000)));
        assert_eq!(both.server_to_client, Some(Duration::from_millis(30000)));
        let server_off = negotiate_heart_beat(HeartBeat::new(100, 100), HeartBeat::NONE);
        assert_eq!(server_off, HeartBeatIntervals::default());
        assert_eq!(
            HeartBeat::parse("10000,20000"),
            Some(HeartBeat::new(10000, 20000))
        );
        assert_eq!(HeartBeat::parse("x,1"), None);
        assert_eq!(HeartBeat::new(1, 2).to_string(), "1,2");
    }

    #[test]
    fn version_rules() {
        let all = [Version::V1_0, Version::V1_1, Version::V1_2];
        assert_eq!(negotiate_version(Some("1.1"), &all), Some(Version::V1_1));
        assert_eq!(
            negotiate_version(Some("1.2, 1.0"), &all),
            Some(Version::V1_2)
        );
        assert_eq!(
            negotiate_version(Some("1.2"), &[Version::V1_0, Version::V1_1]),
            None
        );
        assert_eq!(negotiate_version(None, &[Version::V1_2]), None);
        assert_eq!(negotiate_version(Some(""), &all), None);
        assert_eq!(version_list(&all), "1.0,1.1,1.2");
    }
}
