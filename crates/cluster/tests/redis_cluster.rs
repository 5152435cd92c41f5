//! The same through a 3-master Redis Cluster: sharded Pub/Sub for destinations, classic Pub/Sub
//! for wildcards, one hash slot per queue (queues spread over the masters).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{Node, RedisCluster, body, collect, eventually};
use switchboard_cluster::Mode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_queues_and_wildcards_through_a_redis_cluster() {
    let cluster = RedisCluster::start();
    // Seeds: any master will do; the second node is given another one.
    let a = Node::start(&cluster.url(), "a").await;
    let b = Node::start(&cluster.nodes[1].url(), "b").await;
    assert_eq!(a.backend.mode(), Mode::Cluster);
    assert_eq!(b.backend.mode(), Mode::Cluster);

    // Topics: many destinations (spread over the shards), exact and wildcard subscribers.
    let topics: Vec<String> = (0..12).map(|i| format!("/topic/t{i}")).collect();
    let mut exact = b.client();
    for (i, t) in topics.iter().enumerate() {
        exact.subscribe(&format!("s{i}"), t, "auto");
    }
    let mut wild = b.client();
    wild.subscribe("w", "/topic/**", "auto");
    let mut local = a.client();
    local.subscribe("w", "/topic/*", "auto");
    b.backend.sync().await;
    a.backend.sync().await;
    let mut p = a.client();
    for t in &topics {
        for j in 0..5 {
            p.send(t, &format!("{t}#{j}"));
        }
    }
    let got = collect(
        &mut [&mut exact, &mut wild, &mut local],
        Duration::from_millis(500),
        |n| n >= 180,
    )
    .await;
    for (i, msgs) in got.iter().enumerate() {
        let bodies: Vec<String> = msgs.iter().map(body).collect();
        let unique: HashSet<&String> = bodies.iter().collect();
        assert_eq!(bodies.len(), 60, "client {i}");
        assert_eq!(unique.len(), 60, "client {i}: duplicates");
    }

    // Queues: several, consumed on both nodes, each message once.
    let queues: Vec<String> = (0..4).map(|i| format!("/queue/q{i}")).collect();
    let mut ca = a.client();
    let mut cb = b.client();
    for (i, q) in queues.iter().enumerate() {
        ca.subscribe_prefetch(&format!("{i}"), q, 5);
        cb.subscribe_prefetch(&format!("{i}"), q, 5);
    }
    let mut pb = b.client();
    for q in &queues {
        for j in 0..25 {
            pb.send(q, &format!("{q}#{j}"));
        }
    }
    let mut seen: Vec<String> = Vec::new();
    let mut per_node = [0usize; 2];
    let deadline = std::time::Instant::now() + common::WAIT;
    while seen.len() < 100 && std::time::Instant::now() < deadline {
        for (k, c) in [&mut ca, &mut cb].into_iter().enumerate() {
            for m in c.take() {
                seen.push(body(&m));
                c.ack(&m);
                per_node[k] += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let late = collect(&mut [&mut ca, &mut cb], Duration::from_millis(300), |_| {
        true
    })
    .await;
    assert!(late.iter().all(Vec::is_empty));
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (100, 100));
    assert!(per_node[0] > 0 && per_node[1] > 0, "{per_node:?}");

    // The queues' streams live on more than one master.
    let mut owners: HashMap<u16, usize> = HashMap::new();
    for q in &queues {
        let key = format!("sb:{{q:{q}}}:s");
        for n in &cluster.nodes {
            // EXISTS answers for keys of the node's own slots only (MOVED otherwise).
            if n.cmd(&format!("EXISTS {key}")).starts_with(':') {
                *owners.entry(n.port).or_default() += 1;
            }
        }
    }
    assert!(owners.len() >= 2, "all queues on one shard: {owners:?}");
    a.backend.shutdown().await;
    b.backend.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_messages_are_claimed_in_a_redis_cluster() {
    let cluster = RedisCluster::start();
    let fast = |id: &str| {
        let mut c = common::config(&cluster.url(), id);
        c.node_ttl = Duration::from_millis(600);
        c.claim_idle = Duration::from_millis(300);
        c
    };
    let a = Node::start_with(fast("a"), Default::default()).await;
    let mut ca = a.client();
    ca.subscribe_prefetch("0", "/queue/orders", 10);
    let mut p = a.client();
    for i in 0..3 {
        p.send("/queue/orders", &format!("o{i}"));
    }
    let held = collect(&mut [&mut ca], Duration::ZERO, |n| n >= 3).await;
    assert_eq!(held[0].len(), 3);
    a.backend.shutdown().await;
    let b = Node::start_with(fast("b"), Default::default()).await;
    let mut cb = b.client();
    cb.subscribe_prefetch("0", "/queue/orders", 10);
    let got = collect(&mut [&mut cb], Duration::from_millis(200), |n| n >= 3).await;
    assert_eq!(got[0].len(), 3);
    assert!(got[0].iter().all(|m| m.get("redelivered") == Some("true")));
    // NACK goes through the requeue script (one slot: stream and notification channel).
    cb.nack(&got[0][0]);
    let again = collect(&mut [&mut cb], Duration::from_millis(200), |n| n >= 1).await;
    assert_eq!(again[0].len(), 1);
    assert_eq!(body(&again[0][0]), body(&got[0][0]));
    eventually("b healthy", || b.backend.health().up).await;
    b.backend.shutdown().await;
}
