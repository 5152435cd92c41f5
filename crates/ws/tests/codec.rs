//! Decoder/encoder rules, RFC 6455 §5.7 vectors and the attack list, through the public API.

use bytes::{Buf, Bytes, BytesMut};
use switchboard_ws::deflate::{Deflater, Inflater};
use switchboard_ws::frame::{Opcode, encode_header};
use switchboard_ws::{
    CloseCode, CloseFrame, CloseState, Config, Connection, Decoder, DeflateParams, Error, Limits,
    Message, Role, encode_frame_into,
};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn frame(fin: bool, op: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut v = Vec::new();
    encode_frame_into(&mut v, fin, op_of(op), payload, mask);
    v
}

fn op_of(op: u8) -> Opcode {
    Opcode::from_u8(op).unwrap()
}

fn server() -> Decoder {
    Decoder::new(Role::Server, Limits::default())
}

fn decode_all(dec: &mut Decoder, bytes: &[u8]) -> Result<Vec<Message>, Error> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(m) = dec.decode(&mut buf)? {
        out.push(m);
    }
    Ok(out)
}

#[test]
fn rfc6455_5_7_examples() {
    // single-frame unmasked text (client side decoding)
    let mut c = Decoder::new(Role::Client, Limits::default());
    assert_eq!(
        decode_all(&mut c, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]).unwrap(),
        [Message::text("Hello")]
    );
    // single-frame masked text
    let masked = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(
        decode_all(&mut server(), &masked).unwrap(),
        [Message::text("Hello")]
    );
    // fragmented unmasked text
    let mut c = Decoder::new(Role::Client, Limits::default());
    let frag = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    assert_eq!(decode_all(&mut c, &frag).unwrap(), [Message::text("Hello")]);
    // unmasked ping and its masked pong
    let mut c = Decoder::new(Role::Client, Limits::default());
    assert_eq!(
        decode_all(&mut c, &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]).unwrap(),
        [Message::Ping(Bytes::from_static(b"Hello"))]
    );
    let pong = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(
        decode_all(&mut server(), &pong).unwrap(),
        [Message::Pong(Bytes::from_static(b"Hello"))]
    );
    // 256 bytes and 64 KiB binary, unmasked
    for len in [256usize, 65536] {
        let mut c = Decoder::new(Role::Client, Limits::default());
        let m = decode_all(&mut c, &frame(true, 2, &vec![0xab; len], None)).unwrap();
        assert_eq!(m, [Message::Binary(Bytes::from(vec![0xab; len]))]);
    }
}

#[test]
fn every_chunking_gives_the_same_messages() {
    let mut wire = Vec::new();
    wire.extend(frame(false, 1, "κό".as_bytes(), Some(KEY)));
    wire.extend(frame(true, 9, b"ping", Some(KEY)));
    wire.extend(frame(true, 0, "σμε".as_bytes(), Some(KEY)));
    wire.extend(frame(true, 2, &[1, 2, 3], Some([9, 9, 9, 9])));
    wire.extend(frame(true, 8, &[0x03, 0xe8, b'o', b'k'], Some(KEY)));
    let expect = decode_all(&mut server(), &wire).unwrap();
    assert_eq!(expect.len(), 4);
    assert_eq!(expect[1], Message::text("κόσμε"));
    for step in 1..wire.len() {
        let mut dec = server();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in wire.chunks(step) {
            buf.extend_from_slice(chunk);
            while let Some(m) = dec.decode(&mut buf).unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, expect, "step {step}");
    }
}

#[test]
fn unfragmented_payload_is_not_copied() {
    let wire = frame(true, 2, &[5u8; 4096], Some(KEY));
    let mut buf = BytesMut::from(&wire[..]);
    let base = buf.as_ptr() as usize;
    let Some(Message::Binary(b)) = server().decode(&mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(
        b.as_ptr() as usize,
        base + 8,
        "payload is a slice of the read buffer"
    );
}

#[test]
fn masking_rules_by_role() {
    assert!(matches!(
        decode_all(&mut server(), &frame(true, 1, b"a", None)),
        Err(Error::UnmaskedFrame)
    ));
    let mut c = Decoder::new(Role::Client, Limits::default());
    assert!(matches!(
        decode_all(&mut c, &frame(true, 1, b"a", Some(KEY))),
        Err(Error::MaskedFrame)
    ));
}

#[test]
fn reserved_bits_and_opcodes() {
    for b0 in [0xc1u8, 0xa1, 0x91] {
        let mut w = frame(true, 1, b"a", Some(KEY));
        w[0] = b0;
        let e = decode_all(&mut server(), &w).unwrap_err();
        assert!(matches!(e, Error::ReservedBits), "{b0:#x}");
        assert_eq!(e.close_code(), Some(CloseCode::PROTOCOL_ERROR));
    }
    for op in [3u8, 7, 0xb, 0xf] {
        let w = [0x80 | op, 0x80, 1, 2, 3, 4];
        assert!(matches!(
            decode_all(&mut server(), &w),
            Err(Error::ReservedOpcode(_))
        ));
    }
}

#[test]
fn control_frame_rules() {
    // > 125 bytes
    let mut w = vec![0x89, 0x80 | 126, 0, 126];
    w.extend_from_slice(&KEY);
    w.extend(vec![0; 126]);
    assert!(matches!(
        decode_all(&mut server(), &w),
        Err(Error::ControlFrameTooLong)
    ));
    // fragmented ping
    assert!(matches!(
        decode_all(&mut server(), &frame(false, 9, b"", Some(KEY))),
        Err(Error::FragmentedControlFrame)
    ));
    // rsv1 on control frame even with deflate
    let mut d = server().with_inflater(Inflater::new(15, false));
    let mut w = frame(true, 9, b"", Some(KEY));
    w[0] |= 0x40;
    assert!(matches!(decode_all(&mut d, &w), Err(Error::ReservedBits)));
}

#[test]
fn fragmentation_order() {
    assert!(matches!(
        decode_all(&mut server(), &frame(true, 0, b"x", Some(KEY))),
        Err(Error::UnexpectedContinuation)
    ));
    let mut w = frame(false, 1, b"a", Some(KEY));
    w.extend(frame(true, 1, b"b", Some(KEY)));
    assert!(matches!(
        decode_all(&mut server(), &w),
        Err(Error::ExpectedContinuation)
    ));
}

#[test]
fn close_payload_rules() {
    type Check = Option<fn(&Error) -> bool>;
    let cases: &[(&[u8], Check)] = &[
        (&[], None),
        (&[0x03], Some(|e| matches!(e, Error::InvalidClosePayload))),
        (&[0x03, 0xe8], None),
        (
            &[0x03, 0xed],
            Some(|e| matches!(e, Error::InvalidCloseCode(1005))),
        ),
        (
            &[0x0b, 0xb8, 0xff],
            Some(|e| matches!(e, Error::InvalidUtf8)),
        ),
        (&[0x0f, 0xa0, b'x'], None),
    ];
    for (payload, err) in cases {
        let r = decode_all(&mut server(), &frame(true, 8, payload, Some(KEY)));
        match err {
            None => assert!(r.is_ok(), "{payload:x?}"),
            Some(f) => assert!(f(&r.unwrap_err()), "{payload:x?}"),
        }
    }
}

#[test]
fn invalid_utf8_fails_fast_mid_frame_and_across_fragments() {
    // Invalid bytes in the first half of a frame whose second half has not arrived.
    let payload = [b'a', 0xed, 0xa0, 0x80, b'b', b'c', b'd', b'e'];
    let w = frame(true, 1, &payload, Some(KEY));
    let mut dec = server();
    let mut buf = BytesMut::from(&w[..w.len() - 4]);
    assert!(matches!(dec.decode(&mut buf), Err(Error::InvalidUtf8)));
    // Across fragments: the first fragment ends inside a code point that cannot be completed.
    let mut dec = server();
    let mut buf = BytesMut::from(&frame(false, 1, &[b'a', 0xf4], Some(KEY))[..]);
    assert!(dec.decode(&mut buf).unwrap().is_none());
    buf.extend_from_slice(&frame(false, 0, &[0x90], Some(KEY)));
    let e = dec.decode(&mut buf).unwrap_err();
    assert_eq!(e.close_code(), Some(CloseCode::INVALID_PAYLOAD));
    // Truncated code point at the end of the message
    assert!(matches!(
        decode_all(&mut server(), &frame(true, 1, &[0xe2, 0x82], Some(KEY))),
        Err(Error::InvalidUtf8)
    ));
}

/// A socket loop's "reads" with [`Decoder::reserve_read`]: of at most what it returns.
fn read_loop(wire: &[u8], read_size: usize, mut on_message: impl FnMut(&Message, &BytesMut)) {
    let mut dec = server();
    let mut buf = BytesMut::new();
    let mut input = wire;
    loop {
        match dec.decode(&mut buf).unwrap() {
            Some(m) => on_message(&m, &buf),
            None if input.is_empty() => break,
            None => {
                let n = dec.reserve_read(&mut buf, read_size).min(input.len());
                assert!(n > 0 && buf.capacity() - buf.len() >= n);
                buf.extend_from_slice(&input[..n]);
                input = &input[n..];
            }
        }
    }
    assert!(buf.is_empty());
}

#[test]
fn reads_of_large_frames_stop_at_the_frame_end() {
    // 64 KiB frames with 64 KiB reads: each read leaves the next frame's start behind unless
    // the read stops at the frame end. Stopping there, every payload (dropped at once) starts
    // in the same allocation: nothing was compacted or reallocated after the first frames.
    let payload = vec![7u8; 64 << 10];
    let mut wire = Vec::new();
    for _ in 0..8 {
        wire.extend(frame(true, 2, &payload, Some(KEY)));
    }
    let mut starts = Vec::new();
    read_loop(&wire, 64 << 10, |m, _| {
        assert_eq!(m.payload(), &payload[..]);
        starts.push(m.payload().as_ptr() as usize);
    });
    assert_eq!(starts.len(), 8);
    assert!(
        starts[2..].windows(2).all(|w| w[0] == w[1]),
        "payloads moved: {starts:x?}"
    );
    // small frames across read boundaries still decode
    let mut wire = Vec::new();
    for i in 0..500u32 {
        wire.extend(frame(
            true,
            2,
            &i.to_be_bytes().repeat(i as usize % 97),
            Some(KEY),
        ));
    }
    let mut n = 0u32;
    read_loop(&wire, 1000, |m, _| {
        assert_eq!(m.payload(), &n.to_be_bytes().repeat(n as usize % 97)[..]);
        n += 1;
    });
    assert_eq!(n, 500);
}

#[test]
fn reserve_read_trusts_a_claimed_length_only_as_data_arrives() {
    let dec_frame = |len: u64| {
        let mut hdr = [0u8; 14];
        let n = encode_header(&mut hdr, true, false, Opcode::Binary, Some(KEY), len);
        hdr[..n].to_vec()
    };
    // a 16 MiB frame (the default limit) announced by its header alone
    let mut dec = server();
    let mut buf = BytesMut::from(&dec_frame(16 << 20)[..]);
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    let n = dec.reserve_read(&mut buf, 16 << 10);
    assert!(
        n <= 128 << 10 && buf.capacity() <= 256 << 10,
        "{n} {}",
        buf.capacity()
    );
    // with 64 KiB of it received, room for at most 16 times that
    buf.extend_from_slice(&vec![0u8; 64 << 10]);
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    dec.reserve_read(&mut buf, 16 << 10);
    assert!(buf.capacity() <= 17 << 16, "{}", buf.capacity());
}

#[test]
fn huge_claimed_length_is_rejected_before_allocation() {
    let mut hdr = [0u8; 14];
    let n = encode_header(&mut hdr, true, false, Opcode::Binary, Some(KEY), 1 << 62);
    let e = decode_all(&mut server(), &hdr[..n]).unwrap_err();
    assert!(matches!(e, Error::FrameTooLarge { .. }));
    assert_eq!(e.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
    // a message growing past the limit through fragments
    let limits = Limits {
        max_message_size: 100,
        ..Default::default()
    };
    let mut dec = Decoder::new(Role::Server, limits);
    let mut w = frame(false, 2, &[0; 60], Some(KEY));
    w.extend(frame(true, 0, &[0; 60], Some(KEY)));
    assert!(matches!(
        decode_all(&mut dec, &w),
        Err(Error::MessageTooLarge { .. })
    ));
}

#[test]
fn tiny_fragment_flood_is_bounded() {
    let limits = Limits {
        max_fragments: 100,
        ..Default::default()
    };
    let mut dec = Decoder::new(Role::Server, limits);
    let mut w = frame(false, 2, b"", Some(KEY));
    for _ in 0..200 {
        w.extend(frame(false, 0, b"", Some(KEY)));
    }
    let e = decode_all(&mut dec, &w).unwrap_err();
    assert!(matches!(e, Error::TooManyFragments { max: 100 }));
    assert_eq!(e.close_code(), Some(CloseCode::POLICY_VIOLATION));
}

#[test]
fn ping_flood_queues_a_bounded_number_of_pongs() {
    let limits = Limits {
        max_pending_pongs: 8,
        ..Default::default()
    };
    let mut conn = Connection::new(Role::Server, Config::default().limits(limits), None);
    let mut w = Vec::new();
    for _ in 0..1000 {
        w.extend(frame(true, 9, &[0; 125], Some(KEY)));
    }
    let mut buf = BytesMut::from(&w[..]);
    let mut pings = 0;
    while let Some(m) = conn.receive(&mut buf).unwrap() {
        assert!(matches!(m, Message::Ping(_)));
        pings += 1;
    }
    assert_eq!(pings, 1000);
    assert_eq!(conn.out().pending_pongs(), 8);
    assert_eq!(conn.out().remaining(), 8 * (2 + 125));
    // once written, pongs are answered again
    let n = conn.out().remaining();
    conn.out().advance(n);
    assert_eq!(conn.out().pending_pongs(), 0);
}

#[test]
fn compression_bomb_stops_at_the_limit() {
    let mut d = Deflater::new(15, 9, false, 0);
    let mut compressed = Vec::new();
    d.compress(&vec![0u8; 10 << 20], &mut compressed).unwrap();
    assert!(
        compressed.len() < 20_000,
        "10 MiB of zeros compress to {}",
        compressed.len()
    );
    let limits = Limits {
        max_message_size: 1 << 20,
        ..Default::default()
    };
    let mut dec = Decoder::new(Role::Server, limits).with_inflater(Inflater::new(15, false));
    let mut w = Vec::new();
    let mut hdr = [0u8; 14];
    let n = encode_header(
        &mut hdr,
        true,
        true,
        Opcode::Binary,
        Some(KEY),
        compressed.len() as u64,
    );
    w.extend_from_slice(&hdr[..n]);
    let start = w.len();
    w.extend_from_slice(&compressed);
    switchboard_ws::mask::apply_mask(&mut w[start..], KEY);
    let e = decode_all(&mut dec, &w).unwrap_err();
    assert!(matches!(e, Error::MessageTooLarge { max } if max == 1 << 20));
    assert_eq!(e.close_code(), Some(CloseCode::MESSAGE_TOO_BIG));
}

#[test]
fn deflate_roundtrip_all_window_bits_and_takeover_modes() {
    let text = "the quick brown fox jumps over the lazy dog ".repeat(200);
    for bits in 8..=15u8 {
        for nct in [false, true] {
            let params = DeflateParams {
                server_no_context_takeover: nct,
                client_no_context_takeover: nct,
                server_max_window_bits: bits,
                client_max_window_bits: bits,
            };
            let mut client = Connection::new(Role::Client, Config::default(), Some(params));
            let mut server = Connection::new(Role::Server, Config::default(), Some(params));
            for i in 0..3 {
                let msg = Message::text(format!("{i}{text}"));
                client.send(msg.clone()).unwrap();
                let mut wire = BytesMut::new();
                let out = client.out();
                while out.has_remaining() {
                    let c = out.chunk().to_vec();
                    wire.extend_from_slice(&c);
                    out.advance(c.len());
                }
                assert!(
                    wire.len() < text.len() / 4,
                    "compressed: {} bytes",
                    wire.len()
                );
                assert_eq!(wire[0] & 0x40, 0x40, "RSV1 set");
                assert_eq!(
                    server.receive(&mut wire).unwrap(),
                    Some(msg),
                    "bits {bits} nct {nct}"
                );
            }
        }
    }
}

#[test]
fn close_handshake_state_machine() {
    let mut server = Connection::new(Role::Server, Config::default(), None);
    let mut buf = BytesMut::from(&frame(true, 8, &[0x03, 0xe8, b'x'], Some(KEY))[..]);
    let m = server.receive(&mut buf).unwrap();
    assert_eq!(
        m,
        Some(Message::Close(Some(CloseFrame::new(
            CloseCode::NORMAL,
            "x"
        ))))
    );
    assert_eq!(server.state(), CloseState::Closed);
    // the reply echoes the code
    assert_eq!(server.out().chunk(), &[0x88, 0x02, 0x03, 0xe8]);
    assert!(matches!(
        server.send(Message::text("late")),
        Err(Error::Closed)
    ));

    // we initiate
    let mut server = Connection::new(Role::Server, Config::default(), None);
    server.close(CloseCode::GOING_AWAY, b"bye").unwrap();
    assert_eq!(server.state(), CloseState::CloseSent);
    assert!(matches!(
        server.send(Message::text("x")),
        Err(Error::Closed)
    ));
    let mut buf = BytesMut::from(&frame(true, 8, &[0x03, 0xe9], Some(KEY))[..]);
    server.receive(&mut buf).unwrap();
    assert_eq!(server.state(), CloseState::Closed);
    // invalid close codes cannot be sent
    let mut c = Connection::new(Role::Client, Config::default(), None);
    assert!(matches!(
        c.close(CloseCode(1005), b""),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn protocol_error_queues_close_with_its_code() {
    let mut server = Connection::new(Role::Server, Config::default(), None);
    let mut buf = BytesMut::from(&frame(true, 1, &[0xff], Some(KEY))[..]);
    assert!(matches!(server.receive(&mut buf), Err(Error::InvalidUtf8)));
    assert_eq!(server.out().chunk(), &[0x88, 0x02, 0x03, 0xef]);
    assert_eq!(server.state(), CloseState::Closed);
}

/// Decodes `wire` fed one byte at a time (so no frame is ever whole in the buffer before its
/// header is consumed: the general path) and all at once (whole frames: the short path).
fn both_paths(
    role: Role,
    limits: Limits,
    wire: &[u8],
) -> (Result<Vec<Message>, String>, Result<Vec<Message>, String>) {
    let whole = decode_all(&mut Decoder::new(role, limits), wire).map_err(|e| format!("{e:?}"));
    let mut dec = Decoder::new(role, limits);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut bytewise = Ok(());
    'outer: for &b in wire {
        buf.extend_from_slice(&[b]);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(m)) => got.push(m),
                Ok(None) => break,
                Err(e) => {
                    bytewise = Err(format!("{e:?}"));
                    break 'outer;
                }
            }
        }
    }
    (whole, bytewise.map(|()| got))
}

#[test]
fn whole_frame_short_path_agrees_with_the_general_path() {
    let small = Limits {
        max_frame_size: 10,
        ..Limits::default()
    };
    let small_msg = Limits {
        max_message_size: 10,
        ..Limits::default()
    };
    let long: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    let text_long = "κόσμε ".repeat(40);
    let cases: Vec<(Role, Limits, Vec<u8>, bool)> = vec![
        // (role, limits, wire, decodes without error)
        (
            Role::Server,
            Limits::default(),
            frame(true, 2, b"0123456789abcdef", Some(KEY)),
            true,
        ),
        (
            Role::Server,
            Limits::default(),
            frame(true, 1, "κόσμε".as_bytes(), Some(KEY)),
            true,
        ),
        (
            Role::Server,
            Limits::default(),
            frame(true, 2, &long, Some(KEY)),
            true,
        ),
        (
            Role::Server,
            Limits::default(),
            frame(true, 1, text_long.as_bytes(), Some(KEY)),
            true,
        ),
        (
            Role::Server,
            Limits::default(),
            frame(true, 2, b"", Some(KEY)),
            true,
        ),
        (
            Role::Client,
            Limits::default(),
            frame(true, 2, &long, None),
            true,
        ),
        (
            Role::Client,
            Limits::default(),
            frame(true, 1, b"hi", None),
            true,
        ),
        // invalid UTF-8, whole in the buffer
        (
            Role::Server,
            Limits::default(),
            frame(true, 1, &[b'a', 0xff, b'b'], Some(KEY)),
            false,
        ),
        (
            Role::Server,
            Limits::default(),
            frame(true, 1, &[0xce], Some(KEY)),
            false,
        ),
        // masking by role
        (
            Role::Server,
            Limits::default(),
            frame(true, 2, b"x", None),
            false,
        ),
        (
            Role::Client,
            Limits::default(),
            frame(true, 2, b"x", Some(KEY)),
            false,
        ),
        // limits below the frame's length
        (
            Role::Server,
            small,
            frame(true, 2, b"0123456789a", Some(KEY)),
            false,
        ),
        (
            Role::Server,
            small_msg,
            frame(true, 1, b"0123456789a", Some(KEY)),
            false,
        ),
        (
            Role::Server,
            small,
            frame(true, 2, b"0123456789", Some(KEY)),
            true,
        ),
        // RSV1 without deflate, RSV2, and a compressed-looking frame
        (
            Role::Server,
            Limits::default(),
            {
                let mut f = frame(true, 2, b"abc", Some(KEY));
                f[0] |= 0x40;
                f
            },
            false,
        ),
        (
            Role::Server,
            Limits::default(),
            {
                let mut f = frame(true, 1, b"abc", Some(KEY));
                f[0] |= 0x20;
                f
            },
            false,
        ),
    ];
    for (i, (role, limits, wire, ok)) in cases.iter().enumerate() {
        // twice in a row, and after a fragment (the short path must not apply mid-message)
        let mut twice = wire.clone();
        twice.extend_from_slice(wire);
        let (whole, bytewise) = both_paths(*role, *limits, &twice);
        assert_eq!(whole, bytewise, "case {i}");
        assert_eq!(whole.is_ok(), *ok, "case {i}: {whole:?}");
        if *ok {
            assert_eq!(whole.unwrap().len(), 2, "case {i}");
        }
        let mask = (*role == Role::Server).then_some(KEY);
        let mut after_fragment = frame(false, 2, b"part", mask);
        after_fragment.extend_from_slice(wire);
        let (whole, bytewise) = both_paths(*role, *limits, &after_fragment);
        assert_eq!(whole, bytewise, "case {i} after a fragment");
        assert!(
            whole.is_err(),
            "case {i}: a new message inside a fragmented one"
        );
    }
}
