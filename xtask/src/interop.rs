//! `cargo xtask interop`: our binaries against clients nobody here wrote.
//!
//! Installs (idempotently, pinned) a Python venv at `target/xtask/venv` and npm packages under
//! `target/xtask/node`, builds the binaries the tests drive in release mode, then runs
//! `pytest xtask/interop/python/` and `node --test` over `xtask/interop/node/*.test.js`.
//! Tests find the binaries through environment variables and start their own server on a free
//! loopback port (see `xtask/interop/README.md`):
//!
//! - `SWITCHBOARD_ECHO_SERVER`: the `switchboard-ws` `echo_server` example.
//! - `SWITCHBOARD_BIN`: the `switchboard` server binary (set once `crates/server` has one).
//! - `CHROMIUM_PATH`: Debian's Chromium for the browser tests (Node suite; apt-installed if missing).
//! - `SCREENSHOT_DIR`: `target/xtask/screenshots`, where browser tests save screenshots.
//!
//! A suite that collects no test fails: a runner that ran nothing has proven nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::Process;
use crate::{Result, cargo, exec, project_root, xtask_dir};

/// Python packages of the Python suite (pytest plus the peers under test; trustme makes the
/// throwaway CA and certificate of the STOMP-over-TLS test).
pub(crate) const PYTHON_REQUIREMENTS: &[&str] = &[
    "pytest==8.4.2",
    "websockets==15.0.1",
    "stomp.py==9.0.0",
    "trustme==1.2.1",
];
/// npm packages of the Node suite. playwright-core drives Debian's Chromium ([`CHROMIUM`]); it
/// ships no browser and none is ever downloaded. sockjs-client is the SockJS client under test
/// (in Node, and its `dist/sockjs.min.js` in the browser, served by `switchboard` itself through
/// `[sockjs] client_dir`); sockjs is sockjs-node, the peer echo server of
/// `cargo xtask load sockjs --compare`.
pub(crate) const NPM_PACKAGES: &[&str] = &[
    "ws@8.18.3",
    "@stomp/stompjs@7.1.1",
    "playwright-core@1.65.1",
    "sockjs-client@1.6.1",
    "sockjs@0.3.24",
];
/// The browser of the Node suite's browser tests: Debian's `chromium` package, installed with
/// apt when missing (passed to the tests as `CHROMIUM_PATH`).
const CHROMIUM: &str = "/usr/bin/chromium";
/// Bound for one suite, servers included.
const SUITE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

pub fn run(args: &[String]) -> Result {
    let mut suites = vec![Suite::Python, Suite::Node];
    for arg in args {
        match arg.as_str() {
            "--python-only" => suites = vec![Suite::Python],
            "--node-only" => suites = vec![Suite::Node],
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let binaries = build_binaries()?;

    let mut failures = Vec::new();
    for suite in suites {
        let started = std::time::Instant::now();
        let result = match suite {
            Suite::Python => run_python(&binaries),
            Suite::Node => run_node(&binaries),
        };
        eprintln!(
            "xtask interop: {} suite took {:.0?}",
            suite.name(),
            started.elapsed()
        );
        if let Err(e) = result {
            failures.push(format!("{} suite: {e}", suite.name()));
        }
    }
    crate::fail_on(failures)
}

#[derive(Clone, Copy)]
enum Suite {
    Python,
    Node,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Python => "python",
            Suite::Node => "node",
        }
    }
}

/// Environment variables naming the binaries under test.
type Binaries = Vec<(&'static str, PathBuf)>;

fn build_binaries() -> Result<Binaries> {
    let release = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
        .join("release");
    exec(cargo().args([
        "build",
        "--release",
        "-p",
        "switchboard-ws",
        "--example",
        "echo_server",
    ]))?;
    let mut binaries = vec![(
        "SWITCHBOARD_ECHO_SERVER",
        release.join("examples/echo_server"),
    )];
    if server_has_binary() {
        exec(cargo().args(["build", "--release", "-p", "switchboard-server"]))?;
        binaries.push(("SWITCHBOARD_BIN", release.join("switchboard")));
    } else {
        eprintln!(
            "xtask interop: crates/server has no `switchboard` binary yet; SWITCHBOARD_BIN unset"
        );
    }
    Ok(binaries)
}

/// Whether `crates/server` declares the `switchboard` binary and its source exists.
fn server_has_binary() -> bool {
    let dir = project_root().join("crates/server");
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .map(|manifest| manifest.contains("name = \"switchboard\""))
        .unwrap_or(false)
        && dir.join("src/main.rs").is_file()
}

fn run_python(binaries: &Binaries) -> Result {
    let venv = crate::python::Venv::ensure(&xtask_dir().join("venv"), PYTHON_REQUIREMENTS)?;
    let tests = project_root().join("xtask/interop/python");
    let mut cmd = venv.command("python");
    cmd.args(["-m", "pytest", "-p", "no:cacheprovider", "-v"])
        // test_cluster*.py need Redis: `cargo xtask cluster` runs them (crate::cluster).
        .arg("--ignore-glob=test_cluster*.py") // relative to current_dir
        .arg(&tests)
        .current_dir(&tests)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for (var, path) in binaries {
        cmd.env(var, path);
    }
    let status = Process::spawn_inherit("pytest", &mut cmd)?.wait_status(SUITE_TIMEOUT)?;
    match status.code() {
        Some(0) => Ok(()),
        Some(5) => Err(format!("pytest collected no test in {}", tests.display()).into()),
        _ => Err(format!("pytest failed ({status})").into()),
    }
}

fn run_node(binaries: &Binaries) -> Result {
    let modules = crate::node::ensure_packages(&xtask_dir().join("node"), NPM_PACKAGES)?;
    let chromium = ensure_chromium()?;
    let dir = project_root().join("xtask/interop/node");
    let files = test_files(&dir)?;
    if files.is_empty() {
        return Err(format!("no *.test.js file in {}", dir.display()).into());
    }
    let tap = xtask_dir().join("node-interop.tap");
    let _ = std::fs::remove_file(&tap);
    let mut cmd = Command::new("node");
    cmd.arg("--test")
        .args(["--test-reporter=spec", "--test-reporter-destination=stdout"])
        .args(["--test-reporter=tap", "--test-reporter-destination"])
        .arg(&tap)
        .args(&files)
        .current_dir(&dir)
        .env("NODE_PATH", &modules)
        .env("CHROMIUM_PATH", &chromium)
        // where the browser tests save screenshots (the demo page: demo-chat.png)
        .env("SCREENSHOT_DIR", xtask_dir().join("screenshots"))
        // playwright-core never downloads a browser on its own; this says so twice.
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
    for (var, path) in binaries {
        cmd.env(var, path);
    }
    let status = Process::spawn_inherit("node --test", &mut cmd)?.wait_status(SUITE_TIMEOUT)?;
    let report = std::fs::read_to_string(&tap).unwrap_or_default();
    if !status.success() {
        return Err(format!("node --test failed ({status})").into());
    }
    check_node_report(&report, &files)
        .map_err(|e| format!("{e} (TAP report: {})", tap.display()).into())
}

/// Debian's `chromium` at [`CHROMIUM`]; when it is missing, installed with apt (root only: CI
/// is root on a fresh machine), never downloaded by any other tool.
fn ensure_chromium() -> Result<PathBuf> {
    let path = PathBuf::from(CHROMIUM);
    if path.is_file() {
        return Ok(path);
    }
    if !crate::apt::is_root() {
        return Err(format!(
            "{CHROMIUM} is missing (Debian: apt-get install --no-install-recommends chromium)"
        )
        .into());
    }
    crate::apt::apt_install(&["chromium"])?;
    if !path.is_file() {
        return Err(format!("apt-get installed `chromium` but {CHROMIUM} is still missing").into());
    }
    Ok(path)
}

/// Node 20 reports a test file that defines no test as one passing test named by the file's
/// path; a suite passes only if no file did that and some test passed.
fn check_node_report(report: &str, files: &[PathBuf]) -> std::result::Result<(), String> {
    let descriptions: Vec<&str> = report
        .lines()
        .map(str::trim_start)
        .filter_map(|l| l.strip_prefix("not ").unwrap_or(l).strip_prefix("ok "))
        .filter_map(|l| l.split_once(" - ").map(|(_, d)| d.trim()))
        .collect();
    for file in files {
        if descriptions.contains(&file.to_string_lossy().as_ref()) {
            return Err(format!("{} defines no test", file.display()));
        }
    }
    let passed = report
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if passed == 0 {
        return Err("node --test ran no test".into());
    }
    Ok(())
}

/// `*.test.js` / `*.test.mjs` / `*.test.cjs` directly in `dir`, sorted.
fn test_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // cluster_*.test.js need Redis: `cargo xtask cluster` runs them (crate::cluster).
        if [".test.js", ".test.mjs", ".test.cjs"]
            .iter()
            .any(|ext| name.ends_with(ext))
            && !name.starts_with("cluster_")
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_report_without_tests_fails() {
        let files = vec![PathBuf::from("/x/a.test.js"), PathBuf::from("/x/b.test.js")];
        let good = "ok 1 - first\n    ok 1 - nested\nok 2 - suite\n# tests 3\n# pass 3\n";
        assert!(check_node_report(good, &files).is_ok());
        let empty_file = "ok 1 - first\nok 2 - /x/b.test.js\n# tests 2\n# pass 2\n";
        assert!(
            check_node_report(empty_file, &files)
                .unwrap_err()
                .contains("b.test.js")
        );
        assert!(check_node_report("# tests 0\n# pass 0\n", &files).is_err());
        assert!(check_node_report("", &files).is_err());
    }
}
