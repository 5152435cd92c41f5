//! Python 3 virtual environments under `target/xtask/`, created and filled idempotently.
//!
//! A venv records the exact requirement list it was filled with in a marker file; a later call
//! with the same list does nothing (and so needs no network), a different list reinstalls.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, exec};

const MARKER: &str = ".xtask-requirements";

/// A Python 3 virtual environment made by [`Venv::ensure`].
pub struct Venv {
    dir: PathBuf,
}

impl Venv {
    /// Makes sure `dir` is a working venv with exactly `requirements` (pinned `name==version`
    /// strings) installed; reuses it when its marker says so.
    pub fn ensure(dir: &Path, requirements: &[&str]) -> Result<Venv> {
        let venv = Venv {
            dir: dir.to_path_buf(),
        };
        let wanted = requirements.join("\n") + "\n";
        let marker = dir.join(MARKER);
        if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str())
            && venv.python_works()
        {
            return Ok(venv);
        }
        if !venv.python_works() {
            if dir.exists() {
                std::fs::remove_dir_all(dir)?;
            }
            create_venv(dir)?;
        }
        let _ = std::fs::remove_file(&marker);
        exec(
            venv.command("pip")
                .args(["install", "--disable-pip-version-check", "--quiet"])
                .args(requirements)
                .env("PIP_NO_INPUT", "1"),
        )?;
        std::fs::write(&marker, wanted)?;
        Ok(venv)
    }

    /// The path of an executable the venv installed (`python`, `pip`, `pytest`, ...).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }

    /// A command running one of the venv's executables.
    pub fn command(&self, name: &str) -> Command {
        Command::new(self.bin(name))
    }

    fn python_works(&self) -> bool {
        self.command("python")
            .args(["-c", "import pip"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }
}

/// `python3 -m venv DIR`; on a bare Debian (no `python3-venv`) installs it with apt when root.
fn create_venv(dir: &Path) -> Result {
    let attempt = || exec(Command::new("python3").arg("-m").arg("venv").arg(dir));
    if attempt().is_ok() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dir);
    if !crate::apt::is_root() {
        return Err(
            "`python3 -m venv` failed; install Python 3 with venv support \
                    (Debian: apt-get install python3-venv)"
                .into(),
        );
    }
    crate::apt::apt_install(&["python3", "python3-venv", "python3-pip"])?;
    attempt()
}
