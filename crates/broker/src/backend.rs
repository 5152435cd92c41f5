//! The backend trait: where destinations, routing, queues, fan-out and redelivery live.
//!
//! Sessions speak STOMP; a backend moves messages. A session calls the backend to subscribe,
//! unsubscribe, publish, and settle (ack/requeue) deliveries; the backend calls
//! [`Subscriber::offer`] to hand a message to a session's outbound queue. The in-memory
//! [`MemoryBackend`](crate::MemoryBackend) is one implementation; a clustered one (Redis) can be
//! another without changing sessions.

use std::fmt;
use std::sync::Arc;

use crate::destination::Route;
use crate::message::Message;
use crate::subscription::{Delivery, Subscriber};

/// What happened to a published message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Subscriptions it was handed to now (or that hold it until their client acknowledges
    /// earlier messages: fan-out subscriptions at their prefetch limit).
    pub delivered: usize,
    /// Subscriptions that matched but could not take it (outbound queue full under the
    /// drop-messages slow-consumer policy).
    pub dropped: usize,
    /// Whether it was kept in a queue for later.
    pub queued: bool,
}

/// One message of an all-or-nothing batch (a transaction's SENDs at COMMIT), for
/// [`Backend::publish_all`].
#[derive(Clone, Debug)]
pub struct Publication {
    /// Where it goes.
    pub route: Route,
    /// The message.
    pub message: Arc<Message>,
}

/// Why a backend refused an operation. `message()` goes into the sender's ERROR frame.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendError {
    /// The queue holds `max_pending_per_queue` messages nobody can take.
    QueueFull {
        /// The queue.
        destination: String,
    },
    /// The backend cannot serve requests (e.g. lost its connection to a cluster store).
    Unavailable {
        /// Details.
        reason: String,
    },
}

impl BackendError {
    /// Short text for the ERROR `message` header.
    pub fn message(&self) -> &'static str {
        match self {
            BackendError::QueueFull { .. } => "Queue full",
            BackendError::Unavailable { .. } => "Broker unavailable",
        }
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::QueueFull { destination } => {
                write!(f, "queue {destination} is full")
            }
            BackendError::Unavailable { reason } => write!(f, "backend unavailable: {reason}"),
        }
    }
}

impl std::error::Error for BackendError {}

/// Gauges (and lifecycle counters) a backend reports for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Queues that exist.
    pub queues: usize,
    /// Messages waiting in queues.
    pub pending: usize,
    /// Subscriptions registered.
    pub subscriptions: usize,
    /// Messages that expired before delivery (counter): dead-lettered or discarded.
    pub expired: u64,
    /// Messages moved to a dead-letter queue (counter), for any reason.
    pub dead_lettered: u64,
    /// Messages dropped as the oldest of a full `drop-oldest` queue (counter): dead-lettered or
    /// discarded.
    pub overflowed: u64,
    /// Messages gone without delivery and without a dead-letter queue to take them (counter):
    /// no dead-letter destination configured, a dead letter expiring or overflowing again, or
    /// a full dead-letter queue. Never silently: every one is counted here.
    pub discarded: u64,
}

/// Destinations, routing, queues, fan-out and redelivery. Shared by every session (`Arc`);
/// called from many threads at once.
///
/// **Contract.** `offer` may be called from any thread at any time, including from inside
/// `publish`/`subscribe`/`settle`. A backend must not block on a session. Every queue delivery it
/// offers comes back exactly once through `settle` (acked or to requeue) unless the offer failed.
pub trait Backend: Send + Sync + 'static {
    /// Registers a subscription. For a queue, pending messages may be offered at once.
    fn subscribe(&self, subscriber: Arc<Subscriber>) -> Result<(), BackendError>;

    /// Removes a subscription (its deliveries in flight come back through `settle`).
    fn unsubscribe(&self, subscriber: &Arc<Subscriber>);

    /// Routes `message` to the subscriptions matching `route`: all of them for fan-out, one
    /// (round-robin among those with credit) for a queue, or keeps it queued.
    fn publish(&self, route: &Route, message: Arc<Message>)
    -> Result<PublishOutcome, BackendError>;

    /// Publishes `batch` all-or-nothing, in order: a committed transaction's SENDs.
    ///
    /// First checks that every queue in the batch has room for all of the batch's messages to it
    /// (its `max_length` minus what is waiting, as if no consumer took any of them; a
    /// `drop-oldest` queue always has room); if one
    /// has not, publishes nothing and returns the error (`QueueFull` naming that queue). Otherwise
    /// publishes each message as [`publish`](Self::publish) would, without another publish to
    /// those queues interleaved, and returns one outcome per message. Fan-out destinations never
    /// refuse.
    ///
    /// A Redis backend implements this with one server-side script (or `MULTI`/`EXEC` under
    /// `WATCH`): `LLEN` every queue key, compare with the batch's count for it, then `RPUSH` and
    /// `PUBLISH` everything — atomic as long as the keys live on one node (hash tags on a
    /// cluster).
    fn publish_all(&self, batch: &[Publication]) -> Result<Vec<PublishOutcome>, BackendError>;

    /// Deliveries the session is done with: `acked` are consumed; `requeue` go back to their
    /// queue (in order, ahead of newer messages) for another consumer — each one's
    /// [`shown()`](Delivery::shown) says whether its client saw it (a delivery attempt to count
    /// against the queue's `max_redeliveries`; past it, the message is dead-lettered instead).
    /// Topic deliveries need no action. Afterwards the backend offers pending messages to
    /// subscriptions that regained credit.
    fn settle(&self, acked: Vec<Delivery>, requeue: Vec<Delivery>);

    /// `subscriber`'s session has drained its outbound queue after a queue offer to it was
    /// refused for lack of room (`offer` returned `NoCredit` for a subscription that had
    /// credit): offer its queue the waiting messages again. Called on the session's task; must
    /// not block on a session.
    fn resume(&self, subscriber: &Arc<Subscriber>);

    /// Current gauges.
    fn stats(&self) -> BackendStats;
}
