//! The in-memory backend: read-mostly routing tables, per-queue state, no lock per delivery.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytestring::ByteString;

use crate::backend::{Backend, BackendError, BackendStats, Publication, PublishOutcome};
use crate::config::{BrokerConfig, Clock, Overflow, QueuePolicy};
use crate::destination::{DestinationKind, Pattern, Route, RouteKind, is_separator};
use crate::message::{DeadLetterReason, Message};
use crate::subscription::{Delivery, OfferError, Subscriber};

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
fn lock<T>(l: &Mutex<T>) -> MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct FanOutTable {
    exact: HashMap<ByteString, Vec<Arc<Subscriber>>>,
    wildcard: Vec<Arc<Subscriber>>,
}

/// A waiting queue message.
struct Entry {
    message: Arc<Message>,
    /// How many times a consumer has received it.
    deliveries: u32,
    /// When it expires: the earlier of its `expires` header and enqueue time + the queue's TTL.
    expires_at: Option<SystemTime>,
}

/// A message leaving a queue for a dead-letter queue (handed over once no lock is held).
type DeadLetter = (ByteString, Arc<Message>);

/// One queue's policy, resolved when the queue is created.
#[derive(Debug)]
struct QueuePlan {
    max_length: usize,
    overflow: Overflow,
    max_redeliveries: Option<u32>,
    /// The dead-letter queue (never the queue itself).
    dead_letter: Option<ByteString>,
    ttl: Option<Duration>,
}

/// Lifecycle counters (reported in [`BackendStats`]).
#[derive(Debug, Default)]
struct Counters {
    expired: AtomicU64,
    dead_lettered: AtomicU64,
    overflowed: AtomicU64,
    discarded: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Delivery tags carry what a requeued message must keep: its delivery count (low 20 bits)
/// and its expiry in milliseconds since the epoch (the rest; 0 = none).
const COUNT_BITS: u32 = 20;

fn pack_tag(deliveries: u32, expires_at: Option<SystemTime>) -> u64 {
    let ms = expires_at
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| (d.as_millis() as u64).clamp(1, (1 << (64 - COUNT_BITS)) - 1))
        .unwrap_or(0);
    (ms << COUNT_BITS) | u64::from(deliveries.min((1 << COUNT_BITS) - 1))
}

fn unpack_tag(tag: u64) -> (u32, Option<SystemTime>) {
    let deliveries = (tag & ((1 << COUNT_BITS) - 1)) as u32;
    let ms = tag >> COUNT_BITS;
    (
        deliveries,
        (ms != 0).then(|| UNIX_EPOCH + Duration::from_millis(ms)),
    )
}

struct QueueState {
    /// Messages nobody has taken yet.
    pending: VecDeque<Entry>,
    /// How many of `pending` have an expiry (a full queue looks for expired ones only if any).
    expiring: usize,
    /// No waiting message expires before this (a lower bound, exact after a purge): a full
    /// queue scans for expired messages only once one may have expired.
    next_expiry: Option<SystemTime>,
    consumers: Vec<Arc<Subscriber>>,
    next: usize,
    plan: QueuePlan,
}

/// What queue operations need besides the queue: the clock and the counters.
struct Cx<'a> {
    clock: &'a Clock,
    counters: &'a Counters,
}

impl Cx<'_> {
    /// A message leaves its queue undelivered: to the dead-letter queue if it has one (and the
    /// message is not a dead letter already), else discarded. Counted either way.
    fn retire(
        &self,
        plan: &QueuePlan,
        entry: Entry,
        reason: DeadLetterReason,
        dead: &mut Vec<DeadLetter>,
    ) {
        match reason {
            DeadLetterReason::Expired => bump(&self.counters.expired),
            DeadLetterReason::MaxLength => bump(&self.counters.overflowed),
            _ => {}
        }
        match &plan.dead_letter {
            Some(dlq) if !entry.message.is_dead_letter() => {
                let letter = entry
                    .message
                    .dead_letter(dlq.clone(), reason, entry.deliveries);
                dead.push((dlq.clone(), Arc::new(letter)));
            }
            _ => bump(&self.counters.discarded),
        }
    }
}

impl QueueState {
    fn new(plan: QueuePlan) -> QueueState {
        QueueState {
            pending: VecDeque::new(),
            expiring: 0,
            next_expiry: None,
            consumers: Vec::new(),
            next: 0,
            plan,
        }
    }

    fn note_expiry(&mut self, e: &Entry) {
        if let Some(t) = e.expires_at {
            self.expiring += 1;
            self.next_expiry = Some(self.next_expiry.map_or(t, |n| n.min(t)));
        }
    }

    fn push_back(&mut self, e: Entry) {
        self.note_expiry(&e);
        self.pending.push_back(e);
    }

    fn push_front(&mut self, e: Entry) {
        self.note_expiry(&e);
        self.pending.push_front(e);
    }

    fn pop_front(&mut self) -> Option<Entry> {
        let e = self.pending.pop_front()?;
        self.expiring -= usize::from(e.expires_at.is_some());
        Some(e)
    }

    fn pop_back(&mut self) -> Option<Entry> {
        let e = self.pending.pop_back()?;
        self.expiring -= usize::from(e.expires_at.is_some());
        Some(e)
    }

    /// Offers pending messages round-robin to consumers with credit, until one side runs out.
    /// Expired messages met at the head are retired instead.
    fn dispatch(&mut self, cx: &Cx<'_>, dead: &mut Vec<DeadLetter>) -> usize {
        let mut delivered = 0;
        let mut now = None;
        while let Some(front) = self.pending.front() {
            if let Some(t) = front.expires_at
                && t <= *now.get_or_insert_with(|| cx.clock.now())
            {
                if let Some(e) = self.pop_front() {
                    cx.retire(&self.plan, e, DeadLetterReason::Expired, dead);
                }
                continue;
            }
            let n = self.consumers.len();
            let tag = pack_tag(front.deliveries, front.expires_at);
            let mut taken = false;
            for i in 0..n {
                let idx = (self.next + i) % n;
                if self.consumers[idx]
                    .offer(&front.message, front.deliveries > 0, tag)
                    .is_ok()
                {
                    // Not reduced modulo `n`: a consumer added later is next in line.
                    self.next = idx + 1;
                    taken = true;
                    break;
                }
            }
            if !taken {
                break;
            }
            self.pop_front();
            delivered += 1;
        }
        delivered
    }

    /// Retires every expired waiting message (a full queue makes room this way first). Scans
    /// only when a message may have expired since the last scan, so a full queue of long-lived
    /// messages costs nothing per publish.
    fn purge_expired(&mut self, cx: &Cx<'_>, dead: &mut Vec<DeadLetter>) {
        if self.expiring == 0 {
            self.next_expiry = None;
            return;
        }
        let now = cx.clock.now();
        if self.next_expiry.is_some_and(|t| t > now) {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.pending.len());
        while let Some(e) = self.pop_front() {
            if e.expires_at.is_some_and(|t| t <= now) {
                cx.retire(&self.plan, e, DeadLetterReason::Expired, dead);
            } else {
                kept.push_back(e);
            }
        }
        self.next_expiry = None;
        for e in kept {
            self.push_back(e);
        }
    }

    /// Whether `n` more messages fit (after dropping expired ones), for an all-or-nothing batch.
    /// A `drop-oldest` queue always has room.
    fn has_room(&mut self, n: usize, cx: &Cx<'_>, dead: &mut Vec<DeadLetter>) -> bool {
        if self.plan.overflow == Overflow::DropOldest {
            return true;
        }
        if self.pending.len().saturating_add(n) > self.plan.max_length {
            self.purge_expired(cx, dead);
        }
        self.pending.len().saturating_add(n) <= self.plan.max_length
    }

    /// Enqueues a new message and offers what waits; `Err(())` if the queue is full and refuses
    /// it (nothing changed then).
    fn publish(
        &mut self,
        message: Arc<Message>,
        cx: &Cx<'_>,
        dead: &mut Vec<DeadLetter>,
    ) -> Result<PublishOutcome, ()> {
        let mut outcome = PublishOutcome::default();
        let expires_at = if message.expires().is_some() || self.plan.ttl.is_some() {
            let now = cx.clock.now();
            let by_ttl = self.plan.ttl.and_then(|t| now.checked_add(t));
            let at = match (message.expires(), by_ttl) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(t) = at
                && t <= now
            {
                let e = Entry {
                    message,
                    deliveries: 0,
                    expires_at: at,
                };
                cx.retire(&self.plan, e, DeadLetterReason::Expired, dead);
                return Ok(outcome);
            }
            at
        } else {
            None
        };
        self.push_back(Entry {
            message,
            deliveries: 0,
            expires_at,
        });
        outcome.delivered = self.dispatch(cx, dead);
        if self.pending.len() > self.plan.max_length {
            self.purge_expired(cx, dead);
        }
        while self.pending.len() > self.plan.max_length {
            match self.plan.overflow {
                Overflow::DropOldest => {
                    if let Some(e) = self.pop_front() {
                        cx.retire(&self.plan, e, DeadLetterReason::MaxLength, dead);
                    }
                }
                _ => {
                    // The new message, never seen by anyone: the sender gets the error.
                    self.pop_back();
                    return Err(());
                }
            }
        }
        outcome.queued = outcome.delivered == 0;
        Ok(outcome)
    }

    /// A delivery comes back: ahead of newer messages, or dead-lettered if it has used up its
    /// redeliveries.
    fn requeue(&mut self, d: &Delivery, cx: &Cx<'_>, dead: &mut Vec<DeadLetter>) {
        let (before, expires_at) = unpack_tag(d.tag());
        let entry = Entry {
            message: d.message().clone(),
            deliveries: before.saturating_add(u32::from(d.shown())),
            expires_at,
        };
        if self
            .plan
            .max_redeliveries
            .is_some_and(|max| entry.deliveries > max)
        {
            cx.retire(&self.plan, entry, DeadLetterReason::MaxRedeliveries, dead);
        } else {
            self.push_front(entry);
        }
    }
}

/// The embedded, single-process backend.
///
/// - Fan-out (topics, user destinations): an `RwLock`ed table read once per publish; every
///   matching subscription gets an `Arc` of the message (no copy, no lock per delivery).
/// - Queues: one `Mutex` per queue, taken once per publish/settle; round-robin among consumers
///   with credit; messages wait (up to the queue's `max_length`) while nobody can take them.
/// - Message lifecycle, per [`QueuePolicy`] (resolved once, when a queue is created): delivery
///   counts and dead-lettering after `max_redeliveries`, expiry (`expires` header, TTL),
///   `refuse` or `drop-oldest` overflow. Delivery tags ([`Delivery::tag`]) carry a message's
///   delivery count and expiry while a consumer holds it.
pub struct MemoryBackend {
    default_max: usize,
    policies: Vec<(Pattern, QueuePolicy)>,
    queue_prefix: String,
    clock: Clock,
    counters: Counters,
    fanout: RwLock<FanOutTable>,
    queues: RwLock<HashMap<ByteString, Mutex<QueueState>>>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("max_pending", &self.default_max)
            .field("policies", &self.policies.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl MemoryBackend {
    /// A backend keeping at most `max_pending_per_queue` undelivered messages per queue, with
    /// the default [`QueuePolicy`] for every queue and the system clock.
    pub fn new(max_pending_per_queue: usize) -> MemoryBackend {
        let mut config = BrokerConfig::default();
        config.limits.max_pending_per_queue = max_pending_per_queue;
        MemoryBackend::with_config(&config)
    }

    /// A backend configured from `config`: `limits.max_pending_per_queue`, `queues` (the
    /// policies), `prefixes.queue` (for dead-letter names) and `clock`. What
    /// [`Broker::new`](crate::Broker::new) uses.
    pub fn with_config(config: &BrokerConfig) -> MemoryBackend {
        MemoryBackend {
            default_max: config.limits.max_pending_per_queue,
            policies: config
                .queues
                .iter()
                .map(|p| (Pattern::compile(&p.pattern), p.clone()))
                .collect(),
            queue_prefix: config.prefixes.queue.clone(),
            clock: config.clock.clone(),
            counters: Counters::default(),
            fanout: RwLock::default(),
            queues: RwLock::default(),
        }
    }

    /// Messages waiting in queue `name` (0 if it does not exist).
    pub fn queue_depth(&self, name: &str) -> usize {
        read(&self.queues)
            .get(name)
            .map(|q| lock(q).pending.len())
            .unwrap_or(0)
    }

    fn cx(&self) -> Cx<'_> {
        Cx {
            clock: &self.clock,
            counters: &self.counters,
        }
    }

    /// The resolved policy of queue `key`.
    fn plan(&self, key: &str) -> QueuePlan {
        let default = QueuePolicy::default();
        let policy = self
            .policies
            .iter()
            .find(|(pattern, _)| pattern.matches(key))
            .map(|(_, p)| p)
            .unwrap_or(&default);
        let name = key.strip_prefix(self.queue_prefix.as_str()).unwrap_or(key);
        QueuePlan {
            max_length: policy.max_length.unwrap_or(self.default_max),
            overflow: policy.overflow,
            max_redeliveries: policy.max_redeliveries,
            dead_letter: policy
                .dead_letter
                .as_ref()
                .map(|t| t.replace("{name}", name))
                .filter(|d| !d.is_empty() && d != key)
                .map(ByteString::from),
            ttl: policy.ttl,
        }
    }

    fn new_queue(&self, key: &str) -> Mutex<QueueState> {
        Mutex::new(QueueState::new(self.plan(key)))
    }

    fn with_queue<R>(&self, key: &ByteString, f: impl FnOnce(&mut QueueState) -> R) -> R {
        {
            let queues = read(&self.queues);
            if let Some(q) = queues.get(key) {
                return f(&mut lock(q));
            }
        }
        let mut queues = write(&self.queues);
        // A fresh copy: the key may be a slice of a SEND's read buffer, which the queue must not pin.
        let q = match queues.get(key) {
            Some(q) => q,
            None => {
                let owned = ByteString::from(key.to_string());
                let q = self.new_queue(key);
                queues.entry(owned).or_insert(q)
            }
        };
        f(&mut lock(q))
    }

    /// Enqueues dead letters (after every queue lock was released); a full dead-letter queue
    /// that refuses one discards it (counted). Dropping the oldest of a `drop-oldest`
    /// dead-letter queue may dead-letter further; a dead letter itself never is, so this ends.
    fn deliver_dead_letters(&self, mut dead: Vec<DeadLetter>) {
        let mut i = 0;
        while i < dead.len() {
            let (key, message) = dead[i].clone();
            i += 1;
            let mut more = Vec::new();
            let cx = self.cx();
            let r = self.with_queue(&key, |q| q.publish(message, &cx, &mut more));
            match r {
                Ok(_) => bump(&self.counters.dead_lettered),
                Err(()) => bump(&self.counters.discarded),
            }
            dead.extend(more);
        }
    }

    /// [`Backend::publish_all`] with every queue of the batch present in `queues`: locks them
    /// (in key order, so two batches cannot deadlock), checks room for the whole batch, then
    /// publishes in batch order while holding the locks.
    fn publish_locked(
        &self,
        queues: &HashMap<ByteString, Mutex<QueueState>>,
        batch: &[Publication],
        need: &[(&ByteString, usize)],
        dead: &mut Vec<DeadLetter>,
    ) -> Result<Vec<PublishOutcome>, BackendError> {
        let cx = self.cx();
        let mut locked: Vec<MutexGuard<'_, QueueState>> = Vec::with_capacity(need.len());
        for (key, n) in need {
            let Some(q) = queues.get(*key) else {
                return Err(BackendError::Unavailable {
                    reason: format!("queue {key} vanished during a batch publish"),
                });
            };
            let mut q = lock(q);
            if !q.has_room(*n, &cx, dead) {
                return Err(BackendError::QueueFull {
                    destination: key.to_string(),
                });
            }
            locked.push(q);
        }
        let fanout = read(&self.fanout);
        let mut outcomes = Vec::with_capacity(batch.len());
        for p in batch {
            let mut outcome = PublishOutcome::default();
            match p.route.kind {
                RouteKind::FanOut => self.fan_out(&fanout, &p.route, &p.message, &mut outcome),
                RouteKind::Queue => {
                    let idx = need
                        .binary_search_by(|(k, _)| (*k).cmp(&p.route.key))
                        .map_err(|_| BackendError::Unavailable {
                            reason: "batch queue not locked".to_owned(),
                        })?;
                    // Room was checked for the whole batch: a refusal cannot happen here.
                    outcome = locked[idx]
                        .publish(p.message.clone(), &cx, dead)
                        .map_err(|()| BackendError::QueueFull {
                            destination: p.route.key.to_string(),
                        })?;
                }
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    fn dispatch_queue(&self, key: &ByteString, dead: &mut Vec<DeadLetter>) {
        let queues = read(&self.queues);
        if let Some(q) = queues.get(key) {
            lock(q).dispatch(&self.cx(), dead);
        }
    }

    /// Offers `message` to every subscription of `t` matching `route` (none if it has expired).
    fn fan_out(
        &self,
        t: &FanOutTable,
        route: &Route,
        message: &Arc<Message>,
        outcome: &mut PublishOutcome,
    ) {
        if message.expires().is_some_and(|e| e <= self.clock.now()) {
            bump(&self.counters.expired);
            bump(&self.counters.discarded);
            return;
        }
        if let Some(subs) = t.exact.get(&route.key) {
            for s in subs {
                count(outcome, s.offer(message, false, 0));
            }
        }
        if !t.wildcard.is_empty() && route.destination_kind == DestinationKind::Topic {
            let parts: Vec<&str> = route.key.split(is_separator).collect();
            for s in &t.wildcard {
                if s.pattern().is_some_and(|p| p.matches_segments(&parts)) {
                    count(outcome, s.offer(message, false, 0));
                }
            }
        }
    }
}

fn count(outcome: &mut PublishOutcome, r: Result<(), OfferError>) {
    match r {
        Ok(()) => outcome.delivered += 1,
        Err(OfferError::Closed) => {}
        Err(_) => outcome.dropped += 1,
    }
}

impl Backend for MemoryBackend {
    fn subscribe(&self, subscriber: Arc<Subscriber>) -> Result<(), BackendError> {
        let key = subscriber.route().key.clone();
        match subscriber.route().kind {
            RouteKind::FanOut => {
                let mut t = write(&self.fanout);
                if subscriber.pattern().is_some() {
                    t.wildcard.push(subscriber);
                } else {
                    t.exact.entry(key).or_default().push(subscriber);
                }
            }
            RouteKind::Queue => {
                let mut dead = Vec::new();
                let cx = self.cx();
                self.with_queue(&key, |q| {
                    q.consumers.push(subscriber);
                    q.dispatch(&cx, &mut dead);
                });
                self.deliver_dead_letters(dead);
            }
        }
        Ok(())
    }

    fn unsubscribe(&self, subscriber: &Arc<Subscriber>) {
        let key = &subscriber.route().key;
        match subscriber.route().kind {
            RouteKind::FanOut => {
                let mut t = write(&self.fanout);
                if subscriber.pattern().is_some() {
                    t.wildcard.retain(|s| !Arc::ptr_eq(s, subscriber));
                } else if let Some(list) = t.exact.get_mut(key) {
                    list.retain(|s| !Arc::ptr_eq(s, subscriber));
                    if list.is_empty() {
                        t.exact.remove(key);
                    }
                }
            }
            RouteKind::Queue => {
                let mut queues = write(&self.queues);
                let now_empty = match queues.get(key) {
                    Some(q) => {
                        let mut q = lock(q);
                        q.consumers.retain(|s| !Arc::ptr_eq(s, subscriber));
                        q.next = 0;
                        q.consumers.is_empty() && q.pending.is_empty()
                    }
                    None => false,
                };
                if now_empty {
                    queues.remove(key);
                }
            }
        }
    }

    fn publish(
        &self,
        route: &Route,
        message: Arc<Message>,
    ) -> Result<PublishOutcome, BackendError> {
        let mut outcome = PublishOutcome::default();
        match route.kind {
            RouteKind::FanOut => self.fan_out(&read(&self.fanout), route, &message, &mut outcome),
            RouteKind::Queue => {
                let mut dead = Vec::new();
                let cx = self.cx();
                let r = self.with_queue(&route.key, |q| q.publish(message, &cx, &mut dead));
                if !dead.is_empty() {
                    self.deliver_dead_letters(dead);
                }
                outcome = r.map_err(|()| BackendError::QueueFull {
                    destination: route.key.to_string(),
                })?;
            }
        }
        Ok(outcome)
    }

    fn publish_all(&self, batch: &[Publication]) -> Result<Vec<PublishOutcome>, BackendError> {
        // Messages per queue, sorted by queue: the lock order.
        let mut keys: Vec<&ByteString> = batch
            .iter()
            .filter(|p| p.route.kind == RouteKind::Queue)
            .map(|p| &p.route.key)
            .collect();
        keys.sort_unstable();
        let mut need: Vec<(&ByteString, usize)> = Vec::new();
        for k in keys {
            match need.last_mut() {
                Some((last, n)) if *last == k => *n += 1,
                _ => need.push((k, 1)),
            }
        }
        let mut dead = Vec::new();
        let result = 'publish: {
            {
                let queues = read(&self.queues);
                if need.iter().all(|(k, _)| queues.contains_key(*k)) {
                    break 'publish self.publish_locked(&queues, batch, &need, &mut dead);
                }
            }
            // Some queue does not exist yet: create it and publish under the map's write lock
            // (only a batch's first use of a queue pays for this).
            let mut queues = write(&self.queues);
            let mut created = Vec::new();
            for (k, _) in &need {
                if !queues.contains_key(*k) {
                    let key = ByteString::from(k.to_string());
                    let q = self.new_queue(&key);
                    queues.insert(key.clone(), q);
                    created.push(key);
                }
            }
            let result = self.publish_locked(&queues, batch, &need, &mut dead);
            if result.is_err() {
                // Refused: queues made for it and still empty go again.
                for key in created {
                    let unused = queues.get(&key).is_some_and(|q| {
                        let q = lock(q);
                        q.pending.is_empty() && q.consumers.is_empty()
                    });
                    if unused {
                        queues.remove(&key);
                    }
                }
            }
            result
        };
        if !dead.is_empty() {
            self.deliver_dead_letters(dead);
        }
        result
    }

    fn settle(&self, acked: Vec<Delivery>, requeue: Vec<Delivery>) {
        let mut dead = Vec::new();
        let cx = self.cx();
        // Put requeued messages back at the front, keeping their order (or dead-letter them).
        for d in requeue.iter().rev() {
            if d.subscriber().route().kind == RouteKind::Queue {
                let key = &d.subscriber().route().key;
                self.with_queue(key, |q| q.requeue(d, &cx, &mut dead));
            }
        }
        // Offer waiting messages to whoever has credit now: once per run of deliveries from the
        // same queue (usually the whole call), without allocating.
        let mut last: Option<&ByteString> = None;
        for d in acked.iter().chain(requeue.iter()) {
            let r = d.subscriber().route();
            if r.kind == RouteKind::Queue && last != Some(&r.key) {
                self.dispatch_queue(&r.key, &mut dead);
                last = Some(&r.key);
            }
        }
        if !dead.is_empty() {
            self.deliver_dead_letters(dead);
        }
    }

    fn resume(&self, subscriber: &Arc<Subscriber>) {
        let route = subscriber.route();
        if route.kind == RouteKind::Queue {
            let mut dead = Vec::new();
            self.dispatch_queue(&route.key, &mut dead);
            if !dead.is_empty() {
                self.deliver_dead_letters(dead);
            }
        }
    }

    fn stats(&self) -> BackendStats {
        let t = read(&self.fanout);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = BackendStats {
            subscriptions: t.wildcard.len() + t.exact.values().map(Vec::len).sum::<usize>(),
            expired: get(&self.counters.expired),
            dead_lettered: get(&self.counters.dead_lettered),
            overflowed: get(&self.counters.overflowed),
            discarded: get(&self.counters.discarded),
            ..BackendStats::default()
        };
        drop(t);
        let queues = read(&self.queues);
        s.queues = queues.len();
        for q in queues.values() {
            let q = lock(q);
            s.pending += q.pending.len();
            s.subscriptions += q.consumers.len();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_count_and_expiry() {
        let t = UNIX_EPOCH + Duration::from_millis(1_765_000_000_123);
        assert_eq!(unpack_tag(pack_tag(0, None)), (0, None));
        assert_eq!(unpack_tag(pack_tag(7, Some(t))), (7, Some(t)));
        assert_eq!(
            unpack_tag(pack_tag(u32::MAX, None)).0,
            (1 << COUNT_BITS) - 1
        );
    }
}
