//! The in-memory backend: read-mostly routing tables, per-queue state, no lock per delivery.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytestring::ByteString;

use crate::backend::{Backend, BackendError, BackendStats, Publication, PublishOutcome};
use crate::destination::{DestinationKind, Route, RouteKind, is_separator};
use crate::message::Message;
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

#[derive(Default)]
struct QueueState {
    /// Messages nobody has taken yet, with their `redelivered` flag.
    pending: VecDeque<(Arc<Message>, bool)>,
    consumers: Vec<Arc<Subscriber>>,
    next: usize,
}

impl QueueState {
    /// Offers pending messages round-robin to consumers with credit, until one side runs out.
    fn dispatch(&mut self) -> usize {
        let mut delivered = 0;
        while let Some((message, redelivered)) = self.pending.front() {
            let n = self.consumers.len();
            let mut taken = false;
            for i in 0..n {
                let idx = (self.next + i) % n;
                if self.consumers[idx].offer(message, *redelivered, 0).is_ok() {
                    // Not reduced modulo `n`: a consumer added later is next in line.
                    self.next = idx + 1;
                    taken = true;
                    break;
                }
            }
            if !taken {
                break;
            }
            self.pending.pop_front();
            delivered += 1;
        }
        delivered
    }
}

/// The embedded, single-process backend.
///
/// - Fan-out (topics, user destinations): an `RwLock`ed table read once per publish; every
///   matching subscription gets an `Arc` of the message (no copy, no lock per delivery).
/// - Queues: one `Mutex` per queue, taken once per publish/settle; round-robin among consumers
///   with credit; messages wait (up to `max_pending_per_queue`) while nobody can take them.
pub struct MemoryBackend {
    max_pending: usize,
    fanout: RwLock<FanOutTable>,
    queues: RwLock<HashMap<ByteString, Mutex<QueueState>>>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("max_pending", &self.max_pending)
            .field("stats", &self.stats())
            .finish()
    }
}

impl MemoryBackend {
    /// A backend keeping at most `max_pending_per_queue` undelivered messages per queue.
    pub fn new(max_pending_per_queue: usize) -> MemoryBackend {
        MemoryBackend {
            max_pending: max_pending_per_queue,
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

    fn with_queue<R>(&self, key: &ByteString, f: impl FnOnce(&mut QueueState) -> R) -> R {
        {
            let queues = read(&self.queues);
            if let Some(q) = queues.get(key) {
                return f(&mut lock(q));
            }
        }
        let mut queues = write(&self.queues);
        // A fresh copy: the key may be a slice of a SEND's read buffer, which the queue must not pin.
        let q = queues.entry(ByteString::from(key.to_string())).or_default();
        f(&mut lock(q))
    }

    /// [`Backend::publish_all`] with every queue of the batch present in `queues`: locks them
    /// (in key order, so two batches cannot deadlock), checks room for the whole batch, then
    /// publishes in batch order while holding the locks.
    fn publish_locked(
        &self,
        queues: &HashMap<ByteString, Mutex<QueueState>>,
        batch: &[Publication],
        need: &[(&ByteString, usize)],
    ) -> Result<Vec<PublishOutcome>, BackendError> {
        let mut locked: Vec<MutexGuard<'_, QueueState>> = Vec::with_capacity(need.len());
        for (key, n) in need {
            let Some(q) = queues.get(*key) else {
                return Err(BackendError::Unavailable {
                    reason: format!("queue {key} vanished during a batch publish"),
                });
            };
            let q = lock(q);
            if q.pending.len().saturating_add(*n) > self.max_pending {
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
                RouteKind::FanOut => fan_out(&fanout, &p.route, &p.message, &mut outcome),
                RouteKind::Queue => {
                    let idx = need
                        .binary_search_by(|(k, _)| (*k).cmp(&p.route.key))
                        .map_err(|_| BackendError::Unavailable {
                            reason: "batch queue not locked".to_owned(),
                        })?;
                    let q = &mut locked[idx];
                    q.pending.push_back((p.message.clone(), false));
                    outcome.delivered = q.dispatch();
                    outcome.queued = outcome.delivered == 0;
                }
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    fn dispatch_queue(&self, key: &ByteString) {
        let queues = read(&self.queues);
        if let Some(q) = queues.get(key) {
            lock(q).dispatch();
        }
    }
}

/// Offers `message` to every subscription of `t` matching `route`.
fn fan_out(t: &FanOutTable, route: &Route, message: &Arc<Message>, outcome: &mut PublishOutcome) {
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
            RouteKind::Queue => self.with_queue(&key, |q| {
                q.consumers.push(subscriber);
                q.dispatch();
            }),
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
            RouteKind::FanOut => fan_out(&read(&self.fanout), route, &message, &mut outcome),
            RouteKind::Queue => {
                let max = self.max_pending;
                let full = self.with_queue(&route.key, |q| {
                    q.pending.push_back((message, false));
                    outcome.delivered = q.dispatch();
                    if q.pending.len() > max {
                        q.pending.pop_back();
                        true
                    } else {
                        outcome.queued = outcome.delivered == 0;
                        false
                    }
                });
                if full {
                    return Err(BackendError::QueueFull {
                        destination: route.key.to_string(),
                    });
                }
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
        {
            let queues = read(&self.queues);
            if need.iter().all(|(k, _)| queues.contains_key(*k)) {
                return self.publish_locked(&queues, batch, &need);
            }
        }
        // Some queue does not exist yet: create it and publish under the map's write lock (only
        // a batch's first use of a queue pays for this).
        let mut queues = write(&self.queues);
        let mut created = Vec::new();
        for (k, _) in &need {
            if !queues.contains_key(*k) {
                let key = ByteString::from(k.to_string());
                queues.insert(key.clone(), Mutex::default());
                created.push(key);
            }
        }
        let result = self.publish_locked(&queues, batch, &need);
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
    }

    fn settle(&self, acked: Vec<Delivery>, requeue: Vec<Delivery>) {
        // Put requeued messages back at the front, keeping their order.
        for d in requeue.iter().rev() {
            if d.subscriber().route().kind == RouteKind::Queue {
                let key = &d.subscriber().route().key;
                let item = (d.message().clone(), d.redelivered());
                self.with_queue(key, |q| q.pending.push_front(item));
            }
        }
        // Offer waiting messages to whoever has credit now: once per run of deliveries from the
        // same queue (usually the whole call), without allocating.
        let mut last: Option<&ByteString> = None;
        for d in acked.iter().chain(requeue.iter()) {
            let r = d.subscriber().route();
            if r.kind == RouteKind::Queue && last != Some(&r.key) {
                self.dispatch_queue(&r.key);
                last = Some(&r.key);
            }
        }
    }

    fn resume(&self, subscriber: &Arc<Subscriber>) {
        let route = subscriber.route();
        if route.kind == RouteKind::Queue {
            self.dispatch_queue(&route.key);
        }
    }

    fn stats(&self) -> BackendStats {
        let t = read(&self.fanout);
        let mut s = BackendStats {
            subscriptions: t.wildcard.len() + t.exact.values().map(Vec::len).sum::<usize>(),
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
