"""stomp.py against the `switchboard` binary with security and queue policies configured:
a JWT (HS256, made here by hand) as the CONNECT passcode, a refused token, an [[acl]] denial,
and a message NACKed past max_redeliveries arriving on /queue/DLQ.<name>."""

import base64
import hashlib
import hmac
import json
import time
import urllib.request
import uuid

import pytest
import stomp

from switchboard_proc import Events, Server

SECRET = "interop-secret-at-least-32-bytes-long!"

CONFIG = """
[auth.jwt]
secret = "%s"
groups_claim = "groups"

[[users]]
login = "guest"
passcode = "guest"

[[acl]]
who = "anyone"
destinations = ["/topic/secret.**"]
actions = ["subscribe", "send"]
allow = false

[[queues]]
pattern = "/queue/work.*"
max_redeliveries = 1
""" % SECRET


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_hs256(claims, secret=SECRET):
    """A compact JWS: base64url(header).base64url(claims).base64url(HMAC-SHA256)."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signing_input = ("%s.%s" % (header, payload)).encode("ascii")
    sig = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return "%s.%s.%s" % (header, payload, b64url(sig))


@pytest.fixture(scope="module")
def secure_server():
    s = Server(CONFIG)
    yield s
    s.stop()


def metric(server, name):
    with urllib.request.urlopen("http://%s/metrics" % server.http, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(line.split()[1])
    return None


def wait_metric(server, name, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        v = metric(server, name)
        if v == want or time.monotonic() > deadline:
            return v
        time.sleep(0.05)


def open_conn(server, login, passcode, wait=True):
    conn = stomp.Connection12([server.stomp_host_port], reconnect_attempts_max=1, heartbeats=(0, 0))
    events = Events()
    conn.set_listener("events", events)
    conn.connect(login, passcode, wait=wait)
    return conn, events


def test_jwt_passcode_connects_and_carries_the_principal(secure_server):
    token = jwt_hs256({"sub": "alice", "exp": int(time.time()) + 600})
    conn, events = open_conn(secure_server, "jwt", token)
    try:
        assert events.connected_frame is not None
        # The principal is alice: her user destination reaches her.
        conn.subscribe("/user/queue/inbox", id="u", headers={"receipt": "r-u"})
        assert events.next("receipt").headers["receipt-id"] == "r-u"
        conn.send("/user/alice/queue/inbox", "for alice")
        m = events.next("message")
        assert m.body == "for alice"
    finally:
        conn.disconnect()


def test_a_bad_token_is_refused_and_counted(secure_server):
    before = metric(secure_server, "switchboard_auth_failures_total") or 0
    forged = jwt_hs256({"sub": "alice", "exp": int(time.time()) + 600}, secret="x" * 40)
    conn, events = open_conn(secure_server, "jwt", forged, wait=False)
    e = events.next("error")
    assert e.headers["message"] == "Access refused"
    expired = jwt_hs256({"sub": "alice", "exp": int(time.time()) - 3600})
    conn2, events2 = open_conn(secure_server, "jwt", expired, wait=False)
    assert events2.next("error").headers["message"] == "Access refused"
    for c in (conn, conn2):
        if c.is_connected():
            c.disconnect()
    assert wait_metric(secure_server, "switchboard_auth_failures_total", before + 2) == before + 2


def test_acl_denial_names_action_and_destination(secure_server):
    conn, events = open_conn(secure_server, "guest", "guest")
    conn.subscribe("/topic/secret.plans", id="s")
    e = events.next("error")
    msg = e.headers["message"]
    assert "Access denied" in msg and "subscribe" in msg and "/topic/secret.plans" in msg, msg
    events.next("disconnected")
    assert metric(secure_server, 'switchboard_errors_total{kind="access_denied"}') >= 1


def test_nack_past_max_redeliveries_dead_letters(secure_server):
    name = "work.%s" % uuid.uuid4().hex[:8]
    conn, events = open_conn(secure_server, "guest", "guest")
    try:
        conn.subscribe("/queue/DLQ.%s" % name, id="dlq", headers={"receipt": "r-d"})
        assert events.next("receipt").headers["receipt-id"] == "r-d"
        conn.subscribe("/queue/%s" % name, id="w", ack="client-individual", headers={"receipt": "r-w"})
        assert events.next("receipt").headers["receipt-id"] == "r-w"
        conn.send("/queue/%s" % name, "job-1")
        first = events.next("message")
        assert first.headers["subscription"] == "w"
        assert first.headers["redelivered"] == "false"
        conn.nack(first.headers["ack"])
        second = events.next("message")
        assert second.headers["subscription"] == "w"
        assert second.headers["redelivered"] == "true"
        assert second.body == "job-1"
        conn.nack(second.headers["ack"])
        dead = events.next("message")
        assert dead.headers["subscription"] == "dlq"
        assert dead.headers["original-destination"] == "/queue/%s" % name
        assert dead.headers["dead-letter-reason"] == "max-redeliveries"
        assert dead.body == "job-1"
        assert (metric(secure_server, "switchboard_messages_dead_lettered_total") or 0) >= 1
    finally:
        conn.disconnect()
