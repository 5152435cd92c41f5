//! Echo servers built from the peer crates' public APIs, for `cargo xtask load ws --compare`.
//!
//! `peer_echo --lib tungstenite|tokio-websockets|fastwebsockets 127.0.0.1:PORT`
//!
//! Each echoes every text and binary message back on its connection, with compression off (none
//! of the three negotiates permessage-deflate here), TCP_NODELAY on, default limits, and
//! automatic pong/close handling as each library does it. tokio-websockets and fastwebsockets
//! run on tokio's multi-threaded runtime with default settings, like switchboard-ws's
//! `echo_server` example; tungstenite is a blocking library, so it gets a thread per connection
//! (its documented server pattern).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Connections served at once; more are refused (closed) so a runaway client cannot exhaust
/// threads or memory.
const MAX_CONNS: usize = 4096;

fn usage() -> ! {
    eprintln!("usage: peer_echo --lib tungstenite|tokio-websockets|fastwebsockets ADDR");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (lib, addr) = match args.as_slice() {
        [flag, lib, addr] if flag == "--lib" => (lib.as_str(), addr.as_str()),
        _ => usage(),
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("peer_echo: bad address {addr}: {e}");
            std::process::exit(2);
        }
    };
    let result = match lib {
        "tungstenite" => tungstenite_server(addr),
        "tokio-websockets" => {
            tokio_runtime().and_then(|rt| rt.block_on(tokio_websockets_server(addr)))
        }
        "fastwebsockets" => tokio_runtime().and_then(|rt| rt.block_on(fastwebsockets_server(addr))),
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("peer_echo ({lib}): {e}");
        std::process::exit(1);
    }
}

fn tokio_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Counts live connections; `try_acquire` fails past [`MAX_CONNS`].
#[derive(Clone, Default)]
struct ConnCount(Arc<AtomicUsize>);

struct ConnGuard(Arc<AtomicUsize>);

impl ConnCount {
    fn try_acquire(&self) -> Option<ConnGuard> {
        if self.0.fetch_add(1, Ordering::AcqRel) >= MAX_CONNS {
            self.0.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnGuard(self.0.clone()))
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

// ---------------------------------------------------------------------------------------------

fn tungstenite_server(addr: SocketAddr) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(addr)?;
    eprintln!(
        "peer_echo (tungstenite) listening on {}",
        listener.local_addr()?
    );
    let conns = ConnCount::default();
    for tcp in listener.incoming() {
        let Ok(tcp) = tcp else { continue };
        let Some(guard) = conns.try_acquire() else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        std::thread::spawn(move || {
            let _guard = guard;
            let Ok(mut ws) = tungstenite::accept(tcp) else {
                return;
            };
            loop {
                match ws.read() {
                    Ok(m @ (tungstenite::Message::Text(_) | tungstenite::Message::Binary(_))) => {
                        if ws.send(m).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

async fn tokio_websockets_server(addr: SocketAddr) -> std::io::Result<()> {
    use futures_util::{SinkExt, StreamExt};
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!(
        "peer_echo (tokio-websockets) listening on {}",
        listener.local_addr()?
    );
    let conns = ConnCount::default();
    loop {
        let (tcp, _) = listener.accept().await?;
        let Some(guard) = conns.try_acquire() else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let _guard = guard;
            let Ok((_req, mut ws)) = tokio_websockets::ServerBuilder::new().accept(tcp).await
            else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    return;
                }
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------

async fn fastwebsockets_server(addr: SocketAddr) -> std::io::Result<()> {
    use fastwebsockets::{FragmentCollector, OpCode, upgrade};
    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};

    async fn echo(fut: upgrade::UpgradeFut) -> Result<(), fastwebsockets::WebSocketError> {
        let mut ws = FragmentCollector::new(fut.await?);
        loop {
            let frame = ws.read_frame().await?;
            match frame.opcode {
                OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
                OpCode::Close => return Ok(()),
                _ => {}
            }
        }
    }

    async fn handle(
        mut req: Request<Incoming>,
        guard: Arc<ConnGuard>,
    ) -> Result<Response<Empty<Bytes>>, fastwebsockets::WebSocketError> {
        let (response, fut) = upgrade::upgrade(&mut req)?;
        tokio::spawn(async move {
            let _guard = guard;
            let _ = echo(fut).await;
        });
        Ok(response)
    }

    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!(
        "peer_echo (fastwebsockets) listening on {}",
        listener.local_addr()?
    );
    let conns = ConnCount::default();
    loop {
        let (tcp, _) = listener.accept().await?;
        let Some(guard) = conns.try_acquire() else {
            continue;
        };
        let guard = Arc::new(guard);
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(tcp);
            let service = hyper::service::service_fn(move |req| handle(req, guard.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .with_upgrades()
                .await;
        });
    }
}
