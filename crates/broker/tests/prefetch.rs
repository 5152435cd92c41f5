//! Topic (fan-out) subscriptions with client acks and `prefetch-count`: messages beyond the
//! limit are held for the subscription (charged against the session's outbound limits), sent in
//! order as ACK/NACKs give credit back, and never lost silently — the slow-consumer policy
//! decides when the held backlog reaches the outbound limits.

mod harness;

use harness::*;
use switchboard_broker::{BrokerConfig, ErrorKind, Limits, SlowConsumerPolicy};
use switchboard_stomp::{Command, Frame};

fn ack(id: &str) -> Frame {
    Frame::new(Command::Ack).header("id", id)
}
fn nack(id: &str) -> Frame {
    Frame::new(Command::Nack).header("id", id)
}
fn bodies(frames: &[Frame]) -> Vec<String> {
    frames.iter().map(|f| body(f).to_owned()).collect()
}

const BODIES: [&str; 6] = ["1", "2", "3", "4", "5", "6"];

#[test]
fn topic_messages_beyond_prefetch_are_held_then_sent_in_order() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(
        c,
        subscribe_ack("s", "/topic/t", "client-individual").header("prefetch-count", "2"),
    );
    let p = net.connect("1.2");
    for b in &BODIES[..5] {
        net.frame(p, send("/topic/t", b));
    }
    let first = net.messages(c);
    assert_eq!(bodies(&first), ["1", "2"]);
    // Three held, counted as queued outbound frames; none dropped.
    assert_eq!(net.clients[c].session.queued_frames(), 3);
    assert_eq!(net.broker.metrics().messages_dropped, 0);

    net.frame(c, ack(first[0].get("ack").unwrap()));
    let next = net.messages(c);
    assert_eq!(bodies(&next), ["3"]);
    // A NACK gives credit back too (the topic message itself is discarded).
    net.frame(c, nack(first[1].get("ack").unwrap()));
    assert_eq!(bodies(&net.messages(c)), ["4"]);
    // Newer messages queue up behind the held ones, never ahead of them.
    net.frame(p, send("/topic/t", "6"));
    net.frame(c, ack(next[0].get("ack").unwrap()));
    assert_eq!(bodies(&net.messages(c)), ["5"]);
    assert_eq!(net.clients[c].session.queued_frames(), 1);
    assert_eq!(net.clients[c].session.unacked_count(), 2);
}

#[test]
fn cumulative_ack_releases_several_held_messages() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.1");
    net.frame(
        c,
        subscribe_ack("s", "/topic/**", "client").header("prefetch-count", "2"),
    );
    let p = net.connect("1.2");
    for b in BODIES {
        net.frame(p, send("/topic/a/b", b));
    }
    let first = net.messages(c);
    assert_eq!(bodies(&first), ["1", "2"]);
    net.frame(
        c,
        Frame::new(Command::Ack)
            .header("message-id", first[1].get("message-id").unwrap())
            .header("subscription", "s"),
    );
    assert_eq!(bodies(&net.messages(c)), ["3", "4"]);
    assert_eq!(net.clients[c].session.queued_frames(), 2);
}

#[test]
fn unsubscribe_gives_back_what_was_held() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(
        c,
        subscribe_ack("s", "/topic/t", "client-individual").header("prefetch-count", "1"),
    );
    let p = net.connect("1.2");
    for b in BODIES {
        net.frame(p, send("/topic/t", b));
    }
    assert_eq!(net.messages(c).len(), 1);
    assert_eq!(net.clients[c].session.queued_frames(), 5);
    net.frame(c, Frame::new(Command::Unsubscribe).header("id", "s"));
    assert_eq!(net.clients[c].session.queued_frames(), 0);
    assert_eq!(net.clients[c].session.queued_bytes(), 0);
    net.frame(p, send("/topic/t", "after"));
    net.expect_nothing(c);
    assert!(net.clients[c].session.is_connected());
}

#[test]
fn held_backlog_at_the_outbound_limit_disconnects_by_default() {
    let mut net = Net::new(BrokerConfig {
        limits: Limits {
            outbound_max_frames: 8,
            ..Default::default()
        },
        ..Default::default()
    });
    let never_acks = net.connect("1.2");
    net.frame(
        never_acks,
        subscribe_ack("s", "/topic/t", "client").header("prefetch-count", "1"),
    );
    let other = net.connect("1.2");
    net.frame(other, subscribe("s", "/topic/t"));
    let p = net.connect("1.2");
    for _ in 0..20 {
        net.frame(p, send("/topic/t", "x"));
    }
    assert_eq!(net.message(never_acks).get("subscription"), Some("s"));
    net.expect_error(never_acks, "Slow consumer");
    assert_eq!(net.messages(other).len(), 20, "others are unaffected");
    assert_eq!(net.broker.metrics().errors_of(ErrorKind::SlowConsumer), 1);
}

#[test]
fn drop_policy_counts_what_does_not_fit() {
    let mut net = Net::new(BrokerConfig {
        limits: Limits {
            outbound_max_frames: 4,
            ..Default::default()
        },
        slow_consumer: SlowConsumerPolicy::DropMessages,
        ..Default::default()
    });
    let c = net.connect("1.2");
    net.frame(
        c,
        subscribe_ack("s", "/topic/t", "client-individual").header("prefetch-count", "1"),
    );
    let p = net.connect("1.2");
    for i in 0..20u8 {
        net.frame(
            p,
            Frame::new(Command::Send)
                .header("destination", "/topic/t")
                .body(vec![b'a' + i]),
        );
    }
    // One in flight, four held (the outbound limit), fifteen dropped and counted.
    let first = net.messages(c);
    assert_eq!(bodies(&first), ["a"]);
    assert_eq!(net.broker.metrics().messages_dropped, 15);
    let mut got = Vec::new();
    let mut last = first[0].clone();
    for _ in 0..4 {
        net.frame(c, ack(last.get("ack").unwrap()));
        last = net.message(c);
        got.push(body(&last).to_owned());
    }
    assert_eq!(got, ["b", "c", "d", "e"]);
    net.frame(c, ack(last.get("ack").unwrap()));
    net.expect_nothing(c);
    assert!(net.clients[c].session.is_connected());
}
