//! npm packages under `target/xtask/`, installed idempotently.
//!
//! The prefix records the exact package list it was filled with in a marker file; a later call
//! with the same list does nothing (no network), a different list reinstalls.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, exec};

const MARKER: &str = ".xtask-packages";

/// Makes sure `prefix/node_modules` holds exactly the pinned `packages` (`name@version`), and
/// returns that `node_modules` directory (for `NODE_PATH`).
pub fn ensure_packages(prefix: &Path, packages: &[&str]) -> Result<PathBuf> {
    ensure_node()?;
    let modules = prefix.join("node_modules");
    let wanted = packages.join("\n") + "\n";
    let marker = prefix.join(MARKER);
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) && modules.is_dir()
    {
        return Ok(modules);
    }
    let _ = std::fs::remove_file(&marker);
    std::fs::create_dir_all(prefix)?;
    exec(
        Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--save-exact",
                "--prefix",
            ])
            .arg(prefix)
            .args(packages)
            // playwright-core ships no browser; the tests use the system's. Never fetch one.
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
    )?;
    std::fs::write(&marker, wanted)?;
    Ok(modules)
}

/// `node` and `npm` on `PATH`; on a bare Debian installs them with apt when root.
fn ensure_node() -> Result {
    let works = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if works("node") && works("npm") {
        return Ok(());
    }
    if !crate::apt::is_root() {
        return Err(
            "`node` and `npm` are needed on PATH (Debian: apt-get install nodejs npm)".into(),
        );
    }
    crate::apt::apt_install(&["nodejs", "npm"])
}
