//! Client-to-server masking (RFC 6455 §5.3).
//!
//! Masking is an XOR of the payload with a 4-byte key repeated over its length. It is its own
//! inverse, so [`apply_mask`] both masks and unmasks. The loop works a `u32` word at a time, which
//! the compiler vectorizes (SSE2 on x86-64, NEON on aarch64) without any `unsafe`.

/// XORs `buf` in place with `key`, as if `buf` started at payload offset 0.
///
/// ```
/// let mut data = *b"Hello";
/// switchboard_ws::mask::apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d]);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]); // RFC 6455 §5.7
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    apply_mask_offset(buf, key, 0);
}

/// XORs `buf` in place with `key`, where `buf` starts at byte `offset` of the masked payload.
///
/// Used to unmask a frame incrementally (text as its bytes arrive): each byte is unmasked once.
#[inline]
pub fn apply_mask_offset(buf: &mut [u8], key: [u8; 4], offset: usize) {
    if buf.len() < SMALL_LEN {
        // Small payloads (most chat and echo messages) inline, without the alignment and AVX2
        // dispatch of the long path: 16 B echo, ~60 -> ~20 instructions per unmask.
        xor_short(buf, rotate_key(key, offset));
    } else {
        apply_mask_long(buf, key, offset);
    }
}

/// Below this length [`apply_mask_offset`] takes the short inline path.
const SMALL_LEN: usize = 64;

/// XORs a short slice whose first byte is at key phase 0 of `key`: words, then at most 3 bytes.
#[inline(always)]
fn xor_short(buf: &mut [u8], key: [u8; 4]) {
    let k32 = u32::from_ne_bytes(key);
    let (words, rest) = buf.as_chunks_mut::<4>();
    for w in words {
        *w = (u32::from_ne_bytes(*w) ^ k32).to_ne_bytes();
    }
    for (i, b) in rest.iter_mut().enumerate() {
        *b ^= key[i];
    }
}

fn apply_mask_long(mut buf: &mut [u8], key: [u8; 4], mut offset: usize) {
    if buf.len() >= ALIGN_MIN_LEN {
        // The head (up to 31 bytes) separately, so the word loop starts 32-byte aligned:
        // unaligned 32-byte loads and stores that straddle cache lines made a 64 KiB unmask
        // ~1.5x slower (a payload starts 2 to 14 bytes after its header). In words, not byte by
        // byte (31 single-byte XORs cost ~150 instructions per call).
        let head_len = buf.as_ptr().align_offset(32).min(buf.len());
        let (head, rest) = buf.split_at_mut(head_len);
        xor_short(head, rotate_key(key, offset));
        buf = rest;
        offset += head_len;
    }
    let key = rotate_key(key, offset);
    let k32 = u32::from_ne_bytes(key);
    // 4-byte words: the form LLVM vectorizes best here (measured against u64 and u128 words and
    // 32-byte blocks: 1.5–2.5x faster from 1 KiB up); with AVX2 on x86-64 when the CPU has it.
    let (words, rest) = buf.as_chunks_mut::<4>();
    if !(words.len() >= AVX2_MIN_WORDS && avx2::xor_words(words, k32)) {
        xor_words(words, k32);
    }
    // at most 3 bytes left, at key phase 0
    for (i, b) in rest.iter_mut().enumerate() {
        *b ^= key[i];
    }
}

/// XORs each word with `k32`; the portable loop (SSE2 on x86-64 after vectorization).
///
/// Blocks of [`BLOCK_WORDS`] words first: a loop with a fixed trip count is unrolled completely,
/// so the vector loop spends two instructions (XOR with a memory operand, store) per vector and
/// its loop overhead once per 2 KiB (10 x 64 KiB echo: the unmask went from ~5.7k to ~4.3k
/// instructions per message with AVX2, against ~4.8k for tokio-websockets' loop).
#[inline(always)]
fn xor_words(words: &mut [[u8; 4]], k32: u32) {
    let (blocks, rest) = words.as_chunks_mut::<BLOCK_WORDS>();
    for block in blocks {
        for w in block {
            *w = (u32::from_ne_bytes(*w) ^ k32).to_ne_bytes();
        }
    }
    for w in rest {
        *w = (u32::from_ne_bytes(*w) ^ k32).to_ne_bytes();
    }
}

/// Words per unrolled block of [`xor_words`] (2 KiB: 64 AVX2 or 128 SSE2 vectors).
const BLOCK_WORDS: usize = 512;

/// From this length on, [`apply_mask_offset`] aligns the start of its word loop.
const ALIGN_MIN_LEN: usize = 256;

/// Below this many words the AVX2 dispatch is not worth its feature check.
const AVX2_MIN_WORDS: usize = 64;

/// The same loop compiled with AVX2 enabled, chosen at run time. The only `unsafe` in the crate:
/// calling a `#[target_feature]` function, after checking the CPU has the feature. The loop
/// itself is safe code; `fuzz/fuzz_targets/ws_frame.rs` compares the result with
/// [`apply_mask_bytewise`].
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    #[target_feature(enable = "avx2")]
    fn xor_words_avx2(words: &mut [[u8; 4]], k32: u32) {
        super::xor_words(words, k32);
    }

    /// XORs with AVX2 if the CPU has it; returns false (doing nothing) otherwise.
    #[inline]
    pub(super) fn xor_words(words: &mut [[u8; 4]], k32: u32) -> bool {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: `xor_words_avx2` requires only the AVX2 target feature, which the running
            // CPU was detected to support on the line above.
            unsafe { xor_words_avx2(words, k32) };
            true
        } else {
            false
        }
    }
}

/// Portable stand-in on other architectures: never handles the words.
#[cfg(not(target_arch = "x86_64"))]
mod avx2 {
    #[inline]
    pub(super) fn xor_words(_words: &mut [[u8; 4]], _k32: u32) -> bool {
        false
    }
}

/// Writes `src` XOR `key` into `dst` (same length) in one pass: masking while copying, as a
/// client does when it writes a frame.
#[inline]
pub fn mask_copy(dst: &mut [u8], src: &[u8], key: [u8; 4]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let k32 = u32::from_ne_bytes(key);
    let (dc, dr) = dst.as_chunks_mut::<4>();
    let (sc, sr) = src.as_chunks::<4>();
    for (d, s) in dc.iter_mut().zip(sc) {
        *d = (u32::from_ne_bytes(*s) ^ k32).to_ne_bytes();
    }
    for (i, (d, s)) in dr.iter_mut().zip(sr).enumerate() {
        *d = s ^ key[i];
    }
}

/// The byte-at-a-time reference implementation (used by tests and fuzzing to check the fast one).
pub fn apply_mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) & 3];
    }
}

/// The key as seen from payload byte `offset` (a byte rotation, done on a `u32`).
#[inline]
fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    u32::from_le_bytes(key)
        .rotate_right(8 * (offset & 3) as u32)
        .to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_bytewise_for_all_lengths_and_offsets() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..70 {
            for offset in 0..8 {
                let orig: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = orig.clone();
                let mut slow = orig.clone();
                apply_mask_offset(&mut fast, key, offset);
                apply_mask_bytewise(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn matches_bytewise_at_every_alignment() {
        let key = [0x9a, 0xbc, 0xde, 0xf0];
        let orig: Vec<u8> = (0..5200u32).map(|i| (i * 13 + 5) as u8).collect();
        for start in 0..40 {
            // around the short path's bound, the alignment bound and the 1 KiB blocks
            for len in [
                63, 64, 65, 255, 256, 257, 300, 1000, 1023, 1024, 1025, 2048, 5100,
            ] {
                for offset in 0..4 {
                    let mut fast = orig.clone();
                    let mut slow = orig.clone();
                    apply_mask_offset(&mut fast[start..start + len], key, offset);
                    apply_mask_bytewise(&mut slow[start..start + len], key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn incremental_equals_whole() {
        let key = [1, 2, 3, 4];
        let orig: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut whole = orig.clone();
        apply_mask(&mut whole, key);
        let mut parts = orig.clone();
        let mut off = 0;
        for step in [1usize, 3, 7, 8, 13, 100, 868] {
            apply_mask_offset(&mut parts[off..off + step], key, off);
            off += step;
        }
        assert_eq!(off, 1000);
        assert_eq!(whole, parts);
    }

    #[test]
    fn mask_copy_matches_in_place() {
        for len in 0..40 {
            let src: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut a = src.clone();
            apply_mask(&mut a, [5, 6, 7, 8]);
            let mut b = vec![0; len];
            mask_copy(&mut b, &src, [5, 6, 7, 8]);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn involution() {
        let mut d = b"some payload bytes".to_vec();
        apply_mask(&mut d, [9, 8, 7, 6]);
        apply_mask(&mut d, [9, 8, 7, 6]);
        assert_eq!(d, b"some payload bytes");
    }
}
