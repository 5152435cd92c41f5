//! STOMP over a byte stream (plain TCP or TLS): read → parser → broker session → batched writes.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::debug;

use crate::server::{ConnectionSlot, Shared};
use crate::session::StompConnection;
use switchboard_broker::EncodedFrame;

/// Smallest read: what an idle connection keeps reserved while it waits.
const READ_MIN: usize = 512;
/// Largest read: what a connection streaming at full speed reads at once.
const READ_MAX: usize = 64 * 1024;
/// A drained buffer bigger than this is replaced by a fresh small one ([`shrink_idle`]).
const IDLE_BUFFER_MAX: usize = 16 * 1024;

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
/// Most buffers handed to one vectored write.
const MAX_IOVECS: usize = 64;

/// Releases a large read buffer once it holds no pending bytes.
pub(crate) fn shrink_idle(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > IDLE_BUFFER_MAX {
        *buf = BytesMut::new();
    }
}

/// Bytes already taken from the session and waiting for the socket. The session is polled only
/// while this is below the mark, so a client that does not read leaves its messages in the
/// broker's bounded outbound queue, where the slow-consumer policy sees them.
pub(crate) const WRITE_HIGH_WATER: usize = 64 * 1024;

/// Frames waiting to be written, written with vectored writes.
#[derive(Default)]
pub(crate) struct WriteQueue {
    chunks: std::collections::VecDeque<Bytes>,
    len: usize,
}

impl WriteQueue {
    pub(crate) fn push(&mut self, b: &Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.chunks.push_back(b.clone());
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Writes what one vectored write takes; returns the number of bytes written.
    async fn write_some<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> std::io::Result<usize> {
        // The slices are built inside each poll, on the stack: no allocation per write, and
        // nothing held in the connection's task while it waits.
        let n = std::future::poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut k = 0;
            for (slot, chunk) in slices.iter_mut().zip(self.chunks.iter()) {
                *slot = IoSlice::new(chunk);
                k += 1;
            }
            std::pin::Pin::new(&mut *w).poll_write_vectored(cx, &slices[..k])
        })
        .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        self.advance(n);
        Ok(n)
    }

    fn advance(&mut self, mut n: usize) {
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if front.len() <= n {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}

/// Where polled frames go: the TCP write queue, or the WebSocket connection's out queue.
pub(crate) trait FrameSink {
    /// Queues one encoded frame.
    fn push_frame(&mut self, f: &EncodedFrame);
    /// Bytes queued and not yet written.
    fn queued_bytes(&mut self) -> usize;
}

impl FrameSink for WriteQueue {
    fn push_frame(&mut self, f: &EncodedFrame) {
        for c in f.chunks() {
            self.push(c);
        }
    }
    fn queued_bytes(&mut self) -> usize {
        self.len
    }
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

/// Serves one STOMP connection over `io` until either side closes it.
pub(crate) async fn serve<S>(io: S, peer: SocketAddr, shared: Arc<Shared>, slot: ConnectionSlot)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let transport = slot.transport();
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut conn = StompConnection::new(
        &shared.broker,
        &shared.config,
        transport,
        peer,
        None,
        Instant::now(),
    );
    let signal = conn.signal();
    let mut buf = BytesMut::new();
    let mut sizer = ReadSizer::default();
    let mut queue = WriteQueue::default();
    let mut shutdown = shared.shutdown_signal();
    let mut shutting_down = false;
    let mut read_open = true;
    // Set once the session is over: the time left to flush its last frames.
    let mut flush_deadline: Option<Instant> = None;
    let grace = shared.config.limits.shutdown_grace();
    loop {
        let now = Instant::now();
        if pull(&mut conn, now, &mut queue) {
            // Dropped as a slow consumer. What is queued, then its ERROR, get the grace period to
            // go out: a client that reads slowly learns why it was dropped, and one that reads
            // nothing is closed when the grace runs out (its memory stays bounded meanwhile).
            flush_deadline.get_or_insert(now + grace);
        }
        if conn.is_closed() {
            if queue.is_empty() {
                break;
            }
            flush_deadline.get_or_insert(now + grace);
        }
        let timer = earliest(conn.poll_timeout(), flush_deadline);
        let want_read = read_open && !conn.is_closed();
        let room = if want_read {
            sizer.before_read(&mut buf)
        } else {
            0
        };
        tokio::select! {
            r = rd.read_buf(&mut buf), if want_read => match r {
                Ok(0) => {
                    read_open = false;
                    if !conn.is_closing() {
                        debug!(%peer, session = conn.id(), "peer closed the connection");
                        break;
                    }
                }
                Ok(n) => {
                    sizer.after_read(n, room);
                    shared.metrics.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    conn.receive(&mut buf, Instant::now());
                }
                Err(e) => {
                    debug!(%peer, session = conn.id(), error = %e, "read failed");
                    break;
                }
            },
            r = queue.write_some(&mut wr), if !queue.is_empty() => match r {
                Ok(n) => {
                    shared.metrics.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    debug!(%peer, session = conn.id(), error = %e, "write failed");
                    break;
                }
            },
            _ = signal.notified() => {}
            _ = sleep_until_opt(timer) => {
                let now = Instant::now();
                if flush_deadline.is_some_and(|d| d <= now) {
                    debug!(%peer, session = conn.id(), "could not flush the last frames in time");
                    break;
                }
                conn.handle_timeout(now);
            }
            _ = shutdown.wait(), if !shutting_down => {
                // The broker queues an ERROR after what is already queued; bound the wait.
                shutting_down = true;
                flush_deadline = Some(Instant::now() + grace);
            }
        }
    }
    let lingering = read_open && conn.is_closed();
    conn.transport_closed();
    drop(conn);
    let _ = tokio::time::timeout(Duration::from_millis(200), wr.shutdown()).await;
    if lingering {
        // Closing with unread input makes the kernel send RST, which can destroy the ERROR or
        // RECEIPT just written before the client reads it. Read and discard briefly instead.
        let _ = tokio::time::timeout(LINGER, async {
            let mut discarded = 0;
            let mut sink = [0u8; 1024];
            while discarded < LINGER_MAX_BYTES {
                match rd.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => discarded += n,
                }
            }
        })
        .await;
    }
    drop(slot);
}

/// How long a closing connection keeps reading (and discarding) after its last frame.
const LINGER: Duration = Duration::from_millis(500);
/// How much a closing connection reads (and discards) at most.
const LINGER_MAX_BYTES: usize = 64 * 1024;

pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

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
    fn write_queue_advances_across_chunks() {
        let mut q = WriteQueue::default();
        q.push(&Bytes::from_static(b"abc"));
        q.push(&Bytes::new());
        q.push(&Bytes::from_static(b"defg"));
        assert_eq!(q.len, 7);
        q.advance(4);
        assert_eq!(q.len, 3);
        assert_eq!(q.chunks.len(), 1);
        assert_eq!(&q.chunks[0][..], b"efg");
        q.advance(3);
        assert!(q.is_empty());
    }

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
    fn idle_buffers_shrink() {
        let mut b = BytesMut::with_capacity(1 << 20);
        shrink_idle(&mut b);
        assert_eq!(b.capacity(), 0);
        let mut b = BytesMut::with_capacity(1 << 20);
        b.extend_from_slice(b"x");
        shrink_idle(&mut b);
        assert!(b.capacity() >= 1 << 20);
    }
}
