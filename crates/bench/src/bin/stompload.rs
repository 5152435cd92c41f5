//! STOMP load generator over TCP, for any STOMP 1.2 broker (switchboard, RabbitMQ's STOMP plugin,
//! ActiveMQ...), built on switchboard-stomp's parser and encoder and tokio.
//!
//! ```text
//! stompload [--pubs P] [--subs S] [--size BYTES] [--secs S] [--warmup W] [--dest DEST]
//!           [--window K] [--login L] [--passcode P] [--threads T] HOST:PORT
//! stompload idle --conns N --pid PID [--ws] ADDR
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
//! and within the measured `S` seconds count.
//!
//! **Idle memory** (`idle`): opens `N` connections (TCP STOMP to `ADDR`, or WebSocket STOMP with
//! `--ws` to `ws://ADDR/chat`), each CONNECTed with heart-beats off and SUBSCRIBEd to a topic of
//! its own, and reports how much the resident memory of process `PID` (the broker, read from
//! `/proc/PID/status`) grew per connection. The first 50 connections are opened before the
//! baseline is taken, so one-off allocations (runtime, first-use tables) do not count.
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
[--dest DEST] [--window K] [--login L] [--passcode P] [--threads T] HOST:PORT\n       \
stompload idle --conns N --pid PID [--ws] ADDR";

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
}

#[derive(Debug, Clone)]
struct IdleArgs {
    addr: String,
    conns: usize,
    pid: u32,
    ws: bool,
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
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown flag {s}\n{USAGE}").into()),
            s => a.addr = s.to_owned(),
        }
    }
    if a.addr.is_empty() {
        return Err(format!("missing HOST:PORT\n{USAGE}").into());
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
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--conns" => a.conns = number(value(&mut it, arg)?, arg)?,
            "--pid" => a.pid = number(value(&mut it, arg)?, arg)?,
            "--ws" => a.ws = true,
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown flag {s}\n{USAGE}").into()),
            s => a.addr = s.to_owned(),
        }
    }
    if a.addr.is_empty() || a.pid == 0 || a.conns == 0 {
        return Err(format!("idle needs --conns N, --pid PID and ADDR\n{USAGE}").into());
    }
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
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            match self.parser.parse(&mut self.rd)? {
                Some(Parsed::Frame(f)) => return Ok(f),
                Some(Parsed::HeartBeat) => continue,
                None => {}
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
    loop {
        let now = Instant::now();
        if now >= measure_to {
            break;
        }
        let f = match tokio::time::timeout_at(measure_to, c.next_frame()).await {
            Err(_) => break,
            Ok(Err(e)) => {
                r.error = Some(e.to_string());
                break;
            }
            Ok(Ok(f)) => f,
        };
        match f.command {
            Command::Message => {
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

async fn throughput(a: Args) -> Result {
    let a = Arc::new(a);
    let login = a.login.as_deref();
    let passcode = a.passcode.as_deref();
    // Subscribers first, each subscription confirmed, so no message is sent before all listen.
    let mut subs = Vec::with_capacity(a.subs);
    for i in 0..a.subs {
        let mut c = Conn::open(&a.addr, login, passcode).await?;
        c.send(
            &Frame::new(Command::Subscribe)
                .header("id", "0")
                .header("destination", a.dest.clone())
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
    let mut pubs = Vec::with_capacity(a.pubs);
    for _ in 0..a.pubs {
        pubs.push(Conn::open(&a.addr, login, passcode).await?);
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
        "stompload: {} pubs -> {} {} subs, {} B: published {pub_rate:.0} msgs/s, delivered \
         {rate:.0} msgs/s, latency p50 {p50:.1} µs p99 {p99:.1} µs p99.9 {p999:.1} µs max \
         {max:.1} µs, {} errors",
        a.pubs,
        a.dest,
        a.subs,
        a.size,
        errors.len()
    );
    for e in errors.iter().take(5) {
        println!("stompload: error: {e}");
    }
    println!(
        "RESULT pubs={} subs={} size={} secs={} dest={} published_per_sec={pub_rate:.0} \
         delivered_per_sec={rate:.0} p50_us={p50:.1} p99_us={p99:.1} p999_us={p999:.1} \
         max_us={max:.1} errors={} all_published={} all_delivered={}",
        a.pubs,
        a.subs,
        a.size,
        a.secs,
        a.dest,
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

/// Something kept open by the idle test.
enum Held {
    Tcp(#[allow(dead_code)] Box<Conn>),
    Ws(#[allow(dead_code)] Box<switchboard_ws::WebSocketStream<TcpStream>>),
}

async fn idle_one(a: &IdleArgs, i: usize) -> Result<Held> {
    let subscribe = Frame::new(Command::Subscribe)
        .header("id", "0")
        .header("destination", format!("/topic/idle.{i}"))
        .header("receipt", "s");
    if a.ws {
        use switchboard_ws::{Message, StreamConfig, handshake::ClientRequest};
        let tcp = timeout(IO_TIMEOUT, TcpStream::connect(&a.addr))
            .await
            .map_err(|_| "connect timed out")??;
        let req = ClientRequest::new(a.addr.clone(), "/chat").protocols(["v12.stomp"]);
        let (mut ws, _) = timeout(
            IO_TIMEOUT,
            switchboard_ws::connect(tcp, &req, StreamConfig::default()),
        )
        .await
        .map_err(|_| "handshake timed out")??;
        for f in [
            Frame::new(Command::Connect)
                .header("accept-version", "1.2")
                .header("host", "/")
                .header("heart-beat", "0,0"),
            subscribe,
        ] {
            let mut out = BytesMut::new();
            encode_frame(&f, Version::V1_2, &mut out)?;
            ws.send(Message::binary(out.freeze())).await?;
            // CONNECTED, then the RECEIPT.
            match timeout(IO_TIMEOUT, ws.recv()).await {
                Ok(Some(Ok(_))) => {}
                _ => return Err("no reply over the WebSocket".into()),
            }
        }
        Ok(Held::Ws(Box::new(ws)))
    } else {
        let mut c = Conn::open(&a.addr, None, None).await?;
        c.send(&subscribe).await?;
        let f = c.next_frame().await?;
        if f.command != Command::Receipt {
            return Err(format!("SUBSCRIBE not confirmed: {}", describe(&f)).into());
        }
        Ok(Held::Tcp(Box::new(c)))
    }
}

async fn idle(a: IdleArgs) -> Result {
    const WARM: usize = 50;
    let mut held = Vec::with_capacity(a.conns + WARM);
    for i in 0..WARM {
        held.push(idle_one(&a, i).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = rss_kib(a.pid)?;
    for i in WARM..WARM + a.conns {
        held.push(idle_one(&a, i).await?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(a.pid)?;
    let per = after.saturating_sub(base) as f64 / a.conns as f64;
    let kind = if a.ws { "websocket" } else { "tcp" };
    println!(
        "stompload idle: {} {kind} connections, each CONNECTed and SUBSCRIBEd: broker RSS {base} -> {after} KiB, {per:.2} KiB per connection",
        a.conns
    );
    println!(
        "RESULT kind={kind} conns={} rss_before_kib={base} rss_after_kib={after} kib_per_conn={per:.2}",
        a.conns
    );
    drop(held);
    Ok(())
}

enum Job {
    Throughput(Args),
    Idle(IdleArgs),
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let job = match argv.first().map(String::as_str) {
        Some("idle") => parse_idle(&argv[1..]).map(Job::Idle),
        _ => parse_args(&argv).map(Job::Throughput),
    }
    .unwrap_or_else(|e| exit_with(e));
    let (threads, budget) = match &job {
        Job::Throughput(a) => (
            a.threads,
            Duration::from_secs_f64(a.secs + a.warmup) + RUN_SLACK,
        ),
        // Each connection is bounded by IO_TIMEOUT; the whole run by one per connection at most.
        Job::Idle(a) => (1, IO_TIMEOUT * (a.conns as u32 + 60) + RUN_SLACK),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| exit_with(e.into()));
    let run = async {
        match job {
            Job::Throughput(a) => throughput(a).await,
            Job::Idle(a) => idle(a).await,
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
