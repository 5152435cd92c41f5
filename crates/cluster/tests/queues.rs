//! Queues across nodes sharing one Redis: competing consumers, NACK, claims from dead nodes,
//! a Redis restart with AOF, SENDs held while Redis is down.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Node, Redis, body, collect, config, eventually};
use switchboard_broker::BrokerConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_consumed_on_two_nodes_delivers_each_message_once() {
    let redis = Redis::start();
    let a = Node::start(&redis.url(), "a").await;
    let b = Node::start(&redis.url(), "b").await;
    let mut ca = a.client();
    let mut cb = b.client();
    ca.subscribe_prefetch("0", "/queue/work", 5);
    cb.subscribe_prefetch("0", "/queue/work", 5);
    let mut p = a.client();
    for i in 0..300 {
        p.send("/queue/work", &format!("{i}"));
    }
    // Consume and ack as messages come, on both nodes.
    let mut seen: Vec<String> = Vec::new();
    let (mut na, mut nb) = (0, 0);
    let deadline = std::time::Instant::now() + common::WAIT;
    while seen.len() < 300 && std::time::Instant::now() < deadline {
        for m in ca.take() {
            assert_eq!(m.get("redelivered"), Some("false"));
            seen.push(body(&m));
            ca.ack(&m);
            na += 1;
        }
        for m in cb.take() {
            seen.push(body(&m));
            cb.ack(&m);
            nb += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Nothing more arrives.
    let late = collect(&mut [&mut ca, &mut cb], Duration::from_millis(500), |_| {
        true
    })
    .await;
    assert!(late.iter().all(Vec::is_empty), "duplicates: {late:?}");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 300, "got {} of 300", seen.len());
    assert_eq!(unique.len(), 300);
    assert!(na > 0 && nb > 0, "both nodes consumed: a {na}, b {nb}");
    // Acked entries leave the stream.
    eventually("the stream is empty", || {
        redis.cmd("XLEN sb:{q:/queue/work}:s").trim() == ":0"
    })
    .await;
    a.backend.shutdown().await;
    b.backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_message_is_redelivered_marked_redelivered() {
    let redis = Redis::start();
    let a = Node::start(&redis.url(), "a").await;
    let b = Node::start(&redis.url(), "b").await;
    let mut ca = a.client();
    ca.subscribe_prefetch("0", "/queue/jobs", 1);
    let mut p = b.client();
    p.send("/queue/jobs", "job");
    let got = collect(&mut [&mut ca], Duration::ZERO, |n| n >= 1).await;
    assert_eq!(got[0].len(), 1);
    assert_eq!(got[0][0].get("redelivered"), Some("false"));
    let first_id = got[0][0].get("message-id").unwrap().to_owned();
    assert!(first_id.starts_with("b-"), "{first_id}");
    // A consumer on the other node, then NACK on this one.
    let mut cb = b.client();
    cb.subscribe_prefetch("0", "/queue/jobs", 1);
    ca.nack(&got[0][0]);
    let again = collect(&mut [&mut ca, &mut cb], Duration::from_millis(300), |n| {
        n >= 1
    })
    .await;
    let all: Vec<_> = again.iter().flatten().collect();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].get("redelivered"), Some("true"));
    assert_eq!(all[0].get("message-id"), Some(first_id.as_str()));
    assert_eq!(body(all[0]), "job");
    a.backend.shutdown().await;
    b.backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_redeliveries_a_message_goes_to_its_dead_letter_queue() {
    let redis = Redis::start();
    let broker_config = BrokerConfig {
        queues: vec![switchboard_broker::QueuePolicy {
            pattern: "/queue/poison".into(),
            max_redeliveries: Some(1),
            ..Default::default()
        }],
        ..BrokerConfig::default()
    };
    let a = Node::start_with(config(&redis.url(), "a"), broker_config.clone()).await;
    let b = Node::start_with(config(&redis.url(), "b"), broker_config).await;
    let mut c = a.client();
    c.subscribe_prefetch("0", "/queue/poison", 1);
    let mut dlq = b.client();
    dlq.subscribe("0", "/queue/DLQ.poison", "auto");
    let mut p = b.client();
    p.send("/queue/poison", "bad");
    for round in 0..2 {
        let got = collect(&mut [&mut c], Duration::ZERO, |n| n >= 1).await;
        assert_eq!(got[0].len(), 1, "round {round}");
        c.nack(&got[0][0]);
    }
    let dead = collect(&mut [&mut dlq], Duration::from_millis(200), |n| n >= 1).await;
    assert_eq!(dead[0].len(), 1);
    let m = &dead[0][0];
    assert_eq!(m.get("original-destination"), Some("/queue/poison"));
    assert_eq!(m.get("dead-letter-reason"), Some("max-redeliveries"));
    assert_eq!(m.get("delivery-count"), Some("2"));
    assert!(c.take().is_empty());
    a.backend.shutdown().await;
    b.backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_of_a_dead_node_are_claimed_and_redelivered() {
    let redis = Redis::start();
    let fast = |id: &str| {
        let mut c = config(&redis.url(), id);
        c.node_ttl = Duration::from_millis(600);
        c.claim_idle = Duration::from_millis(300);
        c
    };
    let a = Node::start_with(fast("a"), BrokerConfig::default()).await;
    let mut ca = a.client();
    ca.subscribe_prefetch("0", "/queue/orders", 10);
    let mut p = a.client();
    for i in 0..5 {
        p.send("/queue/orders", &format!("o{i}"));
    }
    let held = collect(&mut [&mut ca], Duration::ZERO, |n| n >= 5).await;
    assert_eq!(held[0].len(), 5);
    // Node a dies holding five unacked messages: its tasks stop, its key expires.
    a.backend.shutdown().await;
    drop(ca);
    let b = Node::start_with(fast("b"), BrokerConfig::default()).await;
    let mut cb = b.client();
    cb.subscribe_prefetch("0", "/queue/orders", 10);
    let got = collect(&mut [&mut cb], Duration::from_millis(300), |n| n >= 5).await;
    let mut bodies: Vec<String> = got[0].iter().map(body).collect();
    bodies.sort();
    assert_eq!(bodies, vec!["o0", "o1", "o2", "o3", "o4"]);
    assert!(got[0].iter().all(|m| m.get("redelivered") == Some("true")));
    assert_eq!(b.backend.stats().claimed, 5);
    for m in &got[0] {
        cb.ack(m);
    }
    b.backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_keeps_queue_messages_and_nodes_reconnect() {
    let mut redis = Redis::start();
    let a = Node::start(&redis.url(), "a").await;
    let b = Node::start(&redis.url(), "b").await;
    let mut p = a.client();
    for i in 0..20 {
        p.send("/queue/durable", &format!("d{i}"));
    }
    let mut t = b.client();
    t.subscribe("0", "/topic/t", "auto");
    a.backend.sync().await;
    b.backend.sync().await;
    // Restart Redis: AOF (appendfsync always) keeps the stream.
    redis.kill();
    eventually("a reports Redis down", || !a.backend.health().up).await;
    let reason = a.backend.health().reason.unwrap_or_default();
    assert!(!reason.is_empty());
    // Queue SENDs while Redis is down are held and written on reconnect.
    for i in 20..25 {
        p.send("/queue/durable", &format!("d{i}"));
    }
    assert!(a.backend.stats().buffered > 0);
    // A subscription made while Redis is away is in place once it is back.
    eventually("b reports Redis down", || !b.backend.health().up).await;
    let mut late = b.client();
    late.subscribe("0", "/topic/late", "auto");
    redis.restart();
    eventually("a back up", || a.backend.health().up).await;
    eventually("b back up", || b.backend.health().up).await;
    assert!(a.backend.stats().reconnects >= 1);
    // Topic subscriptions were re-made: a's publish reaches b's subscriber.
    b.backend.sync().await;
    p.send("/topic/t", "after");
    let got = collect(&mut [&mut t], Duration::ZERO, |n| n >= 1).await;
    assert_eq!(got[0].len(), 1);
    p.send("/topic/late", "late");
    let got = collect(&mut [&mut late], Duration::ZERO, |n| n >= 1).await;
    assert_eq!(got[0].len(), 1);
    let mut c = b.client();
    c.subscribe_prefetch("0", "/queue/durable", 100);
    let got = collect(&mut [&mut c], Duration::from_millis(300), |n| n >= 25).await;
    let bodies: HashSet<String> = got[0].iter().map(body).collect();
    assert_eq!(bodies.len(), 25, "{bodies:?}");
    a.backend.shutdown().await;
    b.backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_does_not_ack_does_not_hold_up_the_others() {
    let redis = Redis::start();
    let a = Node::start(&redis.url(), "a").await;
    let b = Node::start(&redis.url(), "b").await;
    // b's consumer takes 3 and never acknowledges them.
    let mut stuck = b.client();
    stuck.subscribe_prefetch("0", "/queue/q", 3);
    let mut fine = a.client();
    fine.subscribe_prefetch("0", "/queue/q", 10);
    let mut p = a.client();
    for i in 0..100 {
        p.send("/queue/q", &format!("{i}"));
    }
    let mut n = 0;
    let deadline = std::time::Instant::now() + common::WAIT;
    while n < 97 && std::time::Instant::now() < deadline {
        for m in fine.take() {
            fine.ack(&m);
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(stuck.take().len(), 3);
    assert_eq!(n, 97);
    a.backend.shutdown().await;
    b.backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_sends_until_consumers_make_room() {
    let redis = Redis::start();
    let broker_config = BrokerConfig {
        queues: vec![switchboard_broker::QueuePolicy {
            pattern: "/queue/capped".into(),
            max_length: Some(5),
            ..Default::default()
        }],
        ..BrokerConfig::default()
    };
    let a = Node::start_with(config(&redis.url(), "a"), broker_config.clone()).await;
    let b = Node::start_with(config(&redis.url(), "b"), broker_config).await;
    let mut p = a.client();
    for i in 0..5 {
        p.send("/queue/capped", &format!("{i}"));
    }
    let mut extra = a.client();
    assert_eq!(
        extra.send_refused("/queue/capped", "6th").as_deref(),
        Some("Queue full")
    );
    eventually("five entries in the stream", || {
        redis.cmd("XLEN sb:{q:/queue/capped}:s").trim() == ":5"
    })
    .await;
    // A consumer on the other node takes them; node a learns there is room again.
    let mut c = b.client();
    c.subscribe_prefetch("0", "/queue/capped", 10);
    let got = collect(&mut [&mut c], Duration::ZERO, |n| n >= 5).await;
    assert_eq!(got[0].len(), 5);
    for m in &got[0] {
        c.ack(m);
    }
    let deadline = std::time::Instant::now() + common::WAIT;
    loop {
        let mut again = a.client();
        if again.send_refused("/queue/capped", "later").is_none() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = collect(&mut [&mut c], Duration::ZERO, |n| n >= 1).await;
    assert_eq!(body(&got[0][0]), "later");
    a.backend.shutdown().await;
    b.backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_does_not_fit_its_queue_is_refused_whole() {
    use switchboard_stomp::{Command, Frame};
    let redis = Redis::start();
    let broker_config = BrokerConfig {
        queues: vec![switchboard_broker::QueuePolicy {
            pattern: "/queue/tx".into(),
            max_length: Some(3),
            ..Default::default()
        }],
        ..BrokerConfig::default()
    };
    let a = Node::start_with(config(&redis.url(), "a"), broker_config).await;
    let mut p = a.client();
    p.send("/queue/tx", "1");
    p.send("/queue/tx", "2");
    p.frame(Frame::new(Command::Begin).header("transaction", "t"));
    for b in ["3", "4"] {
        p.frame(
            Frame::new(Command::Send)
                .header("destination", "/queue/tx")
                .header("transaction", "t")
                .body(b),
        );
    }
    let refused = p.frame_refused(Frame::new(Command::Commit).header("transaction", "t"));
    assert_eq!(refused.as_deref(), Some("Queue full"));
    a.backend.sync().await;
    eventually("two entries", || {
        redis.cmd("XLEN sb:{q:/queue/tx}:s").trim() == ":2"
    })
    .await;
    // And none of the transaction's arrives later.
    a.backend.shutdown().await;
    assert_eq!(redis.cmd("XLEN sb:{q:/queue/tx}:s").trim(), ":2");
}
