//! Connection-level rules: CONNECT/STOMP, versions, auth, heart-beats, receipts, errors, limits.

mod harness;

use std::sync::Arc;
use std::time::Duration;

use harness::*;
use switchboard_broker::{
    Broker, BrokerConfig, CloseReason, ErrorKind, HeartBeat, Limits, StaticUsers,
};
use switchboard_stomp::{Command, Frame};

#[test]
fn connected_headers_per_version() {
    let mut net = Net::new(BrokerConfig::default());
    for v in ["1.0", "1.1", "1.2"] {
        let c = net.connect_with(connect_frame(v));
        let f = net.expect(c, Command::Connected);
        assert_eq!(f.get("version"), Some(v));
        assert!(f.get("session").is_some_and(|s| s.starts_with("session-")));
        assert!(
            f.get("server")
                .is_some_and(|s| s.starts_with("switchboard/"))
        );
        let hb = if v == "1.0" { "0,0" } else { "10000,10000" };
        assert_eq!(f.get("heart-beat"), Some(hb));
    }
}

#[test]
fn bare_connect_is_1_0_and_stomp_command_works() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect_with(Frame::new(Command::Connect));
    let f = net.expect(c, Command::Connected);
    assert_eq!(f.get("version"), Some("1.0"));
    assert_eq!(f.get("heart-beat"), Some("0,0"));

    let c = net.connect_with(
        Frame::new(Command::Stomp)
            .header("accept-version", "1.1,1.2")
            .header("host", "anything.example"),
    );
    assert_eq!(
        net.expect(c, Command::Connected).get("version"),
        Some("1.2")
    );
    assert_eq!(
        net.clients[c].session.version(),
        Some(switchboard_stomp::Version::V1_2)
    );
}

#[test]
fn highest_common_version_wins() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect_with(connect_frame("1.0,1.1"));
    assert_eq!(
        net.expect(c, Command::Connected).get("version"),
        Some("1.1")
    );
    let c = net.connect_with(connect_frame("2.0,1.1,1.0"));
    assert_eq!(
        net.expect(c, Command::Connected).get("version"),
        Some("1.1")
    );
}

#[test]
fn no_common_version_is_an_error_with_version_header() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect_with(connect_frame("2.0,3.1"));
    let e = net.expect_error(c, "Supported protocol versions");
    assert_eq!(e.get("version"), Some("1.0,1.1,1.2"));
    assert_eq!(
        net.clients[c].session.close_reason(),
        Some(CloseReason::Error(ErrorKind::UnsupportedVersion))
    );
    assert_eq!(
        net.broker
            .metrics()
            .errors_of(ErrorKind::UnsupportedVersion),
        1
    );
}

#[test]
fn session_options_restrict_versions() {
    let broker = Broker::new(BrokerConfig::default());
    let now = std::time::Instant::now();
    let mut s = broker.open_session_with(
        switchboard_broker::SessionOptions {
            versions: Some(vec![switchboard_stomp::Version::V1_1]),
        },
        now,
    );
    s.handle_frame(connect_frame("1.0,1.1,1.2"), now);
    assert_eq!(s.version(), Some(switchboard_stomp::Version::V1_1));
}

#[test]
fn static_users_authenticate() {
    let broker = Broker::builder(BrokerConfig::default())
        .authenticator(Arc::new(StaticUsers::new([("alice", "pw")])))
        .build();
    let mut net = Net::with(broker);
    let ok = net.connect_with(
        connect_frame("1.2")
            .header("login", "alice")
            .header("passcode", "pw"),
    );
    let f = net.expect(ok, Command::Connected);
    assert_eq!(f.get("user-name"), Some("alice"));
    assert_eq!(
        net.clients[ok].session.principal().map(|p| p.name()),
        Some("alice")
    );

    let bad = net.connect_with(
        connect_frame("1.2")
            .header("login", "alice")
            .header("passcode", "nope"),
    );
    net.expect_error(bad, "Access refused");
    let anon = net.connect_with(connect_frame("1.2"));
    net.expect_error(anon, "Access refused");
    assert_eq!(net.broker.metrics().errors_of(ErrorKind::AuthFailed), 2);
}

#[test]
fn frames_before_connect_are_errors() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.open();
    net.frame(c, send("/topic/a", "x").header("receipt", "r1"));
    let e = net.expect_error(c, "Not connected");
    assert_eq!(e.get("receipt-id"), Some("r1"));
    assert!(body(&e).contains("CONNECT"));
    assert_eq!(e.get("content-type"), Some("text/plain"));
}

#[test]
fn second_connect_is_an_error() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, connect_frame("1.2"));
    net.expect_error(c, "Already connected");
}

#[test]
fn server_commands_from_client_are_bad_commands() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(
        c,
        Frame::new(Command::Message).header("destination", "/topic/a"),
    );
    let e = net.expect_error(c, "Bad command");
    assert!(body(&e).contains("MESSAGE"));
}

#[test]
fn connect_timeout() {
    let mut net = Net::new(BrokerConfig {
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    });
    let c = net.open();
    net.advance(Duration::from_millis(1900));
    net.expect_nothing(c);
    net.advance(Duration::from_millis(200));
    net.expect_error(c, "Connect timeout");
}

#[test]
fn heart_beats_are_negotiated_and_sent() {
    let mut net = Net::new(BrokerConfig {
        heart_beat: HeartBeat {
            send_ms: 1000,
            receive_ms: 1000,
        },
        ..Default::default()
    });
    // Client wants to receive every 2 s and sends every 500 ms (server accepts 1000 at best).
    let c = net.connect_with(connect_frame("1.2").header("heart-beat", "500,2000"));
    assert_eq!(
        net.expect(c, Command::Connected).get("heart-beat"),
        Some("1000,1000")
    );
    let t = net.clients[c].session.poll_timeout().expect("timer");
    assert_eq!(
        t - net.now,
        Duration::from_millis(1500),
        "1.5 x max(500,1000)"
    );
    // Keep the client alive; the server beats every max(1000, 2000) ms.
    net.advance_with(Duration::from_millis(6000), &[c]);
    assert_eq!(net.clients[c].heart_beats, 3);
    assert!(net.clients[c].session.is_connected());
}

#[test]
fn silent_peer_is_dropped_after_1_5x() {
    let mut net = Net::new(BrokerConfig {
        heart_beat: HeartBeat {
            send_ms: 0,
            receive_ms: 1000,
        },
        ..Default::default()
    });
    let c = net.connect_with(connect_frame("1.1").header("heart-beat", "1000,0"));
    assert_eq!(
        net.expect(c, Command::Connected).get("heart-beat"),
        Some("0,1000")
    );
    net.advance(Duration::from_millis(1400));
    net.expect_nothing(c);
    assert!(net.clients[c].session.is_connected());
    net.advance(Duration::from_millis(200));
    net.expect_error(c, "Heart-beat timeout");
    assert_eq!(
        net.broker.metrics().errors_of(ErrorKind::HeartBeatTimeout),
        1
    );
}

#[test]
fn heart_beats_zero_on_either_side_disable() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect_with(connect_frame("1.2").header("heart-beat", "0,0"));
    net.expect(c, Command::Connected);
    assert_eq!(net.clients[c].session.poll_timeout(), None);
    let c = net.connect_with(connect_frame("1.2").header("heart-beat", "nonsense"));
    net.expect_error(c, "Invalid header");
}

#[test]
fn receipts_for_every_frame_that_asks() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/topic/a").header("receipt", "1"));
    assert_eq!(net.expect(c, Command::Receipt).get("receipt-id"), Some("1"));
    net.frame(
        c,
        Frame::new(Command::Begin)
            .header("transaction", "t")
            .header("receipt", "2"),
    );
    assert_eq!(net.expect(c, Command::Receipt).get("receipt-id"), Some("2"));
    net.frame(
        c,
        Frame::new(Command::Abort)
            .header("transaction", "t")
            .header("receipt", "3"),
    );
    assert_eq!(net.expect(c, Command::Receipt).get("receipt-id"), Some("3"));
    net.frame(
        c,
        Frame::new(Command::Unsubscribe)
            .header("id", "s")
            .header("receipt", "4:x"),
    );
    assert_eq!(
        net.expect(c, Command::Receipt).get("receipt-id"),
        Some("4:x")
    );
    net.frame(c, send("/queue/q", "x").header("receipt", "5"));
    assert_eq!(net.expect(c, Command::Receipt).get("receipt-id"), Some("5"));
}

#[test]
fn disconnect_sends_receipt_then_closes() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/topic/a"));
    net.frame(c, Frame::new(Command::Disconnect).header("receipt", "bye"));
    assert_eq!(
        net.expect(c, Command::Receipt).get("receipt-id"),
        Some("bye")
    );
    assert!(net.clients[c].session.is_closed());
    assert_eq!(
        net.clients[c].session.close_reason(),
        Some(CloseReason::Disconnect)
    );
    assert_eq!(net.broker.metrics().subscriptions, 0);
    // Frames after DISCONNECT are ignored.
    net.frame(c, send("/topic/a", "x"));
    net.expect_nothing(c);
}

#[test]
fn missing_headers_are_errors() {
    let cases: Vec<(&str, Frame)> = vec![
        ("1.2", Frame::new(Command::Send)),
        ("1.2", Frame::new(Command::Subscribe).header("id", "1")),
        (
            "1.2",
            Frame::new(Command::Subscribe).header("destination", "/topic/a"),
        ),
        ("1.1", Frame::new(Command::Unsubscribe)),
        ("1.2", Frame::new(Command::Begin)),
        ("1.2", Frame::new(Command::Commit)),
        ("1.2", Frame::new(Command::Abort)),
        ("1.2", Frame::new(Command::Ack)),
        ("1.1", Frame::new(Command::Ack).header("message-id", "m-1")),
        ("1.0", Frame::new(Command::Ack)),
    ];
    for (v, frame) in cases {
        let mut net = Net::new(BrokerConfig::default());
        let c = net.connect(v);
        net.frame(c, frame.header("receipt", "r"));
        let e = net.expect_error(c, "Missing header");
        assert_eq!(e.get("receipt-id"), Some("r"));
    }
}

#[test]
fn protocol_error_from_transport() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.session(c)
        .protocol_error("Header too long", "a header line exceeded 8192 bytes");
    net.pump();
    let e = net.expect_error(c, "Header too long");
    assert!(body(&e).contains("8192"));
    assert_eq!(net.broker.metrics().errors_of(ErrorKind::Frame), 1);
}

#[test]
fn connection_limit() {
    let mut net = Net::new(BrokerConfig {
        limits: Limits {
            max_connections: 2,
            ..Default::default()
        },
        ..Default::default()
    });
    let a = net.connect("1.2");
    let _b = net.connect("1.2");
    let c = net.open();
    net.expect_error(c, "Too many connections");
    assert_eq!(net.broker.metrics().connections_refused, 1);
    // Closing one frees a slot.
    net.clients[a].session.transport_closed();
    net.clients.remove(a);
    assert_eq!(
        net.broker.metrics().connections,
        2,
        "the refused session is still alive"
    );
    net.clients.pop();
    let d = net.connect("1.2");
    assert!(net.clients[d].session.is_connected());
}

#[test]
fn subscription_and_transaction_limits() {
    let mut net = Net::new(BrokerConfig {
        limits: Limits {
            max_subscriptions_per_session: 2,
            max_transactions_per_session: 1,
            max_frames_per_transaction: 1,
            ..Default::default()
        },
        ..Default::default()
    });
    let c = net.connect("1.2");
    net.frame(c, subscribe("1", "/topic/a"));
    net.frame(c, subscribe("2", "/topic/b"));
    net.frame(c, subscribe("3", "/topic/c"));
    net.expect_error(c, "Limit exceeded");
    assert_eq!(net.broker.metrics().subscriptions, 0);

    let c = net.connect("1.2");
    net.frame(c, Frame::new(Command::Begin).header("transaction", "a"));
    net.frame(c, Frame::new(Command::Begin).header("transaction", "b"));
    net.expect_error(c, "Limit exceeded");

    let c = net.connect("1.2");
    net.frame(c, Frame::new(Command::Begin).header("transaction", "a"));
    net.frame(c, send("/topic/x", "1").header("transaction", "a"));
    net.frame(c, send("/topic/x", "2").header("transaction", "a"));
    net.expect_error(c, "Limit exceeded");
}

#[test]
fn shutdown_flushes_then_errors() {
    let mut net = Net::new(BrokerConfig::default());
    let a = net.connect("1.2");
    let b = net.connect("1.2");
    net.frame(a, subscribe("s", "/topic/x"));
    net.clients[a].paused = true;
    net.frame(b, send("/topic/x", "queued"));
    let signal = net.clients[a].session.signal();
    signal.take_pending();
    net.broker.shutdown();
    assert!(signal.take_pending(), "shutdown wakes sessions");
    net.clients[a].paused = false;
    net.pump();
    assert_eq!(body(&net.message(a)), "queued");
    net.expect_error(a, "Server shutting down");
    net.expect_error(b, "Server shutting down");
    // New sessions are refused.
    let c = net.open();
    net.expect_error(c, "Server shutting down");
}

#[test]
fn metrics_snapshot_counts() {
    let mut net = Net::new(BrokerConfig::default());
    let a = net.connect("1.2");
    let b = net.connect("1.2");
    net.frame(a, subscribe("t", "/topic/x"));
    net.frame(a, subscribe("q", "/queue/y"));
    net.frame(b, send("/topic/x", "1"));
    net.frame(b, send("/queue/y", "2"));
    net.frame(b, send("/app/x", "3"));
    let m = net.broker.metrics();
    assert_eq!(m.connections, 2);
    assert_eq!(m.connections_total, 2);
    assert_eq!(m.subscriptions, 2);
    assert_eq!(
        m.messages_in.topic, 2,
        "the SEND and the /app → /topic republish"
    );
    assert_eq!(m.messages_in.queue, 1);
    assert_eq!(m.messages_in.app, 1);
    assert_eq!(m.messages_out.topic, 2);
    assert_eq!(m.messages_out.queue, 1);
    assert_eq!(m.backend.subscriptions, 2);
    net.frame(b, Frame::new(Command::Nack));
    assert_eq!(net.broker.metrics().errors_of(ErrorKind::MissingHeader), 1);
    drop(net);
}
