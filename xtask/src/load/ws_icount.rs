//! `cargo xtask load ws --icount`: user-space instructions per echo round trip, counted by
//! callgrind, for our `echo_server` example and the `peer_echo` servers side by side.
//!
//! ```text
//! cargo xtask load ws --icount [--points 16x10,125x100,65536x10] [--short 1] [--long 4]
//!                              [--only switchboard,tokio-websockets,fastwebsockets]
//!                              [--baseline PATH] [--text] [--markdown]
//! ```
//!
//! For every point (message size x connections) and server it runs the server twice under
//! `valgrind --tool=callgrind`, pinned to CPU 0 with `taskset -c 0`, and drives it with `wsload`
//! (one message in flight per connection, no warm-up) pinned to CPU 1, once for `--short`
//! seconds and once for `--long`; then stops the server with SIGTERM so callgrind writes its
//! totals. Instructions per round trip = (I(long) - I(short)) / (round trips(long) - round
//! trips(short)): start-up, handshakes and shutdown cancel out. A long run with less than twice
//! the short run's round trips (starved by other load) is repeated, up to twice. Instruction
//! counts move much less with the load of a shared machine than wall-clock time does (what
//! moves them is how many events each wake-up finds); kernel time is not in them.
//!
//! `--text` sends text messages (every server then validates UTF-8) instead of binary ones.
//! `--baseline PATH` adds another build of the `echo_server` example (say, one built at an
//! earlier commit and copied away) as a `baseline` column, so before and after are counted in
//! the same run. The callgrind files stay under `target/xtask/load/icount/` for
//! `callgrind_annotate --inclusive=yes FILE`.

use super::{Pin, free_port, parse_list, result_fields, table, target_dir};
use crate::Result;
use crate::process::Process;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub(super) const USAGE: &str = "\
usage: cargo xtask load ws --icount [--points 16x10,125x100,65536x10] [--short 1] [--long 4]
                                    [--only switchboard,tokio-websockets,fastwebsockets,tungstenite]
                                    [--baseline PATH] [--text] [--markdown]";

/// The servers `--icount` knows (tungstenite runs a thread per connection: slow under valgrind,
/// so it is only counted when asked for with `--only`).
const KNOWN: &[&str] = &[
    "switchboard",
    "tokio-websockets",
    "fastwebsockets",
    "tungstenite",
];
const DEFAULT: &[&str] = &["switchboard", "tokio-websockets", "fastwebsockets"];

#[derive(Debug, PartialEq)]
struct Args {
    points: Vec<(usize, usize)>,
    short: u32,
    long: u32,
    servers: Vec<&'static str>,
    baseline: Option<PathBuf>,
    text: bool,
    markdown: bool,
}

pub(super) fn parse_points(s: &str) -> Result<Vec<(usize, usize)>> {
    s.split(',')
        .map(|p| {
            let (size, conns) = p
                .trim()
                .split_once('x')
                .ok_or_else(|| format!("--points: `{p}` is not SIZExCONNS"))?;
            let size = parse_list(size)?;
            let conns = parse_list(conns)?;
            match (size.as_slice(), conns.as_slice()) {
                ([s], [c]) if *s > 0 && *c > 0 => Ok((*s, *c)),
                _ => Err(
                    format!("--points: `{p}` needs a size and a connection count above 0").into(),
                ),
            }
        })
        .collect()
}

fn parse(args: &[String]) -> Result<Args> {
    let mut a = Args {
        points: vec![(16, 10), (125, 100), (64 << 10, 10)],
        short: 1,
        long: 4,
        servers: DEFAULT.to_vec(),
        baseline: None,
        text: false,
        markdown: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--icount" => {}
            "--markdown" => a.markdown = true,
            "--text" => a.text = true,
            "--points" => a.points = parse_points(value()?)?,
            "--short" => a.short = value()?.parse()?,
            "--long" => a.long = value()?.parse()?,
            "--only" => a.servers = super::select_known("--only", "server", value()?, KNOWN)?,
            "--baseline" => a.baseline = Some(PathBuf::from(value()?)),
            other => return Err(format!("unexpected argument `{other}`\n{USAGE}").into()),
        }
    }
    if a.short == 0 || a.long <= a.short || a.long > 600 {
        return Err("--short and --long: 0 < short < long <= 600 seconds".into());
    }
    Ok(a)
}

/// Total instructions (`summary:` or `totals:` line) of a callgrind output file.
fn callgrind_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("summary:").or(l.strip_prefix("totals:")))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// What every run shares.
struct Ctx {
    pin: Pin,
    text: bool,
    wsload: PathBuf,
    dir: PathBuf,
}

/// One server run under callgrind: (instructions, round trips).
fn run_once(
    ctx: &Ctx,
    server: &[String],
    name: &'static str,
    (size, conns): (usize, usize),
    secs: u32,
) -> Result<(u64, u64)> {
    let Ctx {
        pin,
        text,
        wsload,
        dir,
    } = ctx;
    let text = *text;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let kind = if text { "text" } else { "binary" };
    let stem = format!("{name}-{kind}-{size}-{conns}-{secs}s");
    let out = dir.join(format!("{stem}.callgrind"));
    let _ = std::fs::remove_file(&out);
    let mut cmd = pin.command(Pin::SERVER_CPU, "valgrind");
    cmd.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .args(server)
        .arg(&addr);
    let mut srv = Process::spawn(name, &mut cmd, &dir.join(format!("{stem}.server.log")))?;
    srv.wait_for_port(port)?;
    let mut load_args: Vec<String> = vec![
        "--conns".into(),
        conns.to_string(),
        "--size".into(),
        size.to_string(),
        "--secs".into(),
        secs.to_string(),
        "--warmup".into(),
        "0".into(),
        // connecting 100 clients to a server under valgrind takes a while
        "--connect-timeout".into(),
        "60".into(),
    ];
    if text {
        load_args.push("--text".into());
    }
    load_args.push(format!("ws://{addr}/"));
    let log = dir.join(format!("{stem}.wsload.log"));
    let mut load = Process::spawn(
        "wsload",
        pin.command(Pin::CLIENT_CPU, wsload).args(&load_args),
        &log,
    )?;
    load.wait(super::wsload_budget(&load_args))?;
    // SIGTERM: valgrind writes the callgrind file as the server dies.
    crate::exec(Command::new("kill").args(["-TERM", &srv.pid().to_string()]))?;
    let _ = srv.wait_status(Duration::from_secs(60))?;
    let msgs = result_fields(&std::fs::read_to_string(&log)?)
        .and_then(|f| f.into_iter().find(|(k, _)| *k == "all_msgs"))
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .ok_or_else(|| format!("no all_msgs in {}", log.display()))?;
    let ir = callgrind_total(&std::fs::read_to_string(&out)?)
        .ok_or_else(|| format!("no instruction total in {}", out.display()))?;
    eprintln!(
        "xtask load: {name:<16} {size:>6} B x {conns:>3} conns, {secs} s: {ir} Ir, {msgs} round trips"
    );
    Ok((ir, msgs))
}

pub(super) fn run(args: &[String]) -> Result {
    let a = parse(args)?;
    if !Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Err("--icount needs valgrind (Debian: apt-get install valgrind)".into());
    }
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
    let dir = crate::xtask_dir().join("load/icount");
    std::fs::create_dir_all(&dir)?;
    let pin = Pin::detect();

    let mut servers: Vec<(&'static str, Vec<String>)> = Vec::new();
    if let Some(b) = &a.baseline {
        servers.push(("baseline", vec![b.display().to_string()]));
    }
    for &name in &a.servers {
        let cmd = if name == "switchboard" {
            vec![release.join("examples/echo_server").display().to_string()]
        } else {
            vec![
                release.join("peer_echo").display().to_string(),
                "--lib".into(),
                name.into(),
            ]
        };
        servers.push((name, cmd));
    }

    let ctx = Ctx {
        pin,
        text: a.text,
        wsload: release.join("wsload"),
        dir,
    };
    let mut rows: Vec<Vec<Option<f64>>> = Vec::new();
    for &point in &a.points {
        let mut row = Vec::new();
        for (name, cmd) in &servers {
            let short = run_once(&ctx, cmd, name, point, a.short);
            // On a busy machine a run can be starved (the server under valgrind gets little CPU
            // for a while): a long run that did less than twice the short one's round trips is
            // run again, up to twice.
            let mut long = None;
            if let Ok((_, m1)) = short {
                for _ in 0..3 {
                    let r = run_once(&ctx, cmd, name, point, a.long);
                    let starved = matches!(r, Ok((_, m2)) if m2 < 2 * m1);
                    long = Some(r);
                    if !starved {
                        break;
                    }
                    eprintln!("xtask load: {name} at {point:?}: long run starved, again");
                }
            }
            row.push(match (short, long) {
                (Ok((i1, m1)), Some(Ok((i2, m2)))) if m2 > m1 && i2 > i1 => {
                    Some((i2 - i1) as f64 / (m2 - m1) as f64)
                }
                (Err(e), _) | (_, Some(Err(e))) => {
                    eprintln!("xtask load: {name} at {point:?}: {e}");
                    None
                }
                _ => {
                    eprintln!("xtask load: {name} at {point:?}: the long run did no more work");
                    None
                }
            });
        }
        rows.push(row);
    }
    print!("{}", render(&a, &ctx.pin, &servers, &rows));
    Ok(())
}

fn render(
    a: &Args,
    pin: &Pin,
    servers: &[(&'static str, Vec<String>)],
    rows: &[Vec<Option<f64>>],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nuser-space instructions per echo round trip of a {} message (callgrind; (I({long} s) - \
         I({short} s)) / (round trips({long} s) - round trips({short} s))), {}; (Nx) = that \
         server / switchboard, > 1 means switchboard runs fewer",
        if a.text { "text" } else { "binary" },
        match pin.server_cpu() {
            Some(cpu) => format!(
                "servers under valgrind pinned to CPU {cpu} (taskset -c {cpu}), wsload to CPU {}",
                Pin::CLIENT_CPU
            ),
            None => "not pinned".to_owned(),
        },
        long = a.long,
        short = a.short,
    );
    let ours = servers.iter().position(|(n, _)| *n == "switchboard");
    let mut header = vec!["point".to_owned()];
    header.extend(servers.iter().map(|(n, _)| n.to_string()));
    let mut table_rows = vec![header];
    for (&(size, conns), row) in a.points.iter().zip(rows) {
        let base = ours.and_then(|i| row[i]);
        let mut cells = vec![format!("{conns} conns x {size} B")];
        for (i, v) in row.iter().enumerate() {
            cells.push(match (v, base) {
                (None, _) => "failed".into(),
                (Some(v), Some(b)) if Some(i) != ours && b > 0.0 => {
                    format!("{v:.0} ({:.2}x)", v / b)
                }
                (Some(v), _) => format!("{v:.0}"),
            });
        }
        table_rows.push(cells);
    }
    out.push_str(&table(&table_rows, a.markdown));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_flags() {
        let a = parse(&args(
            "--icount --points 16x1,65536x10 --short 2 --long 5 --only fastwebsockets --baseline /tmp/e --text",
        ))
        .unwrap();
        assert_eq!(a.points, vec![(16, 1), (65536, 10)]);
        assert_eq!((a.short, a.long), (2, 5));
        assert_eq!(a.servers, vec!["fastwebsockets"]);
        assert_eq!(a.baseline, Some(PathBuf::from("/tmp/e")));
        assert!(a.text);
        let d = parse(&args("--icount")).unwrap();
        assert_eq!(d.points, vec![(16, 10), (125, 100), (65536, 10)]);
        assert_eq!(d.servers, DEFAULT);
        for bad in [
            "--points 16",
            "--points 0x10",
            "--points 16x",
            "--short 4 --long 4",
            "--only nginx",
            "--frobnicate",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_callgrind_totals() {
        let file = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nfl=(1) a.rs\n\
                    fn=(1) main\n3 12\nsummary: 123456\ntotals: 123456\n";
        assert_eq!(callgrind_total(file), Some(123456));
        assert_eq!(callgrind_total("totals: 77\n"), Some(77));
        assert_eq!(callgrind_total("events: Ir\n"), None);
    }
}
