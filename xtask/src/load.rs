//! Load tests: `cargo xtask load ws ...` (WebSocket echo, `wsload`), `cargo xtask load stomp ...`
//! (broker throughput, `stompload`) and `cargo xtask load idle` (memory per idle connection).
//! The load generators live in crates/bench.
//!
//! ```text
//! cargo xtask load ws [--conns N] [--size B] [--secs S] [--warmup W] [--rate R] [--threads T] URL
//! cargo xtask load ws --compare [--secs S] [--warmup W] [--sizes 16,125,65536]
//!                               [--conns-list 1,10,100] [--threads T] [--markdown]
//! cargo xtask load stomp [stompload flags] [HOST:PORT]
//! cargo xtask load idle [--conns N]
//! ```
//!
//! `load stomp` without an address starts the release `switchboard` (embedded broker, STOMP on a
//! free loopback port, HTTP off) and runs `stompload` against it; with `HOST:PORT` it loads any
//! STOMP broker there (RabbitMQ's STOMP plugin, ActiveMQ, ...), so runs can be compared side by
//! side. `load idle` starts a fresh `switchboard` per transport (TCP, WebSocket), opens `N`
//! (default 2000) connections that CONNECT and SUBSCRIBE and then sit idle, and prints how much
//! the server's resident memory grew per connection.
//!
//! The first form builds `wsload` (release) and runs it against `URL`. `--compare` starts
//! switchboard-ws's `echo_server` example and the three `peer_echo` servers (tungstenite,
//! tokio-websockets, fastwebsockets) on free loopback ports, runs the size × connections matrix
//! against each (one server at a time; the others sit idle), prints msgs/s and p99 with the
//! ratio switchboard / peer, and kills every server at the end (also on error). Deflate is off:
//! `wsload` never offers it.
//!
//! Beside msgs/s it reports each server's CPU time per round trip (user + system, from
//! `/proc/PID/stat`, over the whole run divided by every round trip including warm-up): on a
//! shared machine msgs/s mostly says how much CPU the scheduler gave each process (a
//! thread-per-connection server gets more slices than a 2-thread runtime), while CPU per
//! message says how much work the server does for each one.

use crate::Result;
use crate::process::Process;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const USAGE: &str = "\
usage: cargo xtask load ws [--conns N] [--size B] [--secs S] [--warmup W] [--rate R] [--threads T] URL
       cargo xtask load ws --compare [--secs S] [--warmup W] [--sizes 16,125,65536]
                                     [--conns-list 1,10,100] [--threads T] [--markdown]
       cargo xtask load stomp [--pubs P] [--subs S] [--size B] [--secs S] [--warmup W] [--dest D]
                              [--window K] [--login L] [--passcode P] [--threads T] [HOST:PORT]
       cargo xtask load idle [--conns N]";

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
            if rest.iter().any(|a| a == "--compare") {
                compare(rest)
            } else {
                single(rest)
            }
        }
        Some((what, rest)) if what == "stomp" => stomp(rest),
        Some((what, rest)) if what == "idle" => idle(rest),
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
fn start_switchboard(bin: &PathBuf, http: &str, stomp: &str, port: u16) -> Result<Process> {
    let logs = crate::xtask_dir().join("load");
    std::fs::create_dir_all(&logs)?;
    let mut cmd = Command::new(bin);
    cmd.args(["--http", http, "--stomp", stomp])
        .env("RUST_LOG", "warn");
    let mut p = Process::spawn("switchboard", &mut cmd, &logs.join("switchboard.log"))?;
    p.wait_for_port(port)?;
    Ok(p)
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
        let p = start_switchboard(&server_bin, "off", &addr, port)?;
        args.push(addr);
        Some(p)
    };
    let mut p = Process::spawn_inherit("stompload", Command::new(&stompload).args(&args))?;
    p.wait(stompload_budget(&args))
}

fn idle(args: &[String]) -> Result {
    let mut conns = 2000usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--conns" => {
                conns = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--conns needs a number")?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}").into()),
        }
    }
    let (server_bin, stompload) = build_stomp_tools()?;
    for ws in [false, true] {
        // A fresh server per transport: memory freed by one run would be reused by the next.
        let (http_port, stomp_port) = (free_port()?, free_port()?);
        let http = format!("127.0.0.1:{http_port}");
        let stomp = format!("127.0.0.1:{stomp_port}");
        let server = start_switchboard(&server_bin, &http, &stomp, stomp_port)?;
        let mut cmd = Command::new(&stompload);
        cmd.args(["idle", "--conns", &conns.to_string(), "--pid"])
            .arg(server.pid().to_string());
        if ws {
            cmd.args(["--ws", &http]);
        } else {
            cmd.arg(&stomp);
        }
        let logs = crate::xtask_dir().join("load");
        let log = logs.join(format!("idle-{}.log", if ws { "ws" } else { "tcp" }));
        let mut p = Process::spawn("stompload", &mut cmd, &log)?;
        let ok = p.wait(Duration::from_secs(300));
        drop(p);
        drop(server);
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        ok.map_err(|e| format!("{e}\n{}", crate::process::tail(&log, 20)))?;
        let line = out
            .lines()
            .find(|l| l.starts_with("stompload idle:"))
            .ok_or("stompload printed no result")?
            .to_owned();
        println!("{line}");
    }
    Ok(())
}

fn target_dir() -> PathBuf {
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
            other => return Err(format!("unexpected argument `{other}`\n{USAGE}").into()),
        }
    }
    Ok(c)
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16> {
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

fn parse_result(output: &str) -> Option<LoadResult> {
    let line = output.lines().rev().find(|l| l.starts_with("RESULT "))?;
    let mut r = LoadResult::default();
    for kv in line.split_whitespace().skip(1) {
        let (k, v) = kv.split_once('=')?;
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

    // Start every server; `Process` kills each (and its process group) when dropped.
    let mut servers: Vec<(&str, u16, Process)> = Vec::new();
    for &name in SERVERS {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = if name == "switchboard" {
            let mut cmd = Command::new(release.join("examples/echo_server"));
            cmd.arg(&addr);
            cmd
        } else {
            let mut cmd = Command::new(release.join("peer_echo"));
            cmd.args(["--lib", name, &addr]);
            cmd
        };
        let mut p = Process::spawn(
            name_static(name),
            &mut cmd,
            &logs.join(format!("{name}.log")),
        )?;
        p.wait_for_port(port)?;
        servers.push((name, port, p));
    }

    let wsload = release.join("wsload");
    let mut results: Vec<Row> = Vec::new();
    for &size in &c.sizes {
        for &conns in &c.conns {
            let mut row = Vec::new();
            for (name, port, server) in servers.iter_mut() {
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
                let mut p = Process::spawn("wsload", Command::new(&wsload).args(&args), &log)?;
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
                        "xtask load: {name:<16} {size:>6} B x {conns:>3} conns: {:>9.0} msgs/s  p99 {:>8.1} µs  server CPU {} µs/msg{}",
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
                row.push(r);
            }
            results.push((size, conns, row));
        }
    }
    // Stop the servers before printing (bounded: SIGKILL to each process group).
    drop(servers);
    print!("{}", render(&c, &results));
    Ok(())
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

fn render(c: &CompareArgs, results: &[Row]) -> String {
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
        header.extend(SERVERS.iter().map(|s| s.to_string()));
        let mut rows = vec![header];
        for (size, conns, rs) in results {
            let ours = rs.first().cloned().flatten();
            let mut row = vec![format!("{size} B"), conns.to_string()];
            for (i, r) in rs.iter().enumerate() {
                row.push(match r {
                    None => "failed".into(),
                    Some(r) => cell(r, ours.as_ref().filter(|_| i > 0)),
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn reads_own_cpu_time() {
        let me = std::process::id();
        assert!(cpu_seconds(me).is_some_and(|s| s >= 0.0));
        assert!(find_pid("no-such-argument-127.0.0.1:1").is_none());
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
