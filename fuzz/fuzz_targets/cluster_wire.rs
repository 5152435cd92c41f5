//! The cluster wire decoder on arbitrary bytes (as they are, and behind a valid magic and
//! version so the fuzzer starts inside the format): never panics, and whatever decodes encodes
//! back to exactly the same bytes (nothing is lost or invented between nodes).
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use switchboard_cluster::wire;

fn check(input: Bytes) {
    if let Ok(d) = wire::decode(input.clone()) {
        let again = wire::encode(&d.origin, &d.message, d.deliveries, d.redelivered);
        assert_eq!(again, input);
    }
}

fuzz_target!(|data: &[u8]| {
    check(Bytes::copy_from_slice(data));
    let mut framed = BytesMut::with_capacity(data.len() + 3);
    framed.put_slice(b"SB");
    framed.put_u8(wire::VERSION);
    framed.put_slice(data);
    check(framed.freeze());
});
