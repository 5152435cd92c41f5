//! Authentication and authorization from the configuration: `[[users]]` (argon2id hashes or
//! plain passcodes), `[auth.jwt]` bearer tokens, `[[acl]]` rules, `[[queues]]` policies, and
//! the per-address back-off after failed logins.
//!
//! The broker calls its [`Authenticator`] synchronously on the session's task and does not
//! tell it the peer's address; the server's [`StompConnection`](crate::session) sets the peer
//! in a thread-local for the duration of each `handle_frame` call ([`with_peer`]), which is how
//! [`ConfigAuthenticator`] applies the per-address back-off. Nothing here logs a passcode or a
//! token.

pub(crate) mod backoff;
pub(crate) mod jwt;
pub(crate) mod token;
pub(crate) mod users;

#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_broker::{
    AclAuthorizer, AclRule, Action, AuthError, Authenticator, ConnectInfo, Overflow, Principal,
    QueuePolicy, Who,
};
use tracing::debug;

use crate::config::{Config, ConfigError};
use backoff::LoginBackoff;
use jwt::{JwtVerifier, looks_like_jwt};
use users::Users;

pub use users::hash_password;

thread_local! {
    static PEER: Cell<Option<IpAddr>> = const { Cell::new(None) };
}

/// Runs `f` with `peer` as the address the authenticator sees (for the back-off).
pub(crate) fn with_peer<R>(peer: IpAddr, f: impl FnOnce() -> R) -> R {
    let previous = PEER.with(|p| p.replace(Some(peer)));
    let r = f();
    PEER.with(|p| p.set(previous));
    r
}

fn current_peer() -> Option<IpAddr> {
    PEER.with(Cell::get)
}

/// The authenticator built from `[[users]]`, `[auth.jwt]` and `[auth.backoff]`.
pub(crate) struct ConfigAuthenticator {
    users: Option<Users>,
    jwt: Option<JwtVerifier>,
    backoff: LoginBackoff,
}

impl ConfigAuthenticator {
    /// `None` when nothing is configured (every CONNECT is accepted, as before). Logins whose
    /// passcode is plain text are returned for the caller to warn about.
    pub(crate) fn from_config(
        config: &Config,
    ) -> Result<(Option<ConfigAuthenticator>, Vec<String>), ConfigError> {
        if config.users.is_empty() && config.auth.jwt.is_none() {
            return Ok((None, Vec::new()));
        }
        let (users, plain) = if config.users.is_empty() {
            (None, Vec::new())
        } else {
            let (u, p) = Users::new(&config.users, config.auth.passcode_cache)?;
            (Some(u), p)
        };
        let jwt = config.auth.jwt.as_ref().map(JwtVerifier::new).transpose()?;
        Ok((
            Some(ConfigAuthenticator {
                users,
                jwt,
                backoff: LoginBackoff::new(config.auth.backoff.clone()),
            }),
            plain,
        ))
    }

    fn check(&self, info: &ConnectInfo<'_>) -> Option<Principal> {
        let login = info.login.unwrap_or("");
        let passcode = info.passcode.unwrap_or("");
        if let Some(jwt) = &self.jwt {
            let token =
                if login == jwt.login_marker || (login.is_empty() && looks_like_jwt(passcode)) {
                    Some(passcode)
                } else if login.is_empty() && passcode.is_empty() {
                    info.token
                } else {
                    None
                };
            if let Some(t) = token {
                return match jwt.verify(t) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        debug!(reason = ?e, "bearer token refused");
                        None
                    }
                };
            }
        }
        let users = self.users.as_ref()?;
        if login.is_empty() {
            return None;
        }
        users.verify(login, passcode)
    }
}

fn refused() -> AuthError {
    AuthError {
        message: "Access refused".into(),
    }
}

impl Authenticator for ConfigAuthenticator {
    fn authenticate(&self, info: &ConnectInfo<'_>) -> Result<Option<Principal>, AuthError> {
        let peer = current_peer();
        let now = Instant::now();
        if let Some(ip) = peer
            && self.backoff.is_blocked(ip, now)
        {
            // Refused without looking at the credentials; still a failure.
            self.backoff.failure(ip, now);
            return Err(refused());
        }
        match self.check(info) {
            Some(p) => {
                if let Some(ip) = peer {
                    self.backoff.success(ip);
                }
                Ok(Some(p))
            }
            None => {
                if let Some(ip) = peer {
                    self.backoff.failure(ip, now);
                }
                Err(refused())
            }
        }
    }
}

/// The `[[acl]]` rules as broker rules, and the default decision.
pub(crate) fn acl(config: &Config) -> Result<Option<AclAuthorizer>, ConfigError> {
    let default_allow = config.auth.default_allow()?;
    if config.acl.is_empty() && default_allow {
        return Ok(None);
    }
    let mut rules = Vec::with_capacity(config.acl.len());
    for (i, r) in config.acl.iter().enumerate() {
        let n = i + 1;
        let who = Who::parse(&r.who).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "acl rule {n}: who = `{}`: expected user:NAME, group:NAME, authenticated, \
                 anonymous or anyone",
                r.who
            ))
        })?;
        let mut actions = Vec::new();
        for a in &r.actions {
            actions.push(Action::parse(a).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "acl rule {n}: action `{a}`: expected subscribe or send"
                ))
            })?);
        }
        rules.push(AclRule {
            who,
            destinations: r.destinations.clone(),
            actions,
            allow: r.allow,
        });
    }
    AclAuthorizer::new(rules, default_allow)
        .map(Some)
        .map_err(|e| ConfigError::Invalid(e.to_string()))
}

/// The `[[queues]]` policies as broker policies.
pub(crate) fn queue_policies(config: &Config) -> Result<Vec<QueuePolicy>, ConfigError> {
    config
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let n = i + 1;
            let invalid = |m: String| ConfigError::Invalid(format!("queues entry {n}: {m}"));
            if q.pattern.is_empty() || !q.pattern.starts_with('/') {
                return Err(invalid(format!(
                    "pattern `{}` must start with `/`",
                    q.pattern
                )));
            }
            let overflow = match &q.overflow {
                None => Overflow::Refuse,
                Some(o) => Overflow::parse(o).ok_or_else(|| {
                    invalid(format!("overflow = `{o}`: expected refuse or drop-oldest"))
                })?,
            };
            let max_redeliveries = match q.max_redeliveries {
                None => Some(switchboard_broker::DEFAULT_MAX_REDELIVERIES),
                Some(-1) => None,
                Some(n) => Some(u32::try_from(n).map_err(|_| {
                    invalid(format!(
                        "max_redeliveries = {n}: expected 0 or more (-1: forever)"
                    ))
                })?),
            };
            if q.max_length == Some(0) {
                return Err(invalid("max_length must be > 0".into()));
            }
            if q.ttl_ms == Some(0) {
                return Err(invalid("ttl_ms must be > 0 (leave it out for none)".into()));
            }
            let dead_letter = match &q.dead_letter {
                None => Some(switchboard_broker::DEFAULT_DEAD_LETTER.to_owned()),
                Some(d) if d.is_empty() => None,
                Some(d) if d.starts_with('/') => Some(d.clone()),
                Some(d) => return Err(invalid(format!("dead_letter `{d}` must start with `/`"))),
            };
            Ok(QueuePolicy {
                pattern: q.pattern.clone(),
                max_length: q.max_length,
                overflow,
                max_redeliveries,
                dead_letter,
                ttl: q.ttl_ms.map(Duration::from_millis),
            })
        })
        .collect()
}

/// An authenticator that refuses everything: installed when the configured one cannot be
/// built (the server fails closed; [`Config::validate`] reports the reason at start).
pub(crate) struct RefuseAll;

impl Authenticator for RefuseAll {
    fn authenticate(&self, _: &ConnectInfo<'_>) -> Result<Option<Principal>, AuthError> {
        Err(refused())
    }
}

/// The authenticator to install, if any (see [`ConfigAuthenticator::from_config`]).
pub(crate) fn authenticator(config: &Config) -> Option<Arc<dyn Authenticator>> {
    match ConfigAuthenticator::from_config(config) {
        Ok((None, _)) => None,
        Ok((Some(a), plain)) => {
            for login in plain {
                tracing::warn!(
                    %login,
                    "[[users]] passcode stored in plain text; store an argon2 hash instead \
                     (switchboard hash-password)"
                );
            }
            Some(Arc::new(a))
        }
        Err(e) => {
            tracing::error!(error = %e, "authentication misconfigured: every CONNECT is refused");
            Some(Arc::new(RefuseAll))
        }
    }
}
