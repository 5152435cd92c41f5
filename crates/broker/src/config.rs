//! Broker configuration: prefixes, heart-beats, limits and policies, all with documented defaults.

use std::time::Duration;

use switchboard_stomp::Version;

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
