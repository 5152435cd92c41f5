//! WebSocket codec benchmarks: switchboard-ws against tungstenite, tokio-websockets and
//! fastwebsockets, in one run, on identical inputs.
//!
//! Naming (read by `cargo xtask bench`): group = what is measured (`ws_decode`, ...), function =
//! library (`switchboard` is ours; ratios are `switchboard / peer`), parameter = input.
//!
//! What each path includes is documented in crates/ws/README.md ("Benchmarks"). In short:
//! every decode path copies the wire bytes once into the library's own read buffer (from an
//! in-memory transport, or `BytesMut::from` for our sans-IO decoder), parses headers, unmasks,
//! and yields whole messages; every encode path writes header + payload and copies the frame
//! bytes into an in-memory "socket" (a fixed scratch buffer), masking for the client role.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use bytes::Bytes;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use switchboard_bench::ws::*;
use switchboard_ws::Role;
use switchboard_ws::frame::Opcode;

fn decode_group(c: &mut Bench, group: &str, op: Opcode, inputs: &[(String, Vec<u8>)]) {
    let mut g = c.benchmark_group(group);
    for (name, payload) in inputs {
        let count = frames_for(payload.len());
        let wire = masked_frames(op, payload, count);
        // Every library must deliver the same messages before we time anything.
        let expect = decode_switchboard(&wire, count);
        for (lib, f) in DECODERS {
            assert_eq!(
                f(&wire, count),
                expect,
                "{lib} decoded {group}/{name} differently"
            );
        }
        g.throughput(Throughput::Bytes((payload.len() * count) as u64));
        for (lib, f) in DECODERS {
            g.bench_with_input(BenchmarkId::new(*lib, name), &wire, |b, wire| {
                b.iter(|| f(black_box(wire), count))
            });
        }
    }
    g.finish();
}

fn decode(c: &mut Bench) {
    let inputs: Vec<_> = SIZES
        .iter()
        .map(|&s| (label(s), pseudo_random(s, s as u64)))
        .collect();
    decode_group(c, "ws_decode", Opcode::Binary, &inputs);
    // Text: the same pipeline plus UTF-8 validation (mixed 1-4 byte code points).
    let inputs: Vec<_> = [1 << 10, 64 << 10]
        .iter()
        .map(|&s| (label(s), mixed_text(s)))
        .collect();
    decode_group(c, "ws_decode_text", Opcode::Text, &inputs);
}

// ---------------------------------------------------------------------------------------------
// Unmasking alone (in place), with memcpy of the same bytes as the ceiling

fn unmask(c: &mut Bench) {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut g = c.benchmark_group("ws_unmask");
    for &size in SIZES {
        let name = label(size);
        let src = pseudo_random(size, 7);
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = src.clone();
        g.bench_function(BenchmarkId::new("switchboard", &name), |b| {
            b.iter(|| switchboard_ws::mask::apply_mask(black_box(&mut buf), black_box(key)))
        });
        g.bench_function(BenchmarkId::new("fastwebsockets", &name), |b| {
            b.iter(|| fastwebsockets::unmask(black_box(&mut buf), black_box(key)))
        });
        g.bench_function(BenchmarkId::new("memcpy", &name), |b| {
            b.iter(|| black_box(&mut buf).copy_from_slice(black_box(&src)))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// UTF-8 validation of text payloads

fn utf8(c: &mut Bench) {
    let mut g = c.benchmark_group("ws_utf8");
    for (kind, make) in [
        ("ascii", ascii_text as fn(usize) -> Vec<u8>),
        ("mixed", mixed_text),
    ] {
        for size in [125, 64 << 10, 1 << 20] {
            let name = format!("{kind}_{}", label(size));
            let text = make(size);
            assert!(std::str::from_utf8(&text).is_ok());
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(BenchmarkId::new("switchboard", &name), &text, |b, t| {
                b.iter(|| {
                    let mut v = switchboard_ws::utf8::Utf8Validator::new();
                    v.finish(black_box(t)).is_ok()
                })
            });
            // As bytes arrive from the socket: 16 KiB reads (our stream's read size).
            g.bench_with_input(
                BenchmarkId::new("switchboard_16KiB_chunks", &name),
                &text,
                |b, t| {
                    b.iter(|| {
                        let mut v = switchboard_ws::utf8::Utf8Validator::new();
                        let ok = black_box(t).chunks(16 << 10).all(|c| v.feed(c).is_ok());
                        ok && v.finish(&[]).is_ok()
                    })
                },
            );
            g.bench_with_input(BenchmarkId::new("std", &name), &text, |b, t| {
                b.iter(|| std::str::from_utf8(black_box(t)).is_ok())
            });
            // fastwebsockets and tokio-websockets (and so their Text messages) use simdutf8.
            g.bench_with_input(BenchmarkId::new("simdutf8", &name), &text, |b, t| {
                b.iter(|| simdutf8::basic::from_utf8(black_box(t)).is_ok())
            });
        }
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// Encode: binary messages to wire bytes, written to an in-memory socket

fn encode(c: &mut Bench) {
    for (group, role) in [
        ("ws_encode_server", Role::Server),
        ("ws_encode_client", Role::Client),
    ] {
        let mut g = c.benchmark_group(group);
        for &size in SIZES {
            let name = label(size);
            let inp = EncodeInput {
                payload: Bytes::from(pseudo_random(size, 3)),
                count: frames_for(size),
            };
            g.throughput(Throughput::Bytes((size * inp.count) as u64));
            for (lib, make) in ENCODERS {
                let mut f = make(role);
                g.bench_with_input(BenchmarkId::new(*lib, &name), &inp, |b, i| b.iter(|| f(i)));
            }
        }
        g.finish();
    }
}

/// CPU time of the benchmarking thread (`CLOCK_THREAD_CPUTIME_ID`), in nanoseconds.
///
/// Every path here runs on the calling thread (the async ones are polled in place), so on an
/// idle machine this equals wall-clock time; on a shared one it leaves out the time other
/// processes held the core, which otherwise dominates the spread.
struct ThreadCpu;

fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // nanoseconds, like wall-clock time: reuse criterion's duration formatting
        WALL.formatter()
    }
}

type Bench = Criterion<ThreadCpu>;

/// Short runs: the machine is a shared 2-core box and this is a comparison, not a profile.
fn config() -> Bench {
    Criterion::default()
        .with_measurement(ThreadCpu)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = decode, unmask, utf8, encode
}
criterion_main!(benches);
