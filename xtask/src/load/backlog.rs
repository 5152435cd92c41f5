//! `cargo xtask load stomp --compare --backlog N[,N...] [--baseline PATH] [--only ...]`: a queue
//! that already holds `N` messages, drained by one consumer that subscribes afterwards
//! (`stompload drain`), against every broker side by side — first with the default
//! subscription a stock client sends (`ack:auto`, no prefetch header), then with
//! `client-individual` acks (every MESSAGE ACKed on its own).
//!
//! The row this answers (issue 13): a broker that pushes a whole backlog to a new session at
//! once, and then treats it as a slow consumer, never lets a default client drain the queue.
//! Each cell says how many of the `N` arrived (in order, none twice) and at what rate, or what
//! stopped the drain (an ERROR frame, a closed connection). `--baseline PATH` adds an older
//! `switchboard` build as a `baseline` column, so a before/after shows in the same run.

use super::{Pin, StompCompareArgs, Target, best_peer, result_fields, run_stompload, table};
use crate::Result;
use std::fmt::Write as _;
use std::path::Path;

/// What one `stompload drain` run reported.
#[derive(Debug, Clone, Default, PartialEq)]
struct Drain {
    received: u64,
    drain_per_sec: f64,
    fill_per_sec: f64,
    out_of_order: u64,
    duplicates: u64,
    /// `none`, or the ERROR / I/O error text (spaces as `_` in the RESULT line).
    error: String,
    /// Broker CPU seconds per 1000 messages, fill and drain together.
    cpu_s_per_1000: Option<f64>,
}

fn parse_drain(output: &str) -> Option<Drain> {
    let mut d = Drain::default();
    let mut mode = false;
    for (k, v) in result_fields(output)? {
        match k {
            "mode" => mode = v == "drain",
            "received" => d.received = v.parse().ok()?,
            "drain_per_sec" => d.drain_per_sec = v.parse().ok()?,
            "fill_per_sec" => d.fill_per_sec = v.parse().ok()?,
            "out_of_order" => d.out_of_order = v.parse().ok()?,
            "duplicates" => d.duplicates = v.parse().ok()?,
            "error" => d.error = v.replace('_', " ").trim().to_owned(),
            _ => {}
        }
    }
    mode.then_some(d)
}

impl Drain {
    fn complete(&self, n: usize) -> bool {
        self.received == n as u64
            && self.out_of_order == 0
            && self.duplicates == 0
            && self.error == "none"
    }

    fn cell(&self, n: usize) -> String {
        if self.complete(n) {
            format!("{:.0} msgs/s", self.drain_per_sec)
        } else {
            let why = if self.error == "none" {
                format!(
                    "{} out of order, {} twice",
                    self.out_of_order, self.duplicates
                )
            } else {
                // The ERROR's `message` header is enough for a table cell.
                let short: String = self.error.chars().take(40).collect();
                short
            };
            format!("{}/{n} ({why})", self.received)
        }
    }
}

pub(super) fn run(
    c: &StompCompareArgs,
    pin: &Pin,
    stompload: &Path,
    logs: &Path,
    mut targets: Vec<(&'static str, Target)>,
    command: &str,
    sizes: &[usize],
) -> Result {
    let mut rows: Vec<(String, usize, Vec<Option<Drain>>)> = Vec::new();
    for &n in sizes {
        for ack in ["auto", "client-individual"] {
            let label = format!("queue backlog {n}, {ack}");
            let mut cells = Vec::new();
            for (name, target) in targets.iter_mut() {
                if let Err(e) = target.ensure_running() {
                    eprintln!("xtask load: {name}: {e}");
                    cells.push(None);
                    continue;
                }
                let args: Vec<String> = vec![
                    "drain".into(),
                    "--messages".into(),
                    n.to_string(),
                    "--ack".into(),
                    ack.into(),
                ];
                let log = logs.join(format!("stompload-drain-{name}-{n}-{ack}.log"));
                let (ok, out, cpu, load) = run_stompload(stompload, pin, target, args, &log)?;
                let d = parse_drain(&out).map(|mut d| {
                    d.cpu_s_per_1000 = cpu.map(|c| c * 1000.0 / n as f64);
                    d
                });
                match &d {
                    Some(d) => eprintln!(
                        "xtask load: {name:<12} {label:<36} {}  (fill {:.0} msgs/s, load {load})",
                        d.cell(n),
                        d.fill_per_sec
                    ),
                    None => eprintln!(
                        "xtask load: {name} {label}: failed before draining: {} (see {})",
                        ok.err().map_or("no RESULT line".into(), |e| e.to_string()),
                        log.display()
                    ),
                }
                cells.push(d);
            }
            rows.push((label, n, cells));
        }
    }
    drop(targets);
    print!("{}", render(c, pin, &rows));
    let charts = vec![crate::chart::Chart {
        name: "load-stomp-backlog".into(),
        title: "A queue's backlog drained by one consumer (msgs/s; 0 = not drained)".into(),
        y_label: "msgs/s".into(),
        series: c.brokers.iter().map(|b| b.to_string()).collect(),
        groups: rows
            .iter()
            .map(|(label, n, cells)| {
                (
                    label.clone(),
                    cells
                        .iter()
                        .map(|d| {
                            d.as_ref()
                                .map(|d| if d.complete(*n) { d.drain_per_sec } else { 0.0 })
                        })
                        .collect(),
                )
            })
            .collect(),
        lower_bounds: Vec::new(),
    }];
    crate::chart::draw_all(&charts, command)?;
    let failed: Vec<&str> =
        rows.iter()
            .filter(|(_, n, cells)| {
                c.brokers.iter().zip(cells).any(|(b, d)| {
                    *b == "switchboard" && !d.as_ref().is_some_and(|d| d.complete(*n))
                })
            })
            .map(|(label, _, _)| label.as_str())
            .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("switchboard did not drain: {}", failed.join("; ")).into())
    }
}

fn render(c: &StompCompareArgs, pin: &Pin, rows: &[(String, usize, Vec<Option<Drain>>)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nstompload drain over loopback TCP: N messages (128 B) sent to a fresh queue with no \
         consumer (every one confirmed by a RECEIPT), then one consumer subscribes and reads \
         until all N arrived, an ERROR, or 10 s without a frame; one broker at a time; {}; {}",
        pin.describe(),
        crate::chart::machine()
    );
    let mut header = vec!["scenario".to_owned()];
    header.extend(c.brokers.iter().map(|b| b.to_string()));
    let ours = c.brokers.iter().position(|b| *b == "switchboard");
    let has_peer = c
        .brokers
        .iter()
        .any(|b| *b != "switchboard" && *b != "baseline");
    if ours.is_some() && has_peer {
        header.push("switchboard / best peer".into());
    }
    let mut table_rows = vec![header.clone()];
    for (label, n, cells) in rows {
        let mut row = vec![label.clone()];
        row.extend(cells.iter().map(|d| match d {
            None => "failed".into(),
            Some(d) => d.cell(*n),
        }));
        if let Some(i) = ours.filter(|_| has_peer) {
            let rate = |d: &Option<Drain>| {
                d.as_ref()
                    .filter(|d| d.complete(*n))
                    .map(|d| d.drain_per_sec)
            };
            let best = best_peer(&c.brokers, cells.iter().map(rate));
            row.push(match (rate(&cells[i]), best) {
                (Some(r), Some(p)) if p > 0.0 => format!("{:.2}x", r / p),
                (Some(_), None) => "only switchboard drained".into(),
                _ => "-".into(),
            });
        }
        table_rows.push(row);
    }
    let _ = writeln!(
        out,
        "\ndrain rate when all N arrived in order, else received/N (what stopped it)"
    );
    out.push_str(&table(&table_rows, c.markdown));

    let mut cpu_rows = vec![header[..=c.brokers.len()].to_vec()];
    for (label, _, cells) in rows {
        let mut row = vec![label.clone()];
        row.extend(cells.iter().map(|d| {
            d.as_ref()
                .and_then(|d| d.cpu_s_per_1000)
                .map_or("?".into(), |v| format!("{v:.4}"))
        }));
        cpu_rows.push(row);
    }
    let _ = writeln!(
        out,
        "\nbroker CPU seconds (user + system, whole process group) per 1000 messages, fill and \
         drain together"
    );
    out.push_str(&table(&cpu_rows, c.markdown));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_complete_and_a_refused_drain() {
        let ok = "drain ...\nRESULT mode=drain messages=10 size=128 ack=auto fill_per_sec=5 \
                  received=10 drain_secs=0.1 drain_per_sec=100 out_of_order=0 duplicates=0 \
                  error=none\n";
        let d = parse_drain(ok).unwrap();
        assert!(d.complete(10));
        assert_eq!(d.cell(10), "100 msgs/s");
        let refused = "RESULT mode=drain messages=10 size=128 ack=auto fill_per_sec=5 \
                       received=0 drain_secs=0.001 drain_per_sec=0 out_of_order=0 duplicates=0 \
                       error=ERROR_Slow_consumer:_the_client\n";
        let d = parse_drain(refused).unwrap();
        assert!(!d.complete(10));
        assert_eq!(d.cell(10), "0/10 (ERROR Slow consumer: the client)");
        assert!(parse_drain("RESULT mode=open conns=2\n").is_none());
    }
}
