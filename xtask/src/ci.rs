//! `cargo xtask ci`: everything CI checks, in the order that fails fastest.

use crate::{Result, cargo, exec};

/// A named CI step.
type Step = (&'static str, fn() -> Result);

pub fn run_all() -> Result {
    let steps: &[Step] = &[
        ("fmt", || {
            exec(cargo().args(["fmt", "--all", "--", "--check"]))
        }),
        ("clippy", || {
            exec(cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ]))
        }),
        ("test", || {
            crate::redis::ensure_installed()?; // crates/cluster's tests start redis-server
            exec(cargo().args(["test", "--workspace", "--all-features"]))
        }),
        ("fuzz", || {
            crate::fuzz::run(&["--all".into(), "--time".into(), "30".into()])
        }),
        ("autobahn", || crate::autobahn::run(&[])),
        ("interop", || crate::interop::run(&[])),
        ("cluster", || crate::cluster::run(&[])),
    ];
    for (name, step) in steps {
        eprintln!("\n==> xtask ci: {name}");
        let started = std::time::Instant::now();
        step().map_err(|e| format!("step `{name}` failed: {e}"))?;
        eprintln!("==> xtask ci: {name} ok ({:.0?})", started.elapsed());
    }
    Ok(())
}

pub fn run(args: &[String]) -> Result {
    if !args.is_empty() {
        return Err(format!("`xtask ci` takes no arguments, got {args:?}").into());
    }
    run_all()
}
