//! Runs one WebSocket comparison path a given number of times, for instruction counting under
//! valgrind (`cargo xtask bench --icount`): counts do not move with the load of a shared
//! machine the way wall-clock time does.
//!
//! `ws_icount decode|decode_text|encode_server|encode_client LIBRARY SIZE ITERATIONS`
//! `ws_icount list` prints the matrix xtask runs: `PATH LIBRARY SIZE BYTES_PER_ITERATION` lines.
//!
//! The paths are the ones `benches/ws.rs` times (`switchboard_bench::ws`). xtask runs each twice
//! (1 and 1 + N iterations) and divides the difference by N, which removes setup costs.

use bytes::Bytes;
use std::hint::black_box;
use switchboard_bench::ws::*;
use switchboard_ws::Role;
use switchboard_ws::frame::Opcode;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() == 1 && args[0] == "list" {
        list();
        return;
    }
    let [what, lib, size, iters] = args.as_slice() else {
        eprintln!(
            "usage: ws_icount decode|decode_text|encode_server|encode_client LIBRARY SIZE ITERATIONS"
        );
        std::process::exit(2);
    };
    let (Ok(size), Ok(iters)) = (size.parse::<usize>(), iters.parse::<usize>()) else {
        eprintln!("ws_icount: SIZE and ITERATIONS must be numbers");
        std::process::exit(2);
    };
    if size == 0 || size > 64 << 20 || iters > 1_000_000 {
        eprintln!("ws_icount: SIZE must be in 1..=64 MiB, ITERATIONS at most 1e6");
        std::process::exit(2);
    }
    let result = match what.as_str() {
        "decode" | "decode_text" => DECODERS.iter().find(|(n, _)| n == lib).map(|(_, f)| {
            let (op, payload) = if what == "decode" {
                (Opcode::Binary, pseudo_random(size, size as u64))
            } else {
                (Opcode::Text, mixed_text(size))
            };
            let count = frames_for(size);
            let wire = masked_frames(op, &payload, count);
            let mut acc = 0u64;
            for _ in 0..iters {
                acc ^= f(black_box(&wire), count);
            }
            black_box(acc);
        }),
        "encode_server" | "encode_client" => {
            ENCODERS.iter().find(|(n, _)| n == lib).map(|(_, make)| {
                let role = if what == "encode_server" {
                    Role::Server
                } else {
                    Role::Client
                };
                let inp = EncodeInput {
                    payload: Bytes::from(pseudo_random(size, 3)),
                    count: frames_for(size),
                };
                let mut f = make(role);
                for _ in 0..iters {
                    f(black_box(&inp));
                }
            })
        }
        _ => {
            eprintln!("ws_icount: unknown path `{what}`");
            std::process::exit(2);
        }
    };
    if result.is_none() {
        eprintln!("ws_icount: unknown library `{lib}` for {what}");
        std::process::exit(2);
    }
}

/// The matrix: every decode and encode path at the sizes the criterion benches use.
fn list() {
    let text_sizes = [1 << 10, 64 << 10];
    for (what, sizes, libs) in [
        (
            "decode",
            SIZES,
            DECODERS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        ),
        (
            "decode_text",
            &text_sizes[..],
            DECODERS.iter().map(|(n, _)| *n).collect(),
        ),
        (
            "encode_server",
            SIZES,
            ENCODERS.iter().map(|(n, _)| *n).collect(),
        ),
        (
            "encode_client",
            SIZES,
            ENCODERS.iter().map(|(n, _)| *n).collect(),
        ),
    ] {
        for &size in sizes {
            for lib in &libs {
                println!("{what} {lib} {size} {}", size * frames_for(size));
            }
        }
    }
}
