//! A STOMP session: one connection's protocol state, driven by frames in and polled for frames
//! out. Sans-IO: no sockets, no clocks — every input carries `now`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use switchboard_stomp::header::{
    HeartBeat as HeartBeatHeader, negotiate_heart_beat, negotiate_version, version_list,
};
use switchboard_stomp::{Command, Frame, Version};

use crate::access::{AccessRequest, Action};
use crate::auth::{AuthError, ConnectInfo, Principal};
use crate::broker::{BrokerInner, SendTarget, SessionOptions, backend_error};
use crate::destination::{DestinationKind, Pattern, RouteKind};
use crate::error::{ErrorKind, StompError};
use crate::message::{itoa, parse_expires, put_header, put_raw_header};
use crate::outbox::{EncodedFrame, FrameKind, OutboundSignal, Outbox};
use crate::subscription::{AckMode, Delivery, Subscriber};

/// Why a session closed (or is closing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent DISCONNECT.
    Disconnect,
    /// The session sent ERROR (protocol error, slow consumer, heart-beat timeout, shutdown, ...).
    Error(ErrorKind),
    /// The transport went away (`Session::transport_closed` or drop).
    TransportClosed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    AwaitingConnect,
    Connected,
    /// Final frames (ERROR/RECEIPT) queued; closed once they are polled.
    Closing,
    Closed,
}

/// Hashes the session's own small sequential subscription keys (looked up once per delivery)
/// with one multiply instead of SipHash; keys are not attacker-chosen.
enum Outgoing {
    Frame(EncodedFrame),
    Delivery(Delivery),
}

struct Unacked {
    seq: u64,
    delivery: Delivery,
}

struct SubState {
    sub: Arc<Subscriber>,
    unacked: VecDeque<Unacked>,
    /// `subscription:<id>\nredelivered:false\n\n`, the whole per-delivery head of an auto-ack
    /// first delivery:
    /// encoded once per subscription, shared by every MESSAGE.
    auto_head: Bytes,
}

/// A session's subscriptions, in subscription order: keys only grow, so the vector stays
/// sorted by key. One vector rather than hash maps by key and by id: an idle session with one
/// subscription keeps one 80-byte entry instead of two hash tables (~520 bytes). Lookups by
/// key (every delivery, every 1.2 ACK) are binary searches; lookups by id (SUBSCRIBE's duplicate
/// check, UNSUBSCRIBE, 1.0/1.1 ACK) scan at most `max_subscriptions_per_session` entries.
#[derive(Default)]
struct Subs(Vec<(u64, SubState)>);

impl Subs {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn values(&self) -> impl Iterator<Item = &SubState> {
        self.0.iter().map(|(_, st)| st)
    }

    /// The keys, in ascending order.
    fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().map(|(k, _)| *k)
    }

    fn position(&self, key: u64) -> Option<usize> {
        self.0.binary_search_by_key(&key, |(k, _)| *k).ok()
    }

    fn get(&self, key: u64) -> Option<&SubState> {
        self.position(key).map(|i| &self.0[i].1)
    }

    fn get_mut(&mut self, key: u64) -> Option<&mut SubState> {
        self.position(key).map(|i| &mut self.0[i].1)
    }

    /// The key of the subscription with id `id`.
    fn key_of(&self, id: &str) -> Option<u64> {
        self.0
            .iter()
            .find(|(_, st)| st.sub.id() == id)
            .map(|(k, _)| *k)
    }

    /// Adds a subscription; `key` must be larger than every key already in.
    fn push(&mut self, key: u64, st: SubState) {
        debug_assert!(self.0.last().is_none_or(|(k, _)| *k < key));
        if self.0.len() == self.0.capacity() && self.0.len() < 4 {
            // Most sessions hold one or two subscriptions: no spare slots for them.
            self.0.reserve_exact(1);
        }
        self.0.push((key, st));
    }

    fn remove(&mut self, key: u64) -> Option<SubState> {
        let st = self.0.remove(self.position(key)?).1;
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
        Some(st)
    }
}

enum TxOp {
    Send(Frame),
    Ack { frame: Frame, nack: bool },
}

/// An open transaction: the frames it buffers until COMMIT, and their estimated size.
#[derive(Default)]
struct Transaction {
    ops: Vec<TxOp>,
    bytes: usize,
}

/// SEND authorization decisions a session remembers (distinct destinations) before starting
/// over.
/// The STOMP versions a session may negotiate: a set of bits rather than a `Vec` (no
/// allocation, 1 byte instead of 24 in every session).
#[derive(Clone, Copy, Debug)]
struct VersionSet(u8);

impl VersionSet {
    const ALL: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

    fn of(versions: impl IntoIterator<Item = Version>) -> VersionSet {
        let mut bits = 0;
        for v in versions {
            if let Some(i) = Self::ALL.iter().position(|a| *a == v) {
                bits |= 1 << i;
            }
        }
        VersionSet(bits)
    }

    /// The versions, oldest first.
    fn to_vec(self) -> Vec<Version> {
        (0..Self::ALL.len())
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| Self::ALL[i])
            .collect()
    }
}

/// A session's open transactions.
#[derive(Default)]
struct Transactions {
    open: HashMap<ByteString, Transaction>,
    /// Bytes buffered in all of them (bounded by `max_transaction_bytes`).
    bytes: usize,
}

/// SEND authorization decisions per destination, at most [`SEND_ACCESS_CACHE`].
#[derive(Default)]
struct SendAccess(HashMap<Box<str>, bool>);

const SEND_ACCESS_CACHE: usize = 256;

/// What a buffered frame is charged against `max_transaction_bytes`.
fn buffered_size(frame: &Frame) -> usize {
    let headers: usize = frame
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum();
    frame.command.as_str().len() + 2 + headers + frame.body.len()
}

/// One client connection's STOMP state. Created by [`Broker::open_session`](crate::Broker::open_session).
///
/// Drive it:
/// - [`handle_frame`](Self::handle_frame) for every parsed frame, [`note_activity`](Self::note_activity)
///   for every chunk of bytes read (heart-beat EOLs included);
/// - [`poll_transmit`](Self::poll_transmit) until `None` whenever [`signal`](Self::signal) fires
///   or after feeding it, and write what it yields (batching several frames into one write);
/// - [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout);
/// - close the transport once [`is_closed`](Self::is_closed) (after flushing).
///
/// Dropping a session cleans up: subscriptions removed, open transactions aborted, unacknowledged
/// queue messages redelivered to other consumers.
pub struct Session {
    broker: Arc<BrokerInner>,
    outbox: Arc<Outbox>,
    /// Deliveries taken from the outbox in one batch ([`Outbox::take_queued`]), not yet sent.
    inbox: VecDeque<Delivery>,
    number: u64,
    id: ByteString,
    state: State,
    counted: bool,
    version: Option<Version>,
    allowed_versions: VersionSet,
    principal: Option<Principal>,
    user: ByteString,
    /// A credential from the transport (`set_token`), for the authenticator.
    token: Option<Box<str>>,
    /// When the authentication expires (the principal's expiry, on the session's clock).
    auth_deadline: Option<Instant>,
    /// SEND authorization decisions per destination (only with an authorizer; bounded, cleared
    /// on re-authentication).
    /// (Boxed, and only once a SEND was authorized: most sessions never need it.)
    send_access: Option<Box<SendAccess>>,
    subs: Subs,
    next_key: u64,
    next_seq: u64,
    /// Open transactions; boxed, and only while one is open.
    transactions: Option<Box<Transactions>>,
    /// Frames the session produced itself, and deliveries that were queued before them (so a
    /// RECEIPT follows the MESSAGEs its frame caused), in send order.
    control: VecDeque<Outgoing>,
    heart_in: Option<Duration>,
    heart_out: Option<Duration>,
    last_received: Instant,
    last_sent: Instant,
    connect_deadline: Instant,
    heart_beat_queued: bool,
    shutdown_seen: bool,
    /// MESSAGEs sent per destination kind since the last flush into the shared counters (one
    /// atomic add per batch instead of per message).
    out_counts: [u64; 4],
    close_reason: Option<CloseReason>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("version", &self.version)
            .field("principal", &self.principal)
            .field("subscriptions", &self.subs.len())
            .field("close_reason", &self.close_reason)
            .finish_non_exhaustive()
    }
}

fn header_of<'a>(frame: &'a Frame, name: &str) -> Option<&'a str> {
    frame.headers.get(name)
}

fn shared(frame: &Frame, name: &str) -> Option<ByteString> {
    frame.headers.get_shared(name).cloned()
}

impl Session {
    pub(crate) fn open(broker: Arc<BrokerInner>, options: SessionOptions, now: Instant) -> Session {
        let number = broker.next_session_number();
        let id = ByteString::from(format!("session-{number}"));
        let limits = &broker.config.limits;
        let outbox = Outbox::new(
            id.clone(),
            limits.outbound_max_frames,
            limits.outbound_max_bytes,
            broker.config.slow_consumer,
        );
        let allowed_versions = match options.versions {
            Some(v) => VersionSet::of(v.into_iter().filter(|v| broker.config.versions.contains(v))),
            None => VersionSet::of(broker.config.versions.iter().copied()),
        };
        let connect_deadline = now + broker.config.connect_timeout;
        let mut session = Session {
            outbox,
            inbox: VecDeque::new(),
            number,
            user: id.clone(),
            id,
            state: State::AwaitingConnect,
            counted: false,
            version: None,
            allowed_versions,
            principal: None,
            token: None,
            auth_deadline: None,
            send_access: None,
            subs: Subs::default(),
            next_key: 1,
            next_seq: 1,
            transactions: None,
            control: VecDeque::new(),
            heart_in: None,
            heart_out: None,
            last_received: now,
            last_sent: now,
            connect_deadline,
            heart_beat_queued: false,
            shutdown_seen: false,
            out_counts: [0; 4],
            close_reason: None,
            broker,
        };
        let m = &session.broker.metrics;
        let open = m.connections.fetch_add(1, Ordering::AcqRel);
        session.counted = true;
        if open >= session.broker.config.limits.max_connections as i64 {
            m.connections_refused.fetch_add(1, Ordering::Relaxed);
            session.fail(
                StompError::new(
                    ErrorKind::TooManyConnections,
                    "the server has too many connections",
                ),
                None,
            );
        } else if session.broker.shutting_down.load(Ordering::Acquire) {
            session.fail(
                StompError::new(ErrorKind::Shutdown, "the server is going down"),
                None,
            );
        } else {
            m.connections_total.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut s) = session.broker.sessions.lock() {
                s.insert(number, session.outbox.signal.clone());
            }
        }
        session
    }

    /// The session id (the CONNECTED `session` header).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The negotiated version, once CONNECTED was produced. The transport's parser switches to
    /// it for the frames that follow CONNECT.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The authenticated principal, if any.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// Gives the authenticator a credential the transport received outside STOMP (an HTTP
    /// `Authorization: Bearer` header, an `access_token` query parameter): it appears as
    /// [`ConnectInfo::token`] when the CONNECT arrives. Call before feeding CONNECT.
    pub fn set_token(&mut self, token: impl Into<String>) {
        self.token = Some(token.into().into_boxed_str());
    }

    /// When the session's authentication expires (it then sends `ERROR message:Token
    /// expired` and closes), if it does.
    pub fn auth_deadline(&self) -> Option<Instant> {
        self.auth_deadline
    }

    /// Re-authenticates a connected session, e.g. with a refreshed token, before its
    /// authentication expires: the broker's authenticator checks `info`; the principal it
    /// returns must have the same name as the session's (user destinations and subscriptions
    /// are keyed by it). On success the new principal (groups, grants, expiry) applies to the
    /// frames that follow, the expiry deadline moves, and the session's subscriptions are
    /// checked again with the broker's authorizer: one the new principal may not make ends the
    /// session with `ERROR message:Access denied: subscribe to ...`. On failure the session
    /// sends `ERROR` (the authenticator's message) and closes, and the failure is counted in
    /// `auth_failures`.
    ///
    /// A client can do the same in-band: a session whose authentication expires accepts a
    /// second CONNECT (or STOMP) frame carrying fresh credentials, answered with a RECEIPT if it
    /// asks for one (no second CONNECTED). Without an expiry a second CONNECT stays an error.
    pub fn reauthenticate(
        &mut self,
        info: &ConnectInfo<'_>,
        now: Instant,
    ) -> Result<(), AuthError> {
        if self.state != State::Connected {
            return Err(AuthError {
                message: "Not connected".to_owned(),
            });
        }
        match self.try_reauthenticate(info, now) {
            Ok(()) => Ok(()),
            Err(e) => {
                let auth = AuthError {
                    message: e.message.clone(),
                };
                self.fail(e, None);
                Err(auth)
            }
        }
    }

    fn try_reauthenticate(
        &mut self,
        info: &ConnectInfo<'_>,
        now: Instant,
    ) -> Result<(), StompError> {
        let principal = self.authenticate(info)?;
        let same = match (&principal, &self.principal) {
            (Some(new), Some(old)) => new.name() == old.name(),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.broker.metrics.auth_failure();
            return Err(StompError::new(
                ErrorKind::AuthFailed,
                "re-authentication must keep the session's principal",
            ));
        }
        self.auth_deadline = self.deadline_of(principal.as_ref(), now)?;
        self.principal = principal;
        self.send_access = None;
        // Permissions follow the credentials: a subscription the new principal may not make
        // (e.g. a refreshed token with fewer grants) ends the session.
        if self.broker.authorizer.is_some() {
            let mut subs: Vec<Arc<Subscriber>> =
                self.subs.values().map(|st| st.sub.clone()).collect();
            subs.sort_by_key(|s| s.key);
            for sub in subs {
                self.check_access(Action::Subscribe, sub.destination(), sub.pattern())?;
            }
        }
        Ok(())
    }

    /// Runs the authenticator, counting a refusal.
    fn authenticate(&self, info: &ConnectInfo<'_>) -> Result<Option<Principal>, StompError> {
        self.broker.authenticator.authenticate(info).map_err(|e| {
            self.broker.metrics.auth_failure();
            StompError::new(ErrorKind::AuthFailed, format!("{e}")).with_message(e.message)
        })
    }

    /// The session deadline of `principal`'s expiry; an error if it has passed already.
    fn deadline_of(
        &self,
        principal: Option<&Principal>,
        now: Instant,
    ) -> Result<Option<Instant>, StompError> {
        let Some(at) = principal.and_then(Principal::expires_at) else {
            return Ok(None);
        };
        match at.duration_since(self.broker.config.clock.now()) {
            Ok(left) if !left.is_zero() => Ok(Some(now + left)),
            _ => Err(StompError::new(
                ErrorKind::AuthExpired,
                "the credentials have expired; connect with fresh ones",
            )),
        }
    }

    /// Checks `action` on `destination` with the broker's authorizer (SEND decisions cached).
    fn check_access(
        &mut self,
        action: Action,
        destination: &str,
        pattern: Option<&Pattern>,
    ) -> Result<(), StompError> {
        let Some(authorizer) = &self.broker.authorizer else {
            return Ok(());
        };
        let cached = if action == Action::Send {
            self.send_access
                .as_ref()
                .and_then(|m| m.0.get(destination).copied())
        } else {
            None
        };
        let allowed = match cached {
            Some(a) => a,
            None => {
                let a = authorizer.authorize(&AccessRequest {
                    principal: self.principal.as_ref(),
                    action,
                    destination,
                    pattern,
                });
                if action == Action::Send {
                    let cache = &mut self.send_access.get_or_insert_with(Default::default).0;
                    if cache.len() >= SEND_ACCESS_CACHE {
                        cache.clear();
                    }
                    cache.insert(destination.into(), a);
                }
                a
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(self.access_denied(action, destination, "the access rules do not allow it"))
        }
    }

    fn access_denied(&self, action: Action, destination: &str, why: &str) -> StompError {
        let who = match &self.principal {
            Some(p) => format!("user '{}'", p.name()),
            None => "an anonymous client".to_owned(),
        };
        let verb = match action {
            Action::Subscribe => "subscribe to",
            Action::Send => "send to",
        };
        StompError::new(
            ErrorKind::AccessDenied,
            format!("{who} may not {verb} {destination}: {why}"),
        )
        .with_message(format!("Access denied: {verb} {destination}"))
    }

    /// Whether CONNECT succeeded and the session is not closing.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Whether the session is finished: everything it will ever send has been polled. The
    /// transport flushes, lingers briefly if it likes, and closes the connection.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Why the session closed or is closing.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.close_reason
    }

    /// A handle to await outbound data or a state change from another task.
    pub fn signal(&self) -> OutboundSignal {
        self.outbox.signal.clone()
    }

    /// Number of subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    /// Unacknowledged messages held for client-ack subscriptions.
    pub fn unacked_count(&self) -> usize {
        self.subs.values().map(|s| s.unacked.len()).sum()
    }

    /// Deliveries waiting in the outbound queue (not yet polled).
    pub fn queued_frames(&self) -> usize {
        self.outbox.queued_frames()
    }

    /// Estimated bytes waiting in the outbound queue.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.queued_bytes()
    }

    /// The outbound queue's limits `(frames, bytes)`.
    pub fn outbound_limits(&self) -> (usize, usize) {
        (self.outbox.max_frames(), self.outbox.max_bytes())
    }

    /// Records that bytes arrived (any byte counts as liveness, heart-beat EOLs included).
    pub fn note_activity(&mut self, now: Instant) {
        self.last_received = now;
    }

    /// Handles one parsed client frame.
    pub fn handle_frame(&mut self, frame: Frame, now: Instant) {
        self.last_received = now;
        if matches!(self.state, State::Closing | State::Closed) {
            return;
        }
        let receipt = shared(&frame, "receipt");
        let result = match self.state {
            State::AwaitingConnect => match frame.command {
                Command::Connect | Command::Stomp => self.on_connect(&frame, now),
                other => Err(StompError::new(
                    ErrorKind::NotConnected,
                    format!(
                        "{} before CONNECT; send CONNECT or STOMP first",
                        other.as_str()
                    ),
                )),
            },
            _ => self.on_frame(frame, now),
        };
        match result {
            Ok(Reply::Receipt) => {
                if let Some(r) = receipt {
                    self.push_receipt(&r);
                }
            }
            Ok(Reply::None) => {}
            Err(e) => self.fail(e, receipt.as_deref()),
        }
    }

    /// The transport could not parse the client's bytes (or a frame/header/body limit was hit):
    /// sends ERROR with `message` and `detail`, then closes.
    pub fn protocol_error(&mut self, message: &str, detail: &str) {
        if matches!(self.state, State::Closing | State::Closed) {
            return;
        }
        self.fail(
            StompError::new(ErrorKind::Frame, detail).with_message(message),
            None,
        );
    }

    /// The transport is gone: clean up now without sending anything.
    pub fn transport_closed(&mut self) {
        if self.state != State::Closed {
            if self.close_reason.is_none() {
                self.close_reason = Some(CloseReason::TransportClosed);
            }
            self.detach();
            self.control.clear();
            self.state = State::Closed;
            self.forget_session();
        }
    }

    /// Applies what was decided outside this session's own calls (its outbound queue
    /// overflowing under the disconnect policy, the broker shutting down) without taking a
    /// frame off the queue. A transport that stops polling while its socket is not draining
    /// calls this on each wake-up of [`signal`](Self::signal), then reads
    /// [`close_reason`](Self::close_reason).
    pub fn refresh(&mut self) {
        if self.state != State::Closed {
            self.check_flags();
        }
    }

    /// The next frame to send, if any. Call until `None`, then write the batch.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<EncodedFrame> {
        loop {
            if self.state == State::Closed {
                return None;
            }
            self.check_flags();
            match self.control.pop_front() {
                Some(Outgoing::Frame(frame)) => {
                    self.last_sent = now;
                    if frame.kind() == FrameKind::HeartBeat {
                        self.heart_beat_queued = false;
                    }
                    return Some(frame);
                }
                Some(Outgoing::Delivery(d)) => {
                    self.outbox.taken(&d);
                    self.resume_if_starved();
                    if let Some(frame) = self.deliver(d) {
                        self.last_sent = now;
                        return Some(frame);
                    }
                    continue;
                }
                None => {}
            }
            if self.state == State::Closing {
                self.flush_counts();
                self.state = State::Closed;
                self.forget_session();
                return None;
            }
            let next = match self.inbox.pop_front() {
                Some(d) => Some(d),
                None if self.outbox.is_closed() => None,
                None => {
                    self.outbox.take_queued(&mut self.inbox);
                    self.inbox.pop_front()
                }
            };
            match next {
                Some(d) => {
                    self.outbox.taken(&d);
                    self.resume_if_starved();
                    if let Some(frame) = self.deliver(d) {
                        self.last_sent = now;
                        return Some(frame);
                    }
                }
                None => {
                    self.flush_counts();
                    if self.control.capacity() > 0 && self.control.is_empty() {
                        // Idle connections keep no buffers (CONNECTED alone left ~600 bytes).
                        self.control = VecDeque::new();
                    }
                    if self.inbox.capacity() > 0 {
                        self.inbox = VecDeque::new();
                    }
                    if self.shutdown_seen {
                        self.fail(
                            StompError::new(ErrorKind::Shutdown, "the server is going down"),
                            None,
                        );
                        continue;
                    }
                    return None;
                }
            }
        }
    }

    /// Polls up to `max` frames into `out`; returns how many.
    pub fn drain(&mut self, now: Instant, max: usize, out: &mut Vec<EncodedFrame>) -> usize {
        let mut n = 0;
        while n < max {
            match self.poll_transmit(now) {
                Some(f) => {
                    out.push(f);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitingConnect => Some(self.connect_deadline),
            State::Connected => {
                let inbound = self.heart_in.map(|d| self.last_received + self.grace(d));
                let outbound = if self.heart_beat_queued {
                    None
                } else {
                    self.heart_out.map(|d| self.last_sent + d)
                };
                [inbound, outbound, self.auth_deadline]
                    .into_iter()
                    .flatten()
                    .min()
            }
            State::Closing | State::Closed => None,
        }
    }

    /// Handles timers due at `now`: the connect timeout, the expiry of the authentication
    /// (`ERROR message:Token expired` + close), the client's heart-beat deadline (ERROR +
    /// close), and the broker's own heart-beat (an EOL to send).
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::AwaitingConnect if now >= self.connect_deadline => {
                self.fail(
                    StompError::new(ErrorKind::ConnectTimeout, "no CONNECT frame in time"),
                    None,
                );
            }
            State::Connected => {
                if self.auth_deadline.is_some_and(|d| now >= d) {
                    self.fail(
                        StompError::new(
                            ErrorKind::AuthExpired,
                            "the session's authentication expired; reconnect (or re-authenticate before expiry) with fresh credentials",
                        ),
                        None,
                    );
                    return;
                }
                if let Some(d) = self.heart_in
                    && now >= self.last_received + self.grace(d)
                {
                    let ms = d.as_millis();
                    self.fail(
                        StompError::new(
                            ErrorKind::HeartBeatTimeout,
                            format!(
                                "nothing received for longer than the {ms} ms heart-beat interval"
                            ),
                        ),
                        None,
                    );
                    return;
                }
                if let Some(d) = self.heart_out
                    && !self.heart_beat_queued
                    && now >= self.last_sent + d
                {
                    self.heart_beat_queued = true;
                    self.control
                        .push_back(Outgoing::Frame(EncodedFrame::heart_beat()));
                    self.outbox.signal.notify();
                }
            }
            _ => {}
        }
    }

    fn grace(&self, d: Duration) -> Duration {
        d * self.broker.config.heart_beat_grace_percent.max(100) / 100
    }

    fn check_flags(&mut self) {
        if self.state == State::Connected || self.state == State::AwaitingConnect {
            if self.outbox.overflowed() {
                self.fail(
                    StompError::new(
                        ErrorKind::SlowConsumer,
                        "the client does not read fast enough; its outbound queue is full",
                    ),
                    None,
                );
            } else if !self.shutdown_seen && self.broker.shutting_down.load(Ordering::Acquire) {
                self.shutdown_seen = true;
                if self.state == State::AwaitingConnect {
                    self.fail(
                        StompError::new(ErrorKind::Shutdown, "the server is going down"),
                        None,
                    );
                } else {
                    // Stop new deliveries; what is already queued is still sent.
                    for st in self.subs.values() {
                        st.sub.deactivate();
                        self.broker.backend.unsubscribe(&st.sub);
                    }
                }
            }
        }
    }

    // ---- frames -------------------------------------------------------------------------

    fn on_frame(&mut self, frame: Frame, now: Instant) -> Result<Reply, StompError> {
        match frame.command {
            Command::Connect | Command::Stomp if self.auth_deadline.is_some() => {
                let info = ConnectInfo {
                    login: header_of(&frame, "login"),
                    passcode: header_of(&frame, "passcode"),
                    host: header_of(&frame, "host"),
                    token: None,
                    headers: &frame.headers,
                };
                self.try_reauthenticate(&info, now)?;
                Ok(Reply::Receipt)
            }
            Command::Connect | Command::Stomp => Err(StompError::new(
                ErrorKind::AlreadyConnected,
                "the session is already connected",
            )),
            Command::Send => self.on_send(frame),
            Command::Subscribe => self.on_subscribe(&frame),
            Command::Unsubscribe => self.on_unsubscribe(&frame),
            Command::Ack => self.on_ack(frame, false),
            Command::Nack if self.version == Some(Version::V1_0) => Err(StompError::new(
                ErrorKind::BadCommand,
                "NACK does not exist in STOMP 1.0",
            )),
            Command::Nack => self.on_ack(frame, true),
            Command::Begin => self.on_begin(&frame),
            Command::Commit => self.on_commit(&frame),
            Command::Abort => self.on_abort(&frame),
            Command::Disconnect => {
                if let Some(r) = shared(&frame, "receipt") {
                    self.push_receipt(&r);
                }
                self.begin_close(CloseReason::Disconnect);
                Ok(Reply::None)
            }
            other => Err(StompError::new(
                ErrorKind::BadCommand,
                format!("Could not interpret command \"{}\"", other.as_str()),
            )),
        }
    }

    fn on_connect(&mut self, frame: &Frame, now: Instant) -> Result<Reply, StompError> {
        let version = negotiate_version(
            header_of(frame, "accept-version"),
            &self.allowed_versions.to_vec(),
        );
        let Some(version) = version else {
            return Err(StompError::new(
                ErrorKind::UnsupportedVersion,
                format!(
                    "Supported protocol versions are {}",
                    self.supported_versions()
                ),
            )
            .with_message(format!(
                "Supported protocol versions are {}",
                self.supported_versions()
            )));
        };
        self.version = Some(version);
        let client_beat = if version == Version::V1_0 {
            HeartBeatHeader::NONE
        } else {
            match header_of(frame, "heart-beat") {
                None => HeartBeatHeader::NONE,
                Some(v) => HeartBeatHeader::parse(v).ok_or_else(|| {
                    StompError::new(
                        ErrorKind::InvalidHeader,
                        format!("heart-beat must be two integers 'cx,cy', got '{v}'"),
                    )
                })?,
            }
        };
        let info = ConnectInfo {
            login: header_of(frame, "login"),
            passcode: header_of(frame, "passcode"),
            host: header_of(frame, "host"),
            token: self.token.as_deref(),
            headers: &frame.headers,
        };
        let principal = self.authenticate(&info)?;
        self.auth_deadline = self.deadline_of(principal.as_ref(), now)?;
        if let Some(p) = &principal {
            self.user = ByteString::from(p.name().to_owned());
        }
        self.principal = principal;
        let hb = self.broker.config.heart_beat;
        let (sx, sy) = if version == Version::V1_0 {
            (0, 0)
        } else {
            (hb.send_ms, hb.receive_ms)
        };
        let intervals = negotiate_heart_beat(client_beat, HeartBeatHeader::new(sx, sy));
        self.heart_out = intervals.server_to_client;
        self.heart_in = intervals.client_to_server;
        self.last_received = now;
        self.last_sent = now;
        let mut buf = BytesMut::with_capacity(128);
        buf.put_slice(b"CONNECTED\n");
        put_raw_header(&mut buf, "version", version.as_str());
        put_raw_header(&mut buf, "session", &self.id);
        put_raw_header(&mut buf, "server", &self.broker.config.server_name);
        let mut beat = String::with_capacity(24);
        beat.push_str(itoa(u64::from(sx)).as_str());
        beat.push(',');
        beat.push_str(itoa(u64::from(sy)).as_str());
        put_raw_header(&mut buf, "heart-beat", &beat);
        if let Some(p) = &self.principal {
            put_raw_header(&mut buf, "user-name", p.name());
        }
        buf.put_slice(b"\n\0");
        self.push_control(EncodedFrame::single(FrameKind::Connected, buf.freeze()));
        self.state = State::Connected;
        Ok(Reply::None)
    }

    fn supported_versions(&self) -> String {
        version_list(&self.allowed_versions.to_vec())
    }

    fn on_send(&mut self, frame: Frame) -> Result<Reply, StompError> {
        let Some(dest) = header_of(&frame, "destination") else {
            return Err(StompError::missing("SEND", "destination"));
        };
        if let Some(v) = header_of(&frame, "expires")
            && parse_expires(v).is_err()
        {
            return Err(StompError::new(
                ErrorKind::InvalidHeader,
                format!("expires must be milliseconds since the Unix epoch (0 = never), got '{v}'"),
            ));
        }
        // Validate the destination now, even inside a transaction: a SEND that could never be
        // routed is an ERROR at that frame, not at COMMIT.
        let target = self
            .broker
            .resolve_send_shared(dest, frame.headers.get_shared("destination"))?;
        if self.broker.authorizer.is_some() {
            self.check_access(Action::Send, dest, None)?;
            if let SendTarget::App = target
                && let Some(mapped) = self.broker.mapped_destination(dest)
            {
                self.check_access(Action::Send, &mapped, None)?;
            }
        }
        if let Some(tx) = shared(&frame, "transaction") {
            if let SendTarget::App = target {
                self.broker.check_app(dest)?;
            }
            self.buffer(&tx, TxOp::Send(frame))?;
            return Ok(Reply::Receipt);
        }
        self.publish(target, frame)?;
        Ok(Reply::Receipt)
    }

    fn publish(&mut self, target: SendTarget, frame: Frame) -> Result<(), StompError> {
        let dest = header_of(&frame, "destination").unwrap_or("");
        match target {
            SendTarget::App => self.broker.send_app(
                dest,
                &frame.headers,
                frame.body.clone(),
                &self.id,
                self.principal.as_ref(),
                &self.user,
                None,
            ),
            SendTarget::Route { route, shown_as } => self
                .broker
                .publish_route(&route, shown_as, &frame.headers, frame.body.clone())
                .map(|_| ()),
        }
    }

    fn on_subscribe(&mut self, frame: &Frame) -> Result<Reply, StompError> {
        // Copied, not shared: a subscription lives long, and a slice would pin the transport's
        // whole read buffer for as long (an idle connection must stay small).
        let Some(dest) = header_of(frame, "destination").map(|d| ByteString::from(d.to_owned()))
        else {
            return Err(StompError::missing("SUBSCRIBE", "destination"));
        };
        let id = match header_of(frame, "id") {
            Some(id) => ByteString::from(id.to_owned()),
            None if self.version == Some(Version::V1_0) => dest.clone(),
            None => return Err(StompError::missing("SUBSCRIBE", "id")),
        };
        if self.subs.key_of(&id).is_some() {
            return Err(StompError::new(
                ErrorKind::DuplicateSubscription,
                format!("subscription id '{id}' is already in use on this connection"),
            ));
        }
        let limit = self.broker.config.limits.max_subscriptions_per_session;
        if self.subs.len() >= limit {
            return Err(StompError::new(
                ErrorKind::Limit,
                format!("at most {limit} subscriptions per connection"),
            ));
        }
        let ack = match header_of(frame, "ack") {
            None => AckMode::Auto,
            Some(v) => AckMode::parse(v).ok_or_else(|| {
                StompError::new(
                    ErrorKind::InvalidHeader,
                    format!("ack must be auto, client or client-individual, got '{v}'"),
                )
            })?,
        };
        let max = self
            .broker
            .config
            .limits
            .max_unacked_per_subscription
            .max(1);
        let prefetch = match header_of(frame, "prefetch-count") {
            None => max,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(0) => max,
                Ok(n) => n.min(max),
                Err(_) => {
                    return Err(StompError::new(
                        ErrorKind::InvalidHeader,
                        format!("prefetch-count must be a non-negative integer, got '{v}'"),
                    ));
                }
            },
        };
        let prefetch = if ack == AckMode::Auto { 0 } else { prefetch };
        let (route, pattern) = self.broker.resolve_subscribe(&dest, &self.user)?;
        if route.destination_kind == DestinationKind::User && self.user.contains('/') {
            // `/user/{name}/{rest}` keys split at the first `/`: such a name could read
            // another user's destinations.
            return Err(self.access_denied(
                Action::Subscribe,
                &dest,
                "a principal whose name contains '/' cannot use user destinations",
            ));
        }
        self.check_access(Action::Subscribe, &dest, pattern.as_ref())?;
        let key = self.next_key;
        self.next_key += 1;
        let sub = Arc::new(Subscriber::new(
            self.outbox.clone(),
            key,
            id.clone(),
            dest,
            route,
            pattern,
            ack,
            prefetch,
        ));
        let mut auto_head = BytesMut::with_capacity(40 + id.len());
        put_header(
            &mut auto_head,
            "subscription",
            &id,
            self.version.unwrap_or(Version::V1_2),
        );
        auto_head.put_slice(b"redelivered:false\n\n");
        self.subs.push(
            key,
            SubState {
                sub: sub.clone(),
                unacked: VecDeque::new(),
                auto_head: auto_head.freeze(),
            },
        );
        self.broker.metrics.subscription_added();
        if self.shutdown_seen {
            sub.deactivate();
        } else if let Err(e) = self.broker.backend.subscribe(sub) {
            let _ = self.remove_subscription(key);
            return Err(backend_error(e));
        }
        Ok(Reply::Receipt)
    }

    fn on_unsubscribe(&mut self, frame: &Frame) -> Result<Reply, StompError> {
        let key = match header_of(frame, "id") {
            Some(id) => self.subs.key_of(id).ok_or_else(|| {
                StompError::new(
                    ErrorKind::UnknownSubscription,
                    format!("no subscription with id '{id}' on this connection"),
                )
            })?,
            None if self.version == Some(Version::V1_0) => {
                let Some(dest) = header_of(frame, "destination") else {
                    return Err(StompError::missing("UNSUBSCRIBE", "id' or 'destination"));
                };
                self.subs
                    .values()
                    .find(|s| s.sub.destination() == dest)
                    .map(|s| s.sub.key)
                    .ok_or_else(|| {
                        StompError::new(
                            ErrorKind::UnknownSubscription,
                            format!("no subscription to '{dest}' on this connection"),
                        )
                    })?
            }
            None => return Err(StompError::missing("UNSUBSCRIBE", "id")),
        };
        let unacked = self.remove_subscription(key);
        self.requeue(unacked);
        Ok(Reply::Receipt)
    }

    /// Removes a subscription from the session and the backend; returns its unacknowledged
    /// deliveries, marked redelivered, for the caller to requeue.
    fn remove_subscription(&mut self, key: u64) -> Vec<Delivery> {
        let Some(st) = self.subs.remove(key) else {
            return Vec::new();
        };
        st.sub.deactivate();
        st.sub.discard_held();
        self.broker.backend.unsubscribe(&st.sub);
        self.broker.metrics.subscriptions_removed(1);
        st.unacked
            .into_iter()
            .map(|u| {
                let mut d = u.delivery;
                d.set_redelivered(true);
                d
            })
            .collect()
    }

    fn requeue(&self, deliveries: Vec<Delivery>) {
        let queue: Vec<Delivery> = deliveries
            .into_iter()
            .filter(|d| d.subscriber().route().kind == RouteKind::Queue)
            .collect();
        if !queue.is_empty() {
            self.broker.metrics.redelivered(queue.len());
            self.broker.backend.settle(Vec::new(), queue);
        }
    }

    fn on_ack(&mut self, frame: Frame, nack: bool) -> Result<Reply, StompError> {
        let target = self.locate_ack(&frame)?;
        if let Some(tx) = shared(&frame, "transaction") {
            self.buffer(&tx, TxOp::Ack { frame, nack })?;
            return Ok(Reply::Receipt);
        }
        self.apply_ack(target, nack);
        Ok(Reply::Receipt)
    }

    /// Finds the subscription and delivery an ACK/NACK names, per the session's version:
    /// 1.2 `id` (our `ack` header), 1.1 `message-id` + `subscription`, 1.0 `message-id`.
    fn locate_ack(&self, frame: &Frame) -> Result<(u64, u64), StompError> {
        let cmd = frame.command.as_str();
        let bad = |what: String| StompError::new(ErrorKind::BadAck, what);
        match self.version {
            Some(Version::V1_2) => {
                let Some(id) = header_of(frame, "id") else {
                    return Err(StompError::missing(cmd, "id"));
                };
                let parsed = id
                    .split_once('-')
                    .and_then(|(k, s)| Some((k.parse::<u64>().ok()?, s.parse::<u64>().ok()?)));
                let Some((key, seq)) = parsed else {
                    return Err(bad(format!("'{id}' is not an ack id this server sent")));
                };
                let found = self
                    .subs
                    .get(key)
                    .is_some_and(|st| st.unacked.binary_search_by_key(&seq, |u| u.seq).is_ok());
                if found {
                    Ok((key, seq))
                } else {
                    Err(bad(format!("no unacknowledged message with ack id '{id}'")))
                }
            }
            _ => {
                let Some(mid) = header_of(frame, "message-id") else {
                    return Err(StompError::missing(cmd, "message-id"));
                };
                let sub = header_of(frame, "subscription");
                if sub.is_none() && self.version == Some(Version::V1_1) {
                    return Err(StompError::missing(cmd, "subscription"));
                }
                let keys: Vec<u64> = match sub {
                    Some(s) => match self.subs.key_of(s) {
                        Some(k) => vec![k],
                        None => {
                            return Err(StompError::new(
                                ErrorKind::UnknownSubscription,
                                format!("no subscription with id '{s}' on this connection"),
                            ));
                        }
                    },
                    None => self.subs.keys().collect(),
                };
                for key in keys {
                    if let Some(st) = self.subs.get(key)
                        && let Some(u) =
                            st.unacked.iter().find(|u| u.delivery.message().id() == mid)
                    {
                        return Ok((key, u.seq));
                    }
                }
                Err(bad(format!(
                    "no unacknowledged message with message-id '{mid}'"
                )))
            }
        }
    }

    /// Acks or nacks delivery `seq` of subscription `key` (and, in `client` mode, every earlier
    /// one). Missing entries (already settled) are ignored.
    fn apply_ack(&mut self, (key, seq): (u64, u64), nack: bool) {
        let Some(st) = self.subs.get_mut(key) else {
            return;
        };
        let Ok(pos) = st.unacked.binary_search_by_key(&seq, |u| u.seq) else {
            return;
        };
        let settled: Vec<Delivery> = if st.sub.ack_mode() == AckMode::Client {
            st.unacked.drain(..=pos).map(|u| u.delivery).collect()
        } else {
            st.unacked
                .remove(pos)
                .map(|u| u.delivery)
                .into_iter()
                .collect()
        };
        // Credit comes back first, so `settle` can offer waiting queue messages to this
        // subscription. NACKed topic deliveries are simply discarded.
        st.sub.release(settled.len() as u32);
        // Fan-out messages held back at the prefetch limit take the credit first, in order.
        st.sub.send_held();
        if nack {
            let requeue = settled
                .into_iter()
                .map(|mut d| {
                    d.set_redelivered(true);
                    d
                })
                .collect();
            self.requeue(requeue);
        } else if st.sub.route().kind == RouteKind::Queue {
            self.broker.backend.settle(settled, Vec::new());
        }
    }

    /// Adds a SEND/ACK/NACK to open transaction `tx`, within the transaction limits.
    fn buffer(&mut self, tx: &ByteString, op: TxOp) -> Result<(), StompError> {
        let limits = &self.broker.config.limits;
        let (max_frames, max_bytes) = (
            limits.max_frames_per_transaction,
            limits.max_transaction_bytes,
        );
        let size = match &op {
            TxOp::Send(f) | TxOp::Ack { frame: f, .. } => buffered_size(f),
        };
        let unknown = || {
            StompError::new(
                ErrorKind::UnknownTransaction,
                format!("no open transaction '{tx}'"),
            )
        };
        let txs = self.transactions.as_deref_mut().ok_or_else(unknown)?;
        let total = txs.bytes;
        let t = txs.open.get_mut(tx).ok_or_else(unknown)?;
        if t.ops.len() >= max_frames {
            return Err(StompError::new(
                ErrorKind::Limit,
                format!("more than {max_frames} frames in transaction '{tx}'"),
            ));
        }
        if total.saturating_add(size) > max_bytes {
            return Err(StompError::new(
                ErrorKind::Limit,
                format!(
                    "more than {max_bytes} bytes buffered in this connection's open transactions"
                ),
            ));
        }
        t.ops.push(op);
        t.bytes += size;
        txs.bytes += size;
        Ok(())
    }

    /// Closes transaction `tx` (COMMIT or ABORT) and returns what it buffered.
    fn take_transaction(&mut self, tx: &ByteString) -> Result<Transaction, StompError> {
        let txs = self.transactions.as_deref_mut();
        let Some(t) = txs.and_then(|txs| {
            let t = txs.open.remove(tx)?;
            txs.bytes = txs.bytes.saturating_sub(t.bytes);
            Some(t)
        }) else {
            return Err(StompError::new(
                ErrorKind::UnknownTransaction,
                format!("no open transaction '{tx}'"),
            ));
        };
        if self
            .transactions
            .as_ref()
            .is_some_and(|t| t.open.is_empty())
        {
            self.transactions = None;
        }
        Ok(t)
    }

    fn on_begin(&mut self, frame: &Frame) -> Result<Reply, StompError> {
        let Some(tx) = shared(frame, "transaction") else {
            return Err(StompError::missing("BEGIN", "transaction"));
        };
        let open = self.transactions.get_or_insert_with(Default::default);
        if open.open.contains_key(&tx) {
            return Err(StompError::new(
                ErrorKind::DuplicateTransaction,
                format!("transaction '{tx}' is already open"),
            ));
        }
        let limit = self.broker.config.limits.max_transactions_per_session;
        if open.open.len() >= limit {
            return Err(StompError::new(
                ErrorKind::Limit,
                format!("at most {limit} open transactions per connection"),
            ));
        }
        open.open.insert(tx, Transaction::default());
        Ok(Reply::Receipt)
    }

    /// Applies a transaction all-or-nothing. Its SENDs are routed first (application handlers
    /// run now, their publishes staged with the rest), then published as one batch the backend
    /// accepts whole or refuses whole (e.g. a queue without room for all of its messages); only
    /// then are its ACK/NACKs applied, in order. If anything fails, nothing is applied and the
    /// client gets an ERROR (with `receipt-id` if the COMMIT asked for a receipt).
    fn on_commit(&mut self, frame: &Frame) -> Result<Reply, StompError> {
        let Some(tx) = shared(frame, "transaction") else {
            return Err(StompError::missing("COMMIT", "transaction"));
        };
        let t = self.take_transaction(&tx)?;
        let mut batch = Vec::new();
        let mut acks = Vec::new();
        for op in t.ops {
            match op {
                TxOp::Send(frame) => self.stage(frame, &mut batch)?,
                TxOp::Ack { frame, nack } => acks.push((frame, nack)),
            }
        }
        self.broker.publish_all(&batch)?;
        for (frame, nack) in acks {
            // Already settled (e.g. by a cumulative ACK earlier in the transaction): skip.
            if let Ok(target) = self.locate_ack(&frame) {
                self.apply_ack(target, nack);
            }
        }
        Ok(Reply::Receipt)
    }

    /// Routes a transaction's SEND into `batch` without publishing anything.
    fn stage(
        &mut self,
        frame: Frame,
        batch: &mut Vec<crate::backend::Publication>,
    ) -> Result<(), StompError> {
        let dest = header_of(&frame, "destination").unwrap_or("");
        let target = self
            .broker
            .resolve_send_shared(dest, frame.headers.get_shared("destination"))?;
        match target {
            SendTarget::App => self.broker.send_app(
                dest,
                &frame.headers,
                frame.body.clone(),
                &self.id,
                self.principal.as_ref(),
                &self.user,
                Some(batch),
            ),
            SendTarget::Route { route, shown_as } => {
                self.broker
                    .stage_route(route, shown_as, &frame.headers, frame.body.clone(), batch);
                Ok(())
            }
        }
    }

    fn on_abort(&mut self, frame: &Frame) -> Result<Reply, StompError> {
        let Some(tx) = shared(frame, "transaction") else {
            return Err(StompError::missing("ABORT", "transaction"));
        };
        self.take_transaction(&tx)?;
        Ok(Reply::Receipt)
    }

    // ---- output -------------------------------------------------------------------------

    /// Turns a delivery into a MESSAGE frame (or drops it if its subscription is gone).
    /// Once a session whose queue offers were refused for room has drained to the low-water
    /// mark, its queues offer it their waiting messages again (flow control: a backlog drains
    /// at the pace the client reads, never overflowing the outbound queue).
    fn resume_if_starved(&mut self) {
        if self.outbox.take_starved() {
            for st in self.subs.values() {
                if st.sub.route().kind == RouteKind::Queue {
                    self.broker.backend.resume(&st.sub);
                }
            }
        }
    }

    fn deliver(&mut self, delivery: Delivery) -> Option<EncodedFrame> {
        let key = delivery.subscriber().key;
        let version = self.version.unwrap_or(Version::V1_2);
        let Some(st) = self.subs.get_mut(key) else {
            // Unsubscribed since it was queued: a queue message goes to someone else, unseen.
            if delivery.subscriber().route().kind == RouteKind::Queue {
                self.broker.backend.settle(Vec::new(), vec![delivery]);
            }
            return None;
        };
        let mut delivery = delivery;
        delivery.set_shown();
        let message = delivery.message().clone();
        self.out_counts[message.kind().index()] += 1;
        if st.sub.ack_mode() == AckMode::Auto && !delivery.redelivered() {
            // The common case allocates nothing: four shared pieces.
            return Some(EncodedFrame::new(
                FrameKind::Message,
                [
                    message.shared_head(version).clone(),
                    st.auto_head.clone(),
                    message.body().clone(),
                    Bytes::from_static(b"\0"),
                ],
            ));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut head = BytesMut::with_capacity(64 + st.sub.id().len());
        put_header(&mut head, "subscription", st.sub.id(), version);
        if st.sub.ack_mode() != AckMode::Auto {
            // `ack:<key>-<seq>`: digits and a dash, nothing to escape.
            head.put_slice(b"ack:");
            head.put_slice(itoa(key).as_str().as_bytes());
            head.put_u8(b'-');
            head.put_slice(itoa(seq).as_str().as_bytes());
            head.put_u8(b'\n');
        }
        // On every MESSAGE, like RabbitMQ and ActiveMQ (clients read `headers['redelivered']`).
        if delivery.redelivered() {
            head.put_slice(b"redelivered:true\n");
        } else {
            head.put_slice(b"redelivered:false\n");
        }
        head.put_u8(b'\n');
        if st.sub.ack_mode() != AckMode::Auto {
            st.unacked.push_back(Unacked { seq, delivery });
        }
        Some(EncodedFrame::new(
            FrameKind::Message,
            [
                message.shared_head(version).clone(),
                head.freeze(),
                message.body().clone(),
                Bytes::from_static(b"\0"),
            ],
        ))
    }

    /// Queues a frame of the session's own, after the deliveries already waiting.
    fn push_control(&mut self, frame: EncodedFrame) {
        if !self.outbox.is_closed() {
            // What is queued now, in order: busy producers cannot keep us here.
            self.outbox.take_queued(&mut self.inbox);
        }
        self.control
            .extend(self.inbox.drain(..).map(Outgoing::Delivery));
        self.control.push_back(Outgoing::Frame(frame));
        self.outbox.signal.notify();
    }

    fn push_receipt(&mut self, receipt_id: &str) {
        let version = self.version.unwrap_or(Version::V1_2);
        let mut buf = BytesMut::with_capacity(32 + receipt_id.len());
        buf.put_slice(b"RECEIPT\n");
        put_header(&mut buf, "receipt-id", receipt_id, version);
        buf.put_slice(b"\n\0");
        self.push_control(EncodedFrame::single(FrameKind::Receipt, buf.freeze()));
    }

    /// Queues ERROR and starts closing.
    fn fail(&mut self, error: StompError, receipt: Option<&str>) {
        self.broker.metrics.error(error.kind);
        let version = self.version.unwrap_or(Version::V1_2);
        let mut body = error.detail;
        body.push('\n');
        let mut buf = BytesMut::with_capacity(96 + body.len() + error.message.len());
        buf.put_slice(b"ERROR\n");
        put_header(&mut buf, "message", &error.message, version);
        if let Some(r) = receipt {
            put_header(&mut buf, "receipt-id", r, version);
        }
        if error.kind == ErrorKind::UnsupportedVersion {
            let v = self.supported_versions();
            put_header(&mut buf, "version", &v, version);
        }
        put_header(&mut buf, "content-type", "text/plain", version);
        put_header(
            &mut buf,
            "content-length",
            itoa(body.len() as u64).as_str(),
            version,
        );
        buf.put_u8(b'\n');
        buf.put_slice(body.as_bytes());
        buf.put_u8(0);
        // An ERROR ends the session: deliveries still queued are not sent (`detach` requeues
        // queue messages); CONNECTED and RECEIPTs already queued still go out before it.
        self.control.push_back(Outgoing::Frame(EncodedFrame::single(
            FrameKind::Error,
            buf.freeze(),
        )));
        self.begin_close(CloseReason::Error(error.kind));
    }

    fn begin_close(&mut self, reason: CloseReason) {
        if matches!(self.state, State::Closing | State::Closed) {
            return;
        }
        self.close_reason = Some(reason);
        self.state = State::Closing;
        self.detach();
        self.outbox.signal.notify();
    }

    /// Leaves the broker: subscriptions removed, outbound queue emptied (its queue messages go
    /// back unseen), unacknowledged queue messages redelivered, transactions aborted.
    fn detach(&mut self) {
        self.outbox.close();
        self.transactions = None;
        for st in self.subs.values() {
            st.sub.deactivate();
        }
        // Deliveries never shown to the client: requeued with their flag unchanged.
        let mut leftovers = Vec::new();
        let control = std::mem::take(&mut self.control);
        for item in control {
            match item {
                Outgoing::Frame(f) => self.control.push_back(Outgoing::Frame(f)),
                Outgoing::Delivery(d) => {
                    self.outbox.taken(&d);
                    leftovers.push(d);
                }
            }
        }
        // `close` above stopped the producers: this drain is final.
        self.outbox.take_queued(&mut self.inbox);
        for d in std::mem::take(&mut self.inbox) {
            self.outbox.taken(&d);
            leftovers.push(d);
        }
        // Earlier (unacknowledged, redelivered) messages first, then the unseen ones.
        let keys: Vec<u64> = self.subs.keys().collect();
        let mut requeue = Vec::new();
        for key in keys {
            requeue.extend(self.remove_subscription(key));
        }
        let is_queue = |d: &Delivery| d.subscriber().route().kind == RouteKind::Queue;
        requeue.retain(is_queue);
        self.broker.metrics.redelivered(requeue.len());
        requeue.extend(leftovers.into_iter().filter(is_queue));
        if !requeue.is_empty() {
            self.broker.backend.settle(Vec::new(), requeue);
        }
    }

    fn flush_counts(&mut self) {
        for (i, n) in self.out_counts.iter_mut().enumerate() {
            if *n > 0 {
                self.broker.metrics.messages_out_add(i, *n);
                *n = 0;
            }
        }
    }

    fn forget_session(&mut self) {
        if let Ok(mut s) = self.broker.sessions.lock() {
            s.remove(&self.number);
        }
    }
}

enum Reply {
    /// Send a RECEIPT if the frame asked for one.
    Receipt,
    /// Nothing (the handler already replied).
    None,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.transport_closed();
        self.flush_counts();
        if self.counted {
            self.broker
                .metrics
                .connections
                .fetch_sub(1, Ordering::AcqRel);
        }
    }
}
