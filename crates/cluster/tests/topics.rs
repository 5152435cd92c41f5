//! Topics and user destinations across nodes sharing one Redis.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Node, Redis, body, collect};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_message_reaches_every_subscriber_on_every_node_exactly_once() {
    let redis = Redis::start();
    let a = Node::start(&redis.url(), "a").await;
    let b = Node::start(&redis.url(), "b").await;
    let c = Node::start(&redis.url(), "c").await;
    let mut a1 = a.client();
    let mut b1 = b.client();
    let mut b2 = b.client();
    let mut c1 = c.client();
    for (cl, id) in [
        (&mut a1, "0"),
        (&mut b1, "0"),
        (&mut b2, "0"),
        (&mut c1, "0"),
    ] {
        cl.subscribe(id, "/topic/news", "auto");
    }
    // A wildcard subscription beside an exact one on the same node: still once each.
    b2.subscribe("1", "/topic/**", "auto");
    for n in [&a, &b, &c] {
        n.backend.sync().await;
    }
    let mut pa = a.client();
    let mut pc = c.client();
    for i in 0..50 {
        pa.send("/topic/news", &format!("a{i}"));
        pc.send("/topic/news", &format!("c{i}"));
    }
    // 100 messages: a1, b1, c1 once each, b2 twice (exact + wildcard subscription).
    let got = collect(
        &mut [&mut a1, &mut b1, &mut b2, &mut c1],
        Duration::from_millis(300),
        |n| n >= 500,
    )
    .await;
    for (i, msgs) in got.iter().enumerate() {
        let mut counts: HashMap<(String, String), usize> = HashMap::new();
        for m in msgs {
            let sub = m.get("subscription").unwrap_or("").to_owned();
            *counts.entry((sub, body(m))).or_default() += 1;
        }
        let expected_subs = if i == 2 { 2 } else { 1 };
        let mut bodies: Vec<String> = msgs.iter().map(body).collect();
        bodies.sort();
        assert_eq!(
            msgs.len(),
            100 * expected_subs,
            "client {i}: {bodies:?}; stats a {:?} b {:?} c {:?}",
            a.backend.stats(),
            b.backend.stats(),
            c.backend.stats()
        );
        assert!(counts.values().all(|&n| n == 1), "client {i}: a duplicate");
    }
    // Ids carry their node's prefix.
    assert!(
        got[1]
            .iter()
            .any(|m| m.get("message-id").unwrap().starts_with("a-"))
    );
    assert!(
        got[1]
            .iter()
            .any(|m| m.get("message-id").unwrap().starts_with("c-"))
    );
    let s = a.backend.stats();
    assert!(s.published >= 50, "{s:?}");
    assert!(b.backend.stats().received >= 100);
    for n in [&a, &b, &c] {
        n.backend.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_match_across_nodes_and_unsubscribe_stops_delivery() {
    let redis = Redis::start();
    let a = Node::start(&redis.url(), "a").await;
    let b = Node::start(&redis.url(), "b").await;
    let mut sub = b.client();
    sub.subscribe("w1", "/topic/stocks.*", "auto");
    sub.subscribe("w2", "/topic/stocks/**", "auto");
    b.backend.sync().await;
    let mut p = a.client();
    p.send("/topic/stocks.nyse", "1");
    p.send("/topic/stocks/a/b", "2");
    p.send("/topic/other", "3");
    let got = collect(&mut [&mut sub], Duration::from_millis(300), |n| n >= 3).await;
    let mut seen: Vec<(String, String)> = got[0]
        .iter()
        .map(|m| (m.get("subscription").unwrap().to_owned(), body(m)))
        .collect();
    seen.sort();
    // stocks.nyse matches both patterns (segments split on . and /); stocks/a/b only **.
    assert_eq!(
        seen,
        vec![
            ("w1".to_owned(), "1".to_owned()),
            ("w2".to_owned(), "1".to_owned()),
            ("w2".to_owned(), "2".to_owned())
        ]
    );
    sub.frame(
        switchboard_stomp::Frame::new(switchboard_stomp::Command::Unsubscribe).header("id", "w1"),
    );
    sub.frame(
        switchboard_stomp::Frame::new(switchboard_stomp::Command::Unsubscribe).header("id", "w2"),
    );
    b.backend.sync().await;
    p.send("/topic/stocks.nyse", "4");
    a.backend.sync().await;
    let got = collect(&mut [&mut sub], Duration::from_millis(500), |_| true).await;
    assert!(got[0].is_empty(), "{:?}", got[0]);
    a.backend.shutdown().await;
    b.backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_destinations_reach_the_users_sessions_on_any_node() {
    let redis = Redis::start();
    let a = Node::start(&redis.url(), "a").await;
    let b = Node::start(&redis.url(), "b").await;
    let mut alice_a = a.client_as("alice");
    let mut alice_b = b.client_as("alice");
    let mut bob_b = b.client_as("bob");
    alice_a.subscribe("0", "/user/queue/replies", "auto");
    alice_b.subscribe("0", "/user/queue/replies", "auto");
    bob_b.subscribe("0", "/user/queue/replies", "auto");
    a.backend.sync().await;
    b.backend.sync().await;
    let mut sender = a.client();
    sender.send("/user/alice/queue/replies", "for alice");
    let got = collect(
        &mut [&mut alice_a, &mut alice_b, &mut bob_b],
        Duration::from_millis(300),
        |n| n >= 2,
    )
    .await;
    assert_eq!(got[0].len(), 1);
    assert_eq!(got[1].len(), 1);
    assert!(got[2].is_empty());
    assert_eq!(got[1][0].get("destination"), Some("/user/queue/replies"));
    // The registry knows where alice is (refreshed by the heartbeat).
    common::eventually("alice registered on both nodes", || {
        let r = redis.cmd("ZRANGE sb:user:alice 0 -1");
        r.contains("\r\na\r\n") && r.contains("\r\nb\r\n")
    })
    .await;
    a.backend.shutdown().await;
    b.backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_on_one_node_does_not_slow_the_others() {
    let redis = Redis::start();
    let mut small = switchboard_broker::BrokerConfig::default();
    small.limits.outbound_max_frames = 4096;
    let a = Node::start(&redis.url(), "a").await;
    let b = Node::start_with(common::config(&redis.url(), "b"), small).await;
    // On b: one client that never reads, one that does; on a: one that does.
    let mut slow = b.client();
    slow.subscribe("0", "/topic/firehose", "auto");
    let mut fast_b = b.client();
    fast_b.subscribe("0", "/topic/firehose", "auto");
    let mut fast_a = a.client();
    fast_a.subscribe("0", "/topic/firehose", "auto");
    a.backend.sync().await;
    b.backend.sync().await;
    let mut p = a.client();
    let n = 6000;
    let mut got = [0usize; 2];
    for i in 0..n {
        p.send("/topic/firehose", &format!("{i}"));
        if i % 4 == 0 {
            // The fast ones keep up (as a socket would drain); the slow one never reads.
            got[0] += fast_a.take().len();
            got[1] += fast_b.take().len();
            tokio::task::yield_now().await;
        }
    }
    let rest = collect(
        &mut [&mut fast_a, &mut fast_b],
        Duration::from_millis(300),
        |t| got[0] + got[1] + t >= 2 * n,
    )
    .await;
    got[0] += rest[0].len();
    got[1] += rest[1].len();
    assert_eq!(got, [n, n]);
    // The slow one was cut off by its own outbound limit (slow-consumer policy), alone.
    let mut out = bytes::BytesMut::new();
    while let Some(f) = slow.session.poll_transmit(std::time::Instant::now()) {
        f.write_to(&mut out);
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("message:Slow consumer"), "{text}");
    a.backend.shutdown().await;
    b.backend.shutdown().await;
}

/// `PUBSUB NUMSUB channel`: how many connections Redis has subscribed to it.
fn numsub(redis: &Redis, channel: &str) -> u64 {
    let reply = redis.cmd(&format!("PUBSUB NUMSUB {channel}"));
    // *2 $len channel :N
    reply
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(':'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no NUMSUB count in {reply:?}"))
}

/// The last local subscriber of a destination leaves and a new one subscribes at once (a page
/// reload, a stompjs reconnect): the node stays subscribed in Redis for `unsubscribe_linger`,
/// so what another node publishes right after the new SUBSCRIBE is not lost to a Redis
/// subscription still on its way; once the linger is over the node lets the channel go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_resubscribe_misses_nothing_and_the_channel_is_released_after_the_linger() {
    let redis = Redis::start();
    let mut config = common::config(&redis.url(), "a");
    config.unsubscribe_linger = Duration::from_millis(1500);
    let a = Node::start_with(config, switchboard_broker::BrokerConfig::default()).await;
    let mut config = common::config(&redis.url(), "c");
    config.unsubscribe_linger = Duration::ZERO;
    let c = Node::start_with(config, switchboard_broker::BrokerConfig::default()).await;
    let b = Node::start(&redis.url(), "b").await;
    let unsubscribe = |id: &str| {
        switchboard_stomp::Frame::new(switchboard_stomp::Command::Unsubscribe).header("id", id)
    };
    let channel = "sb:t:/topic/reload";

    let mut s = a.client();
    s.subscribe("0", "/topic/reload", "auto");
    a.backend.sync().await;
    assert_eq!(numsub(&redis, channel), 1);
    s.frame(unsubscribe("0"));
    a.backend.sync().await;
    // Without the linger this would be 0 now, and a message published between the next
    // SUBSCRIBE and its Redis subscription would be lost.
    assert_eq!(numsub(&redis, channel), 1, "the subscription lingers");
    s.subscribe("1", "/topic/reload", "auto");
    let mut p = b.client();
    p.send("/topic/reload", "after the reload");
    let got = collect(&mut [&mut s], Duration::from_millis(300), |n| n >= 1).await;
    assert_eq!(
        got[0].iter().map(body).collect::<Vec<_>>(),
        vec!["after the reload".to_owned()]
    );

    // Gone for good: released after the linger.
    s.frame(unsubscribe("1"));
    a.backend.sync().await;
    common::eventually("the channel released after the linger", || {
        numsub(&redis, channel) == 0
    })
    .await;

    // A zero linger unsubscribes at once.
    let mut z = c.client();
    z.subscribe("0", "/topic/zero", "auto");
    c.backend.sync().await;
    assert_eq!(numsub(&redis, "sb:t:/topic/zero"), 1);
    z.frame(unsubscribe("0"));
    c.backend.sync().await;
    assert_eq!(numsub(&redis, "sb:t:/topic/zero"), 0);
    for n in [&a, &b, &c] {
        n.backend.shutdown().await;
    }
}
