//! A small STOMP load probe: one publisher, S subscribers of one topic, over TCP.
//!
//! ```sh
//! cargo run --release -p switchboard-server                       # in one terminal
//! cargo run --release -p switchboard-server --example stomp_load -- 127.0.0.1:61613 \
//!     --msgs 200000 --size 100 --subs 4 --window 1000
//! ```
//!
//! The publisher keeps at most `--window` messages in flight (sent but not yet received by every
//! subscriber), so subscribers are never dropped as slow consumers; it prints delivered
//! messages per second and the payload rate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use switchboard_stomp::{Command, Frame, Limits, Parsed, Parser, Version, encode_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

struct Args {
    addr: SocketAddr,
    msgs: u64,
    size: usize,
    subs: usize,
    window: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let addr = it
        .next()
        .ok_or("usage: stomp_load ADDR [--msgs N] [--size B] [--subs S] [--window W]")?
        .parse()
        .map_err(|e| format!("address: {e}"))?;
    let mut args = Args {
        addr,
        msgs: 100_000,
        size: 100,
        subs: 1,
        window: 1000,
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let n: u64 = value.parse().map_err(|e| format!("{flag}: {e}"))?;
        match flag.as_str() {
            "--msgs" => args.msgs = n,
            "--size" => args.size = n as usize,
            "--subs" => args.subs = n.max(1) as usize,
            "--window" => args.window = n.max(1),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

struct Conn {
    io: TcpStream,
    buf: BytesMut,
    parser: Parser,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let io = TcpStream::connect(addr).await?;
        io.set_nodelay(true)?;
        let mut c = Conn {
            io,
            buf: BytesMut::with_capacity(64 * 1024),
            parser: Parser::new(Version::V1_2, Limits::default().with_max_body(64 << 20)),
        };
        c.send(
            &Frame::new(Command::Connect)
                .header("accept-version", "1.2")
                .header("host", "localhost"),
        )
        .await?;
        let f = c.recv().await?;
        if f.command != Command::Connected {
            return Err(std::io::Error::other(format!("no CONNECTED: {f:?}")));
        }
        Ok(c)
    }

    async fn send(&mut self, f: &Frame) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        encode_frame(f, Version::V1_2, &mut out).map_err(std::io::Error::other)?;
        self.io.write_all(&out).await
    }

    async fn recv(&mut self) -> std::io::Result<Frame> {
        loop {
            match self.parser.parse(&mut self.buf) {
                Ok(Some(Parsed::Frame(f))) => return Ok(f),
                Ok(Some(Parsed::HeartBeat)) => continue,
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let received = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for i in 0..args.subs {
        let mut c = Conn::open(args.addr).await?;
        c.send(
            &Frame::new(Command::Subscribe)
                .header("destination", "/topic/load")
                .header("id", i.to_string())
                .header("receipt", "subscribed"),
        )
        .await?;
        let r = c.recv().await?;
        if r.command != Command::Receipt {
            return Err(format!("subscribe failed: {r:?}").into());
        }
        let (received, progress, msgs) = (received.clone(), progress.clone(), args.msgs);
        tasks.push(tokio::spawn(async move {
            for _ in 0..msgs {
                let f = c.recv().await?;
                if f.command != Command::Message {
                    return Err(std::io::Error::other(format!("unexpected {f:?}")));
                }
                received.fetch_add(1, Ordering::Relaxed);
                progress.notify_one();
            }
            Ok::<(), std::io::Error>(())
        }));
    }
    let mut publisher = Conn::open(args.addr).await?;
    let body = Bytes::from(vec![b'x'; args.size]);
    let mut one = BytesMut::new();
    encode_frame(
        &Frame::new(Command::Send)
            .header("destination", "/topic/load")
            .body(body),
        Version::V1_2,
        &mut one,
    )?;
    let subs = args.subs as u64;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut batch = BytesMut::new();
    while sent < args.msgs {
        // Wait until fewer than `window` messages are in flight to every subscriber.
        while sent * subs - received.load(Ordering::Relaxed) >= args.window * subs {
            let _ = tokio::time::timeout(Duration::from_millis(50), progress.notified()).await;
        }
        let room = args.window - (sent * subs - received.load(Ordering::Relaxed)) / subs;
        let n = room.min(args.msgs - sent).min(256);
        batch.clear();
        for _ in 0..n {
            batch.extend_from_slice(&one);
        }
        publisher.io.write_all(&batch).await?;
        sent += n;
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let delivered = args.msgs * subs;
    println!(
        "{} msgs x {} B to {} subscriber(s) in {:.2} s: {:.0} deliveries/s, {:.1} MB/s of payload",
        args.msgs,
        args.size,
        args.subs,
        secs,
        delivered as f64 / secs,
        (delivered as f64 * args.size as f64) / secs / 1e6
    );
    Ok(())
}
