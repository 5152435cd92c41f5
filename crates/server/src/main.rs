//! The `switchboard` binary: parses flags, sets up logging, runs [`switchboard_server::Server`]
//! until SIGINT or SIGTERM.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use switchboard_server::Server;
use switchboard_server::cli::{Cli, Command, hash_password_from};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::HashPassword { stdin }) = &cli.command {
        if !stdin && std::io::stdin().is_terminal() {
            eprint!("password (echoed; pipe it with --stdin to keep it off the screen): ");
        }
        return match hash_password_from(std::io::stdin().lock()) {
            Ok(h) => {
                println!("{h}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("switchboard hash-password: {e}");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Before the config: the default max_connections is derived from the limit in force.
    match switchboard_server::fd_limit::raise() {
        Some(l) if l.before != l.after => tracing::info!(
            before = l.before,
            after = l.after,
            hard = l.hard,
            "raised the open-file limit to the hard limit"
        ),
        Some(l) if l.after < l.hard => tracing::warn!(
            soft = l.after,
            hard = l.hard,
            "could not raise the open-file limit to the hard limit"
        ),
        Some(l) => tracing::info!(soft = l.after, hard = l.hard, "open-file limit"),
        None => {}
    }
    let config = match cli.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        max_connections = config.limits.max_connections,
        backlog = config.listeners.backlog,
        "connection limits"
    );
    runtime.block_on(async move {
        let server = match Server::bind(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("switchboard: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addrs = server.local_addrs();
        // A line scripts can wait for (the interop tests do).
        println!(
            "switchboard listening http={} stomp={} stomp_tls={}",
            fmt_addr(addrs.http),
            fmt_addr(addrs.stomp),
            fmt_addr(addrs.stomp_tls)
        );
        let handle = server.shutdown_handle();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received; shutting down (again to exit at once)");
            handle.shutdown();
            wait_for_signal().await;
            tracing::warn!("second signal: exiting without waiting for connections");
            std::process::exit(130);
        });
        server.run().await;
        ExitCode::SUCCESS
    })
}

fn fmt_addr(a: Option<std::net::SocketAddr>) -> String {
    a.map_or_else(|| "off".to_owned(), |a| a.to_string())
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    match term {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
