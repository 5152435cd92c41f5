//! `cargo xtask <task>`: the one entry point for every check this project runs.
//!
//! Tasks shell out to cargo, Python and Node; anything they need (a Python venv, npm packages,
//! Debian packages) they install themselves under `target/xtask/`, idempotently.

mod apt;
mod autobahn;
mod bench;
mod brokers;
mod chart;
mod ci;
mod cluster;
mod fuzz;
mod interop;
mod load;
mod node;
mod process;
mod python;
mod redis;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Errors bubble up as text: xtask prints them and exits non-zero.
pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  ci                         fmt, clippy, tests, fuzz smoke, autobahn, interop, cluster (what .ci/run calls)
  fuzz <target>|--all [--time SECS]
                             run cargo-fuzz targets on the nightly toolchain
  bench [FILTER]             criterion benches against peer crates, then a ratio table
  autobahn [--full] [--server-only|--client-only]
                             Autobahn|Testsuite against echo_server / autobahn_client
  interop                    real peers: Python websockets, Node ws, stomp.py, @stomp/stompjs,
                             sockjs-client (Node and headless Chromium)
  cluster [--python-only|--node-only]
                             switchboard nodes sharing Redis (standalone, AOF restart, 3-master
                             Redis Cluster) with stomp.py and @stomp/stompjs; installs redis-server
  load ws --conns N --size B --secs S URL | --compare | --icount
                             WebSocket echo load generator (msgs/s, latency percentiles);
                             --compare: vs peer echo servers; --icount: instructions per round trip
  load stomp [--compare] | load idle
                             STOMP broker load (stompload); --compare: vs RabbitMQ and ActiveMQ
  load sockjs --compare | --idle
                             SockJS echo vs sockjs-node (websocket, xhr-streaming; msgs/s, p99; --windows 1,16),
                             memory per idle SockJS session (sockjsload)
  load cluster [--secs S] [--warmup W] [--markdown]
                             fan-out and queue throughput with 1, 2, 3 nodes on one Redis and 3 on a
                             Redis Cluster beside the in-memory node: msgs/s, p99, CPU per 1000
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((task, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        std::process::exit(2);
    };
    let result = match task.as_str() {
        "ci" => ci::run(rest),
        "fuzz" => fuzz::run(rest),
        "bench" => bench::run(rest),
        "autobahn" => autobahn::run(rest),
        "interop" => interop::run(rest),
        "cluster" => cluster::run(rest),
        "load" => load::run(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown task `{other}`\n{USAGE}").into()),
    };
    if let Err(e) = result {
        eprintln!("xtask {task}: error: {e}");
        std::process::exit(1);
    }
}

/// The workspace root (the parent of `xtask/`).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

/// Where tasks keep installed tools and scratch files: `target/xtask/`.
pub fn xtask_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"));
    let dir = target.join("xtask");
    std::fs::create_dir_all(&dir).expect("create target/xtask");
    dir
}

/// Runs a command from the project root, echoing it; fails on a non-zero exit.
pub fn exec(cmd: &mut Command) -> Result {
    eprintln!("$ {}", render(cmd));
    let status = cmd.current_dir_if_unset(&project_root()).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed with {status}", render(cmd)).into())
    }
}

/// Ok when nothing failed; otherwise one error naming every failure (tasks that run several
/// parts report them all, not just the first).
pub fn fail_on(failures: Vec<String>) -> Result {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; ").into())
    }
}

/// A `cargo` command using the same toolchain as this xtask.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn render(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

trait CommandExt {
    fn current_dir_if_unset(&mut self, dir: &Path) -> &mut Command;
}

impl CommandExt for Command {
    fn current_dir_if_unset(&mut self, dir: &Path) -> &mut Command {
        if self.get_current_dir().is_none() {
            self.current_dir(dir);
        }
        self
    }
}
