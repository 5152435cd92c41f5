//! [`ClusterBackend`]: the broker's synchronous [`Backend`] calls answered from local state;
//! everything Redis does happens in the tasks of [`crate::link`], fed through channels.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use bytestring::ByteString;
use switchboard_broker::{
    AckMode, Backend, BackendError, BackendStats, BrokerConfig, Clock, DeadLetterReason, Delivery,
    DestinationKind, Message, OfferError, Overflow, Pattern, Publication, PublishOutcome,
    QueuePolicy, Route, RouteKind, Subscriber,
};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::keys::{self, Names};
use crate::link::{self, Ctl, Redis, SettleOp};
use crate::wire;
use crate::{ClusterConfig, ClusterError};

pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
pub(crate) fn lock<T>(l: &Mutex<T>) -> MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether Redis is one server or a Redis Cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One Redis server: `PUBLISH`/`SUBSCRIBE`, wildcards with `PSUBSCRIBE`.
    Single,
    /// A Redis Cluster: sharded Pub/Sub (`SPUBLISH`/`SSUBSCRIBE`) for destinations, classic
    /// Pub/Sub for wildcard subscriptions, one hash slot per queue.
    Cluster,
}

impl Mode {
    /// `single` or `cluster`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Cluster => "cluster",
        }
    }
}

/// Whether the node can reach Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// Redis answers and the subscriber connection is up.
    pub up: bool,
    /// Why not, while down.
    pub reason: Option<String>,
}

/// Counters for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// 1 while Redis is reachable.
    pub up: bool,
    /// Times the connection came back after an outage.
    pub reconnects: u64,
    /// Messages written to Redis (topic publishes and queue entries).
    pub published: u64,
    /// Messages received from Redis (other nodes' topic messages, queue entries read).
    pub received: u64,
    /// Queue entries claimed from nodes that died.
    pub claimed: u64,
    /// Topic messages that could not be published (Redis down, writer buffer full) or received
    /// (reader fell behind).
    pub lost: u64,
    /// Queue SENDs waiting for Redis now.
    pub buffered: usize,
    /// Malformed entries skipped.
    pub malformed: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) reconnects: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) claimed: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) discarded: AtomicU64,
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// A topic message on its way to Redis.
pub(crate) struct Outgoing {
    pub(crate) channel: String,
    /// Also published here (classic Pub/Sub for wildcard subscribers in Redis Cluster mode).
    pub(crate) wild: Option<String>,
    pub(crate) payload: Bytes,
}

/// A queue SEND on its way to Redis.
pub(crate) struct Add {
    pub(crate) queue: ByteString,
    pub(crate) payload: Bytes,
    /// Counted in the queue's [`Depth::buffered`] until written.
    pub(crate) counted: bool,
}

/// Local fan-out subscriptions.
#[derive(Default)]
struct FanOut {
    exact: HashMap<ByteString, Vec<Arc<Subscriber>>>,
    wildcard: Vec<(Arc<Subscriber>, String)>,
    /// Literal prefixes of the wildcard subscriptions, with counts.
    prefixes: BTreeMap<String, usize>,
}

/// A queue entry read from Redis (pending on this node's consumer) not yet taken locally.
pub(crate) struct Waiting {
    pub(crate) id: ByteString,
    pub(crate) message: Arc<Message>,
    pub(crate) deliveries: u32,
    pub(crate) redelivered: bool,
}

/// What a node knows of a queue's length (see [`Inner::depth`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Depth {
    /// Waiting in Redis when this node last wrote to the queue.
    pub(crate) in_redis: usize,
    /// SENDs accepted here and not yet written.
    pub(crate) buffered: usize,
    /// A fresh measurement was asked for (the queue looked full).
    pub(crate) probing: bool,
    /// A SEND was refused since the last measurement: measured again every poll interval
    /// until one shows room.
    pub(crate) full: bool,
}

/// A queue this node has consumers of.
struct LocalQueue {
    consumers: Vec<Arc<Subscriber>>,
    next: usize,
    waiting: VecDeque<Waiting>,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
}

/// A queue delivery a client has not acknowledged yet.
struct InFlight {
    queue: ByteString,
    id: ByteString,
    deliveries: u32,
    redelivered: bool,
}

pub(crate) struct Inner {
    pub(crate) cfg: ClusterConfig,
    pub(crate) names: Names,
    pub(crate) mode: Mode,
    pub(crate) redis: Redis,
    clock: Clock,
    policies: Vec<(Pattern, QueuePolicy)>,
    default_max: usize,
    /// Per queue: messages waiting in Redis as last seen (stream length minus pending) and
    /// SENDs of this node not yet written, for `max_length` (refuse) checks.
    pub(crate) depth: Mutex<HashMap<ByteString, Depth>>,
    queue_prefix: String,
    fanout: RwLock<FanOut>,
    queues: Mutex<HashMap<ByteString, LocalQueue>>,
    inflight: Mutex<HashMap<u64, InFlight>>,
    next_tag: AtomicU64,
    /// Queues whose pending entries of this consumer were read back once this process.
    pub(crate) history_done: Mutex<HashSet<ByteString>>,
    /// Wildcard prefixes some node of the cluster listens to (Redis Cluster mode).
    pub(crate) wild_prefixes: RwLock<Vec<String>>,
    pub(crate) topic_tx: mpsc::Sender<Outgoing>,
    pub(crate) queue_tx: mpsc::Sender<Add>,
    pub(crate) settle_tx: mpsc::UnboundedSender<SettleOp>,
    pub(crate) ctl_tx: mpsc::UnboundedSender<Ctl>,
    pub(crate) up: watch::Sender<bool>,
    pub(crate) reason: Mutex<Option<String>>,
    pub(crate) counters: Counters,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    closed: AtomicBool,
}

/// The Redis-backed [`Backend`]. Build it with [`ClusterBackend::connect`] inside a Tokio
/// runtime, install it with `BrokerBuilder::backend`, and give the broker
/// [`message_id_prefix`](Self::message_id_prefix).
#[derive(Clone)]
pub struct ClusterBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClusterBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBackend")
            .field("node", &self.inner.cfg.node_id)
            .field("mode", &self.inner.mode)
            .field("health", &self.health())
            .finish()
    }
}

impl ClusterBackend {
    /// Connects to Redis (detecting a Redis Cluster), registers this node and starts its
    /// tasks. Fails if Redis cannot be reached within `connect_timeout`. Queue policies
    /// (`max_redeliveries`, dead letters), prefixes and the clock come from `broker`.
    pub async fn connect(
        config: ClusterConfig,
        broker: &BrokerConfig,
    ) -> Result<ClusterBackend, ClusterError> {
        if config.node_id.is_empty()
            || config
                .node_id
                .contains(|c: char| c.is_whitespace() || c == '|')
        {
            return Err(ClusterError::Config(format!(
                "node id `{}`: must be non-empty, without spaces or `|`",
                config.node_id
            )));
        }
        let seeds = crate::parse_url(&config.url)?;
        let (redis, mode) = link::connect(&config, &seeds).await?;
        let (topic_tx, topic_rx) = mpsc::channel(config.publish_buffer.max(1));
        let (queue_tx, queue_rx) = mpsc::channel(config.max_buffered.max(1));
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (up, _) = watch::channel(true);
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            names: Names::new(&config.key_prefix),
            cfg: config,
            mode,
            redis,
            clock: broker.clock.clone(),
            policies: broker
                .queues
                .iter()
                .map(|p| (Pattern::compile(&p.pattern), p.clone()))
                .collect(),
            queue_prefix: broker.prefixes.queue.clone(),
            default_max: broker.limits.max_pending_per_queue,
            depth: Mutex::default(),
            fanout: RwLock::default(),
            queues: Mutex::default(),
            inflight: Mutex::default(),
            next_tag: AtomicU64::new(1),
            history_done: Mutex::default(),
            wild_prefixes: RwLock::default(),
            topic_tx,
            queue_tx,
            settle_tx,
            ctl_tx,
            up,
            reason: Mutex::new(None),
            counters: Counters::default(),
            stop,
            runtime: tokio::runtime::Handle::current(),
            tasks: Mutex::default(),
            closed: AtomicBool::new(false),
        });
        link::start(&inner, topic_rx, queue_rx, settle_rx, ctl_rx).await;
        tracing::info!(
            node = %inner.cfg.node_id,
            mode = mode.as_str(),
            url = %inner.cfg.url,
            "joined the cluster"
        );
        Ok(ClusterBackend { inner })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.cfg.node_id
    }

    /// What the broker's `message_id_prefix` must be: `<node-id>-`.
    pub fn message_id_prefix(&self) -> String {
        format!("{}-", self.inner.cfg.node_id)
    }

    /// Single Redis or Redis Cluster.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// Up, or down with a reason.
    pub fn health(&self) -> Health {
        let up = *self.inner.up.borrow();
        Health {
            up,
            reason: if up {
                None
            } else {
                lock(&self.inner.reason)
                    .clone()
                    .or_else(|| Some("Redis unreachable".to_owned()))
            },
        }
    }

    /// Counters for metrics.
    pub fn stats(&self) -> ClusterStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClusterStats {
            up: *self.inner.up.borrow(),
            reconnects: get(&c.reconnects),
            published: get(&c.published),
            received: get(&c.received),
            claimed: get(&c.claimed),
            lost: get(&c.lost),
            buffered: self
                .inner
                .cfg
                .max_buffered
                .max(1)
                .saturating_sub(self.inner.queue_tx.capacity()),
            malformed: get(&c.malformed),
        }
    }

    /// Waits until every subscription change made so far is in effect in Redis, everything
    /// published so far was written, and (Redis Cluster) the wildcard registry was re-read.
    /// Bounded by the command timeout; for tests and orderly hand-overs.
    pub async fn sync(&self) {
        let wait = self.inner.cfg.command_timeout * 3;
        let (tx, rx) = oneshot::channel();
        if self.inner.ctl_tx.send(Ctl::Sync(tx)).is_ok() {
            let _ = tokio::time::timeout(wait, rx).await;
        }
        // The writer answers once everything handed to it before this was sent.
        let (tx, rx) = oneshot::channel();
        if self.inner.settle_tx.send(SettleOp::Barrier(tx)).is_ok() {
            let _ = tokio::time::timeout(wait, rx).await;
        }
    }

    /// Stops the tasks: readers first, then the writer flushes what is queued (bounded by the
    /// command timeout). Entries this node holds unacknowledged stay pending in Redis and are
    /// claimed by other nodes after `claim_idle`. Idempotent.
    pub async fn shutdown(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        for q in lock(&self.inner.queues).values() {
            q.stop.send_replace(true);
        }
        self.inner.stop.send_replace(true);
        let tasks: Vec<_> = lock(&self.inner.tasks).drain(..).collect();
        let wait = self.inner.cfg.command_timeout * 2;
        for t in tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(wait, t).await.is_err() {
                abort.abort();
            }
        }
        link::quit(&self.inner).await;
    }
}

impl Inner {
    pub(crate) fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    fn policy(&self, queue: &str) -> Option<&QueuePolicy> {
        self.policies
            .iter()
            .find(|(p, _)| p.matches(queue))
            .map(|(_, p)| p)
    }

    /// `queue`'s length limit, if SENDs beyond it are refused.
    fn refuse_beyond(&self, queue: &str) -> Option<usize> {
        let default = QueuePolicy::default();
        let p = self.policy(queue).unwrap_or(&default);
        (p.overflow == Overflow::Refuse).then(|| p.max_length.unwrap_or(self.default_max))
    }

    /// A SEND to `queue` was written (or given up): no longer buffered.
    pub(crate) fn written(&self, queue: &ByteString) {
        if let Some(d) = lock(&self.depth).get_mut(queue) {
            d.buffered = d.buffered.saturating_sub(1);
        }
    }

    /// What Redis said of `queue` after a write: `len` entries, `pending` of them delivered.
    pub(crate) fn seen_depth(&self, queue: &ByteString, len: usize, pending: usize) {
        let mut depth = lock(&self.depth);
        let d = depth.entry(queue.clone()).or_default();
        d.in_redis = len.saturating_sub(pending);
        d.probing = false;
        d.full = false;
    }

    /// Asks for a measurement of every queue that refused a SEND since it was last measured.
    pub(crate) fn probe_full(&self) {
        let mut depth = lock(&self.depth);
        for (q, d) in depth.iter_mut() {
            if d.full && !d.probing {
                d.probing = true;
                self.settle_op(SettleOp::Probe(q.clone()));
            }
        }
    }

    /// A measurement of `queue` failed: the next refused SEND asks again.
    pub(crate) fn unmeasured(&self, queue: &ByteString) {
        if let Some(d) = lock(&self.depth).get_mut(queue) {
            d.probing = false;
        }
    }

    /// The dead-letter queue of `queue` and its redelivery limit.
    fn plan(&self, queue: &str) -> (Option<u32>, Option<ByteString>) {
        let default = QueuePolicy::default();
        let p = self.policy(queue).unwrap_or(&default);
        let name = queue
            .strip_prefix(self.queue_prefix.as_str())
            .unwrap_or(queue);
        let dlq = p
            .dead_letter
            .as_ref()
            .map(|t| t.replace("{name}", name))
            .filter(|d| !d.is_empty() && d != queue)
            .map(ByteString::from);
        (p.max_redeliveries, dlq)
    }

    fn encode(&self, m: &Message, deliveries: u32, redelivered: bool) -> Bytes {
        wire::encode(&self.cfg.node_id, m, deliveries, redelivered)
    }

    fn expired(&self, m: &Message) -> bool {
        m.expires().is_some_and(|e| e <= self.clock.now())
    }

    /// Delivers a fan-out message to local exact subscriptions of `key` (and, with
    /// `wildcards`, to local wildcard subscriptions matching it).
    fn deliver_local(
        &self,
        key: &ByteString,
        kind: DestinationKind,
        m: &Arc<Message>,
        exact: bool,
        wildcards: bool,
        outcome: &mut PublishOutcome,
    ) {
        let t = read(&self.fanout);
        if exact && let Some(subs) = t.exact.get(key) {
            for s in subs {
                count(outcome, s.offer(m, false, 0));
            }
        }
        if wildcards && !t.wildcard.is_empty() && kind == DestinationKind::Topic {
            let parts: Vec<&str> = key.split(['/', '.']).collect();
            for (s, _) in &t.wildcard {
                if s.pattern().is_some_and(|p| p.matches_segments(&parts)) {
                    count(outcome, s.offer(m, false, 0));
                }
            }
        }
    }

    /// A topic or user message another node published, from channel `channel`
    /// (`from_pattern`: a wildcard subscription's copy).
    pub(crate) fn remote_fanout(&self, channel: &str, payload: Bytes, from_pattern: bool) {
        let key = if from_pattern {
            match self.mode {
                Mode::Single => channel.strip_prefix(self.names.topic_prefix().as_str()),
                Mode::Cluster => channel.strip_prefix(self.names.wild_prefix().as_str()),
            }
        } else {
            channel.strip_prefix(self.names.topic_prefix().as_str())
        };
        let Some(key) = key else { return };
        let d = match wire::decode(payload) {
            Ok(d) => d,
            Err(e) => {
                add(&self.counters.malformed, 1);
                tracing::warn!(channel, error = %e, "skipped a malformed message");
                return;
            }
        };
        if d.origin == self.cfg.node_id.as_str() {
            return;
        }
        add(&self.counters.received, 1);
        let m = Arc::new(d.message);
        if self.expired(&m) {
            return;
        }
        let key = ByteString::from(key.to_owned());
        let mut outcome = PublishOutcome::default();
        self.deliver_local(
            &key,
            m.kind(),
            &m,
            !from_pattern,
            from_pattern,
            &mut outcome,
        );
    }

    fn ctl(&self, c: Ctl) {
        let _ = self.ctl_tx.send(c);
    }

    fn settle_op(&self, op: SettleOp) {
        let _ = self.settle_tx.send(op);
    }

    /// The globs wildcard subscriptions need now (each message received at most once).
    fn wanted_globs(&self, t: &FanOut) -> Vec<String> {
        let chan_prefix = match self.mode {
            Mode::Single => self.names.topic_prefix(),
            Mode::Cluster => self.names.wild_prefix(),
        };
        keys::minimal_prefixes(t.prefixes.keys().map(String::as_str))
            .into_iter()
            .map(|p| (keys::glob(&chan_prefix, &p), p))
            .map(|(g, _)| g)
            .collect()
    }

    fn wanted_prefixes(&self, t: &FanOut) -> Vec<String> {
        keys::minimal_prefixes(t.prefixes.keys().map(String::as_str))
    }

    /// How many entries of `queue` local consumers can take now (0 while some wait locally).
    pub(crate) fn want(&self, queue: &ByteString) -> usize {
        let queues = lock(&self.queues);
        let Some(q) = queues.get(queue) else { return 0 };
        if !q.waiting.is_empty() {
            return 0;
        }
        let batch = self.cfg.read_batch.max(1);
        let mut n = 0usize;
        for c in &q.consumers {
            if !c.is_active() {
                continue;
            }
            n += if c.prefetch() == 0 {
                batch
            } else {
                c.prefetch().saturating_sub(c.in_flight()) as usize
            };
            if n >= batch {
                return batch;
            }
        }
        n
    }

    /// Entries read (or claimed) from `queue`'s stream: offered to local consumers; what they
    /// cannot take waits here. If the queue has no local consumer any more, they go back.
    pub(crate) fn take_entries(&self, queue: &ByteString, entries: Vec<Waiting>) {
        let mut queues = lock(&self.queues);
        match queues.get_mut(queue) {
            Some(q) => {
                q.waiting.extend(entries);
                self.dispatch(queue, q);
            }
            None => {
                drop(queues);
                for w in entries {
                    self.give_back(queue, w);
                }
            }
        }
    }

    /// Puts a waiting entry back for any node (nobody here saw it).
    fn give_back(&self, queue: &ByteString, w: Waiting) {
        let payload = self.encode(&w.message, w.deliveries, w.redelivered);
        self.settle_op(SettleOp::Requeue {
            queue: queue.clone(),
            id: w.id,
            payload,
        });
    }

    /// Offers waiting entries round-robin to consumers with credit, until one side runs out.
    fn dispatch(&self, queue: &ByteString, q: &mut LocalQueue) {
        while let Some(w) = q.waiting.front() {
            if self.expired(&w.message) {
                if let Some(w) = q.waiting.pop_front() {
                    add(&self.counters.expired, 1);
                    self.retire(queue, w, DeadLetterReason::Expired);
                }
                continue;
            }
            let n = q.consumers.len();
            let mut taken = false;
            for i in 0..n {
                let idx = (q.next + i) % n;
                let c = &q.consumers[idx];
                let auto = c.ack_mode() == AckMode::Auto;
                let tag = if auto {
                    0
                } else {
                    let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
                    lock(&self.inflight).insert(
                        tag,
                        InFlight {
                            queue: queue.clone(),
                            id: w.id.clone(),
                            deliveries: w.deliveries,
                            redelivered: w.redelivered,
                        },
                    );
                    tag
                };
                match c.offer(&w.message, w.redelivered, tag) {
                    Ok(()) => {
                        if auto {
                            // Consumed once handed over (auto ack); a requeue of it from a
                            // closing session adds it again (tag 0).
                            self.settle_op(SettleOp::Ack {
                                queue: queue.clone(),
                                id: w.id.clone(),
                            });
                        }
                        q.next = idx + 1;
                        taken = true;
                        break;
                    }
                    Err(_) => {
                        if !auto {
                            lock(&self.inflight).remove(&tag);
                        }
                    }
                }
            }
            if !taken {
                break;
            }
            q.waiting.pop_front();
        }
    }

    /// An entry leaves its queue undelivered: to the dead-letter queue, else discarded.
    fn retire(&self, queue: &ByteString, w: Waiting, reason: DeadLetterReason) {
        let (_, dlq) = self.plan(queue);
        match dlq {
            Some(dlq) if !w.message.is_dead_letter() => {
                let letter = w.message.dead_letter(dlq.clone(), reason, w.deliveries);
                add(&self.counters.dead_lettered, 1);
                self.settle_op(SettleOp::Move {
                    queue: queue.clone(),
                    id: w.id,
                    to: dlq,
                    payload: self.encode(&letter, 0, false),
                });
            }
            _ => {
                add(&self.counters.discarded, 1);
                self.settle_op(SettleOp::Ack {
                    queue: queue.clone(),
                    id: w.id,
                });
            }
        }
    }

    /// Offers waiting entries of `queue` again and wakes its reader.
    fn kick(&self, queue: &ByteString) {
        let mut queues = lock(&self.queues);
        if let Some(q) = queues.get_mut(queue) {
            self.dispatch(queue, q);
            q.wake.notify_one();
        }
    }

    /// Wakes every queue reader (after a reconnect).
    pub(crate) fn wake_all(&self) {
        for q in lock(&self.queues).values() {
            q.wake.notify_one();
        }
    }

    /// Wakes the reader of `queue` (new entries were announced).
    pub(crate) fn wake(&self, queue: &str) {
        if let Some(q) = lock(&self.queues).get(queue) {
            q.wake.notify_one();
        }
    }

    pub(crate) fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        let t = self.runtime.spawn(f);
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(t);
    }

    /// The local subscriptions' wildcard prefixes (Redis Cluster registry).
    pub(crate) fn local_prefixes(&self) -> Vec<String> {
        self.wanted_prefixes(&read(&self.fanout))
    }

    /// Users with local subscriptions (registry).
    pub(crate) fn local_users(&self) -> Vec<String> {
        let t = read(&self.fanout);
        let mut users: Vec<String> = t
            .exact
            .iter()
            .filter(|(_, subs)| {
                subs.first()
                    .is_some_and(|s| s.route().destination_kind == DestinationKind::User)
            })
            .filter_map(|(k, _)| user_of(k))
            .map(str::to_owned)
            .collect();
        users.sort();
        users.dedup();
        users
    }
}

/// `alice` of `/user/alice/queue/x`.
fn user_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix('/')?;
    let (_, rest) = rest.split_once('/')?;
    rest.split('/').next().filter(|u| !u.is_empty())
}

fn count(outcome: &mut PublishOutcome, r: Result<(), OfferError>) {
    match r {
        Ok(()) => outcome.delivered += 1,
        Err(OfferError::Closed) => {}
        Err(_) => outcome.dropped += 1,
    }
}

impl Backend for ClusterBackend {
    fn subscribe(&self, subscriber: Arc<Subscriber>) -> Result<(), BackendError> {
        let inner = &self.inner;
        let key = subscriber.route().key.clone();
        match subscriber.route().kind {
            RouteKind::FanOut => {
                let mut t = write(&inner.fanout);
                if subscriber.pattern().is_some() {
                    let before = inner.wanted_globs(&t);
                    let prefix = keys::literal_prefix(subscriber.destination()).to_owned();
                    *t.prefixes.entry(prefix.clone()).or_default() += 1;
                    t.wildcard.push((subscriber, prefix));
                    let after = inner.wanted_globs(&t);
                    if before != after {
                        inner.ctl(Ctl::Patterns {
                            globs: after,
                            prefixes: inner.wanted_prefixes(&t),
                        });
                    }
                } else {
                    let list = t.exact.entry(key.clone()).or_default();
                    list.push(subscriber);
                    if list.len() == 1 {
                        inner.ctl(Ctl::Subscribe(inner.names.topic(&key)));
                    }
                }
            }
            RouteKind::Queue => {
                let mut queues = lock(&inner.queues);
                let q = match queues.get_mut(&key) {
                    Some(q) => q,
                    None => {
                        let wake = Arc::new(Notify::new());
                        let (stop, stop_rx) = watch::channel(false);
                        inner.ctl(Ctl::Subscribe(inner.names.notify(&key)));
                        let owned = ByteString::from(key.to_string());
                        inner.spawn(link::queue_reader(
                            self.inner.clone(),
                            owned.clone(),
                            wake.clone(),
                            stop_rx,
                        ));
                        queues.entry(owned).or_insert(LocalQueue {
                            consumers: Vec::new(),
                            next: 0,
                            waiting: VecDeque::new(),
                            wake,
                            stop,
                        })
                    }
                };
                q.consumers.push(subscriber);
                q.wake.notify_one();
                inner.dispatch(&key, q);
            }
        }
        Ok(())
    }

    fn unsubscribe(&self, subscriber: &Arc<Subscriber>) {
        let inner = &self.inner;
        let key = &subscriber.route().key;
        match subscriber.route().kind {
            RouteKind::FanOut => {
                let mut t = write(&inner.fanout);
                if subscriber.pattern().is_some() {
                    let before = inner.wanted_globs(&t);
                    let mut prefix = None;
                    t.wildcard.retain(|(s, p)| {
                        let same = Arc::ptr_eq(s, subscriber);
                        if same {
                            prefix = Some(p.clone());
                        }
                        !same
                    });
                    if let Some(p) = prefix
                        && let Some(n) = t.prefixes.get_mut(&p)
                    {
                        *n -= 1;
                        if *n == 0 {
                            t.prefixes.remove(&p);
                        }
                    }
                    let after = inner.wanted_globs(&t);
                    if before != after {
                        inner.ctl(Ctl::Patterns {
                            globs: after,
                            prefixes: inner.wanted_prefixes(&t),
                        });
                    }
                } else if let Some(list) = t.exact.get_mut(key) {
                    let had = list.len();
                    list.retain(|s| !Arc::ptr_eq(s, subscriber));
                    if list.is_empty() {
                        t.exact.remove(key);
                        if had > 0 {
                            inner.ctl(Ctl::Unsubscribe(inner.names.topic(key)));
                        }
                    }
                }
            }
            RouteKind::Queue => {
                let mut queues = lock(&inner.queues);
                let gone = match queues.get_mut(key) {
                    Some(q) => {
                        q.consumers.retain(|s| !Arc::ptr_eq(s, subscriber));
                        q.next = 0;
                        q.consumers.is_empty()
                    }
                    None => false,
                };
                if gone && let Some(q) = queues.remove(key) {
                    drop(queues);
                    q.stop.send_replace(true);
                    inner.ctl(Ctl::Unsubscribe(inner.names.notify(key)));
                    for w in q.waiting {
                        inner.give_back(key, w);
                    }
                } else if !gone {
                    // Others may take what this one could not.
                    if let Some(q) = queues.get_mut(key) {
                        inner.dispatch(key, q);
                    }
                }
            }
        }
    }

    fn publish(
        &self,
        route: &Route,
        message: Arc<Message>,
    ) -> Result<PublishOutcome, BackendError> {
        let inner = &self.inner;
        let mut outcome = PublishOutcome::default();
        match route.kind {
            RouteKind::FanOut => {
                if inner.expired(&message) {
                    add(&inner.counters.expired, 1);
                    add(&inner.counters.discarded, 1);
                    return Ok(outcome);
                }
                inner.deliver_local(
                    &route.key,
                    route.destination_kind,
                    &message,
                    true,
                    true,
                    &mut outcome,
                );
                let wild = (inner.mode == Mode::Cluster
                    && route.destination_kind == DestinationKind::Topic
                    && read(&inner.wild_prefixes)
                        .iter()
                        .any(|p| route.key.starts_with(p.as_str())))
                .then(|| inner.names.wild(&route.key));
                let out = Outgoing {
                    channel: inner.names.topic(&route.key),
                    wild,
                    payload: inner.encode(&message, 0, false),
                };
                if inner.topic_tx.try_send(out).is_err() {
                    add(&inner.counters.lost, 1);
                }
            }
            RouteKind::Queue => {
                let limit = inner.refuse_beyond(&route.key);
                if let Some(max) = limit {
                    let mut depth = lock(&inner.depth);
                    let d = match depth.get_mut(&route.key) {
                        Some(d) => d,
                        None => depth
                            .entry(ByteString::from(route.key.to_string()))
                            .or_default(),
                    };
                    if d.in_redis + d.buffered >= max {
                        // What this node knows may be stale (consumers elsewhere took some):
                        // measure again for the next SEND.
                        d.full = true;
                        if !d.probing {
                            d.probing = true;
                            inner.settle_op(SettleOp::Probe(route.key.clone()));
                        }
                        return Err(BackendError::QueueFull {
                            destination: route.key.to_string(),
                        });
                    }
                    d.buffered += 1;
                }
                let add_op = Add {
                    queue: ByteString::from(route.key.to_string()),
                    payload: inner.encode(&message, 0, false),
                    counted: limit.is_some(),
                };
                inner.queue_tx.try_send(add_op).map_err(|e| {
                    let a = e.into_inner();
                    if a.counted {
                        inner.written(&a.queue);
                    }
                    BackendError::Unavailable {
                        reason: if inner.is_up() {
                            format!(
                                "Redis is not keeping up: {} queue messages already waiting \
                                 to be written",
                                inner.cfg.max_buffered
                            )
                        } else {
                            format!(
                                "Redis unreachable and {} queue messages already waiting for it",
                                inner.cfg.max_buffered
                            )
                        },
                    }
                })?;
                outcome.queued = true;
            }
        }
        Ok(outcome)
    }

    fn publish_all(&self, batch: &[Publication]) -> Result<Vec<PublishOutcome>, BackendError> {
        let queued = batch
            .iter()
            .filter(|p| p.route.kind == RouteKind::Queue)
            .count();
        if queued > self.inner.queue_tx.capacity() {
            return Err(BackendError::Unavailable {
                reason: "Redis unreachable: no room to hold the transaction's queue messages"
                    .to_owned(),
            });
        }
        // All or nothing: every queue of the batch must have room for all of its messages.
        let mut need: Vec<(&ByteString, usize)> = Vec::new();
        for p in batch.iter().filter(|p| p.route.kind == RouteKind::Queue) {
            match need.iter_mut().find(|(k, _)| *k == &p.route.key) {
                Some((_, n)) => *n += 1,
                None => need.push((&p.route.key, 1)),
            }
        }
        {
            let depth = lock(&self.inner.depth);
            for (key, n) in need {
                if let Some(max) = self.inner.refuse_beyond(key) {
                    let d = depth.get(key).copied().unwrap_or_default();
                    if d.in_redis + d.buffered + n > max {
                        return Err(BackendError::QueueFull {
                            destination: key.to_string(),
                        });
                    }
                }
            }
        }
        batch
            .iter()
            .map(|p| self.publish(&p.route, p.message.clone()))
            .collect()
    }

    fn settle(&self, acked: Vec<Delivery>, requeue: Vec<Delivery>) {
        let inner = &self.inner;
        let mut touched: Vec<ByteString> = Vec::new();
        for d in &acked {
            if d.subscriber().route().kind != RouteKind::Queue || d.tag() == 0 {
                continue;
            }
            if let Some(f) = lock(&inner.inflight).remove(&d.tag()) {
                if !touched.contains(&f.queue) {
                    touched.push(f.queue.clone());
                }
                inner.settle_op(SettleOp::Ack {
                    queue: f.queue,
                    id: f.id,
                });
            }
        }
        for d in &requeue {
            let route = d.subscriber().route();
            if route.kind != RouteKind::Queue {
                continue;
            }
            if d.tag() == 0 {
                // An auto-ack delivery (already removed from the stream) its session never
                // sent: add it again.
                let _ = inner.settle_tx.send(SettleOp::Add(Add {
                    queue: route.key.clone(),
                    payload: inner.encode(d.message(), 0, d.redelivered()),
                    counted: false,
                }));
                continue;
            }
            let Some(f) = lock(&inner.inflight).remove(&d.tag()) else {
                continue;
            };
            if !touched.contains(&f.queue) {
                touched.push(f.queue.clone());
            }
            let deliveries = f.deliveries + u32::from(d.shown());
            let redelivered = f.redelivered || d.shown();
            let (max, _) = inner.plan(&f.queue);
            let w = Waiting {
                id: f.id,
                message: d.message().clone(),
                deliveries,
                redelivered,
            };
            if max.is_some_and(|max| deliveries > max) {
                inner.retire(&f.queue, w, DeadLetterReason::MaxRedeliveries);
            } else {
                inner.give_back(&f.queue, w);
            }
        }
        for q in touched {
            inner.kick(&q);
        }
    }

    fn resume(&self, subscriber: &Arc<Subscriber>) {
        if subscriber.route().kind == RouteKind::Queue {
            self.inner.kick(&subscriber.route().key);
        }
    }

    fn stats(&self) -> BackendStats {
        let inner = &self.inner;
        let t = read(&inner.fanout);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = BackendStats {
            subscriptions: t.wildcard.len() + t.exact.values().map(Vec::len).sum::<usize>(),
            expired: get(&inner.counters.expired),
            dead_lettered: get(&inner.counters.dead_lettered),
            discarded: get(&inner.counters.discarded),
            ..BackendStats::default()
        };
        drop(t);
        let queues = lock(&inner.queues);
        s.queues = queues.len();
        for q in queues.values() {
            s.pending += q.waiting.len();
            s.subscriptions += q.consumers.len();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_from_keys() {
        assert_eq!(user_of("/user/alice/queue/x"), Some("alice"));
        assert_eq!(user_of("/user//x"), None);
    }
}
