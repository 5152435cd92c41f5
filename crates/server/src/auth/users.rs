//! `[[users]]`: logins with argon2 PHC-hashed passcodes (or, discouraged, plain text).
//!
//! Verifying an argon2id hash costs tens of milliseconds of CPU on purpose, and the broker calls
//! its authenticator synchronously on the session's task. So a verified (login, passcode) pair
//! is remembered in a bounded cache, keyed by HMAC-SHA256 of the pair under a random key made
//! at start (the passcode itself is never stored): a client that reconnects with the same
//! credentials costs one hash at most once per cache lifetime. Failures are never cached (the
//! per-address back-off bounds how often a guesser makes the server hash).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use ring::hmac;
use switchboard_broker::Principal;

use crate::config::{ConfigError, User};

enum Stored {
    /// A PHC string (`$argon2id$...`).
    Hash(String),
    /// Plain text (a warning is logged at start).
    Plain(String),
}

struct Account {
    stored: Stored,
    groups: Vec<String>,
}

/// The verified-pairs cache: FIFO eviction at `capacity`.
struct VerifiedCache {
    capacity: usize,
    keys: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl VerifiedCache {
    fn contains(&self, k: &[u8; 32]) -> bool {
        self.keys.contains(k)
    }

    fn insert(&mut self, k: [u8; 32]) {
        if self.capacity == 0 || !self.keys.insert(k) {
            return;
        }
        self.order.push_back(k);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
    }
}

/// The configured users.
pub(crate) struct Users {
    accounts: HashMap<String, Account>,
    cache: Mutex<VerifiedCache>,
    cache_key: hmac::Key,
}

impl Users {
    /// Users from the configuration; a malformed hash is an error. Logins whose passcode is
    /// plain text are returned second, for the caller to warn about.
    pub(crate) fn new(
        users: &[User],
        cache_capacity: usize,
    ) -> Result<(Users, Vec<String>), ConfigError> {
        let mut accounts = HashMap::new();
        let mut plain = Vec::new();
        for u in users {
            let stored = if u.is_hashed() {
                let invalid = |e: &dyn std::fmt::Display| {
                    ConfigError::Invalid(format!(
                        "users: the passcode hash of `{}` is not a valid PHC string: {e}",
                        u.login
                    ))
                };
                let parsed = PasswordHash::new(&u.passcode).map_err(|e| invalid(&e))?;
                if parsed.hash.is_none() || parsed.salt.is_none() {
                    return Err(invalid(&"no salt or no hash"));
                }
                argon2::Params::try_from(&parsed).map_err(|e| invalid(&e))?;
                Stored::Hash(u.passcode.clone())
            } else {
                plain.push(u.login.clone());
                Stored::Plain(u.passcode.clone())
            };
            if accounts
                .insert(
                    u.login.clone(),
                    Account {
                        stored,
                        groups: u.groups.clone(),
                    },
                )
                .is_some()
            {
                return Err(ConfigError::Invalid(format!(
                    "users: `{}` is listed twice",
                    u.login
                )));
            }
        }
        let rng = ring::rand::SystemRandom::new();
        let cache_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| ConfigError::Invalid("no system randomness for the cache key".into()))?;
        Ok((
            Users {
                accounts,
                cache: Mutex::new(VerifiedCache {
                    capacity: cache_capacity,
                    keys: HashSet::new(),
                    order: VecDeque::new(),
                }),
                cache_key,
            },
            plain,
        ))
    }

    /// The principal for `login` if `passcode` is right.
    pub(crate) fn verify(&self, login: &str, passcode: &str) -> Option<Principal> {
        let Some(account) = self.accounts.get(login) else {
            // An unknown login costs what a known one does (one argon2 verification against
            // some stored hash, result ignored), so timing does not tell which logins exist.
            if let Some(phc) = self.accounts.values().find_map(|a| match &a.stored {
                Stored::Hash(h) => Some(h),
                Stored::Plain(_) => None,
            }) && let Ok(parsed) = PasswordHash::new(phc)
            {
                let _ = Argon2::default().verify_password(passcode.as_bytes(), &parsed);
            }
            return None;
        };
        let ok = match &account.stored {
            Stored::Plain(p) => constant_time_eq(p.as_bytes(), passcode.as_bytes()),
            Stored::Hash(phc) => self.verify_hash(login, phc, passcode),
        };
        ok.then(|| Principal::new(login).with_groups(account.groups.iter().cloned()))
    }

    fn verify_hash(&self, login: &str, phc: &str, passcode: &str) -> bool {
        let mut ctx = hmac::Context::with_key(&self.cache_key);
        ctx.update(&(login.len() as u64).to_be_bytes());
        ctx.update(login.as_bytes());
        ctx.update(passcode.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.sign().as_ref());
        if self.cache.lock().is_ok_and(|c| c.contains(&key)) {
            return true;
        }
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(passcode.as_bytes(), &parsed)
            .is_ok();
        if ok && let Ok(mut c) = self.cache.lock() {
            c.insert(key);
        }
        ok
    }

    /// Verified pairs cached now.
    #[cfg(test)]
    pub(crate) fn cached(&self) -> usize {
        self.cache.lock().map(|c| c.keys.len()).unwrap_or(0)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// An argon2id PHC hash of `password` with the crate's default parameters (19 MiB, 2
/// iterations, 1 lane: OWASP's minimum recommendation) and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| "no system randomness for the salt".to_owned())?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(login: &str, passcode: &str) -> User {
        User {
            login: login.into(),
            passcode: passcode.into(),
            groups: vec!["staff".into()],
        }
    }

    #[test]
    fn argon2_hashes_verify_and_refuse() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        let (users, plain) = Users::new(&[user("alice", &h)], 16).unwrap();
        assert!(plain.is_empty());
        assert!(users.verify("alice", "wrong").is_none());
        assert_eq!(users.cached(), 0, "failures are not cached");
        let p = users.verify("alice", "s3cret").unwrap();
        assert_eq!(p.name(), "alice");
        assert_eq!(p.groups(), ["staff"]);
        assert_eq!(users.cached(), 1);
        // From the cache now, and the cache does not accept other passcodes.
        assert!(users.verify("alice", "s3cret").is_some());
        assert!(users.verify("alice", "s3cret ").is_none());
        assert!(users.verify("bob", "s3cret").is_none());
    }

    #[test]
    fn plain_text_passcodes_load_and_are_reported() {
        let (users, plain) = Users::new(&[user("guest", "guest")], 16).unwrap();
        assert_eq!(plain, ["guest"]);
        assert!(users.verify("guest", "guest").is_some());
        assert!(users.verify("guest", "gues").is_none());
        assert!(users.verify("guest", "").is_none());
    }

    #[test]
    fn malformed_hashes_and_duplicates_are_config_errors() {
        let e = Users::new(&[user("a", "$argon2id$nonsense")], 16)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not a valid PHC string"), "{e}");
        assert!(e.contains("`a`"), "{e}");
        assert!(Users::new(&[user("a", "x"), user("a", "y")], 16).is_err());
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut c = VerifiedCache {
            capacity: 3,
            keys: HashSet::new(),
            order: VecDeque::new(),
        };
        for i in 0..10u8 {
            c.insert([i; 32]);
        }
        assert_eq!(c.keys.len(), 3);
        assert!(c.contains(&[9; 32]) && !c.contains(&[6; 32]));
    }
}
