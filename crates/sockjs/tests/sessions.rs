//! Session lifetime and limits over loopback: disconnect delay, heartbeats, queue limit,
//! max_sessions, origin policy, close_all, body size limit, the Connection API.

mod common;
use common::*;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_sockjs::{Config, Connection, SockJs, Transport};

#[tokio::test]
async fn disconnect_delay_reaps_and_xhr_send_does_not_refresh_it() {
    let ep = SockJs::new(
        Config::default()
            .prefix("/s")
            .disconnect_delay(Duration::from_millis(300)),
        echo,
    );
    let a = serve(vec![ep.clone()]).await;
    let url = format!("/s{}", session());
    assert_eq!(post(a, &format!("{url}/xhr"), b"").await.text(), "o\n");
    // Sends keep succeeding but do not keep the session alive.
    let mut saw_404 = false;
    for _ in 0..200 {
        let r = post(a, &format!("{url}/xhr_send"), b"[]").await;
        if r.status() == 404 {
            saw_404 = true;
            break;
        }
        assert_eq!(r.status(), 204);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_404, "the session was never reaped");
    let m = ep.metrics();
    assert_eq!(m.timed_out, 1);
    assert_eq!(m.open_total(), 0);
    // A receiving request for the same id opens a fresh session.
    assert_eq!(post(a, &format!("{url}/xhr"), b"").await.text(), "o\n");
}

#[tokio::test]
async fn reaped_session_ends_recv() {
    let got: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>> = Arc::default();
    let (tx, rx) = tokio::sync::oneshot::channel();
    *got.lock().unwrap() = Some(tx);
    let g = got.clone();
    let ep = SockJs::new(
        Config::default()
            .prefix("/s")
            .disconnect_delay(Duration::from_millis(100)),
        move |c: Connection| {
            let g = g.clone();
            tokio::spawn(async move {
                assert_eq!(c.recv().await, None);
                assert!(c.is_closed());
                assert!(c.send("x").is_err());
                if let Some(tx) = g.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            });
        },
    );
    let a = serve(vec![ep]).await;
    assert_eq!(
        post(a, &format!("/s{}/xhr", session()), b"").await.text(),
        "o\n"
    );
    within(rx).await.unwrap();
}

#[tokio::test]
async fn idle_poll_gets_heartbeat() {
    let ep = SockJs::new(
        Config::default()
            .prefix("/s")
            .heartbeat(Duration::from_millis(100)),
        echo,
    );
    let a = serve(vec![ep]).await;
    let url = format!("/s{}", session());
    assert_eq!(post(a, &format!("{url}/xhr"), b"").await.text(), "o\n");
    assert_eq!(post(a, &format!("{url}/xhr"), b"").await.text(), "h\n");
}

#[tokio::test]
async fn application_traffic_suppresses_heartbeats() {
    // The application sends every 20 ms; the heartbeat interval is 200 ms: no `h` ever.
    let ep = SockJs::new(
        Config::default()
            .prefix("/s")
            .heartbeat(Duration::from_millis(200)),
        |c: Connection| {
            tokio::spawn(async move {
                for i in 0..40 {
                    if c.send(format!("{i}")).is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        },
    );
    let a = serve(vec![ep]).await;
    let (mut c, _) = stream(a, "POST", &format!("/s{}/xhr_streaming", session()), &[]).await;
    c.chunk().await.unwrap();
    assert_eq!(c.chunk().await.unwrap(), b"o\n");
    let mut frames = 0;
    while frames < 30 {
        let f = c.chunk().await.unwrap();
        assert!(f.starts_with(b"a["), "{:?}", String::from_utf8_lossy(&f));
        frames += 1;
    }
}

#[tokio::test]
async fn queue_limit_closes_a_session_whose_client_stopped_polling() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = Mutex::new(Some(tx));
    let ep = SockJs::new(
        Config::default().prefix("/s").max_queued_bytes(1000),
        move |c: Connection| {
            let tx = tx.lock().unwrap().take();
            tokio::spawn(async move {
                let mut sent = 0usize;
                loop {
                    if c.send("x".repeat(100)).is_err() {
                        break;
                    }
                    sent += 1;
                    assert!(c.buffered_bytes() <= 1000);
                    assert!(sent < 100, "the queue grew without bound");
                }
                assert!(c.is_closed());
                if let Some(tx) = tx {
                    let _ = tx.send(sent);
                }
            });
        },
    );
    let a = serve(vec![ep.clone()]).await;
    let url = format!("/s{}", session());
    assert_eq!(post(a, &format!("{url}/xhr"), b"").await.text(), "o\n");
    let sent = within(rx).await.unwrap();
    assert_eq!(sent, 9);
    assert_eq!(ep.metrics().closed_queue_full, 1);
    // A late poll learns why.
    assert_eq!(
        post(a, &format!("{url}/xhr"), b"").await.text(),
        "c[1009,\"Message queue full\"]\n"
    );
}

#[tokio::test]
async fn drained_resolves_when_a_receiver_takes_the_queue() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = Mutex::new(Some(tx));
    let ep = SockJs::new(Config::default().prefix("/s"), move |c: Connection| {
        let tx = tx.lock().unwrap().take();
        tokio::spawn(async move {
            // Wait for the open frame to be taken, then queue.
            c.drained(1).await;
            c.send("hello").unwrap();
            assert!(c.buffered_bytes() > 0);
            c.drained(1).await;
            assert_eq!(c.buffered_bytes(), 0);
            if let Some(tx) = tx {
                let _ = tx.send(());
            }
            c.recv().await;
        });
    });
    let a = serve(vec![ep]).await;
    let url = format!("/s{}", session());
    assert_eq!(post(a, &format!("{url}/xhr"), b"").await.text(), "o\n");
    assert_eq!(
        post(a, &format!("{url}/xhr"), b"").await.text(),
        "a[\"hello\"]\n"
    );
    within(rx).await.unwrap();
}

#[tokio::test]
async fn max_sessions_gives_503() {
    let ep = SockJs::new(Config::default().prefix("/s").max_sessions(2), echo);
    let a = serve(vec![ep]).await;
    for _ in 0..2 {
        assert_eq!(
            post(a, &format!("/s{}/xhr", session()), b"").await.status(),
            200
        );
    }
    assert_eq!(
        post(a, &format!("/s{}/xhr", session()), b"").await.status(),
        503
    );
    assert_eq!(
        get(a, &format!("/s{}/eventsource", session()))
            .await
            .status(),
        503
    );
}

#[tokio::test]
async fn origin_policy_applies_to_every_transport() {
    let policy: switchboard_sockjs::OriginPolicy =
        Arc::new(|origin: Option<&str>, _host: Option<&str>| {
            origin.is_none_or(|o| o == "http://good")
        });
    let ep = SockJs::new(
        Config::default().prefix("/s").origin_policy(Some(policy)),
        echo,
    );
    let a = serve(vec![ep]).await;
    let bad = [("Origin", "http://evil")];
    let good = [("Origin", "http://good")];
    let url = format!("/s{}", session());
    for (m, t) in [
        ("POST", "xhr"),
        ("POST", "xhr_streaming"),
        ("POST", "xhr_send"),
        ("GET", "eventsource"),
        ("GET", "htmlfile?c=x"),
        ("GET", "jsonp?c=x"),
        ("POST", "jsonp_send"),
        ("OPTIONS", "xhr"),
    ] {
        let r = request(a, m, &format!("{url}/{t}"), &bad, b"[]").await;
        assert_eq!(r.status(), 403, "{m} {t}");
    }
    assert_eq!(request(a, "GET", "/s/info", &bad, b"").await.status(), 403);
    let ws_headers = [
        ("Origin", "http://evil"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
    ];
    assert_eq!(
        request(a, "GET", &format!("{url}/websocket"), &ws_headers, b"")
            .await
            .status(),
        403
    );
    assert_eq!(
        request(a, "GET", "/s/websocket", &ws_headers, b"")
            .await
            .status(),
        403
    );
    let r = request(a, "POST", &format!("{url}/xhr"), &good, b"").await;
    assert_eq!(r.text(), "o\n");
    assert_eq!(
        request(a, "POST", &format!("/s{}/xhr", session()), &[], b"")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn close_all_closes_every_session() {
    let ep = SockJs::new(Config::default().prefix("/s"), echo);
    let a = serve(vec![ep.clone()]).await;
    let url = format!("/s{}", session());
    let (mut c, _) = stream(a, "POST", &format!("{url}/xhr_streaming"), &[]).await;
    c.chunk().await.unwrap();
    assert_eq!(c.chunk().await.unwrap(), b"o\n");
    let url2 = format!("/s{}", session());
    assert_eq!(post(a, &format!("{url2}/xhr"), b"").await.text(), "o\n");
    ep.close_all(1001, "Server shutting down");
    assert_eq!(
        c.chunk().await.unwrap(),
        b"c[1001,\"Server shutting down\"]\n"
    );
    assert_eq!(c.chunk().await, None);
    assert_eq!(
        post(a, &format!("{url2}/xhr"), b"").await.text(),
        "c[1001,\"Server shutting down\"]\n"
    );
}

#[tokio::test]
async fn send_body_size_limit_is_413() {
    let ep = SockJs::new(Config::default().prefix("/s").max_message_size(100), echo);
    let a = serve(vec![ep]).await;
    let url = format!("/s{}", session());
    assert_eq!(post(a, &format!("{url}/xhr"), b"").await.text(), "o\n");
    let big = format!("[\"{}\"]", "x".repeat(200));
    assert_eq!(
        post(a, &format!("{url}/xhr_send"), big.as_bytes())
            .await
            .status(),
        413
    );
    assert_eq!(
        post(a, &format!("{url}/jsonp_send"), big.as_bytes())
            .await
            .status(),
        413
    );
}

#[tokio::test]
async fn connection_exposes_the_opening_request() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = Mutex::new(Some(tx));
    let ep = SockJs::new(Config::default().prefix("/s"), move |c: Connection| {
        if let Some(tx) = tx.lock().unwrap().take() {
            let _ = tx.send((
                c.id().to_owned(),
                c.transport(),
                c.peer().is_some(),
                c.request().uri.to_string(),
                c.request()
                    .headers
                    .get("x-token")
                    .map(|v| v.to_str().unwrap().to_owned()),
            ));
        }
    });
    let a = serve(vec![ep]).await;
    let r = request(
        a,
        "GET",
        "/s/000/abc/eventsource?x=1",
        &[("X-Token", "t1")],
        b"",
    )
    .await;
    let _ = r;
    let (id, t, peer, uri, token) = within(rx).await.unwrap();
    assert_eq!(id, "abc");
    assert_eq!(t, Transport::EventSource);
    assert!(peer);
    assert_eq!(uri, "/s/000/abc/eventsource?x=1");
    assert_eq!(token.as_deref(), Some("t1"));
}

#[tokio::test]
async fn disabled_transports_are_404() {
    let ep = SockJs::new(
        Config::default()
            .prefix("/s")
            .disabled_transports(vec![Transport::JsonpPolling, Transport::EventSource]),
        echo,
    );
    let a = serve(vec![ep]).await;
    let url = format!("/s{}", session());
    assert_eq!(get(a, &format!("{url}/jsonp?c=x")).await.status(), 404);
    assert_eq!(
        post(a, &format!("{url}/jsonp_send"), b"[]").await.status(),
        404
    );
    assert_eq!(get(a, &format!("{url}/eventsource")).await.status(), 404);
    assert_eq!(post(a, &format!("{url}/xhr"), b"").await.status(), 200);
}

#[tokio::test]
async fn metrics_count_by_transport() {
    let ep = SockJs::new(Config::default().prefix("/s"), echo);
    let a = serve(vec![ep.clone()]).await;
    post(a, &format!("/s{}/xhr", session()), b"").await;
    get(a, &format!("/s{}/jsonp?c=x", session())).await;
    get(a, &format!("/s{}/jsonp?c=x", session())).await;
    let m = ep.metrics();
    let of = |v: &Vec<(Transport, u64)>, t| v.iter().find(|(x, _)| *x == t).unwrap().1;
    assert_eq!(of(&m.open, Transport::XhrPolling), 1);
    assert_eq!(of(&m.open, Transport::JsonpPolling), 2);
    assert_eq!(of(&m.opened_total, Transport::JsonpPolling), 2);
    assert_eq!(m.open_total(), 3);
    assert_eq!(m.sessions, 3);
}

#[tokio::test]
async fn dropping_the_connection_closes_the_session() {
    let ep = SockJs::new(Config::default().prefix("/s"), drop);
    let a = serve(vec![ep]).await;
    let url = format!("/s{}", session());
    assert_eq!(post(a, &format!("{url}/xhr"), b"").await.text(), "o\n");
    assert_eq!(
        post(a, &format!("{url}/xhr"), b"").await.text(),
        "c[1000,\"Normal closure\"]\n"
    );
}
