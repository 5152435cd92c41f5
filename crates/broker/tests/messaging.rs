//! Delivery rules: topics, wildcards, queues, acks per version, prefetch, redelivery,
//! transactions, application and user destinations, slow consumers.

mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use harness::*;
use switchboard_broker::{AppError, Broker, BrokerConfig, ErrorKind, Limits, SlowConsumerPolicy};
use switchboard_stomp::{Command, Frame, Headers};

fn ack(id: &str) -> Frame {
    Frame::new(Command::Ack).header("id", id)
}
fn nack(id: &str) -> Frame {
    Frame::new(Command::Nack).header("id", id)
}

#[test]
fn topic_fan_out_with_all_headers() {
    let mut net = Net::new(BrokerConfig::default());
    let a = net.connect("1.2");
    let b = net.connect("1.1");
    let p = net.connect("1.2");
    net.frame(a, subscribe("sa", "/topic/news"));
    net.frame(b, subscribe("sb", "/topic/news"));
    net.frame(
        p,
        send("/topic/news", "hello")
            .header("content-type", "text/plain;charset=utf-8")
            .header("custom", "v:1")
            .header("receipt", "r"),
    );
    net.expect(p, Command::Receipt);
    let ma = net.message(a);
    let mb = net.message(b);
    for (m, sub) in [(&ma, "sa"), (&mb, "sb")] {
        assert_eq!(m.get("destination"), Some("/topic/news"));
        assert_eq!(m.get("subscription"), Some(sub));
        assert_eq!(m.get("content-type"), Some("text/plain;charset=utf-8"));
        assert_eq!(m.get("content-length"), Some("5"));
        assert_eq!(
            m.get("custom"),
            Some("v:1"),
            "escaped and unescaped per version"
        );
        assert_eq!(m.get("receipt"), None);
        assert_eq!(m.get("ack"), None, "auto mode has no ack header");
        assert_eq!(body(m), "hello");
    }
    assert_eq!(ma.get("message-id"), mb.get("message-id"));
    net.expect_nothing(p);
}

#[test]
fn fan_out_shares_the_body() {
    let broker = Broker::new(BrokerConfig::default());
    let now = std::time::Instant::now();
    let mut subs: Vec<_> = (0..3)
        .map(|i| {
            let mut s = broker.open_session(now);
            s.handle_frame(connect_frame("1.2"), now);
            s.handle_frame(subscribe(&i.to_string(), "/topic/t"), now);
            let _ = s.poll_transmit(now);
            s
        })
        .collect();
    let body = Bytes::from(vec![7u8; 4096]);
    broker
        .publish("/topic/t", &Headers::new(), body.clone())
        .unwrap();
    for s in &mut subs {
        let f = s.poll_transmit(now).unwrap();
        let chunk = f.chunks().find(|c| c.len() == 4096).unwrap();
        assert_eq!(chunk.as_ptr(), body.as_ptr(), "no copy of the body");
    }
}

#[test]
fn escaping_of_passed_through_headers_per_version() {
    let mut net = Net::new(BrokerConfig::default());
    let v10 = net.connect("1.0");
    let v11 = net.connect("1.1");
    let v12 = net.connect("1.2");
    for c in [v10, v11, v12] {
        net.frame(c, subscribe("s", "/topic/e"));
    }
    net.frame(v12, send("/topic/e", "x").header("k", "a:b\\c\nd"));
    assert_eq!(net.message(v12).get("k"), Some("a:b\\c\nd"));
    assert_eq!(net.message(v11).get("k"), Some("a:b\\c\nd"));
    // 1.0 cannot escape: the line break becomes a space, the rest is raw.
    assert_eq!(net.message(v10).get("k"), Some("a:b\\c d"));
}

#[test]
fn wildcards_one_and_many_segments() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, subscribe("one", "/topic/stocks/*"));
    net.frame(c, subscribe("many", "/topic/stocks/**"));
    net.frame(c, subscribe("dots", "/topic/fx.*.eur"));
    let p = net.connect("1.2");
    net.frame(p, send("/topic/stocks/nyse", "1"));
    let mut got: Vec<String> = net
        .messages(c)
        .iter()
        .map(|m| m.get("subscription").unwrap().to_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["many", "one"]);
    net.frame(p, send("/topic/stocks/nyse/ibm", "2"));
    let m = net.message(c);
    assert_eq!(m.get("subscription"), Some("many"));
    assert_eq!(m.get("destination"), Some("/topic/stocks/nyse/ibm"));
    net.expect_nothing(c);
    net.frame(p, send("/topic/fx.usd.eur", "3"));
    assert_eq!(net.message(c).get("subscription"), Some("dots"));
    net.frame(p, send("/topic/other", "4"));
    net.expect_nothing(c);
}

#[test]
fn queue_round_robin_and_kept_while_nobody_subscribed() {
    let mut net = Net::new(BrokerConfig::default());
    let p = net.connect("1.2");
    for b in ["1", "2", "3", "4"] {
        net.frame(p, send("/queue/work", b));
    }
    let a = net.connect("1.2");
    net.frame(
        a,
        subscribe("s", "/queue/work")
            .header("ack", "client-individual")
            .header("prefetch-count", "1"),
    );
    // Prefetch 1: one message in flight.
    assert_eq!(body(&net.message(a)), "1");
    net.expect_nothing(a);
    let b = net.connect("1.2");
    net.frame(b, subscribe("s", "/queue/work"));
    // b (auto) takes what is left.
    let rest: Vec<String> = net.messages(b).iter().map(|m| body(m).to_owned()).collect();
    assert_eq!(rest, ["2", "3", "4"]);
    // Now with both subscribed, new messages alternate (a gets one after acking).
    let m = net.message_or_none(a);
    assert!(m.is_none());
    net.frame(a, ack("1-1"));
    for i in 0..4 {
        net.frame(p, send("/queue/work", "n"));
        let _ = i;
    }
    let na = net.messages(a).len();
    let nb = net.messages(b).len();
    assert_eq!(na + nb, 4);
    assert!(na >= 1 && nb >= 2, "a={na} b={nb}");
}

#[test]
fn queue_alternates_between_auto_consumers() {
    let mut net = Net::new(BrokerConfig::default());
    let a = net.connect("1.2");
    let b = net.connect("1.2");
    net.frame(a, subscribe("s", "/queue/q"));
    net.frame(b, subscribe("s", "/queue/q"));
    let p = net.connect("1.2");
    for _ in 0..6 {
        net.frame(p, send("/queue/q", "x"));
    }
    assert_eq!(net.messages(a).len(), 3);
    assert_eq!(net.messages(b).len(), 3);
}

#[test]
fn queue_pending_limit() {
    let mut net = Net::new(BrokerConfig {
        limits: Limits {
            max_pending_per_queue: 2,
            ..Default::default()
        },
        ..Default::default()
    });
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "1"));
    net.frame(p, send("/queue/q", "2"));
    net.frame(p, send("/queue/q", "3").header("receipt", "r3"));
    let e = net.expect_error(p, "Queue full");
    assert_eq!(e.get("receipt-id"), Some("r3"));
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/queue/q"));
    assert_eq!(net.messages(c).len(), 2);
}

#[test]
fn client_ack_is_cumulative_per_subscription() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/queue/q", "client"));
    let p = net.connect("1.2");
    for b in ["1", "2", "3"] {
        net.frame(p, send("/queue/q", b));
    }
    let ms = net.messages(c);
    assert_eq!(ms.len(), 3);
    assert_eq!(net.clients[c].session.unacked_count(), 3);
    net.frame(c, ack(ms[1].get("ack").unwrap()).header("receipt", "r"));
    net.expect(c, Command::Receipt);
    assert_eq!(net.clients[c].session.unacked_count(), 1);
    // Acking an already covered message is an error.
    net.frame(c, ack(ms[0].get("ack").unwrap()));
    net.expect_error(c, "Invalid ack");
    // The session closed: message 3 goes back to the queue, redelivered.
    let d = net.connect("1.2");
    net.frame(d, subscribe("s", "/queue/q"));
    let m = net.message(d);
    assert_eq!(body(&m), "3");
    assert_eq!(m.get("redelivered"), Some("true"));
    net.expect_nothing(d);
}

#[test]
fn client_individual_acks_one() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/queue/q", "client-individual"));
    let p = net.connect("1.2");
    for b in ["1", "2", "3"] {
        net.frame(p, send("/queue/q", b));
    }
    let ms = net.messages(c);
    net.frame(c, ack(ms[1].get("ack").unwrap()));
    assert_eq!(net.clients[c].session.unacked_count(), 2);
    net.frame(c, ack(ms[0].get("ack").unwrap()));
    net.frame(c, ack(ms[2].get("ack").unwrap()));
    assert_eq!(net.clients[c].session.unacked_count(), 0);
    net.expect_nothing(c);
}

#[test]
fn nack_redelivers_to_another_consumer() {
    let mut net = Net::new(BrokerConfig::default());
    let a = net.connect("1.2");
    net.frame(a, subscribe_ack("s", "/queue/q", "client-individual"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "m"));
    let m = net.message(a);
    assert_eq!(m.get("redelivered"), Some("false"));
    let b = net.connect("1.2");
    net.frame(b, subscribe("s", "/queue/q"));
    net.frame(a, nack(m.get("ack").unwrap()));
    // Round-robin moves on from a: b gets the redelivery.
    let r = net.message(b);
    assert_eq!(r.get("redelivered"), Some("true"));
    assert_eq!(r.get("message-id"), m.get("message-id"));
    net.expect_nothing(a);
    assert_eq!(net.broker.metrics().messages_redelivered, 1);
}

#[test]
fn client_nack_is_cumulative() {
    let mut net = Net::new(BrokerConfig::default());
    let a = net.connect("1.2");
    net.frame(
        a,
        subscribe_ack("s", "/queue/q", "client").header("prefetch-count", "2"),
    );
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "1"));
    net.frame(p, send("/queue/q", "2"));
    let ms = net.messages(a);
    net.frame(a, nack(ms[1].get("ack").unwrap()));
    // Both come back to a (the only consumer), in order, redelivered.
    let again = net.messages(a);
    assert_eq!(again.len(), 2);
    assert_eq!(body(&again[0]), "1");
    assert!(again.iter().all(|m| m.get("redelivered") == Some("true")));
}

#[test]
fn unacked_messages_redelivered_when_consumer_goes_away() {
    let mut net = Net::new(BrokerConfig::default());
    let a = net.connect("1.2");
    let b = net.connect("1.1");
    net.frame(a, subscribe_ack("s", "/queue/q", "client"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "1"));
    net.frame(p, send("/queue/q", "2"));
    assert_eq!(net.messages(a).len(), 2);
    net.frame(b, subscribe_ack("s", "/queue/q", "client"));
    net.expect_nothing(b);
    // a's connection drops without DISCONNECT.
    net.clients[a].session.transport_closed();
    net.pump();
    let ms = net.messages(b);
    assert_eq!(ms.iter().map(body).collect::<Vec<_>>(), ["1", "2"]);
    assert!(ms.iter().all(|m| m.get("redelivered") == Some("true")));
    // 1.1 ACK: message-id + subscription.
    net.frame(
        b,
        Frame::new(Command::Ack)
            .header("message-id", ms[1].get("message-id").unwrap())
            .header("subscription", "s"),
    );
    assert_eq!(net.clients[b].session.unacked_count(), 0);
}

#[test]
fn unsubscribe_requeues_unacked() {
    let mut net = Net::new(BrokerConfig::default());
    let a = net.connect("1.2");
    net.frame(a, subscribe_ack("s", "/queue/q", "client"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "1"));
    net.message(a);
    net.frame(a, Frame::new(Command::Unsubscribe).header("id", "s"));
    net.frame(a, subscribe("s2", "/queue/q"));
    let m = net.message(a);
    assert_eq!(m.get("subscription"), Some("s2"));
    assert_eq!(m.get("redelivered"), Some("true"));
}

#[test]
fn ack_headers_1_2() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/topic/t", "client"));
    let p = net.connect("1.2");
    net.frame(p, send("/topic/t", "x"));
    let m = net.message(c);
    assert!(m.get("ack").is_some());
    // 1.2 needs `id`; `message-id` alone is "Missing header" (RabbitMQ's test).
    net.frame(
        c,
        Frame::new(Command::Ack).header("message-id", m.get("message-id").unwrap()),
    );
    net.expect_error(c, "Missing header");
}

#[test]
fn ack_headers_1_2_bad_id() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, ack("nonsense").header("receipt", "r"));
    let e = net.expect_error(c, "Invalid ack");
    assert_eq!(e.get("receipt-id"), Some("r"));
    let c = net.connect("1.2");
    net.frame(c, ack("1-1"));
    net.expect_error(c, "Invalid ack");
}

#[test]
fn ack_headers_1_1() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.1");
    net.frame(c, subscribe_ack("s", "/queue/q", "client-individual"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "x"));
    let m = net.message(c);
    assert!(m.get("ack").is_some(), "ack header sent in 1.1 too");
    let mid = m.get("message-id").unwrap().to_owned();
    net.frame(
        c,
        Frame::new(Command::Nack)
            .header("message-id", mid.as_str())
            .header("subscription", "s"),
    );
    let r = net.message(c);
    assert_eq!(r.get("redelivered"), Some("true"));
    net.frame(
        c,
        Frame::new(Command::Ack)
            .header("message-id", mid.as_str())
            .header("subscription", "nope"),
    );
    net.expect_error(c, "Unknown subscription");
}

#[test]
fn ack_headers_1_0_and_no_nack() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.0");
    net.frame(
        c,
        Frame::new(Command::Subscribe)
            .header("destination", "/queue/q")
            .header("ack", "client"),
    );
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "x"));
    let m = net.message(c);
    assert_eq!(
        m.get("subscription"),
        Some("/queue/q"),
        "1.0: id defaults to destination"
    );
    net.frame(
        c,
        Frame::new(Command::Ack)
            .header("message-id", m.get("message-id").unwrap())
            .header("receipt", "r"),
    );
    net.expect(c, Command::Receipt);
    assert_eq!(net.clients[c].session.unacked_count(), 0);
    // UNSUBSCRIBE by destination (1.0).
    net.frame(
        c,
        Frame::new(Command::Unsubscribe)
            .header("destination", "/queue/q")
            .header("receipt", "u"),
    );
    net.expect(c, Command::Receipt);
    assert_eq!(net.clients[c].session.subscription_count(), 0);
    net.frame(c, Frame::new(Command::Nack).header("message-id", "m-1"));
    net.expect_error(c, "Bad command");
}

#[test]
fn prefetch_limits_in_flight() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(
        c,
        subscribe_ack("s", "/queue/q", "client-individual").header("prefetch-count", "2"),
    );
    let p = net.connect("1.2");
    for b in ["1", "2", "3", "4", "5"] {
        net.frame(p, send("/queue/q", b));
    }
    let ms = net.messages(c);
    assert_eq!(ms.len(), 2);
    net.frame(c, ack(ms[0].get("ack").unwrap()));
    let more = net.messages(c);
    assert_eq!(more.len(), 1);
    assert_eq!(body(&more[0]), "3");
    net.frame(
        c,
        subscribe("x", "/topic/t").header("prefetch-count", "nope"),
    );
    net.expect_error(c, "Invalid header");
}

#[test]
fn transactions_apply_on_commit() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/topic/t"));
    let p = net.connect("1.2");
    net.frame(p, Frame::new(Command::Begin).header("transaction", "tx"));
    net.frame(p, send("/topic/t", "1").header("transaction", "tx"));
    net.frame(p, send("/topic/t", "2").header("transaction", "tx"));
    net.expect_nothing(c);
    net.frame(p, Frame::new(Command::Commit).header("transaction", "tx"));
    let ms = net.messages(c);
    assert_eq!(ms.iter().map(body).collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(ms[0].get("transaction"), None);
    // ABORT discards.
    net.frame(p, Frame::new(Command::Begin).header("transaction", "tx"));
    net.frame(p, send("/topic/t", "3").header("transaction", "tx"));
    net.frame(p, Frame::new(Command::Abort).header("transaction", "tx"));
    net.expect_nothing(c);
    // The id is free again after COMMIT/ABORT; unknown ids are errors.
    net.frame(p, Frame::new(Command::Commit).header("transaction", "tx"));
    net.expect_error(p, "Unknown transaction");
}

#[test]
fn acks_in_transactions() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/queue/q", "client-individual"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "1"));
    net.frame(p, send("/queue/q", "2"));
    let ms = net.messages(c);
    net.frame(c, Frame::new(Command::Begin).header("transaction", "t"));
    net.frame(c, ack(ms[0].get("ack").unwrap()).header("transaction", "t"));
    net.frame(
        c,
        nack(ms[1].get("ack").unwrap()).header("transaction", "t"),
    );
    assert_eq!(
        net.clients[c].session.unacked_count(),
        2,
        "nothing applied before COMMIT"
    );
    net.frame(c, Frame::new(Command::Commit).header("transaction", "t"));
    let r = net.message(c);
    assert_eq!(body(&r), "2");
    assert_eq!(r.get("redelivered"), Some("true"));
    assert_eq!(net.clients[c].session.unacked_count(), 1);
}

#[test]
fn transaction_errors_and_abort_on_disconnect() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, send("/topic/t", "x").header("transaction", "none"));
    net.expect_error(c, "Unknown transaction");
    let c = net.connect("1.2");
    net.frame(c, Frame::new(Command::Begin).header("transaction", "t"));
    net.frame(c, Frame::new(Command::Begin).header("transaction", "t"));
    net.expect_error(c, "Transaction already started");

    let s = net.connect("1.2");
    net.frame(s, subscribe("s", "/topic/t"));
    let p = net.connect("1.2");
    net.frame(p, Frame::new(Command::Begin).header("transaction", "t"));
    net.frame(p, send("/topic/t", "x").header("transaction", "t"));
    net.frame(p, Frame::new(Command::Disconnect));
    net.expect_nothing(s);
}

#[test]
fn subscription_errors() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/topic/a"));
    net.frame(c, subscribe("s", "/topic/b").header("receipt", "r"));
    let e = net.expect_error(c, "Duplicated subscription identifier");
    assert_eq!(e.get("receipt-id"), Some("r"));
    let c = net.connect("1.2");
    net.frame(c, Frame::new(Command::Unsubscribe).header("id", "nope"));
    net.expect_error(c, "Unknown subscription");
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/topic/a").header("ack", "sometimes"));
    net.expect_error(c, "Invalid header");
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/app/x"));
    net.expect_error(c, "Invalid destination");
    assert_eq!(net.broker.metrics().subscriptions, 0);
}

#[test]
fn app_destinations_map_to_topics_by_default() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/topic/chat"));
    net.frame(c, send("/app/chat", "hi"));
    let m = net.message(c);
    assert_eq!(m.get("destination"), Some("/topic/chat"));
    assert_eq!(body(&m), "hi");
}

#[test]
fn app_mappings_are_configurable() {
    let mut net = Net::new(BrokerConfig {
        app_mappings: vec![switchboard_broker::AppMapping {
            from: "/app/jobs/".into(),
            to: "/queue/".into(),
        }],
        ..Default::default()
    });
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/queue/build"));
    net.frame(c, send("/app/jobs/build", "go"));
    assert_eq!(net.message(c).get("destination"), Some("/queue/build"));
    net.frame(c, send("/app/other", "x"));
    net.expect_error(c, "Invalid destination");
}

#[test]
fn app_handlers_get_sender_and_can_publish_and_reply() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let broker = Broker::builder(BrokerConfig::default())
        .handler("/app/greet", move |msg, ctx| {
            seen.fetch_add(1, Ordering::SeqCst);
            let who = msg
                .principal
                .map(|p| p.name().to_owned())
                .unwrap_or_default();
            let mut h = Headers::new();
            h.push("content-type", "text/plain");
            ctx.publish("/topic/greetings", &h, Bytes::from(format!("hello {who}")))?;
            ctx.reply(
                "/queue/private",
                &h,
                Bytes::from(format!("just for {}", msg.session_id)),
            )?;
            Ok(())
        })
        .handler("/app/fail", |_msg, _ctx| {
            Err(AppError::new("Nope", "refused by handler"))
        })
        .build();
    let mut net = Net::with(broker);
    let alice = net.connect_as("1.2", "alice");
    let alice2 = net.connect_as("1.2", "alice");
    let other = net.connect("1.2");
    for c in [alice, alice2, other] {
        net.frame(c, subscribe("t", "/topic/greetings"));
        net.frame(c, subscribe("u", "/user/queue/private"));
    }
    net.frame(alice, send("/app/greet", "").header("receipt", "r"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    for c in [alice, alice2, other] {
        let m = net.message(c);
        assert_eq!(body(&m), "hello alice");
    }
    // The reply goes to every session of alice, shown as /user/queue/private.
    for c in [alice, alice2] {
        let m = net.message(c);
        assert_eq!(m.get("destination"), Some("/user/queue/private"));
        assert!(body(&m).starts_with("just for session-"));
    }
    // The RECEIPT follows what the SEND caused on the same connection.
    net.expect(alice, Command::Receipt);
    net.expect_nothing(other);
    net.frame(other, send("/app/fail", ""));
    let e = net.expect_error(other, "Nope");
    assert!(body(&e).contains("refused by handler"));
    assert_eq!(net.broker.metrics().errors_of(ErrorKind::Application), 1);
}

#[test]
fn user_destinations_reach_all_sessions_of_that_user() {
    let mut net = Net::new(BrokerConfig::default());
    let a1 = net.connect_as("1.2", "alice");
    let a2 = net.connect_as("1.1", "alice");
    let b = net.connect_as("1.2", "bob");
    for c in [a1, a2, b] {
        net.frame(c, subscribe("u", "/user/queue/inbox"));
    }
    net.frame(b, send("/user/alice/queue/inbox", "for alice"));
    for c in [a1, a2] {
        let m = net.message(c);
        assert_eq!(m.get("destination"), Some("/user/queue/inbox"));
        assert_eq!(body(&m), "for alice");
    }
    net.expect_nothing(b);
    net.frame(a1, send("/user/bob/queue/inbox", "for bob"));
    assert_eq!(body(&net.message(b)), "for bob");
    net.frame(a1, send("/user/noslash", "x"));
    net.expect_error(a1, "Invalid destination");
}

#[test]
fn slow_consumer_is_disconnected_others_unaffected() {
    let mut net = Net::new(BrokerConfig {
        limits: Limits {
            outbound_max_frames: 8,
            ..Default::default()
        },
        ..Default::default()
    });
    let slow = net.connect("1.2");
    let fast = net.connect("1.2");
    let p = net.connect("1.2");
    net.frame(slow, subscribe("s", "/topic/t"));
    net.frame(fast, subscribe("s", "/topic/t"));
    net.clients[slow].paused = true;
    for _ in 0..20 {
        net.frame(p, send("/topic/t", "data"));
        assert!(net.clients[slow].session.queued_frames() <= 8);
    }
    assert_eq!(net.messages(fast).len(), 20);
    net.clients[slow].paused = false;
    net.pump();
    net.expect_error(slow, "Slow consumer");
    let m = net.broker.metrics();
    assert_eq!(m.errors_of(ErrorKind::SlowConsumer), 1);
    assert!(m.messages_dropped >= 1);
    assert_eq!(m.subscriptions, 1);
}

#[test]
fn slow_consumer_byte_limit_and_queue_messages_go_elsewhere() {
    let mut net = Net::new(BrokerConfig {
        limits: Limits {
            outbound_max_bytes: 4096,
            ..Default::default()
        },
        ..Default::default()
    });
    let slow = net.connect("1.2");
    let fast = net.connect("1.2");
    let p = net.connect("1.2");
    net.frame(slow, subscribe("s", "/queue/q"));
    net.frame(slow, subscribe("t", "/topic/t"));
    net.frame(fast, subscribe("s", "/queue/q"));
    net.clients[slow].paused = true;
    static BIG: [u8; 1000] = [b'x'; 1000];
    for _ in 0..20 {
        net.frame(
            p,
            Frame::new(Command::Send)
                .header("destination", "/queue/q")
                .body(Bytes::from_static(&BIG)),
        );
        // Queue traffic stops at half the byte limit (flow control, not overflow).
        assert!(net.clients[slow].session.queued_bytes() <= 2048 + 1200);
    }
    // Nothing is lost: what the slow consumer had no room for went to the fast one.
    let to_fast = net.messages(fast).len();
    assert!(to_fast >= 18, "{to_fast}");
    assert!(!net.clients[slow].session.is_closed());
    // A topic that keeps coming to a client that does not read overflows the byte limit.
    for _ in 0..20 {
        net.frame(
            p,
            Frame::new(Command::Send)
                .header("destination", "/topic/t")
                .body(Bytes::from_static(&BIG)),
        );
        assert!(net.clients[slow].session.queued_bytes() <= 4096 + 1200);
    }
    net.clients[slow].paused = false;
    net.pump();
    let mut queued_to_slow = 0;
    loop {
        match net.recv(slow) {
            Some(f) if f.command == Command::Message => {
                if f.get("destination") == Some("/queue/q") {
                    queued_to_slow += 1;
                }
            }
            Some(f) => {
                assert_eq!(f.command, Command::Error);
                assert!(f.get("message").unwrap_or("").contains("Slow consumer"));
                break;
            }
            None => panic!("no ERROR for the slow consumer"),
        }
    }
    // Queue messages still in the dropped session's outbound queue were requeued, unseen.
    net.pump();
    let requeued = net.messages(fast).len();
    assert_eq!(to_fast + queued_to_slow + requeued, 20);
}

#[test]
fn drop_messages_policy_keeps_the_client() {
    let mut net = Net::new(BrokerConfig {
        limits: Limits {
            outbound_max_frames: 4,
            ..Default::default()
        },
        slow_consumer: SlowConsumerPolicy::DropMessages,
        ..Default::default()
    });
    let slow = net.connect("1.2");
    let p = net.connect("1.2");
    net.frame(slow, subscribe("s", "/topic/t"));
    net.clients[slow].paused = true;
    for _ in 0..10 {
        net.frame(p, send("/topic/t", "x"));
    }
    net.clients[slow].paused = false;
    net.pump();
    assert_eq!(net.messages(slow).len(), 4);
    assert!(net.clients[slow].session.is_connected());
    assert_eq!(net.broker.metrics().messages_dropped, 6);
}

#[test]
fn no_subscription_left_after_disconnect_or_drop() {
    let mut net = Net::new(BrokerConfig::default());
    let a = net.connect("1.2");
    let b = net.connect("1.2");
    net.frame(a, subscribe("1", "/topic/a"));
    net.frame(a, subscribe("2", "/topic/**"));
    net.frame(a, subscribe("3", "/queue/q"));
    net.frame(b, subscribe("1", "/user/queue/x"));
    assert_eq!(net.broker.metrics().backend.subscriptions, 4);
    net.frame(a, Frame::new(Command::Disconnect));
    assert_eq!(net.broker.metrics().backend.subscriptions, 1);
    net.clients.clear();
    let m = net.broker.metrics();
    assert_eq!(m.backend.subscriptions, 0);
    assert_eq!(m.subscriptions, 0);
    assert_eq!(m.connections, 0);
    assert_eq!(m.backend.queues, 0);
}

#[test]
fn idle_session_timers_with_fake_clock() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect_with(connect_frame("1.2").header("heart-beat", "10000,10000"));
    net.expect(c, Command::Connected);
    net.advance_with(Duration::from_secs(60), &[c]);
    assert_eq!(net.clients[c].heart_beats, 6);
}

#[test]
fn subscriptions_do_not_pin_the_read_buffer() {
    use bytestring::ByteString;
    // A transport's read buffer: frames are slices of it.
    let mut raw = vec![0u8; 64 * 1024];
    raw[..2].copy_from_slice(b"s1");
    raw[2..15].copy_from_slice(b"/queue/pinned");
    let buf = Bytes::from(raw);
    let id = ByteString::try_from(buf.slice(0..2)).unwrap();
    let dest = ByteString::try_from(buf.slice(2..15)).unwrap();
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    let p = net.connect("1.2");
    // A SEND creates the queue; a SUBSCRIBE keeps id and destination.
    net.frame(
        p,
        Frame::new(Command::Send).header("destination", dest.clone()),
    );
    net.frame(
        c,
        Frame::new(Command::Subscribe)
            .header("id", id)
            .header("destination", dest),
    );
    assert_eq!(net.messages(c).len(), 1);
    assert!(
        buf.is_unique(),
        "a long-lived broker structure still holds the read buffer"
    );
}
