//! Broker delivery throughput without sockets: publish into the broker, drain every session the
//! way a transport would (encode into one reused write buffer per session).
#![allow(missing_docs)] // criterion_group! generates undocumented public functions

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchboard_broker::{Broker, BrokerConfig, Session};
use switchboard_stomp::{Command, Frame, Headers};

fn connected(broker: &Broker, now: Instant, subscribe: Frame) -> Session {
    let mut s = broker.open_session(now);
    s.handle_frame(
        Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "b"),
        now,
    );
    s.handle_frame(subscribe, now);
    while s.poll_transmit(now).is_some() {}
    s
}

fn drain(sessions: &mut [Session], now: Instant, out: &mut BytesMut) -> usize {
    let mut n = 0;
    for s in sessions {
        out.clear();
        while let Some(f) = s.poll_transmit(now) {
            f.write_to(out);
            n += 1;
        }
    }
    n
}

fn topic_fan_out(c: &mut Criterion) {
    let now = Instant::now();
    let mut group = c.benchmark_group("broker");
    for subscribers in [1usize, 100] {
        let broker = Broker::new(BrokerConfig::default());
        let mut sessions: Vec<Session> = (0..subscribers)
            .map(|i| {
                connected(
                    &broker,
                    now,
                    Frame::new(Command::Subscribe)
                        .header("id", i.to_string())
                        .header("destination", "/topic/prices"),
                )
            })
            .collect();
        let mut headers = Headers::new();
        headers.push("content-type", "application/json");
        let body = Bytes::from(vec![b'x'; 256]);
        let mut out = BytesMut::with_capacity(64 * 1024);
        group.throughput(Throughput::Elements(subscribers as u64 * 16));
        group.bench_function(
            format!("topic_256B_x16_to_{subscribers}_subscribers"),
            |b| {
                b.iter(|| {
                    for _ in 0..16 {
                        broker
                            .publish("/topic/prices", &headers, body.clone())
                            .expect("publish");
                    }
                    black_box(drain(&mut sessions, now, &mut out))
                })
            },
        );
    }

    // Queue: 4 competing client-individual consumers, each MESSAGE acknowledged.
    let broker = Broker::new(BrokerConfig::default());
    let mut sessions: Vec<Session> = (0..4)
        .map(|i| {
            connected(
                &broker,
                now,
                Frame::new(Command::Subscribe)
                    .header("id", i.to_string())
                    .header("destination", "/queue/work")
                    .header("ack", "client-individual"),
            )
        })
        .collect();
    let mut sender = connected(
        &broker,
        now,
        Frame::new(Command::Subscribe)
            .header("id", "x")
            .header("destination", "/topic/unused"),
    );
    let body = Bytes::from(vec![b'y'; 256]);
    let mut out = BytesMut::with_capacity(64 * 1024);
    group.throughput(Throughput::Elements(64));
    group.bench_function("queue_256B_x64_send_deliver_ack_4_consumers", |b| {
        b.iter(|| {
            for _ in 0..64 {
                sender.handle_frame(
                    Frame::new(Command::Send)
                        .header("destination", "/queue/work")
                        .body(body.clone()),
                    now,
                );
            }
            for s in &mut sessions {
                out.clear();
                let mut acks = Vec::new();
                while let Some(f) = s.poll_transmit(now) {
                    f.write_to(&mut out);
                    acks.push(f);
                }
                for f in acks {
                    // Find the `ack:` header in the per-subscriber piece.
                    let head = f.chunks().nth(1).expect("head").clone();
                    let text = std::str::from_utf8(&head).expect("utf-8");
                    let id = text
                        .lines()
                        .find_map(|l| l.strip_prefix("ack:"))
                        .expect("ack header")
                        .to_owned();
                    s.handle_frame(Frame::new(Command::Ack).header("id", id), now);
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, topic_fan_out);
criterion_main!(benches);
