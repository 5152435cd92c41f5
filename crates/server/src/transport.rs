//! What every STOMP transport loop shares (TCP/TLS in `stomp_tcp`, WebSocket in `websocket`,
//! SockJS in `sockjs`): reads sized to the traffic, idle buffers given back, the flow control
//! that takes frames off the broker only while the transport is below its high-water mark, and
//! the timer helpers of the loops' `select!`.

use bytes::BytesMut;
use switchboard_broker::EncodedFrame;
use tokio::time::Instant;

use crate::session::StompConnection;

/// Smallest read: what an idle connection keeps reserved while it waits.
pub(crate) const READ_MIN: usize = 512;
/// Largest read: what a connection streaming at full speed reads at once.
const READ_MAX: usize = 64 * 1024;

/// Sizes reads to the traffic, so that an idle connection holds [`READ_MIN`] bytes of read
/// buffer and a busy one reads up to [`READ_MAX`] at once.
///
/// A read that fills all the room it had means more is waiting: the next one gets twice the
/// room. A read that did not fill it sizes the next one to what it brought (rounded up to a
/// power of two), so the buffer kept while waiting shrinks back as soon as traffic calms down.
#[derive(Debug)]
pub(crate) struct ReadSizer {
    next: usize,
}

impl Default for ReadSizer {
    fn default() -> Self {
        ReadSizer { next: READ_MIN }
    }
}

impl ReadSizer {
    /// Makes room for the next read; returns the room (pass it to [`ReadSizer::after_read`]).
    pub(crate) fn before_read(&self, buf: &mut BytesMut) -> usize {
        if buf.is_empty() && buf.capacity() > 2 * self.next {
            // Drained, and bigger than the next read needs: give the memory back.
            *buf = BytesMut::new();
        }
        buf.reserve(self.next);
        buf.capacity() - buf.len()
    }

    /// True while reads are at their smallest size (the connection is quiet).
    pub(crate) fn is_min(&self) -> bool {
        self.next == READ_MIN
    }

    /// Records that a read given `room` bytes brought `n`.
    pub(crate) fn after_read(&mut self, n: usize, room: usize) {
        self.next = if n >= room {
            room.saturating_mul(2)
        } else {
            n.next_power_of_two()
        }
        .clamp(READ_MIN, READ_MAX);
    }
}

/// Drops a buffer's allocation once it holds no pending bytes, whatever its size (for
/// connections that are about to wait: an idle connection then keeps no buffer at all).
///
/// Capacity is not the test: a buffer whose every byte was split off (a frame taken to the
/// end of the allocation) has none left, yet still holds the allocation, which then lives as
/// long as the connection (~0.3 KiB per idle WebSocket connection, its last message in the read
/// buffer and its last frame in the STOMP buffer).
pub(crate) fn release_if_empty(buf: &mut BytesMut) {
    if buf.is_empty() {
        *buf = BytesMut::new();
    }
}

/// Bytes already taken from the session and waiting for the socket. The session is polled only
/// while this is below the mark, so a client that does not read leaves its messages in the
/// broker's bounded outbound queue, where the slow-consumer policy sees them.
pub(crate) const WRITE_HIGH_WATER: usize = 64 * 1024;

/// Where polled frames go: the TCP write queue, the WebSocket connection's out queue, or a
/// SockJS session's outbound queue.
pub(crate) trait FrameSink {
    /// Queues one encoded frame.
    fn push_frame(&mut self, f: &EncodedFrame);
    /// Bytes queued and not yet written.
    fn queued_bytes(&mut self) -> usize;
}

/// Moves the frames that fit from a session to its transport, so they never pile up in the server.
///
/// Frames are polled only while the sink holds less than [`WRITE_HIGH_WATER`]; beyond that the
/// broker's bounded outbound queue fills up and its slow-consumer policy decides. It
/// then only asks the session to apply that decision ([`StompConnection::refresh`]), which
/// takes no frame off the queue; the broker wakes the connection when it overflows.
/// Returns `true` when the broker dropped the session as a slow consumer.
pub(crate) fn pull(conn: &mut StompConnection, now: Instant, sink: &mut impl FrameSink) -> bool {
    while sink.queued_bytes() < WRITE_HIGH_WATER {
        match conn.poll_transmit(now) {
            Some(f) => sink.push_frame(&f),
            None => return conn.dropped_as_slow_consumer(),
        }
    }
    conn.refresh();
    conn.dropped_as_slow_consumer()
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Sleeps until `t`, or forever without a deadline (a `select!` branch that never fires).
pub(crate) async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grow_while_they_fill_and_shrink_when_traffic_calms() {
        let mut s = ReadSizer::default();
        let mut buf = BytesMut::new();
        let room = s.before_read(&mut buf);
        assert_eq!(room, READ_MIN, "an idle connection reserves the minimum");
        // A stream: every read fills its room, up to the maximum.
        let mut room = room;
        for _ in 0..12 {
            s.after_read(room, room);
            buf.clear();
            room = s.before_read(&mut buf);
        }
        assert_eq!(room, READ_MAX);
        assert!(buf.capacity() <= 2 * READ_MAX);
        // The stream stops: a small read, then the drained buffer is released down to the minimum.
        s.after_read(40, room);
        buf.clear();
        let room = s.before_read(&mut buf);
        assert_eq!(room, READ_MIN);
        assert!(buf.capacity() <= 2 * READ_MIN, "{}", buf.capacity());
        // A buffer holding a partial frame is never dropped.
        let mut s = ReadSizer::default();
        let mut buf = BytesMut::with_capacity(1 << 20);
        buf.extend_from_slice(b"SEND\n");
        s.after_read(5, 1 << 20);
        s.before_read(&mut buf);
        assert_eq!(&buf[..], b"SEND\n");
    }

    #[test]
    fn an_emptied_buffer_lets_go_of_its_allocation() {
        // Every byte split off: no capacity left, but still a handle on the allocation.
        let mut buf = BytesMut::from(&b"SEND\n\n\0"[..]);
        let frame = buf.split_to(buf.len()).freeze();
        assert_eq!(buf.capacity(), 0);
        assert!(
            !frame.is_unique(),
            "the emptied buffer still shares the allocation"
        );
        release_if_empty(&mut buf);
        assert!(
            frame.is_unique(),
            "released: the frame is the allocation's only owner"
        );
        // Pending bytes stay.
        let mut buf = BytesMut::from(&b"SEN"[..]);
        release_if_empty(&mut buf);
        assert_eq!(&buf[..], b"SEN");
    }
}
