//! The configured authenticator: JWT (HS256, RS256, ES256, JWKS; iss, aud, exp, nbf, leeway;
//! claims → principal, groups, grants), users, the back-off through `with_peer`, and the
//! `[[acl]]`/`[[queues]]` conversions.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use switchboard_broker::{
    AccessRequest, Action, Authenticator, Authorizer, ConnectInfo, Overflow, Principal,
};
use switchboard_stomp::Headers;

use super::jwt::{JwtVerifier, TokenError, looks_like_jwt};
use super::*;
use crate::config::{Config, Jwt};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn hs_config() -> Jwt {
    Jwt {
        secret: Some(SECRET.into()),
        ..Jwt::default()
    }
}

fn verifier(c: &Jwt) -> JwtVerifier {
    JwtVerifier::new(c).unwrap()
}

#[test]
fn hs256_token_gives_principal_with_expiry() {
    let exp = now_s() + 600;
    let t = hs256(&json!({"sub": "alice", "exp": exp}));
    assert!(looks_like_jwt(&t));
    let p = verifier(&hs_config()).verify(&t).unwrap();
    assert_eq!(p.name(), "alice");
    assert_eq!(
        p.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs(exp + jwt::DEFAULT_LEEWAY_S))
    );
    // Wrong secret, tampered claims, garbage.
    let other = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "alice", "exp": exp}),
        &EncodingKey::from_secret(b"another secret of enough length!!"),
    )
    .unwrap();
    let v = verifier(&hs_config());
    assert_eq!(v.verify(&other).unwrap_err(), TokenError::Invalid);
    let mut parts: Vec<&str> = t.split('.').collect();
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"sub": "root", "exp": exp}).to_string());
    parts[1] = &forged;
    assert_eq!(v.verify(&parts.join(".")).unwrap_err(), TokenError::Invalid);
    assert_eq!(v.verify("not a token").unwrap_err(), TokenError::Invalid);
    // exp is required; the principal claim too.
    assert_eq!(
        v.verify(&hs256(&json!({"sub": "alice"}))).unwrap_err(),
        TokenError::Claims
    );
    assert_eq!(
        v.verify(&hs256(&json!({"exp": exp}))).unwrap_err(),
        TokenError::NoPrincipal
    );
}

#[test]
fn exp_nbf_and_leeway() {
    let v = verifier(&Jwt {
        leeway_s: Some(5),
        ..hs_config()
    });
    let n = now_s();
    assert!(v.verify(&hs256(&json!({"sub": "a", "exp": n - 2}))).is_ok());
    assert_eq!(
        v.verify(&hs256(&json!({"sub": "a", "exp": n - 60})))
            .unwrap_err(),
        TokenError::Time
    );
    assert!(
        v.verify(&hs256(&json!({"sub": "a", "exp": n + 60, "nbf": n + 2})))
            .is_ok()
    );
    assert_eq!(
        v.verify(&hs256(&json!({"sub": "a", "exp": n + 600, "nbf": n + 60})))
            .unwrap_err(),
        TokenError::Time
    );
    let strict = verifier(&Jwt {
        leeway_s: Some(0),
        ..hs_config()
    });
    assert_eq!(
        strict
            .verify(&hs256(&json!({"sub": "a", "exp": n - 2})))
            .unwrap_err(),
        TokenError::Time
    );
}

#[test]
fn issuer_and_audience() {
    let v = verifier(&Jwt {
        issuer: Some("https://issuer.example".into()),
        audience: Some("switchboard".into()),
        ..hs_config()
    });
    let exp = now_s() + 60;
    let ok = json!({"sub": "a", "exp": exp, "iss": "https://issuer.example", "aud": "switchboard"});
    assert!(v.verify(&hs256(&ok)).is_ok());
    let many = json!({"sub": "a", "exp": exp, "iss": "https://issuer.example", "aud": ["x", "switchboard"]});
    assert!(v.verify(&hs256(&many)).is_ok());
    for bad in [
        json!({"sub": "a", "exp": exp, "iss": "https://evil.example", "aud": "switchboard"}),
        json!({"sub": "a", "exp": exp, "iss": "https://issuer.example", "aud": "other"}),
        json!({"sub": "a", "exp": exp, "aud": "switchboard"}),
        json!({"sub": "a", "exp": exp, "iss": "https://issuer.example"}),
    ] {
        assert_eq!(
            v.verify(&hs256(&bad)).unwrap_err(),
            TokenError::Claims,
            "{bad}"
        );
    }
    // Without configured iss/aud, tokens carrying them are accepted.
    assert!(verifier(&hs_config()).verify(&hs256(&ok)).is_ok());
}

#[test]
fn claims_become_groups_and_grants() {
    let v = verifier(&Jwt {
        principal_claim: Some("preferred_username".into()),
        groups_claim: Some("roles".into()),
        grants_claim: Some("channels".into()),
        ..hs_config()
    });
    let exp = now_s() + 60;
    let p = v
        .verify(&hs256(&json!({
            "sub": "id-123", "preferred_username": "bob", "exp": exp,
            "roles": ["staff", "admins"],
            "channels": {"subscribe": ["/topic/room.*"], "send": ["/app/chat"], "fly": ["/x"]}
        })))
        .unwrap();
    assert_eq!(p.name(), "bob");
    assert_eq!(p.groups(), ["staff", "admins"]);
    assert!(p.grants_allow(Action::Subscribe, "/topic/room.7", None));
    assert!(!p.grants_allow(Action::Send, "/topic/room.7", None));
    assert!(p.grants_allow(Action::Send, "/app/chat", None));
    // Space-separated groups, a list of channels (subscribe), a list of grant objects.
    let p = v
        .verify(&hs256(&json!({
            "preferred_username": "c", "exp": exp, "roles": "a b",
            "channels": ["/topic/news"]
        })))
        .unwrap();
    assert_eq!(p.groups(), ["a", "b"]);
    assert!(p.grants_allow(Action::Subscribe, "/topic/news", None));
    assert!(!p.grants_allow(Action::Send, "/topic/news", None));
    let p = v
        .verify(&hs256(&json!({
            "preferred_username": "d", "exp": exp,
            "channels": [{"actions": ["send", "subscribe"], "destinations": ["/queue/d"]}]
        })))
        .unwrap();
    assert!(p.grants_allow(Action::Send, "/queue/d", None));
    assert!(p.grants_allow(Action::Subscribe, "/queue/d", None));
    assert!(p.groups().is_empty());
}

#[test]
fn rs256_with_a_pem_key_and_a_jwks_file() {
    let private = std::fs::read(data("rsa_test_private.pem")).unwrap();
    let key = EncodingKey::from_rsa_pem(&private).unwrap();
    let exp = now_s() + 60;
    let t = encode(
        &Header::new(Algorithm::RS256),
        &json!({"sub": "rsa", "exp": exp}),
        &key,
    )
    .unwrap();
    let pem = verifier(&Jwt {
        public_key: Some(data("rsa_test_public.pem")),
        ..Jwt::default()
    });
    assert_eq!(pem.verify(&t).unwrap().name(), "rsa");
    // An HS256 token (e.g. signed with the public key as a secret) is refused.
    let public = std::fs::read(data("rsa_test_public.pem")).unwrap();
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "x", "exp": exp}),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_eq!(pem.verify(&confused).unwrap_err(), TokenError::Invalid);

    let jwks = verifier(&Jwt {
        jwks_file: Some(data("rsa_test_jwks.json")),
        ..Jwt::default()
    });
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa-test-1".into());
    let with_kid = encode(&h, &json!({"sub": "rsa", "exp": exp}), &key).unwrap();
    assert_eq!(jwks.verify(&with_kid).unwrap().name(), "rsa");
    // One key in the set: a token without kid uses it; an unknown kid is refused.
    assert!(jwks.verify(&t).is_ok());
    h.kid = Some("other".into());
    let unknown = encode(&h, &json!({"sub": "rsa", "exp": exp}), &key).unwrap();
    assert_eq!(jwks.verify(&unknown).unwrap_err(), TokenError::Invalid);
}

#[test]
fn es256_with_a_pem_key_and_a_jwks_file() {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let dir = std::env::temp_dir().join(format!("switchboard-es256-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let public = dir.join("ec_public.pem");
    std::fs::write(&public, kp.public_key_pem()).unwrap();
    let raw = kp.public_key_raw();
    assert_eq!(raw.len(), 65);
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = dir.join("jwks.json");
    std::fs::write(
        &jwks,
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "ES256",
                         "x": b64(&raw[1..33]), "y": b64(&raw[33..])}]})
        .to_string(),
    )
    .unwrap();
    let key = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap();
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("ec-1".into());
    let t = encode(&h, &json!({"sub": "ec", "exp": now_s() + 60}), &key).unwrap();
    for c in [
        Jwt {
            public_key: Some(public.clone()),
            ..Jwt::default()
        },
        Jwt {
            jwks_file: Some(jwks.clone()),
            ..Jwt::default()
        },
    ] {
        assert_eq!(verifier(&c).verify(&t).unwrap().name(), "ec");
    }
    // Another EC key's signature is refused.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let forged = encode(
        &h,
        &json!({"sub": "ec", "exp": now_s() + 60}),
        &EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(
        verifier(&Jwt {
            public_key: Some(public),
            ..Jwt::default()
        })
        .verify(&forged)
        .is_err()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_jwt_configurations_are_errors() {
    for (c, needle) in [
        (Jwt::default(), "exactly one"),
        (
            Jwt {
                secret: Some("short".into()),
                ..Jwt::default()
            },
            "at least 32 bytes",
        ),
        (
            Jwt {
                public_key: Some(data("missing.pem")),
                ..Jwt::default()
            },
            "cannot read",
        ),
        (
            Jwt {
                public_key: Some(data("README.md")),
                ..Jwt::default()
            },
            "neither an RSA nor an EC",
        ),
        (
            Jwt {
                jwks_file: Some(data("rsa_test_public.pem")),
                ..Jwt::default()
            },
            "not a JWKS",
        ),
        (
            Jwt {
                secret: Some(SECRET.into()),
                jwks_file: Some(data("rsa_test_jwks.json")),
                ..Jwt::default()
            },
            "exactly one",
        ),
    ] {
        let e = JwtVerifier::new(&c).err().unwrap().to_string();
        assert!(e.contains(needle), "{e}");
    }
}

fn connect(
    a: &dyn Authenticator,
    login: Option<&str>,
    passcode: Option<&str>,
    token: Option<&str>,
) -> Result<Option<Principal>, switchboard_broker::AuthError> {
    let headers = Headers::new();
    a.authenticate(&ConnectInfo {
        login,
        passcode,
        host: None,
        token,
        headers: &headers,
    })
}

fn config(toml: &str) -> Config {
    let c = Config::from_toml(toml).unwrap();
    c.validate().unwrap();
    c
}

fn authenticator_of(c: &Config) -> ConfigAuthenticator {
    ConfigAuthenticator::from_config(c).unwrap().0.unwrap()
}

#[test]
fn where_tokens_are_accepted() {
    let c = config(&format!(
        "[auth.jwt]\nsecret = \"{SECRET}\"\nlogin_marker = \"token\"\n\
         [[users]]\nlogin = \"guest\"\npasscode = \"guest\"\n"
    ));
    let a = authenticator_of(&c);
    let t = hs256(&json!({"sub": "alice", "exp": now_s() + 60}));
    let name = |r: Result<Option<Principal>, _>| r.ok().flatten().map(|p| p.name().to_owned());
    // passcode with the marker, with an empty login, with no login; the transport's token.
    assert_eq!(
        name(connect(&a, Some("token"), Some(&t), None)).as_deref(),
        Some("alice")
    );
    assert_eq!(
        name(connect(&a, Some(""), Some(&t), None)).as_deref(),
        Some("alice")
    );
    assert_eq!(
        name(connect(&a, None, Some(&t), None)).as_deref(),
        Some("alice")
    );
    assert_eq!(
        name(connect(&a, None, None, Some(&t))).as_deref(),
        Some("alice")
    );
    // The users still work beside tokens; a bad token is refused with the same message as a
    // bad passcode.
    assert_eq!(
        name(connect(&a, Some("guest"), Some("guest"), None)).as_deref(),
        Some("guest")
    );
    let e1 = connect(&a, Some("token"), Some("x.y.z"), None).unwrap_err();
    let e2 = connect(&a, Some("guest"), Some("nope"), None).unwrap_err();
    let e3 = connect(&a, Some("nobody"), Some("guest"), None).unwrap_err();
    assert_eq!(e1, e2);
    assert_eq!(e2, e3);
    assert_eq!(e1.message, "Access refused");
    // A login that is not the marker is a user login even with a token as passcode.
    assert!(connect(&a, Some("alice"), Some(&t), None).is_err());
    // No credentials at all: refused when authentication is configured.
    assert!(connect(&a, None, None, None).is_err());
}

#[test]
fn nothing_configured_installs_no_authenticator() {
    let c = config("");
    assert!(ConfigAuthenticator::from_config(&c).unwrap().0.is_none());
    assert!(authenticator(&c).is_none());
}

#[test]
fn repeated_failures_from_one_address_are_refused_without_checking() {
    let c = config(
        "[[users]]\nlogin = \"guest\"\npasscode = \"guest\"\n\
         [auth.backoff]\nmax_failures = 3\nwindow_ms = 60000\ndelay_ms = 60000\n",
    );
    let a = authenticator_of(&c);
    let bad: IpAddr = [192, 0, 2, 1].into();
    let good: IpAddr = [192, 0, 2, 2].into();
    for _ in 0..3 {
        assert!(with_peer(bad, || connect(&a, Some("guest"), Some("x"), None)).is_err());
    }
    assert!(with_peer(bad, || connect(&a, Some("guest"), Some("guest"), None)).is_ok());
    for _ in 0..4 {
        assert!(with_peer(bad, || connect(&a, Some("guest"), Some("x"), None)).is_err());
    }
    // Now blocked: the right passcode is refused too, from that address only.
    assert!(with_peer(bad, || connect(&a, Some("guest"), Some("guest"), None)).is_err());
    assert!(with_peer(good, || connect(&a, Some("guest"), Some("guest"), None)).is_ok());
    // Without a peer (an embedder driving sessions itself) there is no back-off.
    assert!(connect(&a, Some("guest"), Some("guest"), None).is_ok());
}

#[test]
fn acl_entries_become_rules() {
    let c = config(
        r#"
        [auth]
        default = "deny"
        [[acl]]
        who = "group:admins"
        destinations = ["/**"]
        actions = ["subscribe", "send"]
        allow = true
        [[acl]]
        who = "anyone"
        destinations = ["/topic/public.**"]
        actions = ["subscribe"]
        allow = true
        [[acl]]
        who = "user:mallory"
        destinations = ["/app/chat"]
        actions = ["send"]
        allow = false
        [[acl]]
        who = "authenticated"
        destinations = ["/app/chat"]
        actions = ["send"]
        allow = true
        "#,
    );
    let acl = acl(&c).unwrap().unwrap();
    let admin = Principal::new("root").with_groups(["admins"]);
    let alice = Principal::new("alice");
    let mallory = Principal::new("mallory");
    let ask = |p: Option<&Principal>, action, destination| {
        acl.authorize(&AccessRequest {
            principal: p,
            action,
            destination,
            pattern: None,
        })
    };
    assert!(ask(Some(&admin), Action::Send, "/queue/anything"));
    assert!(ask(None, Action::Subscribe, "/topic/public.news"));
    assert!(!ask(None, Action::Send, "/topic/public.news"));
    assert!(ask(Some(&alice), Action::Send, "/app/chat"));
    assert!(!ask(Some(&mallory), Action::Send, "/app/chat"));
    assert!(!ask(None, Action::Send, "/app/chat"));
    assert!(!ask(Some(&alice), Action::Subscribe, "/topic/private"));
    // No rules and default allow: no authorizer at all.
    assert!(acl_none());
}

fn acl_none() -> bool {
    acl(&config("")).unwrap().is_none()
}

#[test]
fn bad_acl_and_queue_entries_are_refused() {
    for (toml, needle) in [
        ("[auth]\ndefault = \"maybe\"", "auth.default"),
        (
            "[[acl]]\nwho = \"alice\"\ndestinations = [\"/x\"]\nactions = [\"send\"]\nallow = true",
            "acl rule 1: who",
        ),
        (
            "[[acl]]\nwho = \"anyone\"\ndestinations = [\"/x\"]\nactions = [\"publish\"]\nallow = true",
            "action `publish`",
        ),
        (
            "[[acl]]\nwho = \"anyone\"\ndestinations = []\nactions = [\"send\"]\nallow = true",
            "no destinations",
        ),
        (
            "[[queues]]\npattern = \"/queue/a\"\noverflow = \"spill\"",
            "overflow",
        ),
        (
            "[[queues]]\npattern = \"/queue/a\"\nmax_redeliveries = -2",
            "max_redeliveries",
        ),
        (
            "[[queues]]\npattern = \"/queue/a\"\nmax_length = 0",
            "max_length",
        ),
        ("[[queues]]\npattern = \"/queue/a\"\nttl_ms = 0", "ttl_ms"),
        ("[[queues]]\npattern = \"queue\"", "must start with `/`"),
        (
            "[[queues]]\npattern = \"/queue/a\"\ndead_letter = \"dlq\"",
            "dead_letter",
        ),
        ("[auth.backoff]\nmax_failures = 0", "auth.backoff"),
        (
            "[[users]]\nlogin = \"a\"\npasscode = \"$argon2id$v=19$bad\"",
            "PHC",
        ),
        ("[auth.jwt]\nsecret = \"short\"", "32 bytes"),
    ] {
        let c = Config::from_toml(toml).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(needle), "{toml}: {e}");
    }
    assert!(Config::from_toml("[[acl]]\nwho = \"anyone\"\nallow = true").is_err());
    assert!(Config::from_toml("[[queues]]\npattern = \"/q\"\nttl = 5").is_err());
}

#[test]
fn queue_entries_become_policies() {
    let c = config(
        r#"
        [[queues]]
        pattern = "/queue/jobs.*"
        max_redeliveries = 3
        [[queues]]
        pattern = "/queue/ticker"
        max_length = 100
        overflow = "drop-oldest"
        ttl_ms = 30000
        dead_letter = ""
        [[queues]]
        pattern = "/queue/forever"
        max_redeliveries = -1
        dead_letter = "/queue/graveyard"
        "#,
    );
    let q = queue_policies(&c).unwrap();
    assert_eq!(q.len(), 3);
    assert_eq!(q[0].max_redeliveries, Some(3));
    assert_eq!(q[0].dead_letter.as_deref(), Some("/queue/DLQ.{name}"));
    assert_eq!(q[0].overflow, Overflow::Refuse);
    assert_eq!(q[1].max_length, Some(100));
    assert_eq!(q[1].overflow, Overflow::DropOldest);
    assert_eq!(q[1].ttl, Some(Duration::from_secs(30)));
    assert_eq!(q[1].dead_letter, None);
    assert_eq!(q[2].max_redeliveries, None);
    assert_eq!(q[2].dead_letter.as_deref(), Some("/queue/graveyard"));
}

#[test]
fn secrets_are_not_in_debug_output() {
    let c = config(&format!(
        "[auth.jwt]\nsecret = \"{SECRET}\"\n[[users]]\nlogin = \"a\"\npasscode = \"hunter2hunter2\"\n"
    ));
    let d = format!("{c:?}");
    assert!(!d.contains(SECRET), "{d}");
    assert!(!d.contains("hunter2"), "{d}");
}
