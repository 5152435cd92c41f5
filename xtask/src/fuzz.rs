//! `cargo xtask fuzz <target>|--all [--time SECS]`: cargo-fuzz targets on the nightly toolchain.
//!
//! Installs what is missing (the nightly toolchain through rustup, `cargo-fuzz` through
//! `cargo install --locked`), builds every target once, then runs each for `SECS` seconds
//! (default 60). libFuzzer runs with an RSS limit and a per-allocation limit, so a parser that
//! allocates a length it read from its input before checking it is a finding, not a slow run,
//! and with a per-input timeout, so a hang is a finding too.
//! Any crash, leak, timeout or over-limit allocation in any target fails the task; the
//! reproducer is in `fuzz/artifacts/<target>/`.

use std::process::Command;

use crate::{Result, exec, project_root};

/// Whole-process memory limit handed to libFuzzer.
const RSS_LIMIT_MB: u32 = 2048;
/// Largest single allocation libFuzzer tolerates: our decoders check every claimed length
/// against a limit far below this before allocating.
const MALLOC_LIMIT_MB: u32 = 512;
/// Seconds one input may take before libFuzzer reports it as a hang: far above what a parser
/// needs for its few KiB of input, so only a real blow-up (quadratic re-scanning) trips it.
const INPUT_TIMEOUT_SECS: u32 = 60;
const DEFAULT_SECS: u64 = 60;

pub fn run(args: &[String]) -> Result {
    let mut all = false;
    let mut secs = DEFAULT_SECS;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--all" => all = true,
            "--time" => {
                let v = it.next().ok_or("--time needs a number of seconds")?;
                secs = v
                    .parse()
                    .map_err(|_| format!("--time: `{v}` is not a number of seconds"))?;
            }
            flag if flag.starts_with('-') => return Err(format!("unknown flag `{flag}`").into()),
            name => targets.push(name.to_string()),
        }
    }
    if all != targets.is_empty() {
        return Err("usage: cargo xtask fuzz <target>...|--all [--time SECS]".into());
    }

    ensure_tools()?;
    let known = list_targets()?;
    if all {
        if known.is_empty() {
            eprintln!(
                "xtask fuzz: fuzz/Cargo.toml declares no [[bin]] targets yet; nothing to run"
            );
            return Ok(());
        }
        targets = known;
    } else if let Some(unknown) = targets.iter().find(|t| !known.contains(t)) {
        return Err(format!("no fuzz target `{unknown}`; known targets: {known:?}").into());
    }

    // One build of every target first, so each run's time budget is spent fuzzing.
    exec(nightly_cargo().args(["fuzz", "build"]))?;

    let mut failed = Vec::new();
    for target in &targets {
        let started = std::time::Instant::now();
        let result = exec(nightly_cargo().args([
            "fuzz".to_string(),
            "run".to_string(),
            target.clone(),
            "--".to_string(),
            format!("-max_total_time={secs}"),
            format!("-rss_limit_mb={RSS_LIMIT_MB}"),
            format!("-malloc_limit_mb={MALLOC_LIMIT_MB}"),
            format!("-timeout={INPUT_TIMEOUT_SECS}"),
        ]));
        match result {
            Ok(()) => eprintln!(
                "xtask fuzz: {target}: no finding in {:.0?}",
                started.elapsed()
            ),
            Err(e) => {
                eprintln!(
                    "xtask fuzz: {target}: FINDING ({e}); reproducer in fuzz/artifacts/{target}/"
                );
                failed.push(target.clone());
            }
        }
    }
    if failed.is_empty() {
        eprintln!(
            "xtask fuzz: {} target(s) ran {secs}s each without a finding",
            targets.len()
        );
        Ok(())
    } else {
        Err(format!("fuzz targets with findings: {}", failed.join(", ")).into())
    }
}

/// `cargo +nightly`, through the rustup proxy on `PATH` (the `CARGO` that runs xtask is the
/// stable toolchain's own binary, which does not understand `+nightly`).
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").current_dir(project_root());
    // Variables the stable `cargo run` exported would pin the nested build to stable tools.
    for var in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTDOC",
        "CARGO",
        "RUSTC_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Installs the nightly toolchain and cargo-fuzz when missing; does nothing otherwise.
fn ensure_tools() -> Result {
    let has_nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_nightly {
        exec(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let has_fuzz = nightly_cargo()
        .args(["fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_fuzz {
        exec(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// The `[[bin]]` targets of `fuzz/Cargo.toml`, as cargo-fuzz sees them.
fn list_targets() -> Result<Vec<String>> {
    let out = nightly_cargo().args(["fuzz", "list"]).output()?;
    if !out.status.success() {
        return Err(format!(
            "`cargo +nightly fuzz list` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}
