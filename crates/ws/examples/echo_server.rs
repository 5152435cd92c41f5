//! Echo server used by Autobahn (`cargo xtask autobahn`), interop tests and load tests.
//!
//! `cargo run --release -p switchboard-ws --example echo_server -- 127.0.0.1:9001`
//!
//! Echoes every text and binary message, accepts permessage-deflate (compressing every echoed
//! message), and raises the limits to [`Limits::permissive`] (Autobahn 9.* sends 16 MiB messages
//! in 64-byte fragments). Not a template for a public server: keep the default limits there.

use switchboard_ws::{Config, DeflateConfig, Limits, Message, ServerConfig, StreamConfig, accept};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("echo_server listening on {}", listener.local_addr()?);
    let server = ServerConfig::default().deflate(DeflateConfig {
        min_compress_size: 0,
        ..Default::default()
    });
    let config = StreamConfig::default()
        .connection(Config::default().limits(Limits::permissive()))
        .max_send_buffer(4 << 20);
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let server = server.clone();
        tokio::spawn(async move {
            let Ok((mut ws, _req)) = accept(tcp, &server, config).await else {
                return;
            };
            while let Some(msg) = ws.recv().await {
                match msg {
                    Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                        if ws.send(m).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
    }
}
