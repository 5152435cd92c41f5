//! Load tests: `cargo xtask load ws ...` (WebSocket echo, `wsload`), `cargo xtask load stomp ...`
//! (broker throughput, `stompload`) and `cargo xtask load idle` (memory per idle connection).
//! The load generators live in crates/bench.
//!
//! ```text
//! cargo xtask load ws [--conns N] [--size B] [--secs S] [--warmup W] [--rate R] [--threads T] URL
//! cargo xtask load ws --compare [--secs S] [--warmup W] [--sizes 16,125,65536]
//!                               [--conns-list 1,10,100] [--points 16x10,125x100]
//!                               [--threads T] [--rounds R] [--baseline PATH] [--markdown]
//! cargo xtask load ws --icount [...]   (see load/ws_icount.rs)
//! cargo xtask load stomp [stompload flags] [HOST:PORT]
//! cargo xtask load stomp --compare [--secs S] [--warmup W] [--sizes 128,16384]
//!                                  [--only switchboard,rabbitmq,activemq] [--markdown]
//! cargo xtask load stomp --compare --open-loop [--rates 10000,50000] [--conns 1000] [--secs S]
//!                                  [--warmup W] [--only ...] [--markdown]
//! cargo xtask load stomp --compare --backlog 10000[,N...] [--only ...] [--markdown]
//! cargo xtask load stomp --compare --burst 2000,10001 [--only ...] [--markdown]
//! (every --compare form also takes --baseline PATH: an older `switchboard` binary as a column)
//! cargo xtask load idle [--conns N] [--transports tcp,ws] [--heart-beat MS] [--hold S] [--baseline PATH]
//! cargo xtask load sockjs --compare|--idle [...]   (see load/sockjs.rs)
//! ```
//!
//! `load stomp` without an address starts the release `switchboard` (embedded broker, STOMP on a
//! free loopback port, HTTP off) and runs `stompload` against it; with `HOST:PORT` it loads any
//! STOMP broker there (RabbitMQ's STOMP plugin, ActiveMQ, ...), so runs can be compared side by
//! side. `load idle` starts a fresh `switchboard` per transport (TCP, WebSocket) and per build
//! (`--baseline` adds an older one), pinned, opens `N` (default 2000) connections that CONNECT
//! and SUBSCRIBE and then sit idle, prints how much the server's resident memory grew per
//! connection, and checks that every connection is still live (see `load/idle.rs`).
//!
//! `load stomp --compare` runs one `stompload` matrix against our `switchboard` (release binary,
//! embedded broker), RabbitMQ (`rabbitmq_stomp`) and ActiveMQ Classic, side by side: the peers
//! are Debian packages, installed with apt when missing (root; a manual command, never part of
//! `cargo xtask ci`) and run in the foreground with private state under
//! `target/xtask/load/<broker>/` (see `brokers.rs`). Every broker is started first on free
//! loopback ports; then each scenario runs against one broker at a time while the others sit
//! idle, and every broker is stopped at the end, also on error. The matrix: topic fan-out 1
//! publisher -> 10 subscribers at 128 B, topic 4 -> 4 at 128 B and 16 KiB, queue 4 -> 4
//! (competing consumers) at 128 B; `--sizes` runs each of the three shapes at every size given
//! instead; and queue 1 -> 1 at 128 B twice, with `auto` and with `client-individual` acks
//! (every message ACKed on its own). It prints delivered msgs/s with switchboard / best peer,
//! p99 latency, and each broker's CPU seconds (its whole process group, from `/proc`) per 1000
//! delivered messages, warm-up included. The brokers run pinned to CPU 0 and `stompload` to
//! CPU 1 (`taskset`, util-linux; off with a note when either is missing), and every run's
//! 1-minute load average is printed beside the figures.
//!
//! `load stomp --compare --open-loop` replaces the matrix with fixed-rate runs (`stompload open`):
//! at each offered rate (default 10 000 and 50 000 msgs/s) over `--conns` connections (default
//! 1000: 500 publisher -> subscriber pairs, one topic each, 128 B), latency measured from each
//! message's intended send time, so a broker that stalls is not hidden by senders that wait for
//! it (no coordinated omission). It prints p50/p99/p99.9/max, delivered vs offered, and the
//! p99/p99.9 ratios to switchboard, and fails (after the tables and the chart) when a broker
//! delivered less than 95% of a rate.
//!
//! Every `--compare` (stomp, ws) also draws PNG charts under `target/xtask/charts/` (see
//! `chart.rs`), with the machine, the command and the date in each subtitle.
//!
//! The first form builds `wsload` (release) and runs it against `URL`. `--compare` starts
//! switchboard-ws's `echo_server` example and the three `peer_echo` servers (tungstenite,
//! tokio-websockets, fastwebsockets) on free loopback ports, runs the size × connections matrix
//! against each (one server at a time; the others sit idle), prints msgs/s and p99 with the
//! ratio switchboard / peer, and kills every server at the end (also on error). Deflate is off:
//! `wsload` never offers it. `--points SIZExCONNS,...` runs just those cells instead of every
//! size x connection count. The servers run pinned to CPU 0 and `wsload` to CPU 1 (`taskset`;
//! each tokio server then runs one worker thread), `--rounds R` runs the whole matrix R times
//! and shows each cell's median, `--baseline PATH` adds another build of the `echo_server`
//! example as a `baseline` server (before/after in one run), and the load average after each
//! round is printed under the tables.
//!
//! Beside msgs/s it reports each server's CPU time per round trip (user + system, from
//! `/proc/PID/stat`, over the whole run divided by every round trip including warm-up): on a
//! shared machine msgs/s mostly says how much CPU the scheduler gave each process (a
//! thread-per-connection server gets more slices than a 2-thread runtime), while CPU per
//! message says how much work the server does for each one.

mod backlog;
mod burst;
mod cluster;
mod idle;
mod sockjs;
mod ws_icount;

use crate::Result;
use crate::process::Process;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: cargo xtask load ws [--conns N] [--size B] [--secs S] [--warmup W] [--rate R] [--threads T] URL
       cargo xtask load ws --compare [--secs S] [--warmup W] [--sizes 16,125,65536]
                                     [--conns-list 1,10,100] [--points 16x10,125x100]
                                     [--threads T] [--rounds R] [--baseline PATH] [--markdown]
       cargo xtask load ws --icount [--points 16x10,125x100,65536x10] [--short 1] [--long 4]
                                    [--only ...] [--baseline PATH] [--markdown]
       cargo xtask load stomp [--pubs P] [--subs S] [--size B] [--secs S] [--warmup W] [--dest D]
                              [--window K] [--login L] [--passcode P] [--threads T]
                              [--ack auto|client-individual] [HOST:PORT]
       cargo xtask load stomp --compare [--secs S] [--warmup W] [--sizes 128,16384]
                                        [--only switchboard,rabbitmq,activemq] [--markdown]
       cargo xtask load stomp --compare --open-loop [--rates 10000,50000] [--conns 1000]
                                        [--secs S] [--warmup W] [--only ...] [--markdown]
       cargo xtask load stomp --compare --backlog 10000[,N...] [--only ...] [--markdown]
       cargo xtask load stomp --compare --burst 2000,10001 [--only ...] [--markdown]
       (load stomp --compare also takes --baseline PATH: an older switchboard binary)
       cargo xtask load idle [--conns N] [--transports tcp,ws] [--heart-beat MS] [--hold SECS] [--baseline PATH]
       cargo xtask load sockjs --compare [--secs S] [--warmup W] [--rounds R] [--sizes 16,1024] [--windows 1,16]
                                         [--sessions-list 1,100] [--transports websocket,xhr-streaming]
       cargo xtask load sockjs --idle [--idle-sessions N]";

/// The servers `--compare` runs, in table order (`switchboard` = the echo_server example).
const SERVERS: &[&str] = &[
    "switchboard",
    "tungstenite",
    "tokio-websockets",
    "fastwebsockets",
];

pub fn run(args: &[String]) -> Result {
    match args.split_first() {
        Some((what, rest)) if what == "ws" => {
            if rest.iter().any(|a| a == "--icount") {
                ws_icount::run(rest)
            } else if rest.iter().any(|a| a == "--compare") {
                compare(rest)
            } else {
                single(rest)
            }
        }
        Some((what, rest)) if what == "stomp" => {
            if rest.iter().any(|a| a == "--compare") {
                stomp_compare(rest)
            } else {
                stomp(rest)
            }
        }
        Some((what, rest)) if what == "idle" => idle::run(rest),
        Some((what, rest)) if what == "sockjs" => sockjs::run(rest),
        Some((what, rest)) if what == "cluster" => cluster::run(rest),
        _ => Err(USAGE.into()),
    }
}

/// Builds the release `switchboard` binary and `stompload`; returns their paths.
fn build_stomp_tools() -> Result<(PathBuf, PathBuf)> {
    crate::exec(crate::cargo().args(["build", "--release", "-p", "switchboard-server"]))?;
    crate::exec(crate::cargo().args([
        "build",
        "--release",
        "-p",
        "switchboard-bench",
        "--bin",
        "stompload",
    ]))?;
    let release = target_dir().join("release");
    Ok((release.join("switchboard"), release.join("stompload")))
}

/// Starts `switchboard` with the given listeners on loopback; waits until `port` accepts.
fn start_switchboard(
    bin: &PathBuf,
    http: &str,
    stomp: &str,
    port: u16,
    pin: Option<&Pin>,
) -> Result<Process> {
    let logs = crate::xtask_dir().join("load");
    std::fs::create_dir_all(&logs)?;
    let mut cmd = match pin {
        Some(pin) => pin.command(pin.server(), bin),
        None => Command::new(bin),
    };
    cmd.args(["--http", http, "--stomp", stomp])
        .env("RUST_LOG", "warn");
    let mut p = Process::spawn("switchboard", &mut cmd, &logs.join("switchboard.log"))?;
    p.wait_for_port(port)?;
    Ok(p)
}

/// The numeric value of `flag` in `args`, 0 when absent.
fn stomp_flag(args: &[String], flag: &str) -> u64 {
    args.windows(2)
        .find(|w| w[0] == flag)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(0)
}

/// Seconds a `stompload` run may take: its phases plus slack for connecting and draining.
fn stompload_budget(args: &[String]) -> Duration {
    let get = |flag: &str, default: f64| {
        args.windows(2)
            .find(|w| w[0] == flag)
            .and_then(|w| w[1].parse::<f64>().ok())
            .unwrap_or(default)
    };
    Duration::from_secs_f64(get("--secs", 5.0).min(3600.0) + get("--warmup", 1.0).min(600.0) + 90.0)
}

fn stomp(args: &[String]) -> Result {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let (server_bin, stompload) = build_stomp_tools()?;
    // An argument that is not a flag nor a flag's value is the broker's address.
    let mut has_addr = false;
    let mut i = 0;
    while i < args.len() {
        if args[i].starts_with("--") {
            i += 2;
        } else {
            has_addr = true;
            i += 1;
        }
    }
    let mut args = args.to_vec();
    let _server = if has_addr {
        None
    } else {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let p = start_switchboard(&server_bin, "off", &addr, port, None)?;
        args.push(addr);
        Some(p)
    };
    let mut p = Process::spawn_inherit("stompload", Command::new(&stompload).args(&args))?;
    p.wait(stompload_budget(&args))
}

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::project_root().join("target"))
}

fn build_wsload() -> Result<PathBuf> {
    crate::exec(crate::cargo().args([
        "build",
        "--release",
        "-p",
        "switchboard-bench",
        "--bin",
        "wsload",
    ]))?;
    Ok(target_dir().join("release/wsload"))
}

/// Seconds a `wsload` run is allowed, from its own arguments.
fn wsload_budget(args: &[String]) -> Duration {
    let get = |flag: &str, default: f64| {
        args.windows(2)
            .find(|w| w[0] == flag)
            .and_then(|w| w[1].parse::<f64>().ok())
            .unwrap_or(default)
    };
    let secs = get("--secs", 3.0) + get("--warmup", 1.0) + get("--connect-timeout", 10.0);
    Duration::from_secs_f64(secs.clamp(0.0, 7200.0) + 45.0)
}

fn single(args: &[String]) -> Result {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let bin = build_wsload()?;
    let mut p = Process::spawn_inherit("wsload", Command::new(bin).args(args))?;
    p.wait(wsload_budget(args))
}

struct CompareArgs {
    secs: f64,
    warmup: f64,
    sizes: Vec<usize>,
    conns: Vec<usize>,
    threads: usize,
    markdown: bool,
    /// Times the whole matrix runs; each cell shows its median run.
    rounds: usize,
    /// Another build of the `echo_server` example, run as an extra `baseline` server.
    baseline: Option<PathBuf>,
    /// `--points`: these (size, conns) cells instead of `sizes` x `conns`.
    points: Option<Vec<(usize, usize)>>,
}

impl CompareArgs {
    /// The (size, conns) cells to run, in order.
    fn cells(&self) -> Vec<(usize, usize)> {
        match &self.points {
            Some(p) => p.clone(),
            None => self
                .sizes
                .iter()
                .flat_map(|&s| self.conns.iter().map(move |&c| (s, c)))
                .collect(),
        }
    }
}

/// The entries of `known` named in the comma-separated `list`, in `known`'s order; an unknown
/// name is an error naming `flag`.
pub(crate) fn select_known(
    flag: &str,
    what: &str,
    list: &str,
    known: &[&'static str],
) -> Result<Vec<&'static str>> {
    let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
    if let Some(bad) = wanted.iter().find(|w| !known.contains(w)) {
        return Err(format!(
            "{flag}: unknown {what} `{bad}` (known: {})",
            known.join(",")
        )
        .into());
    }
    Ok(known
        .iter()
        .copied()
        .filter(|k| wanted.contains(k))
        .collect())
}

fn parse_list(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("not a number: `{x}`").into())
        })
        .collect()
}

fn parse_compare(args: &[String]) -> Result<CompareArgs> {
    let mut c = CompareArgs {
        secs: 3.0,
        warmup: 1.0,
        sizes: vec![16, 125, 64 << 10],
        conns: vec![1, 10, 100],
        threads: 1,
        markdown: false,
        rounds: 1,
        baseline: None,
        points: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--compare" => {}
            "--markdown" => c.markdown = true,
            "--secs" => c.secs = value()?.parse()?,
            "--warmup" => c.warmup = value()?.parse()?,
            "--threads" => c.threads = value()?.parse()?,
            "--sizes" => c.sizes = parse_list(value()?)?,
            "--conns-list" => c.conns = parse_list(value()?)?,
            "--rounds" => c.rounds = value()?.parse()?,
            "--baseline" => c.baseline = Some(PathBuf::from(value()?)),
            "--points" => c.points = Some(ws_icount::parse_points(value()?)?),
            other => return Err(format!("unexpected argument `{other}`\n{USAGE}").into()),
        }
    }
    if !(1..=20).contains(&c.rounds) {
        return Err("--rounds must be in 1..=20".into());
    }
    Ok(c)
}

/// The median of each figure over the rounds of one cell (`None` if every round failed).
fn median_result(runs: &[Option<LoadResult>]) -> Option<LoadResult> {
    let ok: Vec<&LoadResult> = runs.iter().flatten().collect();
    if ok.is_empty() {
        return None;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let cpu: Vec<f64> = ok.iter().filter_map(|r| r.cpu_us_per_msg).collect();
    Some(LoadResult {
        msgs_per_sec: median(ok.iter().map(|r| r.msgs_per_sec).collect()),
        p99_us: median(ok.iter().map(|r| r.p99_us).collect()),
        errors: ok.iter().map(|r| r.errors).sum(),
        all_msgs: median(ok.iter().map(|r| r.all_msgs as f64).collect()) as u64,
        cpu_us_per_msg: (!cpu.is_empty()).then(|| median(cpu)),
    })
}

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// One `wsload` result line (`RESULT key=value ...`).
#[derive(Debug, Default, Clone, PartialEq)]
struct LoadResult {
    msgs_per_sec: f64,
    p99_us: f64,
    errors: u64,
    /// Round trips including warm-up.
    all_msgs: u64,
    /// Server CPU time per round trip, µs (if the server's CPU time could be read).
    cpu_us_per_msg: Option<f64>,
}

/// The `key=value` fields of the last `RESULT ` line a load generator printed (`None` if there is
/// none or a field has no `=`).
fn result_fields(output: &str) -> Option<Vec<(&str, &str)>> {
    let line = output.lines().rev().find(|l| l.starts_with("RESULT "))?;
    line.split_whitespace()
        .skip(1)
        .map(|kv| kv.split_once('='))
        .collect()
}

fn parse_result(output: &str) -> Option<LoadResult> {
    let mut r = LoadResult::default();
    for (k, v) in result_fields(output)? {
        match k {
            "msgs_per_sec" => r.msgs_per_sec = v.parse().ok()?,
            "p99_us" => r.p99_us = v.parse().ok()?,
            "errors" => r.errors = v.parse().ok()?,
            "all_msgs" => r.all_msgs = v.parse().ok()?,
            _ => {}
        }
    }
    Some(r)
}

fn compare(args: &[String]) -> Result {
    let c = parse_compare(args)?;
    crate::exec(crate::cargo().args(["build", "--release", "-p", "switchboard-bench", "--bins"]))?;
    crate::exec(crate::cargo().args([
        "build",
        "--release",
        "-p",
        "switchboard-ws",
        "--example",
        "echo_server",
    ]))?;
    let release = target_dir().join("release");
    let logs = crate::xtask_dir().join("load");
    std::fs::create_dir_all(&logs)?;

    // Start every server, pinned to CPU 0 (`wsload` runs on CPU 1); `Process` kills each (and
    // its process group) when dropped.
    let pin = Pin::detect();
    let mut names: Vec<&'static str> = Vec::new();
    if c.baseline.is_some() {
        names.push("baseline");
    }
    names.extend_from_slice(SERVERS);
    let mut servers: Vec<(&str, u16, Process)> = Vec::new();
    for &name in &names {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = match (name, &c.baseline) {
            ("baseline", Some(b)) => pin.command(Pin::SERVER_CPU, b),
            ("switchboard", _) => {
                pin.command(Pin::SERVER_CPU, release.join("examples/echo_server"))
            }
            _ => {
                let mut cmd = pin.command(Pin::SERVER_CPU, release.join("peer_echo"));
                cmd.args(["--lib", name]);
                cmd
            }
        };
        cmd.arg(&addr);
        let mut p = Process::spawn(
            name_static(name),
            &mut cmd,
            &logs.join(format!("{name}.log")),
        )?;
        p.wait_for_port(port)?;
        servers.push((name, port, p));
    }

    let wsload = release.join("wsload");
    // (size, conns, [server][round])
    type Runs = Vec<Vec<Option<LoadResult>>>;
    let mut runs: Vec<(usize, usize, Runs)> = Vec::new();
    let mut loadavg = Vec::new();
    for round in 0..c.rounds {
        for (cell, (size, conns)) in c.cells().into_iter().enumerate() {
            if round == 0 {
                runs.push((size, conns, vec![Vec::new(); servers.len()]));
            }
            for (si, (name, port, server)) in servers.iter_mut().enumerate() {
                server.ensure_running()?;
                let args: Vec<String> = vec![
                    "--conns".into(),
                    conns.to_string(),
                    "--size".into(),
                    size.to_string(),
                    "--secs".into(),
                    c.secs.to_string(),
                    "--warmup".into(),
                    c.warmup.to_string(),
                    "--threads".into(),
                    c.threads.to_string(),
                    format!("ws://127.0.0.1:{port}/"),
                ];
                let log = logs.join(format!("wsload-{name}-{size}-{conns}.log"));
                let pid = find_pid(&format!("127.0.0.1:{port}"));
                let cpu_before = pid.and_then(cpu_seconds);
                let mut p = Process::spawn(
                    "wsload",
                    pin.command(Pin::CLIENT_CPU, &wsload).args(&args),
                    &log,
                )?;
                let ok = p.wait(wsload_budget(&args));
                drop(p);
                let cpu = cpu_before
                    .zip(pid.and_then(cpu_seconds))
                    .map(|(a, b)| b - a);
                let out = std::fs::read_to_string(&log).unwrap_or_default();
                let r = parse_result(&out).map(|mut r| {
                    r.cpu_us_per_msg = cpu
                        .filter(|_| r.all_msgs > 0)
                        .map(|c| c * 1e6 / r.all_msgs as f64);
                    r
                });
                match (&ok, &r) {
                    (Ok(()), Some(r)) => eprintln!(
                        "xtask load: round {} {name:<16} {size:>6} B x {conns:>3} conns: {:>9.0} msgs/s  p99 {:>8.1} µs  server CPU {} µs/msg{}",
                        round + 1,
                        r.msgs_per_sec,
                        r.p99_us,
                        r.cpu_us_per_msg
                            .map_or("?".to_owned(), |c| format!("{c:.1}")),
                        if r.errors > 0 {
                            format!("  ({} errors)", r.errors)
                        } else {
                            String::new()
                        }
                    ),
                    _ => eprintln!(
                        "xtask load: {name} {size} B x {conns}: failed: {}",
                        ok.err()
                            .map(|e| e.to_string())
                            .unwrap_or_else(|| "no RESULT line".into())
                    ),
                }
                runs[cell].2[si].push(r);
            }
        }
        loadavg.push(std::fs::read_to_string("/proc/loadavg").unwrap_or_default());
    }
    // Stop the servers before printing (bounded: SIGKILL to each process group).
    drop(servers);
    let results: Vec<Row> = runs
        .into_iter()
        .map(|(size, conns, per_server)| {
            (
                size,
                conns,
                per_server.iter().map(|r| median_result(r)).collect(),
            )
        })
        .collect();
    print!("{}", render(&c, &names, &results));
    println!(
        "\n{}; {} round(s), each cell the median; /proc/loadavg after each round: {}",
        match pin.server_cpu() {
            Some(cpu) => format!(
                "servers pinned to CPU {cpu} (taskset -c {cpu}), wsload to CPU {}",
                Pin::CLIENT_CPU
            ),
            None => pin.describe(),
        },
        c.rounds,
        loadavg
            .iter()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let command = format!("cargo xtask load ws {}", args.join(" "));
    crate::chart::draw_all(&ws_charts(&names, &results), &command)?;
    Ok(())
}

/// The WebSocket echo charts: msgs/s, p99 latency and server CPU per round trip.
fn ws_charts(names: &[&str], results: &[Row]) -> Vec<crate::chart::Chart> {
    type Metric = fn(&LoadResult) -> Option<f64>;
    let metrics: [(&str, &str, &str, Metric); 3] = [
        (
            "load-ws-throughput",
            "WebSocket echo: round trips per second (higher is better)",
            "msgs/s",
            |r| Some(r.msgs_per_sec),
        ),
        (
            "load-ws-p99",
            "WebSocket echo: p99 round-trip latency (lower is better)",
            "µs",
            |r| Some(r.p99_us),
        ),
        (
            "load-ws-cpu",
            "WebSocket echo: server CPU time per round trip (lower is better)",
            "µs",
            |r| r.cpu_us_per_msg,
        ),
    ];
    metrics
        .into_iter()
        .map(|(name, title, y, metric)| crate::chart::Chart {
            name: name.into(),
            title: title.into(),
            y_label: y.into(),
            series: names.iter().map(|s| s.to_string()).collect(),
            groups: results
                .iter()
                .map(|(size, conns, rs)| {
                    (
                        format!("{size} B x {conns}"),
                        rs.iter().map(|r| r.as_ref().and_then(metric)).collect(),
                    )
                })
                .collect(),
            lower_bounds: Vec::new(),
        })
        .collect()
}

/// The process whose command line has `addr` as an argument (the server we started on it).
fn find_pid(addr: &str) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if cmdline.split(|&b| b == 0).any(|arg| arg == addr.as_bytes()) {
            return Some(pid);
        }
    }
    None
}

/// User + system CPU seconds of a process, all threads (`/proc/PID/stat` fields 14 and 15,
/// in USER_HZ = 100 ticks per second on Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// `Process` names are `&'static str`; map our server names onto the constants.
fn name_static(name: &str) -> &'static str {
    SERVERS
        .iter()
        .copied()
        .find(|s| *s == name)
        .unwrap_or("server")
}

type Row = (usize, usize, Vec<Option<LoadResult>>);

fn render(c: &CompareArgs, names: &[&str], results: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\necho round trips, one message in flight per connection, {}s measured after {}s warm-up, \
         wsload with {} thread(s)",
        c.secs, c.warmup, c.threads
    );
    type Cell = fn(&LoadResult, Option<&LoadResult>) -> String;
    let tables: [(&str, Cell); 3] = [
        (
            "msgs/s; (Nx) = switchboard / that server, > 1 means switchboard is ahead",
            |r, o| {
                let ratio = o
                    .filter(|_| r.msgs_per_sec > 0.0)
                    .map_or(String::new(), |o| {
                        format!(" ({:.2}x)", o.msgs_per_sec / r.msgs_per_sec)
                    });
                let errors = if r.errors > 0 {
                    format!(" [{} err]", r.errors)
                } else {
                    String::new()
                };
                format!("{:.0}{ratio}{errors}", r.msgs_per_sec)
            },
        ),
        ("p99 latency, µs", |r, _| format!("{:.0}", r.p99_us)),
        (
            "server CPU time per round trip, µs; (Nx) = that server / switchboard, > 1 means switchboard is ahead",
            |r, o| match (r.cpu_us_per_msg, o.and_then(|o| o.cpu_us_per_msg)) {
                (Some(c), Some(oc)) if oc > 0.0 => format!("{c:.1} ({:.2}x)", c / oc),
                (Some(c), _) => format!("{c:.1}"),
                (None, _) => "?".into(),
            },
        ),
    ];
    for (title, cell) in tables {
        let mut header = vec!["size".to_owned(), "conns".to_owned()];
        header.extend(names.iter().map(|s| s.to_string()));
        let ours_at = names.iter().position(|n| *n == "switchboard").unwrap_or(0);
        let mut rows = vec![header];
        for (size, conns, rs) in results {
            let ours = rs.get(ours_at).cloned().flatten();
            let mut row = vec![format!("{size} B"), conns.to_string()];
            for (i, r) in rs.iter().enumerate() {
                row.push(match r {
                    None => "failed".into(),
                    Some(r) => cell(r, ours.as_ref().filter(|_| i != ours_at)),
                });
            }
            rows.push(row);
        }
        let _ = writeln!(out, "\n{title}");
        out.push_str(&table(&rows, c.markdown));
    }
    out
}

fn table(rows: &[Vec<String>], markdown: bool) -> String {
    let mut out = String::new();
    if markdown {
        out.push('\n');
        for (i, r) in rows.iter().enumerate() {
            let _ = writeln!(out, "| {} |", r.join(" | "));
            if i == 0 {
                let _ = writeln!(out, "|{}", "---|".repeat(r.len()));
            }
        }
        return out;
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|col| {
            rows.iter()
                .map(|r| r[col].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (col, cell) in r.iter().enumerate() {
            let _ = write!(line, "{cell:<w$}  ", w = widths[col]);
        }
        let _ = writeln!(out, "  {}", line.trim_end());
    }
    out
}

/// Sum of [`cpu_seconds`] over the live processes of process group `pgid` (a broker's start
/// script, its VM and their threads). Children that already exited are not counted.
fn group_cpu_seconds(pgid: u32) -> Option<f64> {
    let mut total = None;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // Field 5 (pgrp) is the third after the parenthesised command name.
        let pgrp = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(5 - 3))
            .and_then(|v| v.parse::<u32>().ok());
        if pgrp == Some(pgid)
            && let Some(s) = cpu_seconds(pid)
        {
            total = Some(total.unwrap_or(0.0) + s);
        }
    }
    total
}

/// Bytes of message bodies `load stomp --compare` lets the publishers have in flight (sent,
/// not yet received by every subscriber), through `stompload --window`.
const STOMP_IN_FLIGHT_BYTES: usize = 4 << 20;

/// `taskset -c CPU` in front of the brokers (CPU 0) and `stompload` (CPU 1), when there is a
/// `taskset` and a second CPU: each gets one core and neither steals the other's.
pub(crate) struct Pin {
    off_because: Option<String>,
}

impl Pin {
    const SERVER_CPU: &str = "0";
    const CLIENT_CPU: &str = "1";

    fn detect() -> Pin {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let taskset = Command::new("taskset")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        let off_because = if !taskset {
            Some("no `taskset` on PATH (Debian: util-linux)".to_owned())
        } else if cpus < 2 {
            Some(format!("{cpus} CPU available, 2 needed"))
        } else {
            None
        };
        Pin { off_because }
    }

    fn server(&self) -> &'static str {
        Self::SERVER_CPU
    }

    /// The broker's CPU, if pinning is on.
    fn server_cpu(&self) -> Option<&'static str> {
        self.off_because.is_none().then_some(Self::SERVER_CPU)
    }

    fn command(&self, cpu: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        if self.off_because.is_some() {
            return Command::new(program);
        }
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", cpu]).arg(program);
        cmd
    }

    fn describe(&self) -> String {
        match &self.off_because {
            None => format!(
                "broker pinned to CPU {}, stompload to CPU {}",
                Self::SERVER_CPU,
                Self::CLIENT_CPU
            ),
            Some(why) => format!("not pinned ({why})"),
        }
    }
}

/// The offered rates and connections of `load stomp --compare --open-loop`.
const OPEN_RATES: &[f64] = &[10_000.0, 50_000.0];
const OPEN_CONNS: usize = 1000;

/// The brokers `load stomp --compare` knows, in table order.
const BROKERS: &[&str] = &["switchboard", "rabbitmq", "activemq"];

struct StompCompareArgs {
    secs: f64,
    warmup: f64,
    sizes: Option<Vec<usize>>,
    /// Names from [`BROKERS`], in table order.
    brokers: Vec<&'static str>,
    markdown: bool,
    /// `--open-loop`: fixed-rate latency runs at `rates` over `conns` connections instead of the
    /// closed-loop matrix.
    open_loop: bool,
    rates: Vec<f64>,
    conns: usize,
    /// `--backlog N,...`: drain a queue of `N` waiting messages instead (see `load/backlog.rs`).
    backlog: Option<Vec<usize>>,
    /// `--burst N,...`: `N` clients connect at once instead (see `load/burst.rs`).
    burst: Option<Vec<usize>>,
    /// `--baseline PATH`: an older `switchboard` binary, run as the `baseline` column.
    baseline: Option<PathBuf>,
}

fn parse_stomp_compare(args: &[String]) -> Result<StompCompareArgs> {
    let mut c = StompCompareArgs {
        secs: 5.0,
        // The JVM compiles its hot paths during the first seconds; give every broker that.
        warmup: 2.0,
        sizes: None,
        brokers: BROKERS.to_vec(),
        markdown: false,
        open_loop: false,
        rates: OPEN_RATES.to_vec(),
        conns: OPEN_CONNS,
        backlog: None,
        burst: None,
        baseline: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--compare" => {}
            "--markdown" => c.markdown = true,
            "--secs" => c.secs = value()?.parse()?,
            "--warmup" => c.warmup = value()?.parse()?,
            "--sizes" => c.sizes = Some(parse_list(value()?)?),
            "--open-loop" => c.open_loop = true,
            "--rates" => {
                c.rates = parse_list(value()?)?
                    .into_iter()
                    .map(|r| r as f64)
                    .collect()
            }
            "--conns" => c.conns = value()?.parse()?,
            "--backlog" => c.backlog = Some(parse_list(value()?)?),
            "--burst" => c.burst = Some(parse_list(value()?)?),
            "--baseline" => c.baseline = Some(PathBuf::from(value()?)),
            "--only" => c.brokers = select_known("--only", "broker", value()?, BROKERS)?,
            other => return Err(format!("unexpected argument `{other}`\n{USAGE}").into()),
        }
    }
    if !(c.secs > 0.0 && c.secs <= 3600.0 && (0.0..=600.0).contains(&c.warmup)) {
        return Err("--secs must be in (0, 3600] and --warmup in [0, 600]".into());
    }
    if let Some(path) = &c.baseline {
        if !path.is_file() {
            return Err(format!("--baseline {}: no such file", path.display()).into());
        }
        // Right after switchboard (or first), so before/after sit side by side.
        let at = usize::from(c.brokers.first() == Some(&"switchboard"));
        c.brokers.insert(at, "baseline");
    }
    if c.backlog.as_ref().is_some_and(|b| b.contains(&0))
        || c.burst.as_ref().is_some_and(|b| b.contains(&0))
    {
        return Err("--backlog and --burst: every count must be at least 1".into());
    }
    if c.rates.iter().any(|r| *r < 1.0) || c.conns < 2 {
        return Err("--rates must be at least 1 msg/s and --conns at least 2".into());
    }
    if c.brokers.is_empty() || c.sizes.as_ref().is_some_and(|s| s.is_empty()) || c.rates.is_empty()
    {
        return Err(format!("nothing to run\n{USAGE}").into());
    }
    Ok(c)
}

/// One row of the matrix: `pubs` publishers, `subs` subscribers, `size`-byte bodies, on a
/// topic (every subscriber gets every message) or a queue (each message to one subscriber).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scenario {
    pubs: usize,
    subs: usize,
    size: usize,
    queue: bool,
    /// Subscribers ACK every message (`client-individual`) instead of `auto`.
    client_ack: bool,
}

impl Scenario {
    fn label(&self) -> String {
        let size = if self.size >= 1024 && self.size.is_multiple_of(1024) {
            format!("{} KiB", self.size / 1024)
        } else {
            format!("{} B", self.size)
        };
        let kind = if self.queue { "queue" } else { "topic" };
        let ack = if self.client_ack {
            ", client-individual"
        } else {
            ""
        };
        format!("{kind} {} -> {}, {size}{ack}", self.pubs, self.subs)
    }

    /// A destination of its own per row, so nothing a previous row left queued is delivered.
    fn dest(&self, row: usize) -> String {
        let kind = if self.queue { "queue" } else { "topic" };
        format!("/{kind}/xtask-load-{row}")
    }

    /// `stompload --window`: 256 messages per publisher (its default), fewer for large bodies
    /// so that at most [`STOMP_IN_FLIGHT_BYTES`] are in flight. Every broker gets the same
    /// window; a larger one would make switchboard drop 16 KiB subscribers as slow consumers
    /// (its default `outbound_queue_bytes` is 8 MiB per session) where RabbitMQ and ActiveMQ
    /// slow the publishers down instead.
    fn window(&self) -> usize {
        (STOMP_IN_FLIGHT_BYTES / (self.size.max(1) * self.pubs.max(1))).clamp(2, 256)
    }

    /// Deliveries per published message.
    fn fan_out(&self) -> u64 {
        if self.queue { 1 } else { self.subs as u64 }
    }
}

/// The default matrix, or the three shapes at each of `sizes`.
fn stomp_scenarios(sizes: Option<&[usize]>) -> Vec<Scenario> {
    let s = |pubs, subs, size, queue, client_ack| Scenario {
        pubs,
        subs,
        size,
        queue,
        client_ack,
    };
    match sizes {
        None => vec![
            s(1, 10, 128, false, false),
            s(4, 4, 128, false, false),
            s(4, 4, 16 << 10, false, false),
            s(4, 4, 128, true, false),
            s(1, 1, 128, true, false),
            s(1, 1, 128, true, true),
        ],
        Some(sizes) => [
            (1, 10, false, false),
            (4, 4, false, false),
            (4, 4, true, false),
            (1, 1, true, false),
            (1, 1, true, true),
        ]
        .into_iter()
        .flat_map(|(p, n, q, a)| sizes.iter().map(move |&size| s(p, n, size, q, a)))
        .collect(),
    }
}

/// One `stompload` `RESULT ...` line, plus the broker's CPU time over the run.
#[derive(Debug, Default, Clone, PartialEq)]
struct StompResult {
    delivered_per_sec: f64,
    p99_us: f64,
    errors: u64,
    /// Messages published, warm-up included.
    all_published: u64,
    /// Messages delivered to the subscribers, warm-up included (0 from an older stompload).
    all_delivered: u64,
    /// Broker CPU seconds per 1000 delivered messages (warm-up included).
    cpu_s_per_1000: Option<f64>,
    /// The 1-minute load average at the end of the run.
    load: String,
}

fn parse_stomp_result(output: &str) -> Option<StompResult> {
    let mut r = StompResult::default();
    for (k, v) in result_fields(output)? {
        match k {
            "delivered_per_sec" => r.delivered_per_sec = v.parse().ok()?,
            "p99_us" => r.p99_us = v.parse().ok()?,
            "errors" => r.errors = v.parse().ok()?,
            "all_published" => r.all_published = v.parse().ok()?,
            "all_delivered" => r.all_delivered = v.parse().ok()?,
            _ => {}
        }
    }
    Some(r)
}

/// A broker under test: ours (a `Process`) or a peer (a `brokers::Broker`).
enum Target {
    Ours { process: Process, port: u16 },
    Peer(crate::brokers::Broker),
}

impl Target {
    fn port(&self) -> u16 {
        match self {
            Target::Ours { port, .. } => *port,
            Target::Peer(b) => b.port,
        }
    }

    fn pgid(&self) -> Option<u32> {
        match self {
            Target::Ours { process, .. } => Some(process.pid()),
            Target::Peer(b) => b.pgid(),
        }
    }

    fn ensure_running(&mut self) -> Result {
        match self {
            Target::Ours { process, .. } => process.ensure_running(),
            Target::Peer(b) => b.ensure_running(),
        }
    }

    fn login(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Target::Ours { .. } => None,
            Target::Peer(b) => b.peer.login(),
        }
    }
}

/// One `stompload` run against `target`: its exit, its output, the broker's CPU seconds over it,
/// and the 1-minute load average at its end.
fn run_stompload(
    stompload: &Path,
    pin: &Pin,
    target: &Target,
    mut args: Vec<String>,
    log: &Path,
) -> Result<(Result, String, Option<f64>, String)> {
    if pin.off_because.is_none() {
        args.extend(["--threads".into(), "1".into()]);
    }
    if let Some((login, passcode)) = target.login() {
        args.extend([
            "--login".into(),
            login.into(),
            "--passcode".into(),
            passcode.into(),
        ]);
    }
    args.push(format!("127.0.0.1:{}", target.port()));
    let pgid = target.pgid();
    let cpu_before = pgid.and_then(group_cpu_seconds);
    let mut cmd = pin.command(Pin::CLIENT_CPU, stompload);
    cmd.args(&args);
    let mut p = Process::spawn("stompload", &mut cmd, log)?;
    let budget = stompload_budget(&args)
        + match args.first().map(String::as_str) {
            Some("open") => Duration::from_secs(120),
            // A backlog drain: up to 200 µs per message (stompload's own bound).
            Some("drain") => Duration::from_micros(200) * stomp_flag(&args, "--messages") as u32,
            _ => Duration::ZERO,
        };
    let ok = p.wait(budget);
    drop(p);
    let cpu = cpu_before
        .zip(pgid.and_then(group_cpu_seconds))
        .map(|(a, b)| b - a);
    let load = crate::chart::load_average()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned();
    Ok((
        ok,
        std::fs::read_to_string(log).unwrap_or_default(),
        cpu,
        load,
    ))
}

fn stomp_compare(args: &[String]) -> Result {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let c = parse_stomp_compare(args)?;
    let peers: Vec<crate::brokers::Peer> = c
        .brokers
        .iter()
        .filter_map(|b| crate::brokers::Peer::from_name(b))
        .collect();
    crate::brokers::ensure_installed(&peers)?;
    let (server_bin, stompload) = build_stomp_tools()?;
    let logs = crate::xtask_dir().join("load");
    std::fs::create_dir_all(&logs)?;
    let pin = Pin::detect();
    if let Some(why) = &pin.off_because {
        eprintln!("xtask load: not pinning to CPUs: {why}");
    }
    let command = format!("cargo xtask load stomp {}", args.join(" "));

    // Start every broker; each stops (with its process group) when dropped, on any path.
    let mut targets: Vec<(&'static str, Target)> = Vec::new();
    for &name in &c.brokers {
        let started = Instant::now();
        let target = match crate::brokers::Peer::from_name(name) {
            Some(peer) => Target::Peer(crate::brokers::start(
                peer,
                &logs.join(name),
                pin.server_cpu(),
            )?),
            None => {
                let port = free_port()?;
                let addr = format!("127.0.0.1:{port}");
                let bin = match (&c.baseline, name) {
                    (Some(path), "baseline") => path,
                    _ => &server_bin,
                };
                let process = start_switchboard(bin, "off", &addr, port, Some(&pin))?;
                Target::Ours { process, port }
            }
        };
        eprintln!(
            "xtask load: {name} listens for STOMP on 127.0.0.1:{} (started in {:.1?})",
            target.port(),
            started.elapsed()
        );
        targets.push((name, target));
    }
    if let Some(burst) = &c.burst {
        return burst::run(&c, &pin, &stompload, &logs, targets, burst);
    }
    if let Some(backlog) = &c.backlog {
        return backlog::run(&c, &pin, &stompload, &logs, targets, &command, backlog);
    }
    if c.open_loop {
        return open_loop_compare(&c, &pin, &stompload, &logs, targets, &command);
    }

    let scenarios = stomp_scenarios(c.sizes.as_deref());
    let mut results: Vec<(Scenario, Vec<Option<StompResult>>)> = Vec::new();
    for (row, sc) in scenarios.iter().enumerate() {
        let mut cells = Vec::new();
        for (name, target) in targets.iter_mut() {
            if let Err(e) = target.ensure_running() {
                eprintln!("xtask load: {name}: {e}");
                cells.push(None);
                continue;
            }
            let args: Vec<String> = vec![
                "--pubs".into(),
                sc.pubs.to_string(),
                "--subs".into(),
                sc.subs.to_string(),
                "--size".into(),
                sc.size.to_string(),
                "--secs".into(),
                c.secs.to_string(),
                "--warmup".into(),
                c.warmup.to_string(),
                "--dest".into(),
                sc.dest(row),
                "--window".into(),
                sc.window().to_string(),
                "--ack".into(),
                if sc.client_ack {
                    "client-individual"
                } else {
                    "auto"
                }
                .into(),
            ];
            let log = logs.join(format!("stompload-{name}-{row}.log"));
            let (ok, out, cpu, load) = run_stompload(&stompload, &pin, target, args, &log)?;
            let r = parse_stomp_result(&out).map(|mut r| {
                let delivered = if r.all_delivered > 0 {
                    r.all_delivered
                } else {
                    r.all_published * sc.fan_out()
                };
                r.cpu_s_per_1000 = cpu
                    .filter(|_| delivered > 0)
                    .map(|c| c * 1000.0 / delivered as f64);
                r.load = load;
                r
            });
            match (&ok, &r) {
                (Ok(()), Some(r)) => eprintln!(
                    "xtask load: {name:<12} {:<22} {:>9.0} msgs/s  p99 {:>8.1} ms  CPU {} s/1000 msgs  load {}{}",
                    sc.label(),
                    r.delivered_per_sec,
                    r.p99_us / 1000.0,
                    r.cpu_s_per_1000
                        .map_or("?".to_owned(), |c| format!("{c:.4}")),
                    r.load,
                    if r.errors > 0 {
                        format!("  ({} errors, see {})", r.errors, log.display())
                    } else {
                        String::new()
                    }
                ),
                _ => eprintln!(
                    "xtask load: {name} {}: failed: {}",
                    sc.label(),
                    ok.as_ref()
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "no RESULT line".into())
                ),
            }
            // A run that failed outright (no message delivered, broker error) gets no number.
            cells.push(r.filter(|r| r.delivered_per_sec > 0.0));
        }
        results.push((*sc, cells));
    }
    // Stop every broker before printing (SIGKILL to each process group, then RabbitMQ's epmd).
    drop(targets);
    print!("{}", render_stomp(&c, &pin, &results));
    crate::chart::draw_all(&stomp_charts(&c, &results), &command)?;
    Ok(())
}

/// The closed-loop charts: delivered msgs/s, p99 latency and CPU per 1000 deliveries.
fn stomp_charts(
    c: &StompCompareArgs,
    results: &[(Scenario, Vec<Option<StompResult>>)],
) -> Vec<crate::chart::Chart> {
    type Metric = fn(&StompResult) -> Option<f64>;
    let metrics: [(&str, &str, &str, Metric); 3] = [
        (
            "load-stomp-throughput",
            "STOMP broker: delivered msgs/s (higher is better)",
            "msgs/s",
            |r| Some(r.delivered_per_sec),
        ),
        (
            "load-stomp-p99",
            "STOMP broker: p99 latency at saturation, publish to delivery (lower is better)",
            "ms",
            |r| Some(r.p99_us / 1000.0),
        ),
        (
            "load-stomp-cpu",
            "STOMP broker: CPU seconds per 1000 delivered messages (lower is better)",
            "CPU s / 1000 msgs",
            |r| r.cpu_s_per_1000,
        ),
    ];
    metrics
        .into_iter()
        .map(|(name, title, y, metric)| crate::chart::Chart {
            name: name.into(),
            title: title.into(),
            y_label: y.into(),
            series: c.brokers.iter().map(|b| b.to_string()).collect(),
            groups: results
                .iter()
                .map(|(sc, cells)| {
                    (
                        sc.label(),
                        cells.iter().map(|r| r.as_ref().and_then(metric)).collect(),
                    )
                })
                .collect(),
            lower_bounds: Vec::new(),
        })
        .collect()
}

/// One `stompload open` `RESULT ...` line.
#[derive(Debug, Default, Clone, PartialEq)]
struct OpenResult {
    offered_per_sec: f64,
    delivered_per_sec: f64,
    /// Messages of the window that arrived (their latencies are the percentiles).
    received: u64,
    lost: u64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    gen_lag_p99_us: f64,
    errors: u64,
    /// Delivered at least 95% of the offered rate, without errors.
    ok: bool,
    /// The 1-minute load average at the end of the run.
    load: String,
}

fn parse_open_result(output: &str) -> Option<OpenResult> {
    let mut r = OpenResult::default();
    let fields = result_fields(output)?;
    if !fields.contains(&("mode", "open")) {
        return None;
    }
    for (k, v) in fields {
        match k {
            "offered_per_sec" => r.offered_per_sec = v.parse().ok()?,
            "delivered_per_sec" => r.delivered_per_sec = v.parse().ok()?,
            "received" => r.received = v.parse().ok()?,
            "lost" => r.lost = v.parse().ok()?,
            "p50_us" => r.p50_us = v.parse().ok()?,
            "p99_us" => r.p99_us = v.parse().ok()?,
            "p999_us" => r.p999_us = v.parse().ok()?,
            "max_us" => r.max_us = v.parse().ok()?,
            "gen_lag_p99_us" => r.gen_lag_p99_us = v.parse().ok()?,
            "errors" => r.errors = v.parse().ok()?,
            "ok" => r.ok = v == "true",
            _ => {}
        }
    }
    Some(r)
}

/// `--open-loop`: every rate against every broker, one at a time; fails (after printing the
/// tables and drawing the chart) if any broker delivered less than 95% of a rate.
fn open_loop_compare(
    c: &StompCompareArgs,
    pin: &Pin,
    stompload: &Path,
    logs: &Path,
    mut targets: Vec<(&'static str, Target)>,
    command: &str,
) -> Result {
    let mut results: Vec<(f64, Vec<Option<OpenResult>>)> = Vec::new();
    let mut failures = Vec::new();
    for (row, &rate) in c.rates.iter().enumerate() {
        let mut cells = Vec::new();
        for (name, target) in targets.iter_mut() {
            if let Err(e) = target.ensure_running() {
                eprintln!("xtask load: {name}: {e}");
                failures.push(format!("{name} at {rate} msgs/s: not running"));
                cells.push(None);
                continue;
            }
            let args: Vec<String> = vec![
                "open".into(),
                "--rate".into(),
                rate.to_string(),
                "--conns".into(),
                c.conns.to_string(),
                "--size".into(),
                "128".into(),
                "--secs".into(),
                c.secs.to_string(),
                "--warmup".into(),
                c.warmup.to_string(),
                "--prefix".into(),
                format!("/topic/xtask-open-{row}"),
            ];
            let log = logs.join(format!("stompload-open-{name}-{row}.log"));
            let (ok, out, _, load) = run_stompload(stompload, pin, target, args, &log)?;
            let r = parse_open_result(&out).map(|r| OpenResult { load, ..r });
            match &r {
                Some(r) => eprintln!(
                    "xtask load: {name:<12} open {rate:>6.0} msgs/s offered: delivered {:.0}, p50 \
                     {:.2} ms p99 {:.2} ms p99.9 {:.2} ms max {:.2} ms, lost {}, load {}{}",
                    r.delivered_per_sec,
                    r.p50_us / 1000.0,
                    r.p99_us / 1000.0,
                    r.p999_us / 1000.0,
                    r.max_us / 1000.0,
                    r.lost,
                    r.load,
                    if r.ok { "" } else { "  FAILED" }
                ),
                None => eprintln!(
                    "xtask load: {name} open {rate} msgs/s: failed: {}",
                    ok.as_ref()
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "no RESULT line".into())
                ),
            }
            if !r.as_ref().is_some_and(|r| r.ok) {
                failures.push(format!(
                    "{name} at {rate:.0} msgs/s offered: {} (see {})",
                    match &r {
                        Some(r) => format!(
                            "delivered {:.0} msgs/s, {} errors, {} lost",
                            r.delivered_per_sec, r.errors, r.lost
                        ),
                        None => "no result".into(),
                    },
                    log.display()
                ));
            }
            cells.push(r);
        }
        results.push((rate, cells));
    }
    drop(targets);
    print!("{}", render_open(c, pin, &results));
    crate::chart::draw_all(&[open_chart(c, &results)], command)?;
    if !failures.is_empty() {
        return Err(format!(
            "open loop: below 95% of the offered rate or in error: {}",
            failures.join("; ")
        )
        .into());
    }
    Ok(())
}

fn rate_label(rate: f64) -> String {
    if rate >= 1000.0 && rate % 1000.0 == 0.0 {
        format!("{}k/s", rate / 1000.0)
    } else {
        format!("{rate}/s")
    }
}

fn render_open(
    c: &StompCompareArgs,
    pin: &Pin,
    results: &[(f64, Vec<Option<OpenResult>>)],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nstompload open loop over loopback TCP: {} connections = {} publisher -> subscriber \
         pairs, one topic per pair, 128 B, the rate split evenly over the publishers; latency \
         from each message's intended send time (no coordinated omission); {}s measured after \
         {}s warm-up, one broker at a time; {}; {}",
        c.conns,
        c.conns / 2,
        c.secs,
        c.warmup,
        pin.describe(),
        crate::chart::machine()
    );
    let mut header = vec!["offered".to_owned()];
    header.extend(c.brokers.iter().map(|b| b.to_string()));
    let ours = c.brokers.first() == Some(&"switchboard");
    type Cell = fn(&OpenResult) -> String;
    let tables: [(&str, Cell); 3] = [
        (
            "latency p50 / p99 / p99.9 / max, ms (≥: the broker fell behind and messages never \
             arrived: the figures of those that did are a lower bound)",
            |r| {
                if r.received == 0 {
                    return "no message arrived".into();
                }
                let bound = if r.lost > 0 { "≥ " } else { "" };
                format!(
                    "{bound}{:.2} / {:.2} / {:.2} / {:.1}",
                    r.p50_us / 1000.0,
                    r.p99_us / 1000.0,
                    r.p999_us / 1000.0,
                    r.max_us / 1000.0
                )
            },
        ),
        (
            "delivered msgs/s (FAILED = under 95% of offered, or errors), lost messages",
            |r| {
                format!(
                    "{:.0}{}{}",
                    r.delivered_per_sec,
                    if r.lost > 0 {
                        format!(", {} lost", r.lost)
                    } else {
                        String::new()
                    },
                    if r.ok { "" } else { " FAILED" }
                )
            },
        ),
        (
            "stompload's own lag p99 (write time - intended time), ms; load average (1 min) at the end",
            |r| format!("{:.2}; load {}", r.gen_lag_p99_us / 1000.0, r.load),
        ),
    ];
    for (title, cell) in tables {
        let mut rows = vec![header.clone()];
        for (rate, cells) in results {
            let mut row = vec![rate_label(*rate)];
            row.extend(
                cells
                    .iter()
                    .map(|r| r.as_ref().map_or("failed".into(), cell)),
            );
            rows.push(row);
        }
        let _ = writeln!(out, "\n{title}");
        out.push_str(&table(&rows, c.markdown));
    }
    if ours && c.brokers.len() > 1 {
        let mut rows = vec![header.clone()];
        for (rate, cells) in results {
            let mut row = vec![rate_label(*rate)];
            for (i, r) in cells.iter().enumerate() {
                row.push(match (r, &cells[0]) {
                    (Some(r), Some(o))
                        if i > 0 && o.ok && r.received > 0 && o.p99_us > 0.0 && o.p999_us > 0.0 =>
                    {
                        format!(
                            "{}{:.1}x / {:.1}x",
                            if r.lost > 0 { "≥ " } else { "" },
                            r.p99_us / o.p99_us,
                            r.p999_us / o.p999_us
                        )
                    }
                    (Some(_), Some(_)) if i == 0 => "1".into(),
                    _ => "-".into(),
                });
            }
            rows.push(row);
        }
        let _ = writeln!(
            out,
            "\np99 / p99.9 latency, that broker / switchboard (> 1 means switchboard is lower)"
        );
        out.push_str(&table(&rows, c.markdown));
    }
    out
}

fn open_chart(
    c: &StompCompareArgs,
    results: &[(f64, Vec<Option<OpenResult>>)],
) -> crate::chart::Chart {
    let mut groups = Vec::new();
    let mut lower_bounds = Vec::new();
    type Q = fn(&OpenResult) -> f64;
    let quantiles: [(&str, Q); 3] = [
        ("p50", |r| r.p50_us),
        ("p99", |r| r.p99_us),
        ("p99.9", |r| r.p999_us),
    ];
    for (rate, cells) in results {
        for (q, get) in quantiles {
            for (si, r) in cells.iter().enumerate() {
                if r.as_ref().is_some_and(|r| r.lost > 0) {
                    lower_bounds.push((groups.len(), si));
                }
            }
            groups.push((
                format!("{} {q}", rate_label(*rate)),
                cells
                    .iter()
                    .map(|r| {
                        r.as_ref()
                            .filter(|r| r.received > 0)
                            .map(|r| get(r) / 1000.0)
                    })
                    .collect(),
            ));
        }
    }
    crate::chart::Chart {
        name: "load-stomp-open-loop".into(),
        title: format!(
            "STOMP open loop, {} connections, 128 B: latency from intended send (≥: lower bound)",
            c.conns
        ),
        y_label: "ms".into(),
        series: c.brokers.iter().map(|b| b.to_string()).collect(),
        groups,
        lower_bounds,
    }
}

/// The highest of `values` (one per broker, in `brokers` order) among the peers: neither
/// `switchboard` nor a `--baseline` build of it.
pub(crate) fn best_peer(
    brokers: &[&str],
    values: impl IntoIterator<Item = Option<f64>>,
) -> Option<f64> {
    brokers
        .iter()
        .zip(values)
        .filter(|(b, _)| **b != "switchboard" && **b != "baseline")
        .filter_map(|(_, v)| v)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
}

fn render_stomp(
    c: &StompCompareArgs,
    pin: &Pin,
    results: &[(Scenario, Vec<Option<StompResult>>)],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nstompload over loopback TCP, {}s measured after {}s warm-up, one broker at a time; \
         end-to-end flow control: at most 256 messages per publisher in flight, fewer for large \
         bodies (at most {} MiB); {}; {}",
        c.secs,
        c.warmup,
        STOMP_IN_FLIGHT_BYTES >> 20,
        pin.describe(),
        crate::chart::machine()
    );
    let ours = c.brokers.first() == Some(&"switchboard");
    let mut header = vec!["scenario".to_owned()];
    header.extend(c.brokers.iter().map(|b| b.to_string()));

    // Delivered msgs/s, with switchboard / best peer.
    let mut rows = vec![header.clone()];
    if ours && c.brokers.len() > 1 {
        rows[0].push("switchboard / best peer".into());
    }
    for (sc, cells) in results {
        let mut row = vec![sc.label()];
        row.extend(cells.iter().map(|r| match r {
            None => "failed".into(),
            Some(r) if r.errors > 0 => format!("{:.0} [{} err]", r.delivered_per_sec, r.errors),
            Some(r) => format!("{:.0}", r.delivered_per_sec),
        }));
        if ours && c.brokers.len() > 1 {
            let best_peer = best_peer(
                &c.brokers,
                cells
                    .iter()
                    .map(|r| r.as_ref().map(|r| r.delivered_per_sec)),
            );
            row.push(match (&cells[0], best_peer) {
                (Some(r), Some(p)) if p > 0.0 => format!("{:.2}x", r.delivered_per_sec / p),
                _ => "-".into(),
            });
        }
        rows.push(row);
    }
    let _ = writeln!(out, "\ndelivered msgs/s (all subscribers together)");
    out.push_str(&table(&rows, c.markdown));

    // p99 latency.
    let mut rows = vec![header.clone()];
    for (sc, cells) in results {
        let mut row = vec![sc.label()];
        row.extend(cells.iter().map(|r| {
            r.as_ref()
                .map_or("failed".into(), |r| format!("{:.1}", r.p99_us / 1000.0))
        }));
        rows.push(row);
    }
    let _ = writeln!(out, "\np99 latency, publish to delivery, ms");
    out.push_str(&table(&rows, c.markdown));

    // CPU per 1000 deliveries, with that broker / switchboard.
    let mut rows = vec![header.clone()];
    for (sc, cells) in results {
        let mut row = vec![sc.label()];
        let base = if ours {
            cells[0].as_ref().and_then(|r| r.cpu_s_per_1000)
        } else {
            None
        };
        for (i, r) in cells.iter().enumerate() {
            row.push(match r.as_ref().map(|r| r.cpu_s_per_1000) {
                None => "failed".into(),
                Some(None) => "?".into(),
                Some(Some(v)) => match base.filter(|b| i > 0 && *b > 0.0) {
                    Some(b) => format!("{v:.4} ({:.1}x)", v / b),
                    None => format!("{v:.4}"),
                },
            });
        }
        rows.push(row);
    }
    let _ = writeln!(
        out,
        "\nbroker CPU seconds (user + system, whole process group) per 1000 delivered messages, \
         warm-up included; (Nx) = that broker / switchboard"
    );
    out.push_str(&table(&rows, c.markdown));

    let mut rows = vec![header];
    for (sc, cells) in results {
        let mut row = vec![sc.label()];
        row.extend(
            cells
                .iter()
                .map(|r| r.as_ref().map_or("-".into(), |r| r.load.clone())),
        );
        rows.push(row);
    }
    let _ = writeln!(out, "\nload average (1 min) at the end of each run");
    out.push_str(&table(&rows, c.markdown));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_peer_skips_switchboard_and_the_baseline() {
        let brokers = ["switchboard", "baseline", "rabbitmq", "activemq"];
        let v = [Some(9.0), Some(8.0), Some(2.0), Some(3.0)];
        assert_eq!(best_peer(&brokers, v), Some(3.0));
        assert_eq!(
            best_peer(&brokers, [Some(9.0), Some(8.0), None, None]),
            None
        );
        assert_eq!(
            best_peer(&["switchboard", "rabbitmq"], [None, Some(1.5)]),
            Some(1.5)
        );
    }

    #[test]
    fn parses_result_line() {
        let out = "wsload ...\n  123 msgs/s\nRESULT conns=10 size=16 secs=3 msgs=369 msgs_per_sec=123.0 \
                   p50_us=50.5 p90_us=70.0 p99_us=99.9 p999_us=120.0 max_us=400.0 errors=0 all_msgs=500\n";
        let r = parse_result(out).unwrap();
        assert_eq!(r.all_msgs, 500);
        assert_eq!(r.msgs_per_sec, 123.0);
        assert_eq!(r.p99_us, 99.9);
        assert_eq!(r.errors, 0);
        assert!(parse_result("no result").is_none());
    }

    #[test]
    fn parses_stompload_result_line() {
        let out = "stompload: 4 pubs -> /topic/x 4 subs ...\nRESULT pubs=4 subs=4 size=128 secs=5 \
                   dest=/topic/x published_per_sec=1000 delivered_per_sec=4000 p50_us=10.0 \
                   p99_us=250.5 p999_us=300.0 max_us=400.0 errors=1 all_published=7000\n";
        let r = parse_stomp_result(out).unwrap();
        assert_eq!(r.delivered_per_sec, 4000.0);
        assert_eq!(r.p99_us, 250.5);
        assert_eq!(r.errors, 1);
        assert_eq!(r.all_published, 7000);
        assert!(parse_stomp_result("stompload: error: refused").is_none());
    }

    #[test]
    fn stomp_matrix_and_windows() {
        let default = stomp_scenarios(None);
        let labels: Vec<String> = default.iter().map(Scenario::label).collect();
        assert_eq!(
            labels,
            [
                "topic 1 -> 10, 128 B",
                "topic 4 -> 4, 128 B",
                "topic 4 -> 4, 16 KiB",
                "queue 4 -> 4, 128 B",
                "queue 1 -> 1, 128 B",
                "queue 1 -> 1, 128 B, client-individual",
            ]
        );
        assert_eq!(default[0].window(), 256);
        assert_eq!(default[2].window(), 64); // 4 pubs x 64 x 16 KiB = 4 MiB
        assert_eq!(default[0].fan_out(), 10);
        assert_eq!(default[3].fan_out(), 1);
        assert_eq!(default[3].dest(3), "/queue/xtask-load-3");
        assert_eq!(stomp_scenarios(Some(&[64, 1 << 20])).len(), 10);
        assert!(default[5].client_ack && !default[4].client_ack);
        let huge = Scenario {
            pubs: 4,
            subs: 4,
            size: 8 << 20,
            queue: false,
            client_ack: false,
        };
        assert_eq!(huge.window(), 2); // stompload's minimum
    }

    #[test]
    fn parses_open_loop_result_line() {
        let out = "stompload open: ...\nRESULT mode=open conns=1000 size=128 secs=5 \
                   offered_per_sec=10000 sent_per_sec=10000 delivered_per_sec=9990 \
                   received=49997 lost=3 \
                   p50_us=201.0 p99_us=4411.4 p999_us=6549.5 max_us=14573.6 \
                   gen_lag_p99_us=70.9 errors=0 ok=true\n";
        let r = parse_open_result(out).unwrap();
        assert_eq!(r.offered_per_sec, 10000.0);
        assert_eq!(r.delivered_per_sec, 9990.0);
        assert_eq!((r.received, r.lost, r.errors, r.ok), (49997, 3, 0, true));
        assert_eq!(r.p999_us, 6549.5);
        // A closed-loop line is not an open-loop result.
        assert!(parse_open_result("RESULT pubs=1 delivered_per_sec=5").is_none());
        assert_eq!(rate_label(50_000.0), "50k/s");
        assert_eq!(rate_label(1500.0), "1500/s");
    }

    #[test]
    fn open_loop_flags() {
        let args: Vec<String> = [
            "--compare",
            "--open-loop",
            "--rates",
            "1000,2000",
            "--conns",
            "10",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = parse_stomp_compare(&args).unwrap();
        assert!(c.open_loop);
        assert_eq!(c.rates, [1000.0, 2000.0]);
        assert_eq!(c.conns, 10);
        let default = parse_stomp_compare(&[]).unwrap();
        assert_eq!(
            (default.rates.as_slice(), default.conns),
            (OPEN_RATES, 1000)
        );
        let bad: Vec<String> = ["--rates", "0"].iter().map(|s| s.to_string()).collect();
        assert!(parse_stomp_compare(&bad).is_err());
    }

    #[test]
    fn stomp_compare_flags() {
        let args: Vec<String> = [
            "--compare",
            "--only",
            "activemq,switchboard",
            "--sizes",
            "128",
            "--markdown",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = parse_stomp_compare(&args).unwrap();
        assert_eq!(c.brokers, ["switchboard", "activemq"]); // table order, not flag order
        assert_eq!(c.sizes, Some(vec![128]));
        assert!(c.markdown);
        let bad: Vec<String> = ["--only", "kafka"].iter().map(|s| s.to_string()).collect();
        assert!(parse_stomp_compare(&bad).is_err());
    }

    #[test]
    fn reads_own_cpu_time() {
        let me = std::process::id();
        assert!(cpu_seconds(me).is_some_and(|s| s >= 0.0));
        assert!(find_pid("no-such-argument-127.0.0.1:1").is_none());
        // xtask's test binary: its group's CPU time includes its own.
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let pgrp: u32 = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        assert!(group_cpu_seconds(pgrp).is_some_and(|s| s >= 0.0));
    }

    #[test]
    fn ws_compare_flags() {
        let args: Vec<String> = "--compare --points 16x10,65536x10 --rounds 3 --baseline /tmp/e"
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let c = parse_compare(&args).unwrap();
        assert_eq!(c.cells(), vec![(16, 10), (65536, 10)]);
        assert_eq!(c.rounds, 3);
        assert_eq!(c.baseline, Some(PathBuf::from("/tmp/e")));
        let d = parse_compare(&[]).unwrap();
        assert_eq!(d.cells().len(), 9, "every size x connection count");
        assert_eq!(d.rounds, 1);
        for bad in ["--rounds 0", "--rounds 21", "--points 16"] {
            let bad: Vec<String> = bad.split_whitespace().map(str::to_owned).collect();
            assert!(parse_compare(&bad).is_err());
        }
        let runs = [
            None,
            Some(LoadResult {
                msgs_per_sec: 10.0,
                cpu_us_per_msg: Some(3.0),
                ..Default::default()
            }),
            Some(LoadResult {
                msgs_per_sec: 30.0,
                cpu_us_per_msg: Some(1.0),
                ..Default::default()
            }),
            Some(LoadResult {
                msgs_per_sec: 20.0,
                cpu_us_per_msg: Some(2.0),
                ..Default::default()
            }),
        ];
        let m = median_result(&runs).unwrap();
        assert_eq!((m.msgs_per_sec, m.cpu_us_per_msg), (20.0, Some(2.0)));
        assert!(median_result(&[None, None]).is_none());
    }

    #[test]
    fn budget_follows_arguments() {
        let args: Vec<String> = ["--secs", "5", "--warmup", "2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            wsload_budget(&args),
            Duration::from_secs_f64(5.0 + 2.0 + 10.0 + 45.0)
        );
    }
}
