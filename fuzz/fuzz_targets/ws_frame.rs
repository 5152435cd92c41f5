//! Decoder over arbitrary bytes in arbitrary chunk sizes, both roles, deflate on/off.
//! Property beyond "no panic": decoding is chunking-invariant (same messages and the same
//! error-or-not as decoding the whole input at once), text is valid UTF-8, messages respect the
//! limits; and the word-at-a-time unmasking equals the bytewise reference.
#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_ws::deflate::Inflater;
use switchboard_ws::{Decoder, Limits, Message, Role};

#[derive(Debug, Arbitrary)]
struct Input {
    server: bool,
    deflate: Option<(u8, bool)>,
    chunks: Vec<u8>,
    mask: [u8; 4],
    offset: u8,
    data: Vec<u8>,
}

const LIMITS: Limits = Limits {
    max_frame_size: 1 << 16,
    max_message_size: 1 << 16,
    max_fragments: 64,
    max_pending_pongs: 4,
    max_handshake_size: 1024,
    max_handshake_headers: 16,
};

fn decoder(i: &Input) -> Decoder {
    let d = Decoder::new(if i.server { Role::Server } else { Role::Client }, LIMITS);
    match i.deflate {
        Some((bits, nct)) => d.with_inflater(Inflater::new(8 + bits % 8, nct)),
        None => d,
    }
}

fn run(i: &Input, chunked: bool) -> (Vec<Message>, bool) {
    let mut dec = decoder(i);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < i.data.len() {
        let n = if chunked && !i.chunks.is_empty() {
            k += 1;
            (i.chunks[k % i.chunks.len()] as usize + 1).min(i.data.len() - pos)
        } else {
            i.data.len() - pos
        };
        buf.extend_from_slice(&i.data[pos..pos + n]);
        pos += n;
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|i: Input| {
    let whole = run(&i, false);
    let chunked = run(&i, true);
    assert_eq!(whole, chunked);
    for m in &whole.0 {
        if let Message::Text(t) = m {
            assert!(std::str::from_utf8(t.as_bytes()).is_ok());
        }
        assert!(m.payload().len() <= LIMITS.max_message_size);
    }
    let mut a = i.data.clone();
    let mut b = i.data.clone();
    switchboard_ws::mask::apply_mask_offset(&mut a, i.mask, i.offset as usize);
    switchboard_ws::mask::apply_mask_bytewise(&mut b, i.mask, i.offset as usize);
    assert_eq!(a, b);
});
