//! `cargo xtask load idle`: server memory per idle subscribed STOMP connection, with a liveness
//! check.
//!
//! ```text
//! cargo xtask load idle [--conns N] [--transports tcp,ws] [--heart-beat MS] [--hold SECS]
//!                       [--baseline PATH]
//! ```
//!
//! For each transport (STOMP over TCP, STOMP over WebSocket at `/chat`) and each server (the
//! release `switchboard` of this tree, and with `--baseline PATH` another build of it, run
//! first), it starts a fresh server, pinned to CPU 0 (`taskset -c 0`, so the runtime has one
//! worker and malloc one arena, as in issue 13's measurement), and runs `stompload idle`
//! pinned to CPU 1: `N` connections (default 2000) CONNECT and SUBSCRIBE to a topic each and sit
//! idle; the server's resident-set growth over them (after 50 warm-up connections), divided by
//! `N`, is the figure. Then `stompload` checks that every connection is still live (each gets a
//! MESSAGE on its own topic; with `--heart-beat MS`, each also exchanged heart-beats while it
//! sat idle for `--hold` seconds) and reports the resident set after that message too. A run
//! where any connection was not live fails. Kernel socket buffers are not in the figure (they
//! are not in the process's RSS).

use super::{Pin, build_stomp_tools, free_port, select_known, start_switchboard};
use crate::Result;
use crate::process::Process;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const USAGE: &str = "\
usage: cargo xtask load idle [--conns N] [--transports tcp,ws] [--heart-beat MS] [--hold SECS]
                             [--baseline PATH]";

const TRANSPORTS: &[&str] = &["tcp", "ws"];

struct Args {
    conns: usize,
    transports: Vec<&'static str>,
    heart_beat_ms: u64,
    hold: Option<f64>,
    baseline: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Option<Args>> {
    let mut a = Args {
        conns: 2000,
        transports: TRANSPORTS.to_vec(),
        heart_beat_ms: 0,
        hold: None,
        baseline: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--conns" => a.conns = value()?.parse().map_err(|_| "--conns needs a number")?,
            "--transports" => {
                a.transports = select_known("--transports", "transport", value()?, TRANSPORTS)?
            }
            "--heart-beat" => {
                a.heart_beat_ms = value()?.parse().map_err(|_| "--heart-beat needs ms")?
            }
            "--hold" => a.hold = Some(value()?.parse().map_err(|_| "--hold needs seconds")?),
            "--baseline" => a.baseline = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}").into()),
        }
    }
    if !(1..=50_000).contains(&a.conns) {
        return Err("--conns must be in 1..=50000".into());
    }
    if let Some(b) = &a.baseline
        && !b.is_file()
    {
        return Err(format!("--baseline {}: no such file", b.display()).into());
    }
    Ok(Some(a))
}

/// One row of the table: one server, one transport.
struct Row {
    server: &'static str,
    transport: &'static str,
    /// `key=value` pairs of `stompload`'s `RESULT` line.
    result: Vec<(String, String)>,
}

impl Row {
    fn get(&self, key: &str) -> &str {
        self.result
            .iter()
            .find(|(k, _)| k == key)
            .map_or("?", |(_, v)| v.as_str())
    }
}

pub(super) fn run(args: &[String]) -> Result {
    let Some(a) = parse(args)? else {
        return Ok(());
    };
    let (server_bin, stompload) = build_stomp_tools()?;
    let pin = Pin::detect();
    let mut servers: Vec<(&'static str, PathBuf)> = Vec::new();
    if let Some(b) = &a.baseline {
        servers.push(("baseline", b.clone()));
    }
    servers.push(("switchboard", server_bin));
    let logs = crate::xtask_dir().join("load");
    std::fs::create_dir_all(&logs)?;
    let hold = a.hold.unwrap_or(3.0 * a.heart_beat_ms as f64 / 1000.0);
    let mut rows = Vec::new();
    for &transport in &a.transports {
        for (name, bin) in &servers {
            // A fresh server per row: memory freed by one run would be reused by the next.
            let (http_port, stomp_port) = (free_port()?, free_port()?);
            let http = format!("127.0.0.1:{http_port}");
            let stomp = format!("127.0.0.1:{stomp_port}");
            let ws = transport == "ws";
            let port = if ws { http_port } else { stomp_port };
            let server = start_switchboard(bin, &http, &stomp, port, Some(&pin))?;
            let mut cmd = pin.command(Pin::CLIENT_CPU, &stompload);
            cmd.args(["idle", "--conns", &a.conns.to_string(), "--pid"])
                .arg(server.pid().to_string())
                .args(["--heart-beat", &a.heart_beat_ms.to_string()])
                .args(["--hold", &hold.to_string()]);
            if ws {
                cmd.args(["--ws", &http]);
            } else {
                cmd.arg(&stomp);
            }
            let log = logs.join(format!("idle-{name}-{transport}.log"));
            let result = probe(&mut cmd, &log, a.conns, hold);
            drop(server);
            let result = result?;
            let row = Row {
                server: name,
                transport,
                result,
            };
            println!(
                "xtask load idle: {name} {transport}: {} KiB per connection, {} after a message, \
                 {} of {} live",
                row.get("kib_per_conn"),
                row.get("kib_per_conn_after_message"),
                row.get("live"),
                row.get("total"),
            );
            rows.push(row);
        }
    }
    println!("\n{}", table(&rows));
    println!(
        "{} connections per row (after 50 warm-up ones), a fresh server each, {}; heart-beats {}; \
         liveness: one MESSAGE to every connection's own topic after {hold} s idle; \
         /proc/loadavg at the end: {}",
        a.conns,
        pin.describe().replace("broker", "server"),
        if a.heart_beat_ms == 0 {
            "off".to_owned()
        } else {
            format!("{} ms asked", a.heart_beat_ms)
        },
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim(),
    );
    Ok(())
}

/// Runs one `stompload idle` and returns its `RESULT` pairs; fails when it did (for example a
/// connection that was not live), with the log's tail.
fn probe(
    cmd: &mut Command,
    log: &std::path::Path,
    conns: usize,
    hold: f64,
) -> Result<Vec<(String, String)>> {
    let mut p = Process::spawn("stompload", cmd, log)?;
    let budget = Duration::from_secs(120 + conns as u64 / 20) + Duration::from_secs_f64(hold);
    let ok = p.wait(budget);
    drop(p);
    ok.map_err(|e| format!("{e}\n{}", crate::process::tail(log, 20)))?;
    let out = std::fs::read_to_string(log)?;
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or("stompload printed no RESULT line")?;
    Ok(line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| server | transport | connections | KiB per idle connection | KiB per connection after one message | live | server heart-beats (fewest on one connection) |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let beats = if r.get("heart_beat_ms") == "0" {
            "off".to_owned()
        } else {
            format!(
                "{} (every {} ms)",
                r.get("min_server_beats"),
                r.get("heart_beat_ms")
            )
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {}/{} | {} |\n",
            r.server,
            r.transport,
            r.get("conns"),
            r.get("kib_per_conn"),
            r.get("kib_per_conn_after_message"),
            r.get("live"),
            r.get("total"),
            beats,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let args: Vec<String> = "--conns 10000 --transports ws --heart-beat 10000 --hold 5"
            .split(' ')
            .map(str::to_owned)
            .collect();
        let a = parse(&args).unwrap().unwrap();
        assert_eq!(
            (a.conns, a.transports, a.heart_beat_ms, a.hold),
            (10_000, vec!["ws"], 10_000, Some(5.0))
        );
        assert!(parse(&["--transports".into(), "udp".into()]).is_err());
        assert!(parse(&["--conns".into(), "0".into()]).is_err());
        assert!(parse(&["--baseline".into(), "/no/such/file".into()]).is_err());
    }
}
