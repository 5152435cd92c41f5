//! The shell around [`Session`]: the per-endpoint registry and counters, the per-session cell
//! (one mutex around the session plus the wakers of whoever waits on it), and the one small
//! timer task per HTTP session that drives heartbeats and the disconnect delay.

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::session::{AttachError, Frame, Framing, Refused, Session, SessionConfig};
use crate::{Config, Connection, Metrics, Transport};

/// Index of a transport in the counter arrays.
pub(crate) fn transport_index(t: Transport) -> usize {
    match t {
        Transport::WebSocket => 0,
        Transport::RawWebSocket => 1,
        Transport::XhrPolling => 2,
        Transport::XhrStreaming => 3,
        Transport::EventSource => 4,
        Transport::HtmlFile => 5,
        Transport::JsonpPolling => 6,
    }
}

const TRANSPORTS: [Transport; 7] = [
    Transport::WebSocket,
    Transport::RawWebSocket,
    Transport::XhrPolling,
    Transport::XhrStreaming,
    Transport::EventSource,
    Transport::HtmlFile,
    Transport::JsonpPolling,
];

/// How a session is found in the registry: HTTP sessions by their URL id; websocket sessions
/// (which may share an id, and are never looked up) by a private number.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Key {
    Http(Box<str>),
    Ws(u64),
}

/// Counters of one endpoint.
#[derive(Default)]
pub(crate) struct Counters {
    open: [AtomicU64; 7],
    opened: [AtomicU64; 7],
    closed_queue_full: AtomicU64,
    timed_out: AtomicU64,
    /// Session cells alive (dropped when the last reference goes): the leak check.
    live: AtomicU64,
}

type OnConnection = Box<dyn Fn(Connection) + Send + Sync>;

/// Everything one endpoint shares between requests.
pub(crate) struct Shared {
    pub(crate) config: Config,
    on_connection: OnConnection,
    sessions: Mutex<HashMap<Key, Arc<Cell>>>,
    pub(crate) counters: Counters,
    next_ws: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// What [`Shared::open_or_attach`] found.
pub(crate) enum Opened {
    /// A receiver attached to this session (new or existing).
    Attached(Arc<Cell>),
    /// The session has a receiver already.
    Busy,
    /// `max_sessions` reached.
    Full,
}

impl Shared {
    pub(crate) fn new(config: Config, on_connection: OnConnection) -> Shared {
        Shared {
            config,
            on_connection,
            sessions: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            next_ws: AtomicU64::new(0),
        }
    }

    fn session_config(&self) -> SessionConfig {
        SessionConfig {
            heartbeat: self.config.heartbeat,
            disconnect_delay: self.config.disconnect_delay,
            max_queued_bytes: self.config.max_queued_bytes,
            max_incoming_bytes: self.config.max_queued_bytes,
        }
    }

    /// Sessions in the registry.
    pub(crate) fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Finds the HTTP session `id` and attaches a receiver, or creates it (already attached;
    /// the application hears of it through `on_connection`, and its timer task is spawned).
    pub(crate) fn open_or_attach(
        self: &Arc<Self>,
        id: &str,
        transport: Transport,
        parts: &http::request::Parts,
        peer: Option<SocketAddr>,
    ) -> Opened {
        let t = now();
        let cell = {
            let mut map = lock(&self.sessions);
            let key = Key::Http(id.into());
            if let Some(cell) = map.get(&key) {
                let cell = cell.clone();
                let r = {
                    let mut g = cell.lock();
                    let r = g.session.attach(t);
                    if r.is_ok() {
                        g.wake_timer();
                    }
                    r
                };
                match r {
                    Ok(()) => return Opened::Attached(cell),
                    Err(AttachError::Busy) => return Opened::Busy,
                    // Reaped but its timer task has not removed it yet: replace it.
                    Err(AttachError::Reaped) => {
                        map.remove(&key);
                        self.counters.open[transport_index(cell.transport)]
                            .fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
            if map.len() >= self.config.max_sessions {
                return Opened::Full;
            }
            let cell = Arc::new(Cell::new(
                self.clone(),
                key.clone(),
                id,
                transport,
                Framing::SockJs,
                owned_parts(parts),
                peer,
                t,
            ));
            map.insert(key, cell.clone());
            self.count_open(transport);
            cell
        };
        tokio::spawn(drive_timers(cell.clone()));
        (self.on_connection)(Connection { cell: cell.clone() });
        Opened::Attached(cell)
    }

    fn count_open(&self, transport: Transport) {
        let i = transport_index(transport);
        self.counters.open[i].fetch_add(1, Ordering::Relaxed);
        self.counters.opened[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The HTTP session `id`, if it exists.
    pub(crate) fn find(&self, id: &str) -> Option<Arc<Cell>> {
        lock(&self.sessions).get(&Key::Http(id.into())).cloned()
    }

    /// Whether a new session may be created now.
    pub(crate) fn has_room(&self) -> bool {
        self.session_count() < self.config.max_sessions
    }

    /// Registers a websocket session (attached to its socket) and tells the application.
    /// `None` when `max_sessions` is reached.
    pub(crate) fn open_ws(
        self: &Arc<Self>,
        id: &str,
        transport: Transport,
        framing: Framing,
        parts: http::request::Parts,
        peer: Option<SocketAddr>,
    ) -> Option<Arc<Cell>> {
        let cell = {
            let mut map = lock(&self.sessions);
            if map.len() >= self.config.max_sessions {
                return None;
            }
            let key = Key::Ws(self.next_ws.fetch_add(1, Ordering::Relaxed));
            let cell = Arc::new(Cell::new(
                self.clone(),
                key.clone(),
                id,
                transport,
                framing,
                parts,
                peer,
                now(),
            ));
            map.insert(key, cell.clone());
            self.count_open(transport);
            cell
        };
        (self.on_connection)(Connection { cell: cell.clone() });
        Some(cell)
    }

    /// Removes a reaped session from the registry.
    fn remove(&self, cell: &Arc<Cell>) {
        let mut map = lock(&self.sessions);
        if map.get(&cell.key).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            map.remove(&cell.key);
            self.counters.open[transport_index(cell.transport)].fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn metrics(&self) -> Metrics {
        let c = &self.counters;
        Metrics {
            open: TRANSPORTS
                .iter()
                .map(|&t| (t, c.open[transport_index(t)].load(Ordering::Relaxed)))
                .collect(),
            opened_total: TRANSPORTS
                .iter()
                .map(|&t| (t, c.opened[transport_index(t)].load(Ordering::Relaxed)))
                .collect(),
            closed_queue_full: c.closed_queue_full.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
            sessions: self.session_count() as u64,
            live_session_objects: c.live.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn close_all(&self, code: u16, reason: &str) {
        let cells: Vec<Arc<Cell>> = lock(&self.sessions).values().cloned().collect();
        for c in cells {
            c.close(code, reason);
        }
    }
}

/// One session and whoever waits on it.
pub(crate) struct Cell {
    endpoint: Arc<Shared>,
    key: Key,
    pub(crate) id: Box<str>,
    pub(crate) transport: Transport,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) parts: http::request::Parts,
    inner: Mutex<Inner>,
}

pub(crate) struct Inner {
    pub(crate) session: Session,
    receiver: Option<Waker>,
    app: Option<Waker>,
    drain: Vec<Waker>,
    timer: Option<Waker>,
    reader: Option<Waker>,
}

fn set_waker(slot: &mut Option<Waker>, w: &Waker) {
    match slot {
        Some(old) if old.will_wake(w) => {}
        _ => *slot = Some(w.clone()),
    }
}

impl Inner {
    fn wake_timer(&mut self) {
        if let Some(w) = self.timer.take() {
            w.wake();
        }
    }

    /// Wakes everyone (close, reap, queue full).
    fn wake_all(&mut self) {
        for w in [
            self.receiver.take(),
            self.app.take(),
            self.timer.take(),
            self.reader.take(),
        ]
        .into_iter()
        .flatten()
        {
            w.wake();
        }
        for w in self.drain.drain(..) {
            w.wake();
        }
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        self.endpoint.counters.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Cell {
    #[allow(clippy::too_many_arguments)]
    fn new(
        endpoint: Arc<Shared>,
        key: Key,
        id: &str,
        transport: Transport,
        framing: Framing,
        parts: http::request::Parts,
        peer: Option<SocketAddr>,
        now: std::time::Instant,
    ) -> Cell {
        endpoint.counters.live.fetch_add(1, Ordering::Relaxed);
        let session = Session::new(endpoint.session_config(), framing, now);
        Cell {
            key,
            id: id.into(),
            transport,
            peer,
            parts,
            inner: Mutex::new(Inner {
                session,
                receiver: None,
                app: None,
                drain: Vec::new(),
                timer: None,
                reader: None,
            }),
            endpoint,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    // ---- application side ----

    pub(crate) fn send(&self, msg: &str) -> Result<(), Refused> {
        let mut g = self.lock();
        let had_frame = g.session.has_frame();
        let r = g.session.send(msg);
        match r {
            Ok(()) => {
                if !had_frame
                    && g.session.has_frame()
                    && let Some(w) = g.receiver.take()
                {
                    drop(g);
                    w.wake();
                }
            }
            Err(Refused::QueueFull) => {
                tracing::debug!(session = %self.id, "sockjs: outbound queue full, session closed");
                self.endpoint
                    .counters
                    .closed_queue_full
                    .fetch_add(1, Ordering::Relaxed);
                g.wake_all();
            }
            Err(Refused::Closed) => {}
        }
        r
    }

    pub(crate) fn close(&self, code: u16, reason: &str) {
        let mut g = self.lock();
        if !g.session.is_closed() {
            g.session.close(code, reason);
            g.wake_all();
        }
    }

    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<String>> {
        let mut g = self.lock();
        let was_full = g.session.incoming_full();
        if let Some(m) = g.session.take_incoming() {
            if was_full
                && !g.session.incoming_full()
                && let Some(w) = g.reader.take()
            {
                w.wake();
            }
            return Poll::Ready(Some(m));
        }
        if g.session.is_closed() {
            return Poll::Ready(None);
        }
        set_waker(&mut g.app, cx.waker());
        Poll::Pending
    }

    pub(crate) fn buffered_bytes(&self) -> usize {
        self.lock().session.queued_bytes()
    }

    pub(crate) fn poll_drained(&self, below: usize, cx: &mut Context<'_>) -> Poll<()> {
        let mut g = self.lock();
        if g.session.queued_bytes() < below || g.session.is_closed() {
            return Poll::Ready(());
        }
        if !g.drain.iter().any(|w| w.will_wake(cx.waker())) {
            g.drain.push(cx.waker().clone());
        }
        Poll::Pending
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().session.is_closed()
    }

    // ---- transport side ----

    /// The next frame for the attached receiver; `None` once the session is reaped.
    pub(crate) fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        let mut g = self.lock();
        let queued = g.session.queued_bytes();
        if let Some(f) = g.session.poll_frame(now()) {
            if queued > 0 && !g.drain.is_empty() {
                let ws: Vec<Waker> = g.drain.drain(..).collect();
                drop(g);
                ws.into_iter().for_each(Waker::wake);
            }
            return Poll::Ready(Some(f));
        }
        if g.session.is_reaped() {
            return Poll::Ready(None);
        }
        set_waker(&mut g.receiver, cx.waker());
        Poll::Pending
    }

    /// The receiver's request ended normally.
    pub(crate) fn detach(&self) {
        let mut g = self.lock();
        g.session.detach(now());
        g.receiver = None;
        g.wake_timer();
    }

    /// The receiver's request was aborted by the client: the session is closed with 1002
    /// `Connection interrupted` (some messages may be lost) and detached.
    pub(crate) fn abort(&self) {
        let mut g = self.lock();
        g.session.close(
            crate::session::INTERRUPTED_CODE,
            crate::session::INTERRUPTED_REASON,
        );
        g.session.detach(now());
        g.receiver = None;
        g.wake_all();
    }

    /// Messages from the client.
    pub(crate) fn receive(&self, msgs: Vec<String>) {
        if msgs.is_empty() {
            return;
        }
        let mut g = self.lock();
        match g.session.receive(msgs) {
            Ok(()) => {
                if let Some(w) = g.app.take() {
                    drop(g);
                    w.wake();
                }
            }
            Err(Refused::QueueFull) => {
                self.endpoint
                    .counters
                    .closed_queue_full
                    .fetch_add(1, Ordering::Relaxed);
                g.wake_all();
            }
            Err(Refused::Closed) => {}
        }
    }

    /// Resolves when the application has room for more incoming messages (or the session is
    /// closed): the websocket transports read only then.
    pub(crate) fn poll_incoming_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut g = self.lock();
        if !g.session.incoming_full() || g.session.is_closed() {
            return Poll::Ready(());
        }
        set_waker(&mut g.reader, cx.waker());
        Poll::Pending
    }

    /// The next deadline of a websocket session (its heartbeat), handled by its own task.
    pub(crate) fn poll_timeout(&self) -> Option<std::time::Instant> {
        self.lock().session.poll_timeout()
    }

    /// Handles due deadlines of a websocket session.
    pub(crate) fn handle_timeout(&self) {
        let mut g = self.lock();
        if g.session.handle_timeout(now()).heartbeat
            && let Some(w) = g.receiver.take()
        {
            w.wake();
        }
    }

    /// The websocket (or its task) ended: the session is over for good.
    pub(crate) fn finish_ws(self: &Arc<Self>) {
        {
            let mut g = self.lock();
            g.session.close(1000, "Normal closure");
            g.session.reap();
            g.wake_all();
        }
        self.endpoint.remove(self);
    }
}

/// The head of `req` (method, URI, version, headers; no extensions) as [`owned_parts`] copies
/// it.
pub(crate) fn request_head<B>(req: &http::Request<B>) -> http::request::Parts {
    let mut p = http::Request::new(()).into_parts().0;
    p.method = req.method().clone();
    p.version = req.version();
    copy_uri_and_headers(&mut p, req.uri(), req.headers());
    p
}

fn copy_uri_and_headers(p: &mut http::request::Parts, uri: &http::Uri, map: &http::HeaderMap) {
    p.uri = http::Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone());
    let mut headers = http::HeaderMap::with_capacity(map.len());
    for (name, value) in map {
        let mut v =
            http::HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        v.set_sensitive(value.is_sensitive());
        headers.append(name.clone(), v);
    }
    p.headers = headers;
}

/// A copy of an opening request's head that shares no memory with the request. hyper's header
/// values and URI are slices of its connection read buffer (8 KiB and up); a plain clone would
/// keep that whole buffer alive for as long as the session lives, though the session only needs
/// the few hundred bytes of its head. Values are copied into exactly-sized buffers instead.
fn owned_parts(parts: &http::request::Parts) -> http::request::Parts {
    let mut p = http::Request::new(()).into_parts().0;
    p.method = parts.method.clone();
    p.version = parts.version;
    copy_uri_and_headers(&mut p, &parts.uri, &parts.headers);
    p.extensions = parts.extensions.clone();
    p
}

/// The timer task of one HTTP session: heartbeats while a receiver is attached, the
/// disconnect delay while none is; removes the session once reaped. It sleeps until the
/// session's next deadline and is woken early only when a receiver attaches or detaches.
async fn drive_timers(cell: Arc<Cell>) {
    let mut sleep = Box::pin(tokio::time::sleep_until(tokio::time::Instant::now()));
    let mut armed = false;
    poll_fn(|cx| {
        loop {
            let mut g = cell.lock();
            let out = g.session.handle_timeout(now());
            if out.heartbeat
                && let Some(w) = g.receiver.take()
            {
                w.wake();
            }
            if g.session.is_reaped() {
                if out.reaped {
                    cell.endpoint
                        .counters
                        .timed_out
                        .fetch_add(1, Ordering::Relaxed);
                }
                g.wake_all();
                return Poll::Ready(());
            }
            set_waker(&mut g.timer, cx.waker());
            let deadline = g.session.poll_timeout();
            drop(g);
            match deadline {
                Some(d) => {
                    let d = tokio::time::Instant::from_std(d);
                    if !armed || sleep.deadline() != d {
                        sleep.as_mut().reset(d);
                        armed = true;
                    }
                    if sleep.as_mut().poll(cx).is_ready() {
                        armed = false;
                        continue;
                    }
                    return Poll::Pending;
                }
                None => return Poll::Pending,
            }
        }
    })
    .await;
    cell.endpoint.remove(&cell);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// The stored request head equals the request's, and none of it points into the buffer the
    /// request was parsed from (which would keep that whole buffer alive with the session).
    #[test]
    fn request_head_is_a_copy_that_shares_no_buffer() {
        let wire = Bytes::from(vec![b'x'; 8192]);
        let mut buf = wire.to_vec();
        buf[..9].copy_from_slice(b"websocket");
        buf[9..12].copy_from_slice(b"abc");
        let wire = Bytes::from(buf);
        let upgrade = http::HeaderValue::from_maybe_shared(wire.slice(0..9)).unwrap();
        let custom = http::HeaderValue::from_maybe_shared(wire.slice(9..12)).unwrap();
        let mut sensitive = http::HeaderValue::from_static("Bearer t");
        sensitive.set_sensitive(true);
        let req = http::Request::get("/echo/000/abc/websocket?x=1")
            .header(http::header::UPGRADE, upgrade)
            .header("x-custom", custom)
            .header(http::header::AUTHORIZATION, sensitive)
            .body(())
            .unwrap();
        let inside = |p: *const u8| wire.as_ptr_range().contains(&p);
        assert!(inside(req.headers()["upgrade"].as_bytes().as_ptr()));
        let head = request_head(&req);
        let (parts, ()) = req.into_parts();
        for h in [&head, &owned_parts(&parts)] {
            assert_eq!(h.method, http::Method::GET);
            assert_eq!(h.uri, "/echo/000/abc/websocket?x=1");
            assert_eq!(h.headers, parts.headers);
            assert!(h.headers["authorization"].is_sensitive());
            for v in h.headers.values() {
                assert!(!inside(v.as_bytes().as_ptr()));
            }
        }
    }
}
