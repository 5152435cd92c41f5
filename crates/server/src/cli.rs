//! Command-line flags of the `switchboard` binary, and how they overlay the config file.

use std::path::PathBuf;

use clap::Parser;

use crate::config::{Config, ConfigError, Listen, TlsFiles};

/// `switchboard`: a STOMP broker over TCP and WebSocket.
///
/// With no flags and no config file it serves HTTP (`/healthz`, `/metrics`, WebSocket `/chat`)
/// on 127.0.0.1:8080 and STOMP over TCP on 127.0.0.1:61613. Logging follows `RUST_LOG`
/// (default `info`), e.g. `RUST_LOG=switchboard_server=debug`.
#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about,
    long_about = None,
    after_help = "With no flags: HTTP (/healthz, /metrics, WebSocket /chat) on 127.0.0.1:8080 and \
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
    fn tls_flags_go_together() {
        assert!(Cli::try_parse_from(["switchboard", "--tls-cert", "a.pem"]).is_err());
        let c = Cli::try_parse_from(["switchboard", "--tls-cert", "a", "--tls-key", "b"])
            .unwrap()
            .into_config()
            .unwrap();
        assert!(c.tls.is_some());
    }

    #[test]
    fn stomp_tls_without_cert_is_an_error() {
        let cli = Cli::try_parse_from(["switchboard", "--stomp-tls", "127.0.0.1:0"]).unwrap();
        assert!(cli.into_config().is_err());
    }
}
