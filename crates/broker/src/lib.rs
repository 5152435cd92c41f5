//! switchboard-broker: STOMP broker semantics, transport-agnostic and sans-IO.
//!
//! A [`Broker`] holds configuration, a [`Backend`] (the in-memory [`MemoryBackend`] by default),
//! an [`Authenticator`] and application handlers. The transport opens one [`Session`] per
//! connection, feeds it parsed [`Frame`](switchboard_stomp::Frame)s with the current time, and
//! writes the [`EncodedFrame`]s it polls out. Sessions never touch sockets or clocks.
//!
//! ```
//! use std::time::Instant;
//! use switchboard_broker::{Broker, BrokerConfig, FrameKind};
//! use switchboard_stomp::{Command, Frame};
//!
//! let broker = Broker::new(BrokerConfig::default());
//! let now = Instant::now();
//! let mut alice = broker.open_session(now);
//! alice.handle_frame(Frame::new(Command::Connect).header("accept-version", "1.2").header("host", "x"), now);
//! alice.handle_frame(Frame::new(Command::Subscribe).header("id", "0").header("destination", "/topic/news"), now);
//! assert_eq!(alice.poll_transmit(now).unwrap().kind(), FrameKind::Connected);
//!
//! let mut bob = broker.open_session(now);
//! bob.handle_frame(Frame::new(Command::Connect).header("accept-version", "1.2").header("host", "x"), now);
//! bob.handle_frame(Frame::new(Command::Send).header("destination", "/topic/news").body("hi"), now);
//!
//! let message = alice.poll_transmit(now).unwrap();
//! assert_eq!(message.kind(), FrameKind::Message);
//! assert!(message.to_bytes().ends_with(b"\n\nhi\0"));
//! ```
//!
//! # Destinations
//! - `/topic/...` (and anything without a known prefix): fan-out to every matching subscription.
//!   Subscriptions to `/topic/...` may use wildcards: a `*` segment matches one segment, `**` any
//!   number; segments are separated by `/` or `.` (see [`Pattern`]).
//! - `/queue/...`: competing consumers, round-robin among subscriptions with credit; messages
//!   wait (up to `max_pending_per_queue`) while nobody can take them.
//! - `/user/...`: a subscription to `/user/queue/x` receives what is sent to
//!   `/user/{name}/queue/x`, where `name` is the session's principal (its session id when
//!   anonymous), across all of that user's sessions.
//! - `/app...`: SENDs go to handlers registered with [`BrokerBuilder::handler`], else through
//!   `app_mappings` (default `/app/X` → `/topic/X`).
//!
//! # Acknowledgements
//! - `auto`: consumed when the session hands the MESSAGE to the transport.
//! - `client` (cumulative per subscription) and `client-individual`: MESSAGEs carry an opaque
//!   `ack` header (every version); ACK/NACK name it with `id` (1.2), `message-id` +
//!   `subscription` (1.1) or `message-id` (1.0; NACK does not exist there).
//! - Queue messages NACKed, or unacknowledged when their subscription or session goes away, are
//!   redelivered with `redelivered:true`, round-robin (so usually to another consumer).
//! - `prefetch-count` caps unacknowledged messages per client-ack subscription (default and cap:
//!   `max_unacked_per_subscription`). A queue keeps messages for a consumer without credit. A
//!   topic (fan-out) subscription without credit holds them, in order, until ACK/NACKs give
//!   credit back; held messages count against the session's outbound limits, so a client that
//!   never acknowledges meets the [`SlowConsumerPolicy`] (disconnected by default; with
//!   `DropMessages` what does not fit is dropped and counted in `messages_dropped`).
//! - Transactions buffer SEND/ACK/NACK until COMMIT, which applies them all-or-nothing: every
//!   SEND is routed and the whole batch handed to [`Backend::publish_all`], which refuses it
//!   whole if a queue lacks room for all of its messages; only then are the ACK/NACKs applied.
//!   A refused COMMIT gets an ERROR and nothing is applied. A SEND with an unroutable
//!   destination or an ACK naming nothing is an ERROR when it enters the transaction. ABORT,
//!   DISCONNECT and connection loss discard a transaction.
//!
//! # Authentication and authorization
//! - An [`Authenticator`] turns CONNECT (and a transport token, [`Session::set_token`]) into a
//!   [`Principal`]: a name, groups, destination [`Grant`]s and an optional expiry, after which
//!   the session sends `ERROR message:Token expired` and closes unless it re-authenticated
//!   ([`Session::reauthenticate`], or a second CONNECT). Failures are counted
//!   (`MetricsSnapshot::auth_failures`).
//! - An [`Authorizer`] ([`AclAuthorizer`]: ordered [`AclRule`]s, first match wins, a default)
//!   decides each SUBSCRIBE and SEND; a denial is `ERROR message:Access denied: <action>
//!   <destination>` and a close. User destinations stay private whatever the rules say.
//!
//! # Message lifecycle
//! Every MESSAGE carries `redelivered` (`false` on a first delivery). Per-queue
//! [`QueuePolicy`]s in [`BrokerConfig::queues`]: `max_length` with [`Overflow`] `Refuse` or
//! `DropOldest`, `max_redeliveries` (default 10), a dead-letter destination (default
//! `/queue/DLQ.{name}`), a TTL; the `expires` header (ms since the epoch) is honoured, read
//! against [`BrokerConfig::clock`]. Dead letters carry `original-destination`,
//! `dead-letter-reason` and `delivery-count`; everything retired is counted in
//! [`BackendStats`].
//!
//! # Driving a session from a transport
//! ```text
//! let mut session = broker.open_session(now);            // one per connection
//! let signal = session.signal();                          // cloneable, 'static
//! loop {
//!     select! {
//!         bytes = socket.read()      => { session.note_activity(now);
//!                                         for frame in parser.parse(bytes) { session.handle_frame(frame, now) }
//!                                         // after CONNECTED: parser.set_version(session.version())
//!                                         // parse error: session.protocol_error(msg, detail) }
//!         _ = signal.notified()      => {}
//!         _ = sleep_until(session.poll_timeout()) => session.handle_timeout(now),
//!     }
//!     while let Some(frame) = session.poll_transmit(now) { write_buf.extend(frame.chunks()) }
//!     socket.write_all(write_buf);                        // one write per batch
//!     if session.is_closed() { flush; linger; close; break }
//! }
//! // socket error/EOF: drop the session (or call session.transport_closed()).
//! ```
//!
//! # Limits (defaults)
//! See [`Limits`]: 10 000 connections, 1 024 subscriptions per session, 10 000 pending messages
//! per queue, 4 096 frames / 8 MiB per outbound queue, 1 024 unacked per subscription, 64
//! transactions per session of at most 10 000 frames each and 4 MiB buffered in all of them. Frame, header and body sizes are the
//! STOMP parser's limits. A full outbound queue disconnects the client with an ERROR by default
//! ([`SlowConsumerPolicy`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod access;
mod app;
mod auth;
mod backend;
mod broker;
mod config;
mod destination;
mod error;
mod memory;
mod message;
mod metrics;
mod outbox;
mod session;
mod subscription;

pub use access::{
    AccessRequest, AclAuthorizer, AclError, AclRule, Action, Authorizer, Grant,
    USERNAME_PLACEHOLDER, Who,
};
pub use app::{AppContext, AppError, AppHandler, AppMessage};
pub use auth::{AllowAll, AuthError, Authenticator, ConnectInfo, Principal, StaticUsers};
pub use backend::{Backend, BackendError, BackendStats, Publication, PublishOutcome};
pub use broker::{Broker, BrokerBuilder, PublishError, SessionOptions};
pub use config::{
    AppMapping, BrokerConfig, Clock, DEFAULT_DEAD_LETTER, DEFAULT_MAX_REDELIVERIES, HeartBeat,
    Limits, ManualClock, Overflow, Prefixes, QueuePolicy, SlowConsumerPolicy,
};
pub use destination::{DestinationKind, Pattern, Route, RouteKind};
pub use error::ErrorKind;
pub use memory::MemoryBackend;
pub use message::{DeadLetterReason, Message, parse_expires};
pub use metrics::{KindCounts, MetricsSnapshot};
pub use outbox::{EncodedFrame, FrameKind, Notified, OutboundSignal};
pub use session::{CloseReason, Session};
pub use subscription::{AckMode, Delivery, OfferError, Subscriber};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
