//! Authentication of CONNECT frames: a pluggable [`Authenticator`], allow-all by default.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use switchboard_stomp::Headers;

use crate::access::{Action, CompiledGrant, Grant};
use crate::destination::Pattern;

/// The authenticated identity of a session: a name (user destinations `/user/...` are keyed by
/// it), and optionally groups (for [`Who::Group`](crate::Who::Group) ACL rules), destination
/// grants (e.g. from a token's claims) and an expiry (a token's `exp`). Cheap to clone.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use switchboard_broker::{Action, Grant, Principal};
///
/// let p = Principal::new("alice")
///     .with_groups(["staff"])
///     .with_grants([Grant { actions: vec![Action::Subscribe], destinations: vec!["/topic/room.7".into()] }])
///     .with_expiry(SystemTime::now() + Duration::from_secs(3600));
/// assert_eq!(p.name(), "alice");
/// assert!(p.grants_allow(Action::Subscribe, "/topic/room.7", None));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Principal(Arc<PrincipalInner>);

#[derive(Clone, PartialEq, Eq, Hash)]
struct PrincipalInner {
    name: Box<str>,
    groups: Vec<String>,
    grants: Vec<Grant>,
    compiled: Vec<CompiledGrant>,
    expires_at: Option<SystemTime>,
}

impl Principal {
    /// A principal called `name`, with no groups, no grants and no expiry.
    pub fn new(name: impl Into<String>) -> Principal {
        Principal(Arc::new(PrincipalInner {
            name: name.into().into_boxed_str(),
            groups: Vec::new(),
            grants: Vec::new(),
            compiled: Vec::new(),
            expires_at: None,
        }))
    }

    /// The principal's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Adds groups (e.g. from a user list or a token's `groups`/`roles` claim).
    pub fn with_groups<I, G>(mut self, groups: I) -> Principal
    where
        I: IntoIterator<Item = G>,
        G: Into<String>,
    {
        Arc::make_mut(&mut self.0)
            .groups
            .extend(groups.into_iter().map(Into::into));
        self
    }

    /// Adds destination grants (e.g. from a token's claims). See [`Grant`].
    pub fn with_grants(mut self, grants: impl IntoIterator<Item = Grant>) -> Principal {
        let inner = Arc::make_mut(&mut self.0);
        for g in grants {
            inner.compiled.push(CompiledGrant::new(&g));
            inner.grants.push(g);
        }
        self
    }

    /// Sets when this authentication expires (e.g. a token's `exp`): the session then sends
    /// `ERROR message:Token expired` and closes, unless it re-authenticated before (see
    /// [`Session::reauthenticate`](crate::Session::reauthenticate)). Read against
    /// [`BrokerConfig::clock`](crate::BrokerConfig::clock).
    pub fn with_expiry(mut self, at: SystemTime) -> Principal {
        Arc::make_mut(&mut self.0).expires_at = Some(at);
        self
    }

    /// The groups.
    pub fn groups(&self) -> &[String] {
        &self.0.groups
    }

    /// The grants.
    pub fn grants(&self) -> &[Grant] {
        &self.0.grants
    }

    /// When the authentication expires, if it does.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.0.expires_at
    }

    /// Whether one of the grants allows `action` on `destination` (`pattern`: the compiled
    /// wildcard subscription, which a grant must cover entirely).
    pub fn grants_allow(
        &self,
        action: Action,
        destination: &str,
        pattern: Option<&Pattern>,
    ) -> bool {
        self.0
            .compiled
            .iter()
            .any(|g| g.allows(action, destination, pattern))
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("Principal");
        d.field(&&*self.0.name);
        if !self.0.groups.is_empty() {
            d.field(&self.0.groups);
        }
        if !self.0.grants.is_empty() {
            d.field(&self.0.grants);
        }
        if let Some(t) = self.0.expires_at {
            d.field(&t);
        }
        d.finish()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.name)
    }
}

/// What a CONNECT/STOMP frame says about who is connecting.
#[derive(Debug)]
pub struct ConnectInfo<'a> {
    /// The `login` header.
    pub login: Option<&'a str>,
    /// The `passcode` header.
    pub passcode: Option<&'a str>,
    /// The `host` header (any host is accepted unless the authenticator says otherwise).
    pub host: Option<&'a str>,
    /// A credential the transport received outside STOMP (an HTTP `Authorization: Bearer`
    /// header or an `access_token` query parameter of the WebSocket upgrade), set with
    /// [`Session::set_token`](crate::Session::set_token). An authenticator reads it when the
    /// frame carries no `passcode`.
    pub token: Option<&'a str>,
    /// Every header of the frame.
    pub headers: &'a Headers,
}

/// Why a CONNECT was refused; `message` goes into the ERROR frame's `message` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthError {
    /// Short text for the ERROR `message` header.
    pub message: String,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AuthError {}

/// Decides whether a CONNECT may proceed and as whom. Called on the session's task: keep it fast
/// (a slow check should be cached by the implementation).
///
/// Also called to re-authenticate a connected session (a token refreshed before it expires):
/// the principal it returns then must have the same name. A refusal's `message` should not
/// say which part of the credentials was wrong; every refusal is counted in
/// `MetricsSnapshot::auth_failures`.
pub trait Authenticator: Send + Sync + 'static {
    /// `Ok(Some(p))`: connected as `p`; `Ok(None)`: connected anonymously; `Err`: refused.
    fn authenticate(&self, info: &ConnectInfo<'_>) -> Result<Option<Principal>, AuthError>;
}

/// Accepts everyone; a `login` header, if present, becomes the principal (no passcode check).
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Authenticator for AllowAll {
    fn authenticate(&self, info: &ConnectInfo<'_>) -> Result<Option<Principal>, AuthError> {
        Ok(info.login.filter(|l| !l.is_empty()).map(Principal::new))
    }
}

/// A fixed list of `login` → `passcode`; anything else is refused.
#[derive(Clone, Default)]
pub struct StaticUsers {
    users: HashMap<String, String>,
}

impl fmt::Debug for StaticUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticUsers")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl StaticUsers {
    /// Users from `(login, passcode)` pairs.
    pub fn new<I, L, P>(users: I) -> StaticUsers
    where
        I: IntoIterator<Item = (L, P)>,
        L: Into<String>,
        P: Into<String>,
    {
        StaticUsers {
            users: users
                .into_iter()
                .map(|(l, p)| (l.into(), p.into()))
                .collect(),
        }
    }
}

/// Compares without an early exit on the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

impl Authenticator for StaticUsers {
    fn authenticate(&self, info: &ConnectInfo<'_>) -> Result<Option<Principal>, AuthError> {
        let refused = || AuthError {
            message: "Access refused".to_owned(),
        };
        let login = info.login.ok_or_else(refused)?;
        let expected = self.users.get(login).ok_or_else(refused)?;
        let given = info.passcode.unwrap_or("");
        if same_secret(expected.as_bytes(), given.as_bytes()) {
            Ok(Some(Principal::new(login)))
        } else {
            Err(refused())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info<'a>(h: &'a Headers, login: Option<&'a str>, pass: Option<&'a str>) -> ConnectInfo<'a> {
        ConnectInfo {
            login,
            passcode: pass,
            host: None,
            token: None,
            headers: h,
        }
    }

    #[test]
    fn static_users_check_passcode() {
        let h = Headers::new();
        let users = StaticUsers::new([("alice", "secret")]);
        assert_eq!(
            users
                .authenticate(&info(&h, Some("alice"), Some("secret")))
                .unwrap(),
            Some(Principal::new("alice"))
        );
        assert!(
            users
                .authenticate(&info(&h, Some("alice"), Some("secreT")))
                .is_err()
        );
        assert!(
            users
                .authenticate(&info(&h, Some("alice"), Some("secret!")))
                .is_err()
        );
        assert!(
            users
                .authenticate(&info(&h, Some("bob"), Some("secret")))
                .is_err()
        );
        assert!(users.authenticate(&info(&h, None, None)).is_err());
    }

    #[test]
    fn allow_all_uses_login() {
        let h = Headers::new();
        assert_eq!(AllowAll.authenticate(&info(&h, None, None)).unwrap(), None);
        assert_eq!(
            AllowAll.authenticate(&info(&h, Some("x"), None)).unwrap(),
            Some(Principal::new("x"))
        );
    }
}
