//! Many threads at once, as under a multi-threaded server: producers publish to a queue while
//! consumers on other threads receive, acknowledge, and sometimes drop their connection with
//! messages unacknowledged. Every message must be acknowledged exactly once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use switchboard_broker::{Broker, BrokerConfig, Limits, Session};
use switchboard_stomp::{Command, Frame, Headers, Limits as ParseLimits, Parsed, Parser, Version};

const PRODUCERS: usize = 3;
const PER_PRODUCER: usize = 3000;
const CONSUMERS: usize = 3;

fn consumer(broker: &Broker) -> Session {
    let now = Instant::now();
    let mut s = broker.open_session(now);
    s.handle_frame(
        Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "h"),
        now,
    );
    s.handle_frame(
        Frame::new(Command::Subscribe)
            .header("id", "s")
            .header("destination", "/queue/work")
            .header("ack", "client-individual")
            .header("prefetch-count", "16"),
        now,
    );
    s
}

#[test]
fn queue_messages_acked_exactly_once_under_concurrency() {
    let broker = Broker::new(BrokerConfig {
        limits: Limits {
            max_pending_per_queue: PRODUCERS * PER_PRODUCER,
            ..Default::default()
        },
        ..Default::default()
    });
    let acked: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let duplicates: Arc<Mutex<Vec<u64>>> = Arc::default();
    let total = (PRODUCERS * PER_PRODUCER) as u64;
    let deadline = Instant::now() + Duration::from_secs(120);

    let mut handles = Vec::new();
    for c in 0..CONSUMERS {
        let broker = broker.clone();
        let acked = acked.clone();
        let duplicates = duplicates.clone();
        handles.push(thread::spawn(move || {
            let mut session = consumer(&broker);
            let mut parser = Parser::new(Version::V1_2, ParseLimits::default());
            let mut buf = BytesMut::new();
            let mut received = 0usize;
            loop {
                if acked.lock().unwrap().len() as u64 == total || Instant::now() > deadline {
                    break;
                }
                let now = Instant::now();
                let mut frames = Vec::new();
                while let Some(out) = session.poll_transmit(now) {
                    out.write_to(&mut buf);
                    while let Ok(Some(p)) = parser.parse(&mut buf) {
                        if let Parsed::Frame(f) = p {
                            frames.push(f);
                        }
                    }
                }
                if frames.is_empty() {
                    thread::yield_now();
                    continue;
                }
                for f in frames {
                    if f.command != Command::Message {
                        continue;
                    }
                    received += 1;
                    // Consumer 0 drops its connection every 500 messages, without acking.
                    if c == 0 && received.is_multiple_of(500) {
                        session = consumer(&broker);
                        parser = Parser::new(Version::V1_2, ParseLimits::default());
                        buf.clear();
                        break;
                    }
                    let n: u64 = std::str::from_utf8(&f.body).unwrap().parse().unwrap();
                    let id = f.get("ack").unwrap().to_owned();
                    session.handle_frame(Frame::new(Command::Ack).header("id", id), now);
                    assert!(session.is_connected(), "ACK refused");
                    if !acked.lock().unwrap().insert(n) {
                        duplicates.lock().unwrap().push(n);
                    }
                }
            }
        }));
    }
    for p in 0..PRODUCERS {
        let broker = broker.clone();
        handles.push(thread::spawn(move || {
            for i in 0..PER_PRODUCER {
                let n = (p * PER_PRODUCER + i) as u64;
                broker
                    .publish("/queue/work", &Headers::new(), Bytes::from(n.to_string()))
                    .expect("publish");
            }
        }));
    }
    for h in handles {
        h.join().expect("thread");
    }
    assert!(
        duplicates.lock().unwrap().is_empty(),
        "acked twice: {:?}",
        duplicates.lock().unwrap()
    );
    assert_eq!(acked.lock().unwrap().len() as u64, total, "messages lost");
    let m = broker.metrics();
    assert_eq!(m.backend.pending, 0);
    assert!(
        m.messages_redelivered > 0,
        "the dropping consumer caused redeliveries"
    );
}

#[test]
fn topic_fan_out_from_many_threads_reaches_everyone() {
    let broker = Broker::new(BrokerConfig::default());
    let now = Instant::now();
    let mut subs: Vec<Session> = (0..4)
        .map(|i| {
            let mut s = broker.open_session(now);
            s.handle_frame(
                Frame::new(Command::Connect)
                    .header("accept-version", "1.2")
                    .header("host", "h"),
                now,
            );
            s.handle_frame(
                Frame::new(Command::Subscribe)
                    .header("id", i.to_string())
                    .header("destination", "/topic/**"),
                now,
            );
            while s.poll_transmit(now).is_some() {}
            s
        })
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let broker = broker.clone();
            thread::spawn(move || {
                for i in 0..500 {
                    broker
                        .publish(
                            &format!("/topic/t{t}"),
                            &Headers::new(),
                            Bytes::from(format!("{t}-{i}")),
                        )
                        .expect("publish");
                }
            })
        })
        .collect();
    let mut counts = vec![0usize; subs.len()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts.iter().any(|&c| c < 2000) && Instant::now() < deadline {
        for (s, c) in subs.iter_mut().zip(counts.iter_mut()) {
            while s.poll_transmit(Instant::now()).is_some() {
                *c += 1;
            }
        }
        thread::yield_now();
    }
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(counts, vec![2000; 4]);
}
