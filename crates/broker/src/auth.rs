//! Authentication of CONNECT frames: a pluggable [`Authenticator`], allow-all by default.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use switchboard_stomp::Headers;

/// The authenticated identity of a session. User destinations (`/user/...`) are keyed by its name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Principal(Arc<str>);

impl Principal {
    /// A principal called `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Principal {
        Principal(name.into())
    }

    /// The principal's name.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Principal({:?})", &*self.0)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
