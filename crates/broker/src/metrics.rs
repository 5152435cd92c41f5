//! Counters, updated with relaxed atomics, read as a [`MetricsSnapshot`].

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::backend::BackendStats;
use crate::destination::DestinationKind;
use crate::error::ErrorKind;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) connections: AtomicI64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) subscriptions: AtomicI64,
    pub(crate) subscriptions_total: AtomicU64,
    pub(crate) messages_in: [AtomicU64; 4],
    pub(crate) messages_out: [AtomicU64; 4],
    pub(crate) messages_dropped: AtomicU64,
    pub(crate) messages_redelivered: AtomicU64,
    pub(crate) errors: [AtomicU64; ErrorKind::ALL.len()],
    pub(crate) auth_failures: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn message_in(&self, kind: DestinationKind) {
        inc(&self.messages_in[kind.index()]);
    }
    pub(crate) fn messages_out_add(&self, kind_index: usize, n: u64) {
        if let Some(c) = self.messages_out.get(kind_index) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }
    pub(crate) fn dropped(&self, n: usize) {
        if n > 0 {
            self.messages_dropped.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    pub(crate) fn redelivered(&self, n: usize) {
        if n > 0 {
            self.messages_redelivered
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    pub(crate) fn auth_failure(&self) {
        inc(&self.auth_failures);
    }
    pub(crate) fn error(&self, kind: ErrorKind) {
        inc(&self.errors[kind.index()]);
    }
    pub(crate) fn subscription_added(&self) {
        self.subscriptions.fetch_add(1, Ordering::Relaxed);
        inc(&self.subscriptions_total);
    }
    pub(crate) fn subscriptions_removed(&self, n: usize) {
        self.subscriptions.fetch_sub(n as i64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, backend: BackendStats) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let kinds = |a: &[AtomicU64; 4]| KindCounts {
            topic: get(&a[DestinationKind::Topic.index()]),
            queue: get(&a[DestinationKind::Queue.index()]),
            user: get(&a[DestinationKind::User.index()]),
            app: get(&a[DestinationKind::App.index()]),
        };
        MetricsSnapshot {
            connections: self.connections.load(Ordering::Relaxed).max(0) as u64,
            connections_total: get(&self.connections_total),
            connections_refused: get(&self.connections_refused),
            subscriptions: self.subscriptions.load(Ordering::Relaxed).max(0) as u64,
            subscriptions_total: get(&self.subscriptions_total),
            messages_in: kinds(&self.messages_in),
            messages_out: kinds(&self.messages_out),
            messages_dropped: get(&self.messages_dropped),
            messages_redelivered: get(&self.messages_redelivered),
            auth_failures: get(&self.auth_failures),
            errors: ErrorKind::ALL
                .iter()
                .map(|k| (*k, get(&self.errors[k.index()])))
                .collect(),
            backend,
        }
    }
}

/// Counts per destination kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindCounts {
    /// `/topic/...` (and unprefixed) destinations.
    pub topic: u64,
    /// `/queue/...`.
    pub queue: u64,
    /// `/user/...`.
    pub user: u64,
    /// `/app...` (SENDs to application destinations; what they publish counts under its own kind).
    pub app: u64,
}

impl KindCounts {
    /// `(label, count)` pairs for rendering.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("topic", self.topic),
            ("queue", self.queue),
            ("user", self.user),
            ("app", self.app),
        ]
        .into_iter()
    }

    /// Sum over kinds.
    pub fn total(&self) -> u64 {
        self.topic + self.queue + self.user + self.app
    }
}

/// A point-in-time copy of the broker's counters, for `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Sessions open now (gauge).
    pub connections: u64,
    /// Sessions ever accepted.
    pub connections_total: u64,
    /// Sessions refused (connection limit).
    pub connections_refused: u64,
    /// Subscriptions now (gauge).
    pub subscriptions: u64,
    /// Subscriptions ever made.
    pub subscriptions_total: u64,
    /// Messages published (SENDs, and publishes by application handlers), by destination kind.
    pub messages_in: KindCounts,
    /// MESSAGE frames handed to transports, by destination kind.
    pub messages_out: KindCounts,
    /// Deliveries dropped (subscriber with a full outbound queue or no credit on a topic).
    pub messages_dropped: u64,
    /// Queue messages given back for redelivery (NACK, consumer gone).
    pub messages_redelivered: u64,
    /// Failed authentications: CONNECTs the authenticator refused, failed re-authentications,
    /// and refusals the transport reported with
    /// [`Broker::record_auth_failure`](crate::Broker::record_auth_failure) (e.g. a bad token on
    /// the WebSocket upgrade). Expired authentications are `errors` of kind `auth_expired`.
    pub auth_failures: u64,
    /// ERROR frames sent, by kind (every kind listed, zeros included). `slow_consumer` is the
    /// number of slow consumers disconnected; `heart_beat_timeout` of silent peers dropped;
    /// `access_denied` of SUBSCRIBE/SENDs refused by authorization. Message lifecycle counters
    /// (expired, dead-lettered, overflowed, discarded) are in `backend`.
    pub errors: Vec<(ErrorKind, u64)>,
    /// Backend gauges (queues, pending messages, registered subscriptions).
    pub backend: BackendStats,
}

impl MetricsSnapshot {
    /// The count of errors of `kind`.
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }
}
