//! Real `redis-server` processes on free loopback ports (killed on drop), broker nodes with a
//! `ClusterBackend` each, and STOMP clients driving broker sessions in memory.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchboard_broker::{Broker, BrokerConfig, Session};
use switchboard_cluster::{ClusterBackend, ClusterConfig};
use switchboard_stomp::{Command, Frame, Limits, Parsed, Parser, Version};

/// Every wait in these tests ends by then.
pub const WAIT: Duration = Duration::from_secs(10);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn redis_server() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join("redis-server");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "redis-server is not on PATH: these tests run real Redis processes. `cargo xtask ci` \
         installs it (Debian: apt-get install redis-server redis-tools)."
    );
}

/// Sends one inline command and returns the reply text (bounded by a timeout).
pub fn redis_cmd(port: u16, cmd: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    // Bulk replies may come in pieces: read until the reply looks complete.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if complete(&out) {
            break;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn complete(b: &[u8]) -> bool {
    if b.first() == Some(&b'$') {
        let text = String::from_utf8_lossy(b);
        let Some((len, rest)) = text.split_once("\r\n") else {
            return false;
        };
        let len: i64 = len[1..].parse().unwrap_or(0);
        return len < 0 || rest.len() >= len as usize + 2;
    }
    b.ends_with(b"\r\n")
}

/// A `redis-server` child process, killed when dropped.
pub struct Redis {
    pub port: u16,
    pub dir: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Redis {
    /// A standalone Redis with AOF on (`appendfsync always`), data in a fresh directory.
    pub fn start() -> Redis {
        Redis::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    pub fn start_with(extra: &[&str]) -> Redis {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "switchboard-cluster-test-{}-{port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test directory");
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--daemonize",
            "no",
            "--dir",
            dir.to_str().expect("utf-8 temp dir"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut r = Redis {
            port,
            dir,
            args,
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Process::new(redis_server())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        loop {
            if redis_cmd(self.port, "PING").is_some_and(|r| r.starts_with("+PONG")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, then wait for the process.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and directory (AOF replayed).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn cmd(&self, cmd: &str) -> String {
        redis_cmd(self.port, cmd).unwrap_or_default()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three masters of a Redis Cluster, all on loopback, slots spread by `redis-cli --cluster
/// create`.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<Redis> = (0..3)
            .map(|_| {
                Redis::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                    "--appendonly",
                    "yes",
                ])
            })
            .collect();
        let mut create = Process::new("redis-cli");
        create.arg("--cluster").arg("create");
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create (redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + WAIT;
        for n in &nodes {
            loop {
                if n.cmd("CLUSTER INFO").contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster did not become ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    pub fn url(&self) -> String {
        self.nodes[0].url()
    }
}

/// One broker node.
pub struct Node {
    pub broker: Broker,
    pub backend: Arc<ClusterBackend>,
}

pub fn config(url: &str, id: &str) -> ClusterConfig {
    let mut c = ClusterConfig::new(url, id);
    c.poll_interval = Duration::from_millis(200);
    c.health_interval = Duration::from_millis(100);
    c.command_timeout = Duration::from_millis(1000);
    c.reconnect_max_delay = Duration::from_millis(300);
    c
}

impl Node {
    pub async fn start(url: &str, id: &str) -> Node {
        Node::start_with(config(url, id), BrokerConfig::default()).await
    }

    pub async fn start_with(config: ClusterConfig, broker_config: BrokerConfig) -> Node {
        let backend = Arc::new(
            ClusterBackend::connect(config, &broker_config)
                .await
                .expect("the node joins"),
        );
        let broker = Broker::builder(broker_config)
            .message_id_prefix(backend.message_id_prefix())
            .backend(backend.clone())
            .build();
        Node { broker, backend }
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.broker, None)
    }

    pub fn client_as(&self, login: &str) -> Client {
        Client::connect(&self.broker, Some(login))
    }
}

/// A STOMP client driving one broker session in memory.
pub struct Client {
    pub session: Session,
    parser: Parser,
    buf: BytesMut,
    pub inbox: VecDeque<Frame>,
}

impl Client {
    fn connect(broker: &Broker, login: Option<&str>) -> Client {
        let now = Instant::now();
        let session = broker.open_session(now);
        let mut c = Client {
            session,
            parser: Parser::new(Version::V1_2, Limits::default()),
            buf: BytesMut::new(),
            inbox: VecDeque::new(),
        };
        let mut f = Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "localhost");
        if let Some(l) = login {
            f = f.header("login", l).header("passcode", "x");
        }
        c.frame(f);
        let connected = c.inbox.pop_front().expect("CONNECTED");
        assert_eq!(connected.command, Command::Connected);
        c
    }

    pub fn frame(&mut self, f: Frame) {
        self.session.handle_frame(f, Instant::now());
        self.pump();
    }

    pub fn subscribe(&mut self, id: &str, dest: &str, ack: &str) {
        self.frame(
            Frame::new(Command::Subscribe)
                .header("id", id)
                .header("destination", dest)
                .header("ack", ack),
        );
    }

    pub fn subscribe_prefetch(&mut self, id: &str, dest: &str, prefetch: u32) {
        self.frame(
            Frame::new(Command::Subscribe)
                .header("id", id)
                .header("destination", dest)
                .header("ack", "client-individual")
                .header("prefetch-count", prefetch.to_string()),
        );
    }

    pub fn send(&mut self, dest: &str, body: &str) {
        self.frame(
            Frame::new(Command::Send)
                .header("destination", dest)
                .body(body.to_owned()),
        );
    }

    pub fn ack(&mut self, msg: &Frame) {
        let id = msg.get("ack").expect("ack header").to_owned();
        self.frame(Frame::new(Command::Ack).header("id", id));
    }

    pub fn nack(&mut self, msg: &Frame) {
        let id = msg.get("ack").expect("ack header").to_owned();
        self.frame(Frame::new(Command::Nack).header("id", id));
    }

    /// Sends a SEND and returns the `message` of the ERROR it got, if any (the session then
    /// closes).
    pub fn send_refused(&mut self, dest: &str, body: &str) -> Option<String> {
        self.frame_refused(
            Frame::new(Command::Send)
                .header("destination", dest)
                .body(body.to_owned()),
        )
    }

    /// Hands `f` to the session; the `message` of the ERROR it got, if any.
    pub fn frame_refused(&mut self, f: Frame) -> Option<String> {
        self.session.handle_frame(f, Instant::now());
        let now = Instant::now();
        let mut error = None;
        while let Some(out) = self.session.poll_transmit(now) {
            out.write_to(&mut self.buf);
            while let Ok(Some(Parsed::Frame(f))) = self.parser.parse(&mut self.buf) {
                if f.command == Command::Error {
                    error = f.get("message").map(str::to_owned);
                }
            }
        }
        error
    }

    pub fn pump(&mut self) {
        let now = Instant::now();
        while let Some(out) = self.session.poll_transmit(now) {
            out.write_to(&mut self.buf);
            loop {
                match self.parser.parse(&mut self.buf) {
                    Ok(Some(Parsed::Frame(f))) => {
                        assert_ne!(f.command, Command::Error, "ERROR from the broker: {f:?}");
                        self.inbox.push_back(f);
                    }
                    Ok(Some(Parsed::HeartBeat)) => {}
                    Ok(None) => break,
                    Err(e) => panic!("broker sent bytes the parser rejects: {e}"),
                }
            }
        }
    }

    /// Takes MESSAGE frames that arrived (pumping the session).
    pub fn take(&mut self) -> Vec<Frame> {
        self.pump();
        let mut v = Vec::new();
        while let Some(f) = self.inbox.pop_front() {
            if f.command == Command::Message {
                v.push(f);
            }
        }
        v
    }
}

pub fn body(f: &Frame) -> String {
    String::from_utf8_lossy(&f.body).into_owned()
}

/// Collects messages on `clients` until `done(total so far)` holds or `WAIT` passes, then for a
/// further `settle` to catch duplicates. Returns what each client got.
pub async fn collect(
    clients: &mut [&mut Client],
    settle: Duration,
    done: impl Fn(usize) -> bool,
) -> Vec<Vec<Frame>> {
    let mut got: Vec<Vec<Frame>> = clients.iter().map(|_| Vec::new()).collect();
    let deadline = Instant::now() + WAIT;
    loop {
        for (i, c) in clients.iter_mut().enumerate() {
            got[i].extend(c.take());
        }
        let total: usize = got.iter().map(Vec::len).sum();
        if done(total) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let until = Instant::now() + settle;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        for (i, c) in clients.iter_mut().enumerate() {
            got[i].extend(c.take());
        }
    }
    got
}

/// Waits (bounded) until `f` holds.
pub async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
