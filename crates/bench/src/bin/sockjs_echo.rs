//! A SockJS echo server on switchboard-sockjs, for load comparisons
//! (`cargo xtask load sockjs --compare`, against sockjs-node's echo server).
//!
//! ```text
//! sockjs_echo [--response-limit BYTES] HOST:PORT
//! ```
//!
//! One endpoint, `/echo`, with the library's defaults (streaming responses end after 128 KiB,
//! like sockjs-node's) unless `--response-limit` says otherwise; every message a session
//! receives is sent back to it. Accepted sockets get `TCP_NODELAY`, as `switchboard` and Node's
//! HTTP server set it: without it, a small frame written behind another one waits for the
//! client's delayed ACK (40 ms on Linux). Unlike switchboard-sockjs's `protocol_test_server`
//! example (4096-byte responses, what the protocol suite checks), this is configured the way a
//! deployment would be.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use switchboard_sockjs::{Config, Connection, SockJs};

const USAGE: &str = "usage: sockjs_echo [--response-limit BYTES] HOST:PORT";

fn echo(conn: Connection) {
    tokio::spawn(async move {
        while let Some(m) = conn.recv().await {
            if conn.send(m).is_err() {
                break;
            }
        }
    });
}

fn parse_args() -> Result<(String, Config), String> {
    let mut config = Config::default().prefix("/echo");
    let mut addr = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--response-limit" => {
                let n: usize = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or(format!("--response-limit needs a positive number\n{USAGE}"))?;
                config = config.response_limit(n);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown flag {s}\n{USAGE}")),
            s if addr.is_none() => addr = Some(s.to_owned()),
            s => return Err(format!("unexpected argument `{s}`\n{USAGE}")),
        }
    }
    Ok((addr.ok_or(format!("missing HOST:PORT\n{USAGE}"))?, config))
}

async fn serve(addr: String, config: Config) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "sockjs_echo listening on {}/echo (response limit {} bytes)",
        listener.local_addr()?,
        config.response_limit
    );
    let endpoint = Arc::new(SockJs::new(config, echo));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            // Out of file descriptors and the like: a load test went too far; keep serving.
            Err(e) => {
                eprintln!("sockjs_echo: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let endpoint = endpoint.clone();
                async move {
                    let resp = if endpoint.matches(req.uri().path()) {
                        endpoint.handle(req, Some(peer)).await
                    } else {
                        let mut r = hyper::Response::new(switchboard_sockjs::Body::default());
                        *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                        r
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .with_upgrades()
                .await;
        });
    }
}

fn main() {
    let (addr, config) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sockjs_echo: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sockjs_echo: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(serve(addr, config)) {
        eprintln!("sockjs_echo: {e}");
        std::process::exit(1);
    }
}
