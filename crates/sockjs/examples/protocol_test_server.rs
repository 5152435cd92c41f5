//! The server the SockJS protocol test suite (`sockjs-protocol`) runs against:
//!
//! ```text
//! cargo run -p switchboard-sockjs --example protocol_test_server -- 127.0.0.1:8081
//! SOCKJS_URL=http://127.0.0.1:8081 ./venv/bin/python sockjs-protocol.py
//! ```
//!
//! Endpoints: `/echo` (response limit 4096 bytes, as the suite expects),
//! `/disabled_websocket_echo` (websocket off), `/cookie_needed_echo` (JSESSIONID cookies),
//! `/close` (every new session is closed with 3000 "Go away!").
//!
//! `--response-limit N` sets another streaming response limit (load runs use the 128 KiB
//! default of real servers: `-- 127.0.0.1:8081 --response-limit 131072`).

use std::convert::Infallible;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use switchboard_sockjs::{Config, Connection, SockJs};

fn echo(conn: Connection) {
    tokio::spawn(async move {
        while let Some(m) = conn.recv().await {
            if conn.send(m).is_err() {
                break;
            }
        }
    });
}

fn endpoints(response_limit: usize) -> Vec<SockJs> {
    let base = Config::default().response_limit(response_limit);
    vec![
        SockJs::new(base.clone().prefix("/echo"), echo),
        SockJs::new(
            base.clone()
                .prefix("/disabled_websocket_echo")
                .websocket(false),
            echo,
        ),
        SockJs::new(
            base.clone()
                .prefix("/cookie_needed_echo")
                .cookie_needed(true),
            echo,
        ),
        SockJs::new(base.prefix("/close"), |conn| conn.close(3000, "Go away!")),
    ]
}

/// One CPU (e.g. pinned with `taskset -c 0`, as `cargo xtask load sockjs` runs it): a
/// current-thread runtime, so no wake-up between a session's tasks goes through the
/// multi-threaded scheduler's queues and atomics. More CPUs: one worker thread per CPU.
fn main() -> std::io::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()?.block_on(serve())
}

async fn serve() -> std::io::Result<()> {
    let mut addr = "127.0.0.1:8081".to_owned();
    let mut response_limit = 4096;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--response-limit" => {
                response_limit = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| std::io::Error::other("--response-limit needs a number"))?;
            }
            _ => addr = a,
        }
    }
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "SockJS protocol test server on http://{}",
        listener.local_addr()?
    );
    let endpoints = Arc::new(endpoints(response_limit));
    loop {
        let (tcp, peer) = listener.accept().await?;
        // Frames are small writes: do not let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let endpoints = endpoints.clone();
                async move {
                    let path = req.uri().path().to_owned();
                    Ok::<_, Infallible>(match endpoints.iter().find(|e| e.matches(&path)) {
                        Some(e) => e.handle(req, Some(peer)).await,
                        None => {
                            let mut r = http::Response::new(switchboard_sockjs::Body::default());
                            *r.status_mut() = http::StatusCode::NOT_FOUND;
                            r
                        }
                    })
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .with_upgrades()
                .await;
        });
    }
}
