//! `cargo xtask cluster`: `switchboard` nodes sharing Redis, tested from outside with stock
//! clients (part of `cargo xtask ci`, after interop).
//!
//! Installs `redis-server` when missing ([`crate::redis`]), builds the release `switchboard`,
//! then runs:
//!
//! - pytest over `xtask/interop/python/test_cluster*.py` (stomp.py over TCP) in the interop
//!   venv. Those tests start their own Redis servers (standalone, AOF for the restart test, a
//!   3-master Redis Cluster) and nodes, through `redis_proc.py` and `cluster_proc.py`;
//! - `node --test xtask/interop/node/cluster_*.test.js` with a standalone Redis started here,
//!   its URL in `SWITCHBOARD_REDIS_URL`: @stomp/stompjs over WebSocket across two nodes, and
//!   sockjs-client + stompjs through Debian's `haproxy` and `nginx` (installed with apt when
//!   missing) running `docs/cluster/haproxy.cfg` and `nginx.conf` in front of two nodes.
//!
//! `cargo xtask interop` leaves those files out. Both suites must run at least one test and
//! fail none; the task prints how many passed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::Process;
use crate::redis::{Persistence, Redis};
use crate::{Result, cargo, exec, project_root, xtask_dir};

/// Bound for one suite, Redis and nodes included.
const SUITE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

pub fn run(args: &[String]) -> Result {
    let (mut python, mut node) = (true, true);
    for arg in args {
        match arg.as_str() {
            "--python-only" => node = false,
            "--node-only" => python = false,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    crate::redis::ensure_installed()?;
    exec(cargo().args(["build", "--release", "-p", "switchboard-server"]))?;
    let bin = crate::load::target_dir().join("release/switchboard");

    let mut failures = Vec::new();
    let mut passed = Vec::new();
    type Suite = fn(&Path) -> Result<Counts>;
    let suites: [(bool, &str, Suite); 2] =
        [(python, "python", run_python), (node, "node", run_node)];
    for (wanted, name, suite) in suites {
        if !wanted {
            continue;
        }
        let started = Instant::now();
        let result = suite(&bin);
        eprintln!("xtask cluster: {name} suite took {:.0?}", started.elapsed());
        match result {
            Ok(c) => passed.push(format!("{name} {} passed", c.passed)),
            Err(e) => failures.push(format!("{name} suite: {e}")),
        }
    }
    if !passed.is_empty() {
        eprintln!("xtask cluster: {}", passed.join(", "));
    }
    crate::fail_on(failures)
}

/// Tests that passed and failed in one suite.
#[derive(Debug, PartialEq)]
struct Counts {
    passed: u64,
    failed: u64,
}

impl Counts {
    /// Ok when something ran and nothing failed.
    fn check(self, what: &str) -> Result<Counts> {
        if self.failed > 0 {
            Err(format!("{} {what} test(s) failed", self.failed).into())
        } else if self.passed == 0 {
            Err(format!("no {what} test ran").into())
        } else {
            Ok(self)
        }
    }
}

fn run_python(bin: &Path) -> Result<Counts> {
    let venv = crate::python::Venv::ensure(
        &xtask_dir().join("venv"),
        crate::interop::PYTHON_REQUIREMENTS,
    )?;
    let dir = project_root().join("xtask/interop/python");
    let files = files(&dir, |n| {
        n.starts_with("test_cluster") && n.ends_with(".py")
    })?;
    let junit = xtask_dir().join("cluster-pytest.xml");
    let _ = std::fs::remove_file(&junit);
    let mut cmd = venv.command("python");
    cmd.args(["-m", "pytest", "-p", "no:cacheprovider", "-v"])
        .arg(format!("--junitxml={}", junit.display()))
        .args(&files)
        .current_dir(&dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SWITCHBOARD_BIN", bin)
        .env("SWITCHBOARD_REDIS_DIR", xtask_dir().join("redis"));
    let status = Process::spawn_inherit("pytest", &mut cmd)?.wait_status(SUITE_TIMEOUT)?;
    let report = std::fs::read_to_string(&junit).unwrap_or_default();
    let counts = junit_counts(&report).check("pytest")?;
    if !status.success() {
        return Err(format!("pytest failed ({status})").into());
    }
    Ok(counts)
}

fn run_node(bin: &Path) -> Result<Counts> {
    let modules =
        crate::node::ensure_packages(&xtask_dir().join("node"), crate::interop::NPM_PACKAGES)?;
    let dir = project_root().join("xtask/interop/node");
    let files = files(&dir, |n| {
        n.starts_with("cluster_") && n.ends_with(".test.js")
    })?;
    ensure_tool("haproxy", "-v", "haproxy")?;
    ensure_tool("nginx", "-v", "nginx-light")?;
    let redis = Redis::start(Persistence::Off, None)?;
    let tap = xtask_dir().join("cluster-node.tap");
    let _ = std::fs::remove_file(&tap);
    let mut cmd = Command::new("node");
    cmd.arg("--test")
        .args(["--test-reporter=spec", "--test-reporter-destination=stdout"])
        .args(["--test-reporter=tap", "--test-reporter-destination"])
        .arg(&tap)
        .args(&files)
        .current_dir(&dir)
        .env("NODE_PATH", &modules)
        .env("SWITCHBOARD_BIN", bin)
        .env("SWITCHBOARD_REDIS_URL", redis.url());
    let status = Process::spawn_inherit("node --test", &mut cmd)?.wait_status(SUITE_TIMEOUT)?;
    drop(redis);
    let report = std::fs::read_to_string(&tap).unwrap_or_default();
    let counts = tap_counts(&report).check("node")?;
    if !status.success() {
        return Err(format!("node --test failed ({status})").into());
    }
    Ok(counts)
}

/// `tool` on `PATH` (the load-balancer test runs the samples in docs/cluster/ with Debian's
/// `haproxy` and `nginx`); installed with apt (`package`) when missing and xtask runs as root.
fn ensure_tool(tool: &str, version_flag: &str, package: &str) -> Result {
    let works = || {
        Command::new(tool)
            .arg(version_flag)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works() {
        return Ok(());
    }
    if !crate::apt::is_root() {
        return Err(
            format!("`{tool}` is needed on PATH (Debian: apt-get install {package})").into(),
        );
    }
    crate::apt::apt_install(&[package])?;
    if works() {
        Ok(())
    } else {
        Err(format!("apt-get installed {package}, but `{tool}` is still not on PATH").into())
    }
}

/// Files directly in `dir` whose names pass `keep`, sorted; an error when there is none.
fn files(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(&keep) {
            found.push(path);
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(format!("no cluster test file in {}", dir.display()).into());
    }
    Ok(found)
}

/// Passed and failed counts from pytest's JUnit XML (`<testsuite ... tests= failures= errors=
/// skipped=`): a skipped test counts as failed, since these tests must never skip.
fn junit_counts(xml: &str) -> Counts {
    let attr = |name: &str| -> u64 {
        let key = format!(" {name}=\"");
        xml.find("<testsuite ")
            .and_then(|start| xml[start..].find(&key).map(|i| start + i + key.len()))
            .and_then(|i| xml[i..].split('"').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let failed = attr("failures") + attr("errors") + attr("skipped");
    Counts {
        passed: attr("tests").saturating_sub(failed),
        failed,
    }
}

/// Passed and failed counts from node's TAP summary (`# pass N`, `# fail N`).
fn tap_counts(tap: &str) -> Counts {
    let count = |prefix: &str| -> u64 {
        tap.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    Counts {
        passed: count("# pass "),
        failed: count("# fail ") + count("# cancelled ") + count("# skipped ") + count("# todo "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_reports() {
        let xml = r#"<?xml version="1.0"?><testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="2" skipped="0" tests="9" time="1.0"></testsuite></testsuites>"#;
        assert_eq!(
            junit_counts(xml),
            Counts {
                passed: 6,
                failed: 3
            }
        );
        assert!(junit_counts(xml).check("x").is_err());
        assert!(junit_counts("").check("x").is_err());
        let tap = "ok 1 - a\n# tests 3\n# pass 3\n# fail 0\n# cancelled 0\n# skipped 0\n";
        assert_eq!(
            tap_counts(tap),
            Counts {
                passed: 3,
                failed: 0
            }
        );
        assert!(tap_counts(tap).check("x").is_ok());
        assert!(tap_counts("# pass 2\n# fail 1\n").check("x").is_err());
    }
}
