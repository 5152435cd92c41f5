//! One test (or a few) per framing rule, per version, through the public API.

use bytes::BytesMut;
use switchboard_stomp::{Command, Frame, Limits, ParseError, Parsed, Parser, Version, parse_frame};

const ALL: [Option<Version>; 4] = [
    None,
    Some(Version::V1_0),
    Some(Version::V1_1),
    Some(Version::V1_2),
];

fn parser(version: Option<Version>, limits: Limits) -> Parser {
    match version {
        Some(v) => Parser::new(v, limits),
        None => Parser::before_connect(limits),
    }
}

/// Feeds `input` in `chunk`-byte pieces; returns every item and the error that stopped it.
fn run(
    input: &[u8],
    version: Option<Version>,
    limits: Limits,
    chunk: usize,
) -> (Vec<Parsed>, Option<ParseError>) {
    let mut p = parser(version, limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match p.parse(&mut buf) {
                Ok(Some(item)) => out.push(item),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn frames(input: &[u8], version: Option<Version>) -> Vec<Frame> {
    let (items, err) = run(input, version, Limits::default(), usize::MAX);
    assert_eq!(err, None, "input {:?}", String::from_utf8_lossy(input));
    items
        .into_iter()
        .filter_map(|i| match i {
            Parsed::Frame(f) => Some(f),
            Parsed::HeartBeat => None,
        })
        .collect()
}

fn one(input: &[u8], version: Option<Version>) -> Frame {
    let mut f = frames(input, version);
    assert_eq!(f.len(), 1, "input {:?}", String::from_utf8_lossy(input));
    f.remove(0)
}

fn error(input: &[u8], version: Option<Version>) -> ParseError {
    error_with(input, version, Limits::default())
}

fn error_with(input: &[u8], version: Option<Version>, limits: Limits) -> ParseError {
    let whole = run(input, version, limits, usize::MAX).1;
    let bytewise = run(input, version, limits, 1).1;
    assert_eq!(whole, bytewise, "chunking changed the error");
    whole.unwrap_or_else(|| panic!("no error for {:?}", String::from_utf8_lossy(input)))
}

#[test]
fn commands_are_case_sensitive() {
    for v in ALL {
        assert_eq!(
            error(b"send\ndestination:/a\n\n\0", v),
            ParseError::UnknownCommand { offset: 0 }
        );
        assert_eq!(
            error(b"\n\nSENDX\n\n\0", v),
            ParseError::UnknownCommand { offset: 2 }
        );
        for c in Command::ALL {
            let input = format!("{}\n\n\0", c.as_str());
            assert_eq!(one(input.as_bytes(), v).command, c);
        }
    }
}

#[test]
fn header_names_are_case_sensitive() {
    let f = one(b"SEND\nDestination:/a\n\n\0", Some(Version::V1_2));
    assert_eq!(f.destination(), None);
    assert_eq!(f.get("Destination"), Some("/a"));
}

#[test]
fn cr_lf_only_in_1_2_and_before_connect() {
    let input = b"SEND\r\na:b\r\n\r\n\0";
    for v in [None, Some(Version::V1_2)] {
        let f = one(input, v);
        assert_eq!(f.get("a"), Some("b"));
    }
    for v in [Some(Version::V1_0), Some(Version::V1_1)] {
        // The CR is part of the command line, which is then no command.
        assert_eq!(error(input, v), ParseError::UnknownCommand { offset: 0 });
        // In a header line, the CR is data.
        let f = one(b"SEND\na:b\r\n\n\0", v);
        assert_eq!(f.get("a"), Some("b\r"));
        // "\r" alone is not a blank line there: it is a header line without a colon.
        assert_eq!(
            error(b"SEND\na:b\n\r\n\0", v),
            ParseError::MissingColon { offset: 9 }
        );
    }
    // Only one CR belongs to the EOL.
    assert_eq!(
        one(b"SEND\na:b\r\r\n\n\0", Some(Version::V1_1)).get("a"),
        Some("b\r\r")
    );
}

#[test]
fn connect_with_cr_lf_before_negotiation() {
    let f = one(
        b"CONNECT\r\naccept-version:1.0,1.1,1.2\r\nhost:h\r\nlogin:a\\cb\r\n\r\n\0",
        None,
    );
    assert_eq!(f.command, Command::Connect);
    assert_eq!(f.accept_version(), Some("1.0,1.1,1.2"));
    assert_eq!(f.login(), Some("a\\cb"), "CONNECT is never unescaped");
}

#[test]
fn eols_between_frames_are_heart_beats() {
    for v in ALL {
        let (items, err) = run(
            b"\n\r\n\nSEND\n\nx\0\n\nACK\nid:1\n\n\0\r\n",
            v,
            Limits::default(),
            usize::MAX,
        );
        assert_eq!(err, None);
        let kinds: Vec<&str> = items
            .iter()
            .map(|i| match i {
                Parsed::HeartBeat => "hb",
                Parsed::Frame(f) => f.command.as_str(),
            })
            .collect();
        assert_eq!(kinds, ["hb", "hb", "hb", "SEND", "hb", "hb", "ACK", "hb"]);
    }
}

#[test]
fn stray_nul_and_blank_lines_before_a_command() {
    for v in ALL {
        let (items, err) = run(
            b"\0\0\n\0\nSEND\ndestination:/q\n\nhi\0\0\0\nACK\nid:1\n\n\0",
            v,
            Limits::default(),
            usize::MAX,
        );
        assert_eq!(err, None);
        assert_eq!(items.len(), 5, "{items:?}");
        assert_eq!(items[0], Parsed::HeartBeat);
        assert_eq!(items[1], Parsed::HeartBeat);
        assert!(matches!(&items[2], Parsed::Frame(f) if &f.body[..] == b"hi"));
        assert_eq!(items[3], Parsed::HeartBeat);
        assert!(matches!(&items[4], Parsed::Frame(f) if f.command == Command::Ack));
    }
    // Stray NULs alone are dropped and produce nothing.
    let mut p = Parser::default();
    let mut buf = BytesMut::from(&b"\0\0\0"[..]);
    assert_eq!(p.parse(&mut buf), Ok(None));
    assert!(buf.is_empty());
}

#[test]
fn content_length_is_exact_even_with_nuls() {
    for v in ALL {
        let f = one(b"SEND\ncontent-length:5\n\na\0b\0c\0", v);
        assert_eq!(&f.body[..], b"a\0b\0c");
        assert_eq!(f.content_length(), Some(5));
        let f = one(b"MESSAGE\ncontent-length:0\n\n\0", v);
        assert!(f.body.is_empty());
    }
    // The first content-length wins.
    let f = one(
        b"SEND\ncontent-length:2\ncontent-length:9\n\nab\0",
        Some(Version::V1_2),
    );
    assert_eq!(&f.body[..], b"ab");
    assert_eq!(f.headers.get_all("content-length").count(), 2);
}

#[test]
fn content_length_errors() {
    for v in ALL {
        assert_eq!(
            error(b"SEND\ncontent-length:2\n\nabc\0", v),
            ParseError::MissingNul { offset: 25 }
        );
        assert_eq!(
            error(b"SEND\ncontent-length: 2\n\nab\0", v),
            ParseError::InvalidContentLength { offset: 20 }
        );
        assert_eq!(
            error(b"SEND\ncontent-length:-1\n\n\0", v),
            ParseError::InvalidContentLength { offset: 20 }
        );
        assert_eq!(
            error(b"SEND\ncontent-length:99999999999999999999999\n\n\0", v),
            ParseError::InvalidContentLength { offset: 20 }
        );
    }
}

#[test]
fn body_ends_at_first_nul_without_content_length() {
    for v in ALL {
        let (items, err) = run(b"SEND\n\nab\0SEND\n\ncd\0", v, Limits::default(), 1);
        assert_eq!(err, None);
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[0], Parsed::Frame(f) if &f.body[..] == b"ab"));
        assert!(matches!(&items[1], Parsed::Frame(f) if &f.body[..] == b"cd"));
    }
}

#[test]
fn header_splits_at_first_colon_and_values_are_not_trimmed() {
    for v in ALL {
        let f = one(b"SEND\na:b:c\n x : y \nempty:\n\n\0", v);
        assert_eq!(f.get("a"), Some("b:c"));
        assert_eq!(f.get(" x "), Some(" y "));
        assert_eq!(f.get("empty"), Some(""));
    }
}

#[test]
fn repeated_headers_first_wins_all_kept() {
    for v in ALL {
        let f = one(b"MESSAGE\nfoo:World\nfoo:Hello\nbar:1\n\n\0", v);
        assert_eq!(f.get("foo"), Some("World"));
        let all: Vec<_> = f.headers.iter().collect();
        assert_eq!(all, [("foo", "World"), ("foo", "Hello"), ("bar", "1")]);
    }
}

#[test]
fn escapes_per_version() {
    let input = b"MESSAGE\nk\\cx:a\\nb\\cc\\\\d\n\n\0";
    assert_eq!(
        one(input, Some(Version::V1_0)).get("k\\cx"),
        Some("a\\nb\\cc\\\\d"),
        "1.0 has no escapes"
    );
    for v in [None, Some(Version::V1_1), Some(Version::V1_2)] {
        let f = one(input, v);
        assert_eq!(f.get("k:x"), Some("a\nb:c\\d"));
    }
    assert_eq!(
        one(b"MESSAGE\nk:a\\rb\n\n\0", Some(Version::V1_2)).get("k"),
        Some("a\rb")
    );
}

#[test]
fn bad_escapes_are_fatal() {
    // \r is undefined in 1.1
    assert_eq!(
        error(b"MESSAGE\nk:a\\rb\n\n\0", Some(Version::V1_1)),
        ParseError::InvalidEscape { offset: 11 }
    );
    for v in [None, Some(Version::V1_1), Some(Version::V1_2)] {
        for (input, offset) in [
            (&b"SEND\nk:a\\tb\n\n\0"[..], 8),
            (&b"SEND\nk:ab\\\n\n\0"[..], 9),
            (&b"SEND\nk\\:v\n\n\0"[..], 6),
            (&b"SEND\nk\\x:v\n\n\0"[..], 6),
            (&b"SEND\nok:1\nk:\\\\\\\n\n\0"[..], 14),
        ] {
            assert_eq!(
                error(input, v),
                ParseError::InvalidEscape { offset },
                "{v:?} {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
    // 1.0: the same bytes are plain data.
    assert_eq!(
        one(b"SEND\nk:a\\tb\n\n\0", Some(Version::V1_0)).get("k"),
        Some("a\\tb")
    );
}

#[test]
fn connect_and_connected_are_never_escaped() {
    for v in ALL {
        for cmd in ["CONNECT", "STOMP", "CONNECTED"] {
            let input = format!("{cmd}\npasscode:a\\tb\\c\n\n\0");
            let f = one(input.as_bytes(), v);
            assert_eq!(f.passcode(), Some("a\\tb\\c"));
        }
    }
}

#[test]
fn only_send_message_error_carry_a_body() {
    for v in [None, Some(Version::V1_1), Some(Version::V1_2)] {
        assert_eq!(
            error(b"SUBSCRIBE\nid:1\n\nx\0", v),
            ParseError::BodyNotAllowed {
                offset: 16,
                command: Command::Subscribe
            }
        );
        // Announced by content-length: rejected before the body arrives.
        let (_, err) = run(
            b"ACK\ncontent-length:3\n\n",
            v,
            Limits::default(),
            usize::MAX,
        );
        assert_eq!(
            err,
            Some(ParseError::BodyNotAllowed {
                offset: 22,
                command: Command::Ack
            })
        );
        for cmd in ["SEND", "MESSAGE", "ERROR"] {
            let input = format!("{cmd}\n\nbody\0");
            assert_eq!(&one(input.as_bytes(), v).body[..], b"body");
        }
    }
    // STOMP 1.0 does not forbid it.
    let f = one(b"SUBSCRIBE\nid:1\n\nx\0", Some(Version::V1_0));
    assert_eq!(&f.body[..], b"x");
}

#[test]
fn header_line_errors() {
    for v in ALL {
        assert_eq!(
            error(b"SEND\nnocolon\n\n\0", v),
            ParseError::MissingColon { offset: 5 }
        );
        assert_eq!(
            error(b"SEND\n:v\n\n\0", v),
            ParseError::EmptyHeaderName { offset: 5 }
        );
        assert_eq!(
            error(b"SEND\nk:\xffv\n\n\0", v),
            ParseError::InvalidUtf8 { offset: 7 }
        );
    }
}

#[test]
fn unicode_in_names_and_values() {
    for v in ALL {
        let input = "MESSAGE\nnäme:välue ✓ 日本\n🦀:é\n\nbody\0".as_bytes();
        let f = one(input, v);
        assert_eq!(f.get("näme"), Some("välue ✓ 日本"));
        assert_eq!(f.get("🦀"), Some("é"));
    }
}

#[test]
fn limits() {
    let small = Limits::default()
        .with_max_command_len(8)
        .with_max_header_line(10)
        .with_max_headers(2)
        .with_max_body(4);
    for v in ALL {
        // A command line with no end in sight.
        assert_eq!(
            error_with(b"SUBSCRIBESUBSCRIBE", v, small),
            ParseError::CommandTooLong {
                offset: 0,
                limit: 8
            }
        );
        assert_eq!(
            error_with(b"SUBSCRIBE\n\n\0", v, small),
            ParseError::CommandTooLong {
                offset: 0,
                limit: 8
            }
        );
        assert_eq!(
            error_with(b"SEND\nabcdef:ghijk", v, small),
            ParseError::HeaderLineTooLong {
                offset: 5,
                limit: 10
            }
        );
        assert_eq!(
            error_with(b"SEND\nabcde:ghijk\n\n\0", v, small),
            ParseError::HeaderLineTooLong {
                offset: 5,
                limit: 10
            }
        );
        // Exactly at the limit is fine.
        assert!(run(b"SEND\nabcd:ghijk\n\n\0", v, small, 1).1.is_none());
        assert_eq!(
            error_with(b"SEND\na:1\nb:2\nc:3\n\n\0", v, small),
            ParseError::TooManyHeaders {
                offset: 13,
                limit: 2
            }
        );
        // A content-length over the limit fails as soon as the headers end.
        assert_eq!(
            run(
                b"SEND\ncontent-length:5\n\n",
                v,
                small.with_max_header_line(20),
                usize::MAX
            )
            .1,
            Some(ParseError::BodyTooLarge {
                offset: 23,
                limit: 4
            })
        );
        assert_eq!(
            error_with(b"SEND\n\nabcde", v, small),
            ParseError::BodyTooLarge {
                offset: 6,
                limit: 4
            }
        );
        assert!(run(b"SEND\n\nabcd\0", v, small, 1).1.is_none());
    }
}

#[test]
fn offsets_count_from_the_start_of_the_stream() {
    let input = b"\nSEND\n\nx\0\nSEND\nbad\n\n\0";
    assert_eq!(
        error(input, Some(Version::V1_2)),
        ParseError::MissingColon { offset: 15 }
    );
}

#[test]
fn errors_are_sticky_and_describe_themselves() {
    let mut p = Parser::new(Version::V1_2, Limits::default());
    let mut buf = BytesMut::from(&b"BAD\n\n\0SEND\n\n\0"[..]);
    let e = p.parse(&mut buf).unwrap_err();
    assert_eq!(e, ParseError::UnknownCommand { offset: 0 });
    assert_eq!(e.error_message(), "Bad command");
    assert_eq!(e.to_string(), "Bad command at byte 0");
    assert_eq!(p.parse(&mut buf), Err(e));
}

#[test]
fn unfinished_frames_are_never_consumed() {
    let input = b"SEND\r\ndestination:/q\r\ncontent-length:3\r\n\r\na\0b\0";
    for cut in 0..input.len() - 1 {
        let mut p = Parser::new(Version::V1_2, Limits::default());
        let mut buf = BytesMut::from(&input[..cut]);
        assert_eq!(p.parse(&mut buf), Ok(None), "cut at {cut}");
        assert_eq!(&buf[..], &input[..cut], "cut at {cut}");
        buf.extend_from_slice(&input[cut..]);
        assert!(matches!(p.parse(&mut buf), Ok(Some(Parsed::Frame(_)))));
        assert!(buf.is_empty());
    }
}

#[test]
fn frames_share_the_input_bytes() {
    let mut p = Parser::new(Version::V1_2, Limits::default());
    let mut buf = BytesMut::from(&b"MESSAGE\ndestination:/t\nesc:a\\cb\n\nhello world\0"[..]);
    let range = buf.as_ptr_range();
    let Ok(Some(Parsed::Frame(f))) = p.parse(&mut buf) else {
        panic!()
    };
    let inside = |p: *const u8| range.contains(&p);
    assert!(inside(f.body.as_ptr()));
    let h = &f.headers.as_slice()[0];
    assert!(inside(h.name.as_bytes().as_ptr()));
    assert!(inside(h.value.as_bytes().as_ptr()));
    // Only the escaped value was decoded into fresh memory.
    let esc = &f.headers.as_slice()[1];
    assert!(inside(esc.name.as_bytes().as_ptr()));
    assert!(!inside(esc.value.as_bytes().as_ptr()));
    assert_eq!(&*esc.value, "a:b");
}

#[test]
fn parse_frame_borrows_and_agrees() {
    let input = b"\0\nMESSAGE\r\nk:v\\c\r\nk:second\r\n\r\nbody\0\n";
    let (f, used) = parse_frame(input, Some(Version::V1_2), &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(used, input.len() - 1);
    assert_eq!(f.command(), Command::Message);
    assert_eq!(f.header_count(), 2);
    assert_eq!(f.get("k").as_deref(), Some("v:"));
    assert_eq!(f.body(), b"body");
    assert_eq!(f.to_frame(), one(input, Some(Version::V1_2)));
    assert_eq!(
        parse_frame(&input[..10], Some(Version::V1_2), &Limits::default()),
        Ok(None)
    );
    assert_eq!(
        parse_frame(b"\n\nbad\n\n\0", None, &Limits::default()),
        Err(ParseError::UnknownCommand { offset: 2 })
    );
}

#[test]
fn version_switch_after_connect() {
    let mut p = Parser::before_connect(Limits::default());
    let mut buf = BytesMut::from(&b"CONNECT\naccept-version:1.1\n\n\0SEND\nk:a\\rb\n\n\0"[..]);
    assert!(matches!(p.parse(&mut buf), Ok(Some(Parsed::Frame(_)))));
    p.set_version(Version::V1_1);
    assert_eq!(p.version(), Some(Version::V1_1));
    assert_eq!(
        p.parse(&mut buf),
        Err(ParseError::InvalidEscape { offset: 37 })
    );
}

#[test]
fn huge_content_length_neither_overflows_nor_allocates() {
    let limits = Limits::default().with_max_body(usize::MAX);
    for announced in [u64::MAX.to_string(), (1u64 << 40).to_string()] {
        let mut p = Parser::new(Version::V1_2, limits);
        let mut buf = BytesMut::from(format!("SEND\ncontent-length:{announced}\n\nab").as_bytes());
        assert_eq!(p.parse(&mut buf), Ok(None));
        assert!(buf.capacity() < 1 << 20, "reserved {}", buf.capacity());
    }
    // With the default limit, the same header is refused at once.
    let (_, err) = run(
        b"SEND\ncontent-length:18446744073709551615\n\n",
        Some(Version::V1_2),
        Limits::default(),
        usize::MAX,
    );
    assert!(matches!(
        err,
        Some(ParseError::BodyTooLarge { offset: 42, .. })
    ));
}
