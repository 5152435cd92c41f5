//! Drives Autobahn|Testsuite's fuzzingserver as an echo client.
//!
//! `cargo run --release -p switchboard-ws --example autobahn_client -- ws://127.0.0.1:9001`
//!
//! GET /getCaseCount, then for each case /runCase?case=N&agent=switchboard (echo every data
//! message until the server closes), then /updateReports?agent=switchboard. Offers
//! permessage-deflate.

use switchboard_ws::{Config, DeflateConfig, Error, Limits, Message, StreamConfig, connect_url};

const AGENT: &str = "switchboard";

fn config() -> StreamConfig {
    StreamConfig::default()
        .connection(Config::default().limits(Limits::permissive()))
        .max_send_buffer(4 << 20)
}

async fn case_count(base: &str) -> Result<u32, Error> {
    let (mut ws, _) = connect_url(&format!("{base}/getCaseCount"), config(), None).await?;
    let mut count = 0;
    while let Some(msg) = ws.recv().await {
        if let Message::Text(t) = msg? {
            count = t
                .as_str()
                .trim()
                .parse()
                .map_err(|_| Error::InvalidInput("bad case count"))?;
        }
    }
    Ok(count)
}

async fn run_case(base: &str, case: u32) -> Result<(), Error> {
    let url = format!("{base}/runCase?case={case}&agent={AGENT}");
    let deflate = DeflateConfig {
        min_compress_size: 0,
        ..Default::default()
    };
    let (mut ws, _) = connect_url(&url, config(), Some(deflate)).await?;
    while let Some(msg) = ws.recv().await {
        if let m @ (Message::Text(_) | Message::Binary(_)) = msg? {
            ws.send(m).await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let base = base.trim_end_matches('/').to_owned();
    let count = case_count(&base).await?;
    eprintln!("autobahn_client: {count} cases");
    for case in 1..=count {
        if let Err(e) = run_case(&base, case).await {
            eprintln!("case {case}: {e}");
        }
    }
    let (mut ws, _) = connect_url(
        &format!("{base}/updateReports?agent={AGENT}"),
        config(),
        None,
    )
    .await?;
    while let Some(m) = ws.recv().await {
        m?;
    }
    eprintln!("autobahn_client: reports updated");
    Ok(())
}
