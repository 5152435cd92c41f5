//! The example frames of the STOMP 1.2 specification, as data, parsed whole, one byte at a time
//! and in 191-byte chunks.
//!
//! The specification's DISCONNECT and RECEIPT examples omit the blank line that ends the headers
//! (its grammar requires it); they are written here as the grammar says.

use bytes::BytesMut;
use switchboard_stomp::{Command, Frame, Limits, Parsed, Parser, Version, parse_frame};

/// (the frame as on the wire with `^@` for NUL, command, headers, body)
type Example = (
    &'static str,
    Command,
    &'static [(&'static str, &'static str)],
    &'static str,
);

const ERROR_BODY: &str = "The message:
-----
MESSAGE
destined:/queue/a
receipt:message-12345

Hello queue a!
-----
Did not contain a destination header, which is REQUIRED
for message propagation.
";

const EXAMPLES: &[Example] = &[
    (
        "CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n^@",
        Command::Connect,
        &[("accept-version", "1.2"), ("host", "stomp.github.org")],
        "",
    ),
    (
        "CONNECTED\nversion:1.2\n\n^@",
        Command::Connected,
        &[("version", "1.2")],
        "",
    ),
    (
        "ERROR\nversion:1.2,2.1\ncontent-type:text/plain\n\nSupported protocol versions are 1.2 2.1^@",
        Command::Error,
        &[("version", "1.2,2.1"), ("content-type", "text/plain")],
        "Supported protocol versions are 1.2 2.1",
    ),
    (
        "SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\n^@",
        Command::Send,
        &[("destination", "/queue/a"), ("content-type", "text/plain")],
        "hello queue a\n",
    ),
    (
        "SEND\ndestination:/queue/a\nreceipt:message-12345\n\nhello queue a^@",
        Command::Send,
        &[("destination", "/queue/a"), ("receipt", "message-12345")],
        "hello queue a",
    ),
    (
        "SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n^@",
        Command::Subscribe,
        &[
            ("id", "0"),
            ("destination", "/queue/foo"),
            ("ack", "client"),
        ],
        "",
    ),
    (
        "UNSUBSCRIBE\nid:0\n\n^@",
        Command::Unsubscribe,
        &[("id", "0")],
        "",
    ),
    (
        "ACK\nid:12345\ntransaction:tx1\n\n^@",
        Command::Ack,
        &[("id", "12345"), ("transaction", "tx1")],
        "",
    ),
    (
        "NACK\nid:12345\ntransaction:tx1\n\n^@",
        Command::Nack,
        &[("id", "12345"), ("transaction", "tx1")],
        "",
    ),
    (
        "BEGIN\ntransaction:tx1\n\n^@",
        Command::Begin,
        &[("transaction", "tx1")],
        "",
    ),
    (
        "SEND\ndestination:/queue/a\ntransaction:tx1\ncontent-type:text/plain\n\nhello queue a^@",
        Command::Send,
        &[
            ("destination", "/queue/a"),
            ("transaction", "tx1"),
            ("content-type", "text/plain"),
        ],
        "hello queue a",
    ),
    (
        "COMMIT\ntransaction:tx1\n\n^@",
        Command::Commit,
        &[("transaction", "tx1")],
        "",
    ),
    (
        "ABORT\ntransaction:tx1\n\n^@",
        Command::Abort,
        &[("transaction", "tx1")],
        "",
    ),
    (
        "DISCONNECT\nreceipt:77\n\n^@",
        Command::Disconnect,
        &[("receipt", "77")],
        "",
    ),
    (
        "RECEIPT\nreceipt-id:77\n\n^@",
        Command::Receipt,
        &[("receipt-id", "77")],
        "",
    ),
    (
        "MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a^@",
        Command::Message,
        &[
            ("subscription", "0"),
            ("message-id", "007"),
            ("destination", "/queue/a"),
            ("content-type", "text/plain"),
        ],
        "hello queue a",
    ),
    (
        "CONNECT\naccept-version:1.1\nhost:stomp.github.org\nheart-beat:4000,6000\n\n^@",
        Command::Connect,
        &[
            ("accept-version", "1.1"),
            ("host", "stomp.github.org"),
            ("heart-beat", "4000,6000"),
        ],
        "",
    ),
    (
        "MESSAGE\nfoo:World\nfoo:Hello\n\n^@",
        Command::Message,
        &[("foo", "World"), ("foo", "Hello")],
        "",
    ),
];

fn wire(example: &str) -> Vec<u8> {
    example.replace("^@", "\0").into_bytes()
}

fn expected(cmd: Command, headers: &[(&str, &str)], body: &str) -> Frame {
    let mut f = Frame::new(cmd);
    for (n, v) in headers {
        f = f.header(*n, *v);
    }
    f.body(body.as_bytes().to_vec())
}

fn error_example() -> (Vec<u8>, Frame) {
    let text = format!(
        "ERROR\nreceipt-id:message-12345\ncontent-type:text/plain\ncontent-length:170\nmessage:malformed frame received\n\n{ERROR_BODY}^@"
    );
    let frame = expected(
        Command::Error,
        &[
            ("receipt-id", "message-12345"),
            ("content-type", "text/plain"),
            ("content-length", "170"),
            ("message", "malformed frame received"),
        ],
        ERROR_BODY,
    );
    (wire(&text), frame)
}

fn all_examples() -> Vec<(Vec<u8>, Frame)> {
    let mut out: Vec<_> = EXAMPLES
        .iter()
        .map(|(w, c, h, b)| (wire(w), expected(*c, h, b)))
        .collect();
    out.push(error_example());
    out
}

fn feed(stream: &[u8], chunk: usize) -> Vec<Frame> {
    let mut p = Parser::new(Version::V1_2, Limits::default());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(item) = p.parse(&mut buf).expect("valid example") {
            if let Parsed::Frame(f) = item {
                out.push(f);
            }
        }
    }
    assert!(buf.is_empty());
    out
}

#[test]
fn each_example_parses_as_specified() {
    for (bytes, frame) in all_examples() {
        for chunk in [bytes.len(), 1, 191] {
            assert_eq!(
                feed(&bytes, chunk),
                std::slice::from_ref(&frame),
                "chunk {chunk}"
            );
        }
        let (r, used) = parse_frame(&bytes, Some(Version::V1_2), &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(r.to_frame(), frame);
    }
}

#[test]
fn all_examples_as_one_stream_in_any_chunking() {
    let examples = all_examples();
    let mut stream = Vec::new();
    for (i, (bytes, _)) in examples.iter().enumerate() {
        stream.extend_from_slice(bytes);
        // Vary what sits between frames: nothing, EOLs (heart-beats), CR LF.
        stream.extend_from_slice([&b""[..], b"\n", b"\r\n\n"][i % 3]);
    }
    let want: Vec<Frame> = examples.into_iter().map(|(_, f)| f).collect();
    for chunk in [stream.len(), 1, 2, 3, 7, 64, 191] {
        assert_eq!(feed(&stream, chunk), want, "chunk {chunk}");
    }
}

#[test]
fn examples_round_trip_through_the_encoder() {
    for (_, frame) in all_examples() {
        let bytes = frame.encode(Version::V1_2).unwrap();
        let back = feed(&bytes, 191);
        assert_eq!(back.len(), 1);
        let mut want = frame.clone();
        want.headers.remove("content-length");
        if frame.command.allows_body() {
            want.headers
                .push("content-length", frame.body.len().to_string());
        }
        assert_eq!(back[0], want);
    }
}
