//! Cluster mode end to end: two in-process servers sharing a real `redis-server`; STOMP over
//! TCP on both, `/healthz` and `/metrics` through a Redis outage.
#![cfg(feature = "cluster")]

mod common;

use std::net::TcpListener;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use common::{StompClient, WAIT, http_get, metric, send_frame, start, test_config};

/// A `redis-server` on a free loopback port with AOF, killed on drop.
struct Redis {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let dir = std::env::temp_dir().join(format!("switchboard-server-cluster-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let mut r = Redis {
            port,
            dir,
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Process::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server must be on PATH for the cluster tests (`cargo xtask ci` installs it)",
            );
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn node_config(redis: &Redis, id: &str) -> switchboard_server::Config {
    let mut c = test_config();
    c.cluster.url = Some(format!("redis://127.0.0.1:{}", redis.port));
    c.cluster.node_id = Some(id.to_owned());
    c.cluster.command_timeout_ms = 500;
    c.cluster.health_interval_ms = 100;
    c.cluster.reconnect_max_delay_ms = 200;
    c
}

async fn healthz_until(addr: std::net::SocketAddr, want: u16) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(addr, "/healthz", "").await;
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz stayed {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_topics_and_report_redis_outages() {
    let mut redis = Redis::start();
    let a = start(node_config(&redis, "node-a")).await;
    let b = start(node_config(&redis, "node-b")).await;
    let mut sub = StompClient::tcp(a.stomp()).await;
    sub.connect().await;
    sub.subscribe("/topic/hello", "s").await;
    // The subscription reaches Redis asynchronously: publish until the first one arrives.
    let mut pubc = StompClient::tcp(b.stomp()).await;
    pubc.connect().await;
    let deadline = Instant::now() + WAIT;
    let first = loop {
        pubc.send(send_frame("/topic/hello", "from b")).await;
        if let Ok(f) = tokio::time::timeout(Duration::from_millis(200), sub.recv()).await {
            break f;
        }
        assert!(Instant::now() < deadline, "nothing crossed the cluster");
    };
    assert_eq!(&first.body[..], b"from b");
    // Copies sent before the subscription was in place never come; later ones may still.
    while tokio::time::timeout(Duration::from_millis(300), sub.recv())
        .await
        .is_ok()
    {}
    assert!(first.get("message-id").unwrap().starts_with("node-b-"));

    // The chat handler runs on the node that got the SEND; what it publishes crosses too.
    sub.subscribe("/topic/messages", "chat").await;
    let deadline = Instant::now() + WAIT;
    let chat = loop {
        let mut f = send_frame("/app/chat", "");
        f.body = bytes::Bytes::from_static(br#"{"from":"bob","text":"hi from b"}"#);
        pubc.send(f).await;
        if let Ok(f) = tokio::time::timeout(Duration::from_millis(200), sub.recv()).await {
            break f;
        }
        assert!(Instant::now() < deadline, "the chat message did not cross");
    };
    let text = String::from_utf8_lossy(&chat.body).into_owned();
    assert!(text.contains("\"text\":\"hi from b\""), "{text}");
    assert!(text.contains("\"time\""), "{text}");
    while tokio::time::timeout(Duration::from_millis(300), sub.recv())
        .await
        .is_ok()
    {}

    let body = healthz_until(a.http(), 200).await;
    assert!(body.ends_with("ok\n"));
    let (_, text) = http_get(a.http(), "/metrics", "").await;
    assert_eq!(metric(&text, "switchboard_cluster_up"), Some(1));
    assert!(metric(&text, "switchboard_cluster_received_total").unwrap_or(0) >= 1);

    redis.kill();
    let body = healthz_until(a.http(), 503).await;
    let line = body.lines().last().unwrap_or("");
    assert!(line.starts_with("backend down:"), "{body}");
    let (_, text) = http_get(a.http(), "/metrics", "").await;
    assert_eq!(metric(&text, "switchboard_cluster_up"), Some(0));
    // Local traffic still flows on a node without Redis.
    let mut local = StompClient::tcp(a.stomp()).await;
    local.connect().await;
    local.send(send_frame("/topic/hello", "local")).await;
    let f = sub.recv().await;
    assert_eq!(&f.body[..], b"local");

    redis.spawn();
    healthz_until(a.http(), 200).await;
    healthz_until(b.http(), 200).await;
    let (_, text) = http_get(a.http(), "/metrics", "").await;
    assert!(metric(&text, "switchboard_cluster_reconnects_total").unwrap_or(0) >= 1);
    // Resubscribed: traffic crosses again.
    let deadline = Instant::now() + WAIT;
    loop {
        pubc.send(send_frame("/topic/hello", "again")).await;
        if let Ok(f) = tokio::time::timeout(Duration::from_millis(200), sub.recv()).await
            && &f.body[..] == b"again"
        {
            break;
        }
        assert!(Instant::now() < deadline, "no traffic after the reconnect");
    }
    a.shutdown().await;
    b.shutdown().await;
}
