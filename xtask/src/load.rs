//! `cargo xtask load ws ...`: WebSocket echo load tests with `wsload` (crates/bench).
//!
//! ```text
//! cargo xtask load ws [--conns N] [--size B] [--secs S] [--warmup W] [--rate R] [--threads T] URL
//! cargo xtask load ws --compare [--secs S] [--warmup W] [--sizes 16,125,65536]
//!                               [--conns-list 1,10,100] [--threads T] [--markdown]
//! ```
//!
//! The first form builds `wsload` (release) and runs it against `URL`. `--compare` starts
//! switchboard-ws's `echo_server` example and the three `peer_echo` servers (tungstenite,
//! tokio-websockets, fastwebsockets) on free loopback ports, runs the size × connections matrix
//! against each (one server at a time; the others sit idle), prints msgs/s and p99 with the
//! ratio switchboard / peer, and kills every server at the end (also on error). Deflate is off:
//! `wsload` never offers it.

use crate::Result;
use crate::process::Process;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const USAGE: &str = "\
usage: cargo xtask load ws [--conns N] [--size B] [--secs S] [--warmup W] [--rate R] [--threads T] URL
       cargo xtask load ws --compare [--secs S] [--warmup W] [--sizes 16,125,65536]
                                     [--conns-list 1,10,100] [--threads T] [--markdown]";

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
        _ => Err(USAGE.into()),
    }
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
    let mut results: Vec<(usize, usize, Vec<Option<LoadResult>>)> = Vec::new();
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
                let mut p = Process::spawn("wsload", Command::new(&wsload).args(&args), &log)?;
                let ok = p.wait(wsload_budget(&args));
                drop(p);
                let out = std::fs::read_to_string(&log).unwrap_or_default();
                let r = parse_result(&out);
                match (&ok, &r) {
                    (Ok(()), Some(r)) => eprintln!(
                        "xtask load: {name:<16} {size:>6} B x {conns:>3} conns: {:>9.0} msgs/s  p99 {:>8.1} µs{}",
                        r.msgs_per_sec,
                        r.p99_us,
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

/// `Process` names are `&'static str`; map our server names onto the constants.
fn name_static(name: &str) -> &'static str {
    SERVERS
        .iter()
        .copied()
        .find(|s| *s == name)
        .unwrap_or("server")
}

fn render(c: &CompareArgs, results: &[(usize, usize, Vec<Option<LoadResult>>)]) -> String {
    let mut header = vec!["size".to_owned(), "conns".to_owned()];
    for s in SERVERS {
        header.push(format!("{s} msgs/s"));
        header.push(format!("{s} p99 µs"));
    }
    let mut rows = vec![header];
    for (size, conns, rs) in results {
        let mut row = vec![format!("{size} B"), conns.to_string()];
        let ours = rs.first().cloned().flatten();
        for (i, r) in rs.iter().enumerate() {
            match r {
                None => {
                    row.push("failed".into());
                    row.push("-".into());
                }
                Some(r) => {
                    let ratio = match &ours {
                        Some(o) if i > 0 && r.msgs_per_sec > 0.0 => {
                            format!(" ({:.2}x)", o.msgs_per_sec / r.msgs_per_sec)
                        }
                        _ => String::new(),
                    };
                    let errors = if r.errors > 0 {
                        format!(" [{} err]", r.errors)
                    } else {
                        String::new()
                    };
                    row.push(format!("{:.0}{ratio}{errors}", r.msgs_per_sec));
                    row.push(format!("{:.0}", r.p99_us));
                }
            }
        }
        rows.push(row);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\necho round trips, one message in flight per connection, {}s measured after {}s warm-up, \
         wsload with {} thread(s);\n(Nx) = switchboard msgs/s / that server's msgs/s, > 1 means switchboard is faster",
        c.secs, c.warmup, c.threads
    );
    if c.markdown {
        for (i, r) in rows.iter().enumerate() {
            let _ = writeln!(out, "| {} |", r.join(" | "));
            if i == 0 {
                let _ = writeln!(out, "|{}", "---|".repeat(r.len()));
            }
        }
    } else {
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|col| {
                rows.iter()
                    .map(|r| r[col].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in &rows {
            let mut line = String::new();
            for (col, cell) in r.iter().enumerate() {
                let _ = write!(line, "{cell:<w$}  ", w = widths[col]);
            }
            let _ = writeln!(out, "  {}", line.trim_end());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_result_line() {
        let out = "wsload ...\n  123 msgs/s\nRESULT conns=10 size=16 secs=3 msgs=369 msgs_per_sec=123.0 \
                   p50_us=50.5 p90_us=70.0 p99_us=99.9 p999_us=120.0 max_us=400.0 errors=0\n";
        let r = parse_result(out).unwrap();
        assert_eq!(r.msgs_per_sec, 123.0);
        assert_eq!(r.p99_us, 99.9);
        assert_eq!(r.errors, 0);
        assert!(parse_result("no result").is_none());
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
