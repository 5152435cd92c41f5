//! Child processes that cannot outlive their task: every one is bounded by a timeout and
//! killed (with its whole process group) when the task is done or fails.

use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

/// How long a freshly started server gets to accept TCP connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A child process in a process group of its own, its output in a log file (or inherited);
/// killed with its descendants when dropped, so no error path leaves a server behind.
pub struct Process {
    name: &'static str,
    child: Child,
    log: Option<PathBuf>,
}

impl Process {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Result<Process> {
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        eprintln!("$ {} > {}", crate::render(cmd), log.display());
        cmd.stdout(out).stderr(err);
        Self::start(name, cmd, Some(log.to_path_buf()))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `cmd` with stdout and stderr shared with xtask's (for test runners).
    pub fn spawn_inherit(name: &'static str, cmd: &mut Command) -> Result<Process> {
        eprintln!("$ {}", crate::render(cmd));
        Self::start(name, cmd, None)
    }

    fn start(name: &'static str, cmd: &mut Command, log: Option<PathBuf>) -> Result<Process> {
        let child = cmd
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Process { name, child, log })
    }

    fn log_tail(&self, n: usize) -> String {
        match &self.log {
            Some(log) => format!("; its log ends with:\n{}", tail(log, n)),
            None => String::new(),
        }
    }

    /// Fails (with the log's tail) if the process has exited.
    pub fn ensure_running(&mut self) -> Result {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => {
                Err(format!("{} exited early ({status}){}", self.name, self.log_tail(20)).into())
            }
        }
    }

    /// Waits until something accepts TCP connections on `127.0.0.1:port`.
    pub fn wait_for_port(&mut self, port: u16) -> Result {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while Instant::now() < deadline {
            self.ensure_running()?;
            if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "{} did not listen on {addr} within {STARTUP_TIMEOUT:?}",
            self.name
        )
        .into())
    }

    /// Waits for the exit status, printing the log's last line every minute; after `timeout`
    /// kills the process group and fails.
    pub fn wait_status(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let started = Instant::now();
        let mut next_progress = Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            let elapsed = started.elapsed();
            if elapsed > timeout {
                self.kill_group();
                return Err(format!(
                    "{} still running after {timeout:?}: killed{}",
                    self.name,
                    self.log_tail(20)
                )
                .into());
            }
            if elapsed > next_progress {
                next_progress += Duration::from_secs(60);
                if let Some(log) = &self.log {
                    eprintln!(
                        "xtask: {} running for {:.0?}: {}",
                        self.name,
                        elapsed,
                        tail(log, 1).trim()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Like [`Process::wait_status`], and fails unless the exit is successful.
    pub fn wait(&mut self, timeout: Duration) -> Result {
        let status = self.wait_status(timeout)?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("{} failed ({status}){}", self.name, self.log_tail(20)).into())
        }
    }

    /// SIGKILL to the whole process group (the child made it with `process_group(0)`), so
    /// servers a test runner started die with it.
    fn kill_group(&mut self) {
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill_group();
        }
        let _ = self.child.wait();
    }
}

/// The last `n` lines of a log file (read from its last 64 KiB).
pub fn tail(path: &Path, n: usize) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(65536)));
        let _ = f.read_to_end(&mut buf);
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
