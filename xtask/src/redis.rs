//! Redis servers for the cluster tests and `cargo xtask load cluster`: Debian's `redis-server`
//! (installed with apt when missing), each a child of xtask on a free loopback port with a
//! directory of its own under `target/xtask/redis/`, killed with its process group on drop.
//!
//! - [`Redis::start`] with [`Persistence::Off`]: `--save "" --appendonly no`, nothing on disk.
//! - [`Persistence::Aof`]: `--appendonly yes --appendfsync always`; [`Redis::stop`] and
//!   [`Redis::restart`] bring it down and back on the same port and directory, so what was
//!   written before is read back from the append-only file.
//! - [`RedisCluster::start`]: three `--cluster-enabled yes` servers joined by
//!   `redis-cli --cluster create ... --cluster-replicas 0` into a 3-master Redis Cluster, ready
//!   once every node says `cluster_state:ok`.
//!
//! Every wait is bounded. The pytest suite starts its own Redis servers the same way from
//! `xtask/interop/python/redis_proc.py` (it has to stop and restart them in the middle of a
//! test); the Node suite gets a standalone server from here through `SWITCHBOARD_REDIS_URL`.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Result;
use crate::process::Process;

/// How long a Redis server gets to answer PING after it started (AOF loading included).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a `redis-cli` call may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a new Redis Cluster gets to reach `cluster_state:ok` on every node.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(60);
/// A cluster node also listens on its port + this (the cluster bus).
const BUS_OFFSET: u16 = 10_000;

/// Makes sure `redis-server` and `redis-cli` are on `PATH`; installs Debian's `redis-server`
/// and `redis-tools` with apt when they are not and xtask runs as root (CI), else says what to
/// install. Idempotent: with both present it does nothing.
pub fn ensure_installed() -> Result {
    if works("redis-server") && works("redis-cli") {
        return Ok(());
    }
    if !crate::apt::is_root() {
        return Err("`redis-server` and `redis-cli` are needed on PATH \
                    (Debian: apt-get install --no-install-recommends redis-server redis-tools)"
            .into());
    }
    crate::apt::apt_install(&["redis-server", "redis-tools"])?;
    if works("redis-server") && works("redis-cli") {
        Ok(())
    } else {
        Err("apt-get installed redis-server and redis-tools, but they are still not on PATH".into())
    }
}

fn works(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What a standalone server keeps on disk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Persistence {
    /// `--save "" --appendonly no`.
    Off,
    /// `--appendonly yes --appendfsync always`: every write is on disk before Redis answers.
    #[cfg_attr(not(test), expect(dead_code, reason = "used by the tests only"))]
    Aof,
}

/// One `redis-server` child on `127.0.0.1:port`.
pub struct Redis {
    process: Option<Process>,
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
    /// `taskset -c CPU` in front of it (load runs pin Redis beside the nodes).
    cpu: Option<&'static str>,
}

impl Redis {
    /// Starts a standalone server on a free loopback port.
    pub fn start(persistence: Persistence, cpu: Option<&'static str>) -> Result<Redis> {
        let port = free_port(false)?;
        let mut args = vec![
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
        ];
        match persistence {
            Persistence::Off => args.push("no".into()),
            Persistence::Aof => {
                args.extend(["yes".into(), "--appendfsync".into(), "always".into()])
            }
        }
        Redis::launch(port, args, cpu)
    }

    fn launch(port: u16, extra: Vec<String>, cpu: Option<&'static str>) -> Result<Redis> {
        let dir = crate::xtask_dir().join("redis").join(port.to_string());
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let mut args = vec![
            "--port".to_owned(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--daemonize".into(),
            "no".into(),
            "--logfile".into(),
            String::new(),
        ];
        args.extend(extra);
        let mut redis = Redis {
            process: None,
            port,
            dir,
            args,
            cpu,
        };
        redis.spawn()?;
        Ok(redis)
    }

    fn spawn(&mut self) -> Result {
        let mut cmd = match self.cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpu, "redis-server"]);
                c
            }
            None => Command::new("redis-server"),
        };
        cmd.args(&self.args);
        // Appended, not truncated, so a restart keeps the first run's log.
        let log = self.dir.join("redis.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        cmd.stderr(out.try_clone()?).stdout(out);
        let mut p = Process::spawn_inherit("redis-server", &mut cmd)?;
        let started = p.wait_for_port(self.port);
        self.process = Some(p);
        started.and_then(|()| self.wait_ready()).map_err(|e| {
            format!(
                "{e}; log {}:\n{}",
                log.display(),
                crate::process::tail(&log, 20)
            )
            .into()
        })
    }

    /// Waits (bounded) until the server answers PING with PONG (not `LOADING`).
    fn wait_ready(&mut self) -> Result {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(p) = &mut self.process {
                p.ensure_running()?;
            }
            if self.cli(&["ping"]).is_ok_and(|out| out.trim() == "PONG") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server on port {} did not answer PING within {READY_TIMEOUT:?}",
                    self.port
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id (None while stopped).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// `redis-cli -p PORT ARGS...` (bounded); its standard output.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        redis_cli(
            Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(args),
            &self.dir,
        )
    }

    // `cargo xtask cluster` and `load cluster` never restart a server (the pytest suite restarts
    // its own, see redis_proc.py); this module's tests do.
    /// `SHUTDOWN` (an AOF server flushes its file first), then waits for the exit; the process
    /// is killed if it does not exit in time.
    pub fn stop(&mut self) -> Result {
        if let Some(mut p) = self.process.take() {
            let _ = self.cli(&["shutdown"]);
            p.wait_status(READY_TIMEOUT)?;
        }
        Ok(())
    }

    /// Starts the server again on the same port, directory and flags.
    #[cfg_attr(not(test), expect(dead_code, reason = "used by the tests only"))]
    pub fn restart(&mut self) -> Result {
        self.stop()?;
        self.spawn()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.process.take(); // kills the process group
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters (no replicas), each a [`Redis`] child.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    /// Starts three `--cluster-enabled yes` servers (persistence off), creates the cluster with
    /// `redis-cli --cluster create`, and waits until every node reports `cluster_state:ok`.
    pub fn start(cpu: Option<&'static str>) -> Result<RedisCluster> {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = free_port(true)?;
            let args = [
                "--save",
                "",
                "--appendonly",
                "no",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            ];
            nodes.push(Redis::launch(
                port,
                args.iter().map(|s| s.to_string()).collect(),
                cpu,
            )?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        redis_cli(
            Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(&addrs)
                .args(["--cluster-replicas", "0", "--cluster-yes"]),
            &nodes[0].dir,
        )?;
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        for node in &nodes {
            loop {
                let info = node.cli(&["cluster", "info"]).unwrap_or_default();
                if info.lines().any(|l| l.trim() == "cluster_state:ok") {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "Redis Cluster not ok within {CLUSTER_TIMEOUT:?}; node {} says:\n{info}",
                        node.port
                    )
                    .into());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(RedisCluster { nodes })
    }
}

/// Runs a `redis-cli` command (bounded by [`CLI_TIMEOUT`], killed after it), its output in a
/// file under `dir`; returns the output, or an error with it.
fn redis_cli(cmd: &mut Command, dir: &std::path::Path) -> Result<String> {
    let out = dir.join("redis-cli.out");
    let file = std::fs::File::create(&out)?;
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stderr(file.try_clone()?)
        .stdout(file)
        .spawn()
        .map_err(|e| format!("cannot start redis-cli: {e}"))?;
    let deadline = Instant::now() + CLI_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "`{}` did not finish within {CLI_TIMEOUT:?}",
                crate::render(cmd)
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    if status.success() && !text.starts_with("ERR") && !text.contains("[ERR]") {
        Ok(text)
    } else {
        Err(format!(
            "`{}` failed ({status}): {}",
            crate::render(cmd),
            text.trim()
        )
        .into())
    }
}

/// A loopback port nobody listens on; with `bus`, port + [`BUS_OFFSET`] is free too (a
/// cluster node's bus port). Bounded: at most 200 tries.
pub fn free_port(bus: bool) -> Result<u16> {
    let bind = |port: u16| TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)));
    for _ in 0..200 {
        let listener = bind(0)?;
        let port = listener.local_addr()?.port();
        if !bus {
            return Ok(port);
        }
        if let Some(bus_port) = port.checked_add(BUS_OFFSET)
            && bind(bus_port).is_ok()
        {
            return Ok(port);
        }
    }
    Err("no free loopback port (with a free cluster bus port) in 200 tries".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_server_answers_and_keeps_nothing() {
        ensure_installed().unwrap();
        let r = Redis::start(Persistence::Off, None).unwrap();
        assert_eq!(r.cli(&["set", "k", "v"]).unwrap().trim(), "OK");
        assert_eq!(r.cli(&["get", "k"]).unwrap().trim(), "v");
        assert_eq!(
            r.cli(&["config", "get", "appendonly"]).unwrap(),
            "appendonly\nno\n"
        );
        assert!(r.cli(&["no-such-command"]).is_err());
    }

    #[test]
    fn aof_server_keeps_writes_across_a_restart() {
        ensure_installed().unwrap();
        let mut r = Redis::start(Persistence::Aof, None).unwrap();
        let url = r.url();
        assert_eq!(r.cli(&["rpush", "q", "a", "b"]).unwrap().trim(), "2");
        r.stop().unwrap();
        assert!(r.cli(&["ping"]).is_err(), "still answering after stop");
        r.restart().unwrap();
        assert_eq!(r.url(), url);
        assert_eq!(r.cli(&["lrange", "q", "0", "-1"]).unwrap(), "a\nb\n");
    }

    #[test]
    fn three_masters_form_a_cluster() {
        ensure_installed().unwrap();
        let c = RedisCluster::start(None).unwrap();
        assert_eq!(c.nodes.iter().filter_map(Redis::pid).count(), 3);
        let nodes = c.nodes[0].cli(&["cluster", "nodes"]).unwrap();
        assert_eq!(nodes.lines().filter(|l| l.contains("master")).count(), 3);
        // Every slot is served: a key written through one node is readable through the cluster.
        let mut slots_ok = 0;
        for key in ["a", "b", "c", "d", "e"] {
            let set = redis_cli(
                Command::new("redis-cli")
                    .args(["-c", "-h", "127.0.0.1", "-p", &c.nodes[1].port.to_string()])
                    .args(["set", key, "1"]),
                &c.nodes[1].dir,
            )
            .unwrap();
            slots_ok += usize::from(set.trim() == "OK");
        }
        assert_eq!(slots_ok, 5);
    }
}
