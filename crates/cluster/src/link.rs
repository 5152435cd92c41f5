//! The tasks that talk to Redis: the writer (pipelined publishes, stream adds, acks), the
//! subscription manager, the Pub/Sub reader, the health check with the node's heartbeat, and
//! one reader per queue with local consumers.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use bytestring::ByteString;
use fred::clients::{Client, SubscriberClient};
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand, MessageKind};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::backend::{Add, Inner, Mode, Outgoing, Waiting, add, lock, write};
use crate::keys::GROUP;
use crate::{ClusterConfig, ClusterError, Seed, wire};

/// The two connections of a node.
pub(crate) struct Redis {
    /// Commands (publishes, streams, keys), multiplexed and pipelined.
    pub(crate) client: Client,
    /// Subscriptions; fred re-subscribes after a reconnect and so do we.
    pub(crate) subscriber: SubscriberClient,
}

/// Queue bookkeeping for the writer.
pub(crate) enum SettleOp {
    /// `XACK` + `XDEL`.
    Ack { queue: ByteString, id: ByteString },
    /// Atomically: add `payload` again and ack/delete `id`.
    Requeue {
        queue: ByteString,
        id: ByteString,
        payload: Bytes,
    },
    /// Add `payload` to queue `to` (a dead letter), then ack/delete `id`.
    Move {
        queue: ByteString,
        id: ByteString,
        to: ByteString,
        payload: Bytes,
    },
    /// Add an entry (a message consumed by an auto-ack session that closed before sending it).
    Add(Add),
    /// Measure a queue's length again (it looked full).
    Probe(ByteString),
    /// Answered once the turn that took it has been written.
    Barrier(oneshot::Sender<()>),
}

/// Subscription changes, applied in order by one task.
pub(crate) enum Ctl {
    Subscribe(String),
    Unsubscribe(String),
    /// The wildcard globs wanted now, and their literal prefixes (registry).
    Patterns {
        globs: Vec<String>,
        prefixes: Vec<String>,
    },
    /// Redis is back: subscribe everything wanted again.
    Resubscribe,
    Sync(oneshot::Sender<()>),
}

/// Adds `payload` to the stream and removes entry `id` (NACK / give back), in one step.
const REQUEUE: &str = "redis.call('XADD', KEYS[1], '*', 'd', ARGV[2]) \
    redis.call('XACK', KEYS[1], ARGV[3], ARGV[1]) \
    redis.call('XDEL', KEYS[1], ARGV[1]) \
    redis.call('SPUBLISH', KEYS[2], '') return 1";

/// Same for a single Redis (classic PUBLISH for the notification).
const REQUEUE_SINGLE: &str = "redis.call('XADD', KEYS[1], '*', 'd', ARGV[2]) \
    redis.call('XACK', KEYS[1], ARGV[3], ARGV[1]) \
    redis.call('XDEL', KEYS[1], ARGV[1]) \
    redis.call('PUBLISH', KEYS[2], '') return 1";

fn cmd(name: &'static str) -> CustomCommand {
    CustomCommand::new_static(name, ClusterHash::FirstKey, false)
}

fn cmd_at(name: &'static str, offset: usize) -> CustomCommand {
    CustomCommand::new_static(name, ClusterHash::Offset(offset), false)
}

fn s(v: impl Into<String>) -> Value {
    Value::from(v.into())
}

fn b(v: Bytes) -> Value {
    Value::Bytes(v)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn is_connection_error(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::IO | ErrorKind::Timeout | ErrorKind::Canceled | ErrorKind::Backpressure
    ) || e.details().contains("CLUSTERDOWN")
        || e.details().contains("LOADING")
        || e.details().contains("TRYAGAIN")
}

fn fred_config(seeds: &[Seed], cluster: bool) -> Config {
    let server = if cluster {
        ServerConfig::new_clustered(seeds.iter().map(|s| (s.host.clone(), s.port)).collect())
    } else {
        ServerConfig::new_centralized(seeds[0].host.clone(), seeds[0].port)
    };
    Config {
        server,
        database: if cluster { None } else { seeds[0].db },
        fail_fast: true,
        ..Config::default()
    }
}

/// A client builder; `events` is the capacity of the client's event channels (each one
/// preallocates it: the subscriber's message channel needs room, the others do not).
fn builder(cfg: &ClusterConfig, seeds: &[Seed], cluster: bool, events: usize) -> Builder {
    let mut b = Builder::from_config(fred_config(seeds, cluster));
    let timeout = cfg.command_timeout;
    let buffer = events.max(16);
    b.with_connection_config(|c| {
        c.connection_timeout = timeout;
        c.internal_command_timeout = timeout;
        c.max_command_attempts = 2;
    })
    .with_performance_config(|p| {
        p.default_command_timeout = timeout;
        p.broadcast_channel_capacity = buffer;
    })
    .set_policy(ReconnectPolicy::new_exponential(
        0,
        50,
        u32::try_from(cfg.reconnect_max_delay.as_millis())
            .unwrap_or(u32::MAX)
            .max(50),
        2,
    ));
    b
}

/// Connects both clients, detecting a Redis Cluster on the first seed.
pub(crate) async fn connect(
    cfg: &ClusterConfig,
    seeds: &[Seed],
) -> Result<(Redis, Mode), ClusterError> {
    async fn within<T>(
        cfg: &ClusterConfig,
        f: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, ClusterError> {
        match tokio::time::timeout(cfg.connect_timeout, f).await {
            Ok(r) => r.map_err(|e| ClusterError::Connect {
                url: cfg.url.clone(),
                reason: e.to_string(),
            }),
            Err(_) => Err(ClusterError::Connect {
                url: cfg.url.clone(),
                reason: "timed out".to_owned(),
            }),
        }
    }
    // Probe: one plain connection, `INFO cluster`.
    let probe = builder(cfg, seeds, false, 16)
        .build()
        .map_err(|e| ClusterError::Config(e.to_string()))?;
    within(cfg, async {
        probe.init().await?;
        Ok(())
    })
    .await?;
    let info: String = within(cfg, probe.info(Some(fred::types::InfoKind::Cluster))).await?;
    let _ = probe.quit().await;
    let mode = if info.contains("cluster_enabled:1") {
        Mode::Cluster
    } else {
        Mode::Single
    };
    let cluster = mode == Mode::Cluster;
    let client = builder(cfg, seeds, cluster, 32)
        .build()
        .map_err(|e| ClusterError::Config(e.to_string()))?;
    let subscriber = builder(cfg, seeds, cluster, cfg.receive_buffer)
        .build_subscriber_client()
        .map_err(|e| ClusterError::Config(e.to_string()))?;
    within(cfg, async {
        client.init().await?;
        subscriber.init().await?;
        Ok(())
    })
    .await?;
    drop(subscriber.manage_subscriptions());
    Ok((Redis { client, subscriber }, mode))
}

/// Starts the node's tasks and waits for its first heartbeat.
pub(crate) async fn start(
    inner: &Arc<Inner>,
    topic_rx: mpsc::Receiver<Outgoing>,
    queue_rx: mpsc::Receiver<Add>,
    settle_rx: mpsc::UnboundedReceiver<SettleOp>,
    ctl_rx: mpsc::UnboundedReceiver<Ctl>,
) {
    heartbeat(inner).await;
    inner.spawn(pubsub_reader(inner.clone()));
    inner.spawn(control(inner.clone(), ctl_rx));
    inner.spawn(writer(inner.clone(), topic_rx, queue_rx, settle_rx));
    inner.spawn(health(inner.clone()));
}

pub(crate) async fn quit(inner: &Inner) {
    let t = inner.cfg.command_timeout;
    let _ = tokio::time::timeout(t, inner.redis.subscriber.quit()).await;
    let _ = tokio::time::timeout(t, inner.redis.client.quit()).await;
}

/// Refreshes the node's liveness key, its users and (Redis Cluster) its wildcard prefixes;
/// re-reads the cluster's wildcard prefixes.
async fn heartbeat(inner: &Inner) {
    let c = &inner.redis.client;
    let ttl = inner.cfg.node_ttl.as_millis().max(1) as u64;
    let expiry = now_ms() + ttl;
    let p = c.pipeline();
    let _: Result<Value, _> = p
        .custom(
            cmd("SET"),
            vec![
                s(inner.names.node(&inner.cfg.node_id)),
                s("1"),
                s("PX"),
                Value::from(ttl as i64),
            ],
        )
        .await;
    for user in inner.local_users() {
        let key = inner.names.user(&user);
        let _: Result<Value, _> = p
            .custom(
                cmd("ZADD"),
                vec![
                    s(key.clone()),
                    Value::from(expiry as i64),
                    s(inner.cfg.node_id.clone()),
                ],
            )
            .await;
        let _: Result<Value, _> = p
            .custom(
                cmd("ZREMRANGEBYSCORE"),
                vec![s(key.clone()), s("-inf"), s(now_ms().to_string())],
            )
            .await;
        let _: Result<Value, _> = p
            .custom(cmd("PEXPIRE"), vec![s(key), Value::from(ttl as i64 * 3)])
            .await;
    }
    if inner.mode == Mode::Cluster {
        // Members of nodes that are gone.
        let _: Result<Value, _> = p
            .custom(
                cmd("ZREMRANGEBYSCORE"),
                vec![
                    s(inner.names.wildcards()),
                    s("-inf"),
                    s(now_ms().to_string()),
                ],
            )
            .await;
        for prefix in inner.local_prefixes() {
            let _: Result<Value, _> = p
                .custom(
                    cmd("ZADD"),
                    vec![
                        s(inner.names.wildcards()),
                        Value::from(expiry as i64),
                        s(format!("{}|{prefix}", inner.cfg.node_id)),
                    ],
                )
                .await;
        }
    }
    for r in p.try_all::<Value>().await {
        if let Err(e) = r {
            debug!(error = %e, "heartbeat");
        }
    }
    if inner.mode == Mode::Cluster {
        refresh_wildcards(inner).await;
    }
}

async fn refresh_wildcards(inner: &Inner) {
    let r: Result<Value, _> = inner
        .redis
        .client
        .custom(
            cmd("ZRANGE"),
            vec![
                s(inner.names.wildcards()),
                s(now_ms().to_string()),
                s("+inf"),
                s("BYSCORE"),
            ],
        )
        .await;
    if let Ok(v) = r {
        let mut prefixes: Vec<String> = v
            .into_array()
            .into_iter()
            .filter_map(|m| m.as_str().map(|s| s.to_string()))
            .filter_map(|m| m.split_once('|').map(|(_, p)| p.to_owned()))
            .collect();
        prefixes.sort();
        prefixes.dedup();
        *write(&inner.wild_prefixes) = prefixes;
    }
}

/// Checks the connection; marks the node down and up; resubscribes and wakes queue readers
/// after an outage; beats the heart every third of the node TTL.
async fn health(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    let mut last_beat = Instant::now();
    let beat_every = (inner.cfg.node_ttl / 3).max(Duration::from_millis(100));
    let wild_every = Duration::from_secs(1);
    let mut last_wild = Instant::now();
    let mut lost_at_down = 0u64;
    let mut last_probe = Instant::now();
    let mut down_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(inner.cfg.health_interval) => {}
            _ = stop.changed() => return,
        }
        let ping = tokio::time::timeout(
            inner.cfg.command_timeout,
            inner.redis.client.ping::<Value>(None),
        )
        .await;
        let problem = match ping {
            Ok(Ok(_)) if inner.redis.subscriber.is_connected() => None,
            Ok(Ok(_)) => Some("the subscriber connection is down".to_owned()),
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("PING timed out".to_owned()),
        };
        let was_up = inner.is_up();
        match problem {
            Some(reason) => {
                if was_up {
                    warn!(
                        %reason,
                        "Redis unreachable: serving local traffic only; topic messages of other \
                         nodes are not received and this node's are dropped until it is back; \
                         queue SENDs are held (up to {})",
                        inner.cfg.max_buffered
                    );
                    lost_at_down = inner
                        .counters
                        .lost
                        .load(std::sync::atomic::Ordering::Relaxed);
                    down_since = Some(Instant::now());
                }
                *lock(&inner.reason) = Some(reason);
                inner.up.send_replace(false);
            }
            None if !was_up => {
                heartbeat(&inner).await;
                *lock(&inner.reason) = None;
                // Up first: subscription changes from now on are issued at once, the ones
                // recorded during the outage by the resubscription queued behind them.
                inner.up.send_replace(true);
                let _ = inner.ctl_tx.send(Ctl::Resubscribe);
                add(&inner.counters.reconnects, 1);
                let lost = inner
                    .counters
                    .lost
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .saturating_sub(lost_at_down);
                warn!(
                    outage_ms = down_since.map_or(0, |d| d.elapsed().as_millis() as u64),
                    dropped_publishes = lost,
                    "Redis reachable again: resubscribed; topic messages other nodes published \
                     during the outage were not received (Pub/Sub is at-most-once across an \
                     outage); held queue SENDs are being written"
                );
                inner.wake_all();
                last_beat = Instant::now();
            }
            None => {
                if last_probe.elapsed() >= inner.cfg.poll_interval {
                    inner.probe_full();
                    last_probe = Instant::now();
                }
                if last_beat.elapsed() >= beat_every {
                    heartbeat(&inner).await;
                    last_beat = Instant::now();
                    last_wild = Instant::now();
                } else if inner.mode == Mode::Cluster && last_wild.elapsed() >= wild_every {
                    refresh_wildcards(&inner).await;
                    last_wild = Instant::now();
                }
            }
        }
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Applies subscription changes in order. It keeps the wanted channels and globs itself:
/// while Redis is down changes are only recorded (no command waits for a timeout), and after
/// an outage ([`Ctl::Resubscribe`]) everything wanted is subscribed again — a subscription
/// made during the outage included.
async fn control(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Ctl>) {
    let sub = &inner.redis.subscriber;
    let sharded = inner.mode == Mode::Cluster;
    let mut channels: BTreeSet<String> = BTreeSet::new();
    let mut globs: BTreeSet<String> = BTreeSet::new();
    let mut prefixes: Vec<String> = Vec::new();
    // Channels no local subscriber wants any more, still subscribed in Redis until their
    // deadline (`unsubscribe_linger`), so a quick resubscribe misses nothing.
    let mut lingering: BTreeMap<String, Instant> = BTreeMap::new();
    let linger = inner.cfg.unsubscribe_linger;
    let mut stop = inner.stop.subscribe();
    loop {
        let next_expiry = lingering.values().min().copied();
        let c = tokio::select! {
            c = rx.recv() => match c { Some(c) => c, None => return },
            _ = stop.changed() => return,
            _ = sleep_until_opt(next_expiry) => {
                let now = Instant::now();
                let expired: Vec<String> = lingering
                    .iter()
                    .filter(|(_, at)| **at <= now)
                    .map(|(ch, _)| ch.clone())
                    .collect();
                for ch in &expired {
                    lingering.remove(ch);
                }
                if inner.is_up() && !expired.is_empty() {
                    let r = if sharded {
                        sub.sunsubscribe(expired).await
                    } else {
                        sub.unsubscribe(expired).await
                    };
                    if let Err(e) = r {
                        debug!("unsubscribing lingering channels failed: {e}");
                    }
                }
                continue;
            }
        };
        let up = inner.is_up();
        let r = match c {
            Ctl::Subscribe(ch) => {
                channels.insert(ch.clone());
                if lingering.remove(&ch).is_some() {
                    // Still subscribed in Redis (or resubscribed after an outage).
                    Ok(())
                } else {
                    match (up, sharded) {
                        (false, _) => Ok(()),
                        (true, true) => sub.ssubscribe(ch).await,
                        (true, false) => sub.subscribe(ch).await,
                    }
                }
            }
            Ctl::Unsubscribe(ch) if !linger.is_zero() => {
                channels.remove(&ch);
                lingering.insert(ch, Instant::now() + linger);
                Ok(())
            }
            Ctl::Unsubscribe(ch) => {
                channels.remove(&ch);
                match (up, sharded) {
                    (false, _) => Ok(()),
                    (true, true) => sub.sunsubscribe(ch).await,
                    (true, false) => sub.unsubscribe(ch).await,
                }
            }
            Ctl::Patterns {
                globs: wanted,
                prefixes: p,
            } => {
                let wanted: BTreeSet<String> = wanted.into_iter().collect();
                let new: Vec<String> = wanted.difference(&globs).cloned().collect();
                let old: Vec<String> = globs.difference(&wanted).cloned().collect();
                globs = wanted;
                prefixes = p;
                let mut r = Ok(());
                if up {
                    // New ones first: a change never leaves a gap (it may overlap briefly).
                    if !new.is_empty() {
                        r = sub.psubscribe(new).await;
                    }
                    if !old.is_empty() {
                        let r2 = sub.punsubscribe(old).await;
                        r = r.and(r2);
                    }
                    if sharded {
                        register_prefixes(&inner, &prefixes).await;
                    }
                }
                r
            }
            Ctl::Resubscribe => {
                let mut r = Ok(());
                if !channels.is_empty() || !lingering.is_empty() {
                    let all: Vec<String> =
                        channels.iter().chain(lingering.keys()).cloned().collect();
                    r = if sharded {
                        sub.ssubscribe(all).await
                    } else {
                        sub.subscribe(all).await
                    };
                }
                if !globs.is_empty() {
                    let all: Vec<String> = globs.iter().cloned().collect();
                    r = r.and(sub.psubscribe(all).await);
                }
                if sharded {
                    register_prefixes(&inner, &prefixes).await;
                }
                r
            }
            Ctl::Sync(done) => {
                if sharded {
                    refresh_wildcards(&inner).await;
                }
                // A reply on the subscriber's connection comes after Redis has processed
                // the (un)subscriptions written before it.
                let r = sub.ping::<Value>(None).await.map(|_| ());
                let _ = done.send(());
                r
            }
        };
        if let Err(e) = r {
            debug!(error = %e, "subscription change failed (re-applied after the reconnect)");
        }
    }
}

async fn register_prefixes(inner: &Inner, prefixes: &[String]) {
    let key = inner.names.wildcards();
    let me = format!("{}|", inner.cfg.node_id);
    let expiry = now_ms() + inner.cfg.node_ttl.as_millis() as u64;
    let current: Vec<String> = match inner
        .redis
        .client
        .custom::<Value, Value>(cmd("ZRANGE"), vec![s(key.clone()), s("0"), s("-1")])
        .await
    {
        Ok(v) => v
            .into_array()
            .into_iter()
            .filter_map(|m| m.as_str().map(|s| s.to_string()))
            .filter(|m| m.starts_with(&me))
            .collect(),
        Err(_) => Vec::new(),
    };
    let p = inner.redis.client.pipeline();
    for m in current {
        if !prefixes.iter().any(|x| m[me.len()..] == **x) {
            let _: Result<Value, _> = p.custom(cmd("ZREM"), vec![s(key.clone()), s(m)]).await;
        }
    }
    for x in prefixes {
        let _: Result<Value, _> = p
            .custom(
                cmd("ZADD"),
                vec![
                    s(key.clone()),
                    Value::from(expiry as i64),
                    s(format!("{me}{x}")),
                ],
            )
            .await;
    }
    let _ = p.try_all::<Value>().await;
    refresh_wildcards(inner).await;
}

/// Hands what other nodes publish to local subscriptions, and queue notifications to their
/// readers.
async fn pubsub_reader(inner: Arc<Inner>) {
    let mut rx = inner.redis.subscriber.message_rx();
    let mut stop = inner.stop.subscribe();
    loop {
        let m = tokio::select! {
            m = rx.recv() => m,
            _ = stop.changed() => return,
        };
        let m = match m {
            Ok(m) => m,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                add(&inner.counters.lost, n);
                warn!(lost = n, "fell behind the Pub/Sub stream: messages lost");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let channel: &str = &m.channel;
        if let Some(queue) = inner.names.queue_of_notify(channel) {
            inner.wake(queue);
            continue;
        }
        let Some(payload) = m.value.into_bytes() else {
            continue;
        };
        let from_pattern = m.kind == MessageKind::PMessage;
        inner.remote_fanout(channel, payload, from_pattern);
    }
}

/// What one queued operation became in the pipeline (to retry it if the connection failed).
enum Sent {
    Topic,
    Queue(SettleOp, usize),
}

/// Writes topic publishes, queue adds and settlements to Redis in pipelines: everything
/// waiting at each turn goes in one.
async fn writer(
    inner: Arc<Inner>,
    mut topic_rx: mpsc::Receiver<Outgoing>,
    mut queue_rx: mpsc::Receiver<Add>,
    mut settle_rx: mpsc::UnboundedReceiver<SettleOp>,
) {
    const BATCH: usize = 512;
    let mut up_rx = inner.up.subscribe();
    let mut stop = inner.stop.subscribe();
    let mut retry: VecDeque<SettleOp> = VecDeque::new();
    let mut topics: Vec<Outgoing> = Vec::with_capacity(BATCH);
    let mut adds: Vec<Add> = Vec::with_capacity(BATCH);
    let mut settles: Vec<SettleOp> = Vec::with_capacity(BATCH);
    let mut stopping = false;
    loop {
        let up = *up_rx.borrow_and_update();
        if !stopping {
            tokio::select! {
                biased;
                _ = stop.changed() => stopping = true,
                _ = up_rx.changed() => {}
                _ = topic_rx.recv_many(&mut topics, BATCH) => {}
                _ = settle_rx.recv_many(&mut settles, BATCH) => {}
                _ = queue_rx.recv_many(&mut adds, BATCH), if up && retry.is_empty() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)), if up && !retry.is_empty() => {}
            }
        }
        // Whatever else is waiting joins this turn.
        while topics.len() < BATCH {
            match topic_rx.try_recv() {
                Ok(t) => topics.push(t),
                Err(_) => break,
            }
        }
        while settles.len() < BATCH {
            match settle_rx.try_recv() {
                Ok(t) => settles.push(t),
                Err(_) => break,
            }
        }
        if up && retry.is_empty() {
            while adds.len() < BATCH {
                match queue_rx.try_recv() {
                    Ok(t) => adds.push(t),
                    Err(_) => break,
                }
            }
        }
        if !up {
            if !topics.is_empty() {
                add(&inner.counters.lost, topics.len() as u64);
                topics.clear();
            }
            retry.extend(settles.drain(..));
            retry.extend(adds.drain(..).map(SettleOp::Add));
            if stopping {
                return;
            }
            continue;
        }
        let mut ops: Vec<SettleOp> = retry.drain(..).collect();
        ops.append(&mut settles);
        ops.extend(adds.drain(..).map(SettleOp::Add));
        if topics.is_empty() && ops.is_empty() {
            if stopping {
                return;
            }
            continue;
        }
        let failed = flush(&inner, &mut topics, ops).await;
        if !failed.is_empty() {
            retry.extend(failed);
            inner.up.send_replace(false);
        }
        if stopping && topic_rx.is_empty() && settle_rx.is_empty() && queue_rx.is_empty() {
            return;
        }
    }
}

/// Sends one pipeline; returns the queue operations that failed for lack of a connection.
async fn flush(inner: &Inner, topics: &mut Vec<Outgoing>, ops: Vec<SettleOp>) -> Vec<SettleOp> {
    let c = &inner.redis.client;
    let sharded = inner.mode == Mode::Cluster;
    let publish = if sharded { "SPUBLISH" } else { "PUBLISH" };
    let p = c.pipeline();
    let mut sent: Vec<Sent> = Vec::with_capacity(topics.len() + ops.len());
    let mut n_cmds: Vec<usize> = Vec::new();
    for t in topics.drain(..) {
        let mut n = 1;
        let _: Result<Value, _> = p
            .custom(cmd(publish), vec![s(t.channel), b(t.payload.clone())])
            .await;
        if let Some(w) = t.wild {
            let _: Result<Value, _> = p.custom(cmd("PUBLISH"), vec![s(w), b(t.payload)]).await;
            n += 1;
        }
        sent.push(Sent::Topic);
        n_cmds.push(n);
    }
    // One notification per queue that got entries.
    let mut notify: Vec<ByteString> = Vec::new();
    let mut probes: Vec<ByteString> = Vec::new();
    for op in ops {
        let n = match &op {
            SettleOp::Ack { queue, id } => {
                let stream = inner.names.stream(queue);
                let _: Result<Value, _> = p
                    .custom(
                        cmd("XACK"),
                        vec![s(stream.clone()), s(GROUP), s(id.to_string())],
                    )
                    .await;
                let _: Result<Value, _> = p
                    .custom(cmd("XDEL"), vec![s(stream), s(id.to_string())])
                    .await;
                2
            }
            SettleOp::Requeue { queue, id, payload } => {
                let script = if sharded { REQUEUE } else { REQUEUE_SINGLE };
                let _: Result<Value, _> = p
                    .custom(
                        cmd_at("EVAL", 2),
                        vec![
                            s(script),
                            Value::from(2i64),
                            s(inner.names.stream(queue)),
                            s(inner.names.notify(queue)),
                            s(id.to_string()),
                            b(payload.clone()),
                            s(GROUP),
                        ],
                    )
                    .await;
                1
            }
            SettleOp::Move {
                queue,
                id,
                to,
                payload,
            } => {
                let stream = inner.names.stream(queue);
                let _: Result<Value, _> = p
                    .custom(
                        cmd("XADD"),
                        vec![
                            s(inner.names.stream(to)),
                            s("*"),
                            s("d"),
                            b(payload.clone()),
                        ],
                    )
                    .await;
                let _: Result<Value, _> = p
                    .custom(
                        cmd("XACK"),
                        vec![s(stream.clone()), s(GROUP), s(id.to_string())],
                    )
                    .await;
                let _: Result<Value, _> = p
                    .custom(cmd("XDEL"), vec![s(stream), s(id.to_string())])
                    .await;
                if !notify.contains(to) {
                    notify.push(to.clone());
                }
                3
            }
            SettleOp::Barrier(_) => 0,
            SettleOp::Probe(q) => {
                if !probes.contains(q) {
                    probes.push(q.clone());
                }
                0
            }
            SettleOp::Add(a) => {
                let _: Result<Value, _> = p
                    .custom(
                        cmd("XADD"),
                        vec![
                            s(inner.names.stream(&a.queue)),
                            s("*"),
                            s("d"),
                            b(a.payload.clone()),
                        ],
                    )
                    .await;
                if !notify.contains(&a.queue) {
                    notify.push(a.queue.clone());
                }
                1
            }
        };
        sent.push(Sent::Queue(op, n));
    }
    for q in &notify {
        let _: Result<Value, _> = p
            .custom(cmd(publish), vec![s(inner.names.notify(q)), s("")])
            .await;
    }
    // How long each queue written to is now (for `max_length`): entries minus delivered ones.
    for q in probes {
        if !notify.contains(&q) {
            notify.push(q);
        }
    }
    let measured = &notify;
    for q in measured {
        let stream = inner.names.stream(q);
        let _: Result<Value, _> = p.custom(cmd("XLEN"), vec![s(stream.clone())]).await;
        let _: Result<Value, _> = p.custom(cmd("XPENDING"), vec![s(stream), s(GROUP)]).await;
    }
    let results = p.try_all::<Value>().await;
    let depths = results.len().saturating_sub(2 * notify.len());
    for (k, q) in notify.iter().enumerate() {
        let len = results.get(depths + 2 * k).and_then(|r| r.as_ref().ok());
        let pending = results
            .get(depths + 2 * k + 1)
            .and_then(|r| r.as_ref().ok());
        if let Some(len) = len.and_then(|v| v.as_u64()) {
            let pending = pending
                .and_then(|v| match v {
                    Value::Array(a) => a.first().and_then(|c| c.as_u64()),
                    _ => None,
                })
                .unwrap_or(0);
            inner.seen_depth(q, len as usize, pending as usize);
        } else {
            inner.unmeasured(q);
        }
    }
    let mut failed = Vec::new();
    let mut i = 0;
    let mut topic_idx = 0;
    for item in sent {
        let n = match &item {
            Sent::Topic => {
                let n = n_cmds[topic_idx];
                topic_idx += 1;
                n
            }
            Sent::Queue(_, n) => *n,
        };
        let rs = &results[i.min(results.len())..(i + n).min(results.len())];
        i += n;
        if let Some(Err(e)) = rs.iter().find(|r| r.is_err()) {
            debug!(error = %e, "pipeline command failed");
        }
        let err = if rs.len() < n {
            Some("no reply".to_owned())
        } else {
            rs.iter().find_map(|r| r.as_ref().err()).map(|e| {
                if is_connection_error(e) {
                    "connection".to_owned()
                } else {
                    e.to_string()
                }
            })
        };
        match (item, err) {
            (Sent::Topic, None) => add(&inner.counters.published, 1),
            (Sent::Topic, Some(_)) => add(&inner.counters.lost, 1),
            (Sent::Queue(SettleOp::Barrier(done), _), _) => {
                let _ = done.send(());
            }
            (Sent::Queue(op, _), None) => {
                if let SettleOp::Add(a) = &op {
                    add(&inner.counters.published, 1);
                    if a.counted {
                        inner.written(&a.queue);
                    }
                }
            }
            (Sent::Queue(op, _), Some(e)) if e == "connection" || e == "no reply" => {
                failed.push(op)
            }
            (Sent::Queue(op, _), Some(e)) => {
                if let SettleOp::Add(a) = &op
                    && a.counted
                {
                    inner.written(&a.queue);
                }
                warn!(error = %e, "a queue operation failed");
            }
        }
    }
    failed
}

/// One entry of an `XREADGROUP`/`XCLAIM` reply: its id and its `d` field.
fn entries(v: Value) -> Vec<(ByteString, Option<Bytes>)> {
    let mut out = Vec::new();
    for e in v.into_array() {
        let mut parts = e.into_array().into_iter();
        let Some(id) = parts.next().and_then(|i| i.as_str().map(|s| s.to_string())) else {
            continue;
        };
        let mut payload = None;
        if let Some(fields) = parts.next() {
            let mut f = fields.into_array().into_iter();
            while let (Some(k), Some(v)) = (f.next(), f.next()) {
                if k.as_str().as_deref() == Some("d") {
                    payload = v.into_bytes();
                }
            }
        }
        out.push((ByteString::from(id), payload));
    }
    out
}

/// Turns raw entries into waiting messages; malformed or deleted ones are acked away.
fn decode_entries(
    inner: &Inner,
    queue: &ByteString,
    raw: Vec<(ByteString, Option<Bytes>)>,
    claimed: bool,
) -> Vec<Waiting> {
    let mut out = Vec::with_capacity(raw.len());
    for (id, payload) in raw {
        let decoded = payload.map(wire::decode);
        match decoded {
            Some(Ok(d)) => out.push(Waiting {
                id,
                message: Arc::new(d.message),
                deliveries: d.deliveries + u32::from(claimed),
                redelivered: d.redelivered || claimed,
            }),
            Some(Err(e)) => {
                add(&inner.counters.malformed, 1);
                warn!(queue = %queue, id = %id, error = %e, "skipped a malformed queue entry");
                let _ = inner.settle_tx.send(SettleOp::Ack {
                    queue: queue.clone(),
                    id,
                });
            }
            None => {
                // Deleted while pending (acked by a node that claimed it meanwhile).
                let _ = inner.settle_tx.send(SettleOp::Ack {
                    queue: queue.clone(),
                    id,
                });
            }
        }
    }
    out
}

/// The stream entries of an `XREADGROUP` reply (one stream).
fn read_reply(v: Value) -> Vec<(ByteString, Option<Bytes>)> {
    if v.is_null() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for stream in v.into_array() {
        let mut parts = stream.into_array().into_iter();
        let _name = parts.next();
        if let Some(list) = parts.next() {
            out.extend(entries(list));
        }
    }
    out
}

async fn ensure_group(inner: &Inner, stream: &str) -> Result<(), Error> {
    let r: Result<Value, Error> = inner
        .redis
        .client
        .custom(
            cmd_at("XGROUP", 1),
            vec![
                s("CREATE"),
                s(stream.to_owned()),
                s(GROUP),
                s("0"),
                s("MKSTREAM"),
            ],
        )
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.details().contains("BUSYGROUP") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reads a queue's stream for this node's consumers while they have credit, and claims
/// entries of dead nodes.
pub(crate) async fn queue_reader(
    inner: Arc<Inner>,
    queue: ByteString,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let stream = inner.names.stream(&queue);
    let node = inner.cfg.node_id.clone();
    let mut group_ready = false;
    // This consumer's own pending entries (a restart with the same node id) come first.
    let mut history: Option<String> = {
        let mut done = lock(&inner.history_done);
        done.insert(queue.clone()).then(|| "0".to_owned())
    };
    let claim_every =
        (inner.cfg.claim_idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut last_claim = Instant::now() - claim_every;
    loop {
        if *stop.borrow() {
            return;
        }
        if inner.is_up() {
            if !group_ready {
                match ensure_group(&inner, &stream).await {
                    Ok(()) => group_ready = true,
                    Err(e) => debug!(queue = %queue, error = %e, "XGROUP CREATE"),
                }
            }
            if group_ready {
                group_ready = read_available(&inner, &queue, &stream, &node, &mut history).await;
                if group_ready && last_claim.elapsed() >= claim_every {
                    last_claim = Instant::now();
                    claim(&inner, &queue, &stream, &node).await;
                }
            }
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(inner.cfg.poll_interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Reads while local consumers have credit; `false` if the group must be created again.
async fn read_available(
    inner: &Inner,
    queue: &ByteString,
    stream: &str,
    node: &str,
    history: &mut Option<String>,
) -> bool {
    loop {
        let n = inner.want(queue);
        if n == 0 {
            return true;
        }
        let from = history.clone().unwrap_or_else(|| ">".to_owned());
        let r: Result<Value, Error> = inner
            .redis
            .client
            .custom(
                cmd_at("XREADGROUP", 6),
                vec![
                    s("GROUP"),
                    s(GROUP),
                    s(node.to_owned()),
                    s("COUNT"),
                    Value::from(n as i64),
                    s("STREAMS"),
                    s(stream.to_owned()),
                    s(from),
                ],
            )
            .await;
        let raw = match r {
            Ok(v) => read_reply(v),
            Err(e) if e.details().contains("NOGROUP") => return false,
            Err(e) => {
                debug!(queue = %queue, error = %e, "XREADGROUP");
                return true;
            }
        };
        if let Some(h) = history.as_mut() {
            match raw.last() {
                Some((id, _)) => *h = id.to_string(),
                None => {
                    *history = None;
                    continue;
                }
            }
        } else if raw.is_empty() {
            return true;
        }
        add(&inner.counters.received, raw.len() as u64);
        let recovered = history.is_some();
        let got = decode_entries(inner, queue, raw, recovered);
        inner.take_entries(queue, got);
    }
}

/// Claims entries idle longer than `claim_idle` whose consumer's node is gone.
async fn claim(inner: &Inner, queue: &ByteString, stream: &str, node: &str) {
    let n = inner.want(queue);
    if n == 0 {
        return;
    }
    let idle = inner.cfg.claim_idle.as_millis() as i64;
    let r: Result<Value, Error> = inner
        .redis
        .client
        .custom(
            cmd("XPENDING"),
            vec![
                s(stream.to_owned()),
                s(GROUP),
                s("IDLE"),
                Value::from(idle),
                s("-"),
                s("+"),
                Value::from(n as i64),
            ],
        )
        .await;
    let Ok(v) = r else { return };
    let mut by_consumer: HashMap<String, Vec<String>> = HashMap::new();
    for e in v.into_array() {
        let mut parts = e.into_array().into_iter();
        let (Some(id), Some(consumer)) = (parts.next(), parts.next()) else {
            continue;
        };
        let (Some(id), Some(consumer)) = (id.as_str(), consumer.as_str()) else {
            continue;
        };
        if consumer != node {
            by_consumer
                .entry(consumer.to_string())
                .or_default()
                .push(id.to_string());
        }
    }
    for (consumer, ids) in by_consumer {
        let alive: Result<i64, Error> = inner
            .redis
            .client
            .custom(cmd("EXISTS"), vec![s(inner.names.node(&consumer))])
            .await;
        if !matches!(alive, Ok(0)) {
            continue;
        }
        let mut args = vec![
            s(stream.to_owned()),
            s(GROUP),
            s(node.to_owned()),
            Value::from(idle),
        ];
        args.extend(ids.iter().map(|i| s(i.clone())));
        let r: Result<Value, Error> = inner.redis.client.custom(cmd("XCLAIM"), args).await;
        let Ok(v) = r else { continue };
        let raw = entries(v);
        if raw.is_empty() {
            continue;
        }
        info!(
            queue = %queue,
            from = %consumer,
            count = raw.len(),
            "claimed unacknowledged entries of a node that is gone"
        );
        add(&inner.counters.claimed, raw.len() as u64);
        let got = decode_entries(inner, queue, raw, true);
        inner.take_entries(queue, got);
    }
}
