//! WebSocket echo load generator, built on switchboard-ws's client role and tokio.
//!
//! ```text
//! wsload [--conns N] [--size BYTES] [--secs S] [--warmup W] [--rate R] [--text]
//!        [--threads T] [--connect-timeout S] ws://HOST:PORT/PATH
//! ```
//!
//! Opens N connections (no permessage-deflate offered), then for `W + S` seconds each connection
//! either keeps one masked message in flight (echo round trips, the default) or sends `R`
//! messages per second (`--rate`) and matches echoes to send times in order. Only round trips
//! that start after the warm-up and end within the measured `S` seconds count. With `--rate`,
//! latency is measured from the *scheduled* send time, so a server that falls behind is not
//! hidden by the client slowing down (coordinated omission).
//!
//! Prints a summary and one machine-readable line for `cargo xtask load`:
//! `RESULT conns=.. size=.. secs=.. msgs=.. msgs_per_sec=.. p50_us=.. p90_us=.. p99_us=..
//! p999_us=.. max_us=.. errors=.. all_msgs=..` (`all_msgs` counts warm-up round trips too).
//!
//! Everything is bounded: connects and handshakes by `--connect-timeout`, each wait for an echo
//! by [`RECV_TIMEOUT`], the close handshake by [`CLOSE_TIMEOUT`], the whole run by its phases plus
//! [`RUN_SLACK`].

use bytes::Bytes;
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_ws::{CloseCode, Message, StreamConfig, WebSocketStream, connect_url};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// Longest wait for one echo before the connection counts as failed.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the close handshake at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Extra time the whole run may take beyond connect + warm-up + measurement.
const RUN_SLACK: Duration = Duration::from_secs(30);
/// Highest latency the histogram tracks (higher values are clamped): 60 s, in nanoseconds.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

#[derive(Debug, Clone)]
struct Args {
    url: String,
    conns: usize,
    size: usize,
    secs: f64,
    warmup: f64,
    rate: Option<f64>,
    text: bool,
    threads: usize,
    connect_timeout: Duration,
}

const USAGE: &str = "usage: wsload [--conns N] [--size BYTES] [--secs S] [--warmup W] [--rate R] \
[--text] [--threads T] [--connect-timeout S] ws://HOST:PORT/PATH";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        conns: 1,
        size: 16,
        secs: 3.0,
        warmup: 1.0,
        rate: None,
        text: false,
        threads: 1,
        connect_timeout: Duration::from_secs(10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--conns" => a.conns = num(&value("--conns")?)?,
            "--size" => a.size = num(&value("--size")?)?,
            "--secs" => a.secs = num(&value("--secs")?)?,
            "--warmup" => a.warmup = num(&value("--warmup")?)?,
            "--rate" => a.rate = Some(num(&value("--rate")?)?),
            "--threads" => a.threads = num(&value("--threads")?)?,
            "--connect-timeout" => {
                a.connect_timeout = Duration::from_secs_f64(num(&value("--connect-timeout")?)?)
            }
            "--text" => a.text = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            s if s.starts_with("ws://") && a.url.is_empty() => a.url = s.to_owned(),
            s => return Err(format!("unexpected argument `{s}`\n{USAGE}")),
        }
    }
    if a.url.is_empty() {
        return Err(format!("missing URL\n{USAGE}"));
    }
    if a.conns == 0
        || a.threads == 0
        || a.secs.is_nan()
        || a.secs <= 0.0
        || a.warmup.is_nan()
        || a.warmup < 0.0
    {
        return Err(format!(
            "--conns, --threads and --secs must be positive\n{USAGE}"
        ));
    }
    if a.rate.is_some_and(|r| r.is_nan() || r <= 0.0 || r > 1e6) {
        return Err("--rate must be in (0, 1e6] messages per second per connection".to_owned());
    }
    if a.secs + a.warmup > 3600.0 || a.conns > 10_000 || a.size > 64 << 20 {
        return Err("limits: secs + warmup <= 3600, conns <= 10000, size <= 64 MiB".to_owned());
    }
    Ok(a)
}

fn num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: `{s}`"))
}

/// What one connection measured.
struct Outcome {
    hist: Histogram<u64>,
    /// Round trips inside the measurement window.
    msgs: u64,
    /// Every completed round trip, warm-up included (for CPU-per-message figures).
    all: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Outcome {
    fn new() -> Self {
        Outcome {
            hist: new_histogram(),
            msgs: 0,
            all: 0,
            errors: 0,
            first_error: None,
        }
    }

    fn fail(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("static histogram bounds are valid")
}

/// The measurement window shared by all connections.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn contains(&self, sent: Instant, done: Instant) -> bool {
        sent >= self.start && done <= self.end
    }
}

type Ws = WebSocketStream<TcpStream>;

fn payload(a: &Args) -> Message {
    if a.text {
        let s: String = "switchboard load ".chars().cycle().take(a.size).collect();
        Message::text(s)
    } else {
        let mut x: u32 = 0x9e37_79b9;
        let v: Vec<u8> = (0..a.size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        Message::binary(Bytes::from(v))
    }
}

/// Waits for the next data message (skipping control messages), bounded by [`RECV_TIMEOUT`].
async fn recv_data(ws: &mut Ws, size: usize) -> Result<(), String> {
    loop {
        match timeout(RECV_TIMEOUT, ws.recv()).await {
            Err(_) => return Err(format!("no echo within {RECV_TIMEOUT:?}")),
            Ok(None) => return Err("connection closed by the server".to_owned()),
            Ok(Some(Err(e))) => return Err(format!("receive: {e}")),
            Ok(Some(Ok(m))) if m.is_data() => {
                return if m.payload().len() == size {
                    Ok(())
                } else {
                    Err(format!("echo of {} bytes, sent {size}", m.payload().len()))
                };
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// One message in flight: send, wait for its echo, repeat until the window ends.
async fn echo_loop(mut ws: Ws, msg: Message, size: usize, w: Window) -> Outcome {
    let mut out = Outcome::new();
    loop {
        let sent = Instant::now();
        if sent >= w.end {
            break;
        }
        if let Err(e) = ws.send(msg.clone()).await {
            out.fail(format!("send: {e}"));
            return out;
        }
        if let Err(e) = recv_data(&mut ws, size).await {
            out.fail(e);
            return out;
        }
        let done = Instant::now();
        out.all += 1;
        if w.contains(sent, done) {
            out.msgs += 1;
            out.hist.saturating_record((done - sent).as_nanos() as u64);
        }
    }
    let _ = timeout(CLOSE_TIMEOUT, ws.close(CloseCode::NORMAL, "")).await;
    out
}

/// Fixed send rate: the writer sends on schedule, the reader matches echoes (in order) to the
/// scheduled send times.
async fn rate_loop(ws: Ws, msg: Message, size: usize, rate: f64, w: Window) -> Outcome {
    let (mut rx, mut tx) = ws.split();
    let sched: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
    let period = Duration::from_secs_f64(1.0 / rate);
    let writer_sched = sched.clone();
    let writer = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        let mut sent = 0u64;
        loop {
            let at = ticks.tick().await;
            if at >= w.end {
                break;
            }
            writer_sched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(at);
            if let Err(e) = tx.send(msg.clone()).await {
                return (sent, Some(format!("send: {e}")), tx);
            }
            sent += 1;
        }
        (sent, None, tx)
    });
    let mut out = Outcome::new();
    let grace = w.end + RECV_TIMEOUT;
    loop {
        let next = sched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .front()
            .copied();
        let now = Instant::now();
        if next.is_none() && (writer.is_finished() || now >= w.end) {
            break;
        }
        // Nothing in flight: wait at most until the window ends (the writer may send nothing
        // more); something in flight: wait for it, at most until the grace period ends.
        let until = if next.is_some() { grace } else { w.end };
        let r = match timeout(until.saturating_duration_since(now), rx.recv()).await {
            Err(_) if next.is_none() => continue,
            Err(_) => Err("echoes still missing after the run".to_owned()),
            Ok(None) => Err("connection closed by the server".to_owned()),
            Ok(Some(Err(e))) => Err(format!("receive: {e}")),
            Ok(Some(Ok(m))) if m.is_data() && m.payload().len() == size => Ok(true),
            Ok(Some(Ok(m))) if m.is_data() => {
                Err(format!("echo of {} bytes, sent {size}", m.payload().len()))
            }
            Ok(Some(Ok(_))) => Ok(false),
        };
        match r {
            Ok(true) => {
                let done = Instant::now();
                let Some(at) = sched.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else {
                    out.fail("an echo arrived for a message never sent");
                    break;
                };
                out.all += 1;
                if w.contains(at, done) {
                    out.msgs += 1;
                    out.hist.saturating_record((done - at).as_nanos() as u64);
                }
            }
            Ok(false) => {}
            Err(e) => {
                out.fail(e);
                break;
            }
        }
    }
    match timeout(CLOSE_TIMEOUT, writer).await {
        Ok(Ok((_, err, mut tx))) => {
            if let Some(e) = err {
                out.fail(e);
            }
            let _ = timeout(CLOSE_TIMEOUT, tx.close(CloseCode::NORMAL, "")).await;
        }
        Ok(Err(e)) => out.fail(format!("writer task: {e}")),
        Err(_) => out.fail("writer task did not stop"),
    }
    out
}

async fn run(a: Args) -> Result<(), String> {
    let config = StreamConfig::default().handshake_timeout(Some(a.connect_timeout));
    // Connect everything first (concurrently, each bounded), so the measurement sees only echoes.
    let connects = (0..a.conns).map(|_| {
        let url = a.url.clone();
        async move {
            match timeout(a.connect_timeout, connect_url(&url, config, None)).await {
                Ok(Ok((ws, _))) => Ok(ws),
                Ok(Err(e)) => Err(format!("connect {url}: {e}")),
                Err(_) => Err(format!(
                    "connect {url}: no handshake within {:?}",
                    a.connect_timeout
                )),
            }
        }
    });
    let mut conns = Vec::with_capacity(a.conns);
    for r in futures_util::future::join_all(connects).await {
        conns.push(r?);
    }
    let start = Instant::now() + Duration::from_secs_f64(a.warmup);
    let w = Window {
        start,
        end: start + Duration::from_secs_f64(a.secs),
    };
    let msg = payload(&a);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|ws| {
            let msg = msg.clone();
            match a.rate {
                None => tokio::spawn(echo_loop(ws, msg, a.size, w)),
                Some(r) => tokio::spawn(rate_loop(ws, msg, a.size, r, w)),
            }
        })
        .collect();
    let mut total = Outcome::new();
    for t in futures_util::future::join_all(tasks).await {
        match t {
            Ok(o) => {
                total.msgs += o.msgs;
                total.all += o.all;
                total.errors += o.errors;
                if total.first_error.is_none() {
                    total.first_error = o.first_error;
                }
                total
                    .hist
                    .add(&o.hist)
                    .map_err(|e| format!("histogram: {e}"))?;
            }
            Err(e) => total.fail(format!("connection task: {e}")),
        }
    }
    report(&a, &total);
    if total.errors > 0 && total.msgs == 0 {
        return Err(format!(
            "no round trip completed; first error: {}",
            total.first_error.unwrap_or_default()
        ));
    }
    Ok(())
}

fn report(a: &Args, o: &Outcome) {
    let us = |q: f64| o.hist.value_at_quantile(q) as f64 / 1000.0;
    let max = o.hist.max() as f64 / 1000.0;
    let rate = o.msgs as f64 / a.secs;
    let mode = match a.rate {
        None => "echo (1 in flight per connection)".to_owned(),
        Some(r) => format!("{r} msgs/s per connection"),
    };
    println!(
        "wsload {url}: {conns} conns, {size} B {kind}, {mode}, warm-up {warm}s, measured {secs}s",
        url = a.url,
        conns = a.conns,
        size = a.size,
        kind = if a.text { "text" } else { "binary" },
        warm = a.warmup,
        secs = a.secs,
    );
    println!(
        "  {rate:.0} msgs/s ({} round trips, {} errors)",
        o.msgs, o.errors
    );
    println!(
        "  latency µs: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        max
    );
    if let Some(e) = &o.first_error {
        println!("  first error: {e}");
    }
    println!(
        "RESULT conns={} size={} secs={} msgs={} msgs_per_sec={rate:.1} p50_us={:.1} p90_us={:.1} \
         p99_us={:.1} p999_us={:.1} max_us={max:.1} errors={} all_msgs={}",
        a.conns,
        a.size,
        a.secs,
        o.msgs,
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        o.errors,
        o.all
    );
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wsload: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsload: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let budget = a.connect_timeout + Duration::from_secs_f64(a.warmup + a.secs) + RUN_SLACK;
    let result = rt.block_on(async {
        timeout(budget, run(a))
            .await
            .unwrap_or_else(|_| Err(format!("run did not finish within {budget:?}")))
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    if let Err(e) = result {
        eprintln!("wsload: {e}");
        std::process::exit(1);
    }
}
