//! Command-line flags of the `switchboard` binary, and how they overlay the config file.

use std::path::PathBuf;

use clap::Parser;

use crate::config::{Config, ConfigError, Listen, TlsFiles};

/// `switchboard`: a STOMP broker over TCP, WebSocket and SockJS.
///
/// With no flags and no config file it serves HTTP (the demo chat page at `/`, `/healthz`,
/// `/metrics`, STOMP over WebSocket at `/chat` and over SockJS under it) on 127.0.0.1:8080 and
/// STOMP over TCP on 127.0.0.1:61613. Logging follows `RUST_LOG` (default `info`), e.g.
/// `RUST_LOG=switchboard_server=debug`.
#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about,
    long_about = None,
    after_help = "With no flags: HTTP (chat page /, /healthz, /metrics, WebSocket /chat, SockJS \
                  /chat/...) on 127.0.0.1:8080 and \
                  STOMP on 127.0.0.1:61613.\nLogging follows RUST_LOG (default `info`), e.g. \
                  RUST_LOG=switchboard_server=debug."
)]
pub struct Cli {
    /// HTTP/WebSocket listener address, or `off` [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR|off")]
    pub http: Option<Listen>,
    /// STOMP-over-TCP listener address, or `off` [default: 127.0.0.1:61613].
    #[arg(long, value_name = "ADDR|off")]
    pub stomp: Option<Listen>,
    /// STOMP-over-TLS listener address (needs --tls-cert and --tls-key) [default: off].
    #[arg(long, value_name = "ADDR|off")]
    pub stomp_tls: Option<Listen>,
    /// TOML configuration file; flags override its settings.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// PEM certificate chain; with --tls-key, the HTTP listener serves https/wss.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A node_modules directory with sockjs-client and @stomp/stompjs: served as
    /// /lib/sockjs.min.js and /lib/stomp.umd.min.js (else the demo page uses the public CDN).
    #[arg(long, value_name = "DIR")]
    pub client_dir: Option<PathBuf>,
    /// Turn off the reference chat app (the /app/chat handler and the demo page at /).
    #[arg(long)]
    pub no_chat: bool,
    /// Most connections at once (TCP, TLS, WebSocket and SockJS sessions together). Default:
    /// derived from the open-file limit, which the server first raises from its soft to its
    /// hard value: the limit minus max(256, limit/32) [e.g. 19375 for 20000 files].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Listen backlog of every listener [default: the kernel's cap net.core.somaxconn, at
    /// least 1024].
    #[arg(long, value_name = "N")]
    pub backlog: Option<u32>,
    /// Cluster mode: share topics, queues and user destinations with every node using this
    /// Redis (`redis://HOST:PORT[/DB]`, or comma-separated seeds; a Redis Cluster is
    /// detected) [default: off, in-memory broker].
    #[arg(long, value_name = "URL")]
    pub cluster: Option<String>,
    /// This node's id in cluster mode (message-id prefix, queue consumer name) [default:
    /// hostname-pid-xxxx].
    #[arg(long, value_name = "NAME")]
    pub node_id: Option<String>,
    /// Cluster mode: idle time after which a dead node's unacknowledged queue messages are
    /// claimed and redelivered by another node [default: 30000].
    #[arg(long, value_name = "N")]
    pub cluster_claim_idle_ms: Option<u64>,
    /// Cluster mode: a node that stops refreshing its liveness key counts as dead this long
    /// after [default: --cluster-claim-idle-ms kept within 3000..=10000].
    #[arg(long, value_name = "N")]
    pub cluster_node_ttl_ms: Option<u64>,
    /// A subcommand instead of running the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Prints an argon2id PHC hash of a password read from standard input (first line), for a
    /// `[[users]]` passcode; the password never appears in the command line or shell history.
    HashPassword {
        /// Read the password from piped standard input without a prompt (the default when
        /// standard input is not a terminal).
        #[arg(long)]
        stdin: bool,
    },
}

/// Reads the first line of `input` (without its line ending) and hashes it.
pub fn hash_password_from(mut input: impl std::io::BufRead) -> Result<String, String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err("empty password".into());
    }
    crate::auth::hash_password(password)
}

impl Cli {
    /// Loads the config file (if any), applies the flags on top, and validates the result.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(l) = self.http {
            config.listeners.http = l;
        }
        if let Some(l) = self.stomp {
            config.listeners.stomp = l;
        }
        if let Some(l) = self.stomp_tls {
            config.listeners.stomp_tls = l;
        }
        if let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) {
            config.tls = Some(TlsFiles { cert, key });
        }
        if let Some(dir) = self.client_dir {
            config.sockjs.client_dir = Some(dir);
        }
        if self.no_chat {
            config.chat.enabled = false;
        }
        if let Some(n) = self.max_connections {
            config.limits.max_connections = n;
        }
        if let Some(n) = self.backlog {
            config.listeners.backlog = n;
        }
        if let Some(url) = self.cluster {
            config.cluster.url = Some(url);
        }
        if let Some(id) = self.node_id {
            config.cluster.node_id = Some(id);
        }
        if let Some(ms) = self.cluster_claim_idle_ms {
            config.cluster.claim_idle_ms = ms;
        }
        if let Some(ms) = self.cluster_node_ttl_ms {
            config.cluster.node_ttl_ms = Some(ms);
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_defaults() {
        let cli = Cli::try_parse_from(["switchboard", "--http", "off", "--stomp", "127.0.0.1:0"])
            .unwrap();
        let c = cli.into_config().unwrap();
        assert_eq!(c.listeners.http, Listen::Off);
        assert_eq!(c.listeners.stomp.to_string(), "127.0.0.1:0");
    }

    #[test]
    fn chat_and_client_dir_flags() {
        let c = Cli::try_parse_from(["switchboard"])
            .unwrap()
            .into_config()
            .unwrap();
        assert!(c.chat.enabled);
        assert_eq!(c.sockjs.client_dir, None);
        let c = Cli::try_parse_from(["switchboard", "--no-chat", "--client-dir", "nm"])
            .unwrap()
            .into_config()
            .unwrap();
        assert!(!c.chat.enabled);
        assert_eq!(c.sockjs.client_dir, Some(PathBuf::from("nm")));
    }

    #[test]
    fn connection_limit_flags() {
        let c = Cli::try_parse_from(["switchboard"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(
            c.limits.max_connections,
            crate::fd_limit::default_max_connections()
        );
        assert_eq!(c.listeners.backlog, crate::fd_limit::default_backlog());
        assert!(c.listeners.backlog >= 1024);
        let c = Cli::try_parse_from(["switchboard", "--max-connections", "5", "--backlog", "64"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(c.limits.max_connections, 5);
        assert_eq!(c.listeners.backlog, 64);
        let cli = Cli::try_parse_from(["switchboard", "--backlog", "0"]).unwrap();
        assert!(cli.into_config().is_err());
    }

    #[test]
    fn cluster_flags() {
        let c = Cli::try_parse_from(["switchboard"])
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(c.cluster.url, None);
        let cli = Cli::try_parse_from([
            "switchboard",
            "--cluster",
            "redis://127.0.0.1:7000,redis://127.0.0.1:7001",
            "--node-id",
            "n2",
            "--cluster-claim-idle-ms",
            "1500",
        ])
        .unwrap();
        let c = cli.into_config();
        if cfg!(feature = "cluster") {
            let c = c.unwrap();
            assert_eq!(
                c.cluster.url.as_deref(),
                Some("redis://127.0.0.1:7000,redis://127.0.0.1:7001")
            );
            assert_eq!(c.cluster.node_id.as_deref(), Some("n2"));
            assert_eq!(c.cluster.claim_idle_ms, 1500);
            assert_eq!(c.cluster.node_ttl(), 3000);
        } else {
            assert!(c.is_err());
        }
    }

    #[test]
    fn tls_flags_go_together() {
        assert!(Cli::try_parse_from(["switchboard", "--tls-cert", "a.pem"]).is_err());
        let c = Cli::try_parse_from(["switchboard", "--tls-cert", "a", "--tls-key", "b"])
            .unwrap()
            .into_config()
            .unwrap();
        assert!(c.tls.is_some());
    }

    #[test]
    fn hash_password_reads_one_line_and_hashes_it() {
        let cli = Cli::try_parse_from(["switchboard", "hash-password", "--stdin"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::HashPassword { stdin: true })
        ));
        let h = hash_password_from(&b"pa ss\r\nignored\n"[..]).unwrap();
        let u = crate::config::User {
            login: "a".into(),
            passcode: h,
            groups: Vec::new(),
        };
        let (users, plain) = crate::auth::users::Users::new(&[u], 4).unwrap();
        assert!(plain.is_empty());
        assert!(users.verify("a", "pa ss").is_some());
        assert!(users.verify("a", "pa ss\r").is_none());
        assert!(hash_password_from(&b"\n"[..]).is_err());
        assert!(hash_password_from(&b""[..]).is_err());
    }

    #[test]
    fn stomp_tls_without_cert_is_an_error() {
        let cli = Cli::try_parse_from(["switchboard", "--stomp-tls", "127.0.0.1:0"]).unwrap();
        assert!(cli.into_config().is_err());
    }
}
