//! An in-memory network of STOMP clients and one broker, with a fake clock (quinn's `Pair`
//! idea): frames go in through `Session::handle_frame`, what sessions emit is decoded with the
//! real STOMP parser, time only moves when a test says so.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchboard_broker::{Broker, BrokerConfig, Session};
use switchboard_stomp::{Command, Frame, Limits, Parsed, Parser, Version};

pub struct Client {
    pub session: Session,
    parser: Parser,
    buf: BytesMut,
    pub inbox: VecDeque<Frame>,
    pub heart_beats: usize,
    /// A paused client's outbound queue is not drained (a consumer that stops reading).
    pub paused: bool,
}

pub struct Net {
    pub broker: Broker,
    pub now: Instant,
    pub clients: Vec<Client>,
}

pub fn connect_frame(version: &str) -> Frame {
    Frame::new(Command::Connect)
        .header("accept-version", version)
        .header("host", "localhost")
}

pub fn subscribe(id: &str, dest: &str) -> Frame {
    Frame::new(Command::Subscribe)
        .header("id", id)
        .header("destination", dest)
}

pub fn subscribe_ack(id: &str, dest: &str, ack: &str) -> Frame {
    subscribe(id, dest).header("ack", ack)
}

pub fn send(dest: &str, body: &'static str) -> Frame {
    Frame::new(Command::Send)
        .header("destination", dest)
        .body(body)
}

pub fn body(f: &Frame) -> &str {
    std::str::from_utf8(&f.body).expect("utf-8 body")
}

impl Net {
    pub fn new(config: BrokerConfig) -> Net {
        Net::with(Broker::new(config))
    }

    pub fn with(broker: Broker) -> Net {
        Net {
            broker,
            now: Instant::now(),
            clients: Vec::new(),
        }
    }

    /// Opens a connection (no CONNECT yet).
    pub fn open(&mut self) -> usize {
        let session = self.broker.open_session(self.now);
        self.clients.push(Client {
            session,
            parser: Parser::new(Version::V1_2, Limits::default()),
            buf: BytesMut::new(),
            inbox: VecDeque::new(),
            heart_beats: 0,
            paused: false,
        });
        self.pump();
        self.clients.len() - 1
    }

    /// Opens a connection and sends `connect`; returns the client (CONNECTED left in its inbox
    /// only if `keep` — see `connect`).
    pub fn connect_with(&mut self, connect: Frame) -> usize {
        let c = self.open();
        self.frame(c, connect);
        c
    }

    /// Connects with `accept-version: version` and consumes the CONNECTED frame.
    pub fn connect(&mut self, version: &str) -> usize {
        let c = self.connect_with(connect_frame(version));
        self.expect(c, Command::Connected);
        c
    }

    pub fn connect_as(&mut self, version: &str, login: &str) -> usize {
        let c = self.connect_with(
            connect_frame(version)
                .header("login", login)
                .header("passcode", "x"),
        );
        self.expect(c, Command::Connected);
        c
    }

    pub fn session(&mut self, c: usize) -> &mut Session {
        &mut self.clients[c].session
    }

    /// Feeds a frame to client `c`'s session, then lets every session transmit.
    pub fn frame(&mut self, c: usize, frame: Frame) {
        let now = self.now;
        self.clients[c].session.handle_frame(frame, now);
        self.pump();
    }

    /// Drains every unpaused session and decodes what it sent.
    pub fn pump(&mut self) {
        let now = self.now;
        for client in &mut self.clients {
            if !client.paused {
                client.pump(now);
            }
        }
    }

    /// Moves the clock forward in 100 ms steps, firing timers; the client(s) in `alive` send a
    /// heart-beat EOL at every step.
    pub fn advance_with(&mut self, by: Duration, alive: &[usize]) {
        let end = self.now + by;
        while self.now < end {
            let step = Duration::from_millis(100).min(end - self.now);
            self.now += step;
            let now = self.now;
            for &c in alive {
                self.clients[c].session.note_activity(now);
            }
            for client in &mut self.clients {
                if client.session.poll_timeout().is_some_and(|t| t <= now) {
                    client.session.handle_timeout(now);
                }
            }
            self.pump();
        }
    }

    pub fn advance(&mut self, by: Duration) {
        self.advance_with(by, &[]);
    }

    pub fn recv(&mut self, c: usize) -> Option<Frame> {
        self.clients[c].inbox.pop_front()
    }

    #[track_caller]
    pub fn expect(&mut self, c: usize, command: Command) -> Frame {
        match self.recv(c) {
            Some(f) if f.command == command => f,
            other => panic!("client {c}: expected {command:?}, got {other:?}"),
        }
    }

    /// Expects an ERROR whose `message` header contains `text`, and a closed session.
    #[track_caller]
    pub fn expect_error(&mut self, c: usize, text: &str) -> Frame {
        let f = self.expect(c, Command::Error);
        let m = f.get("message").unwrap_or("");
        assert!(
            m.contains(text),
            "client {c}: ERROR message {m:?} lacks {text:?}: {f:?}"
        );
        assert!(
            self.clients[c].session.is_closed(),
            "client {c}: not closed after ERROR"
        );
        f
    }

    #[track_caller]
    pub fn expect_nothing(&mut self, c: usize) {
        if let Some(f) = self.recv(c) {
            panic!("client {c}: expected nothing, got {f:?}");
        }
    }

    /// Receives a MESSAGE and returns it.
    #[track_caller]
    pub fn message(&mut self, c: usize) -> Frame {
        self.expect(c, Command::Message)
    }

    pub fn message_or_none(&mut self, c: usize) -> Option<Frame> {
        self.recv(c)
    }

    pub fn messages(&mut self, c: usize) -> Vec<Frame> {
        let mut v = Vec::new();
        while let Some(f) = self.recv(c) {
            assert_eq!(f.command, Command::Message, "client {c}: {f:?}");
            v.push(f);
        }
        v
    }
}

impl Client {
    fn pump(&mut self, now: Instant) {
        while let Some(out) = self.session.poll_transmit(now) {
            out.write_to(&mut self.buf);
            loop {
                match self.parser.parse(&mut self.buf) {
                    Ok(Some(Parsed::Frame(f))) => {
                        if f.command == Command::Connected
                            && let Some(v) = f.get("version").and_then(Version::from_str_exact)
                        {
                            self.parser.set_version(v);
                        }
                        self.inbox.push_back(f);
                    }
                    Ok(Some(Parsed::HeartBeat)) => self.heart_beats += 1,
                    Ok(None) => break,
                    Err(e) => panic!("broker sent bytes the parser rejects: {e}"),
                }
            }
        }
    }
}
