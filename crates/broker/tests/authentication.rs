//! Authentication: failures counted, expiring authentications (a token's `exp`) closing the
//! session with `ERROR message:Token expired` on the fake clock, re-authentication in-band and
//! through the API, and transport tokens.

mod harness;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use harness::{Net, connect_frame};
use switchboard_broker::{
    AclAuthorizer, Action, AuthError, Authenticator, Broker, BrokerConfig, ConnectInfo, ErrorKind,
    Grant, ManualClock, Principal, StaticUsers,
};
use switchboard_stomp::{Command, Frame, Headers};

/// Tokens `name:expiry-ms[:topic,topic...]` in the passcode, or in the transport token when
/// there is none; the topics become subscribe grants (a token's channel claims).
struct Tokens;

impl Authenticator for Tokens {
    fn authenticate(&self, info: &ConnectInfo<'_>) -> Result<Option<Principal>, AuthError> {
        let refused = || AuthError {
            message: "Access refused".into(),
        };
        let token = info.passcode.or(info.token).ok_or_else(refused)?;
        let mut parts = token.split(':');
        let name = parts.next().ok_or_else(refused)?;
        let exp: u64 = parts
            .next()
            .and_then(|e| e.parse().ok())
            .ok_or_else(refused)?;
        let mut p =
            Principal::new(name).with_expiry(SystemTime::UNIX_EPOCH + Duration::from_millis(exp));
        if let Some(topics) = parts.next() {
            p = p.with_grants([Grant {
                actions: vec![Action::Subscribe],
                destinations: topics.split(',').map(str::to_owned).collect(),
            }]);
        }
        Ok(Some(p))
    }
}

fn token_net() -> (Net, ManualClock) {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let broker = Broker::builder(BrokerConfig {
        clock: clock.clock(),
        ..BrokerConfig::default()
    })
    .authenticator(Arc::new(Tokens))
    .build();
    (Net::with(broker), clock)
}

fn token(name: &str, clock: &ManualClock, valid_for: Duration) -> String {
    format!("{name}:{}", clock.now_ms() + valid_for.as_millis() as u64)
}

/// Moves the session clock and the wall clock together.
fn advance(net: &mut Net, clock: &ManualClock, by: Duration) {
    clock.advance(by);
    net.advance(by);
}

#[test]
fn failed_logins_are_counted_and_say_nothing_about_which_part_was_wrong() {
    let broker = Broker::builder(BrokerConfig::default())
        .authenticator(Arc::new(StaticUsers::new([("alice", "secret")])))
        .build();
    let mut net = Net::with(broker);
    let wrong_pass = net.connect_with(
        connect_frame("1.2")
            .header("login", "alice")
            .header("passcode", "nope"),
    );
    let a = net.expect_error(wrong_pass, "Access refused");
    let unknown = net.connect_with(
        connect_frame("1.2")
            .header("login", "zed")
            .header("passcode", "secret"),
    );
    let b = net.expect_error(unknown, "Access refused");
    assert_eq!(a.get("message"), b.get("message"));
    assert_eq!(a.body, b.body);
    let ok = net.connect_with(
        connect_frame("1.2")
            .header("login", "alice")
            .header("passcode", "secret"),
    );
    net.expect(ok, Command::Connected);
    net.broker.record_auth_failure();
    let m = net.broker.metrics();
    assert_eq!(m.auth_failures, 3);
    assert_eq!(m.errors_of(ErrorKind::AuthFailed), 2);
}

#[test]
fn an_expiring_authentication_closes_the_session_with_token_expired() {
    let (mut net, clock) = token_net();
    let t = token("alice", &clock, Duration::from_secs(30));
    let c = net.connect_with(connect_frame("1.2").header("passcode", t));
    net.expect(c, Command::Connected);
    let deadline = net.clients[c].session.auth_deadline().expect("a deadline");
    assert_eq!(deadline, net.now + Duration::from_secs(30));
    assert!(net.clients[c].session.poll_timeout() <= Some(deadline));
    advance(&mut net, &clock, Duration::from_secs(29));
    assert!(net.clients[c].session.is_connected());
    advance(&mut net, &clock, Duration::from_secs(2));
    let e = net.expect_error(c, "Token expired");
    assert!(e.get("message") == Some("Token expired"));
    let m = net.broker.metrics();
    assert_eq!(m.errors_of(ErrorKind::AuthExpired), 1);
    assert_eq!(m.auth_failures, 0);
}

#[test]
fn credentials_expired_on_arrival_are_refused() {
    let (mut net, clock) = token_net();
    let t = format!("alice:{}", clock.now_ms() - 1);
    let c = net.connect_with(connect_frame("1.2").header("passcode", t));
    net.expect_error(c, "Token expired");
}

#[test]
fn a_client_refreshes_its_token_with_a_second_connect() {
    let (mut net, clock) = token_net();
    let t = token("alice", &clock, Duration::from_secs(30));
    let c = net.connect_with(connect_frame("1.2").header("passcode", t));
    net.expect(c, Command::Connected);
    net.frame(c, harness::subscribe("s", "/topic/t"));
    advance(&mut net, &clock, Duration::from_secs(20));
    let fresh = token("alice", &clock, Duration::from_secs(60));
    net.frame(
        c,
        Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("passcode", fresh)
            .header("receipt", "refreshed"),
    );
    let r = net.expect(c, Command::Receipt);
    assert_eq!(r.get("receipt-id"), Some("refreshed"));
    // Past the first token's expiry: still connected, still subscribed.
    advance(&mut net, &clock, Duration::from_secs(30));
    assert!(net.clients[c].session.is_connected());
    let p = net.connect_with(
        connect_frame("1.2").header("passcode", token("bob", &clock, Duration::from_secs(600))),
    );
    net.expect(p, Command::Connected);
    net.frame(p, harness::send("/topic/t", "still here"));
    assert_eq!(harness::body(&net.message(c)), "still here");
    // Then the refreshed one runs out too.
    advance(&mut net, &clock, Duration::from_secs(31));
    net.expect_error(c, "Token expired");
}

#[test]
fn refreshing_as_someone_else_is_refused_and_counted() {
    let (mut net, clock) = token_net();
    let c = net.connect_with(
        connect_frame("1.2").header("passcode", token("alice", &clock, Duration::from_secs(30))),
    );
    net.expect(c, Command::Connected);
    net.frame(
        c,
        Frame::new(Command::Stomp)
            .header("accept-version", "1.2")
            .header("passcode", token("bob", &clock, Duration::from_secs(30))),
    );
    net.expect_error(c, "Access refused");
    let bad = net.connect_with(connect_frame("1.2").header("passcode", "garbage"));
    net.expect_error(bad, "Access refused");
    assert_eq!(net.broker.metrics().auth_failures, 2);
}

#[test]
fn the_transport_reauthenticates_through_the_api() {
    let (mut net, clock) = token_net();
    let c = net.connect_with(
        connect_frame("1.2").header("passcode", token("alice", &clock, Duration::from_secs(10))),
    );
    net.expect(c, Command::Connected);
    let headers = Headers::new();
    let fresh = token("alice", &clock, Duration::from_secs(100));
    let info = ConnectInfo {
        login: None,
        passcode: Some(&fresh),
        host: None,
        token: None,
        headers: &headers,
    };
    let now = net.now;
    net.session(c)
        .reauthenticate(&info, now)
        .expect("refreshed");
    assert_eq!(
        net.clients[c].session.auth_deadline(),
        Some(now + Duration::from_secs(100))
    );
    advance(&mut net, &clock, Duration::from_secs(50));
    assert!(net.clients[c].session.is_connected());
    let stale = token("alice", &clock, Duration::ZERO);
    let info = ConnectInfo {
        passcode: Some(&stale),
        ..info
    };
    let now = net.now;
    assert!(net.session(c).reauthenticate(&info, now).is_err());
    net.pump();
    net.expect_error(c, "Token expired");
}

#[test]
fn a_transport_token_reaches_the_authenticator() {
    let (mut net, clock) = token_net();
    let c = net.open();
    net.session(c)
        .set_token(token("carol", &clock, Duration::from_secs(60)));
    net.frame(c, connect_frame("1.2"));
    let connected = net.expect(c, Command::Connected);
    assert_eq!(connected.get("user-name"), Some("carol"));
}

#[test]
fn without_an_expiry_a_second_connect_stays_an_error() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect_as("1.2", "alice");
    assert_eq!(net.clients[c].session.auth_deadline(), None);
    net.frame(c, connect_frame("1.2").header("login", "alice"));
    net.expect_error(c, "Already connected");
}

#[test]
fn a_refreshed_token_with_fewer_grants_ends_subscriptions_it_no_longer_allows() {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let acl = AclAuthorizer::new(Vec::new(), false).unwrap();
    let broker = Broker::builder(BrokerConfig {
        clock: clock.clock(),
        ..BrokerConfig::default()
    })
    .authenticator(Arc::new(Tokens))
    .authorizer(Arc::new(acl))
    .build();
    let mut net = Net::with(broker);
    let first = format!(
        "{}:/topic/a,/topic/b",
        token("alice", &clock, Duration::from_secs(30))
    );
    let c = net.connect_with(connect_frame("1.2").header("passcode", first));
    net.expect(c, Command::Connected);
    net.frame(c, harness::subscribe("a", "/topic/a"));
    net.frame(
        c,
        harness::subscribe("b", "/topic/b").header("receipt", "r"),
    );
    net.expect(c, Command::Receipt);
    // Still allows what the session uses: fine.
    let same = format!(
        "{}:/topic/a,/topic/b,/topic/c",
        token("alice", &clock, Duration::from_secs(60))
    );
    net.frame(
        c,
        Frame::new(Command::Connect)
            .header("passcode", same)
            .header("receipt", "ok"),
    );
    net.expect(c, Command::Receipt);
    // No longer allows /topic/b.
    let fewer = format!(
        "{}:/topic/a",
        token("alice", &clock, Duration::from_secs(60))
    );
    net.frame(c, Frame::new(Command::Connect).header("passcode", fewer));
    net.expect_error(c, "Access denied: subscribe to /topic/b");
    assert_eq!(net.broker.metrics().errors_of(ErrorKind::AccessDenied), 1);
}
