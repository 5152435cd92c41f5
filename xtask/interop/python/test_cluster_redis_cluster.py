"""Three `switchboard` nodes on a 3-master Redis Cluster, driven with stomp.py over TCP.

Run by `cargo xtask cluster`. Node i is given master i's URL only: each must find out by itself
that it talks to a Redis Cluster and reach the slots the other masters serve.
"""

import uuid

import pytest

from cluster_proc import Nodes, assert_each_once, assert_in_order_per_publisher, wait_total
from redis_proc import RedisCluster


@pytest.fixture(scope="module")
def redis_cluster():
    c = RedisCluster()
    yield c
    c.close()


@pytest.fixture
def three(redis_cluster):
    n = Nodes()
    n.started = [n.start(url, "n%d" % i, claim_idle_ms=1000) for i, url in enumerate(redis_cluster.urls)]
    yield n
    n.close()


def test_topic_through_redis_cluster_every_subscriber_gets_every_message_once(three):
    dest = "/topic/rc-%s" % uuid.uuid4().hex[:8]
    subs = [three.client(n, "%s-sub%d" % (n.node_id, i)) for n in three.started for i in range(2)]
    for s in subs:
        s.subscribe(dest)
    pubs = {"p" + n.node_id: three.client(n, "p" + n.node_id) for n in three.started}
    per_pub = 150
    for i in range(per_pub):
        for name, p in pubs.items():
            p.send(dest, "%s:%d" % (name, i), receipt=(i == per_pub - 1))
    expected = ["%s:%d" % (name, i) for name in pubs for i in range(per_pub)]
    for s in subs:
        s.wait_count(len(expected))
    wait_total(subs, len(expected) * len(subs))  # and a quiet period for late duplicates
    for s in subs:
        assert_each_once(s.bodies(), expected)
        assert_in_order_per_publisher(s.bodies(), pubs)


def test_queues_through_redis_cluster_deliver_each_message_once(three, redis_cluster):
    tag = uuid.uuid4().hex[:8]
    # Several queues, so their streams hash to slots on different masters.
    queues = ["/queue/rc-%s-%d" % (tag, q) for q in range(6)]
    consumers = [three.client(n, "%s-con" % n.node_id) for n in three.started]
    for c in consumers:
        for q, dest in enumerate(queues):
            c.subscribe(dest, sub_id=str(q))
    pubs = {"p" + n.node_id: three.client(n, "p" + n.node_id) for n in three.started}
    per_pub = 50
    expected = []
    for i in range(per_pub):
        for name, p in pubs.items():
            for dest in queues:
                body = "%s:%d@%s" % (name, i, dest)
                p.send(dest, body, receipt=(i == per_pub - 1 and dest == queues[-1]))
                expected.append(body)
    bodies = wait_total(consumers, len(expected))
    assert_each_once(bodies, expected)
    for c in consumers:
        for headers, body in c.messages:
            assert body.endswith("@" + headers["destination"]), (headers, body)
    holding = [n for n in redis_cluster.keys_per_node() if n > 0]
    assert len(holding) >= 2, "every queue's keys on one master: %s" % redis_cluster.keys_per_node()
