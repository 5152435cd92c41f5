//! Sessions never leak: 10,000 sessions opened and abandoned over the HTTP transports (xhr
//! polls, xhr_streaming aborted mid-stream, eventsource aborted, jsonp polls), with a short
//! disconnect delay, are all reaped and every session object is freed (exact counts).

mod common;
use common::*;

use std::time::Duration;

use switchboard_sockjs::{Config, SockJs};

const SESSIONS: usize = 10_000;
const WORKERS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_abandoned_sessions_are_all_reaped() {
    let ep = SockJs::new(
        Config::default()
            .prefix("/s")
            .disconnect_delay(Duration::from_millis(200)),
        echo,
    );
    let a = serve(vec![ep.clone()]).await;
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        tasks.push(tokio::spawn(async move {
            // Polling requests reuse one keep-alive connection per worker.
            let mut keep = Conn::open(a).await;
            for i in (w..SESSIONS).step_by(WORKERS) {
                let url = format!("/s/000/w{w}-{i}");
                match i % 4 {
                    0 => {
                        keep.send("POST", &format!("{url}/xhr"), "1.1", &[], b"")
                            .await;
                        let h = keep.head().await;
                        assert_eq!(keep.body(&h).await, b"o\n");
                        // Leave a message queued that nobody will ever poll for.
                        keep.send("POST", &format!("{url}/xhr_send"), "1.1", &[], br#"["x"]"#)
                            .await;
                        let h = keep.head().await;
                        assert_eq!(h.status, 204);
                    }
                    1 => {
                        let (mut c, h) =
                            stream(a, "POST", &format!("{url}/xhr_streaming"), &[]).await;
                        assert_eq!(h.status, 200);
                        c.chunk().await.unwrap();
                        assert_eq!(c.chunk().await.unwrap(), b"o\n");
                        drop(c); // aborted mid-stream
                    }
                    2 => {
                        let (mut c, h) = stream(a, "GET", &format!("{url}/eventsource"), &[]).await;
                        assert_eq!(h.status, 200);
                        c.chunk().await.unwrap();
                        assert_eq!(c.chunk().await.unwrap(), b"data: o\r\n\r\n");
                        drop(c);
                    }
                    _ => {
                        keep.send("GET", &format!("{url}/jsonp?c=cb"), "1.1", &[], b"")
                            .await;
                        let h = keep.head().await;
                        assert_eq!(keep.body(&h).await, b"/**/cb(\"o\");\r\n");
                    }
                }
            }
        }));
    }
    for t in tasks {
        within(t).await.unwrap();
    }
    let opened: u64 = ep.metrics().opened_total.iter().map(|(_, n)| n).sum();
    assert_eq!(opened, SESSIONS as u64);
    // Bounded wait (at most 30 s) for the reaper; every figure must reach exactly zero.
    let mut m = ep.metrics();
    for _ in 0..300 {
        m = ep.metrics();
        if m.open_total() == 0 && m.sessions == 0 && m.live_session_objects == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(m.open_total(), 0, "{m:?}");
    assert_eq!(m.sessions, 0, "{m:?}");
    assert_eq!(m.live_session_objects, 0, "{m:?}");
    assert_eq!(m.timed_out, SESSIONS as u64);
}
