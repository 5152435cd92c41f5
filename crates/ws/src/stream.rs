//! The tokio adapter: [`WebSocketStream`] over any `AsyncRead + AsyncWrite` (feature `tokio`).
//!
//! It only moves bytes and timers: reads into a `BytesMut` fed to the sans-IO [`Connection`],
//! writes the connection's queue with vectored writes. The send queue is bounded by
//! [`StreamConfig::max_send_buffer`]: sending waits for the transport instead of growing it, and
//! reading pauses while automatic replies (pongs) cannot be written — a ping flood cannot grow
//! memory. Handshake, idle and close timeouts guard against slow or silent peers.
//!
//! [`WebSocketStream::split`] gives a reader and a writer usable from different tasks; automatic
//! pongs and the close reply are written by whichever half is active.

use crate::connection::{CloseState, Config, Connection};
use crate::handshake::{
    ClientAccepted, ClientRequest, HandshakeError, RequestParser, ServerConfig, UpgradeRequest,
};
use crate::{CloseCode, DeflateParams, Error, Message, Role};
use bytes::{Buf, BufMut, BytesMut};
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

/// Settings of a [`WebSocketStream`].
#[derive(Debug, Clone, Copy)]
pub struct StreamConfig {
    /// Protocol settings: limits, auto-pong, local deflate settings.
    pub connection: Config,
    /// Most bytes queued for sending before `send` waits (default 1 MiB). One message larger than
    /// this is still accepted when the queue is empty.
    pub max_send_buffer: usize,
    /// Read size (default 16 KiB); reads grow geometrically, bounded by data received, for large
    /// frames.
    pub read_buffer_size: usize,
    /// Time allowed for the opening handshake (default 10 s).
    pub handshake_timeout: Option<Duration>,
    /// Fail the connection (1001) after this long without receiving a byte (default: none).
    pub idle_timeout: Option<Duration>,
    /// Time allowed for the close handshake once started (default 5 s).
    pub close_timeout: Option<Duration>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            connection: Config::default(),
            max_send_buffer: 1 << 20,
            read_buffer_size: 16 << 10,
            handshake_timeout: Some(Duration::from_secs(10)),
            idle_timeout: None,
            close_timeout: Some(Duration::from_secs(5)),
        }
    }
}

impl StreamConfig {
    /// Sets the protocol settings.
    pub fn connection(mut self, c: Config) -> Self {
        self.connection = c;
        self
    }

    /// Sets the send buffer bound.
    pub fn max_send_buffer(mut self, n: usize) -> Self {
        self.max_send_buffer = n;
        self
    }

    /// Sets the idle timeout.
    pub fn idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Sets the handshake timeout.
    pub fn handshake_timeout(mut self, d: Option<Duration>) -> Self {
        self.handshake_timeout = d;
        self
    }

    /// Sets the close timeout.
    pub fn close_timeout(mut self, d: Option<Duration>) -> Self {
        self.close_timeout = d;
        self
    }
}

/// Which half registered interest in write readiness.
#[derive(Clone, Copy)]
enum Slot {
    Reader = 0,
    Writer = 1,
}

/// Wakes both halves when the transport becomes writable (only one waker is kept by it).
#[derive(Default)]
struct WriteWakers {
    slots: Mutex<[Option<Waker>; 2]>,
}

impl WriteWakers {
    fn register(&self, slot: Slot, w: &Waker) {
        let mut s = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match &s[slot as usize] {
            Some(old) if old.will_wake(w) => {}
            _ => s[slot as usize] = Some(w.clone()),
        }
    }
}

impl Wake for WriteWakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let taken: Vec<Waker> = {
            let mut s = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            s.iter_mut().filter_map(Option::take).collect()
        };
        for w in taken {
            w.wake();
        }
    }
}

struct Core<S> {
    io: S,
    conn: Connection,
    rbuf: BytesMut,
    /// `rbuf` grew past twice the read size (for large frames): released when idle.
    rbuf_grown: bool,
    /// The last message returned was at least the read size: a grown buffer of at most
    /// [`KEEP_GROWN_READS`] read sizes is kept while waiting, since the next message is likely
    /// as large (releasing it would make every large message regrow it, copying what had
    /// arrived: 10 x 64 KiB echo, 25.9k -> 10.0k instructions per round trip).
    last_large: bool,
    cfg: StreamConfig,
    protocol: Option<String>,
    finished: bool,
    shutdown: bool,
    pending: Option<Result<Message, Error>>,
    idle: Option<Pin<Box<Sleep>>>,
    close_timer: Option<Pin<Box<Sleep>>>,
    wakers: Option<Arc<WriteWakers>>,
}

const MAX_IOV: usize = 64;

/// Slices of the small iovec array for queues of at most this many chunks.
const FEW_IOV: usize = 4;

/// A grown read buffer up to this many read sizes (256 KiB by default) is kept while waiting
/// after a large message; a bigger one is always given back when the connection goes quiet.
const KEEP_GROWN_READS: usize = 16;

impl<S: AsyncRead + AsyncWrite + Unpin> Core<S> {
    fn poll_io_write(&mut self, cx: &mut Context<'_>, slot: Slot) -> Poll<io::Result<()>> {
        match self.wakers.clone() {
            Some(w) => {
                w.register(slot, cx.waker());
                let waker = Waker::from(w);
                let mut shared_cx = Context::from_waker(&waker);
                self.write_out(&mut shared_cx)
            }
            None => self.write_out(cx),
        }
    }

    fn write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.conn.out().is_empty() {
            let n = {
                let out = self.conn.out();
                if let Some(bytes) = out.contiguous() {
                    // One slice (small frames): a plain write, no iovec array to fill.
                    ready!(Pin::new(&mut self.io).poll_write(cx, bytes))?
                } else if out.chunk_count() <= FEW_IOV {
                    // A few slices (a large message's header and payload): a small array to
                    // fill, not 64 entries (~130 instructions per write at 10 x 64 KiB).
                    let mut slices = [IoSlice::new(&[]); FEW_IOV];
                    let k = out.io_slices(&mut slices);
                    ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..k]))?
                } else {
                    let mut slices = [IoSlice::new(&[]); MAX_IOV];
                    let k = out.io_slices(&mut slices);
                    ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..k]))?
                }
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.conn.out().consume(n);
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn arm_close_timer(&mut self) {
        if self.close_timer.is_none()
            && let Some(d) = self.cfg.close_timeout
        {
            self.close_timer = Some(Box::pin(tokio::time::sleep(d)));
        }
    }

    fn close_timer_fired(&mut self, cx: &mut Context<'_>) -> bool {
        self.arm_close_timer();
        self.close_timer
            .as_mut()
            .is_some_and(|t| t.as_mut().poll(cx).is_ready())
    }

    /// The checks `poll_recv` makes before decoding unless the connection is open with nothing
    /// queued and nothing pending: writes what is queued (automatic pongs, the close reply),
    /// returns a pending message or error once flushed, closes the transport after the close
    /// handshake, and enforces the close timeout. `None`: go on decoding.
    fn poll_unsettled(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Option<Poll<Option<Result<Message, Error>>>> {
        if !self.conn.out().is_empty()
            && let Poll::Ready(Err(e)) = self.poll_io_write(cx, Slot::Reader)
        {
            self.finished = true;
            return Some(Poll::Ready(Some(Err(Error::Io(e)))));
        }
        let flushed = self.conn.out().is_empty();
        if self.pending.is_some() || self.conn.state() == CloseState::Closed {
            if !flushed {
                if self.close_timer_fired(cx) {
                    self.finished = true;
                    return Some(Poll::Ready(Some(Err(Error::Timeout("close")))));
                }
                return Some(Poll::Pending);
            }
            if let Some(r) = self.pending.take() {
                return Some(Poll::Ready(Some(r)));
            }
            if !self.shutdown {
                // Best effort: the peer may already be gone.
                if Pin::new(&mut self.io).poll_shutdown(cx).is_pending() {
                    return Some(Poll::Pending);
                }
                self.shutdown = true;
            }
            self.finished = true;
            return Some(Poll::Ready(None));
        }
        if self.conn.state() == CloseState::CloseSent && self.close_timer_fired(cx) {
            self.finished = true;
            return Some(Poll::Ready(Some(Err(Error::Timeout("close")))));
        }
        None
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            // The common case skips `poll_unsettled`: open, nothing queued, nothing pending.
            let settled = self.conn.state() == CloseState::Open
                && self.conn.out().is_empty()
                && self.pending.is_none();
            if !settled && let Some(r) = self.poll_unsettled(cx) {
                return r;
            }
            // An empty buffer decodes nothing: read first (as before every read, and after every
            // message when nothing followed it).
            let decoded = if self.rbuf.is_empty() {
                Ok(None)
            } else {
                self.conn.receive(&mut self.rbuf)
            };
            match decoded {
                Ok(Some(msg)) => {
                    if self.conn.state() == CloseState::Closed {
                        self.pending = Some(Ok(msg));
                        continue;
                    }
                    self.last_large = msg.payload().len() >= self.cfg.read_buffer_size;
                    return Poll::Ready(Some(Ok(msg)));
                }
                Ok(None) => {}
                Err(e) => {
                    self.pending = Some(Err(e));
                    continue;
                }
            }
            // Backpressure: do not read more while replies cannot be written.
            if self.conn.out().len() > self.cfg.max_send_buffer {
                return Poll::Pending;
            }
            // Room for the next read; inside a large frame, the read stops at the frame's end
            // (see `Decoder::reserve_read`: at most 64 bytes of a partial frame are ever moved).
            let max = (self.conn.decoder()).reserve_read(&mut self.rbuf, self.cfg.read_buffer_size);
            if self.rbuf.capacity() > 2 * self.cfg.read_buffer_size {
                self.rbuf_grown = true;
            }
            let mut dst = (&mut self.rbuf).limit(max);
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut dst) {
                Poll::Pending => {
                    let keep = self.last_large
                        && self.rbuf.capacity() <= KEEP_GROWN_READS * self.cfg.read_buffer_size;
                    if self.rbuf_grown && self.rbuf.is_empty() && !keep {
                        // Nothing to read and nothing buffered, after a small message or with a
                        // buffer grown past the bound: give it back instead of keeping it while
                        // the connection is idle.
                        self.rbuf = BytesMut::new();
                        self.rbuf_grown = false;
                    }
                    if let Some(t) = &mut self.idle
                        && t.as_mut().poll(cx).is_ready()
                    {
                        self.idle = None;
                        let e = Error::Timeout("idle");
                        self.conn.fail(&e);
                        self.pending = Some(Err(e));
                        continue;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => {
                    self.finished = true;
                    if self.conn.state() == CloseState::Closed {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(Error::Io(io::ErrorKind::UnexpectedEof.into()))));
                }
                Poll::Ready(Ok(_)) => {
                    if let (Some(t), Some(d)) = (&mut self.idle, self.cfg.idle_timeout) {
                        t.as_mut().reset(Instant::now() + d);
                    }
                }
                Poll::Ready(Err(e)) => {
                    self.finished = true;
                    return Poll::Ready(Some(Err(Error::Io(e))));
                }
            }
        }
    }

    fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        while self.conn.out().len() >= self.cfg.max_send_buffer {
            ready!(self.poll_io_write(cx, Slot::Writer))?;
        }
        if self.conn.state() != CloseState::Open {
            return Poll::Ready(Err(Error::Closed));
        }
        Poll::Ready(Ok(()))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ready!(self.poll_io_write(cx, Slot::Writer))?;
        Poll::Ready(Ok(()))
    }
}

/// An established WebSocket over an async transport `S`.
///
/// `recv` returns `None` once the close handshake finished (or the connection failed and its
/// error was returned). Methods are cancel-safe: dropping a `recv` future loses no data.
pub struct WebSocketStream<S> {
    core: Core<S>,
}

impl<S> std::fmt::Debug for WebSocketStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketStream")
            .field("conn", &self.core.conn)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketStream<S> {
    /// Wraps a transport whose handshake is already done. `read_buf` holds bytes already read
    /// past the handshake (may be empty); `deflate` the agreed permessage-deflate parameters.
    pub fn from_raw(
        io: S,
        role: Role,
        config: StreamConfig,
        deflate: Option<DeflateParams>,
        read_buf: BytesMut,
    ) -> Self {
        let idle = config.idle_timeout.map(|d| Box::pin(tokio::time::sleep(d)));
        WebSocketStream {
            core: Core {
                io,
                conn: Connection::new(role, config.connection, deflate),
                rbuf: read_buf,
                rbuf_grown: false,
                last_large: false,
                cfg: config,
                protocol: None,
                finished: false,
                shutdown: false,
                pending: None,
                idle,
                close_timer: None,
                wakers: None,
            },
        }
    }

    pub(crate) fn with_protocol(mut self, p: Option<String>) -> Self {
        self.core.protocol = p;
        self
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.core.protocol.as_deref()
    }

    /// The sans-IO connection (state, limits).
    pub fn connection(&self) -> &Connection {
        &self.core.conn
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        &self.core.io
    }

    /// Receives the next message; `None` after the close handshake or a returned error.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        poll_fn(|cx| self.core.poll_recv(cx)).await
    }

    /// Queues a message, waiting while the send buffer is full, without flushing.
    pub async fn feed(&mut self, msg: Message) -> Result<(), Error> {
        poll_fn(|cx| self.core.poll_send_ready(cx)).await?;
        self.core.conn.send(msg)
    }

    /// Queues a message and writes everything queued.
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        self.feed(msg).await?;
        self.flush().await
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.core.poll_flush(cx)).await
    }

    /// Closes: sends Close(`code`, `reason`), then reads (discarding data) until the peer's Close
    /// arrives or the close timeout expires, then shuts the transport down.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if self.core.conn.state() == CloseState::Open {
            self.core.conn.close(code, reason.as_bytes())?;
        }
        self.flush().await?;
        while let Some(r) = self.recv().await {
            r?;
        }
        Ok(())
    }

    /// Splits into a reader and a writer that can be used from different tasks.
    pub fn split(mut self) -> (WsReader<S>, WsWriter<S>) {
        self.core.wakers = Some(Arc::new(WriteWakers::default()));
        let shared = Arc::new(Mutex::new(self.core));
        (
            WsReader {
                core: shared.clone(),
            },
            WsWriter { core: shared },
        )
    }
}

type Shared<S> = Arc<Mutex<Core<S>>>;

fn lock<S>(m: &Mutex<Core<S>>) -> std::sync::MutexGuard<'_, Core<S>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The receiving half of a split [`WebSocketStream`]. It also writes automatic pongs and the
/// close reply.
pub struct WsReader<S> {
    core: Shared<S>,
}

/// The sending half of a split [`WebSocketStream`].
pub struct WsWriter<S> {
    core: Shared<S>,
}

impl<S> std::fmt::Debug for WsReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsReader")
    }
}

impl<S> std::fmt::Debug for WsWriter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsWriter")
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsReader<S> {
    /// Receives the next message (see [`WebSocketStream::recv`]).
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        poll_fn(|cx| lock(&self.core).poll_recv(cx)).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsWriter<S> {
    /// Queues a message, waiting while the send buffer is full, without flushing.
    pub async fn feed(&mut self, msg: Message) -> Result<(), Error> {
        let mut msg = Some(msg);
        poll_fn(|cx| {
            let mut c = lock(&self.core);
            ready!(c.poll_send_ready(cx))?;
            match msg.take() {
                Some(m) => Poll::Ready(c.conn.send(m)),
                None => Poll::Ready(Ok(())),
            }
        })
        .await
    }

    /// Queues a message and writes everything queued.
    pub async fn send(&mut self, msg: Message) -> Result<(), Error> {
        self.feed(msg).await?;
        self.flush().await
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| lock(&self.core).poll_flush(cx)).await
    }

    /// Sends Close(`code`, `reason`) and flushes; the reader sees the peer's Close and ends.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        lock(&self.core).conn.close(code, reason.as_bytes())?;
        self.flush().await
    }
}

async fn with_timeout<T>(
    d: Option<Duration>,
    f: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match d {
        Some(d) => tokio::time::timeout(d, f)
            .await
            .unwrap_or(Err(Error::Timeout("handshake"))),
        None => f.await,
    }
}

/// Server side: reads the upgrade request from `io`, answers 101 (or an error status) and
/// returns the stream and the request.
pub async fn accept<S>(
    io: S,
    server: &ServerConfig,
    config: StreamConfig,
) -> Result<(WebSocketStream<S>, UpgradeRequest), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    accept_with(io, server, config, |_| Ok(())).await
}

/// Like [`accept`], with `check` inspecting the request (path, `Origin`, cookies) before the
/// answer: `Err(status)` rejects it with that HTTP status.
pub async fn accept_with<S, F>(
    mut io: S,
    server: &ServerConfig,
    config: StreamConfig,
    check: F,
) -> Result<(WebSocketStream<S>, UpgradeRequest), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&UpgradeRequest) -> Result<(), u16>,
{
    let limits = config.connection.limits;
    let read = async {
        let mut buf = BytesMut::with_capacity(1024);
        let mut parser = RequestParser::new(limits);
        loop {
            match parser.parse(&buf) {
                Ok(Some((req, n))) => {
                    buf.advance(n);
                    return Ok((req, buf));
                }
                Ok(None) => {}
                Err(e) => return Err(e),
            }
            if buf.capacity() - buf.len() < 512 {
                buf.reserve(1024);
            }
            match io.read_buf(&mut buf).await {
                Ok(0) => return Err(HandshakeError::Eof),
                Ok(_) => {}
                Err(_) => return Err(HandshakeError::Eof),
            }
        }
    };
    let res = match config.handshake_timeout {
        Some(d) => tokio::time::timeout(d, read)
            .await
            .unwrap_or(Err(HandshakeError::Eof)),
        None => read.await,
    };
    let (req, rest) = match res {
        Ok(r) => r,
        Err(e) => {
            if e != HandshakeError::Eof {
                let _ = io.write_all(&e.response()).await;
                let _ = io.shutdown().await;
            }
            return Err(e.into());
        }
    };
    if let Err(status) = check(&req) {
        let reason = match status {
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            _ => "Rejected",
        };
        let resp =
            format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        let _ = io.write_all(resp.as_bytes()).await;
        let _ = io.shutdown().await;
        return Err(HandshakeError::UnexpectedStatus(status).into());
    }
    let acc = req.accept(server);
    with_timeout(config.handshake_timeout, async {
        io.write_all(&acc.response()).await?;
        io.flush().await?;
        Ok(())
    })
    .await?;
    let ws = WebSocketStream::from_raw(io, Role::Server, config, acc.deflate, rest)
        .with_protocol(acc.protocol);
    Ok((ws, req))
}

/// Client side: sends `req` over `io` and checks the answer.
pub async fn connect<S>(
    mut io: S,
    req: &ClientRequest,
    config: StreamConfig,
) -> Result<(WebSocketStream<S>, ClientAccepted), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limits = config.connection.limits;
    let (acc, rest) = with_timeout(config.handshake_timeout, async {
        io.write_all(&req.encode()).await?;
        io.flush().await?;
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            if let Some((acc, n)) = req.parse_response(&buf, &limits)? {
                buf.advance(n);
                return Ok((acc, buf));
            }
            if buf.capacity() - buf.len() < 512 {
                buf.reserve(1024);
            }
            if io.read_buf(&mut buf).await? == 0 {
                return Err(HandshakeError::Eof.into());
            }
        }
    })
    .await?;
    let ws = WebSocketStream::from_raw(io, Role::Client, config, acc.deflate, rest)
        .with_protocol(acc.protocol.clone());
    Ok((ws, acc))
}

/// Client side over TCP: connects to a `ws://host:port/path` URL (plain TCP only; for TLS,
/// connect your own stream and use [`connect`]). `deflate` offers permessage-deflate.
pub async fn connect_url(
    url: &str,
    config: StreamConfig,
    deflate: Option<crate::DeflateConfig>,
) -> Result<(WebSocketStream<tokio::net::TcpStream>, ClientAccepted), Error> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or(Error::InvalidInput("only ws:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let tcp = with_timeout(config.handshake_timeout, async {
        Ok(tokio::net::TcpStream::connect(&addr).await?)
    })
    .await?;
    let _ = tcp.set_nodelay(true);
    let mut req = ClientRequest::new(authority, path);
    if let Some(d) = deflate {
        req = req.deflate(d);
    }
    connect(tcp, &req, config).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Opcode;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn read_buffer_grown_for_a_large_frame_is_released_when_idle() {
        let (a, mut b) = tokio::io::duplex(64 << 10);
        let cfg = StreamConfig::default();
        let read_size = cfg.read_buffer_size;
        let mut ws = WebSocketStream::from_raw(a, Role::Server, cfg, None, BytesMut::new());
        let payload = vec![1u8; 1 << 20];
        let mut wire = Vec::new();
        crate::encode_frame_into(
            &mut wire,
            true,
            Opcode::Binary,
            &payload,
            Some([1, 2, 3, 4]),
        );
        let writer = tokio::spawn(async move { b.write_all(&wire).await.map(|()| b) });
        let m = ws.recv().await;
        assert!(matches!(&m, Some(Ok(Message::Binary(p))) if p[..] == payload[..]));
        drop(m);
        assert!(ws.core.rbuf_grown);
        // Nothing more arrives: `recv` waits, and the grown buffer is given back meanwhile.
        let r = tokio::time::timeout(Duration::from_millis(50), ws.recv()).await;
        assert!(r.is_err(), "recv returned {r:?}");
        assert!(!ws.core.rbuf_grown);
        assert!(ws.core.rbuf.capacity() <= read_size);
        // and the connection still works
        let mut b = writer.await.ok().and_then(Result::ok).expect("writer");
        let mut wire = Vec::new();
        crate::encode_frame_into(&mut wire, true, Opcode::Text, b"hi", Some([5, 6, 7, 8]));
        b.write_all(&wire).await.expect("write");
        assert_eq!(
            ws.recv().await.map(Result::ok),
            Some(Some(Message::text("hi")))
        );
    }
}
