//! Arbitrary sequences of client operations into several broker sessions sharing one broker.
//! Beyond "no panic" it checks: a queue message acknowledged (or consumed by an auto
//! subscription) is never delivered again, nor delivered twice while in flight; every outbound
//! queue stays within its frame/byte bounds; a closed session holds no subscription; once every
//! session is gone, the broker and backend hold no subscription and count no connection.
//! Queue policies (small `max_length` with drop-oldest, few redeliveries, TTLs, dead-letter
//! queues one can subscribe to) and `expires` headers on a fake wall clock exercise the message
//! lifecycle: a dead letter keeps its message-id, so it too must never follow an ACK of it.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use switchboard_broker::{
    Broker, BrokerConfig, HeartBeat, Limits, ManualClock, Overflow, QueuePolicy, Session,
};
use switchboard_stomp::{Command, Frame, Limits as ParseLimits, Parsed, Parser, Version};

const CLIENTS: usize = 4;
const DESTS: [&str; 11] = [
    "/queue/a",
    "/queue/a",
    "/queue/a",
    "/queue/b",
    "/queue/DLQ.a",
    "/topic/x",
    "/topic/x/y",
    "/topic/**",
    "/topic/*/y",
    "/user/queue/u",
    "/app/x",
];
const COMMANDS: [Command; 15] = Command::ALL;

#[derive(Arbitrary, Debug)]
enum Op {
    Connect { client: u8, version: u8, heart_beat: Option<(u16, u16)>, user: Option<u8> },
    Subscribe { client: u8, id: u8, dest: u8, ack: u8, prefetch: Option<u8>, receipt: bool },
    Unsubscribe { client: u8, id: u8 },
    /// `flags`: bits 0-2 all zero → in transaction `t{bits 3-4}`; bits 5-6 zero → to a user;
    /// bit 7 → receipt. (Rare on purpose: most SENDs should succeed.)
    Send { client: u8, dest: u8, len: u8, flags: u8 },
    /// `flags`: bit 0 → NACK; bits 1-2 zero → in transaction `t{bits 3-4}`.
    Ack { client: u8, which: u8, flags: u8 },
    Begin { client: u8, tx: u8 },
    Commit { client: u8, tx: u8 },
    Abort { client: u8, tx: u8 },
    Disconnect { client: u8, receipt: bool },
    Drop { client: u8 },
    Pause { client: u8, paused: bool },
    Advance { ms: u16, alive: u8 },
    Raw { client: u8, command: u8, headers: Vec<(u8, String)> },
    Shutdown,
}

/// A MESSAGE the model saw and has not settled.
#[derive(Clone, Debug)]
struct Outstanding {
    sub: String,
    ack: Option<String>,
    message_id: String,
}

struct Client {
    session: Session,
    parser: Parser,
    buf: BytesMut,
    paused: bool,
    version: Version,
    /// subscription id → ack mode header value
    subs: HashMap<String, String>,
    outstanding: Vec<Outstanding>,
    /// transaction id → pending (ack index target message-ids, nack)
    txs: HashMap<String, Vec<(Vec<String>, bool)>>,
    /// Raw frames may have changed subscriptions or acks behind the model's back: stop tracking.
    tainted: bool,
}

struct Model {
    broker: Broker,
    clock: ManualClock,
    now: Instant,
    clients: Vec<Option<Client>>,
    /// Queue messages acknowledged or consumed: must never be delivered again.
    done: HashSet<String>,
    /// Queue messages currently in some client's hands.
    in_flight: HashSet<String>,
}

fn config(clock: &ManualClock) -> BrokerConfig {
    BrokerConfig {
        clock: clock.clock(),
        queues: vec![
            QueuePolicy {
                pattern: "/queue/b".into(),
                max_length: Some(4),
                overflow: Overflow::DropOldest,
                max_redeliveries: Some(1),
                ttl: Some(Duration::from_millis(1500)),
                ..QueuePolicy::default()
            },
            QueuePolicy {
                pattern: "/queue/a".into(),
                max_redeliveries: Some(2),
                ..QueuePolicy::default()
            },
        ],
        heart_beat: HeartBeat { send_ms: 1000, receive_ms: 1000 },
        limits: Limits {
            max_connections: 6,
            max_subscriptions_per_session: 4,
            max_pending_per_queue: 16,
            outbound_max_frames: 12,
            outbound_max_bytes: 2048,
            max_unacked_per_subscription: 8,
            max_transactions_per_session: 2,
            max_frames_per_transaction: 4,
            max_transaction_bytes: 1024,
        },
        ..BrokerConfig::default()
    }
}

impl Model {
    fn slot(&self, c: u8) -> usize {
        c as usize % CLIENTS
    }

    fn feed(&mut self, i: usize, frame: Frame) {
        let now = self.now;
        if let Some(c) = self.clients[i].as_mut() {
            c.session.handle_frame(frame, now);
        }
    }

    fn connected(&self, i: usize) -> bool {
        self.clients[i].as_ref().is_some_and(|c| c.session.is_connected())
    }

    /// Forgets what a closed client held: the broker requeues it.
    fn closed(&mut self, i: usize) {
        if let Some(c) = self.clients[i].as_mut() {
            for o in c.outstanding.drain(..) {
                self.in_flight.remove(&o.message_id);
            }
            c.subs.clear();
            c.txs.clear();
        }
    }

    fn settle(&mut self, i: usize, ids: &[String], nack: bool) {
        let Some(c) = self.clients[i].as_mut() else { return };
        for id in ids {
            if let Some(pos) = c.outstanding.iter().position(|o| &o.message_id == id) {
                let o = c.outstanding.remove(pos);
                self.in_flight.remove(&o.message_id);
                if !nack {
                    self.done.insert(o.message_id);
                }
            }
        }
    }

    /// Which outstanding messages an ACK of entry `idx` covers (cumulative in `client` mode).
    fn covered(c: &Client, idx: usize) -> Vec<String> {
        let target = &c.outstanding[idx];
        if c.subs.get(&target.sub).map(String::as_str) == Some("client") {
            c.outstanding[..=idx]
                .iter()
                .filter(|o| o.sub == target.sub)
                .map(|o| o.message_id.clone())
                .collect()
        } else {
            vec![target.message_id.clone()]
        }
    }

    fn pump(&mut self) {
        let now = self.now;
        // First forget what closing clients held: the broker has already requeued it (even if
        // the client has not read its ERROR yet), and another client may receive it below.
        for i in 0..CLIENTS {
            if self.clients[i].as_ref().is_some_and(|c| !c.session.is_connected()) {
                self.closed(i);
            }
        }
        for i in 0..CLIENTS {
            let Some(c) = self.clients[i].as_mut() else { continue };
            let (max_frames, max_bytes) = c.session.outbound_limits();
            assert!(c.session.queued_frames() <= max_frames, "outbox frames over the limit");
            assert!(c.session.queued_bytes() <= max_bytes + 1024, "outbox bytes over the limit");
            if c.paused {
                continue;
            }
            let mut frames = Vec::new();
            while let Some(out) = c.session.poll_transmit(now) {
                out.write_to(&mut c.buf);
                loop {
                    match c.parser.parse(&mut c.buf) {
                        Ok(Some(Parsed::Frame(f))) => frames.push(f),
                        Ok(Some(Parsed::HeartBeat)) => {}
                        Ok(None) => break,
                        Err(e) => panic!("broker output does not parse: {e}"),
                    }
                }
            }
            for f in frames {
                self.observe(i, f);
            }
            if let Some(c) = self.clients[i].as_ref()
                && c.session.is_closed()
            {
                assert_eq!(c.session.subscription_count(), 0, "closed session kept subscriptions");
                assert_eq!(c.session.unacked_count(), 0);
                self.closed(i);
            }
        }
    }

    fn observe(&mut self, i: usize, f: Frame) {
        match f.command {
            Command::Connected => {
                let c = self.clients[i].as_mut().expect("client");
                if let Some(v) = f.get("version").and_then(Version::from_str_exact) {
                    c.version = v;
                    c.parser.set_version(v);
                }
            }
            Command::Message => {
                let dest = f.get("destination").unwrap_or("").to_owned();
                let mid = f.get("message-id").expect("message-id").to_owned();
                let sub = f.get("subscription").expect("subscription").to_owned();
                assert_eq!(
                    f.get("content-length").and_then(|l| l.parse::<usize>().ok()),
                    Some(f.body.len())
                );
                if !dest.starts_with("/queue/") {
                    return;
                }
                assert!(!self.done.contains(&mid), "acked/consumed queue message {mid} delivered again");
                assert!(!self.in_flight.contains(&mid), "queue message {mid} delivered twice at once");
                let c = self.clients[i].as_mut().expect("client");
                if c.tainted || !c.session.is_connected() {
                    return;
                }
                let mode = c.subs.get(&sub).cloned().unwrap_or_else(|| "auto".into());
                if mode == "auto" {
                    self.done.insert(mid);
                } else {
                    assert!(f.get("ack").is_some(), "client-ack MESSAGE without ack header");
                    c.outstanding.push(Outstanding { sub, ack: f.get("ack").map(str::to_owned), message_id: mid.clone() });
                    self.in_flight.insert(mid);
                }
            }
            Command::Error => self.closed(i),
            _ => {}
        }
    }

    fn run(&mut self, op: Op) {
        match op {
            Op::Connect { client, version, heart_beat, user } => {
                let i = self.slot(client);
                if self.clients[i].as_ref().is_some_and(|c| !c.session.is_closed()) && self.connected(i) {
                    // A second CONNECT on a live session: a protocol error.
                } else {
                    self.closed(i);
                    self.clients[i] = Some(Client {
                        session: self.broker.open_session(self.now),
                        parser: Parser::new(Version::V1_2, ParseLimits::default()),
                        buf: BytesMut::new(),
                        paused: false,
                        version: Version::V1_2,
                        subs: HashMap::new(),
                        outstanding: Vec::new(),
                        txs: HashMap::new(),
                        tainted: false,
                    });
                }
                let versions = ["1.0", "1.1", "1.2", "1.0,1.1", "1.1,1.2", "9.9"];
                let mut f = Frame::new(if version & 0x80 != 0 { Command::Stomp } else { Command::Connect })
                    .header("host", "h");
                if version % 7 != 6 {
                    f = f.header("accept-version", versions[version as usize % 7 % 6]);
                }
                if let Some((a, b)) = heart_beat {
                    f = f.header("heart-beat", format!("{a},{b}"));
                }
                if let Some(u) = user {
                    f = f.header("login", format!("user{}", u % 3));
                }
                self.feed(i, f);
            }
            Op::Subscribe { client, id, dest, ack, prefetch, receipt } => {
                let i = self.slot(client);
                let id = format!("s{}", id % 6);
                let mode = ["auto", "client", "client-individual"][ack as usize % 3];
                let mut f = Frame::new(Command::Subscribe)
                    .header("id", id.as_str())
                    .header("destination", DESTS[dest as usize % DESTS.len()])
                    .header("ack", mode);
                if let Some(p) = prefetch {
                    f = f.header("prefetch-count", (p % 5).to_string());
                }
                if receipt {
                    f = f.header("receipt", "r");
                }
                let fresh = self.clients[i].as_ref().is_some_and(|c| !c.subs.contains_key(&id));
                self.feed(i, f);
                if fresh && self.connected(i)
                    && let Some(c) = self.clients[i].as_mut()
                {
                    c.subs.insert(id, mode.to_owned());
                }
            }
            Op::Unsubscribe { client, id } => {
                let i = self.slot(client);
                let id = format!("s{}", id % 6);
                self.feed(i, Frame::new(Command::Unsubscribe).header("id", id.as_str()));
                if self.connected(i)
                    && let Some(c) = self.clients[i].as_mut()
                {
                    c.subs.remove(&id);
                    let gone: Vec<Outstanding> = c.outstanding.iter().filter(|o| o.sub == id).cloned().collect();
                    c.outstanding.retain(|o| o.sub != id);
                    for o in gone {
                        self.in_flight.remove(&o.message_id);
                    }
                }
            }
            Op::Send { client, dest, len, flags } => {
                let i = self.slot(client);
                let tx = (flags & 0x07 == 0).then_some(flags >> 3);
                let to_user = (flags & 0x60 == 0).then_some(flags);
                let receipt = flags & 0x80 != 0;
                let dest = match to_user {
                    Some(u) => format!("/user/user{}/queue/u", u % 3),
                    None => DESTS[dest as usize % DESTS.len()].replace("**", "z").replace('*', "w"),
                };
                let mut f = Frame::new(Command::Send)
                    .header("destination", dest)
                    .header("content-type", "text/plain")
                    .body(Bytes::from(vec![b'x'; len as usize * 4]));
                if len % 5 == 1 {
                    // Expires within 0-2.5 s of the fake wall clock.
                    f = f.header("expires", (self.clock.now_ms() + u64::from(len) * 10).to_string());
                }
                if let Some(t) = tx {
                    f = f.header("transaction", format!("t{}", t % 3));
                }
                if receipt {
                    f = f.header("receipt", "r");
                }
                self.feed(i, f);
            }
            Op::Ack { client, which, flags } => {
                let i = self.slot(client);
                let nack = flags & 1 != 0;
                let tx = (flags & 0x06 == 0).then_some(flags >> 3);
                let Some(c) = self.clients[i].as_ref() else { return };
                if c.outstanding.is_empty() || c.tainted {
                    // An ACK for nothing: must be an error.
                    self.feed(i, Frame::new(Command::Ack).header("id", "9-9").header("message-id", "nope").header("subscription", "s0"));
                    return;
                }
                let idx = which as usize % c.outstanding.len();
                let o = c.outstanding[idx].clone();
                let covered = Self::covered(c, idx);
                let version = c.version;
                let mut f = Frame::new(if nack { Command::Nack } else { Command::Ack });
                f = match version {
                    Version::V1_2 => f.header("id", o.ack.clone().unwrap_or_default()),
                    Version::V1_1 => f.header("message-id", o.message_id.as_str()).header("subscription", o.sub.as_str()),
                    _ => f.header("message-id", o.message_id.as_str()),
                };
                let tx_id = tx.map(|t| format!("t{}", t % 3));
                if let Some(t) = &tx_id {
                    f = f.header("transaction", t.as_str());
                }
                self.feed(i, f);
                if !self.connected(i) {
                    return;
                }
                match tx_id {
                    Some(t) => {
                        if let Some(c) = self.clients[i].as_mut()
                            && let Some(ops) = c.txs.get_mut(&t)
                        {
                            ops.push((covered, nack));
                        }
                    }
                    None => self.settle(i, &covered, nack),
                }
            }
            Op::Begin { client, tx } => {
                let i = self.slot(client);
                let t = format!("t{}", tx % 3);
                let fresh = self.clients[i].as_ref().is_some_and(|c| !c.txs.contains_key(&t));
                self.feed(i, Frame::new(Command::Begin).header("transaction", t.as_str()));
                if fresh && self.connected(i)
                    && let Some(c) = self.clients[i].as_mut()
                {
                    c.txs.insert(t, Vec::new());
                }
            }
            Op::Commit { client, tx } => {
                let i = self.slot(client);
                let t = format!("t{}", tx % 3);
                self.feed(i, Frame::new(Command::Commit).header("transaction", t.as_str()));
                if self.connected(i) {
                    let ops = self.clients[i].as_mut().and_then(|c| c.txs.remove(&t)).unwrap_or_default();
                    for (ids, nack) in ops {
                        // Only what is still outstanding is affected (the broker skips the rest).
                        let still: Vec<String> = match self.clients[i].as_ref() {
                            Some(c) => ids.into_iter().filter(|id| c.outstanding.iter().any(|o| &o.message_id == id)).collect(),
                            None => Vec::new(),
                        };
                        self.settle(i, &still, nack);
                    }
                }
            }
            Op::Abort { client, tx } => {
                let i = self.slot(client);
                let t = format!("t{}", tx % 3);
                self.feed(i, Frame::new(Command::Abort).header("transaction", t.as_str()));
                if let Some(c) = self.clients[i].as_mut() {
                    c.txs.remove(&t);
                }
            }
            Op::Disconnect { client, receipt } => {
                let i = self.slot(client);
                let mut f = Frame::new(Command::Disconnect);
                if receipt {
                    f = f.header("receipt", "bye");
                }
                self.feed(i, f);
            }
            Op::Drop { client } => {
                let i = self.slot(client);
                self.closed(i);
                self.clients[i] = None;
            }
            Op::Pause { client, paused } => {
                let i = self.slot(client);
                if let Some(c) = self.clients[i].as_mut() {
                    c.paused = paused;
                }
            }
            Op::Advance { ms, alive } => {
                self.now += Duration::from_millis(u64::from(ms % 4000));
                self.clock.advance(Duration::from_millis(u64::from(ms % 4000)));
                let now = self.now;
                for (i, c) in self.clients.iter_mut().enumerate() {
                    let Some(c) = c.as_mut() else { continue };
                    if alive & (1 << i) != 0 {
                        c.session.note_activity(now);
                    }
                    if c.session.poll_timeout().is_some_and(|t| t <= now) {
                        c.session.handle_timeout(now);
                    }
                }
            }
            Op::Raw { client, command, headers } => {
                let i = self.slot(client);
                let names = ["destination", "id", "ack", "receipt", "transaction", "message-id", "subscription", "prefetch-count"];
                let mut f = Frame::new(COMMANDS[command as usize % COMMANDS.len()]);
                for (n, v) in headers.into_iter().take(6) {
                    f = f.header(names[n as usize % names.len()], v);
                }
                let taints = matches!(
                    f.command,
                    Command::Subscribe
                        | Command::Unsubscribe
                        | Command::Ack
                        | Command::Nack
                        | Command::Begin
                        | Command::Commit
                        | Command::Abort
                );
                self.feed(i, f);
                if taints && let Some(c) = self.clients[i].as_mut() {
                    c.tainted = true;
                    for o in c.outstanding.drain(..) {
                        self.in_flight.remove(&o.message_id);
                    }
                }
            }
            Op::Shutdown => self.broker.shutdown(),
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let clock = ManualClock::new(std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let mut m = Model {
        broker: Broker::new(config(&clock)),
        clock,
        now: Instant::now(),
        clients: (0..CLIENTS).map(|_| None).collect(),
        done: HashSet::new(),
        in_flight: HashSet::new(),
    };
    for op in ops.into_iter().take(200) {
        m.run(op);
        m.pump();
    }
    m.clients.clear();
    let metrics = m.broker.metrics();
    assert_eq!(metrics.subscriptions, 0, "subscriptions leaked");
    assert_eq!(metrics.backend.subscriptions, 0, "backend subscriptions leaked");
    assert_eq!(metrics.connections, 0, "connections leaked");
});
