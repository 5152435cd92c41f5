//! Owned, `Bytes`-backed STOMP frames: what the broker keeps and fans out without copying bodies.

use bytes::Bytes;
use bytestring::ByteString;

use crate::header::{self, HeartBeat};

/// A STOMP protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// STOMP 1.0: LF line ends, no header escaping, no NACK.
    V1_0,
    /// STOMP 1.1: LF line ends, escapes `\n \c \\`, heart-beats, NACK.
    V1_1,
    /// STOMP 1.2: optional CR before LF, escapes `\r \n \c \\`, ACK by `id`.
    V1_2,
}

impl Version {
    /// The version as written in `accept-version` / `version` headers (`"1.0"`, `"1.1"`, `"1.2"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// Parses `"1.0"`, `"1.1"` or `"1.2"`.
    pub fn from_str_exact(s: &str) -> Option<Version> {
        match s {
            "1.0" => Some(Version::V1_0),
            "1.1" => Some(Version::V1_1),
            "1.2" => Some(Version::V1_2),
            _ => None,
        }
    }
}

/// A STOMP command (client or server frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command {
    /// `CONNECT` (client).
    Connect,
    /// `STOMP` (client, 1.1+; treated like CONNECT).
    Stomp,
    /// `CONNECTED` (server).
    Connected,
    /// `SEND` (client).
    Send,
    /// `SUBSCRIBE` (client).
    Subscribe,
    /// `UNSUBSCRIBE` (client).
    Unsubscribe,
    /// `ACK` (client).
    Ack,
    /// `NACK` (client, 1.1+).
    Nack,
    /// `BEGIN` (client).
    Begin,
    /// `COMMIT` (client).
    Commit,
    /// `ABORT` (client).
    Abort,
    /// `DISCONNECT` (client).
    Disconnect,
    /// `MESSAGE` (server).
    Message,
    /// `RECEIPT` (server).
    Receipt,
    /// `ERROR` (server).
    Error,
}

impl Command {
    /// Every command, in spec order.
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Connected,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// The command's wire name, e.g. `"SEND"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Connected => "CONNECTED",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// Looks a command up by its exact (case-sensitive) wire name.
    #[inline]
    pub fn from_bytes(name: &[u8]) -> Option<Command> {
        Some(match name {
            b"SEND" => Command::Send,
            b"MESSAGE" => Command::Message,
            b"ACK" => Command::Ack,
            b"NACK" => Command::Nack,
            b"SUBSCRIBE" => Command::Subscribe,
            b"UNSUBSCRIBE" => Command::Unsubscribe,
            b"RECEIPT" => Command::Receipt,
            b"CONNECT" => Command::Connect,
            b"STOMP" => Command::Stomp,
            b"CONNECTED" => Command::Connected,
            b"BEGIN" => Command::Begin,
            b"COMMIT" => Command::Commit,
            b"ABORT" => Command::Abort,
            b"DISCONNECT" => Command::Disconnect,
            b"ERROR" => Command::Error,
            _ => return None,
        })
    }

    /// Whether frames with this command may carry a body (SEND, MESSAGE, ERROR).
    pub fn allows_body(self) -> bool {
        matches!(self, Command::Send | Command::Message | Command::Error)
    }

    /// Whether header values of this command are escaped (all but CONNECT, STOMP and CONNECTED).
    pub fn escapes_headers(self) -> bool {
        !matches!(self, Command::Connect | Command::Stomp | Command::Connected)
    }
}

/// One header: a name and a value, both UTF-8, already unescaped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header name (case-sensitive).
    pub name: ByteString,
    /// The header value, unescaped.
    pub value: ByteString,
}

/// The headers of a frame, in wire order. Repeated names are kept; lookups return the first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Headers {
    entries: Vec<Header>,
}

impl Headers {
    /// An empty header list.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// An empty header list with room for `n` headers.
    pub fn with_capacity(n: usize) -> Headers {
        Headers {
            entries: Vec::with_capacity(n),
        }
    }

    /// The value of the first header called `name`, if any (the spec's "first one wins").
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|h| &*h.name == name)
            .map(|h| &*h.value)
    }

    /// The shared (`Bytes`-backed) value of the first header called `name`.
    pub fn get_shared(&self, name: &str) -> Option<&ByteString> {
        self.entries
            .iter()
            .find(|h| &*h.name == name)
            .map(|h| &h.value)
    }

    /// Every value of headers called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |h| &*h.name == name)
            .map(|h| &*h.value)
    }

    /// Whether a header called `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|h| &*h.name == name)
    }

    /// Appends a header (keeps earlier ones with the same name, which win on lookup).
    pub fn push(&mut self, name: impl Into<ByteString>, value: impl Into<ByteString>) {
        self.entries.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// Replaces every header called `name` by one with `value`, at the first one's position
    /// (or at the end if there was none).
    pub fn set(&mut self, name: &str, value: impl Into<ByteString>) {
        let value = value.into();
        match self.entries.iter().position(|h| &*h.name == name) {
            Some(i) => {
                self.entries[i].value = value;
                let mut seen = false;
                self.entries.retain(|h| {
                    if &*h.name == name {
                        let keep = !seen;
                        seen = true;
                        keep
                    } else {
                        true
                    }
                });
            }
            None => self.entries.push(Header {
                name: ByteString::from(name.to_owned()),
                value,
            }),
        }
    }

    /// Removes every header called `name`; returns whether one was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|h| &*h.name != name);
        before != self.entries.len()
    }

    /// Iterates `(name, value)` pairs in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|h| (&*h.name, &*h.value))
    }

    /// The headers as a slice, in wire order.
    pub fn as_slice(&self) -> &[Header] {
        &self.entries
    }

    /// Number of headers (repeats included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// An owned STOMP frame. Cloning it is cheap: header strings and the body are `Bytes`-backed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The command.
    pub command: Command,
    /// The headers, in wire order.
    pub headers: Headers,
    /// The body (empty for frames without one).
    pub body: Bytes,
}

impl Frame {
    /// A frame with no headers and no body.
    pub fn new(command: Command) -> Frame {
        Frame {
            command,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Builder: appends a header.
    pub fn header(mut self, name: impl Into<ByteString>, value: impl Into<ByteString>) -> Frame {
        self.headers.push(name, value);
        self
    }

    /// Builder: sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Frame {
        self.body = body.into();
        self
    }

    /// The first value of header `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// `destination` (SEND, SUBSCRIBE, MESSAGE).
    pub fn destination(&self) -> Option<&str> {
        self.get(header::DESTINATION)
    }

    /// `id` (SUBSCRIBE, UNSUBSCRIBE; ACK and NACK in 1.2).
    pub fn id(&self) -> Option<&str> {
        self.get(header::ID)
    }

    /// `ack` (SUBSCRIBE: the ack mode; MESSAGE in 1.2: the id to acknowledge with).
    pub fn ack(&self) -> Option<&str> {
        self.get(header::ACK)
    }

    /// `receipt`: the client asks for a RECEIPT carrying this as `receipt-id`.
    pub fn receipt(&self) -> Option<&str> {
        self.get(header::RECEIPT)
    }

    /// `receipt-id` (RECEIPT, ERROR).
    pub fn receipt_id(&self) -> Option<&str> {
        self.get(header::RECEIPT_ID)
    }

    /// `transaction`.
    pub fn transaction(&self) -> Option<&str> {
        self.get(header::TRANSACTION)
    }

    /// `message-id` (MESSAGE; ACK and NACK in 1.0 and 1.1).
    pub fn message_id(&self) -> Option<&str> {
        self.get(header::MESSAGE_ID)
    }

    /// `subscription` (MESSAGE; ACK and NACK in 1.1).
    pub fn subscription(&self) -> Option<&str> {
        self.get(header::SUBSCRIPTION)
    }

    /// `content-type`.
    pub fn content_type(&self) -> Option<&str> {
        self.get(header::CONTENT_TYPE)
    }

    /// `content-length` as a number (`None` when absent or not a decimal number). The parser has
    /// already checked it on parsed frames; the encoder writes its own.
    pub fn content_length(&self) -> Option<usize> {
        self.get(header::CONTENT_LENGTH)
            .and_then(|v| crate::grammar::content_length(v.as_bytes()))
            .and_then(|n| usize::try_from(n).ok())
    }

    /// `accept-version` (CONNECT); see [`negotiate_version`](crate::header::negotiate_version).
    pub fn accept_version(&self) -> Option<&str> {
        self.get(header::ACCEPT_VERSION)
    }

    /// `host` (CONNECT).
    pub fn host(&self) -> Option<&str> {
        self.get(header::HOST)
    }

    /// `login` (CONNECT).
    pub fn login(&self) -> Option<&str> {
        self.get(header::LOGIN)
    }

    /// `passcode` (CONNECT).
    pub fn passcode(&self) -> Option<&str> {
        self.get(header::PASSCODE)
    }

    /// `heart-beat` (CONNECT, CONNECTED): `Ok(0,0)` when absent (the spec's default),
    /// `Err(value)` when present but not `x,y`.
    pub fn heart_beat(&self) -> Result<HeartBeat, &str> {
        match self.get(header::HEART_BEAT) {
            None => Ok(HeartBeat::NONE),
            Some(v) => HeartBeat::parse(v).ok_or(v),
        }
    }
}
