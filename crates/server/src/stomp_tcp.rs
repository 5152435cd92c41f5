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
use crate::transport::{FrameSink, ReadSizer, earliest, pull, sleep_until_opt};
use switchboard_broker::EncodedFrame;

/// Most buffers handed to one vectored write.
const MAX_IOVECS: usize = 64;

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
                    conn.receive(&mut buf, Instant::now(), &shared.config);
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
}
