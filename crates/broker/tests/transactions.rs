//! Transactions: SENDs and ACK/NACKs applied all-or-nothing on COMMIT, nothing on ABORT or
//! disconnect, frames checked when they enter the transaction, transaction size limits.

mod harness;

use harness::*;
use switchboard_broker::{AppError, Broker, BrokerConfig, ErrorKind, Limits};
use switchboard_stomp::{Command, Frame, Headers};

fn begin(tx: &str) -> Frame {
    Frame::new(Command::Begin).header("transaction", tx)
}
fn commit(tx: &str) -> Frame {
    Frame::new(Command::Commit).header("transaction", tx)
}
fn abort(tx: &str) -> Frame {
    Frame::new(Command::Abort).header("transaction", tx)
}
fn ack(id: &str) -> Frame {
    Frame::new(Command::Ack).header("id", id)
}
fn nack(id: &str) -> Frame {
    Frame::new(Command::Nack).header("id", id)
}

fn pending(net: &Net) -> usize {
    net.broker.backend().stats().pending
}

fn small_queues() -> BrokerConfig {
    BrokerConfig {
        limits: Limits {
            max_pending_per_queue: 4,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn commit_whose_third_send_overflows_a_queue_publishes_none() {
    let mut net = Net::new(small_queues());
    let watcher = net.connect("1.2");
    net.frame(watcher, subscribe("w", "/topic/audit"));
    let p = net.connect("1.2");
    // Two messages already wait in /queue/a (nobody consumes it): room for two more.
    net.frame(p, send("/queue/a", "old-1"));
    net.frame(p, send("/queue/a", "old-2"));
    assert_eq!(pending(&net), 2);

    net.frame(p, begin("t"));
    net.frame(p, send("/topic/audit", "audit").header("transaction", "t"));
    net.frame(p, send("/queue/a", "new-1").header("transaction", "t"));
    net.frame(p, send("/queue/a", "new-2").header("transaction", "t"));
    net.frame(p, send("/queue/a", "new-3").header("transaction", "t"));
    net.frame(p, commit("t").header("receipt", "c-1"));
    let err = net.expect_error(p, "Queue full");
    assert_eq!(err.get("receipt-id"), Some("c-1"));
    assert!(body(&err).contains("/queue/a"), "{err:?}");

    // Nothing of the transaction was applied: not the topic message before the failing SEND,
    // not the queue messages that fitted.
    net.expect_nothing(watcher);
    assert_eq!(pending(&net), 2);
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/queue/a"));
    let got: Vec<String> = net.messages(c).iter().map(|f| body(f).to_owned()).collect();
    assert_eq!(got, ["old-1", "old-2"]);
    let m = net.broker.metrics();
    assert_eq!(m.errors_of(ErrorKind::QueueFull), 1);
    assert_eq!(
        m.messages_in.topic, 0,
        "the refused batch is not counted as published"
    );
}

#[test]
fn commit_that_fits_is_applied_in_order() {
    let mut net = Net::new(small_queues());
    let watcher = net.connect("1.2");
    net.frame(watcher, subscribe("w", "/topic/audit"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/a", "old-1"));
    net.frame(p, begin("t"));
    for b in ["new-1", "new-2", "new-3"] {
        net.frame(p, send("/queue/a", b).header("transaction", "t"));
    }
    net.frame(p, send("/topic/audit", "audit").header("transaction", "t"));
    net.expect_nothing(watcher);
    assert_eq!(pending(&net), 1);
    net.frame(p, commit("t").header("receipt", "c-1"));
    assert_eq!(
        net.expect(p, Command::Receipt).get("receipt-id"),
        Some("c-1")
    );
    assert_eq!(body(&net.message(watcher)), "audit");
    assert_eq!(pending(&net), 4);
    let c = net.connect("1.2");
    net.frame(c, subscribe("s", "/queue/a"));
    let got: Vec<String> = net.messages(c).iter().map(|f| body(f).to_owned()).collect();
    assert_eq!(got, ["old-1", "new-1", "new-2", "new-3"]);
}

#[test]
fn refused_commit_applies_none_of_its_acks() {
    let mut net = Net::new(small_queues());
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/queue/in", "client-individual"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/in", "job"));
    let job = net.message(c);
    for i in 0..4 {
        net.frame(p, send("/queue/out", if i % 2 == 0 { "x" } else { "y" }));
    }
    // Consume-and-produce: ACK the job and SEND its result, atomically. /queue/out is full.
    net.frame(c, begin("t"));
    net.frame(c, ack(job.get("ack").unwrap()).header("transaction", "t"));
    net.frame(c, send("/queue/out", "result").header("transaction", "t"));
    net.frame(c, commit("t"));
    net.expect_error(c, "Queue full");
    // The ACK was not applied: the job goes to the next consumer, marked redelivered.
    let d = net.connect("1.2");
    net.frame(d, subscribe("s", "/queue/in"));
    let again = net.message(d);
    assert_eq!(body(&again), "job");
    assert_eq!(again.get("redelivered"), Some("true"));
}

#[test]
fn acks_apply_only_on_commit_abort_applies_none() {
    let mut net = Net::new(BrokerConfig::default());
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/queue/q", "client"));
    let p = net.connect("1.2");
    for b in ["1", "2", "3"] {
        net.frame(p, send("/queue/q", b));
    }
    let ms = net.messages(c);
    assert_eq!(ms.len(), 3);
    // ABORT: the cumulative ACK is discarded.
    net.frame(c, begin("a"));
    net.frame(c, ack(ms[1].get("ack").unwrap()).header("transaction", "a"));
    assert_eq!(net.clients[c].session.unacked_count(), 3);
    net.frame(c, abort("a").header("receipt", "ab"));
    net.expect(c, Command::Receipt);
    assert_eq!(net.clients[c].session.unacked_count(), 3);
    // COMMIT: applied (cumulative: messages 1 and 2).
    net.frame(c, begin("b"));
    net.frame(c, ack(ms[1].get("ack").unwrap()).header("transaction", "b"));
    assert_eq!(net.clients[c].session.unacked_count(), 3);
    net.frame(c, commit("b"));
    assert_eq!(net.clients[c].session.unacked_count(), 1);
    // An ACK and a NACK for the same message in one transaction: the first wins, the second is
    // skipped (already settled), and the COMMIT succeeds.
    net.frame(c, begin("d"));
    net.frame(c, ack(ms[2].get("ack").unwrap()).header("transaction", "d"));
    net.frame(
        c,
        nack(ms[2].get("ack").unwrap()).header("transaction", "d"),
    );
    net.frame(c, commit("d").header("receipt", "r"));
    net.expect(c, Command::Receipt);
    assert_eq!(net.clients[c].session.unacked_count(), 0);
    net.expect_nothing(c);
    assert_eq!(pending(&net), 0);
}

#[test]
fn disconnect_and_connection_loss_apply_nothing() {
    let mut net = Net::new(BrokerConfig::default());
    let watcher = net.connect("1.2");
    net.frame(watcher, subscribe("w", "/topic/t"));
    let c = net.connect("1.2");
    net.frame(c, subscribe_ack("s", "/queue/q", "client-individual"));
    let p = net.connect("1.2");
    net.frame(p, send("/queue/q", "job"));
    let job = net.message(c);
    net.frame(c, begin("t"));
    net.frame(c, ack(job.get("ack").unwrap()).header("transaction", "t"));
    net.frame(c, send("/topic/t", "done").header("transaction", "t"));
    net.frame(c, send("/queue/q", "next").header("transaction", "t"));
    // The transport goes away without COMMIT.
    net.clients[c].session.transport_closed();
    net.pump();
    net.expect_nothing(watcher);
    let d = net.connect("1.2");
    net.frame(d, subscribe("s", "/queue/q"));
    let got = net.messages(d);
    assert_eq!(
        got.len(),
        1,
        "only the redelivered job, not the uncommitted SEND"
    );
    assert_eq!(body(&got[0]), "job");
    assert_eq!(got[0].get("redelivered"), Some("true"));

    // DISCONNECT with a transaction open: the same.
    let e = net.connect("1.2");
    net.frame(e, begin("t"));
    net.frame(e, send("/topic/t", "nope").header("transaction", "t"));
    net.frame(e, Frame::new(Command::Disconnect).header("receipt", "bye"));
    net.expect(e, Command::Receipt);
    net.expect_nothing(watcher);
}

#[test]
fn unroutable_send_is_an_error_when_it_enters_the_transaction() {
    let mut net = Net::new(BrokerConfig {
        app_mappings: Vec::new(),
        ..Default::default()
    });
    let c = net.connect("1.2");
    net.frame(c, begin("t"));
    net.frame(
        c,
        send("/user/nobody", "x")
            .header("transaction", "t")
            .header("receipt", "s-1"),
    );
    let err = net.expect_error(c, "Invalid destination");
    assert_eq!(err.get("receipt-id"), Some("s-1"));

    // An application destination with no handler and no mapping: refused at the SEND.
    let c = net.connect("1.2");
    net.frame(c, begin("t"));
    net.frame(c, send("/app/nothing", "x").header("transaction", "t"));
    net.expect_error(c, "Invalid destination");

    // An ACK naming nothing: refused at the ACK.
    let c = net.connect("1.2");
    net.frame(c, begin("t"));
    net.frame(c, ack("7-7").header("transaction", "t"));
    net.expect_error(c, "");
    assert_eq!(net.broker.metrics().errors_of(ErrorKind::BadAck), 1);
}

#[test]
fn transaction_byte_limit() {
    let mut net = Net::new(BrokerConfig {
        limits: Limits {
            max_transaction_bytes: 200,
            ..Default::default()
        },
        ..Default::default()
    });
    let s = net.connect("1.2");
    net.frame(s, subscribe("s", "/topic/t"));
    let c = net.connect("1.2");
    net.frame(c, begin("a"));
    net.frame(c, begin("b"));
    net.frame(c, send("/topic/t", "0123456789").header("transaction", "a"));
    net.frame(c, send("/topic/t", "0123456789").header("transaction", "b"));
    // The limit is per connection, over all its open transactions; ABORT gives the room back.
    net.frame(c, abort("a"));
    net.frame(c, send("/topic/t", "0123456789").header("transaction", "b"));
    net.frame(
        c,
        send("/topic/t", "this body alone is far too long for what is left of the 200 bytes allowed in this connection's open transactions")
            .header("transaction", "b")
            .header("receipt", "big"),
    );
    let err = net.expect_error(c, "Limit exceeded");
    assert_eq!(err.get("receipt-id"), Some("big"));
    net.expect_nothing(s);
}

#[test]
fn handler_publishes_join_the_transaction() {
    let broker = Broker::builder(small_queues())
        .handler("/app/order", |msg, ctx| {
            assert!(ctx.in_transaction());
            let h = Headers::new();
            ctx.publish("/queue/orders", &h, msg.body.clone())?;
            ctx.publish("/topic/orders", &h, msg.body.clone())?;
            Ok(())
        })
        .handler("/app/refuse", |_msg, _ctx| {
            Err(AppError::new("Refused", "not today"))
        })
        .build();
    let mut net = Net::with(broker);
    let watcher = net.connect("1.2");
    net.frame(watcher, subscribe("w", "/topic/orders"));
    let p = net.connect("1.2");
    net.frame(p, begin("t"));
    net.frame(p, send("/app/order", "o-1").header("transaction", "t"));
    net.frame(p, send("/app/order", "o-2").header("transaction", "t"));
    net.expect_nothing(watcher);
    net.frame(p, commit("t"));
    assert_eq!(net.messages(watcher).len(), 2);
    assert_eq!(pending(&net), 2);

    // The handler's queue publishes do not fit (2 waiting + 3 > 4): none of them, and none of
    // its topic publishes, are applied.
    net.frame(p, begin("t"));
    for b in ["o-3", "o-4", "o-5"] {
        net.frame(p, send("/app/order", b).header("transaction", "t"));
    }
    net.frame(p, commit("t"));
    net.expect_error(p, "Queue full");
    net.expect_nothing(watcher);
    assert_eq!(pending(&net), 2);

    // A handler refusing the message refuses the whole transaction.
    let p = net.connect("1.2");
    net.frame(p, begin("t"));
    net.frame(
        p,
        send("/topic/orders", "before").header("transaction", "t"),
    );
    net.frame(p, send("/app/refuse", "x").header("transaction", "t"));
    net.frame(p, commit("t"));
    net.expect_error(p, "Refused");
    net.expect_nothing(watcher);
}
