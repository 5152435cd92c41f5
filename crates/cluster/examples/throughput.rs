//! Rough throughput of two nodes sharing one Redis: topic messages published on node A and
//! delivered to a subscriber on node B, and queue messages sent on A, consumed and acked on B.
//!
//! ```text
//! redis-server --port 6390 --save "" &
//! cargo run --release -p switchboard-cluster --example throughput -- redis://127.0.0.1:6390 20000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use switchboard_broker::{Broker, BrokerConfig, Session};
use switchboard_cluster::{ClusterBackend, ClusterConfig};
use switchboard_stomp::{Command, Frame, Limits, Parsed, Parser, Version};

struct Client {
    session: Session,
    parser: Parser,
    buf: BytesMut,
}

impl Client {
    fn new(broker: &Broker) -> Client {
        let mut c = Client {
            session: broker.open_session(Instant::now()),
            parser: Parser::new(Version::V1_2, Limits::default()),
            buf: BytesMut::new(),
        };
        c.frame(
            Frame::new(Command::Connect)
                .header("accept-version", "1.2")
                .header("host", "x"),
        );
        c.drain(|_| {});
        c
    }

    fn frame(&mut self, f: Frame) {
        self.session.handle_frame(f, Instant::now());
    }

    /// Hands every MESSAGE waiting to `f`; returns how many.
    fn drain(&mut self, mut f: impl FnMut(&Frame)) -> usize {
        let mut n = 0;
        while let Some(out) = self.session.poll_transmit(Instant::now()) {
            out.write_to(&mut self.buf);
            while let Ok(Some(p)) = self.parser.parse(&mut self.buf) {
                if let Parsed::Frame(fr) = p
                    && fr.command == Command::Message
                {
                    f(&fr);
                    n += 1;
                }
            }
        }
        n
    }
}

async fn node(url: &str, id: &str) -> (Broker, Arc<ClusterBackend>) {
    let bc = BrokerConfig::default();
    let backend = Arc::new(
        ClusterBackend::connect(ClusterConfig::new(url, id), &bc)
            .await
            .expect("Redis reachable"),
    );
    let broker = Broker::builder(bc)
        .message_id_prefix(backend.message_id_prefix())
        .backend(backend.clone())
        .build();
    (broker, backend)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let (a, ba) = node(&url, "bench-a").await;
    let (b, bb) = node(&url, "bench-b").await;
    let body = "x".repeat(100);

    // Topic: A publishes, B's subscriber receives; the publisher is paced by what has arrived
    // (at most `window` in flight) so nothing is dropped as a slow consumer.
    let mut sub = Client::new(&b);
    sub.frame(
        Frame::new(Command::Subscribe)
            .header("id", "0")
            .header("destination", "/topic/bench"),
    );
    bb.sync().await;
    let mut publisher = Client::new(&a);
    let window = 2_000;
    let start = Instant::now();
    let (mut sent, mut got) = (0, 0);
    let deadline = start + Duration::from_secs(120);
    while got < n && Instant::now() < deadline {
        while sent < n && sent - got < window {
            publisher.frame(
                Frame::new(Command::Send)
                    .header("destination", "/topic/bench")
                    .body(body.clone()),
            );
            sent += 1;
        }
        got += sub.drain(|_| {});
        tokio::task::yield_now().await;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "topic A->B: {got}/{n} messages of 100 B in {secs:.2} s = {:.0} msgs/s",
        got as f64 / secs
    );

    // Queue: A sends, B consumes with client-individual acks (prefetch 100).
    let mut consumer = Client::new(&b);
    consumer.frame(
        Frame::new(Command::Subscribe)
            .header("id", "1")
            .header("destination", "/queue/bench")
            .header("ack", "client-individual")
            .header("prefetch-count", "100"),
    );
    // Paced like the topic run: at most `window` sent and not yet received (a queue refuses
    // SENDs beyond its max_length, 10 000 by default).
    let start = Instant::now();
    let (mut sent, mut got) = (0, 0);
    let deadline = start + Duration::from_secs(120);
    while got < n && Instant::now() < deadline {
        while sent < n && sent - got < window {
            publisher.frame(
                Frame::new(Command::Send)
                    .header("destination", "/queue/bench")
                    .body(body.clone()),
            );
            sent += 1;
        }
        let mut acks = Vec::new();
        got += consumer.drain(|m| acks.push(m.get("ack").unwrap_or("").to_owned()));
        for id in acks {
            consumer.frame(Frame::new(Command::Ack).header("id", id));
        }
        tokio::task::yield_now().await;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "queue A->B (acked): {got}/{n} messages of 100 B in {secs:.2} s = {:.0} msgs/s",
        got as f64 / secs
    );
    let (sa, sb) = (ba.stats(), bb.stats());
    println!(
        "node a: published {} lost {}; node b: received {} lost {}",
        sa.published, sa.lost, sb.received, sb.lost
    );
    ba.shutdown().await;
    bb.shutdown().await;
}
