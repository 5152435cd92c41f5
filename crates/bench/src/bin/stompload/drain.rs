//! **Backlog drain** (`stompload drain`): how a broker hands a queue that already holds `N`
//! messages to a consumer that subscribes afterwards — the case where a broker without flow
//! control toward its sessions pushes the whole backlog at once and then treats the new consumer
//! as a slow one.
//!
//! ```text
//! stompload drain [--messages N] [--size BYTES] [--ack auto|client-individual] [--dest DEST]
//!                 [--login L] [--passcode P] [--threads T] HOST:PORT
//! ```
//!
//! 1. **Fill**: one producer sends `N` messages (default 10 000, `BYTES` each, default 128) to
//!    `DEST` (default `/queue/drain-<pid>-<nanos>`, a queue of its own) with nobody subscribed.
//!    Every 500th SEND and the last one ask for a RECEIPT, and the producer never has more than
//!    two receipts outstanding, so the broker has accepted every message before the drain starts.
//! 2. **Drain**: one consumer subscribes the way a stock client does by default (`ack:auto`, no
//!    prefetch header; `--ack client-individual` ACKs every MESSAGE on its own) and reads until
//!    it has `N` messages, the broker sends an ERROR or closes, or no frame comes for
//!    [`IO_TIMEOUT`](super::IO_TIMEOUT).
//!
//! Each body starts with its sequence number, so the drain checks order and counts duplicates.
//! It prints the fill and drain rates and one `RESULT mode=drain ...` line, and **fails** (exit
//! status 2, after the `RESULT` line) unless all `N` arrived, in order, without an ERROR.

use super::{Ack, Conn, IO_TIMEOUT, Result, USAGE, describe, number, value};
use bytes::{Buf, BufMut, BytesMut};
use switchboard_stomp::{Command, Frame, Version, encode_frame};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// Flags of `stompload drain`.
#[derive(Debug, Clone)]
pub(crate) struct DrainArgs {
    addr: String,
    messages: u64,
    size: usize,
    ack: Ack,
    dest: String,
    login: Option<String>,
    passcode: Option<String>,
}

/// A producer asks for a RECEIPT every this many SENDs.
const RECEIPT_EVERY: u64 = 500;
/// Bytes of a body that carry its sequence number (little-endian).
const SEQ: usize = 8;

pub(crate) fn parse_drain(argv: &[String]) -> Result<DrainArgs> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut a = DrainArgs {
        addr: String::new(),
        messages: 10_000,
        size: 128,
        ack: Ack::Auto,
        dest: format!("/queue/drain-{}-{nanos}", std::process::id()),
        login: None,
        passcode: None,
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--messages" => a.messages = number(value(&mut it, arg)?, arg)?,
            "--size" => a.size = number(value(&mut it, arg)?, arg)?,
            "--dest" => a.dest = value(&mut it, arg)?.clone(),
            "--login" => a.login = Some(value(&mut it, arg)?.clone()),
            "--passcode" => a.passcode = Some(value(&mut it, arg)?.clone()),
            // Accepted for `cargo xtask load`, which passes it to every form: one connection at
            // a time, one worker thread.
            "--threads" => {
                number::<usize>(value(&mut it, arg)?, arg)?;
            }
            "--ack" => {
                a.ack = match value(&mut it, arg)?.as_str() {
                    "auto" => Ack::Auto,
                    "client-individual" => Ack::ClientIndividual,
                    other => {
                        return Err(format!("--ack: auto or client-individual, not {other}").into());
                    }
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other if other.starts_with("--") => {
                return Err(format!("unknown flag {other}\n{USAGE}").into());
            }
            other => a.addr = other.to_owned(),
        }
    }
    if a.addr.is_empty() {
        return Err(format!("no broker address\n{USAGE}").into());
    }
    if a.messages == 0 || a.messages > 100_000_000 || !(SEQ..=16 << 20).contains(&a.size) {
        return Err(format!(
            "--messages must be in 1..=100000000 and --size in {SEQ}..={}",
            16 << 20
        )
        .into());
    }
    Ok(a)
}

/// How long a drain run may take: connecting, and each message bounded by the broker's pace.
pub(crate) fn budget(a: &DrainArgs) -> std::time::Duration {
    // Generous: 2 µs per message would be 500k msgs/s; allow 200 µs (5k msgs/s) per message.
    IO_TIMEOUT * 4 + std::time::Duration::from_micros(200) * a.messages as u32
}

/// Sends `a.messages` messages with bounded receipts outstanding; returns the seconds it took.
async fn fill(a: &DrainArgs) -> Result<f64> {
    let mut c = Conn::open(&a.addr, a.login.as_deref(), a.passcode.as_deref()).await?;
    let started = Instant::now();
    let mut out = BytesMut::new();
    let mut outstanding = std::collections::VecDeque::new();
    let filler = vec![b'x'; a.size - SEQ];
    for seq in 0..a.messages {
        let mut body = BytesMut::with_capacity(a.size);
        body.put_u64_le(seq);
        body.extend_from_slice(&filler);
        let mut f = Frame::new(Command::Send)
            .header("destination", a.dest.clone())
            .header("content-type", "application/octet-stream")
            .body(body.freeze());
        let last = seq + 1 == a.messages;
        if last || (seq + 1).is_multiple_of(RECEIPT_EVERY) {
            f = f.header("receipt", seq.to_string());
            outstanding.push_back(seq.to_string());
        }
        encode_frame(&f, Version::V1_2, &mut out)?;
        if last || out.len() >= 64 * 1024 || outstanding.len() > 2 {
            c.io.write_all(&out).await?;
            out.clear();
        }
        while outstanding.len() > 2 || (last && !outstanding.is_empty()) {
            let reply = c.next_frame().await?;
            match reply.command {
                Command::Receipt => {
                    let id = reply.get("receipt-id").unwrap_or("");
                    if outstanding.front().map(String::as_str) == Some(id) {
                        outstanding.pop_front();
                    } else {
                        return Err(format!("unexpected RECEIPT {id}").into());
                    }
                }
                Command::Error => {
                    return Err(format!("fill refused: {}", describe(&reply)).into());
                }
                _ => {}
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = c.send(&Frame::new(Command::Disconnect)).await;
    Ok(secs)
}

/// What the consumer saw.
struct Drained {
    received: u64,
    out_of_order: u64,
    duplicates: u64,
    error: Option<String>,
    secs: f64,
}

async fn drain_queue(a: &DrainArgs) -> Result<Drained> {
    let mut c = Conn::open(&a.addr, a.login.as_deref(), a.passcode.as_deref()).await?;
    let mut f = Frame::new(Command::Subscribe)
        .header("id", "0")
        .header("destination", a.dest.clone());
    if a.ack == Ack::ClientIndividual {
        f = f.header("ack", "client-individual");
    }
    c.send(&f).await?;
    let started = Instant::now();
    let mut d = Drained {
        received: 0,
        out_of_order: 0,
        duplicates: 0,
        error: None,
        secs: 0.0,
    };
    // One bit per sequence number: duplicates are told apart from gaps.
    let mut seen = vec![0u64; (a.messages as usize).div_ceil(64)];
    let mut next = 0u64;
    let mut acks = BytesMut::new();
    while d.received < a.messages {
        let f = match c.next_frame_flushing(&mut acks).await {
            Ok(f) => f,
            Err(e) => {
                d.error = Some(e.to_string());
                break;
            }
        };
        match f.command {
            Command::Message => {
                if a.ack == Ack::ClientIndividual {
                    let Some(id) = f.get("ack") else {
                        d.error = Some("a client-individual MESSAGE without an ack header".into());
                        break;
                    };
                    encode_frame(
                        &Frame::new(Command::Ack).header("id", id.to_owned()),
                        Version::V1_2,
                        &mut acks,
                    )?;
                }
                if f.body.len() < SEQ {
                    d.error = Some("a MESSAGE shorter than its sequence number".into());
                    break;
                }
                let seq = (&f.body[..SEQ]).get_u64_le();
                let Some(word) = seen.get_mut((seq / 64) as usize) else {
                    d.error = Some(format!("a MESSAGE with sequence number {seq} never sent"));
                    break;
                };
                if *word & (1 << (seq % 64)) != 0 {
                    d.duplicates += 1;
                    continue;
                }
                *word |= 1 << (seq % 64);
                if seq != next {
                    d.out_of_order += 1;
                }
                next = seq + 1;
                d.received += 1;
            }
            Command::Error => {
                d.error = Some(describe(&f));
                break;
            }
            _ => {}
        }
    }
    d.secs = started.elapsed().as_secs_f64();
    if !acks.is_empty() {
        let _ = c.io.write_all(&acks).await;
    }
    let _ = c.send(&Frame::new(Command::Disconnect)).await;
    Ok(d)
}

pub(crate) async fn drain(a: DrainArgs) -> Result {
    let fill_secs = fill(&a).await?;
    let d = drain_queue(&a).await?;
    let fill_rate = a.messages as f64 / fill_secs.max(1e-9);
    let drain_rate = d.received as f64 / d.secs.max(1e-9);
    println!(
        "drain {} ({} B, ack {}): filled in {fill_secs:.2} s ({fill_rate:.0} msgs/s); \
         received {} of {} in {:.2} s ({drain_rate:.0} msgs/s), {} out of order, {} duplicates{}",
        a.dest,
        a.size,
        a.ack.as_str(),
        d.received,
        a.messages,
        d.secs,
        d.out_of_order,
        d.duplicates,
        d.error
            .as_ref()
            .map_or(String::new(), |e| format!("; stopped: {e}"))
    );
    // The error text goes last and is the rest of the line (it may hold spaces).
    println!(
        "RESULT mode=drain messages={} size={} ack={} fill_per_sec={fill_rate:.0} received={} \
         drain_secs={:.3} drain_per_sec={drain_rate:.0} out_of_order={} duplicates={} error={}",
        a.messages,
        a.size,
        a.ack.as_str(),
        d.received,
        d.secs,
        d.out_of_order,
        d.duplicates,
        d.error
            .as_deref()
            .unwrap_or("none")
            .replace(char::is_whitespace, "_")
    );
    if d.received == a.messages && d.out_of_order == 0 && d.duplicates == 0 && d.error.is_none() {
        Ok(())
    } else {
        Err("the backlog did not drain completely and in order".into())
    }
}
