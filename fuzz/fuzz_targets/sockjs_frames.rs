//! Client payload decoding and the SockJS session state machine. Beyond "no panic": decoded
//! strings re-encode and decode to the same strings; driven by an arbitrary sequence of
//! attach/detach/send/receive/close/clock operations, a session never queues more than its
//! byte limit, every `a[...]` frame decodes to exactly the messages sent since the last one,
//! a closed session stays closed with its first close frame, which is repeated to every later
//! receiver until it is reaped, and a reaped session gives nothing more.
#![no_main]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_sockjs::json::{decode_array, decode_ws_message, encode_str_into};
use switchboard_sockjs::session::{
    AttachError, FrameKind, Framing, Refused, Session, SessionConfig, close_frame,
};

#[derive(Arbitrary, Debug)]
enum Op {
    Attach,
    Detach,
    Send(String),
    SendMany(u8, u8),
    Receive(Vec<String>),
    Take,
    Poll,
    Close(u16, String),
    Advance(u16),
    Timeout,
}

#[derive(Arbitrary, Debug)]
struct Input {
    payload: Vec<u8>,
    raw: bool,
    max_queued: u16,
    heartbeat_ms: u16,
    delay_ms: u16,
    ops: Vec<Op>,
}

fn roundtrip(strings: &[String]) {
    let mut buf = BytesMut::from(&b"["[..]);
    for (i, s) in strings.iter().enumerate() {
        if i > 0 {
            buf.extend_from_slice(b",");
        }
        encode_str_into(s, &mut buf);
    }
    buf.extend_from_slice(b"]");
    assert_eq!(decode_array(&buf).as_deref(), Ok(strings));
    assert_eq!(decode_ws_message(&buf).as_deref(), Ok(strings));
}

fuzz_target!(|input: Input| {
    if let Ok(v) = decode_array(&input.payload) {
        roundtrip(&v);
    }
    if let Ok(v) = decode_ws_message(&input.payload) {
        roundtrip(&v);
    }

    let max = usize::from(input.max_queued);
    let config = SessionConfig {
        heartbeat: Duration::from_millis(u64::from(input.heartbeat_ms) + 1),
        disconnect_delay: Duration::from_millis(u64::from(input.delay_ms) + 1),
        max_queued_bytes: max,
        max_incoming_bytes: max,
    };
    let framing = if input.raw {
        Framing::Raw
    } else {
        Framing::SockJs
    };
    let mut now = Instant::now();
    let mut s = Session::new(config, framing, now);
    // The model: messages sent and not yet delivered; the first close.
    let mut pending: VecDeque<String> = VecDeque::new();
    let mut first_close: Option<bytes::Bytes> = None;
    let mut incoming: VecDeque<String> = VecDeque::new();
    let mut reaped = false;
    for op in input.ops {
        match op {
            Op::Attach => match s.attach(now) {
                Err(AttachError::Reaped) => assert!(reaped),
                Err(AttachError::Busy) => assert!(s.is_attached()),
                Ok(()) => assert!(!reaped),
            },
            Op::Detach => s.detach(now),
            Op::Send(m) => match s.send(&m) {
                Ok(()) => pending.push_back(m),
                Err(Refused::Closed) => assert!(s.is_closed()),
                Err(Refused::QueueFull) => pending.clear(),
            },
            Op::SendMany(n, len) => {
                for _ in 0..n {
                    let m = "x".repeat(usize::from(len));
                    match s.send(&m) {
                        Ok(()) => pending.push_back(m),
                        Err(Refused::QueueFull) => pending.clear(),
                        Err(Refused::Closed) => {}
                    }
                }
            }
            Op::Receive(msgs) => {
                let was_closed = s.is_closed();
                let copy = msgs.clone();
                match s.receive(msgs) {
                    Ok(()) => incoming.extend(copy),
                    Err(Refused::Closed) => assert!(was_closed),
                    Err(Refused::QueueFull) => {
                        // The session closed: both of its queues are dropped.
                        incoming.clear();
                        pending.clear();
                    }
                }
            }
            Op::Take => assert_eq!(s.take_incoming(), incoming.pop_front()),
            Op::Poll => match s.poll_frame(now) {
                None => assert!(reaped || !s.is_attached() || pending.is_empty()),
                Some(f) => match f.kind {
                    FrameKind::Open => assert_eq!(&f.bytes[..], b"o"),
                    FrameKind::Heartbeat => assert_eq!(&f.bytes[..], b"h"),
                    FrameKind::Messages => {
                        assert_eq!(f.bytes[0], b'a');
                        let got = decode_array(&f.bytes[1..]).expect("a[...] decodes");
                        let want: Vec<String> = pending.drain(..).collect();
                        assert_eq!(got, want);
                    }
                    FrameKind::Raw => {
                        assert_eq!(
                            Some(&f.bytes[..]),
                            pending.pop_front().as_deref().map(str::as_bytes)
                        );
                    }
                    FrameKind::Close => {
                        assert!(
                            pending.is_empty(),
                            "queued messages go out before the close"
                        );
                        let c = first_close.get_or_insert_with(|| f.bytes.clone());
                        assert_eq!(&f.bytes, c);
                    }
                },
            },
            Op::Close(code, reason) => {
                s.close(code, &reason);
                let info = s.close_info().expect("closed");
                let c = first_close.get_or_insert_with(|| close_frame(code, &reason));
                assert_eq!(&info.frame, c, "a later close does not replace the first");
            }
            Op::Advance(ms) => now += Duration::from_millis(u64::from(ms)),
            Op::Timeout => {
                let attached = s.is_attached();
                let out = s.handle_timeout(now);
                if out.reaped {
                    assert!(!attached);
                    reaped = true;
                    pending.clear();
                    incoming.clear();
                }
            }
        }
        if first_close.is_none()
            && let Some(info) = s.close_info()
        {
            // Closed by a queue limit or by reaping.
            first_close = Some(info.frame.clone());
        }
        assert!(
            s.queued_bytes() <= max,
            "queue {} over {max}",
            s.queued_bytes()
        );
        if first_close.is_some() {
            assert!(s.is_closed(), "closed stays closed");
            assert_eq!(s.close_info().map(|c| &c.frame), first_close.as_ref());
        }
        if reaped {
            assert!(s.is_reaped());
            assert_eq!(s.poll_timeout(), None);
            assert!(s.poll_frame(now).is_none());
        }
    }
});
