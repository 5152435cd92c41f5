//! Authorization: ACL rules at SUBSCRIBE and SEND, ERROR-then-close on denial, the privacy of
//! user destinations, grants carried by a principal, and the per-session SEND cache.

mod harness;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use harness::{Net, body, connect_frame, send, subscribe};
use switchboard_broker::{
    AccessRequest, AclAuthorizer, AclRule, Action, AuthError, Authenticator, Authorizer, Broker,
    BrokerConfig, ConnectInfo, ErrorKind, Grant, Principal,
};
use switchboard_stomp::{Command, Frame};

fn rule(who: &str, dests: &[&str], actions: &[Action], allow: bool) -> AclRule {
    AclRule {
        who: switchboard_broker::Who::parse(who).expect("who"),
        destinations: dests.iter().map(|d| d.to_string()).collect(),
        actions: actions.to_vec(),
        allow,
    }
}

fn net_with(rules: Vec<AclRule>, default_allow: bool) -> Net {
    let acl = AclAuthorizer::new(rules, default_allow).expect("valid rules");
    Net::with(
        Broker::builder(BrokerConfig::default())
            .authorizer(Arc::new(acl))
            .build(),
    )
}

/// Logins `name` or `name+group1+group2` (groups after `+`); grants for logins starting
/// with `granted`.
struct GroupLogins;

impl Authenticator for GroupLogins {
    fn authenticate(&self, info: &ConnectInfo<'_>) -> Result<Option<Principal>, AuthError> {
        let Some(login) = info.login else {
            return Ok(None);
        };
        let mut parts = login.split('+');
        let name = parts.next().unwrap_or_default();
        let mut p = Principal::new(name).with_groups(parts);
        if name.starts_with("granted") {
            p = p.with_grants([Grant {
                actions: vec![Action::Subscribe, Action::Send],
                destinations: vec!["/topic/room.7".into()],
            }]);
        }
        Ok(Some(p))
    }
}

fn net_with_groups(rules: Vec<AclRule>, default_allow: bool) -> Net {
    let acl = AclAuthorizer::new(rules, default_allow).expect("valid rules");
    Net::with(
        Broker::builder(BrokerConfig::default())
            .authenticator(Arc::new(GroupLogins))
            .authorizer(Arc::new(acl))
            .build(),
    )
}

#[test]
fn denied_subscribe_gets_an_error_naming_action_and_destination_then_closes() {
    let mut net = net_with(
        vec![rule(
            "anyone",
            &["/topic/public/**"],
            &[Action::Subscribe],
            true,
        )],
        false,
    );
    let c = net.connect("1.2");
    net.frame(
        c,
        subscribe("ok", "/topic/public/news").header("receipt", "r"),
    );
    net.expect(c, Command::Receipt);
    net.frame(c, subscribe("no", "/topic/secret").header("receipt", "r2"));
    let e = net.expect_error(c, "Access denied: subscribe to /topic/secret");
    assert_eq!(e.get("receipt-id"), Some("r2"));
    assert!(body(&e).contains("anonymous"), "{}", body(&e));
    let m = net.broker.metrics();
    assert_eq!(m.errors_of(ErrorKind::AccessDenied), 1);
    assert_eq!(
        m.subscriptions, 0,
        "the session closed, its subscription went with it"
    );
}

#[test]
fn denied_send_gets_an_error_and_publishes_nothing() {
    let mut net = net_with(
        vec![
            rule("anyone", &["/topic/**"], &[Action::Subscribe], true),
            rule("anyone", &["/topic/chat"], &[Action::Send], true),
        ],
        false,
    );
    let reader = net.connect("1.2");
    net.frame(reader, subscribe("s", "/topic/**"));
    let c = net.connect_as("1.2", "alice");
    net.frame(c, send("/topic/chat", "fine"));
    assert_eq!(body(&net.message(reader)), "fine");
    net.frame(c, send("/topic/alerts", "forged"));
    let e = net.expect_error(c, "Access denied: send to /topic/alerts");
    assert!(body(&e).contains("user 'alice'"));
    net.expect_nothing(reader);
    assert_eq!(net.broker.metrics().errors_of(ErrorKind::AccessDenied), 1);
}

#[test]
fn rules_by_login_group_authenticated_and_anonymous() {
    let rules = vec![
        rule("user:mallory", &["/**"], &Action::ALL, false),
        rule("group:ops", &["/queue/ops.*"], &Action::ALL, true),
        rule("authenticated", &["/queue/members"], &Action::ALL, true),
        rule("anonymous", &["/topic/lobby"], &Action::ALL, true),
    ];
    let cases: [(Option<&str>, &str, bool); 8] = [
        (Some("bob+ops"), "/queue/ops.alerts", true),
        (Some("bob+dev"), "/queue/ops.alerts", false),
        (Some("bob"), "/queue/members", true),
        (Some("mallory+ops"), "/queue/ops.alerts", false),
        (Some("mallory"), "/queue/members", false),
        (None, "/queue/members", false),
        (None, "/topic/lobby", true),
        (Some("bob"), "/topic/lobby", false),
    ];
    for (login, dest, allowed) in cases {
        let mut net = net_with_groups(rules.clone(), false);
        let mut connect = connect_frame("1.2");
        if let Some(l) = login {
            connect = connect.header("login", l);
        }
        let c = net.connect_with(connect);
        net.expect(c, Command::Connected);
        net.frame(c, subscribe("s", dest).header("receipt", "r"));
        if allowed {
            net.expect(c, Command::Receipt);
        } else {
            net.expect_error(c, "Access denied");
        }
        let c = net.connect_with(match login {
            Some(l) => connect_frame("1.2").header("login", l),
            None => connect_frame("1.2"),
        });
        net.expect(c, Command::Connected);
        net.frame(c, send(dest, "x").header("receipt", "r"));
        if allowed {
            net.expect(c, Command::Receipt);
        } else {
            net.expect_error(c, "Access denied");
        }
    }
}

#[test]
fn sends_to_app_destinations_are_ruled_apart_from_broker_destinations() {
    let acl = AclAuthorizer::new(
        vec![
            rule("authenticated", &["/app/**"], &[Action::Send], true),
            rule("anyone", &["/topic/**"], &[Action::Subscribe], true),
            rule("anyone", &["/topic/greetings"], &[Action::Send], true),
        ],
        false,
    )
    .unwrap();
    let broker = Broker::builder(BrokerConfig::default())
        .authorizer(Arc::new(acl))
        .handler("/app/greet", |_m, ctx| {
            // Handlers are server code: what they publish is not checked.
            ctx.publish(
                "/topic/announcements",
                &Default::default(),
                bytes::Bytes::from_static(b"hi"),
            )?;
            Ok(())
        })
        .build();
    let mut net = Net::with(broker);
    let reader = net.connect("1.2");
    net.frame(reader, subscribe("s", "/topic/**"));
    let alice = net.connect_as("1.2", "alice");
    net.frame(alice, send("/app/greet", "x"));
    assert_eq!(body(&net.message(reader)), "hi");
    // /app/greetings → /topic/greetings by the default mapping: both are allowed.
    net.frame(alice, send("/app/greetings", "mapped"));
    assert_eq!(body(&net.message(reader)), "mapped");
    // A mapping cannot be used to reach a broker destination the rules close.
    net.frame(alice, send("/app/secret", "x"));
    net.expect_error(alice, "Access denied: send to /topic/secret");
    net.expect_nothing(reader);
    let anon = net.connect("1.2");
    net.frame(anon, send("/app/greet", "x"));
    net.expect_error(anon, "Access denied: send to /app/greet");
}

#[test]
fn wildcard_subscriptions_must_be_covered_and_not_touch_a_deny_rule() {
    let mut net = net_with(
        vec![
            rule("anyone", &["/topic/secret/**"], &[Action::Subscribe], false),
            rule("anyone", &["/topic/**"], &[Action::Subscribe], true),
        ],
        false,
    );
    let c = net.connect("1.2");
    net.frame(c, subscribe("a", "/topic/news/*").header("receipt", "r"));
    net.expect(c, Command::Receipt);
    net.frame(c, subscribe("b", "/topic/**"));
    net.expect_error(c, "Access denied: subscribe to /topic/**");
}

#[test]
fn a_denied_send_in_a_transaction_is_refused_when_it_arrives() {
    let mut net = net_with(
        vec![rule("anyone", &["/queue/open"], &[Action::Send], true)],
        false,
    );
    let c = net.connect("1.2");
    net.frame(c, Frame::new(Command::Begin).header("transaction", "t"));
    net.frame(c, send("/queue/open", "x").header("transaction", "t"));
    net.frame(c, send("/queue/closed", "x").header("transaction", "t"));
    net.expect_error(c, "Access denied: send to /queue/closed");
    assert_eq!(net.broker.metrics().backend.pending, 0, "nothing committed");
}

#[test]
fn user_destinations_are_private_whatever_the_rules_say() {
    // Even a rule opening every user destination to everyone does not let bob read alice's.
    let mut net = net_with(vec![rule("anyone", &["/**"], &Action::ALL, true)], false);
    let alice = net.connect_as("1.2", "alice");
    net.frame(alice, subscribe("in", "/user/queue/inbox"));
    let bob = net.connect_as("1.2", "bob");
    net.frame(bob, subscribe("in", "/user/queue/inbox"));
    // A SUBSCRIBE to /user/alice/... means bob's own destination "alice/queue/inbox".
    net.frame(bob, subscribe("spy", "/user/alice/queue/inbox"));
    let carol = net.connect_as("1.2", "carol");
    net.frame(carol, send("/user/alice/queue/inbox", "for alice"));
    let m = net.message(alice);
    assert_eq!(body(&m), "for alice");
    assert_eq!(m.get("destination"), Some("/user/queue/inbox"));
    net.expect_nothing(bob);
}

#[test]
fn sending_to_another_users_destination_is_allowed_unless_a_rule_denies_it() {
    let mut net = net_with(
        vec![
            rule(
                "group:support",
                &["/user/*/queue/replies"],
                &[Action::Send],
                true,
            ),
            rule("anyone", &["/user/**"], &[Action::Send], false),
        ],
        true,
    );
    let alice = net.connect_as("1.2", "alice");
    net.frame(alice, subscribe("r", "/user/queue/replies"));
    let mallory = net.connect_as("1.2", "mallory");
    net.frame(mallory, send("/user/alice/queue/replies", "phish"));
    net.expect_error(mallory, "Access denied: send to /user/alice/queue/replies");
    net.expect_nothing(alice);
    // Without rules (the default), users message each other as in Spring.
    let mut open = Net::new(BrokerConfig::default());
    let a = open.connect_as("1.2", "alice");
    open.frame(a, subscribe("r", "/user/queue/replies"));
    let b = open.connect_as("1.2", "bob");
    open.frame(b, send("/user/alice/queue/replies", "hello"));
    assert_eq!(body(&open.message(a)), "hello");
}

#[test]
fn a_name_with_a_slash_cannot_read_someone_elses_user_destination() {
    let mut net = Net::new(BrokerConfig::default());
    let alice = net.connect_as("1.2", "alice");
    net.frame(alice, subscribe("in", "/user/queue/inbox"));
    // Its key would be /user/alice/queue/inbox: alice's.
    let tricky = net.connect_as("1.2", "alice/queue");
    net.frame(tricky, subscribe("x", "/user/inbox"));
    let e = net.expect_error(tricky, "Access denied: subscribe to /user/inbox");
    assert!(body(&e).contains("'/'"));
    let p = net.connect("1.2");
    net.frame(p, send("/user/alice/queue/inbox", "private"));
    assert_eq!(body(&net.message(alice)), "private");
}

#[test]
fn grants_carried_by_the_principal_allow_beyond_the_rules() {
    let mut net = net_with_groups(Vec::new(), false);
    let g = net.connect_as("1.2", "granted-dave");
    net.frame(g, subscribe("s", "/topic/room.7").header("receipt", "r"));
    net.expect(g, Command::Receipt);
    net.frame(g, send("/topic/room.7", "hi"));
    assert_eq!(body(&net.message(g)), "hi");
    net.frame(g, subscribe("t", "/topic/room.8"));
    net.expect_error(g, "Access denied: subscribe to /topic/room.8");
    let other = net.connect_as("1.2", "erin");
    net.frame(other, subscribe("s", "/topic/room.7"));
    net.expect_error(other, "Access denied");
}

struct Counting(AtomicUsize);

impl Authorizer for Counting {
    fn authorize(&self, request: &AccessRequest<'_>) -> bool {
        self.0.fetch_add(1, Ordering::SeqCst);
        request.destination != "/topic/closed"
    }
}

#[test]
fn send_decisions_are_made_once_per_destination_per_session() {
    let counting = Arc::new(Counting(AtomicUsize::new(0)));
    let mut net = Net::with(
        Broker::builder(BrokerConfig::default())
            .authorizer(counting.clone())
            .build(),
    );
    let c = net.connect("1.2");
    for _ in 0..100 {
        net.frame(c, send("/topic/a", "x"));
    }
    net.frame(c, send("/topic/b", "x"));
    assert_eq!(counting.0.load(Ordering::SeqCst), 2);
    // Deliveries are never checked.
    net.frame(c, subscribe("s", "/topic/a"));
    for _ in 0..10 {
        net.frame(c, send("/topic/a", "x"));
    }
    assert_eq!(net.messages(c).len(), 10);
    assert_eq!(counting.0.load(Ordering::SeqCst), 3);
    net.frame(c, send("/topic/closed", "x"));
    net.expect_error(c, "Access denied: send to /topic/closed");
}

#[test]
fn username_placeholder_gives_each_user_their_own_queue() {
    let mut net = net_with(
        vec![rule(
            "authenticated",
            &["/queue/inbox.{username}"],
            &[Action::Subscribe, Action::Send],
            true,
        )],
        false,
    );
    let alice = net.connect_as("1.2", "alice");
    net.frame(
        alice,
        subscribe("mine", "/queue/inbox.alice").header("receipt", "r"),
    );
    net.expect(alice, Command::Receipt);
    let bob = net.connect_as("1.2", "bob");
    net.frame(bob, subscribe("theirs", "/queue/inbox.alice"));
    net.expect_error(bob, "Access denied: subscribe to /queue/inbox.alice");
    let anon = net.connect("1.2");
    net.frame(anon, send("/queue/inbox.alice", "x"));
    net.expect_error(anon, "Access denied: send to /queue/inbox.alice");
}
