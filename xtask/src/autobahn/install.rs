//! Installs Autobahn|Testsuite's `wstest` under `target/xtask/autobahn/`.
//!
//! `autobahntestsuite` 25.10.1 is Python 2.7 code. This Debian has no Python 2.7; Debian 11
//! ("bullseye") does. So: fetch bullseye's python2.7 `.deb`s through a private apt
//! ([`crate::apt::PrivateApt`]), unpack them with `dpkg-deb -x`, make a virtualenv from that
//! interpreter (virtualenv 20.21.1, the last release that creates 2.7 environments, itself
//! installed in a small Python 3 venv), and pip-install the test suite into it with the versions
//! pinned in `xtask/autobahn/constraints-py27.txt`. A marker file records success: later runs
//! reuse the install without touching the network.
//!
//! Layout: `debs/` (downloaded packages), `py27/` (unpacked root), `tools/` (Python 3 venv with
//! virtualenv), `env/` (the 2.7 virtualenv with `wstest`), `apt/` (private apt state).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, exec, project_root};

/// The Debian release that still ships Python 2.7.
const RELEASE: &str = "bullseye";
/// What `dpkg-deb -x` unpacks: the interpreter, its stdlib, headers for C extensions, and the
/// libraries bullseye's build links against that newer Debian releases renamed.
const PACKAGES: &[&str] = &[
    "python2.7",
    "python2.7-minimal",
    "python2.7-dev",
    "libpython2.7",
    "libpython2.7-minimal",
    "libpython2.7-stdlib",
    "libpython2.7-dev",
    "libssl1.1",
    "libffi7",
];
const VIRTUALENV: &str = "virtualenv==20.21.1";
const SUITE: &str = "autobahntestsuite==25.10.1";
/// Changing anything above must change this, so old installs are redone.
const RECIPE: &str = "py27-from-bullseye virtualenv==20.21.1 autobahntestsuite==25.10.1 v1";

/// An installed `wstest` and the environment it needs.
pub struct Wstest {
    exe: PathBuf,
    lib_dir: PathBuf,
}

impl Wstest {
    /// `wstest` with `LD_LIBRARY_PATH` pointing at the unpacked Python 2.7 libraries.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.env("LD_LIBRARY_PATH", &self.lib_dir);
        cmd
    }
}

/// Installs `wstest` under `base` unless a previous run already did.
pub fn ensure(base: &Path) -> Result<Wstest> {
    let marker = base.join(".installed");
    let py27 = base.join("py27");
    let env = base.join("env");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(RECIPE) {
        let wstest = Wstest {
            exe: env.join("bin/wstest"),
            lib_dir: lib_dir(&py27)?,
        };
        if wstest.exe.is_file() {
            return Ok(wstest);
        }
    }
    let started = std::time::Instant::now();
    eprintln!("xtask autobahn: installing wstest under {}", base.display());
    let _ = std::fs::remove_file(&marker);
    std::fs::create_dir_all(base)?;

    // 1. The .deb files (kept, so a reinstall after a failed pip step needs no apt).
    let debs = base.join("debs");
    if !PACKAGES.iter().all(|p| has_deb(&debs, p)) {
        let apt = crate::apt::PrivateApt::new(&base.join("apt"), RELEASE)?;
        apt.download(PACKAGES, &debs)?;
    }

    // 2. Unpack them into a private root.
    if py27.exists() {
        std::fs::remove_dir_all(&py27)?;
    }
    std::fs::create_dir_all(&py27)?;
    for entry in std::fs::read_dir(&debs)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            exec(Command::new("dpkg-deb").arg("-x").arg(&path).arg(&py27))?;
        }
    }
    let lib_dir = lib_dir(&py27)?;
    let python27 = py27.join("usr/bin/python2.7");

    // 3. A 2.7 virtualenv made by virtualenv 20.21.1 (run from a Python 3 venv).
    let tools = crate::python::Venv::ensure(&base.join("tools"), &[VIRTUALENV])?;
    if env.exists() {
        std::fs::remove_dir_all(&env)?;
    }
    exec(
        tools
            .command("virtualenv")
            .arg("--no-periodic-update")
            .arg("--app-data")
            .arg(base.join("virtualenv-app-data"))
            .arg("-p")
            .arg(&python27)
            .arg(&env)
            .env("LD_LIBRARY_PATH", &lib_dir),
    )?;

    // 4. The test suite, compiling its C extensions against the unpacked headers.
    let include = py27.join("usr/include");
    let multiarch = lib_dir
        .file_name()
        .ok_or("unpacked lib dir has no name")?
        .to_owned();
    let cflags = format!(
        "-I{inc} -I{inc}/python2.7 -I{inc}/{arch}/python2.7",
        inc = include.display(),
        arch = multiarch.to_string_lossy()
    );
    exec(
        Command::new(env.join("bin/pip"))
            .args(["install", "--disable-pip-version-check", "--quiet", "-c"])
            .arg(project_root().join("xtask/autobahn/constraints-py27.txt"))
            .arg(SUITE)
            .env("LD_LIBRARY_PATH", &lib_dir)
            .env("CFLAGS", cflags)
            .env("PIP_NO_INPUT", "1"),
    )?;

    let wstest = Wstest {
        exe: env.join("bin/wstest"),
        lib_dir,
    };
    exec(wstest.command().arg("--autobahnversion"))?;
    std::fs::write(&marker, RECIPE)?;
    eprintln!(
        "xtask autobahn: wstest installed in {:.0?}",
        started.elapsed()
    );
    Ok(wstest)
}

fn has_deb(dir: &Path, package: &str) -> bool {
    let prefix = format!("{package}_");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(|e| e.ok()).any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with(&prefix) && name.ends_with(".deb")
            })
        })
        .unwrap_or(false)
}

/// The unpacked multiarch library directory (`py27/usr/lib/<triplet>`), found by its
/// `libpython2.7.so.1.0`.
fn lib_dir(py27: &Path) -> Result<PathBuf> {
    let lib = py27.join("usr/lib");
    for entry in std::fs::read_dir(&lib).map_err(|e| format!("{}: {e}", lib.display()))? {
        let dir = entry?.path();
        if dir.join("libpython2.7.so.1.0").is_file() {
            return Ok(dir);
        }
    }
    Err(format!("no libpython2.7.so.1.0 under {}", lib.display()).into())
}
