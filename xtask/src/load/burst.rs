//! `cargo xtask load stomp --compare --burst N[,N...] [--baseline PATH] [--only ...]`: `N`
//! clients connect to each broker at one instant, then all send CONNECT at once and are held
//! (`stompload burst`), side by side.
//!
//! The row this answers (issue 13): a listen backlog too short for a burst makes the kernel drop
//! SYNs, and those clients wait a second or more for the retry; a connection limit below what
//! the process could open refuses the last clients. Each cell gives the connects that waited for
//! a SYN retry, the p99 connect time, the kernel's listen-queue overflows and drops over the
//! burst, and how many of the `N` got CONNECTED.

use super::{Pin, StompCompareArgs, Target, result_fields, run_stompload, table};
use crate::Result;
use std::fmt::Write as _;
use std::path::Path;

/// What one `stompload burst` run reported.
#[derive(Debug, Clone, Default, PartialEq)]
struct Burst {
    slow_connects: u64,
    connect_p99_ms: f64,
    listen_drops: Option<u64>,
    connected: u64,
}

fn parse_burst(output: &str) -> Option<Burst> {
    let mut b = Burst::default();
    let mut mode = false;
    for (k, v) in result_fields(output)? {
        match k {
            "mode" => mode = v == "burst",
            "slow_connects" => b.slow_connects = v.parse().ok()?,
            "connect_p99_ms" => b.connect_p99_ms = v.parse().ok()?,
            "listen_drops" => b.listen_drops = v.parse().ok(),
            "connected" => b.connected = v.parse().ok()?,
            _ => {}
        }
    }
    mode.then_some(b)
}

impl Burst {
    fn cell(&self, n: usize) -> String {
        format!(
            "{}/{n} CONNECTED; {} waited for a SYN retry; p99 {:.0} ms; {} dropped by the kernel",
            self.connected,
            self.slow_connects,
            self.connect_p99_ms,
            self.listen_drops.map_or("?".into(), |d| d.to_string())
        )
    }

    fn clean(&self, n: usize) -> bool {
        self.connected == n as u64 && self.slow_connects == 0 && self.listen_drops == Some(0)
    }
}

pub(super) fn run(
    c: &StompCompareArgs,
    pin: &Pin,
    stompload: &Path,
    logs: &Path,
    mut targets: Vec<(&'static str, Target)>,
    sizes: &[usize],
) -> Result {
    let mut rows: Vec<(usize, Vec<Option<Burst>>)> = Vec::new();
    for &n in sizes {
        let mut cells = Vec::new();
        for (name, target) in targets.iter_mut() {
            if let Err(e) = target.ensure_running() {
                eprintln!("xtask load: {name}: {e}");
                cells.push(None);
                continue;
            }
            let args: Vec<String> = vec!["burst".into(), "--conns".into(), n.to_string()];
            let log = logs.join(format!("stompload-burst-{name}-{n}.log"));
            let (ok, out, _cpu, load) = run_stompload(stompload, pin, target, args, &log)?;
            let b = parse_burst(&out);
            match &b {
                Some(b) => eprintln!(
                    "xtask load: {name:<12} burst {n}: {}  (load {load})",
                    b.cell(n)
                ),
                None => eprintln!(
                    "xtask load: {name} burst {n}: failed: {} (see {})",
                    ok.err().map_or("no RESULT line".into(), |e| e.to_string()),
                    log.display()
                ),
            }
            cells.push(b);
            // Let the closed sockets leave TIME_WAIT's way and the broker settle.
            std::thread::sleep(std::time::Duration::from_secs(2));
        }
        rows.push((n, cells));
    }
    drop(targets);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nstompload burst over loopback TCP: N clients connect at one instant (a connect of \
         900 ms or more waited for a SYN retry; kernel drops = ListenOverflows + ListenDrops of \
         /proc/net/netstat over the burst), then all CONNECT at once and are held; one broker \
         at a time; {}; {}\n",
        pin.describe(),
        crate::chart::machine()
    );
    let mut header = vec!["clients at once".to_owned()];
    header.extend(c.brokers.iter().map(|b| b.to_string()));
    let mut table_rows = vec![header];
    for (n, cells) in &rows {
        let mut row = vec![n.to_string()];
        row.extend(
            cells
                .iter()
                .map(|b| b.as_ref().map_or("failed".into(), |b| b.cell(*n))),
        );
        table_rows.push(row);
    }
    out.push_str(&table(&table_rows, c.markdown));
    print!("{out}");
    let failed: Vec<String> = rows
        .iter()
        .filter(|(n, cells)| {
            c.brokers
                .iter()
                .zip(cells)
                .any(|(b, r)| *b == "switchboard" && !r.as_ref().is_some_and(|r| r.clean(*n)))
        })
        .map(|(n, _)| n.to_string())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "switchboard: a burst stalled or was refused at {}",
            failed.join(", ")
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_burst_line() {
        let out = "RESULT mode=burst conns=10 slow_connects=3 connect_p50_ms=1.2 \
                   connect_p99_ms=1035.9 connect_max_ms=1036.3 tcp_failed=0 listen_drops=6 \
                   connected=9 refused=1 no_answer=0\n";
        let b = parse_burst(out).unwrap();
        assert_eq!(b.connected, 9);
        assert!(!b.clean(10));
        assert_eq!(
            b.cell(10),
            "9/10 CONNECTED; 3 waited for a SYN retry; p99 1036 ms; 6 dropped by the kernel"
        );
        assert!(parse_burst("RESULT mode=drain received=1\n").is_none());
    }
}
