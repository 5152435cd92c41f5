//! Broker configuration: prefixes, heart-beats, limits and policies, all with documented defaults.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchboard_stomp::Version;

use crate::destination::Pattern;

/// Everything the broker and its sessions are configured with.
///
/// Build it with struct update syntax: `BrokerConfig { server_name: "x".into(), ..Default::default() }`.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// The `server` header of CONNECTED. Default `switchboard/<crate version>`.
    pub server_name: String,
    /// Versions the broker speaks, any order. Default: 1.0, 1.1 and 1.2.
    pub versions: Vec<Version>,
    /// What the broker offers in CONNECTED's `heart-beat` header.
    pub heart_beat: HeartBeat,
    /// A peer silent for `grace_percent`% of its negotiated interval is dropped. Default 150 (1.5x).
    pub heart_beat_grace_percent: u32,
    /// A connection that has not sent CONNECT/STOMP by then gets an ERROR and is closed. Default 10 s.
    pub connect_timeout: Duration,
    /// Destination prefixes.
    pub prefixes: Prefixes,
    /// How SENDs to application destinations with no registered handler are rewritten.
    /// Default: `/app/` → `/topic/`. The first mapping whose `from` prefixes the destination wins.
    pub app_mappings: Vec<AppMapping>,
    /// Limits.
    pub limits: Limits,
    /// What happens when a session's outbound queue is full.
    pub slow_consumer: SlowConsumerPolicy,
    /// Prefix of generated `message-id`s (they are `<prefix><counter>`). Default `m-`.
    /// A clustered backend gives each node a distinct prefix.
    pub message_id_prefix: String,
    /// Per-queue policies (length limit, overflow, redeliveries, dead letters, TTL), matched
    /// against the queue's destination in order: the first whose `pattern` matches applies;
    /// a queue no policy matches gets [`QueuePolicy::default`] (with `max_length` from
    /// `limits.max_pending_per_queue`). Default: none.
    pub queues: Vec<QueuePolicy>,
    /// The wall clock for message expiry (`expires` headers, queue TTLs) and for the expiry of
    /// a session's authentication. Sessions get `now: Instant` for their timers; wall-clock
    /// deadlines are converted with this clock. Default: [`Clock::system`]; tests use a
    /// [`ManualClock`].
    pub clock: Clock,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            server_name: concat!("switchboard/", env!("CARGO_PKG_VERSION")).to_owned(),
            versions: vec![Version::V1_0, Version::V1_1, Version::V1_2],
            heart_beat: HeartBeat::default(),
            heart_beat_grace_percent: 150,
            connect_timeout: Duration::from_secs(10),
            prefixes: Prefixes::default(),
            app_mappings: vec![AppMapping {
                from: "/app/".to_owned(),
                to: "/topic/".to_owned(),
            }],
            limits: Limits::default(),
            slow_consumer: SlowConsumerPolicy::default(),
            message_id_prefix: "m-".to_owned(),
            queues: Vec::new(),
            clock: Clock::system(),
        }
    }
}

/// The broker's side of heart-beat negotiation (`sx,sy` in CONNECTED), in milliseconds; 0 = never.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartBeat {
    /// `sx`: the smallest interval at which the broker can send heart-beats. Default 10 000.
    pub send_ms: u32,
    /// `sy`: the interval at which the broker wants to receive heart-beats. Default 10 000.
    pub receive_ms: u32,
}

impl Default for HeartBeat {
    fn default() -> Self {
        HeartBeat {
            send_ms: 10_000,
            receive_ms: 10_000,
        }
    }
}

/// Destination prefixes. Anything that is not a queue, application or user destination is a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prefixes {
    /// Fan-out destinations where wildcard subscriptions are allowed. Default `/topic/`.
    pub topic: String,
    /// Competing-consumer destinations. Default `/queue/`.
    pub queue: String,
    /// Application destinations (routed to handlers or `app_mappings`). Default `/app`.
    /// Matches `/app` itself and `/app/...`.
    pub app: String,
    /// User destinations. Default `/user/`.
    pub user: String,
}

impl Default for Prefixes {
    fn default() -> Self {
        Prefixes {
            topic: "/topic/".to_owned(),
            queue: "/queue/".to_owned(),
            app: "/app".to_owned(),
            user: "/user/".to_owned(),
        }
    }
}

/// A config-level application destination rewrite: `from` prefix replaced by `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppMapping {
    /// Prefix matched against the SEND destination, e.g. `/app/`.
    pub from: String,
    /// Replacement prefix, e.g. `/topic/`. Must not be an application destination.
    pub to: String,
}

/// Limits, each with a default. Frame, header and body size limits belong to the STOMP parser
/// (`switchboard-stomp`), which the server configures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Sessions open at once; more are answered with ERROR and closed. Default 10 000.
    pub max_connections: usize,
    /// Subscriptions per session. Default 1 024.
    pub max_subscriptions_per_session: usize,
    /// Messages kept per queue while nobody can take them; a SEND beyond it gets an ERROR.
    /// Default 10 000.
    pub max_pending_per_queue: usize,
    /// Frames waiting in one session's outbound queue. Default 4 096.
    pub outbound_max_frames: usize,
    /// Bytes (estimated encoded size) waiting in one session's outbound queue. Default 8 MiB.
    pub outbound_max_bytes: usize,
    /// Unacknowledged messages per client-ack subscription: the default and the cap of
    /// `prefetch-count`. Default 1 024.
    pub max_unacked_per_subscription: u32,
    /// Transactions open at once per session. Default 64.
    pub max_transactions_per_session: usize,
    /// Frames (SEND/ACK/NACK) buffered per transaction. Default 10 000.
    pub max_frames_per_transaction: usize,
    /// Bytes (SEND bodies and headers, ACK/NACK headers) buffered in one session's open
    /// transactions together; the frame that would go beyond it gets an ERROR. Default 4 MiB.
    pub max_transaction_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_subscriptions_per_session: 1024,
            max_pending_per_queue: 10_000,
            outbound_max_frames: 4096,
            outbound_max_bytes: 8 << 20,
            max_unacked_per_subscription: 1024,
            max_transactions_per_session: 64,
            max_frames_per_transaction: 10_000,
            max_transaction_bytes: 4 << 20,
        }
    }
}

/// What to do when a message does not fit in a session's outbound queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowConsumerPolicy {
    /// Send that client an ERROR (`message:slow consumer`) and close it; its queued and
    /// unacknowledged queue messages go back to their queues. The default.
    #[default]
    Disconnect,
    /// Keep the client; drop topic messages it has no room for (queue messages go to another
    /// consumer or stay queued; a message left queued this way is offered again on the queue's
    /// next publish, ACK/NACK or SUBSCRIBE). Counted in `messages_dropped`.
    DropMessages,
}

/// What a queue does with a SEND that finds it at its `max_length`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Overflow {
    /// Refuse the SEND: the sender gets `ERROR message:Queue full` and is disconnected (a
    /// transaction's COMMIT is refused whole). The default, and the behaviour before policies.
    #[default]
    Refuse,
    /// Accept the SEND and drop the oldest waiting message (RabbitMQ's `drop-head`); the dropped
    /// message is dead-lettered (reason `max-length`) if the queue has a dead-letter destination,
    /// and counted in `messages_overflowed` either way.
    DropOldest,
}

impl Overflow {
    /// Parses `refuse` or `drop-oldest` (also `drop_oldest`, `drop-head`).
    pub fn parse(value: &str) -> Option<Overflow> {
        match value {
            "refuse" | "reject" | "reject-publish" => Some(Overflow::Refuse),
            "drop-oldest" | "drop_oldest" | "drop-head" => Some(Overflow::DropOldest),
            _ => None,
        }
    }

    /// The configuration name: `refuse` or `drop-oldest`.
    pub fn as_str(self) -> &'static str {
        match self {
            Overflow::Refuse => "refuse",
            Overflow::DropOldest => "drop-oldest",
        }
    }
}

/// The default dead-letter destination template: `/queue/DLQ.` followed by the queue's name
/// without its prefix (`/queue/orders` → `/queue/DLQ.orders`).
pub const DEFAULT_DEAD_LETTER: &str = "/queue/DLQ.{name}";

/// The default [`QueuePolicy::max_redeliveries`]: a message is delivered at most 11 times.
pub const DEFAULT_MAX_REDELIVERIES: u32 = 10;

/// How the queues whose destination matches `pattern` treat their messages. Plain data, so a
/// configuration file maps onto it directly:
///
/// ```
/// use std::time::Duration;
/// use switchboard_broker::{BrokerConfig, Overflow, QueuePolicy};
///
/// let config = BrokerConfig {
///     queues: vec![
///         // Work queues: at most 3 redeliveries, then /queue/DLQ.jobs.<name>.
///         QueuePolicy {
///             pattern: "/queue/jobs.*".into(),
///             max_redeliveries: Some(3),
///             ..QueuePolicy::default()
///         },
///         // A ticker: keep the newest 100, each for 30 s; nothing is dead-lettered.
///         QueuePolicy {
///             pattern: "/queue/ticker".into(),
///             max_length: Some(100),
///             overflow: Overflow::DropOldest,
///             ttl: Some(Duration::from_secs(30)),
///             dead_letter: None,
///             ..QueuePolicy::default()
///         },
///     ],
///     ..BrokerConfig::default()
/// };
/// assert_eq!(config.queue_policy("/queue/jobs.resize").max_redeliveries, Some(3));
/// assert_eq!(config.queue_policy("/queue/other").max_redeliveries, Some(10));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuePolicy {
    /// Queue destinations this policy applies to, in the subscription wildcard syntax (`*` one
    /// segment, `**` any number; segments split on `/` and `.`), or a literal destination.
    /// Default `/queue/**` (every queue).
    pub pattern: String,
    /// Messages kept while nobody can take them. Default `None`: `limits.max_pending_per_queue`
    /// (10 000).
    pub max_length: Option<usize>,
    /// What a SEND to a full queue does. Default [`Overflow::Refuse`].
    pub overflow: Overflow,
    /// Redeliveries allowed: a message NACKed (or left unacknowledged by a consumer that
    /// unsubscribed or disconnected) after its `1 + max_redeliveries`-th delivery is
    /// dead-lettered with reason `max-redeliveries` instead of requeued. `Some(0)`: never
    /// redelivered. `None`: redelivered forever. Default `Some(10)`.
    pub max_redeliveries: Option<u32>,
    /// Where dead letters go: a destination, where `{name}` stands for the queue's name without
    /// the queue prefix. Default `Some("/queue/DLQ.{name}")`. `None`: dead letters are
    /// discarded (and counted in `messages_discarded`).
    pub dead_letter: Option<String>,
    /// Time to live of a message in this queue, from when it is enqueued; a message's own
    /// `expires` header (milliseconds since the Unix epoch, 0 = never) applies if earlier.
    /// Default `None` (only the `expires` header).
    pub ttl: Option<Duration>,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        QueuePolicy {
            pattern: "/queue/**".to_owned(),
            max_length: None,
            overflow: Overflow::Refuse,
            max_redeliveries: Some(DEFAULT_MAX_REDELIVERIES),
            dead_letter: Some(DEFAULT_DEAD_LETTER.to_owned()),
            ttl: None,
        }
    }
}

impl QueuePolicy {
    /// Whether this policy applies to queue `destination`.
    pub fn applies_to(&self, destination: &str) -> bool {
        Pattern::compile(&self.pattern).matches(destination)
    }
}

impl BrokerConfig {
    /// The policy for queue `destination`: the first of [`queues`](Self::queues) that applies,
    /// else the default one; `max_length` filled in from `limits.max_pending_per_queue`.
    pub fn queue_policy(&self, destination: &str) -> QueuePolicy {
        let mut p = self
            .queues
            .iter()
            .find(|p| p.applies_to(destination))
            .cloned()
            .unwrap_or_default();
        if p.max_length.is_none() {
            p.max_length = Some(self.limits.max_pending_per_queue);
        }
        p
    }
}

/// The wall clock the broker reads for message expiry and authentication expiry. Sessions are
/// sans-IO and take `now: Instant` for their timers, but an `expires` header is wall-clock time
/// (milliseconds since the Unix epoch, ActiveMQ's convention), so the broker reads this clock
/// where it needs one: when a message with an expiry is enqueued or dispatched, and when a
/// session's authentication carries an expiry. Cheap to clone.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    /// The system clock (`SystemTime::now`).
    pub fn system() -> Clock {
        Clock(Arc::new(SystemTime::now))
    }

    /// A clock reading `f`.
    pub fn from_fn(f: impl Fn() -> SystemTime + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// A clock that moves only when told to, for tests: `ManualClock::new(start)`, hand
/// [`clock`](Self::clock) to [`BrokerConfig::clock`], then [`advance`](Self::advance) it
/// together with the `now: Instant` given to sessions.
#[derive(Clone, Debug)]
pub struct ManualClock {
    ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at `start` (millisecond resolution).
    pub fn new(start: SystemTime) -> ManualClock {
        let ms = start
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        ManualClock {
            ms: Arc::new(AtomicU64::new(ms)),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.ms.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.ms.load(Ordering::SeqCst))
    }

    /// The time as milliseconds since the Unix epoch (the `expires` header's unit).
    pub fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }

    /// A [`Clock`] reading this clock.
    pub fn clock(&self) -> Clock {
        let me = self.clone();
        Clock::from_fn(move || me.now())
    }
}
