//! `cargo xtask load cluster`: what Redis costs. Fan-out and queue throughput with 1, 2 and 3
//! `switchboard` nodes on one Redis, and 3 nodes on a 3-master Redis Cluster, beside the
//! in-memory single node.
//!
//! ```text
//! cargo xtask load cluster [--secs S] [--warmup W] [--size B] [--markdown]
//! ```
//!
//! For every setup (fresh Redis and fresh nodes each time) and scenario, `stompload` spreads
//! its connections over the nodes round robin (`HOST:PORT,HOST:PORT,...`), so a subscriber on
//! one node receives what a publisher on another sent. Reported per run: delivered msgs/s and
//! p99 latency (from stompload), the nodes' CPU (user + system of every node process, from
//! `/proc/PID/stat`) and Redis's CPU, each per 1000 deliveries over the whole run, warm-up
//! included, and the bytes Redis received and sent per published message (`INFO stats`
//! `total_net_input_bytes` / `total_net_output_bytes`, summed over the masters), and how busy
//! the one core of nodes and Redis was (their CPU seconds per second of the stompload run: near
//! 100% the row is CPU-bound, well below it the hand-off latency bounds it). Nodes and
//! Redis run pinned to CPU 0 and stompload to CPU 1 (`taskset`), so one core serves the whole
//! cluster: the figures show the cost per delivery, not scaling. The table goes to stdout and
//! to `target/xtask/load-cluster.md`, a chart of msgs/s to `target/xtask/charts/`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::{Pin, cpu_seconds, free_port, parse_stomp_result, stompload_budget, table};
use crate::Result;
use crate::process::Process;
use crate::redis::{Persistence, Redis, RedisCluster};

const USAGE: &str =
    "usage: cargo xtask load cluster [--secs S] [--warmup W] [--size B] [--markdown]";

/// The brokers a run is measured on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Setup {
    /// One node, the in-memory broker (no `--cluster`).
    InMemory,
    /// `n` nodes sharing one standalone Redis.
    Redis(usize),
    /// Three nodes on a 3-master Redis Cluster (node `i` given master `i`'s URL).
    RedisCluster,
}

const SETUPS: &[Setup] = &[
    Setup::InMemory,
    Setup::Redis(1),
    Setup::Redis(2),
    Setup::Redis(3),
    Setup::RedisCluster,
];

impl Setup {
    fn label(self) -> String {
        match self {
            Setup::InMemory => "in-memory, 1 node".into(),
            Setup::Redis(1) => "Redis, 1 node".into(),
            Setup::Redis(n) => format!("Redis, {n} nodes"),
            Setup::RedisCluster => "Redis Cluster (3 masters), 3 nodes".into(),
        }
    }
}

/// A traffic shape: `pubs` publishers, `subs` subscribers, on a topic or a queue.
#[derive(Debug, Clone, Copy)]
struct Shape {
    pubs: usize,
    subs: usize,
    queue: bool,
}

const SHAPES: &[Shape] = &[
    Shape {
        pubs: 1,
        subs: 12,
        queue: false,
    },
    Shape {
        pubs: 6,
        subs: 6,
        queue: true,
    },
];

impl Shape {
    fn label(self) -> String {
        let kind = if self.queue { "queue" } else { "topic fan-out" };
        format!("{kind} {} -> {}", self.pubs, self.subs)
    }
}

struct Args {
    secs: f64,
    warmup: f64,
    size: usize,
    markdown: bool,
}

fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args {
        secs: 5.0,
        warmup: 1.0,
        size: 128,
        markdown: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--secs" => a.secs = value()?.parse()?,
            "--warmup" => a.warmup = value()?.parse()?,
            "--size" => a.size = value()?.parse()?,
            "--markdown" => a.markdown = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unexpected argument `{other}`\n{USAGE}").into()),
        }
    }
    if !(a.secs > 0.0 && a.secs <= 600.0 && (0.0..=60.0).contains(&a.warmup)) {
        return Err("--secs must be in (0, 600] and --warmup in [0, 60]".into());
    }
    if !(8..=1 << 20).contains(&a.size) {
        return Err("--size must be in 8..=1048576".into());
    }
    Ok(a)
}

/// One measured run.
#[derive(Debug, Default)]
struct Row {
    delivered_per_sec: f64,
    p99_us: f64,
    errors: u64,
    /// Node CPU milliseconds per 1000 deliveries (= µs per delivery), all nodes together.
    node_ms_per_1000: Option<f64>,
    /// Redis CPU milliseconds per 1000 deliveries, all masters together.
    redis_ms_per_1000: Option<f64>,
    /// Redis CPU microseconds per published message.
    redis_us_per_publish: Option<f64>,
    /// Bytes Redis received / sent per published message.
    redis_in_per_publish: Option<f64>,
    redis_out_per_publish: Option<f64>,
    /// CPU seconds of nodes and Redis together per second of the run: near 1 means the one
    /// core they share was the limit, well below 1 that something else was (latency).
    busy: Option<f64>,
    load: String,
}

/// The Redis side of a setup: nothing, one server, or a cluster.
enum Backend {
    None,
    One(Redis),
    Cluster(RedisCluster),
}

impl Backend {
    fn start(setup: Setup, cpu: Option<&'static str>) -> Result<Backend> {
        Ok(match setup {
            Setup::InMemory => Backend::None,
            Setup::Redis(_) => Backend::One(Redis::start(Persistence::Off, cpu)?),
            Setup::RedisCluster => Backend::Cluster(RedisCluster::start(cpu)?),
        })
    }

    fn servers(&self) -> Vec<&Redis> {
        match self {
            Backend::None => Vec::new(),
            Backend::One(r) => vec![r],
            Backend::Cluster(c) => c.nodes.iter().collect(),
        }
    }

    /// The `--cluster` URL of node `i`.
    fn url(&self, i: usize) -> Option<String> {
        let servers = self.servers();
        (!servers.is_empty()).then(|| servers[i % servers.len()].url())
    }

    fn cpu_seconds(&self) -> Option<f64> {
        if self.servers().is_empty() {
            return None;
        }
        sum(self.servers().iter().map(|r| r.pid().and_then(cpu_seconds)))
    }

    /// (total_net_input_bytes, total_net_output_bytes) over every server.
    fn net_bytes(&self) -> Option<(f64, f64)> {
        let mut total = (0.0, 0.0);
        let servers = self.servers();
        if servers.is_empty() {
            return None;
        }
        for r in servers {
            let info = r.cli(&["info", "stats"]).ok()?;
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
                    .and_then(|v| v.parse::<f64>().ok())
            };
            total.0 += field("total_net_input_bytes")?;
            total.1 += field("total_net_output_bytes")?;
        }
        Some(total)
    }
}

/// The sum, or None if any term is missing.
fn sum(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.sum()
}

pub fn run(args: &[String]) -> Result {
    let a = parse(args)?;
    crate::redis::ensure_installed()?;
    let (server_bin, stompload) = super::build_stomp_tools()?;
    let pin = Pin::detect();
    let logs = crate::xtask_dir().join("load");
    std::fs::create_dir_all(&logs)?;
    let command = format!("cargo xtask load cluster {}", args.join(" "))
        .trim_end()
        .to_owned();
    let started_at = crate::chart::now_utc();

    let mut results: Vec<(Shape, Setup, Option<Row>)> = Vec::new();
    for (si, &setup) in SETUPS.iter().enumerate() {
        for (hi, &shape) in SHAPES.iter().enumerate() {
            let label = format!("{} | {}", shape.label(), setup.label());
            let run = measure(
                &a,
                setup,
                shape,
                &format!("{si}-{hi}"),
                &server_bin,
                &stompload,
                &pin,
                &logs,
            );
            match &run {
                Ok(r) => eprintln!(
                    "xtask load cluster: {label}: {:.0} msgs/s, p99 {:.0} µs, {} errors, load {}",
                    r.delivered_per_sec, r.p99_us, r.errors, r.load
                ),
                Err(e) => eprintln!("xtask load cluster: {label}: failed: {e}"),
            }
            results.push((shape, setup, run.ok()));
        }
    }

    let report = render(&a, &pin, &command, &started_at, &results);
    print!("{report}");
    let md = crate::xtask_dir().join("load-cluster.md");
    std::fs::write(
        &md,
        render(
            &Args {
                markdown: true,
                ..a
            },
            &pin,
            &command,
            &started_at,
            &results,
        ),
    )?;
    eprintln!("xtask load cluster: table written to {}", md.display());
    if let Err(e) = crate::chart::draw_all(&[chart(&results)], &command) {
        eprintln!("xtask load cluster: chart: {e}");
    }
    let failed = results.iter().filter(|(_, _, r)| r.is_none()).count();
    if failed > 0 {
        return Err(format!("{failed} run(s) failed (logs in {})", logs.display()).into());
    }
    Ok(())
}

/// Starts the setup, runs stompload once, stops everything; the figures.
#[allow(clippy::too_many_arguments)]
fn measure(
    a: &Args,
    setup: Setup,
    shape: Shape,
    tag: &str,
    server_bin: &Path,
    stompload: &Path,
    pin: &Pin,
    logs: &Path,
) -> Result<Row> {
    let backend = Backend::start(setup, pin.server_cpu())?;
    let nodes = match setup {
        Setup::InMemory | Setup::Redis(1) => 1,
        Setup::Redis(n) => n,
        Setup::RedisCluster => 3,
    };
    let mut procs = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..nodes {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = pin.command(pin.server(), server_bin);
        cmd.args(["--http", "off", "--stomp", &addr])
            .env("RUST_LOG", "warn");
        if let Some(url) = backend.url(i) {
            cmd.args(["--cluster", &url, "--node-id", &format!("n{i}")]);
        }
        let mut p = Process::spawn(
            "switchboard",
            &mut cmd,
            &logs.join(format!("cluster-node{i}.log")),
        )?;
        p.wait_for_port(port)?;
        procs.push(p);
        addrs.push(addr);
    }
    let dest = if shape.queue {
        format!("/queue/xtask-cluster-{tag}")
    } else {
        format!("/topic/xtask-cluster-{tag}")
    };
    let mut args: Vec<String> = vec![
        "--pubs".into(),
        shape.pubs.to_string(),
        "--subs".into(),
        shape.subs.to_string(),
        "--size".into(),
        a.size.to_string(),
        "--secs".into(),
        a.secs.to_string(),
        "--warmup".into(),
        a.warmup.to_string(),
        "--dest".into(),
        dest,
    ];
    if pin.server_cpu().is_some() {
        args.extend(["--threads".into(), "1".into()]);
    }
    args.push(addrs.join(","));

    let node_cpu = |procs: &[Process]| sum(procs.iter().map(|p| cpu_seconds(p.pid())));
    let (node_before, redis_before, net_before) =
        (node_cpu(&procs), backend.cpu_seconds(), backend.net_bytes());
    let log = logs.join("cluster-stompload.log");
    let mut cmd = pin.command(Pin::CLIENT_CPU, stompload);
    cmd.args(&args);
    let started = std::time::Instant::now();
    let mut p = Process::spawn("stompload", &mut cmd, &log)?;
    let ok = p.wait(stompload_budget(&args) + Duration::from_secs(30));
    drop(p);
    let wall = started.elapsed().as_secs_f64();
    let (node_after, redis_after, net_after) =
        (node_cpu(&procs), backend.cpu_seconds(), backend.net_bytes());
    for p in &mut procs {
        p.ensure_running()?;
    }
    ok?;
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let r = parse_stomp_result(&output)
        .ok_or_else(|| format!("no RESULT line from stompload:\n{output}"))?;
    let per_1000 = |before: Option<f64>, after: Option<f64>| {
        before
            .zip(after)
            .filter(|_| r.all_delivered > 0)
            .map(|(b, a)| (a - b) * 1000.0 * 1000.0 / r.all_delivered as f64)
    };
    let per_publish = |pick: fn((f64, f64)) -> f64| {
        net_before
            .zip(net_after)
            .filter(|_| r.all_published > 0)
            .map(|(b, a)| (pick(a) - pick(b)) / r.all_published as f64)
    };
    Ok(Row {
        delivered_per_sec: r.delivered_per_sec,
        p99_us: r.p99_us,
        errors: r.errors,
        node_ms_per_1000: per_1000(node_before, node_after),
        redis_ms_per_1000: per_1000(redis_before, redis_after),
        redis_us_per_publish: redis_before
            .zip(redis_after)
            .filter(|_| r.all_published > 0)
            .map(|(b, a)| (a - b) * 1e6 / r.all_published as f64),
        redis_in_per_publish: per_publish(|t| t.0),
        redis_out_per_publish: per_publish(|t| t.1),
        busy: node_before.zip(node_after).map(|(b, a)| {
            let redis = redis_before
                .zip(redis_after)
                .map_or(0.0, |(rb, ra)| ra - rb);
            (a - b + redis) / wall
        }),
        load: crate::chart::load_average()
            .split_whitespace()
            .next()
            .unwrap_or("?")
            .to_owned(),
    })
}

fn render(
    a: &Args,
    pin: &Pin,
    command: &str,
    date: &str,
    results: &[(Shape, Setup, Option<Row>)],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n`{command}`, {date}; {}\n{} B bodies, {} s measured after {} s warm-up; {} \
         (nodes and Redis share CPU 0); CPU per 1000 deliveries counts the warm-up too",
        crate::chart::machine(),
        a.size,
        a.secs,
        a.warmup,
        pin.describe().replace("broker", "nodes + Redis")
    );
    let mut rows = vec![
        [
            "scenario",
            "setup",
            "delivered msgs/s",
            "p99 µs",
            "node CPU ms / 1000 deliveries",
            "Redis CPU ms / 1000 deliveries",
            "Redis CPU µs / publish",
            "Redis bytes in / out per publish",
            "CPU 0 busy",
            "load avg",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".to_owned(), |v| format!("{v:.digits$}"));
    for (shape, setup, r) in results {
        let mut row = vec![shape.label(), setup.label()];
        match r {
            None => row.extend([
                "failed".to_owned(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]),
            Some(r) => {
                let errors = if r.errors > 0 {
                    format!(" [{} err]", r.errors)
                } else {
                    String::new()
                };
                row.push(format!("{:.0}{errors}", r.delivered_per_sec));
                row.push(format!("{:.0}", r.p99_us));
                row.push(opt(r.node_ms_per_1000, 2));
                row.push(opt(r.redis_ms_per_1000, 2));
                row.push(opt(r.redis_us_per_publish, 1));
                row.push(match (r.redis_in_per_publish, r.redis_out_per_publish) {
                    (Some(i), Some(o)) => format!("{i:.0} / {o:.0}"),
                    _ => "-".into(),
                });
                row.push(r.busy.map_or("-".into(), |b| format!("{:.0}%", b * 100.0)));
                row.push(r.load.clone());
            }
        }
        rows.push(row);
    }
    out.push_str(&table(&rows, a.markdown));
    out
}

fn chart(results: &[(Shape, Setup, Option<Row>)]) -> crate::chart::Chart {
    crate::chart::Chart {
        name: "load-cluster-throughput".into(),
        title: "Delivered msgs/s: in-memory node vs nodes on Redis (all on one core)".into(),
        y_label: "msgs/s".into(),
        series: SETUPS.iter().map(|s| s.label()).collect(),
        groups: SHAPES
            .iter()
            .map(|shape| {
                (
                    shape.label(),
                    SETUPS
                        .iter()
                        .map(|setup| {
                            results
                                .iter()
                                .find(|(h, s, _)| h.label() == shape.label() && s == setup)
                                .and_then(|(_, _, r)| r.as_ref())
                                .map(|r| r.delivered_per_sec)
                        })
                        .collect(),
                )
            })
            .collect(),
        lower_bounds: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = parse(&s(&["--secs", "2", "--markdown"])).unwrap();
        assert_eq!(
            (a.secs, a.warmup, a.size, a.markdown),
            (2.0, 1.0, 128, true)
        );
        assert!(parse(&s(&["--secs", "0"])).is_err());
        assert!(parse(&s(&["--size", "1"])).is_err());
        assert!(parse(&s(&["--bogus"])).is_err());
        assert!(parse(&s(&["--secs"])).is_err());
    }

    #[test]
    fn failed_and_measured_rows_have_every_column() {
        let a = Args {
            secs: 1.0,
            warmup: 0.0,
            size: 128,
            markdown: true,
        };
        let ok = Row {
            delivered_per_sec: 1000.0,
            node_ms_per_1000: Some(1.234),
            redis_in_per_publish: Some(10.0),
            redis_out_per_publish: Some(20.0),
            load: "0.5".into(),
            ..Row::default()
        };
        let results = vec![
            (SHAPES[0], Setup::InMemory, Some(ok)),
            (SHAPES[1], Setup::RedisCluster, None),
        ];
        let out = render(&a, &Pin::detect(), "cmd", "date", &results);
        let rows: Vec<&str> = out.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(rows.len(), 4);
        let columns = rows[0].matches('|').count();
        assert!(
            rows.iter().all(|r| r.matches('|').count() == columns),
            "{out}"
        );
        assert!(
            rows[2].contains("| 1000 |")
                && rows[2].contains("| 1.23 |")
                && rows[2].contains("10 / 20")
        );
        assert!(rows[3].contains("| failed |"));
    }

    #[test]
    fn labels_and_urls() {
        assert_eq!(Setup::Redis(2).label(), "Redis, 2 nodes");
        assert_eq!(SHAPES[0].label(), "topic fan-out 1 -> 12");
        assert!(Backend::None.url(0).is_none());
        assert_eq!(sum([Some(1.0), Some(2.0)].into_iter()), Some(3.0));
        assert_eq!(sum([Some(1.0), None].into_iter()), None);
    }
}
