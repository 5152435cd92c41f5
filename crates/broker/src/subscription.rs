//! Subscriptions as a backend sees them, and deliveries.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytestring::ByteString;

use crate::destination::{Pattern, Route, RouteKind};
use crate::message::Message;
use crate::outbox::Outbox;

/// A subscription's `ack` mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckMode {
    /// `auto`: consumed when sent.
    Auto,
    /// `client`: an ACK/NACK covers that message and every earlier one of the subscription.
    Client,
    /// `client-individual`: an ACK/NACK covers one message.
    ClientIndividual,
}

impl AckMode {
    /// Parses the SUBSCRIBE `ack` header value.
    pub fn parse(value: &str) -> Option<AckMode> {
        match value {
            "auto" => Some(AckMode::Auto),
            "client" => Some(AckMode::Client),
            "client-individual" => Some(AckMode::ClientIndividual),
            _ => None,
        }
    }

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Auto => "auto",
            AckMode::Client => "client",
            AckMode::ClientIndividual => "client-individual",
        }
    }
}

/// Why [`Subscriber::offer`] did not take a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OfferError {
    /// The subscription has `prefetch-count` unacknowledged messages in flight (queue
    /// subscriptions; the queue keeps the message for later).
    NoCredit,
    /// The session's outbound queue is full (slow consumer).
    Full,
    /// The subscription or its session is gone or closing.
    Closed,
}

/// One subscription of one session, shared between the session and the backend.
///
/// A backend keeps `Arc<Subscriber>`s in its routing tables and hands messages to them with
/// [`Subscriber::offer`], which never blocks (it takes no lock but the session queue's, for one
/// push).
pub struct Subscriber {
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) key: u64,
    id: ByteString,
    destination: ByteString,
    route: Route,
    pattern: Option<Pattern>,
    ack: AckMode,
    prefetch: u32,
    in_flight: AtomicU32,
    active: AtomicBool,
    /// Fan-out messages that arrived while a client-ack subscription had `prefetch` messages
    /// unacknowledged, oldest first, each charged against the session's outbound limits until
    /// an ACK/NACK gives credit back. Always empty for queues (a queue keeps its own messages)
    /// and auto-ack subscriptions.
    held: Mutex<VecDeque<Arc<Message>>>,
    /// `held.len()`, written under the lock once the change is complete: while it is 0,
    /// offers with credit skip the lock.
    held_len: AtomicUsize,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("session", &self.outbox.session_id)
            .field("id", &self.id)
            .field("destination", &self.destination)
            .field("ack", &self.ack)
            .field("prefetch", &self.prefetch)
            .field("in_flight", &self.in_flight())
            .field("held", &self.held())
            .finish()
    }
}

impl Subscriber {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        outbox: Arc<Outbox>,
        key: u64,
        id: ByteString,
        destination: ByteString,
        route: Route,
        pattern: Option<Pattern>,
        ack: AckMode,
        prefetch: u32,
    ) -> Subscriber {
        Subscriber {
            outbox,
            key,
            id,
            destination,
            route,
            pattern,
            ack,
            prefetch,
            in_flight: AtomicU32::new(0),
            active: AtomicBool::new(true),
            held: Mutex::new(VecDeque::new()),
            held_len: AtomicUsize::new(0),
        }
    }

    /// The owning session's id.
    pub fn session_id(&self) -> &str {
        &self.outbox.session_id
    }

    /// The subscription id (SUBSCRIBE `id`, or the destination for a 1.0 SUBSCRIBE without one).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The destination as subscribed (may contain wildcards).
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// What the backend routes on.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The compiled wildcard pattern, for wildcard topic subscriptions.
    pub fn pattern(&self) -> Option<&Pattern> {
        self.pattern.as_ref()
    }

    /// The ack mode.
    pub fn ack_mode(&self) -> AckMode {
        self.ack
    }

    /// Max unacknowledged messages in flight (client modes); 0 = no limit (auto mode).
    pub fn prefetch(&self) -> u32 {
        self.prefetch
    }

    /// Unacknowledged messages in flight now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Whether the subscription still wants messages.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire) && !self.outbox.is_closed()
    }

    /// Whether the subscription could take a message now (active, credit left). A hint: `offer`
    /// decides.
    pub fn has_credit(&self) -> bool {
        self.is_active() && (self.prefetch == 0 || self.in_flight() < self.prefetch)
    }

    /// Fan-out messages held back because the subscription is at its prefetch limit (they are
    /// sent, in order, as ACK/NACKs give credit back).
    pub fn held(&self) -> usize {
        self.held_len.load(Ordering::Acquire)
    }

    pub(crate) fn deactivate(&self) {
        self.active.store(false, Ordering::Release);
    }

    fn lock_held(&self) -> MutexGuard<'_, VecDeque<Arc<Message>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_credit(&self) -> bool {
        let prefetch = self.prefetch;
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < prefetch).then_some(n + 1)
            })
            .is_ok()
    }

    /// A fan-out message for a client-ack subscription: sent if it has credit and nothing is
    /// held, else held (charged against the outbound limits; refused per the slow-consumer
    /// policy when they are reached). Takes the held-messages lock only when the subscription
    /// is at its prefetch limit or already holds messages.
    fn offer_held(
        self: &Arc<Self>,
        message: &Arc<Message>,
        redelivered: bool,
        tag: u64,
    ) -> Result<(), OfferError> {
        if self.held_len.load(Ordering::Acquire) == 0 && self.take_credit() {
            let r = self.push_with_credit(message, redelivered, tag);
            if r.is_err() && self.held_len.load(Ordering::Acquire) != 0 {
                // The credit given back may be what a held message waits for.
                self.send_held();
            }
            return r;
        }
        let mut held = self.lock_held();
        // Checked under the lock `discard_held` takes, so nothing is held after it ran.
        if !self.active.load(Ordering::Acquire) {
            return Err(OfferError::Closed);
        }
        // Credit may have come back since (its `send_held` found nothing held).
        if held.is_empty() && self.take_credit() {
            return self.push_with_credit(message, redelivered, tag);
        }
        self.outbox.reserve(message.size_hint())?;
        held.push_back(message.clone());
        self.held_len.store(held.len(), Ordering::Release);
        Ok(())
    }

    fn push_with_credit(
        self: &Arc<Self>,
        message: &Arc<Message>,
        redelivered: bool,
        tag: u64,
    ) -> Result<(), OfferError> {
        let delivery = Delivery {
            message: message.clone(),
            subscriber: self.clone(),
            redelivered,
            tag,
            shown: false,
        };
        self.outbox.push(delivery).map_err(|(e, _)| {
            self.release(1);
            e
        })
    }

    /// Sends held messages while the subscription has credit (after an ACK/NACK released some).
    pub(crate) fn send_held(self: &Arc<Self>) {
        if self.held_len.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut held = self.lock_held();
        while !held.is_empty() && self.take_credit() {
            let Some(message) = held.pop_front() else {
                break;
            };
            let delivery = Delivery {
                message,
                subscriber: self.clone(),
                redelivered: false,
                tag: 0,
                shown: false,
            };
            if self.outbox.push_reserved(delivery).is_err() {
                // Closing: nothing more will be sent.
                self.release(1);
                break;
            }
        }
        // Only now (the messages are in the outbound queue) may offers skip the lock again.
        self.held_len.store(held.len(), Ordering::Release);
    }

    /// Drops held messages (the subscription is going away), giving back their reservations.
    /// Call after [`deactivate`](Self::deactivate).
    pub(crate) fn discard_held(&self) {
        let mut held = self.lock_held();
        for m in held.drain(..) {
            self.outbox.unreserve(m.size_hint());
        }
        self.held_len.store(0, Ordering::Release);
    }

    /// Hands `message` to the subscription's session. A queue message is refused with
    /// `NoCredit` while the session's outbound queue is half full (the queue keeps it; the
    /// session asks [`Backend::resume`](crate::Backend::resume) once it has drained). (For a
    /// client-ack fan-out subscription at its prefetch limit: holds it, charged against the session's outbound limits, until an
    /// ACK/NACK gives credit back; refused with `Full` per the slow-consumer policy when those
    /// limits are reached). `redelivered` makes the MESSAGE say `redelivered:true` (else
    /// `redelivered:false`); `tag` is the backend's own token for this delivery (given back in
    /// [`Backend::settle`](crate::Backend::settle)), 0 if unused.
    pub fn offer(
        self: &Arc<Self>,
        message: &Arc<Message>,
        redelivered: bool,
        tag: u64,
    ) -> Result<(), OfferError> {
        if !self.active.load(Ordering::Acquire) {
            return Err(OfferError::Closed);
        }
        if self.prefetch != 0 && self.route.kind == RouteKind::FanOut {
            return self.offer_held(message, redelivered, tag);
        }
        let counted = self.prefetch != 0;
        if counted {
            let prefetch = self.prefetch;
            self.in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < prefetch).then_some(n + 1)
                })
                .map_err(|_| OfferError::NoCredit)?;
        }
        if self.route.kind == RouteKind::Queue {
            let size = message.size_hint();
            if !self.outbox.queue_room(size) && !self.outbox.mark_starved(size) {
                // Flow control, not overflow: the queue keeps the message and offers it again
                // when this session has drained (`Backend::resume`).
                if counted {
                    self.release(1);
                }
                return Err(OfferError::NoCredit);
            }
        }
        let delivery = Delivery {
            message: message.clone(),
            subscriber: self.clone(),
            redelivered,
            tag,
            shown: false,
        };
        match self.outbox.push(delivery) {
            Ok(()) => Ok(()),
            Err((e, _)) => {
                if counted {
                    self.release(1);
                }
                Err(e)
            }
        }
    }

    /// Gives back `n` credits (messages acknowledged, nacked or dropped).
    pub(crate) fn release(&self, n: u32) {
        if self.prefetch != 0 && n > 0 {
            let _ = self
                .in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                    Some(c.saturating_sub(n))
                });
        }
    }
}

/// One message on its way to (or held unacknowledged by) one subscription.
#[derive(Clone, Debug)]
pub struct Delivery {
    message: Arc<Message>,
    subscriber: Arc<Subscriber>,
    redelivered: bool,
    tag: u64,
    shown: bool,
}

impl Delivery {
    /// The message.
    pub fn message(&self) -> &Arc<Message> {
        &self.message
    }

    /// The subscription it was offered to.
    pub fn subscriber(&self) -> &Arc<Subscriber> {
        &self.subscriber
    }

    /// Whether the MESSAGE says `redelivered:true`; on deliveries given back to
    /// [`Backend::settle`](crate::Backend::settle) for requeueing: whether the client saw it.
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// The backend's token given to [`Subscriber::offer`].
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// Whether the session handed this delivery's MESSAGE to the transport (the client saw
    /// it). On deliveries given back to [`Backend::settle`](crate::Backend::settle) for
    /// requeueing, a backend counts a delivery attempt only if this is set (a message still
    /// queued in the outbox when its session closed was never seen).
    pub fn shown(&self) -> bool {
        self.shown
    }

    pub(crate) fn set_redelivered(&mut self, r: bool) {
        self.redelivered = r;
    }

    pub(crate) fn set_shown(&mut self) {
        self.shown = true;
    }
}
