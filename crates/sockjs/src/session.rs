//! The sans-IO session core: everything about one SockJS session that does not depend on the
//! transport or on I/O.
//!
//! A [`Session`] holds the open frame still to send, the outgoing messages queued since the last
//! flush (already escaped, joined for one `a[...]` frame), the incoming messages not yet taken
//! by the application, at most one attached receiver, the remembered close frame, and two
//! deadlines: the heartbeat (while a receiver is attached) and the disconnect delay (while
//! none is). Time is a parameter (`now`); nothing here reads a clock, spawns or blocks, so the
//! same state machine serves every transport and is tested with a fake clock.
//!
//! The shell (the transports) drives it in the quinn style:
//! [`attach`](Session::attach) / [`detach`](Session::detach) a receiver,
//! [`poll_frame`](Session::poll_frame) for what to write,
//! [`poll_timeout`](Session::poll_timeout) / [`handle_timeout`](Session::handle_timeout) for
//! timers, [`send`](Session::send) from the application, [`receive`](Session::receive) from
//! the client and [`take_incoming`](Session::take_incoming) for the application.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::json;

/// The frame sent to a second receiver while one is attached.
pub const ANOTHER_CONNECTION_STILL_OPEN: &str = "c[2010,\"Another connection still open\"]";

/// The close code used when the outbound queue passes its limit.
pub const QUEUE_FULL_CODE: u16 = 1009;
/// The close reason used when the outbound queue passes its limit.
pub const QUEUE_FULL_REASON: &str = "Message queue full";
/// The close code used when a receiving request was aborted by the client.
pub const INTERRUPTED_CODE: u16 = 1002;
/// The close reason used when a receiving request was aborted by the client.
pub const INTERRUPTED_REASON: &str = "Connection interrupted";

/// How messages are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// SockJS frames: `o`, `h`, `a[...]`, `c[...]`.
    SockJs,
    /// The raw `/websocket` endpoint: every message as it is, no open frame, no heartbeat.
    Raw,
}

/// Timer and limit settings of a session.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// Heartbeat interval for an attached receiver.
    pub heartbeat: Duration,
    /// How long a session without a receiver lives.
    pub disconnect_delay: Duration,
    /// Most escaped outbound bytes queued at once.
    pub max_queued_bytes: usize,
    /// Most inbound bytes queued for the application at once (see [`Session::receive`]).
    pub max_incoming_bytes: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            heartbeat: Duration::from_secs(25),
            disconnect_delay: Duration::from_secs(5),
            max_queued_bytes: 1 << 20,
            max_incoming_bytes: 1 << 20,
        }
    }
}

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// `o`.
    Open,
    /// `h`.
    Heartbeat,
    /// `a[...]`: every message queued since the last flush.
    Messages,
    /// `c[code,"reason"]`: the receiver ends after it.
    Close,
    /// One raw message ([`Framing::Raw`]).
    Raw,
}

/// One frame to write to the attached receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What it is.
    pub kind: FrameKind,
    /// Its text (`o`, `h`, `a[...]`, `c[...]`, or the raw message).
    pub bytes: Bytes,
}

/// Why [`Session::attach`] did not attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachError {
    /// Another receiver is attached: answer [`ANOTHER_CONNECTION_STILL_OPEN`].
    Busy,
    /// The session has been reaped; the caller must forget it.
    Reaped,
}

/// The session's close, remembered until it is reaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// Close code.
    pub code: u16,
    /// Close reason.
    pub reason: String,
    /// The `c[code,"reason"]` frame.
    pub frame: Bytes,
}

/// Why [`Session::send`] or [`Session::receive`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The session is closed.
    Closed,
    /// The message would pass the queue limit; the session is now closed.
    QueueFull,
}

/// What [`Session::handle_timeout`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeoutOutcome {
    /// A heartbeat became due for the attached receiver (wake it).
    pub heartbeat: bool,
    /// The disconnect delay passed: the session is reaped (remove it; wake the application).
    pub reaped: bool,
}

/// One SockJS session's transport-independent state. See the module docs.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    framing: Framing,
    open_pending: bool,
    /// `a[` followed by the escaped messages, comma-separated (SockJS framing).
    out: BytesMut,
    out_messages: usize,
    /// Raw framing: one entry per message.
    raw_out: VecDeque<Bytes>,
    queued_bytes: usize,
    incoming: VecDeque<String>,
    incoming_bytes: usize,
    attached: bool,
    heartbeat_due: bool,
    heartbeat_at: Option<Instant>,
    disconnect_at: Option<Instant>,
    close: Option<CloseInfo>,
    reaped: bool,
}

/// Builds `c[code,"reason"]`.
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(reason.len() + 12);
    b.extend_from_slice(b"c[");
    b.extend_from_slice(code.to_string().as_bytes());
    b.extend_from_slice(b",");
    json::encode_str_into(reason, &mut b);
    b.extend_from_slice(b"]");
    b.freeze()
}

impl Session {
    /// A new session whose first receiver attaches now (sessions are created by a receiving
    /// request). The open frame is queued.
    pub fn new(config: SessionConfig, framing: Framing, now: Instant) -> Session {
        let mut s = Session {
            config,
            framing,
            open_pending: framing == Framing::SockJs,
            out: BytesMut::new(),
            out_messages: 0,
            raw_out: VecDeque::new(),
            queued_bytes: 0,
            incoming: VecDeque::new(),
            incoming_bytes: 0,
            attached: false,
            heartbeat_due: false,
            heartbeat_at: None,
            disconnect_at: Some(now + config.disconnect_delay),
            close: None,
            reaped: false,
        };
        s.attach(now).ok();
        s
    }

    /// Attaches a receiver. Its heartbeat clock starts now.
    pub fn attach(&mut self, now: Instant) -> Result<(), AttachError> {
        if self.reaped {
            return Err(AttachError::Reaped);
        }
        if self.attached {
            return Err(AttachError::Busy);
        }
        self.attached = true;
        self.heartbeat_due = false;
        self.disconnect_at = None;
        self.heartbeat_at = self.heartbeat_deadline(now);
        Ok(())
    }

    fn heartbeat_deadline(&self, now: Instant) -> Option<Instant> {
        (self.framing == Framing::SockJs && self.close.is_none())
            .then(|| now + self.config.heartbeat)
    }

    /// Detaches the receiver (its request ended, normally or not). The disconnect delay starts
    /// now.
    pub fn detach(&mut self, now: Instant) {
        if !self.attached {
            return;
        }
        self.attached = false;
        self.heartbeat_due = false;
        self.heartbeat_at = None;
        self.disconnect_at = Some(now + self.config.disconnect_delay);
    }

    /// Whether a receiver is attached.
    pub fn is_attached(&self) -> bool {
        self.attached
    }

    /// The next frame for the attached receiver, if any: the open frame, then every queued
    /// message in one `a[...]`, then the close frame (after which the receiver must end and
    /// detach), or a due heartbeat. `None` without an attached receiver.
    #[must_use]
    pub fn poll_frame(&mut self, now: Instant) -> Option<Frame> {
        if !self.attached || self.reaped {
            return None;
        }
        let frame = if self.open_pending {
            self.open_pending = false;
            Frame {
                kind: FrameKind::Open,
                bytes: Bytes::from_static(b"o"),
            }
        } else if self.out_messages > 0 {
            self.out.extend_from_slice(b"]");
            let bytes = self.out.split().freeze();
            self.out_messages = 0;
            self.queued_bytes = 0;
            Frame {
                kind: FrameKind::Messages,
                bytes,
            }
        } else if let Some(m) = self.raw_out.pop_front() {
            self.queued_bytes -= m.len();
            Frame {
                kind: FrameKind::Raw,
                bytes: m,
            }
        } else if let Some(c) = &self.close {
            Frame {
                kind: FrameKind::Close,
                bytes: c.frame.clone(),
            }
        } else if self.heartbeat_due {
            self.heartbeat_due = false;
            Frame {
                kind: FrameKind::Heartbeat,
                bytes: Bytes::from_static(b"h"),
            }
        } else {
            return None;
        };
        self.heartbeat_at = self.heartbeat_deadline(now);
        Some(frame)
    }

    /// Whether [`poll_frame`](Self::poll_frame) would return a frame.
    pub fn has_frame(&self) -> bool {
        self.attached
            && !self.reaped
            && (self.open_pending
                || self.out_messages > 0
                || !self.raw_out.is_empty()
                || self.close.is_some()
                || self.heartbeat_due)
    }

    /// The next deadline: the heartbeat while a receiver is attached, the disconnect delay
    /// otherwise; `None` once reaped.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.reaped {
            return None;
        }
        if self.attached {
            if self.heartbeat_due {
                None
            } else {
                self.heartbeat_at
            }
        } else {
            self.disconnect_at
        }
    }

    /// Handles the deadlines that passed by `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> TimeoutOutcome {
        let mut out = TimeoutOutcome::default();
        if self.reaped {
            return out;
        }
        if self.attached {
            if let Some(t) = self.heartbeat_at
                && now >= t
                && !self.heartbeat_due
            {
                self.heartbeat_due = true;
                self.heartbeat_at = None;
                out.heartbeat = true;
            }
        } else if let Some(t) = self.disconnect_at
            && now >= t
        {
            self.reap();
            out.reaped = true;
        }
        out
    }

    /// Ends the session for good (disconnect delay passed, or its only connection ended for
    /// the websocket transports): drops every queue; the close frame stays.
    pub fn reap(&mut self) {
        if self.close.is_none() {
            self.close = Some(CloseInfo {
                code: 1000,
                reason: "Session timed out".into(),
                frame: close_frame(1000, "Session timed out"),
            });
        }
        self.reaped = true;
        self.attached = false;
        self.heartbeat_at = None;
        self.disconnect_at = None;
        self.drop_out();
        self.incoming.clear();
        self.incoming_bytes = 0;
    }

    /// Whether the session has been reaped.
    pub fn is_reaped(&self) -> bool {
        self.reaped
    }

    fn drop_out(&mut self) {
        self.out = BytesMut::new();
        self.out_messages = 0;
        self.raw_out = VecDeque::new();
        self.queued_bytes = 0;
    }

    /// Queues a message for the client. Refused once closed; a message that would take the
    /// queue past `max_queued_bytes` closes the session with 1009 `Message queue full` (the
    /// queue is dropped: a client that stops receiving never grows it).
    pub fn send(&mut self, msg: &str) -> Result<(), Refused> {
        if self.close.is_some() {
            return Err(Refused::Closed);
        }
        match self.framing {
            Framing::SockJs => {
                let before = self.out.len();
                if self.out_messages == 0 {
                    self.out.clear();
                    self.out.reserve(msg.len() + 5);
                    self.out.extend_from_slice(b"a[");
                } else {
                    self.out.extend_from_slice(b",");
                }
                json::encode_str_into(msg, &mut self.out);
                let added = self.out.len() - before;
                if self.queued_bytes + added > self.config.max_queued_bytes {
                    self.queue_full();
                    return Err(Refused::QueueFull);
                }
                self.queued_bytes += added;
                self.out_messages += 1;
            }
            Framing::Raw => {
                if self.queued_bytes + msg.len() > self.config.max_queued_bytes {
                    self.queue_full();
                    return Err(Refused::QueueFull);
                }
                self.queued_bytes += msg.len();
                self.raw_out
                    .push_back(Bytes::copy_from_slice(msg.as_bytes()));
            }
        }
        Ok(())
    }

    fn queue_full(&mut self) {
        self.drop_out();
        self.close(QUEUE_FULL_CODE, QUEUE_FULL_REASON);
    }

    /// Outbound bytes queued (escaped, framing excluded).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Closes the session with `c[code,"reason"]`. Messages already queued are still delivered
    /// before the close frame; every later receiver gets the close frame again, until reaped.
    /// A second close is ignored.
    pub fn close(&mut self, code: u16, reason: &str) {
        if self.close.is_some() {
            return;
        }
        self.close = Some(CloseInfo {
            code,
            reason: reason.to_owned(),
            frame: close_frame(code, reason),
        });
        self.heartbeat_at = None;
        self.heartbeat_due = false;
    }

    /// The close, once closed.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.close.as_ref()
    }

    /// Whether the session is closed (or reaped).
    pub fn is_closed(&self) -> bool {
        self.close.is_some()
    }

    /// Adds messages from the client. Ignored (`Err(Closed)`) once closed. Past
    /// `max_incoming_bytes` unread by the application the session is closed with 1009
    /// (`Err(QueueFull)`) and both of its queues are dropped; the websocket transports avoid
    /// that by not reading while
    /// [`incoming_full`](Self::incoming_full).
    pub fn receive(&mut self, msgs: Vec<String>) -> Result<(), Refused> {
        if self.close.is_some() {
            return Err(Refused::Closed);
        }
        let add: usize = msgs.iter().map(String::len).sum();
        if self.incoming_bytes + add > self.config.max_incoming_bytes && !msgs.is_empty() {
            self.queue_full();
            self.incoming.clear();
            self.incoming_bytes = 0;
            return Err(Refused::QueueFull);
        }
        self.incoming_bytes += add;
        self.incoming.extend(msgs);
        Ok(())
    }

    /// Whether unread incoming messages reached `max_incoming_bytes`.
    pub fn incoming_full(&self) -> bool {
        self.incoming_bytes >= self.config.max_incoming_bytes
    }

    /// The next message from the client for the application.
    pub fn take_incoming(&mut self) -> Option<String> {
        let m = self.incoming.pop_front()?;
        self.incoming_bytes -= m.len();
        Some(m)
    }

    /// Whether messages from the client wait for the application.
    pub fn has_incoming(&self) -> bool {
        !self.incoming.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SessionConfig {
        SessionConfig {
            heartbeat: Duration::from_secs(25),
            disconnect_delay: Duration::from_secs(5),
            max_queued_bytes: 100,
            max_incoming_bytes: 100,
        }
    }

    fn text(f: Option<Frame>) -> Option<String> {
        f.map(|f| String::from_utf8(f.bytes.to_vec()).unwrap())
    }

    #[test]
    fn open_then_batched_messages() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(), Framing::SockJs, t0);
        assert_eq!(text(s.poll_frame(t0)).as_deref(), Some("o"));
        assert_eq!(s.poll_frame(t0), None);
        s.send("a").unwrap();
        s.send("b\"").unwrap();
        assert_eq!(s.queued_bytes(), 5 + 6);
        assert_eq!(text(s.poll_frame(t0)).as_deref(), Some(r#"a["a","b\""]"#));
        assert_eq!(s.queued_bytes(), 0);
        assert_eq!(s.poll_frame(t0), None);
    }

    #[test]
    fn heartbeat_only_after_an_idle_interval() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(), Framing::SockJs, t0);
        let _ = s.poll_frame(t0);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(25)));
        // Traffic at 20 s pushes the heartbeat back.
        let t20 = t0 + Duration::from_secs(20);
        s.send("x").unwrap();
        assert_eq!(s.handle_timeout(t20), TimeoutOutcome::default());
        let _ = s.poll_frame(t20);
        assert_eq!(s.poll_timeout(), Some(t20 + Duration::from_secs(25)));
        let t30 = t0 + Duration::from_secs(30);
        assert!(!s.handle_timeout(t30).heartbeat);
        let t45 = t20 + Duration::from_secs(25);
        assert!(s.handle_timeout(t45).heartbeat);
        assert_eq!(text(s.poll_frame(t45)).as_deref(), Some("h"));
        assert_eq!(s.poll_timeout(), Some(t45 + Duration::from_secs(25)));
    }

    #[test]
    fn disconnect_delay_counts_from_detach() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(), Framing::SockJs, t0);
        let _ = s.poll_frame(t0);
        let t1 = t0 + Duration::from_secs(100);
        assert!(
            !s.handle_timeout(t1).reaped,
            "attached sessions are never reaped"
        );
        s.detach(t1);
        assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(5)));
        assert!(!s.handle_timeout(t1 + Duration::from_secs(4)).reaped);
        // Re-attaching stops the clock.
        s.attach(t1 + Duration::from_secs(4)).unwrap();
        assert!(!s.handle_timeout(t1 + Duration::from_secs(10)).reaped);
        s.detach(t1 + Duration::from_secs(10));
        let out = s.handle_timeout(t1 + Duration::from_secs(15));
        assert!(out.reaped);
        assert!(s.is_reaped());
        assert_eq!(
            s.attach(t1 + Duration::from_secs(16)),
            Err(AttachError::Reaped)
        );
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn second_receiver_is_refused() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(), Framing::SockJs, t0);
        assert_eq!(s.attach(t0), Err(AttachError::Busy));
        s.detach(t0);
        assert_eq!(s.attach(t0), Ok(()));
    }

    #[test]
    fn close_frame_is_remembered_and_repeated() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(), Framing::SockJs, t0);
        s.send("last").unwrap();
        s.close(3000, "Go away!");
        assert_eq!(s.send("x"), Err(Refused::Closed));
        assert_eq!(text(s.poll_frame(t0)).as_deref(), Some("o"));
        assert_eq!(text(s.poll_frame(t0)).as_deref(), Some(r#"a["last"]"#));
        assert_eq!(
            text(s.poll_frame(t0)).as_deref(),
            Some(r#"c[3000,"Go away!"]"#)
        );
        s.detach(t0);
        for _ in 0..3 {
            s.attach(t0).unwrap();
            assert_eq!(
                text(s.poll_frame(t0)).as_deref(),
                Some(r#"c[3000,"Go away!"]"#)
            );
            s.detach(t0);
        }
        // A later close does not replace the first.
        s.close(1000, "x");
        assert_eq!(s.close_info().unwrap().code, 3000);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn queue_limit_closes_and_drops() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(), Framing::SockJs, t0);
        s.detach(t0);
        let msg = "x".repeat(40);
        s.send(&msg).unwrap();
        s.send(&msg).unwrap();
        assert!(s.queued_bytes() <= 100);
        assert_eq!(s.send(&msg), Err(Refused::QueueFull));
        assert_eq!(s.queued_bytes(), 0);
        assert_eq!(s.close_info().unwrap().code, QUEUE_FULL_CODE);
        assert_eq!(s.send("y"), Err(Refused::Closed));
    }

    #[test]
    fn incoming_queue() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(), Framing::SockJs, t0);
        s.receive(vec!["a".into(), "b".into()]).unwrap();
        assert_eq!(s.take_incoming().as_deref(), Some("a"));
        assert_eq!(s.take_incoming().as_deref(), Some("b"));
        assert_eq!(s.take_incoming(), None);
        assert_eq!(s.receive(vec!["z".repeat(101)]), Err(Refused::QueueFull));
        assert!(s.is_closed());
        assert_eq!(s.receive(vec!["a".into()]), Err(Refused::Closed));
    }

    #[test]
    fn raw_framing_has_no_open_and_no_heartbeat() {
        let t0 = Instant::now();
        let mut s = Session::new(cfg(), Framing::Raw, t0);
        assert_eq!(s.poll_frame(t0), None);
        assert_eq!(s.poll_timeout(), None);
        s.send("one").unwrap();
        s.send("two").unwrap();
        assert_eq!(text(s.poll_frame(t0)).as_deref(), Some("one"));
        assert_eq!(text(s.poll_frame(t0)).as_deref(), Some("two"));
        assert_eq!(s.poll_frame(t0), None);
        s.close(3000, "Go away!");
        assert_eq!(s.poll_frame(t0).unwrap().kind, FrameKind::Close);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Attach,
            Detach,
            Send(String),
            Poll,
            Close(u16),
            Advance(u64),
            Timeout,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                Just(Op::Attach),
                Just(Op::Detach),
                ".{0,40}".prop_map(Op::Send),
                Just(Op::Poll),
                (1000u16..5000).prop_map(Op::Close),
                (0u64..30_000).prop_map(Op::Advance),
                Just(Op::Timeout),
            ]
        }

        proptest! {
            /// Any operation sequence on a fake clock: the queue stays within its limit, every
            /// `a[...]` carries exactly the messages sent since the previous one, the first
            /// close frame is the one repeated, and a reaped session yields nothing.
            #[test]
            fn invariants(ops in proptest::collection::vec(op(), 0..80)) {
                let t0 = Instant::now();
                let mut now = t0;
                let mut s = Session::new(cfg(), Framing::SockJs, now);
                let mut pending: Vec<String> = Vec::new();
                let mut first_close: Option<Bytes> = None;
                for op in ops {
                    match op {
                        Op::Attach => { let _ = s.attach(now); }
                        Op::Detach => s.detach(now),
                        Op::Send(m) => match s.send(&m) {
                            Ok(()) => pending.push(m),
                            Err(Refused::QueueFull) => pending.clear(),
                            Err(Refused::Closed) => prop_assert!(s.is_closed()),
                        },
                        Op::Poll => {
                            if let Some(f) = s.poll_frame(now) {
                                match f.kind {
                                    FrameKind::Messages => {
                                        let got = json::decode_array(&f.bytes[1..]).unwrap();
                                        prop_assert_eq!(got, std::mem::take(&mut pending));
                                    }
                                    FrameKind::Close => {
                                        prop_assert!(pending.is_empty());
                                        prop_assert_eq!(Some(&f.bytes), first_close.as_ref());
                                    }
                                    _ => {}
                                }
                            } else {
                                prop_assert!(!s.is_attached() || s.is_reaped() || pending.is_empty());
                            }
                        }
                        Op::Close(code) => s.close(code, "bye"),
                        Op::Advance(ms) => now += Duration::from_millis(ms),
                        Op::Timeout => {
                            if s.handle_timeout(now).reaped {
                                pending.clear();
                            }
                        }
                    }
                    prop_assert!(s.queued_bytes() <= 100);
                    if let Some(c) = &first_close {
                        prop_assert_eq!(Some(c), s.close_info().map(|i| &i.frame));
                    } else if let Some(i) = s.close_info() {
                        first_close = Some(i.frame.clone());
                    }
                    if s.is_reaped() {
                        prop_assert_eq!(s.poll_timeout(), None);
                        prop_assert!(s.poll_frame(now).is_none());
                    }
                }
            }
        }
    }
}
