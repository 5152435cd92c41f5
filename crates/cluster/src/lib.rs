//! switchboard-cluster: a [`Backend`](switchboard_broker::Backend) for `switchboard-broker`
//! that lets several broker nodes behind a load balancer act as one broker, with Redis (a single
//! server or a Redis Cluster) as the shared engine.
//!
//! - `/topic/...` and user destinations: every node delivers a SEND to its own subscribers at
//!   once and hands it to a writer task that pipelines `PUBLISH` (`SPUBLISH` on a Redis Cluster);
//!   each node subscribes once per destination (or wildcard prefix) that has local
//!   subscribers and delivers what other nodes publish. Each subscriber on each node gets each
//!   message once while Redis is up; across an outage Pub/Sub is at-most-once.
//! - `/queue/...`: one Redis Stream per queue, one consumer group; a node reads only as many
//!   entries as its local consumers have credit for, ACK is `XACK`+`XDEL`, NACK puts a copy
//!   back (`redelivered:true`), and entries left unacknowledged by a node that died are claimed
//!   by a live node after [`ClusterConfig::claim_idle`]. With Redis persistence (AOF) queues
//!   survive a Redis restart.
//! - The [`Backend`](switchboard_broker::Backend) calls stay synchronous and never wait for
//!   Redis: local state answers them, Tokio tasks talk to Redis through bounded channels.
//!
//! ```no_run
//! use std::sync::Arc;
//! use switchboard_broker::{Broker, BrokerConfig};
//! use switchboard_cluster::{ClusterBackend, ClusterConfig};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClusterConfig::new("redis://127.0.0.1:6379", "node-a");
//! let broker_config = BrokerConfig::default();
//! let backend = Arc::new(ClusterBackend::connect(config, &broker_config).await?);
//! let broker = Broker::builder(broker_config)
//!     .message_id_prefix(backend.message_id_prefix())
//!     .backend(backend.clone())
//!     .build();
//! assert!(backend.health().up);
//! # Ok(()) }
//! ```
//!
//! See the crate README for the design, the limits and their defaults, and what is not done.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
mod keys;
mod link;
pub mod wire;

use std::time::Duration;

pub use backend::{ClusterBackend, ClusterStats, Health, Mode};

/// How a node joins the cluster. Every limit has a default ([`ClusterConfig::new`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// `redis://HOST:PORT[/DB]`, or several seeds separated by commas. A Redis Cluster is
    /// detected (`INFO cluster`), so any node of one will do.
    pub url: String,
    /// This node's id: prefix of its message ids, its consumer name, its liveness key.
    pub node_id: String,
    /// How long a queue entry must have sat unacknowledged, on a node whose liveness key has
    /// expired, before another node claims it. Default 30 s.
    pub claim_idle: Duration,
    /// Lifetime of a node's liveness key (refreshed every third of it). Default 10 s.
    pub node_ttl: Duration,
    /// Queue SENDs held while Redis is unreachable (flushed on reconnect); beyond it a SEND
    /// gets `ERROR message:Broker unavailable`. Default 10 000.
    pub max_buffered: usize,
    /// Topic messages waiting for the writer; beyond it they are dropped (and counted as
    /// lost). Default 65 536.
    pub publish_buffer: usize,
    /// Pub/Sub messages received but not yet delivered; a reader that falls further behind
    /// loses the oldest (counted as lost). Preallocated by the Redis client (in each of its
    /// event channels), so keep it modest. Default 4 096.
    pub receive_buffer: usize,
    /// Most entries read from a queue's stream at once. Default 128.
    pub read_batch: usize,
    /// How often a queue with local consumers looks for entries it was not told about and
    /// for entries to claim. Default 1 s.
    pub poll_interval: Duration,
    /// Timeout of every Redis command. Default 2 s.
    pub command_timeout: Duration,
    /// How often the connection is checked (`PING`). Default 250 ms.
    pub health_interval: Duration,
    /// Longest wait between reconnection attempts (they back off exponentially from 50 ms).
    /// Default 2 s.
    pub reconnect_max_delay: Duration,
    /// How long to wait for Redis at start before giving up. Default 5 s.
    pub connect_timeout: Duration,
    /// Prefix of every key and channel. Default `sb`.
    pub key_prefix: String,
    /// How long the node stays subscribed to a destination's channel after its last local
    /// subscriber left. A client that unsubscribes and subscribes again within it (a page
    /// reload, a stompjs reconnect) misses nothing another node publishes meanwhile: the
    /// RECEIPT of a SUBSCRIBE only says this node has it, and a fresh Redis subscription
    /// follows asynchronously. Messages that arrive for no local subscriber are dropped.
    /// Default 30 s; zero unsubscribes at once.
    pub unsubscribe_linger: Duration,
}

impl ClusterConfig {
    /// A configuration for `url` as node `node_id`, with every other setting at its default.
    pub fn new(url: impl Into<String>, node_id: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            url: url.into(),
            node_id: node_id.into(),
            claim_idle: Duration::from_secs(30),
            node_ttl: Duration::from_secs(10),
            max_buffered: 10_000,
            publish_buffer: 65_536,
            receive_buffer: 4_096,
            read_batch: 128,
            poll_interval: Duration::from_secs(1),
            command_timeout: Duration::from_secs(2),
            health_interval: Duration::from_millis(250),
            reconnect_max_delay: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
            key_prefix: "sb".to_owned(),
            unsubscribe_linger: Duration::from_secs(30),
        }
    }
}

/// A node id for a node that was given none: `hostname-pid-xxxx`.
pub fn generated_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".to_owned());
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// Why a node could not join the cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The URL or a setting is not usable.
    #[error("cluster configuration: {0}")]
    Config(String),
    /// Redis could not be reached (or answered an error) within the connect timeout.
    #[error("cannot reach Redis at {url}: {reason}")]
    Connect {
        /// The seed that was tried.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// One seed of [`ClusterConfig::url`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seed {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) db: Option<u8>,
}

/// Parses `redis://HOST:PORT[/DB]` seeds separated by commas.
pub(crate) fn parse_url(url: &str) -> Result<Vec<Seed>, ClusterError> {
    let mut seeds = Vec::new();
    for part in url.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = |why: &str| ClusterError::Config(format!("`{part}`: {why}"));
        let rest = part
            .strip_prefix("redis://")
            .ok_or_else(|| bad("expected redis://HOST:PORT"))?;
        let (hostport, db) = match rest.split_once('/') {
            Some((hp, "")) => (hp, None),
            Some((hp, db)) => (
                hp,
                Some(
                    db.parse::<u8>()
                        .map_err(|_| bad("the database is not 0-255"))?,
                ),
            ),
            None => (rest, None),
        };
        if hostport.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
            None => (hostport, 6379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        seeds.push(Seed {
            host: host.to_owned(),
            port,
            db,
        });
    }
    if seeds.is_empty() {
        return Err(ClusterError::Config("no Redis URL".to_owned()));
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let s = parse_url("redis://127.0.0.1:7000, redis://b:7001/2").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].host.as_str(), s[0].port, s[0].db),
            ("127.0.0.1", 7000, None)
        );
        assert_eq!(
            (s[1].host.as_str(), s[1].port, s[1].db),
            ("b", 7001, Some(2))
        );
        assert_eq!(parse_url("redis://h").unwrap()[0].port, 6379);
        assert!(parse_url("http://h:1").is_err());
        assert!(parse_url("redis://h:x").is_err());
        assert!(parse_url("redis://u:p@h:1").is_err());
        assert!(parse_url("").is_err());
    }

    #[test]
    fn generated_ids_differ() {
        let a = generated_node_id();
        assert!(a.contains(&std::process::id().to_string()));
        assert!(!a.contains(' '));
    }
}
