"""stomp.py (a client nobody here wrote) against the `switchboard` binary over TCP, STOMP 1.0/1.1/1.2."""

import socket
import time
import uuid

import pytest
import stomp

from switchboard_proc import Events, server  # noqa: F401  (pytest fixture)

VERSIONS = ["1.0", "1.1", "1.2"]


def connect(server, version, heartbeats=(0, 0), login=None, passcode=None):
    cls = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}[version]
    kwargs = {} if version == "1.0" else {"heartbeats": heartbeats}
    conn = cls([server.stomp_host_port], reconnect_attempts_max=1, **kwargs)
    events = Events()
    conn.set_listener("events", events)
    conn.connect(login, passcode, wait=True)
    return conn, events


def ack(conn, version, frame):
    h = frame.headers
    if version == "1.2":
        conn.ack(h["ack"])
    elif version == "1.1":
        conn.ack(h["message-id"], h["subscription"])
    else:
        conn.ack(h["message-id"])


def nack(conn, version, frame):
    h = frame.headers
    if version == "1.2":
        conn.nack(h["ack"])
    else:
        conn.nack(h["message-id"], h["subscription"])


def dest(kind):
    return "/%s/interop-%s" % (kind, uuid.uuid4().hex[:8])


def subscribe(conn, events, destination, sub_id, ack_mode="auto", headers=None):
    receipt = "sub-" + sub_id
    conn.subscribe(destination, id=sub_id, ack=ack_mode, headers=dict(headers or {}, receipt=receipt))
    assert events.next("receipt").headers["receipt-id"] == receipt


@pytest.mark.parametrize("version", VERSIONS)
def test_connect_send_receive_with_receipts(server, version):
    conn, events = connect(server, version)
    assert events.connected_frame.headers.get("version", "1.0") == version
    if version != "1.0":
        assert events.connected_frame.headers["server"].startswith("switchboard")
    d = dest("queue")
    subscribe(conn, events, d, "s1")
    conn.send(d, "hello " + version, headers={"receipt": "r-send", "x-custom": "yes"})
    assert events.next("receipt").headers["receipt-id"] == "r-send"
    msg = events.next("message")
    assert msg.body == "hello " + version
    assert msg.headers["destination"] == d
    assert msg.headers["subscription"] == "s1"
    assert msg.headers["x-custom"] == "yes"
    assert "message-id" in msg.headers
    conn.disconnect(receipt="bye")
    assert events.next("receipt").headers["receipt-id"] == "bye"


@pytest.mark.parametrize("version", VERSIONS)
def test_topic_fan_out(server, version):
    a, ea = connect(server, version)
    b, eb = connect(server, version)
    d = dest("topic")
    subscribe(a, ea, d, "a")
    subscribe(b, eb, d, "b")
    a.send(d, "to everyone")
    assert ea.next("message").body == "to everyone"
    assert eb.next("message").body == "to everyone"
    a.disconnect()
    b.disconnect()


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_header_escaping_round_trip(server, version):
    conn, events = connect(server, version)
    d = dest("queue")
    subscribe(conn, events, d, "s1")
    tricky = "colon:here back\\slash new\nline"
    conn.send(d, "x", headers={"tricky": tricky})
    msg = events.next("message")
    assert msg.headers["tricky"] == tricky
    conn.disconnect()


def test_header_not_escaped_in_1_0(server):
    conn, events = connect(server, "1.0")
    d = dest("queue")
    subscribe(conn, events, d, "s1")
    conn.send(d, "x", headers={"plain": "a:b:c"})
    assert events.next("message").headers["plain"] == "a:b:c"
    conn.disconnect()


@pytest.mark.parametrize("version", VERSIONS)
def test_client_ack_is_cumulative_and_unacked_are_redelivered(server, version):
    d = dest("queue")
    a, ea = connect(server, version)
    subscribe(a, ea, d, "a", ack_mode="client")
    for i in range(3):
        a.send(d, "m%d" % i)
    got = [ea.next("message") for _ in range(3)]
    assert [m.body for m in got] == ["m0", "m1", "m2"]
    # ACK the second one: cumulative, so m0 and m1 are done; m2 is still unacked.
    ack(a, version, got[1])
    a.send(d, "sync", headers={"receipt": "sync"})
    ea.next("receipt")
    ea.next("message")  # "sync" itself, left unacked too
    a.disconnect()
    b, eb = connect(server, version)
    subscribe(b, eb, d, "b", ack_mode="client")
    redelivered = [eb.next("message") for _ in range(2)]
    assert sorted(m.body for m in redelivered) == ["m2", "sync"]
    assert all(m.headers.get("redelivered") == "true" for m in redelivered)
    eb.none("message")
    b.disconnect()


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_client_individual_ack(server, version):
    d = dest("queue")
    a, ea = connect(server, version)
    subscribe(a, ea, d, "a", ack_mode="client-individual")
    for i in range(3):
        a.send(d, "m%d" % i)
    got = [ea.next("message") for _ in range(3)]
    ack(a, version, got[2])  # only m2; m0 and m1 stay unacked
    a.send(d, "sync", headers={"receipt": "sync"})
    ea.next("receipt")
    ack(a, version, ea.next("message"))
    a.disconnect(receipt="bye")
    ea.next("receipt")
    b, eb = connect(server, version)
    subscribe(b, eb, d, "b", ack_mode="client-individual")
    again = sorted(eb.next("message").body for _ in range(2))
    assert again == ["m0", "m1"]
    eb.none("message")
    b.disconnect()


@pytest.mark.parametrize("version", VERSIONS)
def test_auto_ack_messages_are_not_redelivered(server, version):
    d = dest("queue")
    a, ea = connect(server, version)
    subscribe(a, ea, d, "a")
    a.send(d, "once")
    assert ea.next("message").body == "once"
    a.disconnect()
    b, eb = connect(server, version)
    subscribe(b, eb, d, "b")
    eb.none("message")
    b.disconnect()


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_nack_redelivers(server, version):
    d = dest("queue")
    a, ea = connect(server, version)
    subscribe(a, ea, d, "a", ack_mode="client-individual")
    a.send(d, "again please")
    first = ea.next("message")
    nack(a, version, first)
    second = ea.next("message")
    assert second.body == "again please"
    assert second.headers.get("redelivered") == "true"
    ack(a, version, second)
    a.disconnect()


@pytest.mark.parametrize("version", VERSIONS)
def test_transaction_commit_and_abort(server, version):
    d = dest("queue")
    conn, events = connect(server, version)
    subscribe(conn, events, d, "s")
    tx = conn.begin()
    conn.send(d, "in tx", transaction=tx)
    events.none("message", wait=0.3)
    conn.commit(tx)
    assert events.next("message").body == "in tx"
    tx2 = conn.begin()
    conn.send(d, "aborted", transaction=tx2)
    conn.abort(tx2)
    conn.send(d, "after", headers={"receipt": "after"})
    events.next("receipt")
    assert events.next("message").body == "after"
    conn.disconnect()


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_ack_inside_transaction(server, version):
    d = dest("queue")
    a, ea = connect(server, version)
    subscribe(a, ea, d, "a", ack_mode="client-individual")
    a.send(d, "m")
    msg = ea.next("message")
    tx = a.begin()
    h = msg.headers
    if version == "1.2":
        a.ack(h["ack"], transaction=tx)
    else:
        a.ack(h["message-id"], h["subscription"], transaction=tx)
    a.abort(tx)  # the ACK is discarded: the message is still unacked
    a.disconnect(receipt="bye")
    ea.next("receipt")
    b, eb = connect(server, version)
    subscribe(b, eb, d, "b")
    assert eb.next("message").body == "m"
    b.disconnect()


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_heart_beats_both_ways(server, version):
    # The server under test offers heart-beat 500,500 (see the fixture's config).
    conn, events = connect(server, version, heartbeats=(500, 500))
    assert events.connected_frame.headers["heart-beat"] == "500,500"
    time.sleep(2.0)
    assert events.heartbeats >= 1, "no heart-beat from the server in 2 s"
    # stomp.py kept sending its own heart-beats, so the server kept the session.
    assert conn.is_connected()
    d = dest("queue")
    subscribe(conn, events, d, "s")
    conn.send(d, "still here")
    assert events.next("message").body == "still here"
    conn.disconnect()


def test_silent_client_is_dropped_after_heart_beat_grace(server):
    # A raw client promises heart-beats every 300 ms and then sends nothing.
    s = socket.create_connection(server.stomp_host_port, timeout=10)
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:300,0\n\n\x00")
    data = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"CONNECTED"), data
    assert time.monotonic() < deadline, "server kept a silent client for 10 s"


@pytest.mark.parametrize("version", VERSIONS)
def test_redelivery_to_another_consumer_after_client_dies(server, version):
    d = dest("queue")
    a, ea = connect(server, version)
    subscribe(a, ea, d, "a", ack_mode="client")
    b, eb = connect(server, version)
    subscribe(b, eb, d, "b", ack_mode="client")
    # Round-robin: send until `a` holds an unacked message.
    for i in range(4):
        b.send(d, "job%d" % i)
    held_by_a = []
    deadline = time.monotonic() + 5
    while len(held_by_a) < 2 and time.monotonic() < deadline:
        held_by_a.append(ea.next("message").body)
    assert held_by_a
    got_by_b = [eb.next("message") for _ in range(4 - len(held_by_a))]
    for m in got_by_b:
        ack(b, version, m)
    # `a` dies without DISCONNECT: its socket is just closed.
    a.transport.socket.shutdown(socket.SHUT_RDWR)
    redelivered = sorted(eb.next("message").body for _ in held_by_a)
    assert redelivered == sorted(held_by_a)
    b.disconnect()


@pytest.mark.parametrize("version", VERSIONS)
def test_app_destination_reaches_topic(server, version):
    conn, events = connect(server, version)
    name = "chat-" + uuid.uuid4().hex[:6]
    subscribe(conn, events, "/topic/" + name, "s")
    conn.send("/app/" + name, "via app")
    msg = events.next("message")
    assert msg.body == "via app"
    assert msg.headers["destination"] == "/topic/" + name
    conn.disconnect()


def test_error_on_missing_destination_then_close(server):
    conn, events = connect(server, "1.2")
    conn.send_frame("SEND", {"receipt": "bad"}, "no destination")
    err = events.next("error")
    assert err.headers.get("receipt-id") == "bad"
    assert "destination" in (err.headers.get("message", "") + err.body)
    events.next("disconnected")


def test_graceful_shutdown_sends_error():
    from switchboard_proc import Server

    s = Server()
    try:
        conn, events = connect(s, "1.2")
        s.proc.send_signal(__import__("signal").SIGTERM)
        err = events.next("error", timeout=10)
        assert "shutting down" in err.headers.get("message", "") + err.body
        events.next("disconnected", timeout=10)
        assert s.proc.wait(15) == 0
    finally:
        s.stop()


def test_stomp_over_tls(tmp_path):
    """stomp.py over TLS to the STOMP-over-TLS listener, trusting a CA made for the test."""
    import trustme

    from switchboard_proc import Server

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_pem, key_pem, ca_pem = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_pem))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_pem), append=True)
    cert.private_key_pem.write_to_path(str(key_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    s = Server(
        extra_toml='[tls]\ncert = "%s"\nkey = "%s"\n' % (cert_pem, key_pem),
        extra_listeners='stomp_tls = "127.0.0.1:0"\n',
    )
    try:
        conn = stomp.Connection12([s.stomp_tls_host_port], reconnect_attempts_max=1)
        conn.set_ssl(for_hosts=[s.stomp_tls_host_port], ca_certs=str(ca_pem))
        events = Events()
        conn.set_listener("events", events)
        conn.connect(wait=True)
        d = dest("queue")
        subscribe(conn, events, d, "s")
        conn.send(d, "encrypted")
        assert events.next("message").body == "encrypted"
        conn.disconnect()
    finally:
        s.stop()
