//! Decoder over arbitrary bytes in arbitrary chunk sizes, both roles, deflate on/off.
//! Property beyond "no panic": decoding is chunking-invariant (same messages and the same
//! error-or-not as decoding the whole input at once), text is valid UTF-8, messages respect the
//! limits; and the word-at-a-time unmasking equals the bytewise reference. A third pass reads
//! the way `Decoder::reserve_read` says (as the tokio adapter does): same result, every read
//! gets room, and the room reserved stays bounded by what has arrived.
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

#[derive(Clone, Copy, PartialEq)]
enum Reads {
    Whole,
    Chunked,
    /// Read sizes from `chunks` (x 64), capped by `Decoder::reserve_read`.
    Reserved,
}

fn run(i: &Input, reads: Reads) -> (Vec<Message>, bool) {
    let mut dec = decoder(i);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < i.data.len() {
        let n = if reads != Reads::Whole && !i.chunks.is_empty() {
            k += 1;
            let c = i.chunks[k % i.chunks.len()] as usize + 1;
            if reads == Reads::Reserved {
                let want = c * 64;
                let room = dec.reserve_read(&mut buf, want);
                assert!(room > 0, "a read must get room");
                assert!(buf.capacity() - buf.len() >= room);
                // Never trusts a claimed length beyond 16x what arrived (or 64 KiB), nor reserves
                // more than a few times that (BytesMut may round an allocation up).
                let bound = want.max(64 << 10).max(16 * buf.len());
                assert!(
                    buf.capacity() <= 4 * bound + buf.len(),
                    "{} > {bound}",
                    buf.capacity()
                );
                room.min(i.data.len() - pos)
            } else {
                c.min(i.data.len() - pos)
            }
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
    let whole = run(&i, Reads::Whole);
    let chunked = run(&i, Reads::Chunked);
    assert_eq!(whole, chunked);
    assert_eq!(whole, run(&i, Reads::Reserved));
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
