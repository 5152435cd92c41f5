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

/// Threads commit 7-message transactions to one small queue at once: the queue never holds
/// more than its limit, and every batch is there whole, contiguous, or not at all.
#[test]
fn concurrent_commits_are_all_or_nothing() {
    const THREADS: usize = 4;
    const BATCH: usize = 7;
    const MAX: usize = 100;
    let broker = Broker::new(BrokerConfig {
        limits: Limits {
            max_pending_per_queue: MAX,
            ..Default::default()
        },
        ..Default::default()
    });
    let connect = |broker: &Broker| {
        let now = Instant::now();
        let mut s = broker.open_session(now);
        s.handle_frame(
            Frame::new(Command::Connect)
                .header("accept-version", "1.2")
                .header("host", "h"),
            now,
        );
        s
    };
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let broker = broker.clone();
            thread::spawn(move || {
                let mut committed = 0usize;
                let mut s = connect(&broker);
                for b in 0..20 {
                    let now = Instant::now();
                    s.handle_frame(Frame::new(Command::Begin).header("transaction", "x"), now);
                    for i in 0..BATCH {
                        s.handle_frame(
                            Frame::new(Command::Send)
                                .header("destination", "/queue/q")
                                .header("transaction", "x")
                                .body(format!("{t}-{b}-{i}")),
                            now,
                        );
                    }
                    s.handle_frame(
                        Frame::new(Command::Commit)
                            .header("transaction", "x")
                            .header("receipt", "c"),
                        now,
                    );
                    let mut refused = false;
                    while let Some(f) = s.poll_transmit(now) {
                        refused |= f.kind() == switchboard_broker::FrameKind::Error;
                    }
                    if refused {
                        s = connect(&broker);
                    } else {
                        committed += 1;
                    }
                    assert!(broker.metrics().backend.pending <= MAX);
                }
                committed
            })
        })
        .collect();
    let committed: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(committed, MAX / BATCH, "exactly as many batches as fit");
    let pending = broker.metrics().backend.pending;
    assert_eq!(pending, committed * BATCH);

    let now = Instant::now();
    let mut c = connect(&broker);
    c.handle_frame(
        Frame::new(Command::Subscribe)
            .header("id", "s")
            .header("destination", "/queue/q"),
        now,
    );
    let mut parser = Parser::new(Version::V1_2, ParseLimits::default());
    let mut buf = BytesMut::new();
    let mut bodies = Vec::new();
    while let Some(f) = c.poll_transmit(now) {
        f.write_to(&mut buf);
        while let Ok(Some(p)) = parser.parse(&mut buf) {
            if let Parsed::Frame(f) = p
                && f.command == Command::Message
            {
                bodies.push(String::from_utf8(f.body.to_vec()).unwrap());
            }
        }
    }
    assert_eq!(bodies.len(), pending);
    for batch in bodies.chunks(BATCH) {
        let prefix = batch[0].rsplit_once('-').unwrap().0;
        for (i, b) in batch.iter().enumerate() {
            assert_eq!(b, &format!("{prefix}-{i}"), "batches whole and contiguous");
        }
    }
}

/// Publishers on several threads, one client-ack topic subscriber with a small prefetch acking
/// as it goes: every message arrives exactly once, each publisher's in order (held messages
/// are never overtaken), none dropped.
#[test]
fn held_topic_messages_arrive_once_and_in_order() {
    const PUBLISHERS: usize = 3;
    const EACH: usize = 2000;
    let broker = Broker::new(BrokerConfig {
        limits: Limits {
            outbound_max_frames: PUBLISHERS * EACH,
            outbound_max_bytes: 64 << 20,
            ..Default::default()
        },
        ..Default::default()
    });
    let now = Instant::now();
    let mut c = broker.open_session(now);
    c.handle_frame(
        Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "h"),
        now,
    );
    c.handle_frame(
        Frame::new(Command::Subscribe)
            .header("id", "s")
            .header("destination", "/topic/t")
            .header("ack", "client-individual")
            .header("prefetch-count", "3"),
        now,
    );
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let broker = broker.clone();
            thread::spawn(move || {
                for i in 0..EACH {
                    broker
                        .publish("/topic/t", &Headers::new(), Bytes::from(format!("{p}:{i}")))
                        .unwrap();
                }
            })
        })
        .collect();
    let mut parser = Parser::new(Version::V1_2, ParseLimits::default());
    let mut buf = BytesMut::new();
    let mut next = [0usize; PUBLISHERS];
    let mut received = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while received < PUBLISHERS * EACH && Instant::now() < deadline {
        let now = Instant::now();
        let mut acks = Vec::new();
        while let Some(f) = c.poll_transmit(now) {
            f.write_to(&mut buf);
        }
        while let Ok(Some(p)) = parser.parse(&mut buf) {
            let Parsed::Frame(f) = p else { continue };
            if f.command != Command::Message {
                continue;
            }
            let body = String::from_utf8(f.body.to_vec()).unwrap();
            let (p, i) = body.split_once(':').unwrap();
            let (p, i): (usize, usize) = (p.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[p], "publisher {p}'s messages out of order");
            next[p] += 1;
            received += 1;
            acks.push(f.get("ack").unwrap().to_owned());
        }
        for a in acks {
            c.handle_frame(Frame::new(Command::Ack).header("id", a), now);
        }
        if c.is_closed() {
            break;
        }
        thread::yield_now();
    }
    for p in publishers {
        p.join().unwrap();
    }
    assert_eq!(received, PUBLISHERS * EACH);
    assert!(c.is_connected());
    assert_eq!(broker.metrics().messages_dropped, 0);
    assert_eq!(c.queued_frames(), 0);
}
