//! `cargo xtask load sockjs`: our SockJS server beside sockjs-node, with one load generator.
//!
//! ```text
//! cargo xtask load sockjs --compare [--secs S] [--warmup W] [--rounds R] [--sizes 16,1024]
//!                                   [--sessions-list 1,100] [--transports websocket,xhr-streaming]
//!                                   [--windows 1,16]
//! cargo xtask load sockjs --idle [--idle-sessions N]
//! ```
//!
//! `--compare` starts two SockJS echo servers on free loopback ports: switchboard-sockjs's
//! `protocol_test_server` example (endpoint `/echo`, `TCP_NODELAY` like `switchboard`) and
//! sockjs-node 0.3.24 (`xtask/load/sockjs_node_echo.js`, run by `node` with the npm packages
//! `cargo xtask interop` pins, installed under `target/xtask/node`), both with the same
//! streaming `response_limit` ([`RESPONSE_LIMIT`], the default of both; the example's own
//! default is the protocol suite's 4096). Then for every transport × sessions × size it runs
//! `sockjsload` (crates/bench) against one server at a time, the other idle: echo round trips
//! with `N` messages in flight per session for every `N` of `--windows` (default 1 and 16: one
//! table each), over the `websocket` transport (`["msg"]` out, `a["msg"]` back) and over
//! `xhr-streaming` + `xhr_send`. One message in flight mostly measures round-trip latency and
//! scheduling; with 16 in flight echoes come back several to a frame, as bursts and fan-out do
//! in real SockJS traffic, and each server's cost per message shows. The whole matrix runs `R` times
//! (default 3) and each cell shows its median run: on a shared machine one round can be
//! disturbed by whatever else runs. The servers run pinned to CPU 0 and
//! the load generator to CPU 1 (`taskset`, util-linux), so each gets one core and neither
//! steals the other's; sockjs-node is single-threaded anyway. It prints one markdown table:
//! msgs/s with ours / sockjs-node, p99 latency with sockjs-node / ours, and each server's CPU
//! time per round trip (from `/proc/PID/stat`, warm-up included) with sockjs-node / ours, plus
//! how busy the load generator was (100% = its one core saturated: the figure is then a floor
//! for that server, not its ceiling).
//!
//! `--idle` measures server memory per idle session (resident-set growth over `N` sessions,
//! default 2000, after 50 warm-up sessions; a fresh server per row):
//! - `switchboard` (the release binary, `/chat`, STOMP CONNECT + SUBSCRIBE per session): over a
//!   plain WebSocket (`stompload idle --ws`, what `cargo xtask load idle` reports), over SockJS
//!   `websocket` and over SockJS `xhr-streaming` (`sockjsload idle --stomp`);
//! - the two echo servers (no STOMP), over SockJS `websocket` and `xhr-streaming`.
//!
//! Both flags together run both. Every server is killed at the end, also on error.

use super::{cpu_seconds, free_port, result_fields, table, target_dir};
use crate::Result;
use crate::process::Process;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const USAGE: &str = "\
usage: cargo xtask load sockjs --compare [--secs S] [--warmup W] [--rounds R] [--sizes 16,1024]
                                         [--sessions-list 1,100] [--transports websocket,xhr-streaming]
                                         [--windows 1,16]
       cargo xtask load sockjs --idle [--idle-sessions N]";

/// Streaming responses (`xhr_streaming`) end after this many bytes on both servers (the
/// default of both); the client then opens the next one, as sockjs-client does.
const RESPONSE_LIMIT: usize = 128 * 1024;
/// The CPU the servers run on, and the one the load generator runs on.
const SERVER_CPU: &str = "0";
const CLIENT_CPU: &str = "1";
/// The transports `sockjsload` speaks.
const TRANSPORTS: &[&str] = &["websocket", "xhr-streaming"];

/// The two echo servers, in table order.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Echo {
    Ours,
    SockjsNode,
}

impl Echo {
    const ALL: [Echo; 2] = [Echo::Ours, Echo::SockjsNode];

    fn name(self) -> &'static str {
        match self {
            Echo::Ours => "switchboard-sockjs",
            Echo::SockjsNode => "sockjs-node",
        }
    }
}

#[derive(Debug, PartialEq)]
struct Args {
    compare: bool,
    idle: bool,
    secs: f64,
    warmup: f64,
    /// Times the whole matrix runs; each cell shows the median run.
    rounds: usize,
    sizes: Vec<usize>,
    sessions: Vec<usize>,
    transports: Vec<&'static str>,
    /// Messages in flight per session; one table per entry.
    windows: Vec<usize>,
    idle_sessions: usize,
}

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        compare: false,
        idle: false,
        secs: 3.0,
        warmup: 1.0,
        rounds: 3,
        sizes: vec![16, 1024],
        sessions: vec![1, 100],
        transports: TRANSPORTS.to_vec(),
        windows: vec![1, 16],
        idle_sessions: 2000,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--compare" => a.compare = true,
            "--idle" => a.idle = true,
            "--secs" => a.secs = value()?.parse()?,
            "--warmup" => a.warmup = value()?.parse()?,
            "--rounds" => a.rounds = value()?.parse()?,
            "--sizes" => a.sizes = super::parse_list(value()?)?,
            "--sessions-list" => a.sessions = super::parse_list(value()?)?,
            "--windows" | "--window" => a.windows = super::parse_list(value()?)?,
            "--idle-sessions" => a.idle_sessions = value()?.parse()?,
            "--transports" => {
                a.transports =
                    super::select_known("--transports", "transport", value()?, TRANSPORTS)?
            }
            other => return Err(format!("unexpected argument `{other}`\n{USAGE}").into()),
        }
    }
    if !a.compare && !a.idle {
        return Err(format!("say --compare, --idle or both\n{USAGE}").into());
    }
    if !(a.secs > 0.0 && a.secs <= 3600.0 && (0.0..=600.0).contains(&a.warmup)) {
        return Err("--secs must be in (0, 3600] and --warmup in [0, 600]".into());
    }
    if !(1..=20).contains(&a.rounds) {
        return Err("--rounds must be in 1..=20".into());
    }
    if a.windows.is_empty() || a.windows.iter().any(|&w| w == 0 || w > 1024) {
        return Err("--windows: each must be in 1..=1024".into());
    }
    if a.sizes.is_empty() || a.sessions.is_empty() || a.transports.is_empty() {
        return Err(format!("nothing to run\n{USAGE}").into());
    }
    if a.sizes.iter().any(|&s| s == 0 || s > 16 << 20)
        || a.sessions.iter().any(|&n| n == 0 || n > 10_000)
        || !(1..=50_000).contains(&a.idle_sessions)
    {
        return Err(
            "sizes must be in 1..=16 MiB, sessions in 1..=10000, --idle-sessions in 1..=50000"
                .into(),
        );
    }
    Ok(a)
}

pub(super) fn run(args: &[String]) -> Result {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let a = parse_args(args)?;
    let pin = Pinning::detect();
    if let Some(why) = &pin.off_because {
        eprintln!("xtask load sockjs: not pinning to CPUs: {why}");
    }
    let tools = Tools::build(a.idle)?;
    let mut out = String::new();
    if a.compare {
        out.push_str(&compare(&a, &tools, &pin)?);
    }
    if a.idle {
        out.push_str(&idle(&a, &tools, &pin)?);
    }
    print!("{out}");
    Ok(())
}

/// `taskset -c CPU` in front of a command, when there is a `taskset` and a second CPU.
struct Pinning {
    off_because: Option<String>,
}

impl Pinning {
    fn detect() -> Pinning {
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
        Pinning { off_because }
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
            None => {
                format!("servers pinned to CPU {SERVER_CPU}, load generator to CPU {CLIENT_CPU}")
            }
            Some(why) => format!("not pinned ({why})"),
        }
    }
}

/// What the runs need: built binaries and the npm packages.
struct Tools {
    sockjsload: PathBuf,
    /// switchboard-sockjs's `protocol_test_server` example.
    echo_server: PathBuf,
    node_modules: PathBuf,
    /// `switchboard` and `stompload`, for `--idle`.
    stomp: Option<(PathBuf, PathBuf)>,
}

impl Tools {
    fn build(idle: bool) -> Result<Tools> {
        crate::exec(crate::cargo().args([
            "build",
            "--release",
            "-p",
            "switchboard-bench",
            "--bin",
            "sockjsload",
        ]))?;
        crate::exec(crate::cargo().args([
            "build",
            "--release",
            "-p",
            "switchboard-sockjs",
            "--example",
            "protocol_test_server",
        ]))?;
        let stomp = if idle {
            Some(super::build_stomp_tools()?)
        } else {
            None
        };
        let node_modules = crate::node::ensure_packages(
            &crate::xtask_dir().join("node"),
            crate::interop::NPM_PACKAGES,
        )?;
        let release = target_dir().join("release");
        Ok(Tools {
            sockjsload: release.join("sockjsload"),
            echo_server: release.join("examples/protocol_test_server"),
            node_modules,
            stomp,
        })
    }
}

fn logs_dir() -> Result<PathBuf> {
    let logs = crate::xtask_dir().join("load");
    std::fs::create_dir_all(&logs)?;
    Ok(logs)
}

/// Starts an echo server on a free port, pinned; waits until it accepts connections.
fn start_echo(echo: Echo, tools: &Tools, pin: &Pinning, log: &Path) -> Result<(Process, u16)> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = match echo {
        Echo::Ours => {
            let mut cmd = pin.command(SERVER_CPU, &tools.echo_server);
            cmd.arg(&addr)
                .args(["--response-limit", &RESPONSE_LIMIT.to_string()]);
            cmd
        }
        Echo::SockjsNode => {
            let mut cmd = pin.command(SERVER_CPU, "node");
            cmd.arg(crate::project_root().join("xtask/load/sockjs_node_echo.js"))
                .arg(&addr)
                .args(["--response-limit", &RESPONSE_LIMIT.to_string()])
                .env("NODE_PATH", &tools.node_modules);
            cmd
        }
    };
    let mut p = Process::spawn(echo.name(), &mut cmd, log)?;
    p.wait_for_port(port)?;
    Ok((p, port))
}

/// One `sockjsload` result line.
#[derive(Debug, Default, Clone, PartialEq)]
struct EchoResult {
    msgs_per_sec: f64,
    p99_us: f64,
    errors: u64,
    all_msgs: u64,
    client_cpu_pct: f64,
    /// Server CPU time per round trip, warm-up included, µs.
    server_cpu_us: Option<f64>,
}

fn parse_echo_result(output: &str) -> Option<EchoResult> {
    let mut r = EchoResult::default();
    for (k, v) in result_fields(output)? {
        match k {
            "msgs_per_sec" => r.msgs_per_sec = v.parse().ok()?,
            "p99_us" => r.p99_us = v.parse().ok()?,
            "errors" => r.errors = v.parse().ok()?,
            "all_msgs" => r.all_msgs = v.parse().ok()?,
            "client_cpu_pct" => r.client_cpu_pct = v.parse().ok()?,
            _ => {}
        }
    }
    Some(r)
}

/// One point of the matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    transport: &'static str,
    sessions: usize,
    size: usize,
    /// Messages in flight per session.
    window: usize,
}

fn size_label(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn compare(a: &Args, tools: &Tools, pin: &Pinning) -> Result<String> {
    let logs = logs_dir()?;
    // Both servers up first; each is killed (with its process group) when dropped.
    let mut servers = Vec::new();
    for echo in Echo::ALL {
        let log = logs.join(format!("sockjs-echo-{}.log", echo.name()));
        let (p, port) = start_echo(echo, tools, pin, &log)?;
        servers.push((echo, p, port));
    }
    let mut points = Vec::new();
    for &window in &a.windows {
        for &transport in &a.transports {
            for &sessions in &a.sessions {
                for &size in &a.sizes {
                    points.push(Point {
                        transport,
                        sessions,
                        size,
                        window,
                    });
                }
            }
        }
    }
    // samples[point][server]: every successful run of the rounds.
    let mut samples: Vec<Vec<Vec<EchoResult>>> =
        vec![vec![Vec::new(); servers.len()]; points.len()];
    for round in 1..=a.rounds {
        if a.rounds > 1 {
            eprintln!("xtask load sockjs: round {round} of {}", a.rounds);
        }
        for (i, &point) in points.iter().enumerate() {
            for (j, (echo, server, port)) in servers.iter_mut().enumerate() {
                server.ensure_running()?;
                if let Some(r) = run_point(a, tools, pin, *echo, server.pid(), *port, point)? {
                    samples[i][j].push(r);
                }
            }
        }
    }
    let results: Vec<(Point, Vec<Option<EchoResult>>)> = points
        .into_iter()
        .zip(samples)
        .map(|(p, cells)| (p, cells.into_iter().map(median_run).collect()))
        .collect();
    drop(servers);
    let mut out = String::new();
    for &window in &a.windows {
        let of_window: Vec<_> = results
            .iter()
            .filter(|(p, _)| p.window == window)
            .cloned()
            .collect();
        out.push_str(&render_compare(a, pin, window, &of_window));
    }
    Ok(out)
}

/// The run with the median msgs/s (the lower middle one of an even count), so one round
/// disturbed by another process on the machine does not decide the figure.
fn median_run(mut runs: Vec<EchoResult>) -> Option<EchoResult> {
    runs.sort_by(|x, y| x.msgs_per_sec.total_cmp(&y.msgs_per_sec));
    let mid = runs.len().checked_sub(1)? / 2;
    Some(runs.swap_remove(mid))
}

fn run_point(
    a: &Args,
    tools: &Tools,
    pin: &Pinning,
    echo: Echo,
    pid: u32,
    port: u16,
    p: Point,
) -> Result<Option<EchoResult>> {
    let logs = logs_dir()?;
    let args: Vec<String> = vec![
        "--transport".into(),
        p.transport.into(),
        "--sessions".into(),
        p.sessions.to_string(),
        "--size".into(),
        p.size.to_string(),
        "--secs".into(),
        a.secs.to_string(),
        "--warmup".into(),
        a.warmup.to_string(),
        "--window".into(),
        p.window.to_string(),
        format!("http://127.0.0.1:{port}/echo"),
    ];
    let log = logs.join(format!(
        "sockjsload-{}-{}-{}-{}-w{}.log",
        echo.name(),
        p.transport,
        p.sessions,
        p.size,
        p.window
    ));
    let cpu_before = cpu_seconds(pid);
    let mut cmd = pin.command(CLIENT_CPU, &tools.sockjsload);
    cmd.args(&args);
    let mut load = Process::spawn("sockjsload", &mut cmd, &log)?;
    let ok = load.wait(Duration::from_secs_f64(a.secs + a.warmup + 10.0 + 45.0));
    drop(load);
    let cpu = cpu_before.zip(cpu_seconds(pid)).map(|(b, e)| e - b);
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    let r = parse_echo_result(&out).map(|mut r| {
        r.server_cpu_us = cpu
            .filter(|_| r.all_msgs > 0)
            .map(|c| c * 1e6 / r.all_msgs as f64);
        r
    });
    match (&ok, &r) {
        (Ok(()), Some(r)) => eprintln!(
            "xtask load sockjs: {:<18} {:<13} {:>3} sessions {:>6} window {:>2}: {:>8.0} msgs/s  \
             p99 {:>8.0} µs  server CPU {} µs/msg  client CPU {:.0}%{}",
            echo.name(),
            p.transport,
            p.sessions,
            size_label(p.size),
            p.window,
            r.msgs_per_sec,
            r.p99_us,
            r.server_cpu_us.map_or("?".into(), |c| format!("{c:.1}")),
            r.client_cpu_pct,
            if r.errors > 0 {
                format!("  ({} errors, see {})", r.errors, log.display())
            } else {
                String::new()
            }
        ),
        _ => eprintln!(
            "xtask load sockjs: {} {} {} sessions {}: failed: {}",
            echo.name(),
            p.transport,
            p.sessions,
            size_label(p.size),
            ok.as_ref()
                .err()
                .map_or_else(|| "no RESULT line".into(), |e| e.to_string())
        ),
    }
    Ok(r.filter(|r| ok.is_ok() && r.msgs_per_sec > 0.0))
}

fn render_compare(
    a: &Args,
    pin: &Pinning,
    window: usize,
    results: &[(Point, Vec<Option<EchoResult>>)],
) -> String {
    let mut out = String::new();
    let in_flight = if window == 1 {
        "one message in flight per session".to_owned()
    } else {
        format!("{window} messages in flight per session")
    };
    let _ = writeln!(
        out,
        "\nSockJS echo, {in_flight}, {}s measured after {}s warm-up, \
         median of {} rounds, one server at a time; {}; xhr-streaming responses end after {} KiB on both servers. \
         ours/node > 1: switchboard-sockjs ahead. CPU: server CPU time per round trip \
         (warm-up included). client: the load generator's share of its one core (100% = it, \
         not the server, was the limit).",
        a.secs,
        a.warmup,
        a.rounds,
        pin.describe(),
        RESPONSE_LIMIT / 1024
    );
    let mut rows = vec![
        [
            "transport",
            "sessions",
            "size",
            "switchboard-sockjs msgs/s",
            "sockjs-node msgs/s",
            "ours/node",
            "switchboard-sockjs p99 µs",
            "sockjs-node p99 µs",
            "node/ours p99",
            "CPU µs/msg ours",
            "CPU µs/msg node",
            "node/ours CPU",
            "client CPU ours / node",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let (mut met, mut cpu_met) = (0, 0);
    for (p, cells) in results {
        let (ours, node) = (cells[0].as_ref(), cells[1].as_ref());
        let num = |r: Option<&EchoResult>, f: fn(&EchoResult) -> f64, prec: usize| {
            r.map_or("failed".into(), |r| {
                let errors = if r.errors > 0 {
                    format!(" [{} err]", r.errors)
                } else {
                    String::new()
                };
                format!("{:.prec$}{errors}", f(r))
            })
        };
        let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) if y > 0.0 => format!("{:.2}x", x / y),
            _ => "-".into(),
        };
        let rate = |r: Option<&EchoResult>| r.map(|r| r.msgs_per_sec);
        let p99 = |r: Option<&EchoResult>| r.map(|r| r.p99_us);
        let cpu = |r: Option<&EchoResult>| r.and_then(|r| r.server_cpu_us);
        if let (Some(o), Some(n)) = (cpu(ours), cpu(node))
            && o > 0.0
            && n / o >= 3.0
        {
            cpu_met += 1;
        }
        if let (Some(o), Some(n)) = (ours, node)
            && n.msgs_per_sec > 0.0
            && o.msgs_per_sec / n.msgs_per_sec >= 3.0
        {
            met += 1;
        }
        rows.push(vec![
            p.transport.into(),
            p.sessions.to_string(),
            size_label(p.size),
            num(ours, |r| r.msgs_per_sec, 0),
            num(node, |r| r.msgs_per_sec, 0),
            ratio(rate(ours), rate(node)),
            num(ours, |r| r.p99_us, 0),
            num(node, |r| r.p99_us, 0),
            ratio(p99(node), p99(ours)),
            ours.and_then(|r| r.server_cpu_us)
                .map_or("?".into(), |c| format!("{c:.1}")),
            node.and_then(|r| r.server_cpu_us)
                .map_or("?".into(), |c| format!("{c:.1}")),
            ratio(cpu(node), cpu(ours)),
            format!(
                "{} / {}",
                ours.map_or("-".into(), |r| format!("{:.0}%", r.client_cpu_pct)),
                node.map_or("-".into(), |r| format!("{:.0}%", r.client_cpu_pct))
            ),
        ]);
    }
    out.push_str(&table(&rows, true));
    let _ = writeln!(
        out,
        "\n{in_flight}: switchboard-sockjs at >= 3x sockjs-node's msgs/s: {met} of {n} points; \
         at <= 1/3 of its server CPU per round trip: {cpu_met} of {n} points",
        n = results.len()
    );
    out
}

/// One row of the idle table.
struct IdleRow {
    server: String,
    what: String,
    kib_per_session: Option<f64>,
    note: String,
}

fn idle(a: &Args, tools: &Tools, pin: &Pinning) -> Result<String> {
    let logs = logs_dir()?;
    let n = a.idle_sessions.to_string();
    let mut rows = Vec::new();
    if let Some((switchboard, stompload)) = &tools.stomp {
        for kind in ["websocket-stomp", "websocket", "xhr-streaming"] {
            // A fresh server per row: memory freed by one run would be reused by the next.
            let port = free_port()?;
            let addr = format!("127.0.0.1:{port}");
            let mut cmd = pin.command(SERVER_CPU, switchboard);
            cmd.args(["--http", &addr, "--stomp", "off"])
                .env("RUST_LOG", "warn");
            let log = logs.join(format!("idle-switchboard-{kind}.log"));
            let mut server = Process::spawn("switchboard", &mut cmd, &log)?;
            server.wait_for_port(port)?;
            let pid = server.pid().to_string();
            let mut probe = if kind == "websocket-stomp" {
                let mut c = pin.command(CLIENT_CPU, stompload);
                c.args(["idle", "--conns", &n, "--pid", &pid, "--ws", &addr]);
                c
            } else {
                let mut c = pin.command(CLIENT_CPU, &tools.sockjsload);
                c.args(["idle", "--sessions", &n, "--pid", &pid, "--stomp"])
                    .args(["--transport", kind])
                    .arg(format!("http://{addr}/chat"));
                c
            };
            let (kib, note) = idle_probe(&mut probe, &logs.join(format!("idle-probe-{kind}.log")))?;
            drop(server);
            rows.push(IdleRow {
                server: "switchboard /chat".into(),
                what: if kind == "websocket-stomp" {
                    "plain WebSocket (no SockJS), STOMP CONNECT + SUBSCRIBE".into()
                } else {
                    format!("SockJS {kind}, STOMP CONNECT + SUBSCRIBE")
                },
                kib_per_session: kib,
                note,
            });
        }
    }
    for echo in Echo::ALL {
        for &transport in TRANSPORTS {
            let log = logs.join(format!("idle-{}-{transport}.log", echo.name()));
            let (server, port) = start_echo(echo, tools, pin, &log)?;
            let mut probe = pin.command(CLIENT_CPU, &tools.sockjsload);
            probe
                .args(["idle", "--sessions", &n, "--pid", &server.pid().to_string()])
                .args(["--transport", transport])
                .arg(format!("http://127.0.0.1:{port}/echo"));
            let probe_log = logs.join(format!("idle-probe-{}-{transport}.log", echo.name()));
            let (kib, note) = idle_probe(&mut probe, &probe_log)?;
            drop(server);
            rows.push(IdleRow {
                server: format!("{} echo", echo.name()),
                what: format!("SockJS {transport}"),
                kib_per_session: kib,
                note,
            });
        }
    }
    let mut table_rows = vec![
        ["server", "sessions", "KiB per idle session", "notes"]
            .map(String::from)
            .to_vec(),
    ];
    for r in rows {
        table_rows.push(vec![
            r.server,
            r.what,
            r.kib_per_session
                .map_or("failed".into(), |k| format!("{k:.2}")),
            r.note,
        ]);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nserver memory per idle session: resident-set growth over {} sessions opened after 50 \
         warm-up sessions, a fresh server per row ({})",
        a.idle_sessions,
        pin.describe()
    );
    out.push_str(&table(&table_rows, true));
    Ok(out)
}

/// Runs an idle probe (`stompload idle` or `sockjsload idle`) and reads its `RESULT` line:
/// KiB per session (`None` when it failed) and a note.
fn idle_probe(cmd: &mut Command, log: &Path) -> Result<(Option<f64>, String)> {
    let mut p = Process::spawn("idle probe", cmd, log)?;
    let ok = p.wait(Duration::from_secs(600));
    drop(p);
    let out = std::fs::read_to_string(log).unwrap_or_default();
    let kib = result_fields(&out).and_then(|fields| {
        fields
            .iter()
            .find(|(k, _)| *k == "kib_per_session" || *k == "kib_per_conn")
            .and_then(|(_, v)| v.parse::<f64>().ok())
    });
    match (ok, kib) {
        (Ok(()), Some(k)) => {
            eprintln!(
                "xtask load sockjs: idle: {k:.2} KiB per session ({})",
                log.display()
            );
            Ok((Some(k), String::new()))
        }
        (ok, _) => {
            let why = ok.err().map_or("no RESULT line".into(), |e| e.to_string());
            eprintln!("xtask load sockjs: idle probe failed: {why}");
            Ok((None, format!("see {}", log.display())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags() {
        let a = parse_args(&args("--compare")).unwrap();
        assert_eq!(
            (a.sizes.clone(), a.sessions.clone()),
            (vec![16, 1024], vec![1, 100])
        );
        assert_eq!(a.transports, TRANSPORTS);
        assert!(a.compare && !a.idle);
        let a = parse_args(&args(
            "--idle --idle-sessions 500 --transports xhr-streaming",
        ))
        .unwrap();
        assert_eq!(
            (a.idle_sessions, a.transports),
            (500, vec!["xhr-streaming"])
        );
        assert!(parse_args(&args("")).is_err());
        assert!(parse_args(&args("--compare --transports jsonp")).is_err());
        assert!(parse_args(&args("--compare --sizes 0")).is_err());
        assert!(parse_args(&args("--compare --secs")).is_err());
        assert!(parse_args(&args("--compare --rounds 0")).is_err());
        assert_eq!(parse_args(&args("--compare --rounds 5")).unwrap().rounds, 5);
        assert_eq!(a.windows, vec![1, 16]);
        assert_eq!(
            parse_args(&args("--compare --windows 4")).unwrap().windows,
            vec![4]
        );
        assert!(parse_args(&args("--compare --windows 0")).is_err());
    }

    #[test]
    fn median_run_is_the_middle_one() {
        let run = |rate| EchoResult {
            msgs_per_sec: rate,
            ..EchoResult::default()
        };
        assert_eq!(median_run(vec![]), None);
        assert_eq!(median_run(vec![run(5.0)]).unwrap().msgs_per_sec, 5.0);
        let three = vec![run(9.0), run(1.0), run(4.0)];
        assert_eq!(median_run(three).unwrap().msgs_per_sec, 4.0);
        let four = vec![run(9.0), run(1.0), run(4.0), run(6.0)];
        assert_eq!(median_run(four).unwrap().msgs_per_sec, 4.0);
    }

    #[test]
    fn parses_sockjsload_result() {
        let out = "sockjsload ...\nRESULT transport=websocket sessions=1 size=16 secs=3 msgs=30000 \
                   msgs_per_sec=10000.0 p50_us=90.0 p90_us=100.0 p99_us=180.5 p999_us=500.0 \
                   max_us=900.0 errors=0 all_msgs=40000 reopened=0 client_cpu_pct=55\n";
        let r = parse_echo_result(out).unwrap();
        assert_eq!(r.msgs_per_sec, 10000.0);
        assert_eq!(r.p99_us, 180.5);
        assert_eq!(r.all_msgs, 40000);
        assert_eq!(r.client_cpu_pct, 55.0);
        assert!(parse_echo_result("sockjsload: error").is_none());
    }

    #[test]
    fn table_has_ratios_and_counts_the_target() {
        let a = parse_args(&args("--compare")).unwrap();
        let pin = Pinning { off_because: None };
        let r = |rate: f64, p99: f64| EchoResult {
            msgs_per_sec: rate,
            p99_us: p99,
            all_msgs: 100,
            client_cpu_pct: 50.0,
            server_cpu_us: Some(2.0),
            ..EchoResult::default()
        };
        let point = |transport, sessions| Point {
            transport,
            sessions,
            size: 1024,
            window: 1,
        };
        let mut results = vec![
            (
                point("websocket", 1),
                vec![Some(r(30000.0, 100.0)), Some(r(10000.0, 200.0))],
            ),
            (
                point("xhr-streaming", 100),
                vec![Some(r(20000.0, 100.0)), None],
            ),
        ];
        if let Some(node) = results[0].1[1].as_mut() {
            node.server_cpu_us = Some(7.0);
        }
        let t = render_compare(&a, &pin, 1, &results);
        assert!(
            t.contains(
                "| websocket | 1 | 1 KiB | 30000 | 10000 | 3.00x | 100 | 200 | 2.00x | 2.0 | 7.0 | 3.50x |"
            ),
            "{t}"
        );
        assert!(
            t.contains("| xhr-streaming | 100 | 1 KiB | 20000 | failed | - |"),
            "{t}"
        );
        assert!(t.contains("msgs/s: 1 of 2 points"), "{t}");
        assert!(t.contains("CPU per round trip: 1 of 2 points"), "{t}");
    }
}
