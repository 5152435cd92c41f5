//! The per-session outbound queue: bounded (frames and bytes), fed by any thread without
//! blocking (one short critical section per push), drained by the session's owner a batch at a
//! time; plus the wake-up signal and the encoded frames it yields.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use crate::config::SlowConsumerPolicy;
use crate::subscription::{Delivery, OfferError};

/// What an [`EncodedFrame`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameKind {
    /// `CONNECTED`.
    Connected,
    /// `MESSAGE`.
    Message,
    /// `RECEIPT`.
    Receipt,
    /// `ERROR` (the session closes after it).
    Error,
    /// A heart-beat: a single EOL.
    HeartBeat,
}

/// One complete outbound STOMP frame (or heart-beat), already encoded for the session's version,
/// as up to four shared pieces to write in order (e.g. a MESSAGE's shared head, its per-subscriber
/// headers, the body — the very `Bytes` the publisher sent — and the NUL).
///
/// Write it with vectored IO (`chunks`) or copy it into a write buffer (`write_to`).
#[derive(Clone, Debug)]
pub struct EncodedFrame {
    parts: [Bytes; 4],
    len: usize,
    kind: FrameKind,
}

impl EncodedFrame {
    pub(crate) fn new(kind: FrameKind, parts: [Bytes; 4]) -> EncodedFrame {
        let len = parts.iter().map(Bytes::len).sum();
        EncodedFrame { parts, len, kind }
    }

    pub(crate) fn single(kind: FrameKind, bytes: Bytes) -> EncodedFrame {
        EncodedFrame::new(kind, [bytes, Bytes::new(), Bytes::new(), Bytes::new()])
    }

    pub(crate) fn heart_beat() -> EncodedFrame {
        EncodedFrame::single(FrameKind::HeartBeat, Bytes::from_static(b"\n"))
    }

    /// What frame this is.
    pub fn kind(&self) -> FrameKind {
        self.kind
    }

    /// Total encoded length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty (never, for frames the session produces).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The non-empty pieces, in write order.
    pub fn chunks(&self) -> impl Iterator<Item = &Bytes> {
        self.parts.iter().filter(|b| !b.is_empty())
    }

    /// Appends the whole frame to `dst`.
    pub fn write_to(&self, dst: &mut BytesMut) {
        dst.reserve(self.len);
        for c in self.chunks() {
            dst.extend_from_slice(c);
        }
    }

    /// The frame as one contiguous `Bytes` (no copy when it is a single piece).
    pub fn to_bytes(&self) -> Bytes {
        let mut non_empty = self.chunks();
        match (non_empty.next(), non_empty.next()) {
            (None, _) => Bytes::new(),
            (Some(only), None) => only.clone(),
            _ => {
                let mut b = BytesMut::with_capacity(self.len);
                self.write_to(&mut b);
                b.freeze()
            }
        }
    }
}

/// Wake-up state shared by a session's producers and the task that drains it.
#[derive(Debug, Default)]
struct Signal {
    pending: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    /// Marks "something changed"; takes the waker lock only on the idle → pending transition, so a
    /// burst of deliveries costs one wake-up.
    fn notify(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let waker = self.waker.lock().map(|mut w| w.take()).unwrap_or(None);
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.pending.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        if let Ok(mut slot) = self.waker.lock() {
            match &*slot {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        if self.pending.swap(false, Ordering::AcqRel) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// A cloneable handle the transport awaits to learn that a session has something to send or
/// must close (new deliveries, slow-consumer kill, broker shutdown, a control frame queued).
///
/// Wake-ups may be spurious: after one, call `Session::poll_transmit` until `None` and check
/// `Session::is_closed`. Notifications are sticky: one that arrives while nobody waits completes
/// the next `notified()` at once.
#[derive(Clone, Debug)]
pub struct OutboundSignal {
    signal: Arc<Signal>,
}

impl OutboundSignal {
    pub(crate) fn new() -> OutboundSignal {
        OutboundSignal {
            signal: Arc::new(Signal::default()),
        }
    }

    /// Wakes whoever awaits `notified()`.
    pub(crate) fn notify(&self) {
        self.signal.notify();
    }

    /// A future that completes on the next notification (or at once if one is pending).
    pub fn notified(&self) -> Notified {
        Notified {
            signal: self.signal.clone(),
        }
    }

    /// Non-async check-and-clear: whether a notification was pending.
    pub fn take_pending(&self) -> bool {
        self.signal.pending.swap(false, Ordering::AcqRel)
    }
}

/// Future returned by [`OutboundSignal::notified`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Notified {
    signal: Arc<Signal>,
}

impl Future for Notified {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.signal.poll(cx)
    }
}

/// The producer side of a session's outbound queue, shared by its subscriptions.
#[derive(Debug)]
pub(crate) struct Outbox {
    pub(crate) session_id: ByteString,
    /// Deliveries not yet taken by the session. A locked `VecDeque` rather than a channel: it
    /// holds no memory while empty (an idle session's queue costs nothing, where a channel kept
    /// its ~0.5 KiB of state, plus a ~1.2 KiB block once a message had passed), producers hold
    /// the lock for one `push_back`, and the session takes everything queued in one swap.
    queue: Mutex<VecDeque<Delivery>>,
    frames: AtomicUsize,
    bytes: AtomicUsize,
    max_frames: usize,
    max_bytes: usize,
    policy: SlowConsumerPolicy,
    overflowed: AtomicBool,
    closed: AtomicBool,
    /// Set when a queue offer was refused for lack of room ([`Outbox::queue_room`]); the
    /// session clears it once it has drained to the low-water mark and asks the backend to
    /// resume its queue subscriptions.
    queue_starved: AtomicBool,
    /// Producers between their `closed` check and the end of their send: `close` waits for
    /// them, so nothing can land in the channel after the session's final drain.
    pushing: AtomicUsize,
    pub(crate) signal: OutboundSignal,
}

impl Outbox {
    pub(crate) fn new(
        session_id: ByteString,
        max_frames: usize,
        max_bytes: usize,
        policy: SlowConsumerPolicy,
    ) -> Arc<Outbox> {
        let outbox = Outbox {
            session_id,
            queue: Mutex::new(VecDeque::new()),
            frames: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            max_frames: max_frames.max(1),
            max_bytes: max_bytes.max(1),
            policy,
            overflowed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            queue_starved: AtomicBool::new(false),
            pushing: AtomicUsize::new(0),
            signal: OutboundSignal::new(),
        };
        Arc::new(outbox)
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Delivery>> {
        // A panic while pushing cannot leave the deque inconsistent: keep going.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves every queued delivery, in order, to the back of `into` (the session's own
    /// queue). When `into` is empty the two buffers are swapped, so no delivery is copied and
    /// the producers go on with `into`'s spare capacity; an emptied queue gives its memory
    /// back. The deliveries are still counted against the limits until [`taken`](Self::taken).
    pub(crate) fn take_queued(&self, into: &mut VecDeque<Delivery>) {
        let mut queue = self.lock_queue();
        if queue.is_empty() {
            if queue.capacity() > 0 {
                *queue = VecDeque::new();
            }
            return;
        }
        if into.is_empty() {
            std::mem::swap(into, &mut *queue);
        } else {
            into.append(&mut queue);
        }
    }

    /// Queues `delivery` if it fits; never blocks (the queue's lock is held for one
    /// `push_back`; the wake-up's only on the idle → busy transition).
    pub(crate) fn push(&self, delivery: Delivery) -> Result<(), (OfferError, Delivery)> {
        self.pushing.fetch_add(1, Ordering::SeqCst);
        let result = self.push_inner(delivery);
        self.pushing.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn push_inner(&self, delivery: Delivery) -> Result<(), (OfferError, Delivery)> {
        if let Err(e) = self.admit(delivery.message().size_hint()) {
            return Err((e, delivery));
        }
        self.send_admitted(delivery)
    }

    /// Charges one frame of `size` bytes against the limits, or refuses it (and, under the
    /// disconnect policy, marks the session overflowed).
    fn admit(&self, size: usize) -> Result<(), OfferError> {
        if self.closed.load(Ordering::SeqCst) || self.overflowed.load(Ordering::Acquire) {
            return Err(OfferError::Closed);
        }
        let frames = self.frames.fetch_add(1, Ordering::AcqRel);
        let bytes = self.bytes.fetch_add(size, Ordering::AcqRel);
        // One message larger than the byte limit still goes through an empty queue.
        let too_big = bytes > 0 && bytes + size > self.max_bytes;
        if frames >= self.max_frames || too_big {
            self.frames.fetch_sub(1, Ordering::AcqRel);
            self.bytes.fetch_sub(size, Ordering::AcqRel);
            if self.policy == SlowConsumerPolicy::Disconnect {
                self.overflowed.store(true, Ordering::Release);
                self.signal.notify();
            }
            return Err(OfferError::Full);
        }
        Ok(())
    }

    /// Whether a queue message of `size` bytes may be queued now: queue traffic stops at half of
    /// the outbound limits, so a backlog drains at the pace the client reads (the queue keeps
    /// what does not fit) and leaves the other half for topic messages. Only a client that stops
    /// reading while topics keep coming meets the slow-consumer policy.
    pub(crate) fn queue_room(&self, size: usize) -> bool {
        let frames = self.frames.load(Ordering::SeqCst);
        let bytes = self.bytes.load(Ordering::SeqCst);
        frames < self.max_frames / 2 && (bytes == 0 || bytes + size <= self.max_bytes / 2)
    }

    /// Records that a queue offer was refused by [`queue_room`](Self::queue_room). Returns
    /// whether there is room after all (the session drained in between): the caller then goes
    /// ahead, else the session will see the mark when it drains ([`take_starved`](Self::take_starved)).
    pub(crate) fn mark_starved(&self, size: usize) -> bool {
        self.queue_starved.store(true, Ordering::SeqCst);
        // Checked again after the mark: a session that drained before it was set is seen here,
        // one that drains after it sees the mark.
        self.queue_room(size)
    }

    /// Clears and returns the starved mark once the queue is down to a quarter of its limits
    /// (the low-water mark), so a resumed queue refills in bursts rather than one by one.
    pub(crate) fn take_starved(&self) -> bool {
        if !self.queue_starved.load(Ordering::SeqCst) {
            return false;
        }
        let frames = self.frames.load(Ordering::SeqCst);
        let bytes = self.bytes.load(Ordering::SeqCst);
        if frames > self.max_frames / 4 || bytes > self.max_bytes / 4 {
            return false;
        }
        self.queue_starved.swap(false, Ordering::SeqCst)
    }

    /// Reserves room for a message a subscription holds back (a fan-out subscription at its
    /// prefetch limit): it counts against the outbound limits like a queued frame.
    pub(crate) fn reserve(&self, size: usize) -> Result<(), OfferError> {
        self.pushing.fetch_add(1, Ordering::SeqCst);
        let r = self.admit(size);
        self.pushing.fetch_sub(1, Ordering::SeqCst);
        r
    }

    /// Gives back a reservation whose message will never be queued.
    pub(crate) fn unreserve(&self, size: usize) {
        self.frames.fetch_sub(1, Ordering::AcqRel);
        self.bytes.fetch_sub(size, Ordering::AcqRel);
    }

    /// Queues a delivery whose room was reserved with [`reserve`](Self::reserve).
    pub(crate) fn push_reserved(&self, delivery: Delivery) -> Result<(), (OfferError, Delivery)> {
        self.pushing.fetch_add(1, Ordering::SeqCst);
        let result = if self.closed.load(Ordering::SeqCst) {
            self.unreserve(delivery.message().size_hint());
            Err((OfferError::Closed, delivery))
        } else {
            self.send_admitted(delivery)
        };
        self.pushing.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn send_admitted(&self, delivery: Delivery) -> Result<(), (OfferError, Delivery)> {
        // `close` waits for pushes past their `closed` check (`pushing`), so a delivery queued
        // here is always seen by the session's final drain.
        self.lock_queue().push_back(delivery);
        self.signal.notify();
        Ok(())
    }

    /// Accounts for a delivery taken off the queue.
    pub(crate) fn taken(&self, delivery: &Delivery) {
        self.frames.fetch_sub(1, Ordering::AcqRel);
        self.bytes
            .fetch_sub(delivery.message().size_hint(), Ordering::AcqRel);
    }

    pub(crate) fn queued_frames(&self) -> usize {
        self.frames.load(Ordering::Acquire)
    }

    pub(crate) fn queued_bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// Refuses further pushes and waits for pushes already past their check (they never block,
    /// so this is a few instructions' wait at most). Afterwards the queue only shrinks.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        while self.pushing.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(crate) fn max_frames(&self) -> usize {
        self.max_frames
    }

    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn signal_is_sticky_and_coalesces() {
        let s = OutboundSignal::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = s.notified();
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        s.notify();
        s.notify();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_ready());
        assert!(Pin::new(&mut s.notified()).poll(&mut cx).is_pending());
        s.notify();
        assert!(Pin::new(&mut s.notified()).poll(&mut cx).is_ready());
    }
}
