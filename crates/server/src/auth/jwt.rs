//! `[auth.jwt]`: JWT bearer tokens. HS256 with a shared secret; RS256 or ES256 with a PEM
//! public key or a JWKS file. `exp` is required; `exp`, `nbf`, and (when configured) `iss` and
//! `aud` are checked with `leeway_s` of clock skew. The algorithm comes from the key, never
//! from the token (a token whose header names another algorithm is refused).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;
use switchboard_broker::{Action, Grant, Principal};

use crate::config::{ConfigError, Jwt};

/// Default `leeway_s`.
pub const DEFAULT_LEEWAY_S: u64 = 30;
/// Default `login_marker`.
pub const DEFAULT_LOGIN_MARKER: &str = "jwt";

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// A configured token verifier.
pub(crate) struct JwtVerifier {
    keys: Vec<Key>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    principal_claim: String,
    groups_claim: Option<String>,
    grants_claim: Option<String>,
    pub(crate) login_marker: String,
}

/// Why a token was refused (for tests and debug logs; never sent to the client).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TokenError {
    /// Not a JWT, bad signature, wrong algorithm or unknown key.
    Invalid,
    /// `exp` passed (beyond the leeway), or `nbf` not reached.
    Time,
    /// `iss` or `aud` wrong.
    Claims,
    /// No principal claim.
    NoPrincipal,
}

impl JwtVerifier {
    /// Loads the keys named by the configuration.
    pub(crate) fn new(c: &Jwt) -> Result<JwtVerifier, ConfigError> {
        let invalid = |m: String| ConfigError::Invalid(format!("auth.jwt: {m}"));
        let sources = usize::from(c.secret.is_some())
            + usize::from(c.public_key.is_some())
            + usize::from(c.jwks_file.is_some());
        if sources != 1 {
            return Err(invalid(
                "set exactly one of `secret`, `public_key` and `jwks_file`".into(),
            ));
        }
        let mut keys = Vec::new();
        if let Some(secret) = &c.secret {
            if secret.len() < 32 {
                return Err(invalid(
                    "`secret` must be at least 32 bytes (HS256 needs 256 bits)".into(),
                ));
            }
            keys.push(Key {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        if let Some(path) = &c.public_key {
            let pem = std::fs::read(path)
                .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
            let key = if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                Key {
                    kid: None,
                    alg: Algorithm::RS256,
                    key: k,
                }
            } else if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
                Key {
                    kid: None,
                    alg: Algorithm::ES256,
                    key: k,
                }
            } else {
                return Err(invalid(format!(
                    "{} is neither an RSA nor an EC P-256 public key in PEM",
                    path.display()
                )));
            };
            keys.push(key);
        }
        if let Some(path) = &c.jwks_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|e| invalid(format!("{} is not a JWKS: {e}", path.display())))?;
            for jwk in &set.keys {
                let alg = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    _ => continue,
                };
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| invalid(format!("{}: a key is unusable: {e}", path.display())))?;
                keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    key,
                });
            }
            if keys.is_empty() {
                return Err(invalid(format!("{} has no RSA or EC key", path.display())));
            }
        }
        Ok(JwtVerifier {
            keys,
            issuer: c.issuer.clone(),
            audience: c.audience.clone(),
            leeway: c.leeway_s.unwrap_or(DEFAULT_LEEWAY_S),
            principal_claim: c.principal_claim.clone().unwrap_or_else(|| "sub".into()),
            groups_claim: c.groups_claim.clone(),
            grants_claim: c.grants_claim.clone(),
            login_marker: c
                .login_marker
                .clone()
                .unwrap_or_else(|| DEFAULT_LOGIN_MARKER.into()),
        })
    }

    /// Verifies `token` and builds its principal (name, groups, grants, expiry).
    pub(crate) fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Invalid)?;
        let key = self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .find(|k| match (&k.kid, &header.kid) {
                (Some(a), Some(b)) => a == b,
                (None, _) => true,
                (Some(_), None) => self.keys.len() == 1,
            })
            .ok_or(TokenError::Invalid)?;
        let mut v = Validation::new(key.alg);
        v.leeway = self.leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        required.extend(self.issuer.as_ref().map(|_| "iss"));
        required.extend(self.audience.as_ref().map(|_| "aud"));
        v.set_required_spec_claims(&required);
        match &self.issuer {
            Some(i) => v.set_issuer(&[i]),
            None => v.iss = None,
        }
        match &self.audience {
            Some(a) => v.set_audience(&[a]),
            None => v.validate_aud = false,
        }
        let data = decode::<Value>(token, &key.key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature | K::ImmatureSignature => TokenError::Time,
                K::InvalidIssuer | K::InvalidAudience | K::MissingRequiredClaim(_) => {
                    TokenError::Claims
                }
                _ => TokenError::Invalid,
            }
        })?;
        let claims = data.claims;
        let name = claims
            .get(&self.principal_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::NoPrincipal)?;
        let mut p = Principal::new(name);
        if let Some(g) = self.groups_claim.as_ref().and_then(|c| claims.get(c)) {
            p = p.with_groups(string_list(g));
        }
        if let Some(g) = self.grants_claim.as_ref().and_then(|c| claims.get(c)) {
            p = p.with_grants(grants(g));
        }
        if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
            // The session ends when the token would be refused: exp plus the leeway.
            let at = UNIX_EPOCH + Duration::from_secs(exp.saturating_add(self.leeway));
            p = p.with_expiry(at.min(far_future()));
        }
        Ok(p)
    }
}

fn far_future() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1 << 40)
}

/// An array of strings, or one space-separated string (OAuth's `scope` style).
fn string_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Grants from a claim: `{"subscribe": [...], "send": [...]}`, an array of
/// `{"actions": [...], "destinations": [...]}`, or an array of destination strings
/// (Centrifugo's `channels`: subscribe only). Unknown actions are ignored.
fn grants(v: &Value) -> Vec<Grant> {
    let actions = |v: &Value| -> Vec<Action> {
        string_list(v)
            .iter()
            .filter_map(|a| Action::parse(a))
            .collect()
    };
    match v {
        Value::Object(m) => m
            .iter()
            .filter_map(|(action, dests)| {
                let a = Action::parse(action)?;
                Some(Grant {
                    actions: vec![a],
                    destinations: string_list(dests),
                })
            })
            .filter(|g| !g.destinations.is_empty())
            .collect(),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            let destinations = string_list(v);
            if destinations.is_empty() {
                Vec::new()
            } else {
                vec![Grant {
                    actions: vec![Action::Subscribe],
                    destinations,
                }]
            }
        }
        Value::Array(items) => items
            .iter()
            .filter_map(|g| {
                let a = actions(g.get("actions")?);
                let d = string_list(g.get("destinations")?);
                (!a.is_empty() && !d.is_empty()).then_some(Grant {
                    actions: a,
                    destinations: d,
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether `s` looks like a compact JWS (three base64url parts separated by dots).
pub(crate) fn looks_like_jwt(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}
