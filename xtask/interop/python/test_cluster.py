"""Several `switchboard` nodes sharing one Redis, driven with stomp.py over TCP.

Run by `cargo xtask cluster` (not by `cargo xtask interop`). Each test starts its own nodes on
free loopback ports; a standalone Redis (persistence off) serves the whole module, the restart
test starts one of its own with AOF. Destinations carry a per-test tag, so no test sees another's
messages. Every wait is bounded; nothing asserts a wall-clock speed.
"""

import os
import re
import socket
import subprocess
import sys
import time
import uuid

import pytest

from cluster_proc import (
    Nodes,
    assert_each_once,
    assert_in_order_per_publisher,
    probe_until_seen,
    wait_total,
)
from markdown_blocks import only_block
from redis_proc import RedisServer

CLAIM_IDLE_MS = 1000


@pytest.fixture(scope="module")
def redis():
    r = RedisServer()
    yield r
    r.close()


@pytest.fixture
def nodes():
    n = Nodes()
    yield n
    n.close()


@pytest.fixture
def tag():
    return uuid.uuid4().hex[:8]


def test_topic_every_subscriber_on_every_node_gets_every_message_once_in_order(redis, nodes, tag):
    a = nodes.start(redis.url, "a", claim_idle_ms=CLAIM_IDLE_MS)
    b = nodes.start(redis.url, "b", claim_idle_ms=CLAIM_IDLE_MS)
    dest = "/topic/fan-%s" % tag
    subs = [nodes.client(n, "%s-sub%d" % (n.node_id, i)) for n in (a, b) for i in range(2)]
    for s in subs:
        s.subscribe(dest)
    pubs = {"pa": nodes.client(a, "pa"), "pb": nodes.client(b, "pb")}
    per_pub = 200
    for i in range(per_pub):
        for name, p in pubs.items():
            p.send(dest, "%s:%d" % (name, i), receipt=(i == per_pub - 1))
    expected = ["%s:%d" % (name, i) for name in pubs for i in range(per_pub)]
    for s in subs:
        s.wait_count(len(expected))
    time.sleep(0.5)  # a duplicate would arrive now
    for s in subs:
        bodies = s.bodies()
        assert_each_once(bodies, expected)
        assert_in_order_per_publisher(bodies, pubs)
    # Each node published what it accepted and received what the other sent.
    for n in (a, b):
        assert n.metric("switchboard_cluster_up") == 1
        assert n.metric("switchboard_cluster_published_total") >= per_pub
        assert n.metric("switchboard_cluster_received_total") >= per_pub


def test_queue_consumed_on_both_nodes_delivers_each_message_once(redis, nodes, tag):
    a = nodes.start(redis.url, "a", claim_idle_ms=CLAIM_IDLE_MS)
    b = nodes.start(redis.url, "b", claim_idle_ms=CLAIM_IDLE_MS)
    dest = "/queue/work-%s" % tag
    consumers = {n.node_id: [nodes.client(n, "%s-c%d" % (n.node_id, i)) for i in range(2)] for n in (a, b)}
    for cs in consumers.values():
        for c in cs:
            c.subscribe(dest)
    producers = {"pa": nodes.client(a, "pa"), "pb": nodes.client(b, "pb")}
    total = 1000
    for i in range(total // 2):
        for name, p in producers.items():
            p.send(dest, "%s:%d" % (name, i), receipt=(i % 100 == 99))
    everyone = [c for cs in consumers.values() for c in cs]
    bodies = wait_total(everyone, total)
    assert_each_once(bodies, ["%s:%d" % (name, i) for name in producers for i in range(total // 2)])
    per_node = {node: sum(len(c.bodies()) for c in cs) for node, cs in consumers.items()}
    assert all(v > 0 for v in per_node.values()), "one node's consumers got nothing: %s" % per_node
    for _, c in consumers.items():
        for client in c:
            for headers, _ in client.messages:
                assert re.fullmatch(r"[ab]-\d+", headers["message-id"]), headers


def test_three_nodes_topic_and_queue_exactly_once(redis, nodes, tag):
    # Node c joins through the config file's [cluster] table instead of the flags.
    ns = [
        nodes.start(redis.url, "a", claim_idle_ms=CLAIM_IDLE_MS),
        nodes.start(redis.url, "b", claim_idle_ms=CLAIM_IDLE_MS),
        nodes.start(redis.url, "c", claim_idle_ms=CLAIM_IDLE_MS, toml=True),
    ]
    topic, queue = "/topic/three-%s" % tag, "/queue/three-%s" % tag
    subs = [nodes.client(n, n.node_id + "-sub") for n in ns]
    consumers = [nodes.client(n, n.node_id + "-con") for n in ns]
    for s in subs:
        s.subscribe(topic)
    for c in consumers:
        c.subscribe(queue)
    pubs = {"p" + n.node_id: nodes.client(n, "p" + n.node_id) for n in ns}
    per_pub = 100
    for i in range(per_pub):
        for name, p in pubs.items():
            last = i == per_pub - 1
            p.send(topic, "%s:%d" % (name, i), receipt=last)
            p.send(queue, "%s:%d" % (name, i), receipt=last)
    expected = ["%s:%d" % (name, i) for name in pubs for i in range(per_pub)]
    for s in subs:
        s.wait_count(len(expected))
    queued = wait_total(consumers, len(expected))
    for s in subs:
        assert_each_once(s.bodies(), expected)
        assert_in_order_per_publisher(s.bodies(), pubs)
    assert_each_once(queued, expected)


def test_sigkilled_node_unacked_messages_are_redelivered_by_another_node(redis, nodes, tag):
    a = nodes.start(redis.url, "a", claim_idle_ms=CLAIM_IDLE_MS)
    b = nodes.start(redis.url, "b", claim_idle_ms=CLAIM_IDLE_MS)
    dest = "/queue/held-%s" % tag
    holder = nodes.client(a, "holder")
    holder.subscribe(dest, ack="client-individual")
    producer = nodes.client(b, "producer")
    count = 20
    for i in range(count):
        producer.send(dest, "job:%d" % i, receipt=(i == count - 1))
    held = holder.wait_count(count)
    assert_each_once([b for _, b in held], ["job:%d" % i for i in range(count)])
    assert all(h.get("redelivered", "false") != "true" for h, _ in held)
    # Node a holds 20 unacknowledged messages; now it dies without a word.
    rescuer = nodes.client(b, "rescuer")
    rescuer.subscribe(dest, ack="client-individual")
    a.kill()
    # Node a's liveness key expires, the entries pass the claim idle time, node b claims them.
    got = rescuer.wait_count(count, timeout=60.0)
    assert_each_once([b for _, b in got], ["job:%d" % i for i in range(count)])
    not_flagged = [(h, body) for h, body in got if h.get("redelivered") != "true"]
    assert not not_flagged, "redelivered without redelivered:true: %s" % not_flagged[:3]
    for h, _ in got:
        rescuer.ack(h)
    assert b.metric("switchboard_cluster_claimed_total") >= count
    # Acknowledged on b: nothing comes back after a few more claim periods.
    time.sleep(3 * CLAIM_IDLE_MS / 1000)
    assert len(rescuer.bodies()) == count


def test_redis_restart_nodes_report_it_reconnect_and_keep_queue_messages(nodes, tag):
    redis = RedisServer(aof=True)
    try:
        a = nodes.start(redis.url, "a", claim_idle_ms=CLAIM_IDLE_MS)
        b = nodes.start(redis.url, "b", claim_idle_ms=CLAIM_IDLE_MS)
        queue, topic = "/queue/kept-%s" % tag, "/topic/resumed-%s" % tag
        listener = nodes.client(b, "listener")
        listener.subscribe(topic)
        producer = nodes.client(a, "producer")
        before = 100
        for i in range(before):
            producer.send(queue, "pa:%d" % i, receipt=(i == before - 1))
        for n in (a, b):
            n.wait_health(200)
            assert n.metric("switchboard_cluster_up") == 1
        reconnects_before = a.metric("switchboard_cluster_reconnects_total")

        redis.stop()
        for n in (a, b):
            status, body = n.wait_health(503, body_prefix="backend down:")
            assert body.startswith("backend down:"), body
            assert n.metric("switchboard_cluster_up") == 0
        # Queue SENDs while Redis is down are held by the node and written on reconnect.
        during = 10
        for i in range(during):
            producer.send(queue, "pa:%d" % (before + i))

        redis.start()
        for n in (a, b):
            n.wait_health(200)
            assert n.metric("switchboard_cluster_up") == 1
        assert a.metric("switchboard_cluster_reconnects_total") > reconnects_before

        # Every queue message, from before the outage (read back from the AOF) and during it.
        consumer = nodes.client(b, "consumer")
        consumer.subscribe(queue)
        bodies = wait_total([consumer], before + during)
        assert_each_once(bodies, ["pa:%d" % i for i in range(before + during)])

        # Topic traffic resumes on the subscription made before the outage.
        probe_until_seen(producer, topic, [listener])
        after = 50
        for i in range(after):
            producer.send(topic, "pa:%d" % i, receipt=(i == after - 1))
        got = wait_total([listener], after)
        assert_each_once(got, ["pa:%d" % i for i in range(after)])
        assert_in_order_per_publisher(got, ["pa"])
    finally:
        nodes.close()
        redis.close()


def slow_subscriber(node, dest):
    """A raw STOMP client that subscribes (confirmed by RECEIPT) and then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(node.stomp)
    sock.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\n\n\x00")
    sock.sendall(
        ("SUBSCRIBE\nid:slow\ndestination:%s\nreceipt:slow-sub\n\n\x00" % dest).encode()
    )
    seen = b""
    deadline = time.monotonic() + 10
    while b"receipt-id:slow-sub" not in seen:
        assert time.monotonic() < deadline, "slow subscriber: no RECEIPT: %r" % seen[-200:]
        chunk = sock.recv(4096)
        assert chunk, "slow subscriber: connection closed: %r" % seen[-200:]
        seen += chunk
    return sock


def slow_consumer_errors(node):
    status, body = node.get("/metrics")
    for line in body.splitlines():
        if line.startswith("switchboard_errors_total{") and 'kind="slow_consumer"' in line:
            return float(line.split()[-1])
    return 0.0


def test_slow_consumer_on_one_node_does_not_hold_back_the_others(redis, nodes, tag):
    a = nodes.start(redis.url, "a", claim_idle_ms=CLAIM_IDLE_MS)
    b = nodes.start(redis.url, "b", claim_idle_ms=CLAIM_IDLE_MS)
    dest = "/topic/firehose-%s" % tag
    slow = slow_subscriber(a, dest)
    try:
        fast = [nodes.client(a, "a-fast"), nodes.client(b, "b-fast1"), nodes.client(b, "b-fast2")]
        for f in fast:
            f.subscribe(dest)
        publisher = nodes.client(b, "pb")
        count, pad = 5000, "x" * 4096
        for i in range(count):
            publisher.send(dest, "pb:%d:%s" % (i, pad), receipt=(i % 250 == 249))
        for f in fast:
            f.wait_count(count, timeout=120.0)
        time.sleep(0.5)
        for f in fast:
            bodies = [body.split(":")[0] + ":" + body.split(":")[1] for body in f.bodies()]
            assert_each_once(bodies, ["pb:%d" % i for i in range(count)])
            assert_in_order_per_publisher(bodies, ["pb"])
        # The subscriber that never read really fell behind: node a dropped it.
        deadline = time.monotonic() + 10
        while slow_consumer_errors(a) < 1:
            assert time.monotonic() < deadline, "node a never dropped the slow consumer"
            time.sleep(0.1)
        a.wait_health(200)
        b.wait_health(200)
    finally:
        slow.close()


README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "README.md")


def test_readme_cluster_snippet_works_as_written(redis, nodes, tmp_path):
    """README.md's ```py block ("Running a cluster") against two nodes; only the ports change."""
    with open(README, encoding="utf-8") as f:
        snippet = only_block(f.read(), "py")
    a = nodes.start(redis.url, "a", claim_idle_ms=CLAIM_IDLE_MS)
    b = nodes.start(redis.url, "b", claim_idle_ms=CLAIM_IDLE_MS)
    for readme_port, node in (("61613", a), ("61614", b)):
        old = '("127.0.0.1", %s)' % readme_port
        assert snippet.count(old) == 1, "the README's cluster snippet no longer has %s" % old
        snippet = snippet.replace(old, '("%s", %d)' % node.stomp)
    script = tmp_path / "readme_cluster.py"
    script.write_text(snippet, "utf-8")
    run = subprocess.run(
        [sys.executable, str(script)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    report = "exit %d\nstdout:\n%s\nstderr:\n%s" % (run.returncode, run.stdout, run.stderr)
    assert run.returncode == 0, report
    lines = run.stdout.splitlines()
    assert "/topic/greetings hello from node a" in lines, report
    assert "/queue/jobs job 1" in lines, report
