//! Flow control between queues and sessions: a queue hands a session only as much as its
//! outbound queue has room for, and resumes as the transport drains it. The slow-consumer policy
//! is for clients that stop reading while topics keep coming, never for one that subscribed to a
//! queue with a backlog.

mod harness;

use bytes::Bytes;
use harness::{Net, send, subscribe, subscribe_ack};
use switchboard_broker::{BrokerConfig, ErrorKind, Limits};
use switchboard_stomp::{Command, Frame};

fn numbered(dest: &str, i: usize) -> Frame {
    Frame::new(Command::Send)
        .header("destination", dest)
        .body(Bytes::from(i.to_string()))
}

fn fill(net: &mut Net, producer: usize, dest: &str, n: usize) {
    for i in 0..n {
        net.clients[producer]
            .session
            .handle_frame(numbered(dest, i), net.now);
        // Drain the producer's own output (nothing but possible receipts) now and then.
        if i % 1024 == 0 {
            net.pump();
        }
    }
    net.pump();
}

/// Receives everything client `c` has been sent, pumping until it stops coming, and checks the
/// bodies are 0..n in order. `ack` acknowledges each MESSAGE (client-individual).
fn drain_in_order(net: &mut Net, c: usize, n: usize, ack: bool) {
    let mut next = 0usize;
    let mut idle_rounds = 0;
    while next < n && idle_rounds < 3 {
        net.pump();
        let mut got = 0;
        while let Some(f) = net.recv(c) {
            assert_eq!(f.command, Command::Message, "{f:?}");
            let body = std::str::from_utf8(&f.body).unwrap();
            assert_eq!(body, next.to_string(), "out of order or lost");
            if ack {
                let id = f.get("ack").expect("ack header").to_owned();
                net.clients[c]
                    .session
                    .handle_frame(Frame::new(Command::Ack).header("id", id), net.now);
            }
            next += 1;
            got += 1;
        }
        idle_rounds = if got == 0 { idle_rounds + 1 } else { 0 };
    }
    assert_eq!(next, n, "client {c} received {next} of {n}");
}

#[test]
fn a_backlog_of_10000_drains_to_a_default_auto_consumer() {
    // Defaults: 4,096 frames of outbound queue, 10,000 messages a queue may keep.
    let mut net = Net::new(BrokerConfig::default());
    let p = net.connect("1.2");
    fill(&mut net, p, "/queue/backlog", 10_000);
    assert_eq!(net.broker.metrics().backend.pending, 10_000);
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/queue/backlog"));
    assert!(
        net.clients[c].session.queued_frames() <= 4096,
        "the queue never overfills the session"
    );
    drain_in_order(&mut net, c, 10_000, false);
    let m = net.broker.metrics();
    assert_eq!(m.errors_of(ErrorKind::SlowConsumer), 0);
    assert_eq!(m.messages_dropped, 0);
    assert_eq!(m.backend.pending, 0);
    assert!(!net.clients[c].session.is_closed());
}

#[test]
fn a_backlog_of_10000_drains_to_a_client_individual_consumer() {
    let mut net = Net::new(BrokerConfig::default());
    let p = net.connect("1.2");
    fill(&mut net, p, "/queue/backlog", 10_000);
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/queue/backlog", "client-individual"));
    drain_in_order(&mut net, c, 10_000, true);
    let m = net.broker.metrics();
    assert_eq!(m.errors_of(ErrorKind::SlowConsumer), 0);
    assert_eq!(m.backend.pending, 0);
}

#[test]
fn a_large_backlog_drains_with_small_outbound_limits() {
    // 200,000 waiting messages through an outbound queue of 64 frames: the queue is offered
    // again each time the session drains to its low-water mark.
    let mut net = Net::new(BrokerConfig {
        limits: Limits {
            outbound_max_frames: 64,
            max_pending_per_queue: 1_000_000,
            ..Default::default()
        },
        ..Default::default()
    });
    let p = net.connect("1.2");
    fill(&mut net, p, "/queue/big", 200_000);
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/queue/big"));
    assert!(net.clients[c].session.queued_frames() <= 64);
    drain_in_order(&mut net, c, 200_000, false);
    assert_eq!(net.broker.metrics().errors_of(ErrorKind::SlowConsumer), 0);
}

#[test]
fn the_byte_limit_throttles_queues_too() {
    let mut net = Net::new(BrokerConfig {
        limits: Limits {
            outbound_max_bytes: 8 * 1024,
            ..Default::default()
        },
        ..Default::default()
    });
    let p = net.connect("1.2");
    static BIG: [u8; 1000] = [b'x'; 1000];
    for _ in 0..500 {
        net.frame(
            p,
            Frame::new(Command::Send)
                .header("destination", "/queue/bytes")
                .body(Bytes::from_static(&BIG)),
        );
    }
    let c = net.connect("1.2");
    net.clients[c].paused = true;
    net.frame(c, subscribe("s", "/queue/bytes"));
    assert!(
        net.clients[c].session.queued_bytes() <= 4 * 1024 + 1200,
        "queue traffic stops at half the byte limit: {}",
        net.clients[c].session.queued_bytes()
    );
    net.clients[c].paused = false;
    let mut n = 0;
    for _ in 0..2000 {
        net.pump();
        while let Some(f) = net.recv(c) {
            assert_eq!(f.body.len(), 1000);
            n += 1;
        }
        if n == 500 {
            break;
        }
    }
    assert_eq!(n, 500);
    assert_eq!(net.broker.metrics().errors_of(ErrorKind::SlowConsumer), 0);
}

#[test]
fn a_consumer_that_stops_reading_a_queue_is_bypassed_not_dropped() {
    let mut net = Net::new(BrokerConfig {
        limits: Limits {
            outbound_max_frames: 16,
            ..Default::default()
        },
        ..Default::default()
    });
    let paused = net.connect("1.2");
    let reader = net.connect("1.2");
    let p = net.connect("1.2");
    net.frame(paused, subscribe("s", "/queue/q"));
    net.frame(reader, subscribe("s", "/queue/q"));
    net.clients[paused].paused = true;
    for _ in 0..100 {
        net.frame(p, send("/queue/q", "m"));
        assert!(net.clients[paused].session.queued_frames() <= 8);
    }
    let to_reader = net.messages(reader).len();
    net.clients[paused].paused = false;
    net.pump();
    let to_paused = net.messages(paused).len();
    assert_eq!(to_reader + to_paused, 100, "none lost");
    assert!(to_paused <= 8, "{to_paused}");
    assert!(!net.clients[paused].session.is_closed());
    assert_eq!(net.broker.metrics().errors_of(ErrorKind::SlowConsumer), 0);
}

#[test]
fn topics_still_drop_a_consumer_that_stops_reading() {
    let mut net = Net::new(BrokerConfig {
        limits: Limits {
            outbound_max_frames: 8,
            ..Default::default()
        },
        ..Default::default()
    });
    let slow = net.connect("1.2");
    let p = net.connect("1.2");
    net.frame(slow, subscribe("s", "/topic/t"));
    net.frame(slow, subscribe("q", "/queue/q"));
    net.clients[slow].paused = true;
    for _ in 0..20 {
        net.frame(p, send("/topic/t", "data"));
    }
    net.clients[slow].paused = false;
    net.pump();
    let mut saw_error = false;
    while let Some(f) = net.recv(slow) {
        if f.command == Command::Error {
            saw_error = true;
        }
    }
    assert!(saw_error);
    assert_eq!(net.broker.metrics().errors_of(ErrorKind::SlowConsumer), 1);
}
