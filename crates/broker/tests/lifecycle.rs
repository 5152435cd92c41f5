//! Message lifecycle: `redelivered` on every MESSAGE, delivery counting and dead-lettering past
//! `max_redeliveries`, expiry (`expires` header, queue TTL) and queue overflow policies, with a
//! fake wall clock.

mod harness;

use std::time::{Duration, SystemTime};

use harness::{Net, body, send, subscribe, subscribe_ack};
use switchboard_broker::{BrokerConfig, ErrorKind, Limits, ManualClock, Overflow, QueuePolicy};
use switchboard_stomp::{Command, Frame};

fn clock() -> ManualClock {
    ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

fn config(clock: &ManualClock, queues: Vec<QueuePolicy>) -> BrokerConfig {
    BrokerConfig {
        queues,
        clock: clock.clock(),
        ..BrokerConfig::default()
    }
}

fn nack(id: &str) -> Frame {
    Frame::new(Command::Nack).header("id", id)
}

fn ack(id: &str) -> Frame {
    Frame::new(Command::Ack).header("id", id)
}

/// NACKs every MESSAGE client `c` gets until none comes; returns how many it got and their
/// `redelivered` headers.
fn nack_until_gone(net: &mut Net, c: usize) -> Vec<String> {
    let mut flags = Vec::new();
    while let Some(m) = net.recv(c) {
        assert_eq!(m.command, Command::Message, "{m:?}");
        flags.push(m.get("redelivered").expect("redelivered header").to_owned());
        let id = m.get("ack").expect("ack").to_owned();
        net.frame(c, nack(&id));
    }
    flags
}

#[test]
fn every_message_says_redelivered_false_on_first_delivery() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, subscribe("auto-q", "/queue/q"));
    net.frame(c, subscribe_ack("client-q", "/queue/r", "client"));
    net.frame(c, subscribe("auto-t", "/topic/t"));
    net.frame(
        c,
        subscribe_ack("client-t", "/topic/u", "client-individual"),
    );
    let p = net.connect("1.0");
    for d in ["/queue/q", "/queue/r", "/topic/t", "/topic/u"] {
        net.frame(p, send(d, "x"));
    }
    let ms = net.messages(c);
    assert_eq!(ms.len(), 4);
    for m in &ms {
        assert_eq!(m.get("redelivered"), Some("false"), "{m:?}");
    }
    // A 1.0 session gets it too.
    let old = net.connect("1.0");
    net.frame(old, subscribe("s", "/queue/q"));
    net.frame(p, send("/queue/q", "y"));
    assert_eq!(net.message(old).get("redelivered"), Some("false"));
}

#[test]
fn nacked_past_max_redeliveries_goes_to_the_dead_letter_queue() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![QueuePolicy {
            pattern: "/queue/jobs".into(),
            max_redeliveries: Some(2),
            ..QueuePolicy::default()
        }],
    ));
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/queue/jobs", "client-individual"));
    let dlq = net.connect("1.2");
    net.frame(dlq, subscribe("d", "/queue/DLQ.jobs"));
    let p = net.connect("1.2");
    net.frame(
        p,
        send("/queue/jobs", "poison").header("content-type", "text/plain"),
    );
    let first = net.clients[c].inbox.front().cloned().expect("delivered");
    // Delivered 1 + 2 times, then dead-lettered instead of requeued.
    assert_eq!(nack_until_gone(&mut net, c), ["false", "true", "true"]);
    let d = net.message(dlq);
    assert_eq!(body(&d), "poison");
    assert_eq!(d.get("destination"), Some("/queue/DLQ.jobs"));
    assert_eq!(d.get("original-destination"), Some("/queue/jobs"));
    assert_eq!(d.get("dead-letter-reason"), Some("max-redeliveries"));
    assert_eq!(d.get("delivery-count"), Some("3"));
    assert_eq!(d.get("content-type"), Some("text/plain"));
    assert_eq!(d.get("message-id"), first.get("message-id"));
    assert_eq!(d.get("redelivered"), Some("false"));
    let m = net.broker.metrics();
    assert_eq!(m.backend.dead_lettered, 1);
    assert_eq!(m.backend.discarded, 0);
    assert_eq!(m.backend.pending, 0);
}

#[test]
fn default_max_redeliveries_is_ten() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/queue/q", "client"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "m"));
    assert_eq!(nack_until_gone(&mut net, c).len(), 11);
    assert_eq!(net.broker.metrics().backend.dead_lettered, 1);
    // Kept in the dead-letter queue until someone reads it.
    let d = net.connect("1.2");
    net.frame(d, subscribe("d", "/queue/DLQ.q"));
    assert_eq!(net.message(d).get("delivery-count"), Some("11"));
}

#[test]
fn unlimited_redeliveries_keep_redelivering() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![QueuePolicy {
            max_redeliveries: None,
            ..QueuePolicy::default()
        }],
    ));
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/queue/q", "client-individual"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "m"));
    for i in 0..50 {
        let m = net.message(c);
        assert_eq!(
            m.get("redelivered"),
            Some(if i == 0 { "false" } else { "true" })
        );
        net.frame(c, nack(m.get("ack").unwrap()));
    }
    assert_eq!(net.broker.metrics().backend.dead_lettered, 0);
}

#[test]
fn consumers_that_vanish_with_the_message_count_as_deliveries() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![QueuePolicy {
            max_redeliveries: Some(1),
            ..QueuePolicy::default()
        }],
    ));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/crash", "kills consumers"));
    for round in 0..2 {
        let c = net.connect("1.2");
        net.frame(c, subscribe_ack("s", "/queue/crash", "client"));
        let m = net.message(c);
        assert_eq!(
            m.get("redelivered"),
            Some(if round == 0 { "false" } else { "true" })
        );
        // The consumer's connection drops without an ACK.
        net.session(c).transport_closed();
    }
    let m = net.broker.metrics();
    assert_eq!(m.backend.dead_lettered, 1);
    assert_eq!(
        m.backend.pending, 1,
        "the dead letter waits in /queue/DLQ.crash"
    );
}

#[test]
fn deliveries_the_client_never_saw_do_not_count() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![QueuePolicy {
            max_redeliveries: Some(0),
            ..QueuePolicy::default()
        }],
    ));
    let p = net.connect("1.2");
    let c = net.connect("1.2");
    // A consumer that does not read: the message waits in its outbound queue, unseen.
    net.clients[c].paused = true;
    net.frame(c, subscribe("s", "/queue/q"));
    net.frame(p, send("/queue/q", "m"));
    assert_eq!(net.clients[c].session.queued_frames(), 1);
    net.session(c).transport_closed();
    assert_eq!(net.broker.metrics().backend.dead_lettered, 0);
    let d = net.connect("1.2");
    net.frame(d, subscribe("s", "/queue/q"));
    let m = net.message(d);
    assert_eq!(body(&m), "m");
    assert_eq!(m.get("redelivered"), Some("false"));
}

#[test]
fn dead_lettering_can_be_disabled_and_is_counted() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![QueuePolicy {
            max_redeliveries: Some(0),
            dead_letter: None,
            ..QueuePolicy::default()
        }],
    ));
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/queue/q", "client"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "m"));
    assert_eq!(nack_until_gone(&mut net, c).len(), 1);
    let m = net.broker.metrics();
    assert_eq!(m.backend.discarded, 1);
    assert_eq!(m.backend.dead_lettered, 0);
    assert_eq!(m.backend.pending, 0);
}

#[test]
fn dead_letter_destination_per_prefix() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![
            QueuePolicy {
                pattern: "/queue/orders.**".into(),
                max_redeliveries: Some(0),
                dead_letter: Some("/queue/orders.dead".into()),
                ..QueuePolicy::default()
            },
            QueuePolicy {
                pattern: "/queue/**".into(),
                max_redeliveries: Some(0),
                dead_letter: Some("/queue/{name}.failed".into()),
                ..QueuePolicy::default()
            },
        ],
    ));
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("a", "/queue/orders.eu", "client"));
    net.frame(c, subscribe_ack("b", "/queue/mail", "client"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/orders.eu", "o"));
    net.frame(p, send("/queue/mail", "m"));
    assert_eq!(nack_until_gone(&mut net, c).len(), 2);
    let d = net.connect("1.2");
    net.frame(d, subscribe("a", "/queue/orders.dead"));
    net.frame(d, subscribe("b", "/queue/mail.failed"));
    let got = net.messages(d);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].get("original-destination"), Some("/queue/orders.eu"));
    assert_eq!(got[1].get("original-destination"), Some("/queue/mail"));
}

#[test]
fn dead_letters_are_never_dead_lettered_again() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![
            QueuePolicy {
                pattern: "/queue/DLQ.*".into(),
                ttl: Some(Duration::from_secs(60)),
                ..QueuePolicy::default()
            },
            QueuePolicy {
                max_redeliveries: Some(0),
                ..QueuePolicy::default()
            },
        ],
    ));
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/queue/q", "client"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "m"));
    nack_until_gone(&mut net, c);
    assert_eq!(net.broker.metrics().backend.dead_lettered, 1);
    // The dead letter expires in its queue: discarded, not sent to /queue/DLQ.DLQ.q.
    clock.advance(Duration::from_secs(61));
    let d = net.connect("1.2");
    net.frame(d, subscribe("s", "/queue/DLQ.q"));
    net.expect_nothing(d);
    let m = net.broker.metrics();
    assert_eq!(m.backend.expired, 1);
    assert_eq!(m.backend.discarded, 1);
    assert_eq!(m.backend.dead_lettered, 1);
    assert_eq!(m.backend.pending, 0);
}

#[test]
fn dead_letter_headers_cannot_be_forged_by_a_sender() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/queue/q"));
    net.frame(
        c,
        send("/queue/q", "x")
            .header("dead-letter-reason", "expired")
            .header("original-destination", "/queue/elsewhere")
            .header("delivery-count", "99"),
    );
    let m = net.message(c);
    assert_eq!(m.get("dead-letter-reason"), None);
    assert_eq!(m.get("original-destination"), None);
    assert_eq!(m.get("delivery-count"), None);
}

#[test]
fn expired_queue_messages_are_dead_lettered_not_delivered() {
    let clock = clock();
    let mut net = Net::new(config(&clock, Vec::new()));
    let p = net.connect("1.2");
    let soon = clock.now_ms() + 1_000;
    net.frame(
        p,
        send("/queue/q", "stale").header("expires", soon.to_string()),
    );
    net.frame(p, send("/queue/q", "fresh").header("expires", "0"));
    clock.advance(Duration::from_secs(2));
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/queue/q"));
    let got = net.messages(c);
    assert_eq!(got.len(), 1);
    assert_eq!(body(&got[0]), "fresh");
    assert_eq!(got[0].get("expires"), Some("0"));
    let d = net.connect("1.2");
    net.frame(d, subscribe("s", "/queue/DLQ.q"));
    let dead = net.message(d);
    assert_eq!(body(&dead), "stale");
    assert_eq!(dead.get("dead-letter-reason"), Some("expired"));
    assert_eq!(dead.get("delivery-count"), Some("0"));
    assert_eq!(
        dead.get("expires"),
        None,
        "a dead letter does not expire again"
    );
    let m = net.broker.metrics();
    assert_eq!(m.backend.expired, 1);
    assert_eq!(m.backend.dead_lettered, 1);
}

#[test]
fn a_message_expired_on_arrival_is_not_delivered() {
    let clock = clock();
    let mut net = Net::new(config(&clock, Vec::new()));
    let c = net.connect("1.2");
    net.frame(c, subscribe("q", "/queue/q"));
    net.frame(c, subscribe("t", "/topic/t"));
    let past = (clock.now_ms() - 1).to_string();
    net.frame(c, send("/queue/q", "late").header("expires", past.as_str()));
    net.frame(c, send("/topic/t", "late").header("expires", past.as_str()));
    net.expect_nothing(c);
    let m = net.broker.metrics();
    assert_eq!(m.backend.expired, 2);
    // The queue message went to its dead-letter queue; topics have none.
    assert_eq!(m.backend.dead_lettered, 1);
    assert_eq!(m.backend.discarded, 1);
    // Not yet expired: delivered, `expires` passed on.
    let later = (clock.now_ms() + 60_000).to_string();
    net.frame(
        c,
        send("/topic/t", "in time").header("expires", later.as_str()),
    );
    assert_eq!(net.message(c).get("expires"), Some(later.as_str()));
}

#[test]
fn queue_ttl_expires_waiting_messages() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![QueuePolicy {
            pattern: "/queue/ticks".into(),
            ttl: Some(Duration::from_secs(5)),
            dead_letter: None,
            ..QueuePolicy::default()
        }],
    ));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/ticks", "old"));
    clock.advance(Duration::from_secs(4));
    net.frame(p, send("/queue/ticks", "new"));
    // An `expires` header earlier than the TTL wins.
    let soon = (clock.now_ms() + 500).to_string();
    net.frame(
        p,
        send("/queue/ticks", "short").header("expires", soon.as_str()),
    );
    clock.advance(Duration::from_secs(2));
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/queue/ticks"));
    let got = net.messages(c);
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["new"]);
    let m = net.broker.metrics();
    assert_eq!(m.backend.expired, 2);
    assert_eq!(m.backend.discarded, 2);
}

#[test]
fn a_message_keeps_its_expiry_across_redeliveries() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![QueuePolicy {
            ttl: Some(Duration::from_secs(10)),
            ..QueuePolicy::default()
        }],
    ));
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/queue/q", "client"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "m"));
    let m = net.message(c);
    // The consumer holds it past its TTL, then gives it back: it is not redelivered.
    clock.advance(Duration::from_secs(11));
    net.frame(c, nack(m.get("ack").unwrap()));
    net.expect_nothing(c);
    let m = net.broker.metrics();
    assert_eq!(m.backend.expired, 1);
    assert_eq!(m.backend.dead_lettered, 1);
}

#[test]
fn invalid_expires_header_is_an_error() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, send("/queue/q", "x").header("expires", "tomorrow"));
    let e = net.expect_error(c, "Invalid header");
    assert!(body(&e).contains("expires"));
    assert_eq!(net.broker.metrics().errors_of(ErrorKind::InvalidHeader), 1);
}

#[test]
fn a_full_queue_refuses_by_default() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![QueuePolicy {
            max_length: Some(2),
            ..QueuePolicy::default()
        }],
    ));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "1"));
    net.frame(p, send("/queue/q", "2"));
    net.frame(p, send("/queue/q", "3"));
    net.expect_error(p, "Queue full");
    assert_eq!(net.broker.metrics().backend.pending, 2);
}

#[test]
fn drop_oldest_keeps_the_newest_and_dead_letters_the_oldest() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![QueuePolicy {
            pattern: "/queue/latest".into(),
            max_length: Some(3),
            overflow: Overflow::DropOldest,
            ..QueuePolicy::default()
        }],
    ));
    let p = net.connect("1.2");
    for i in ["1", "2", "3", "4", "5"] {
        net.frame(p, send("/queue/latest", i).header("receipt", i));
        net.expect(p, Command::Receipt);
    }
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/queue/latest"));
    let got: Vec<String> = net.messages(c).iter().map(|m| body(m).to_owned()).collect();
    assert_eq!(got, ["3", "4", "5"]);
    net.frame(c, subscribe("d", "/queue/DLQ.latest"));
    let dead = net.messages(c);
    assert_eq!(dead.iter().map(body).collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(dead[0].get("dead-letter-reason"), Some("max-length"));
    let m = net.broker.metrics();
    assert_eq!(m.backend.overflowed, 2);
    assert_eq!(m.backend.dead_lettered, 2);
}

#[test]
fn drop_oldest_without_dead_letter_discards_and_counts() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![QueuePolicy {
            max_length: Some(1),
            overflow: Overflow::DropOldest,
            dead_letter: None,
            ..QueuePolicy::default()
        }],
    ));
    let p = net.connect("1.2");
    for _ in 0..4 {
        net.frame(p, send("/queue/q", "x"));
    }
    assert!(net.clients[p].session.is_connected());
    let m = net.broker.metrics();
    assert_eq!(m.backend.overflowed, 3);
    assert_eq!(m.backend.discarded, 3);
    assert_eq!(m.backend.pending, 1);
}

#[test]
fn a_full_queue_makes_room_by_dropping_expired_messages() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![QueuePolicy {
            max_length: Some(2),
            dead_letter: None,
            ..QueuePolicy::default()
        }],
    ));
    let p = net.connect("1.2");
    let soon = (clock.now_ms() + 100).to_string();
    net.frame(p, send("/queue/q", "keep"));
    net.frame(
        p,
        send("/queue/q", "stale").header("expires", soon.as_str()),
    );
    clock.advance(Duration::from_secs(1));
    net.frame(p, send("/queue/q", "new").header("receipt", "r"));
    net.expect(p, Command::Receipt);
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/queue/q"));
    let got: Vec<String> = net.messages(c).iter().map(|m| body(m).to_owned()).collect();
    assert_eq!(got, ["keep", "new"]);
    assert_eq!(net.broker.metrics().backend.expired, 1);
}

#[test]
fn a_transaction_into_a_drop_oldest_queue_is_never_refused() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![QueuePolicy {
            max_length: Some(2),
            overflow: Overflow::DropOldest,
            dead_letter: None,
            ..QueuePolicy::default()
        }],
    ));
    let p = net.connect("1.2");
    net.frame(p, Frame::new(Command::Begin).header("transaction", "t"));
    for _ in 0..5 {
        net.frame(p, send("/queue/q", "x").header("transaction", "t"));
    }
    net.frame(
        p,
        Frame::new(Command::Commit)
            .header("transaction", "t")
            .header("receipt", "c"),
    );
    net.expect(p, Command::Receipt);
    let m = net.broker.metrics();
    assert_eq!(m.backend.pending, 2);
    assert_eq!(m.backend.overflowed, 3);
}

#[test]
fn policies_use_max_pending_per_queue_when_max_length_is_unset() {
    let clock = clock();
    let mut net = Net::new(BrokerConfig {
        limits: Limits {
            max_pending_per_queue: 1,
            ..Limits::default()
        },
        ..config(&clock, vec![QueuePolicy::default()])
    });
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "1"));
    net.frame(p, send("/queue/q", "2"));
    net.expect_error(p, "Queue full");
}

#[test]
fn acked_messages_never_reach_the_dead_letter_queue() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![QueuePolicy {
            max_redeliveries: Some(1),
            ..QueuePolicy::default()
        }],
    ));
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/queue/q", "client-individual"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "m"));
    let m = net.message(c);
    net.frame(c, nack(m.get("ack").unwrap()));
    let m = net.message(c);
    assert_eq!(m.get("redelivered"), Some("true"));
    net.frame(c, ack(m.get("ack").unwrap()));
    let m = net.broker.metrics();
    assert_eq!(m.backend.dead_lettered, 0);
    assert_eq!(m.backend.pending, 0);
}

#[test]
fn a_drop_oldest_ticker_with_a_ttl_keeps_the_newest_live_messages() {
    let clock = clock();
    let mut net = Net::new(config(
        &clock,
        vec![QueuePolicy {
            pattern: "/queue/ticker".into(),
            max_length: Some(3),
            overflow: Overflow::DropOldest,
            ttl: Some(Duration::from_secs(10)),
            dead_letter: None,
            ..QueuePolicy::default()
        }],
    ));
    let p = net.connect("1.2");
    for i in 0..5 {
        net.frame(p, send("/queue/ticker", ["a", "b", "c", "d", "e"][i]));
        clock.advance(Duration::from_secs(1));
    }
    // Full of live messages: the oldest made room, counted as overflow.
    let m = net.broker.metrics();
    assert_eq!((m.backend.overflowed, m.backend.expired), (2, 0));
    // "c" (sent at t=2) expires at t=12; at t=12.5 a new message takes its room.
    clock.advance(Duration::from_millis(7_500));
    net.frame(p, send("/queue/ticker", "f"));
    let m = net.broker.metrics();
    assert_eq!((m.backend.overflowed, m.backend.expired), (2, 1));
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/queue/ticker"));
    let got: Vec<String> = net.messages(c).iter().map(|m| body(m).to_owned()).collect();
    assert_eq!(got, ["d", "e", "f"]);
    assert_eq!(net.broker.metrics().backend.discarded, 3);
}
