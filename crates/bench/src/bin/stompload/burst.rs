//! **Connect burst** (`stompload burst`): `N` clients connect at the same instant, then each
//! sends CONNECT, and all of them stay open until every one has its answer.
//!
//! ```text
//! stompload burst [--conns N] [--login L] [--passcode P] [--threads T] HOST:PORT
//! ```
//!
//! Two things a server's defaults decide show here: its listen backlog (too short, and the
//! kernel drops SYNs of a burst; those clients wait for their SYN retry, a second or more) and
//! its connection limit (`N` above it, and the last ones are refused although the process could
//! open more files). It reports, per connect: how many took a second or more (a SYN was
//! retried), the p50/p99/max connect time, how many TCP connects failed, how many CONNECTs got
//! CONNECTED, an ERROR, or nothing (closed / no answer in [`IO_TIMEOUT`](super::IO_TIMEOUT)),
//! and the machine's `ListenOverflows + ListenDrops` (`/proc/net/netstat`) delta over the
//! burst. It **fails** (exit status 2, after its `RESULT` line) unless all `N` got CONNECTED.
//!
//! Every client holds a socket: the process needs `N` + a few open files (`ulimit -n`).

use super::{Conn, IO_TIMEOUT, Result, USAGE, number, value};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Barrier;
use tokio::time::{Instant, timeout};

/// Flags of `stompload burst`.
#[derive(Debug, Clone)]
pub(crate) struct BurstArgs {
    addr: String,
    conns: usize,
    login: Option<String>,
    passcode: Option<String>,
    pub(crate) threads: usize,
}

/// A connect that took this long had a SYN (or SYN-ACK) retransmitted: Linux's first retry
/// comes after one second.
const SLOW_CONNECT: Duration = Duration::from_millis(900);

pub(crate) fn parse_burst(argv: &[String]) -> Result<BurstArgs> {
    let mut a = BurstArgs {
        addr: String::new(),
        conns: 2000,
        login: None,
        passcode: None,
        threads: 1,
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--conns" => a.conns = number(value(&mut it, arg)?, arg)?,
            "--login" => a.login = Some(value(&mut it, arg)?.clone()),
            "--passcode" => a.passcode = Some(value(&mut it, arg)?.clone()),
            "--threads" => a.threads = number(value(&mut it, arg)?, arg)?,
            "-h" | "--help" => return Err(USAGE.into()),
            other if other.starts_with("--") => {
                return Err(format!("unknown flag {other}\n{USAGE}").into());
            }
            other => a.addr = other.to_owned(),
        }
    }
    if a.addr.is_empty() {
        return Err(format!("no broker address\n{USAGE}").into());
    }
    if !(1..=200_000).contains(&a.conns) || !(1..=64).contains(&a.threads) {
        return Err("--conns must be in 1..=200000 and --threads in 1..=64".into());
    }
    Ok(a)
}

/// The run's bound: every connect and every CONNECT waits at most [`IO_TIMEOUT`] (plus the SYN
/// retries the kernel makes inside it), all at once.
pub(crate) fn budget(_: &BurstArgs) -> Duration {
    IO_TIMEOUT * 6
}

/// `TcpExt: ListenOverflows + ListenDrops` from /proc/net/netstat (the whole machine).
fn listen_drops() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let get = |name: &str| -> Option<u64> {
        let i = names.iter().position(|n| *n == name)?;
        values.get(i)?.parse().ok()
    };
    Some(get("ListenOverflows")? + get("ListenDrops")?)
}

/// How one client's CONNECT ended.
enum Answer {
    Connected(Box<Conn>),
    Error,
    Nothing,
}

pub(crate) async fn burst(a: BurstArgs) -> Result {
    let a = Arc::new(a);
    let drops_before = listen_drops();
    let barrier = Arc::new(Barrier::new(a.conns));
    let mut tasks = Vec::with_capacity(a.conns);
    for _ in 0..a.conns {
        let barrier = barrier.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let started = Instant::now();
            let io = timeout(IO_TIMEOUT, TcpStream::connect(&a.addr)).await;
            (started.elapsed(), matches!(io, Ok(Ok(_))))
        }));
    }
    let mut times = Vec::with_capacity(a.conns);
    let mut tcp_failed = 0usize;
    for t in tasks {
        let (took, ok) = t.await?;
        if ok {
            times.push(took);
        } else {
            tcp_failed += 1;
        }
    }
    let drops = drops_before
        .zip(listen_drops())
        .map(|(b, a)| a.saturating_sub(b));
    // The sockets of the measurement above are closed; STOMP CONNECT now runs over fresh ones,
    // opened all at once again, each held until every client has its answer.
    let barrier = Arc::new(Barrier::new(a.conns));
    let mut tasks = Vec::with_capacity(a.conns);
    for _ in 0..a.conns {
        let barrier = barrier.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            match Conn::open(&a.addr, a.login.as_deref(), a.passcode.as_deref()).await {
                Ok(c) => Answer::Connected(Box::new(c)),
                Err(e) if e.to_string().starts_with("CONNECT refused") => Answer::Error,
                Err(_) => Answer::Nothing,
            }
        }));
    }
    let mut held = Vec::with_capacity(a.conns);
    let (mut refused, mut nothing) = (0usize, 0usize);
    for t in tasks {
        match t.await? {
            Answer::Connected(c) => held.push(c),
            Answer::Error => refused += 1,
            Answer::Nothing => nothing += 1,
        }
    }
    let connected = held.len();
    drop(held);
    times.sort();
    let pct = |p: f64| -> f64 {
        if times.is_empty() {
            return 0.0;
        }
        let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
        times[i].as_secs_f64() * 1000.0
    };
    let slow = times.iter().filter(|t| **t >= SLOW_CONNECT).count();
    println!(
        "burst of {} connects at once: {slow} took >= {} ms (a SYN retried), p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms, {tcp_failed} failed; listen overflows+drops {}; then \
         {connected} CONNECTED, {refused} ERROR, {nothing} no answer",
        a.conns,
        SLOW_CONNECT.as_millis(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
        drops.map_or("?".into(), |d| d.to_string()),
    );
    println!(
        "RESULT mode=burst conns={} slow_connects={slow} connect_p50_ms={:.1} \
         connect_p99_ms={:.1} connect_max_ms={:.1} tcp_failed={tcp_failed} listen_drops={} \
         connected={connected} refused={refused} no_answer={nothing}",
        a.conns,
        pct(0.50),
        pct(0.99),
        pct(1.0),
        drops.map_or("?".into(), |d| d.to_string()),
    );
    if connected == a.conns {
        Ok(())
    } else {
        Err(format!(
            "{} of {} clients got no CONNECTED",
            a.conns - connected,
            a.conns
        )
        .into())
    }
}
