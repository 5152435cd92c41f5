//! proptest: encode → decode round trips for arbitrary messages, fragmentation and chunking,
//! both roles, with and without permessage-deflate.

use bytes::{Buf, Bytes, BytesMut};
use proptest::prelude::*;
use switchboard_ws::frame::Opcode;
use switchboard_ws::{Config, Connection, DeflateParams, Message, Payload, Role};

#[derive(Debug, Clone)]
enum Item {
    Whole(Message),
    /// A data message sent in fragments of the given sizes (Ping interleaved after the first).
    Fragmented {
        text: bool,
        data: Vec<u8>,
        sizes: Vec<usize>,
        ping: bool,
    },
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        ".{0,300}".prop_map(Message::text),
        proptest::collection::vec(any::<u8>(), 0..3000).prop_map(Message::binary),
        proptest::collection::vec(any::<u8>(), 0..=125).prop_map(|v| Message::Ping(Bytes::from(v))),
        proptest::collection::vec(any::<u8>(), 0..=125).prop_map(|v| Message::Pong(Bytes::from(v))),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        3 => message().prop_map(Item::Whole),
        1 => (any::<bool>(), ".{0,200}", proptest::collection::vec(1usize..50, 1..6), any::<bool>()).prop_map(
            |(text, s, sizes, ping)| Item::Fragmented { text, data: s.into_bytes(), sizes, ping }
        ),
    ]
}

fn drain(c: &mut Connection) -> Vec<u8> {
    let mut v = Vec::new();
    let out = c.out();
    while out.has_remaining() {
        let ch = out.chunk();
        v.extend_from_slice(ch);
        let n = ch.len();
        out.advance(n);
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn roundtrip(items in proptest::collection::vec(item(), 1..12),
                 client_sends in any::<bool>(),
                 deflate in any::<bool>(),
                 nct in any::<bool>(),
                 bits in 8u8..=15,
                 chunks in proptest::collection::vec(1usize..700, 1..20),
                 sized_reads in any::<bool>()) {
        let params = deflate.then_some(DeflateParams {
            server_no_context_takeover: nct,
            client_no_context_takeover: !nct,
            server_max_window_bits: bits,
            client_max_window_bits: 23 - bits,
        });
        let cfg = Config::default().auto_pong(false).deflate(switchboard_ws::DeflateConfig { min_compress_size: 10, ..Default::default() });
        let (tx_role, rx_role) = if client_sends { (Role::Client, Role::Server) } else { (Role::Server, Role::Client) };
        let mut tx = Connection::new(tx_role, cfg, params);
        let mut rx = Connection::new(rx_role, cfg, params);
        let mut expect = Vec::new();
        for it in &items {
            match it {
                Item::Whole(m) => { tx.send(m.clone()).unwrap(); expect.push(m.clone()); }
                Item::Fragmented { text, data, sizes, ping } => {
                    let mut parts: Vec<&[u8]> = Vec::new();
                    let mut rest = &data[..];
                    for &s in sizes {
                        let s = s.min(rest.len());
                        parts.push(&rest[..s]);
                        rest = &rest[s..];
                    }
                    parts.push(rest);
                    for (i, p) in parts.iter().enumerate() {
                        let op = if i == 0 { if *text { Opcode::Text } else { Opcode::Binary } } else { Opcode::Continuation };
                        tx.send_frame(i + 1 == parts.len(), op, Payload::Slice(p)).unwrap();
                        if i == 0 && *ping {
                            tx.send(Message::Ping(Bytes::from_static(b"mid"))).unwrap();
                            expect.push(Message::Ping(Bytes::from_static(b"mid")));
                        }
                    }
                    let d = Bytes::from(data.clone());
                    expect.push(if *text { Message::Text(d.try_into().unwrap()) } else { Message::Binary(d) });
                }
            }
        }
        let wire = drain(&mut tx);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut pos = 0;
        let mut ci = 0;
        while pos < wire.len() {
            let mut n = chunks[ci % chunks.len()];
            ci += 1;
            if sized_reads {
                // as a socket loop reads: at most what `reserve_read` allows, into spare capacity
                n = rx.decoder().reserve_read(&mut buf, n);
                prop_assert!(n > 0 && buf.capacity() - buf.len() >= n);
            }
            let n = n.min(wire.len() - pos);
            buf.extend_from_slice(&wire[pos..pos + n]);
            pos += n;
            while let Some(m) = rx.receive(&mut buf).unwrap() {
                got.push(m);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, expect);
    }
}
