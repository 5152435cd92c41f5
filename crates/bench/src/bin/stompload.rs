//! STOMP load generator over TCP, for any STOMP 1.2 broker (switchboard, RabbitMQ's STOMP plugin,
//! ActiveMQ...), built on switchboard-stomp's parser and encoder and tokio.
//!
//! ```text
//! stompload [--pubs P] [--subs S] [--size BYTES] [--secs S] [--warmup W] [--dest DEST]
//!           [--window K] [--login L] [--passcode P] [--threads T] [--ack auto|client-individual]
//!           HOST:PORT[,HOST:PORT...]
//! stompload open [--rate R] [--conns N] [--size BYTES] [--secs S] [--warmup W] [--prefix P]
//!                [--login L] [--passcode P] [--threads T] HOST:PORT
//! stompload idle --conns N --pid PID [--ws] [--heart-beat MS] [--hold SECS] ADDR
//! stompload drain [--messages N] [--size BYTES] [--ack auto|client-individual] [--dest DEST]
//!                 [--login L] [--passcode P] HOST:PORT
//! stompload burst [--conns N] [--login L] [--passcode P] [--threads T] HOST:PORT
//! ```
//!
//! **Throughput** (the first form): `S` subscribers subscribe to `DEST` (default `/topic/load`:
//! every subscriber gets every message; a `/queue/...` destination makes them compete), each
//! subscription confirmed by a RECEIPT before anything is sent. Then `P` publishers send
//! `BYTES`-byte messages as fast as the broker delivers them, with two bounds: every `K/2`-th
//! SEND asks for a RECEIPT and a publisher never has more than two receipts (about `K` messages)
//! outstanding, the way RabbitMQ's PerfTest bounds unconfirmed messages; and end to end, the
//! messages sent but not yet received by the slowest subscriber (topic) or by anyone (queue) stay
//! under `K` per publisher, so the run measures what the broker delivers, not how fast its
//! slow-consumer policy drops subscribers that fall behind. Each body starts with its send time,
//! so subscribers measure end-to-end latency. Only messages received after the `W`-second warm-up
//! and within the measured `S` seconds count. `--ack client-individual` makes the subscribers
//! ACK every MESSAGE on its own (`auto`, the default, acknowledges nothing). Several
//! comma-separated addresses (the nodes of a switchboard cluster) spread the connections round
//! robin: subscriber `i` and publisher `j` connect to addresses `i % n` and `j % n`.
//!
//! **Open-loop latency** (`open`): `N` connections (default 1000) in `N/2` pairs, one publisher
//! and one subscriber per topic `PREFIX.i` (default `/topic/open.i`): many small rooms, every
//! message delivered once, so the delivered rate equals the offered one. A pacer thread releases
//! messages on a fixed schedule, `R` per second (default 10 000) over all publishers, message `j`
//! at `j / R` seconds to publisher `j % (N/2)`, whether or not the broker keeps up; each body
//! carries that intended send time, and latency is receive time - intended send time, so a
//! broker that stalls (or a write blocked by TCP back-pressure) shows up as latency instead of
//! slowing the senders down (no coordinated omission). After the warm-up, messages intended in
//! the `S`-second window count; subscribers keep reading for up to [`DRAIN`] after it for the
//! late ones. It reports offered, sent and delivered rates, p50/p99/p99.9/max, messages that
//! never arrived, and the generator's own lag (write time - intended time of the first message
//! of each write, p99, in the window), and **fails**
//! (exit status 2, after its `RESULT` line) when the broker delivered less than 95% of the
//! offered rate, or on any error.
//!
//! **Idle memory** (`idle`): opens `N` connections (TCP STOMP to `ADDR`, or WebSocket STOMP with
//! `--ws` to `ws://ADDR/chat`), each CONNECTed (heart-beats off, or `--heart-beat MS` both ways)
//! and SUBSCRIBEd to a topic of its own, and reports how much the resident memory of process
//! `PID` (the broker, read from `/proc/PID/status`) grew per connection. The first 50
//! connections are opened before the baseline is taken, so one-off allocations (runtime,
//! first-use tables) do not count. Then the connections sit idle for `--hold SECS` (default 0,
//! or three heart-beat intervals), sending heart-beats and counting the server's, and the
//! liveness check sends one MESSAGE to every connection's topic from one more connection: the
//! run **fails** unless every connection receives its own, and (with heart-beats over a hold of
//! two intervals or more) unless every connection got at least one heart-beat from the server.
//! The resident memory after that message is reported too (what traffic left behind).
//!
//! **Backlog drain** (`drain`): see [`drain`](mod@drain): `N` messages queued first, then one
//! default consumer drains them; fails unless all arrive in order without an ERROR.
//!
//! **Connect burst** (`burst`): see [`burst`](mod@burst): `N` clients connect at one instant
//! (SYN retries, listen-queue drops), then all CONNECT at once and are held; fails unless all
//! `N` get CONNECTED.
//!
//! Each form prints a summary and one machine-readable `RESULT ...` line for `cargo xtask load`
//! (`all_published`/`all_delivered` count the warm-up too, for CPU-per-message figures).
//! Everything is bounded: each connect and each wait for a frame by [`IO_TIMEOUT`], the whole
//! run by its phases plus [`RUN_SLACK`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use switchboard_stomp::{Command, Frame, Limits, Parsed, Parser, Version, encode_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// Longest wait for a connect, a CONNECTED, a RECEIPT or (for a subscriber) the next frame.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time the whole run may take beyond connect + warm-up + measurement.
const RUN_SLACK: Duration = Duration::from_secs(30);
/// Highest latency the histogram tracks (higher values are clamped): 60 s, in nanoseconds.
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// Bytes of a body that carry its send time (nanoseconds since the run's epoch, little-endian).
const STAMP: usize = 8;

const USAGE: &str = "usage: stompload [--pubs P] [--subs S] [--size BYTES] [--secs S] [--warmup W] \
[--dest DEST] [--window K] [--login L] [--passcode P] [--threads T] \
[--ack auto|client-individual] HOST:PORT[,HOST:PORT...]\n       \
stompload open [--rate R] [--conns N] [--size BYTES] [--secs S] [--warmup W] [--prefix P] \
[--login L] [--passcode P] [--threads T] HOST:PORT\n       \
stompload idle --conns N --pid PID [--ws] [--heart-beat MS] [--hold SECS] ADDR\n       \
stompload drain [--messages N] [--size BYTES] [--ack auto|client-individual] [--dest DEST] \
[--login L] [--passcode P] HOST:PORT\n       \
stompload burst [--conns N] [--login L] [--passcode P] [--threads T] HOST:PORT";

#[path = "stompload/burst.rs"]
mod burst;

#[path = "stompload/drain.rs"]
mod drain;

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T = ()> = std::result::Result<T, Error>;

#[derive(Debug, Clone)]
struct Args {
    addr: String,
    pubs: usize,
    subs: usize,
    size: usize,
    secs: f64,
    warmup: f64,
    dest: String,
    window: usize,
    login: Option<String>,
    passcode: Option<String>,
    threads: usize,
    /// `auto` (the default) or `client-individual`: then subscribers ACK every MESSAGE.
    ack: Ack,
}

/// The subscription's `ack` mode.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ack {
    Auto,
    /// Every MESSAGE is acknowledged with its own ACK (STOMP 1.2 `client-individual`).
    ClientIndividual,
}

impl Ack {
    fn as_str(self) -> &'static str {
        match self {
            Ack::Auto => "auto",
            Ack::ClientIndividual => "client-individual",
        }
    }
}

#[derive(Debug, Clone)]
struct IdleArgs {
    addr: String,
    conns: usize,
    pid: u32,
    ws: bool,
    /// Heart-beats the connections ask for (both ways, ms); 0 = off.
    heart_beat_ms: u64,
    /// How long the connections sit idle after the measurement, before the liveness check.
    hold: Duration,
}

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a String> {
    it.next()
        .ok_or_else(|| format!("{flag} needs a value\n{USAGE}").into())
}

fn number<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T> {
    s.parse()
        .map_err(|_| format!("{flag}: not a number: {s}\n{USAGE}").into())
}

fn parse_args(argv: &[String]) -> Result<Args> {
    let mut a = Args {
        addr: String::new(),
        pubs: 1,
        subs: 1,
        size: 128,
        secs: 5.0,
        warmup: 1.0,
        dest: "/topic/load".into(),
        window: 256,
        login: None,
        passcode: None,
        threads: 2,
        ack: Ack::Auto,
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--pubs" => a.pubs = number(value(&mut it, arg)?, arg)?,
            "--subs" => a.subs = number(value(&mut it, arg)?, arg)?,
            "--size" => a.size = number(value(&mut it, arg)?, arg)?,
            "--secs" => a.secs = number(value(&mut it, arg)?, arg)?,
            "--warmup" => a.warmup = number(value(&mut it, arg)?, arg)?,
            "--dest" => a.dest = value(&mut it, arg)?.clone(),
            "--window" => a.window = number(value(&mut it, arg)?, arg)?,
            "--login" => a.login = Some(value(&mut it, arg)?.clone()),
            "--passcode" => a.passcode = Some(value(&mut it, arg)?.clone()),
            "--threads" => a.threads = number(value(&mut it, arg)?, arg)?,
            "--ack" => {
                a.ack = match value(&mut it, arg)?.as_str() {
                    "auto" => Ack::Auto,
                    "client-individual" => Ack::ClientIndividual,
                    other => {
                        return Err(format!(
                            "--ack: `{other}` (auto or client-individual)\n{USAGE}"
                        )
                        .into());
                    }
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown flag {s}\n{USAGE}").into()),
            s => a.addr = s.to_owned(),
        }
    }
    if a.addr.is_empty() || a.addr.split(',').any(str::is_empty) {
        return Err(format!("missing HOST:PORT (or an empty one in a list)\n{USAGE}").into());
    }
    if a.pubs == 0 || a.subs == 0 || a.threads == 0 {
        return Err("--pubs, --subs and --threads must be at least 1".into());
    }
    if a.window < 2 {
        return Err("--window must be at least 2".into());
    }
    if !(a.secs > 0.0 && a.secs <= 3600.0 && a.warmup >= 0.0 && a.warmup <= 600.0) {
        return Err("--secs must be in (0, 3600] and --warmup in [0, 600]".into());
    }
    a.size = a.size.max(STAMP);
    Ok(a)
}

fn parse_idle(argv: &[String]) -> Result<IdleArgs> {
    let mut a = IdleArgs {
        addr: String::new(),
        conns: 1000,
        pid: 0,
        ws: false,
        heart_beat_ms: 0,
        hold: Duration::ZERO,
    };
    let mut hold = None;
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--conns" => a.conns = number(value(&mut it, arg)?, arg)?,
            "--pid" => a.pid = number(value(&mut it, arg)?, arg)?,
            "--ws" => a.ws = true,
            "--heart-beat" => a.heart_beat_ms = number(value(&mut it, arg)?, arg)?,
            "--hold" => hold = Some(number::<f64>(value(&mut it, arg)?, arg)?),
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown flag {s}\n{USAGE}").into()),
            s => a.addr = s.to_owned(),
        }
    }
    if a.addr.is_empty() || a.pid == 0 || a.conns == 0 {
        return Err(format!("idle needs --conns N, --pid PID and ADDR\n{USAGE}").into());
    }
    if a.heart_beat_ms > 600_000 {
        return Err("--heart-beat must be at most 600000 ms".into());
    }
    // With heart-beats, hold long enough for the server to send some: three intervals.
    let hold = hold.unwrap_or(if a.heart_beat_ms > 0 {
        3.0 * a.heart_beat_ms as f64 / 1000.0
    } else {
        0.0
    });
    if !(0.0..=3600.0).contains(&hold) {
        return Err("--hold must be in [0, 3600] seconds".into());
    }
    a.hold = Duration::from_secs_f64(hold);
    Ok(a)
}

/// One STOMP connection over TCP: buffered reads through the parser, frames written at once.
struct Conn {
    io: TcpStream,
    rd: BytesMut,
    parser: Parser,
}

impl Conn {
    async fn open(addr: &str, login: Option<&str>, passcode: Option<&str>) -> Result<Conn> {
        let io = timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect to {addr} timed out"))??;
        io.set_nodelay(true)?;
        let mut c = Conn {
            io,
            rd: BytesMut::with_capacity(64 * 1024),
            parser: Parser::before_connect(Limits::default()),
        };
        let mut f = Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "/")
            .header("heart-beat", "0,0");
        if let Some(l) = login {
            f = f.header("login", l.to_owned());
        }
        if let Some(p) = passcode {
            f = f.header("passcode", p.to_owned());
        }
        c.send(&f).await?;
        let reply = c.next_frame().await?;
        if reply.command != Command::Connected {
            return Err(format!("CONNECT refused: {}", describe(&reply)).into());
        }
        c.parser.set_version(Version::V1_2);
        Ok(c)
    }

    async fn send(&mut self, f: &Frame) -> Result {
        let mut out = BytesMut::new();
        encode_frame(f, Version::V1_2, &mut out)?;
        self.io.write_all(&out).await?;
        Ok(())
    }

    /// The next frame (heart-beats skipped), within [`IO_TIMEOUT`].
    async fn next_frame(&mut self) -> Result<Frame> {
        self.next_frame_flushing(&mut BytesMut::new()).await
    }

    /// [`Conn::next_frame`], writing `pending` (frames queued by the caller, e.g. ACKs) before
    /// it waits for the socket: replies to every frame already buffered go out in one write.
    async fn next_frame_flushing(&mut self, pending: &mut BytesMut) -> Result<Frame> {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            match self.parser.parse(&mut self.rd)? {
                Some(Parsed::Frame(f)) => return Ok(f),
                Some(Parsed::HeartBeat) => continue,
                None => {}
            }
            if !pending.is_empty() {
                self.io.write_all(pending).await?;
                pending.clear();
            }
            if self.rd.capacity() - self.rd.len() < 16 * 1024 {
                self.rd.reserve(64 * 1024);
            }
            let n = tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.rd))
                .await
                .map_err(|_| "no frame from the broker in time")??;
            if n == 0 {
                return Err("the broker closed the connection".into());
            }
        }
    }
}

fn describe(f: &Frame) -> String {
    format!(
        "{} {}: {}",
        f.command.as_str(),
        f.get("message").unwrap_or(""),
        String::from_utf8_lossy(&f.body)
    )
}

/// What one subscriber saw.
struct SubResult {
    received: u64,
    hist: Histogram<u64>,
    error: Option<String>,
}

/// Shared counters of the run, and the end-to-end flow control.
struct Counters {
    published: AtomicU64,
    published_measured: AtomicU64,
    /// Messages each subscriber received so far (warm-up included).
    received: Vec<AtomicU64>,
    /// Woken by subscribers as they make progress.
    progress: tokio::sync::Notify,
    /// Every subscriber gets every message (a topic), or each message goes to one (a queue).
    fan_out: bool,
}

impl Counters {
    /// Messages sent and not yet received (by the slowest subscriber when fanning out).
    fn in_flight(&self) -> u64 {
        let done = if self.fan_out {
            self.received
                .iter()
                .map(|r| r.load(Ordering::Acquire))
                .min()
                .unwrap_or(0)
        } else {
            self.received
                .iter()
                .map(|r| r.load(Ordering::Acquire))
                .sum()
        };
        self.published.load(Ordering::Acquire).saturating_sub(done)
    }
}

async fn subscriber(
    mut c: Conn,
    index: usize,
    ack: Ack,
    counters: Arc<Counters>,
    epoch: Instant,
    measure_from: Instant,
    measure_to: Instant,
) -> SubResult {
    let mut r = SubResult {
        received: 0,
        hist: Histogram::new_with_max(MAX_LATENCY_NS, 3).expect("valid histogram bounds"),
        error: None,
    };
    let mut acks = BytesMut::new();
    loop {
        let now = Instant::now();
        if now >= measure_to {
            break;
        }
        let f = match tokio::time::timeout_at(measure_to, c.next_frame_flushing(&mut acks)).await {
            Err(_) => break,
            Ok(Err(e)) => {
                r.error = Some(e.to_string());
                break;
            }
            Ok(Ok(f)) => f,
        };
        match f.command {
            Command::Message => {
                if ack == Ack::ClientIndividual {
                    let Some(id) = f.get("ack") else {
                        r.error = Some("a client-individual MESSAGE without an ack header".into());
                        break;
                    };
                    let frame = Frame::new(Command::Ack).header("id", id.to_owned());
                    if let Err(e) = encode_frame(&frame, Version::V1_2, &mut acks) {
                        r.error = Some(e.to_string());
                        break;
                    }
                }
                let seen = counters.received[index].fetch_add(1, Ordering::AcqRel) + 1;
                if seen.is_multiple_of(32) {
                    counters.progress.notify_waiters();
                }
                let now = Instant::now();
                if now < measure_from || f.body.len() < STAMP {
                    continue;
                }
                let sent = (&f.body[..STAMP]).get_u64_le();
                let at = now.duration_since(epoch).as_nanos() as u64;
                r.received += 1;
                let _ = r
                    .hist
                    .record(at.saturating_sub(sent).clamp(1, MAX_LATENCY_NS));
            }
            Command::Error => {
                r.error = Some(describe(&f));
                break;
            }
            _ => {}
        }
    }
    let _ = c.send(&Frame::new(Command::Disconnect)).await;
    r
}

async fn publisher(
    mut c: Conn,
    a: Arc<Args>,
    epoch: Instant,
    measure_from: Instant,
    measure_to: Instant,
    counters: Arc<Counters>,
) -> Option<String> {
    let half = (a.window / 2).max(1);
    let padding = Bytes::from(vec![b'x'; a.size - STAMP]);
    let mut outstanding = 0usize;
    let mut batch = BytesMut::new();
    let mut n: u64 = 0;
    let limit = (a.window * a.pubs) as u64;
    while Instant::now() < measure_to {
        // End-to-end bound: wait while the subscribers are `limit` messages behind.
        while counters.in_flight() + half as u64 > limit {
            if Instant::now() >= measure_to {
                break;
            }
            let _ = timeout(Duration::from_millis(5), counters.progress.notified()).await;
        }
        batch.clear();
        for i in 0..half {
            let mut body = BytesMut::with_capacity(a.size);
            body.put_u64_le(Instant::now().duration_since(epoch).as_nanos() as u64);
            body.extend_from_slice(&padding);
            let mut f = Frame::new(Command::Send)
                .header("destination", a.dest.clone())
                .body(body.freeze());
            if i + 1 == half {
                f = f.header("receipt", format!("r{n}"));
            }
            if let Err(e) = encode_frame(&f, Version::V1_2, &mut batch) {
                return Some(e.to_string());
            }
            n += 1;
        }
        if let Err(e) = c.io.write_all(&batch).await {
            return Some(e.to_string());
        }
        let now = Instant::now();
        counters.published.fetch_add(half as u64, Ordering::Relaxed);
        if now >= measure_from && now < measure_to {
            counters
                .published_measured
                .fetch_add(half as u64, Ordering::Relaxed);
        }
        outstanding += 1;
        while outstanding >= 2 {
            match c.next_frame().await {
                Ok(f) if f.command == Command::Receipt => outstanding -= 1,
                Ok(f) if f.command == Command::Error => return Some(describe(&f)),
                Ok(_) => {}
                Err(e) => return Some(e.to_string()),
            }
        }
    }
    let _ = c.send(&Frame::new(Command::Disconnect)).await;
    None
}

/// Address `i % n` of the `n` comma-separated addresses in `addrs` (one node of a cluster per
/// connection, round robin).
fn node(addrs: &str, i: usize) -> &str {
    let n = addrs.split(',').count();
    addrs.split(',').nth(i % n).unwrap_or(addrs)
}

async fn throughput(a: Args) -> Result {
    let a = Arc::new(a);
    let login = a.login.as_deref();
    let passcode = a.passcode.as_deref();
    // Subscribers first, each subscription confirmed, so no message is sent before all listen.
    let mut subs = Vec::with_capacity(a.subs);
    for i in 0..a.subs {
        let mut c = Conn::open(node(&a.addr, i), login, passcode).await?;
        c.send(
            &Frame::new(Command::Subscribe)
                .header("id", "0")
                .header("destination", a.dest.clone())
                .header("ack", a.ack.as_str())
                .header("receipt", format!("sub{i}")),
        )
        .await?;
        let f = c.next_frame().await?;
        if f.command != Command::Receipt {
            return Err(format!("SUBSCRIBE not confirmed: {}", describe(&f)).into());
        }
        subs.push(c);
    }
    let mut pubs = Vec::with_capacity(a.pubs);
    for j in 0..a.pubs {
        pubs.push(Conn::open(node(&a.addr, j), login, passcode).await?);
    }
    let epoch = Instant::now();
    let measure_from = epoch + Duration::from_secs_f64(a.warmup);
    let measure_to = measure_from + Duration::from_secs_f64(a.secs);
    let counters = Arc::new(Counters {
        published: AtomicU64::new(0),
        published_measured: AtomicU64::new(0),
        received: (0..a.subs).map(|_| AtomicU64::new(0)).collect(),
        progress: tokio::sync::Notify::new(),
        fan_out: !a.dest.starts_with("/queue/"),
    });
    let sub_tasks: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(subscriber(
                c,
                i,
                a.ack,
                counters.clone(),
                epoch,
                measure_from,
                measure_to,
            ))
        })
        .collect();
    let pub_tasks: Vec<_> = pubs
        .into_iter()
        .map(|c| {
            tokio::spawn(publisher(
                c,
                a.clone(),
                epoch,
                measure_from,
                measure_to,
                counters.clone(),
            ))
        })
        .collect();
    let mut errors = Vec::new();
    for t in pub_tasks {
        if let Some(e) = t.await? {
            errors.push(format!("publisher: {e}"));
        }
    }
    let mut hist = Histogram::<u64>::new_with_max(MAX_LATENCY_NS, 3)?;
    let mut received = 0;
    for t in sub_tasks {
        let r = t.await?;
        received += r.received;
        hist.add(&r.hist)?;
        if let Some(e) = r.error {
            errors.push(format!("subscriber: {e}"));
        }
    }
    let published = counters.published_measured.load(Ordering::Relaxed);
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let (pub_rate, rate) = (published as f64 / a.secs, received as f64 / a.secs);
    let (p50, p99, p999, max) = (us(0.5), us(0.99), us(0.999), hist.max() as f64 / 1000.0);
    println!(
        "stompload: {} pubs -> {} {} subs ({} ack), {} B: published {pub_rate:.0} msgs/s, delivered \
         {rate:.0} msgs/s, latency p50 {p50:.1} µs p99 {p99:.1} µs p99.9 {p999:.1} µs max \
         {max:.1} µs, {} errors",
        a.pubs,
        a.dest,
        a.subs,
        a.ack.as_str(),
        a.size,
        errors.len()
    );
    for e in errors.iter().take(5) {
        println!("stompload: error: {e}");
    }
    println!(
        "RESULT pubs={} subs={} size={} secs={} dest={} ack={} published_per_sec={pub_rate:.0} \
         delivered_per_sec={rate:.0} p50_us={p50:.1} p99_us={p99:.1} p999_us={p999:.1} \
         max_us={max:.1} errors={} all_published={} all_delivered={}",
        a.pubs,
        a.subs,
        a.size,
        a.secs,
        a.dest,
        a.ack.as_str(),
        errors.len(),
        counters.published.load(Ordering::Relaxed),
        counters
            .received
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .sum::<u64>()
    );
    if received == 0 {
        return Err("no message was delivered in the measured window".into());
    }
    Ok(())
}

/// `open`: the open-loop latency test.
#[derive(Debug, Clone)]
struct OpenArgs {
    addr: String,
    /// Messages per second offered, over all publishers together.
    rate: f64,
    /// Connections: half publish, half subscribe, in pairs.
    conns: usize,
    size: usize,
    secs: f64,
    warmup: f64,
    /// Destination prefix: pair `i` uses `PREFIX.i`.
    prefix: String,
    login: Option<String>,
    passcode: Option<String>,
    threads: usize,
}

fn parse_open(argv: &[String]) -> Result<OpenArgs> {
    let mut a = OpenArgs {
        addr: String::new(),
        rate: 10_000.0,
        conns: 1000,
        size: 128,
        secs: 5.0,
        warmup: 2.0,
        prefix: "/topic/open".into(),
        login: None,
        passcode: None,
        threads: 2,
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rate" => a.rate = number(value(&mut it, arg)?, arg)?,
            "--conns" => a.conns = number(value(&mut it, arg)?, arg)?,
            "--size" => a.size = number(value(&mut it, arg)?, arg)?,
            "--secs" => a.secs = number(value(&mut it, arg)?, arg)?,
            "--warmup" => a.warmup = number(value(&mut it, arg)?, arg)?,
            "--prefix" => a.prefix = value(&mut it, arg)?.clone(),
            "--login" => a.login = Some(value(&mut it, arg)?.clone()),
            "--passcode" => a.passcode = Some(value(&mut it, arg)?.clone()),
            "--threads" => a.threads = number(value(&mut it, arg)?, arg)?,
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown flag {s}\n{USAGE}").into()),
            s => a.addr = s.to_owned(),
        }
    }
    if a.addr.is_empty() {
        return Err(format!("missing HOST:PORT\n{USAGE}").into());
    }
    if a.conns < 2 || a.threads == 0 {
        return Err("--conns must be at least 2 and --threads at least 1".into());
    }
    if !(a.rate >= 1.0 && a.rate <= 10_000_000.0) {
        return Err("--rate must be in [1, 10000000] messages per second".into());
    }
    if !(a.secs > 0.0 && a.secs <= 3600.0 && a.warmup >= 0.0 && a.warmup <= 600.0) {
        return Err("--secs must be in (0, 3600] and --warmup in [0, 600]".into());
    }
    a.size = a.size.max(STAMP);
    Ok(a)
}

/// Shared state of an open-loop run.
struct OpenCounters {
    /// Messages whose intended send time fell in the measured window (set by the pacer).
    scheduled_measured: AtomicU64,
    /// Of those, how many the publishers wrote.
    sent_measured: AtomicU64,
    /// Of those, how many the subscribers received (any time before the drain ends).
    received_measured: AtomicU64,
    /// Messages received while the measured window was open (whatever their send time).
    received_in_window: AtomicU64,
    /// The pacer released its last message.
    pacer_done: std::sync::atomic::AtomicBool,
    /// The pacer is done and every message of the window arrived: subscribers may stop.
    done: std::sync::atomic::AtomicBool,
    done_notify: tokio::sync::Notify,
}

impl OpenCounters {
    fn check_done(&self) {
        let scheduled = self.scheduled_measured.load(Ordering::Acquire);
        if self.pacer_done.load(Ordering::Acquire)
            && self.received_measured.load(Ordering::Acquire) >= scheduled
        {
            self.done.store(true, Ordering::Release);
            self.done_notify.notify_waiters();
        }
    }
}

/// The pacer: a plain thread that releases message `j` at `epoch + j / rate` (to publisher
/// `j % P`), sleeping between releases; the schedule never waits for the broker, so a
/// stalled broker shows up as latency instead of as fewer messages sent.
fn pacer(
    rate: f64,
    epoch: std::time::Instant,
    measure_from: Duration,
    measure_to: Duration,
    queues: Vec<tokio::sync::mpsc::UnboundedSender<u64>>,
    counters: Arc<OpenCounters>,
) {
    let interval = 1e9 / rate;
    let mut j: u64 = 0;
    let (from, to) = (measure_from.as_nanos() as u64, measure_to.as_nanos() as u64);
    loop {
        let now = epoch.elapsed().as_nanos() as u64;
        // Release every message that is due (several at once when this thread woke late).
        loop {
            let due = (j as f64 * interval) as u64;
            if due > now || due >= to {
                break;
            }
            if due >= from {
                counters.scheduled_measured.fetch_add(1, Ordering::AcqRel);
            }
            if queues[(j % queues.len() as u64) as usize]
                .send(due)
                .is_err()
            {
                return; // a publisher failed; the run reports it
            }
            j += 1;
        }
        let next = (j as f64 * interval) as u64;
        if next >= to {
            break;
        }
        let now = epoch.elapsed().as_nanos() as u64;
        if next > now {
            std::thread::sleep(Duration::from_nanos((next - now).min(1_000_000)));
        }
    }
    drop(queues);
    counters.pacer_done.store(true, Ordering::Release);
    counters.check_done();
}

/// An open-loop publisher: writes every message the pacer released, stamped with its intended
/// send time, batching what queued up while it was busy. It reads its socket only for ERRORs.
async fn open_publisher(
    c: Conn,
    dest: String,
    size: usize,
    (from, to): (u64, u64),
    mut due: tokio::sync::mpsc::UnboundedReceiver<u64>,
    counters: Arc<OpenCounters>,
    epoch: Instant,
) -> (Histogram<u64>, Option<String>) {
    let mut lag = Histogram::<u64>::new_with_max(MAX_LATENCY_NS, 3).expect("valid bounds");
    let padding = Bytes::from(vec![b'x'; size - STAMP]);
    let Conn {
        io,
        mut rd,
        mut parser,
    } = c;
    let (mut rx, mut tx) = io.into_split();
    let mut batch = BytesMut::new();
    let mut stamps = Vec::new();
    loop {
        tokio::select! {
            first = due.recv() => {
                let Some(first) = first else { break };
                stamps.clear();
                stamps.push(first);
                while let Ok(t) = due.try_recv() {
                    stamps.push(t);
                }
                batch.clear();
                for &t in &stamps {
                    let mut body = BytesMut::with_capacity(size);
                    body.put_u64_le(t);
                    body.extend_from_slice(&padding);
                    let f = Frame::new(Command::Send)
                        .header("destination", dest.clone())
                        .body(body.freeze());
                    if let Err(e) = encode_frame(&f, Version::V1_2, &mut batch) {
                        return (lag, Some(e.to_string()));
                    }
                }
                if first >= from && first < to {
                    let late = (Instant::now().duration_since(epoch).as_nanos() as u64)
                        .saturating_sub(first);
                    let _ = lag.record(late.clamp(1, MAX_LATENCY_NS));
                }
                if let Err(e) = tx.write_all(&batch).await {
                    return (lag, Some(e.to_string()));
                }
                let measured = stamps.iter().filter(|&&t| t >= from && t < to).count() as u64;
                counters.sent_measured.fetch_add(measured, Ordering::AcqRel);
            }
            n = rx.read_buf(&mut rd) => {
                match n {
                    Ok(0) => return (lag, Some("the broker closed the connection".into())),
                    Err(e) => return (lag, Some(e.to_string())),
                    Ok(_) => {}
                }
                loop {
                    match parser.parse(&mut rd) {
                        Ok(Some(Parsed::Frame(f))) if f.command == Command::Error => {
                            return (lag, Some(describe(&f)));
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => return (lag, Some(e.to_string())),
                    }
                }
            }
        }
    }
    let mut out = BytesMut::new();
    let _ = encode_frame(&Frame::new(Command::Disconnect), Version::V1_2, &mut out);
    let _ = tx.write_all(&out).await;
    (lag, None)
}

/// An open-loop subscriber: latency = receive time - the message's intended send time.
async fn open_subscriber(
    mut c: Conn,
    (from, to): (u64, u64),
    measure_to: Instant,
    drain_until: Instant,
    counters: Arc<OpenCounters>,
    epoch: Instant,
) -> SubResult {
    let mut r = SubResult {
        received: 0,
        hist: Histogram::new_with_max(MAX_LATENCY_NS, 3).expect("valid histogram bounds"),
        error: None,
    };
    while !counters.done.load(Ordering::Acquire) {
        let f = tokio::select! {
            f = tokio::time::timeout_at(drain_until, c.next_frame()) => f,
            _ = counters.done_notify.notified() => break,
        };
        let f = match f {
            Err(_) => break,
            Ok(Err(e)) => {
                r.error = Some(e.to_string());
                break;
            }
            Ok(Ok(f)) => f,
        };
        match f.command {
            Command::Message if f.body.len() >= STAMP => {
                let now = Instant::now();
                if now < measure_to && now.duration_since(epoch).as_nanos() as u64 >= from {
                    counters.received_in_window.fetch_add(1, Ordering::AcqRel);
                }
                let intended = (&f.body[..STAMP]).get_u64_le();
                if intended >= from && intended < to {
                    r.received += 1;
                    let at = now.duration_since(epoch).as_nanos() as u64;
                    let _ = r
                        .hist
                        .record(at.saturating_sub(intended).clamp(1, MAX_LATENCY_NS));
                    counters.received_measured.fetch_add(1, Ordering::AcqRel);
                    if now >= measure_to {
                        counters.check_done();
                    }
                }
            }
            Command::Error => {
                r.error = Some(describe(&f));
                break;
            }
            _ => {}
        }
    }
    let _ = c.send(&Frame::new(Command::Disconnect)).await;
    r
}

/// How long subscribers keep receiving after the window, for messages sent in it.
const DRAIN: Duration = Duration::from_secs(3);
/// An open-loop run fails when the broker delivered less than this share of the offered rate.
const MIN_ACHIEVED: f64 = 0.95;

async fn open_loop(a: OpenArgs) -> Result {
    let pairs = a.conns / 2;
    let login = a.login.as_deref();
    let passcode = a.passcode.as_deref();
    // One connection at a time, each subscription confirmed before the next connection.
    let mut subs = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let mut c = Conn::open(&a.addr, login, passcode).await?;
        c.send(
            &Frame::new(Command::Subscribe)
                .header("id", "0")
                .header("destination", format!("{}.{i}", a.prefix))
                .header("ack", "auto")
                .header("receipt", format!("sub{i}")),
        )
        .await?;
        let f = c.next_frame().await?;
        if f.command != Command::Receipt {
            return Err(format!("SUBSCRIBE not confirmed: {}", describe(&f)).into());
        }
        subs.push(c);
    }
    let mut pubs = Vec::with_capacity(pairs);
    for _ in 0..pairs {
        pubs.push(Conn::open(&a.addr, login, passcode).await?);
    }
    let epoch = Instant::now();
    let std_epoch = std::time::Instant::now();
    let warmup = Duration::from_secs_f64(a.warmup);
    let window_end = warmup + Duration::from_secs_f64(a.secs);
    let (from, to) = (warmup.as_nanos() as u64, window_end.as_nanos() as u64);
    let measure_to = epoch + window_end;
    let drain_until = measure_to + DRAIN;
    let counters = Arc::new(OpenCounters {
        scheduled_measured: AtomicU64::new(0),
        sent_measured: AtomicU64::new(0),
        received_measured: AtomicU64::new(0),
        received_in_window: AtomicU64::new(0),
        pacer_done: false.into(),
        done: false.into(),
        done_notify: tokio::sync::Notify::new(),
    });
    let sub_tasks: Vec<_> = subs
        .into_iter()
        .map(|c| {
            tokio::spawn(open_subscriber(
                c,
                (from, to),
                measure_to,
                drain_until,
                counters.clone(),
                epoch,
            ))
        })
        .collect();
    let mut queues = Vec::with_capacity(pairs);
    let pub_tasks: Vec<_> = pubs
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            queues.push(tx);
            tokio::spawn(open_publisher(
                c,
                format!("{}.{i}", a.prefix),
                a.size,
                (from, to),
                rx,
                counters.clone(),
                epoch,
            ))
        })
        .collect();
    let pacer_counters = counters.clone();
    let rate = a.rate;
    let pacer = std::thread::Builder::new()
        .name("pacer".into())
        .spawn(move || pacer(rate, std_epoch, warmup, window_end, queues, pacer_counters))?;
    let mut errors = Vec::new();
    let mut lag = Histogram::<u64>::new_with_max(MAX_LATENCY_NS, 3)?;
    for t in pub_tasks {
        let (h, e) = t.await?;
        lag.add(&h)?;
        if let Some(e) = e {
            errors.push(format!("publisher: {e}"));
        }
    }
    let _ = tokio::task::spawn_blocking(move || pacer.join()).await;
    let mut hist = Histogram::<u64>::new_with_max(MAX_LATENCY_NS, 3)?;
    for t in sub_tasks {
        let r = t.await?;
        hist.add(&r.hist)?;
        if let Some(e) = r.error {
            errors.push(format!("subscriber: {e}"));
        }
    }
    let scheduled = counters.scheduled_measured.load(Ordering::Relaxed);
    let sent = counters.sent_measured.load(Ordering::Relaxed);
    let received = counters.received_measured.load(Ordering::Relaxed);
    let offered = scheduled as f64 / a.secs;
    let achieved = counters.received_in_window.load(Ordering::Relaxed) as f64 / a.secs;
    let lost = scheduled.saturating_sub(received);
    let us = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let (p50, p99, p999) = (us(&hist, 0.5), us(&hist, 0.99), us(&hist, 0.999));
    let max = hist.max() as f64 / 1000.0;
    let lag_p99 = us(&lag, 0.99);
    let ok = errors.is_empty() && achieved >= MIN_ACHIEVED * offered && received > 0;
    println!(
        "stompload open: {pairs} publishers -> {pairs} subscribers ({}.N, one pair per topic), {} \
         B, offered {offered:.0} msgs/s, sent {:.0}, delivered {achieved:.0} msgs/s ({:.1}%), \
         {lost} of the window's messages never arrived; latency from the intended send time: \
         p50 {p50:.1} µs p99 {p99:.1} µs p99.9 {p999:.1} µs max {max:.1} µs; the generator's \
         own lag p99 {lag_p99:.1} µs; {} errors",
        a.prefix,
        a.size,
        sent as f64 / a.secs,
        if offered > 0.0 {
            achieved * 100.0 / offered
        } else {
            0.0
        },
        errors.len()
    );
    for e in errors.iter().take(5) {
        println!("stompload: error: {e}");
    }
    println!(
        "RESULT mode=open conns={} size={} secs={} offered_per_sec={offered:.0} \
         sent_per_sec={:.0} delivered_per_sec={achieved:.0} received={received} lost={lost} p50_us={p50:.1} \
         p99_us={p99:.1} p999_us={p999:.1} max_us={max:.1} gen_lag_p99_us={lag_p99:.1} \
         errors={} ok={ok}",
        pairs * 2,
        a.size,
        a.secs,
        sent as f64 / a.secs,
        errors.len()
    );
    if !ok {
        return Err(format!(
            "FAILED: delivered {achieved:.0} msgs/s of {offered:.0} offered (at least {:.0}% \
             needed), {} errors, {lost} messages of the window never arrived",
            MIN_ACHIEVED * 100.0,
            errors.len()
        )
        .into());
    }
    Ok(())
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status").into())
}

/// One idle connection's transport: STOMP over TCP, or STOMP over a WebSocket (one frame per
/// message). Both reads are cancel-safe, so a connection's task can select between its next
/// frame and its next heart-beat.
enum Link {
    Tcp(Box<Conn>),
    Ws(Box<WsLink>),
}

/// STOMP over a WebSocket: the frames' bytes collected from messages for the parser.
struct WsLink {
    ws: switchboard_ws::WebSocketStream<TcpStream>,
    parser: Parser,
    buf: BytesMut,
}

/// What a [`Link`] received.
enum Item {
    Frame(Frame),
    HeartBeat,
}

impl Link {
    /// Opens a connection and CONNECTs (heart-beats `hb_ms,hb_ms`; 0 = off); returns it with the
    /// heart-beat the server answered (`[send, receive]` in ms).
    async fn open(a: &IdleArgs) -> Result<(Link, [u64; 2])> {
        let connect = Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "/")
            .header("heart-beat", format!("{0},{0}", a.heart_beat_ms));
        let mut link = if a.ws {
            use switchboard_ws::{StreamConfig, handshake::ClientRequest};
            let tcp = timeout(IO_TIMEOUT, TcpStream::connect(&a.addr))
                .await
                .map_err(|_| "connect timed out")??;
            tcp.set_nodelay(true)?;
            let req = ClientRequest::new(a.addr.clone(), "/chat").protocols(["v12.stomp"]);
            let (ws, _) = timeout(
                IO_TIMEOUT,
                switchboard_ws::connect(tcp, &req, StreamConfig::default()),
            )
            .await
            .map_err(|_| "handshake timed out")??;
            Link::Ws(Box::new(WsLink {
                ws,
                parser: Parser::before_connect(Limits::default()),
                buf: BytesMut::new(),
            }))
        } else {
            let io = timeout(IO_TIMEOUT, TcpStream::connect(&a.addr))
                .await
                .map_err(|_| "connect timed out")??;
            io.set_nodelay(true)?;
            Link::Tcp(Box::new(Conn {
                io,
                rd: BytesMut::with_capacity(4096),
                parser: Parser::before_connect(Limits::default()),
            }))
        };
        link.send(&connect).await?;
        let reply = link.next_frame().await?;
        if reply.command != Command::Connected {
            return Err(format!("CONNECT refused: {}", describe(&reply)).into());
        }
        match &mut link {
            Link::Tcp(c) => c.parser.set_version(Version::V1_2),
            Link::Ws(w) => w.parser.set_version(Version::V1_2),
        }
        let mut hb = [0, 0];
        if let Some((s, r)) = reply.get("heart-beat").and_then(|v| v.split_once(',')) {
            hb = [s.trim().parse().unwrap_or(0), r.trim().parse().unwrap_or(0)];
        }
        Ok((link, hb))
    }

    async fn send(&mut self, f: &Frame) -> Result {
        let mut out = BytesMut::new();
        encode_frame(f, Version::V1_2, &mut out)?;
        self.send_raw(out.freeze()).await
    }

    async fn send_raw(&mut self, bytes: bytes::Bytes) -> Result {
        match self {
            Link::Tcp(c) => c.io.write_all(&bytes).await?,
            Link::Ws(w) => w.ws.send(switchboard_ws::Message::binary(bytes)).await?,
        }
        Ok(())
    }

    /// The next frame or heart-beat already received, if any.
    fn parse_buffered(&mut self) -> Result<Option<Item>> {
        let (parser, buf) = match self {
            Link::Tcp(c) => (&mut c.parser, &mut c.rd),
            Link::Ws(w) => (&mut w.parser, &mut w.buf),
        };
        Ok(match parser.parse(buf)? {
            Some(Parsed::Frame(f)) => Some(Item::Frame(f)),
            Some(Parsed::HeartBeat) => Some(Item::HeartBeat),
            None => None,
        })
    }

    /// The next frame or heart-beat, however long it takes (cancel-safe).
    async fn next(&mut self) -> Result<Item> {
        loop {
            if let Some(item) = self.parse_buffered()? {
                return Ok(item);
            }
            match self {
                Link::Tcp(c) => {
                    c.rd.reserve(4096);
                    if c.io.read_buf(&mut c.rd).await? == 0 {
                        return Err("the server closed the connection".into());
                    }
                }
                Link::Ws(w) => match w.ws.recv().await {
                    Some(Ok(switchboard_ws::Message::Text(t))) => {
                        w.buf.extend_from_slice(t.as_bytes())
                    }
                    Some(Ok(switchboard_ws::Message::Binary(b))) => w.buf.extend_from_slice(&b),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err("the server closed the WebSocket".into()),
                },
            }
        }
    }

    /// The next frame (heart-beats skipped), within [`IO_TIMEOUT`].
    async fn next_frame(&mut self) -> Result<Frame> {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(Ok(Item::Frame(f))) => return Ok(f),
                Ok(Ok(Item::HeartBeat)) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err("no frame from the server in time".into()),
            }
        }
    }
}

/// The destination of idle connection `i`, and the body the liveness check sends it.
fn idle_destination(i: usize) -> String {
    format!("/topic/idle.{i}")
}
fn idle_body(i: usize) -> String {
    format!("live {i}")
}

/// Opens connection `i`, CONNECTs and SUBSCRIBEs it to its own topic (with a receipt).
async fn idle_one(a: &IdleArgs, i: usize) -> Result<(Link, [u64; 2])> {
    let (mut link, hb) = Link::open(a).await?;
    let subscribe = Frame::new(Command::Subscribe)
        .header("id", "0")
        .header("destination", idle_destination(i))
        .header("receipt", "s");
    link.send(&subscribe).await?;
    let f = link.next_frame().await?;
    if f.command != Command::Receipt {
        return Err(format!("SUBSCRIBE not confirmed: {}", describe(&f)).into());
    }
    Ok((link, hb))
}

/// What one idle connection saw by the end of the run.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Heart-beats from the server while it waited.
    beats: u64,
    /// Whether the liveness MESSAGE (with its own body) arrived.
    live: bool,
}

/// Sits on an idle connection: sends a heart-beat EOL every `send_every` (if any), counts the
/// server's, and returns once its liveness MESSAGE arrives or `stop` flips.
async fn idle_wait(
    mut link: Link,
    i: usize,
    send_every: Option<Duration>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> (Link, Seen) {
    let mut seen = Seen::default();
    let body = idle_body(i);
    let mut tick = send_every.map(|d| tokio::time::interval_at(Instant::now() + d, d));
    loop {
        tokio::select! {
            item = link.next() => match item {
                Ok(Item::HeartBeat) => seen.beats += 1,
                Ok(Item::Frame(f)) => {
                    if f.command == Command::Message && f.body[..] == *body.as_bytes() {
                        seen.live = true;
                        return (link, seen);
                    }
                }
                Err(_) => return (link, seen),
            },
            _ = async { tick.as_mut().expect("guarded").tick().await }, if tick.is_some() => {
                if link.send_raw(bytes::Bytes::from_static(b"\n")).await.is_err() {
                    return (link, seen);
                }
            }
            // (The guard `wait_for` returns must not live in the select's output.)
            _ = async { let _ = stop.wait_for(|s| *s).await; } => return (link, seen),
        }
    }
}

async fn idle(a: IdleArgs) -> Result {
    const WARM: usize = 50;
    let total = a.conns + WARM;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::with_capacity(total);
    let mut server_hb = [0, 0];
    let mut open = |link: Link, hb: [u64; 2], i: usize| {
        server_hb = hb;
        // The client sends every max(ours, the server's wish); 0 on either side means never.
        let send_every = (a.heart_beat_ms > 0 && hb[1] > 0)
            .then(|| Duration::from_millis(a.heart_beat_ms.max(hb[1])));
        tasks.push(tokio::spawn(idle_wait(
            link,
            i,
            send_every,
            stop_rx.clone(),
        )));
    };
    for i in 0..WARM {
        let (link, hb) = idle_one(&a, i).await?;
        open(link, hb, i);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = rss_kib(a.pid)?;
    for i in WARM..total {
        let (link, hb) = idle_one(&a, i).await?;
        open(link, hb, i);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(a.pid)?;
    let per = after.saturating_sub(base) as f64 / a.conns as f64;
    let kind = if a.ws { "websocket" } else { "tcp" };
    println!(
        "stompload idle: {} {kind} connections, each CONNECTed and SUBSCRIBEd: broker RSS {base} -> {after} KiB, {per:.2} KiB per connection",
        a.conns
    );
    // Sit idle (heart-beats flowing, if negotiated), then the liveness check: one MESSAGE to
    // every connection's own topic, from one more connection, confirmed by a RECEIPT.
    let server_beat_ms = if a.heart_beat_ms > 0 && server_hb[0] > 0 {
        a.heart_beat_ms.max(server_hb[0])
    } else {
        0
    };
    if a.hold > Duration::ZERO {
        println!(
            "stompload idle: holding {:.0} s (heart-beats: server every {server_beat_ms} ms)",
            a.hold.as_secs_f64()
        );
        tokio::time::sleep(a.hold).await;
    }
    let (mut publisher, _) = Link::open(&a).await?;
    let mut batch = BytesMut::new();
    for i in 0..total {
        let mut f = Frame::new(Command::Send)
            .header("destination", idle_destination(i))
            .body(idle_body(i).into_bytes());
        if i + 1 == total {
            f = f.header("receipt", "all-sent");
        }
        if a.ws {
            publisher.send(&f).await?;
        } else {
            encode_frame(&f, Version::V1_2, &mut batch)?;
            if batch.len() > 64 * 1024 || i + 1 == total {
                publisher.send_raw(batch.split().freeze()).await?;
            }
        }
    }
    let receipt = publisher.next_frame().await?;
    if receipt.command != Command::Receipt {
        return Err(format!("the liveness SENDs were refused: {}", describe(&receipt)).into());
    }
    // Every connection gets LIVENESS_WAIT to report; the rest are told to stop.
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(LIVENESS_WAIT).await;
        let _ = stop_tx.send(true);
    });
    let mut live = 0usize;
    let mut min_beats = u64::MAX;
    let mut links = Vec::with_capacity(total);
    for t in tasks {
        let (link, seen) = t.await?;
        live += usize::from(seen.live);
        min_beats = min_beats.min(seen.beats);
        links.push(link);
    }
    stopper.abort();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_traffic = rss_kib(a.pid)?;
    let per_traffic = after_traffic.saturating_sub(base) as f64 / a.conns as f64;
    println!(
        "stompload idle: liveness: {live} of {total} connections got their MESSAGE; fewest server \
         heart-beats on one connection: {min_beats}; broker RSS after that message {after_traffic} \
         KiB ({per_traffic:.2} KiB per connection)"
    );
    println!(
        "RESULT kind={kind} conns={} rss_before_kib={base} rss_after_kib={after} kib_per_conn={per:.2} \
         live={live} total={total} heart_beat_ms={server_beat_ms} min_server_beats={min_beats} \
         rss_after_message_kib={after_traffic} kib_per_conn_after_message={per_traffic:.2}",
        a.conns
    );
    drop(links);
    if live != total {
        return Err(format!(
            "FAILED: {} of {total} connections were not live",
            total - live
        )
        .into());
    }
    // A heart-beating server sends at least one beat per interval over the hold.
    if server_beat_ms > 0 && a.hold >= Duration::from_millis(2 * server_beat_ms) && min_beats == 0 {
        return Err("FAILED: a connection got no heart-beat from the server while idle".into());
    }
    Ok(())
}

/// How long the liveness check waits for every connection's MESSAGE.
const LIVENESS_WAIT: Duration = Duration::from_secs(60);

enum Job {
    Throughput(Args),
    Open(OpenArgs),
    Idle(IdleArgs),
    Drain(drain::DrainArgs),
    Burst(burst::BurstArgs),
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let job = match argv.first().map(String::as_str) {
        Some("idle") => parse_idle(&argv[1..]).map(Job::Idle),
        Some("open") => parse_open(&argv[1..]).map(Job::Open),
        Some("drain") => drain::parse_drain(&argv[1..]).map(Job::Drain),
        Some("burst") => burst::parse_burst(&argv[1..]).map(Job::Burst),
        _ => parse_args(&argv).map(Job::Throughput),
    }
    .unwrap_or_else(|e| exit_with(e));
    let (threads, budget) = match &job {
        Job::Throughput(a) => (
            a.threads,
            Duration::from_secs_f64(a.secs + a.warmup) + RUN_SLACK,
        ),
        // Connecting is bounded by IO_TIMEOUT per connection; then the phases and the drain.
        Job::Open(a) => (
            a.threads,
            IO_TIMEOUT * (a.conns as u32 + 10)
                + Duration::from_secs_f64(a.secs + a.warmup)
                + DRAIN
                + RUN_SLACK,
        ),
        // Each connection is bounded by IO_TIMEOUT; the whole run by one per connection at most.
        Job::Idle(a) => (
            1,
            IO_TIMEOUT * (a.conns as u32 + 60) + a.hold + LIVENESS_WAIT + RUN_SLACK,
        ),
        Job::Drain(a) => (1, drain::budget(a) + RUN_SLACK),
        Job::Burst(a) => (a.threads, burst::budget(a) + RUN_SLACK),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| exit_with(e.into()));
    let run = async {
        match job {
            Job::Throughput(a) => throughput(a).await,
            Job::Open(a) => open_loop(a).await,
            Job::Idle(a) => idle(a).await,
            Job::Drain(a) => drain::drain(a).await,
            Job::Burst(a) => burst::burst(a).await,
        }
    };
    match rt.block_on(async { timeout(budget, run).await }) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => exit_with(e),
        Err(_) => exit_with("the run took longer than its budget".into()),
    }
}

fn exit_with(e: Error) -> ! {
    eprintln!("stompload: {e}");
    std::process::exit(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_spread_over_the_nodes_round_robin() {
        assert_eq!(node("a:1", 3), "a:1");
        let nodes: Vec<&str> = (0..4).map(|i| node("a:1,b:2,c:3", i)).collect();
        assert_eq!(nodes, ["a:1", "b:2", "c:3", "a:1"]);
        let args = |addr: &str| parse_args(&[addr.to_owned()]);
        assert!(args("a:1,b:2").is_ok());
        assert!(args("a:1,,b:2").is_err());
        assert!(args("a:1,").is_err());
    }
}
