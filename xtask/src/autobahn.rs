//! `cargo xtask autobahn [--full] [--server-only|--client-only] [--bless] [--self-test]`:
//! Autobahn|Testsuite against `switchboard-ws`, in both roles.
//!
//! - **server role**: wstest `fuzzingclient` drives the `echo_server` example, cases 1.* – 13.*
//!   (compression included), always in full.
//! - **client role**: wstest `fuzzingserver` is driven by the `autobahn_client` example. wstest
//!   is single-threaded Python 2 and the 12.*/13.* (permessage-deflate) groups take ~95% of its
//!   time, so by default (what `cargo xtask ci` runs) the client role runs [`client_subset`]:
//!   every other group in full plus the smaller and the fragmented cases of each 12/13
//!   subgroup. `--full` runs every case in both roles.
//!
//! A run fails unless every case's `behavior` and `behaviorClose` are `OK` or `INFORMATIONAL`.
//! Each role's results are also diffed against `xtask/autobahn/expected-{server,client}.json`,
//! so a regression is named by case; `--bless` rewrites those files from the run.
//! `--self-test` points the server role at wstest's own echo server (cases 1.* and 2.*) to check
//! the installer and this runner without our examples.
//!
//! Everything (the wstest install, specs, logs, HTML reports) lives in `target/xtask/autobahn/`.

mod install;
mod report;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::Process;
use crate::{Result, cargo, exec, project_root, xtask_dir};
use report::Results;

/// Every Autobahn case group (there are no groups 8 and 11).
const ALL_GROUPS: &[&str] = &[
    "1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*", "12.*", "13.*",
];

/// Every case, as wstest patterns.
fn all_cases() -> Vec<String> {
    ALL_GROUPS.iter().map(|g| g.to_string()).collect()
}

/// The client-role cases `cargo xtask ci` runs (`--full` runs [`all_cases`]).
///
/// Groups 1–7, 9 and 10 run in full: all of them together take about 30 s of wstest's time.
/// The permessage-deflate groups 12.* (5 payload kinds: JSON, bitmap, German text, HTML, PDF)
/// and 13.* (7 offers of `client_no_context_takeover` × `client_max_window_bits`) send 1000
/// messages per case, growing with the case's last number: `x.y.1`–`x.y.10` are unfragmented
/// messages of 16 B … 128 KiB, `x.y.11`–`x.y.18` 8 KiB … 128 KiB messages auto-fragmented
/// into 256 B … 32 KiB frames. They are ~95% of a full client run (about 1200 s of 1230 s,
/// measured on the shared 2-core machine). Of each 12.y/13.y subgroup the subset keeps
/// `.1`–`.8` (every payload kind and offer, messages up to 32 KiB) and `.11`, `.12`
/// (compressed messages split into 256 B and 1 KiB fragments): 120 of the 216 cases, about
/// 13% of their time. The server role always runs in full.
fn client_subset() -> Vec<String> {
    let mut cases: Vec<String> = [
        "1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*",
    ]
    .iter()
    .map(|g| g.to_string())
    .collect();
    for (group, subgroups) in [(12, 5), (13, 7)] {
        for sub in 1..=subgroups {
            for case in (1..=8).chain([11, 12]) {
                cases.push(format!("{group}.{sub}.{case}"));
            }
        }
    }
    cases
}

/// Upper bound for one role; a full role takes about 15 minutes on the 2-core CI machine.
const ROLE_TIMEOUT: Duration = Duration::from_secs(40 * 60);

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Server,
    Client,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

pub fn run(args: &[String]) -> Result {
    let mut full = false;
    let mut bless = false;
    let mut self_test = false;
    let mut roles = vec![Role::Server, Role::Client];
    for arg in args {
        match arg.as_str() {
            "--full" => full = true,
            "--bless" => bless = true,
            "--self-test" => self_test = true,
            "--server-only" => roles = vec![Role::Server],
            "--client-only" => roles = vec![Role::Client],
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }

    let started = Instant::now();
    let _lock = RunLock::acquire(&xtask_dir().join("autobahn"))?;
    let wstest = install::ensure(&xtask_dir().join("autobahn"))?;
    eprintln!("xtask autobahn: wstest ready ({:.0?})", started.elapsed());

    if self_test {
        let results = run_server_role(&wstest, Testee::WstestEcho, &["1.*".into(), "2.*".into()])?;
        return judge("self-test server", &results, None);
    }

    exec(cargo().args([
        "build",
        "--release",
        "-p",
        "switchboard-ws",
        "--example",
        "echo_server",
        "--example",
        "autobahn_client",
    ]))?;

    let mut failures = Vec::new();
    for role in roles {
        let role_started = Instant::now();
        let results = match role {
            Role::Server => run_server_role(&wstest, Testee::EchoServer, &all_cases()),
            Role::Client => {
                run_client_role(&wstest, &if full { all_cases() } else { client_subset() })
            }
        };
        let expected = project_root()
            .join("xtask/autobahn")
            .join(format!("expected-{}.json", role.name()));
        let verdict = results.and_then(|r| {
            judge(
                &format!("{} role", role.name()),
                &r,
                Some((&expected, bless)),
            )
        });
        eprintln!(
            "xtask autobahn: {} role took {:.0?}",
            role.name(),
            role_started.elapsed()
        );
        if let Err(e) = verdict {
            failures.push(format!("{} role: {e}", role.name()));
        }
    }
    crate::fail_on(failures)
}

/// Prints counts, the failing cases and the diff against the expected file (rewritten from the
/// results when blessing); fails unless every case passes strictly.
fn judge(label: &str, results: &Results, expected: Option<(&Path, bool)>) -> Result {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for o in results.values() {
        *counts.entry(format!("{o}")).or_default() += 1;
    }
    let failing: Vec<String> = results
        .iter()
        .filter(|(_, o)| !o.passes())
        .map(|(c, o)| format!("{c} ({o})"))
        .collect();
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "autobahn {label}: {} cases, {} pass, {} fail [{}]",
        results.len(),
        results.len() - failing.len(),
        failing.len(),
        summary.join(", ")
    );
    if !failing.is_empty() {
        println!("  failing: {}", failing.join(", "));
    }

    if let Some((expected_path, bless)) = expected {
        compare_expected(results, expected_path, bless)?;
    }
    if results.is_empty() {
        return Err("no case ran".into());
    }
    if failing.is_empty() {
        Ok(())
    } else {
        Err(format!("{} case(s) not OK: {}", failing.len(), failing.join(", ")).into())
    }
}

/// Names every difference from the checked-in expectation; with `bless`, records the run in it.
fn compare_expected(results: &Results, expected_path: &Path, bless: bool) -> Result {
    let expected = report::read_expected(expected_path)?;
    let d = report::diff(&expected, results);
    for (case, want, got) in &d.regressions {
        println!("  REGRESSION {case}: expected {want}, got {got}");
    }
    for (case, want, got) in &d.changed {
        println!("  changed {case}: expected {want}, got {got}");
    }
    if !d.unexpected.is_empty() {
        println!(
            "  {} case(s) not in {} (rerun with --bless to record them)",
            d.unexpected.len(),
            expected_path.display()
        );
    }
    if bless {
        let mut merged = expected;
        merged.extend(results.iter().map(|(c, o)| (c.clone(), o.clone())));
        report::write_expected(expected_path, &merged)?;
        println!("  wrote {}", expected_path.display());
    }
    Ok(())
}

/// What the server role's fuzzing client connects to.
enum Testee {
    /// Our `echo_server` example.
    EchoServer,
    /// wstest's own echo server (`--self-test`).
    WstestEcho,
}

fn run_server_role(wstest: &install::Wstest, testee: Testee, cases: &[String]) -> Result<Results> {
    let dir = role_dir(Role::Server)?;
    let port = free_port()?;
    let url = format!("ws://127.0.0.1:{port}");
    let (agent, mut server) = match testee {
        Testee::EchoServer => (
            "switchboard-ws",
            Process::spawn(
                "echo_server",
                Command::new(example("echo_server")).arg(format!("127.0.0.1:{port}")),
                &dir.join("echo_server.log"),
            )?,
        ),
        Testee::WstestEcho => (
            "wstest-echoserver",
            Process::spawn(
                "wstest echoserver",
                wstest
                    .command()
                    .args(["-m", "echoserver", "-u", "0", "-w"])
                    .arg(&url),
                &dir.join("echo_server.log"),
            )?,
        ),
    };
    server.wait_for_port(port)?;

    let spec = format!(
        "{{\n  \"outdir\": {},\n  \"servers\": [{{\"agent\": \"{agent}\", \"url\": \"{url}\"}}],\n  \
         \"cases\": {},\n  \"exclude-cases\": [],\n  \"exclude-agent-cases\": {{}}\n}}\n",
        json_string(&dir.join("reports").display().to_string()),
        json_list(cases)
    );
    std::fs::write(dir.join("spec.json"), spec)?;
    let mut client = Process::spawn(
        "wstest fuzzingclient",
        wstest
            .command()
            .args(["-m", "fuzzingclient", "-s", "spec.json"])
            .current_dir(&dir),
        &dir.join("wstest.log"),
    )?;
    client.wait(ROLE_TIMEOUT)?;
    server.ensure_running()?;
    drop(server);
    read_reports(&dir)
}

fn run_client_role(wstest: &install::Wstest, cases: &[String]) -> Result<Results> {
    let dir = role_dir(Role::Client)?;
    let port = free_port()?;
    let url = format!("ws://127.0.0.1:{port}");
    let spec = format!(
        "{{\n  \"url\": \"{url}\",\n  \"outdir\": {},\n  \"cases\": {},\n  \
         \"exclude-cases\": [],\n  \"exclude-agent-cases\": {{}}\n}}\n",
        json_string(&dir.join("reports").display().to_string()),
        json_list(cases)
    );
    std::fs::write(dir.join("spec.json"), spec)?;
    let mut server = Process::spawn(
        "wstest fuzzingserver",
        wstest
            .command()
            .args(["-m", "fuzzingserver", "-u", "0", "-s", "spec.json"])
            .current_dir(&dir),
        &dir.join("wstest.log"),
    )?;
    server.wait_for_port(port)?;
    let mut client = Process::spawn(
        "autobahn_client",
        Command::new(example("autobahn_client")).arg(&url),
        &dir.join("autobahn_client.log"),
    )?;
    client.wait(ROLE_TIMEOUT)?;
    drop(server);
    read_reports(&dir)
}

/// One `xtask autobahn` at a time per target dir: runs share the install and the report
/// directories. The lock file holds the owner's pid; a lock whose owner is gone is taken over.
struct RunLock(PathBuf);

impl RunLock {
    fn acquire(dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(".run-lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    std::io::Write::write_all(&mut f, std::process::id().to_string().as_bytes())?;
                    return Ok(RunLock(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let owner = owner.trim();
                    if !owner.is_empty() && Path::new("/proc").join(owner).exists() {
                        return Err(format!(
                            "another `xtask autobahn` (pid {owner}) is running; {} is its lock",
                            path.display()
                        )
                        .into());
                    }
                    std::fs::remove_file(&path)?; // stale: its owner is gone
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(format!("cannot take {}", path.display()).into())
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fresh `target/xtask/autobahn/<role>/` (old reports removed so none is read by mistake).
fn role_dir(role: Role) -> Result<PathBuf> {
    let dir = xtask_dir().join("autobahn").join(role.name());
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(dir.join("reports"))?;
    Ok(dir)
}

fn read_reports(dir: &Path) -> Result<Results> {
    let index = dir.join("reports/index.json");
    let (agent, results) = report::read_index(&index)?;
    eprintln!(
        "xtask autobahn: read {} results of agent `{agent}` (HTML report: {})",
        results.len(),
        dir.join("reports/index.html").display()
    );
    Ok(results)
}

fn example(name: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
        .join("release/examples")
        .join(name)
}

/// A loopback port nobody listens on right now (bound, then released for the child to take).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| json_string(s)).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_subset_keeps_every_deflate_subgroup() {
        let subset = client_subset();
        let explicit: Vec<&String> = subset.iter().filter(|c| !c.contains('*')).collect();
        assert_eq!(explicit.len(), 120);
        for sub in 1..=5 {
            assert!(subset.contains(&format!("12.{sub}.11")));
        }
        for sub in 1..=7 {
            assert!(subset.contains(&format!("13.{sub}.1")));
        }
        assert!(
            !subset
                .iter()
                .any(|c| c == "12.*" || c == "13.*" || c.ends_with(".18"))
        );
        assert_eq!(all_cases().len(), ALL_GROUPS.len());
    }

    #[test]
    fn run_lock_excludes_live_owners_and_takes_over_stale_ones() {
        let dir = std::env::temp_dir().join(format!("xtask-lock-{}", std::process::id()));
        let lock = RunLock::acquire(&dir).unwrap();
        // Held by this (live) process: a second run is refused.
        assert!(RunLock::acquire(&dir).is_err());
        drop(lock);
        // A lock left by a process that is gone (pid beyond pid_max) is taken over.
        std::fs::write(dir.join(".run-lock"), "4294967295").unwrap();
        let again = RunLock::acquire(&dir).unwrap();
        drop(again);
        assert!(!dir.join(".run-lock").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
