"""`switchboard` nodes of one cluster (release binary in $SWITCHBOARD_BIN), and stomp.py helpers
that count what each client received.

A node listens on port 0 (HTTP and STOMP over TCP) and is found through the line it prints once
it listens (`switchboard listening http=ADDR stomp=ADDR stomp_tls=off`). It joins the cluster
with `--cluster URL --node-id NAME --cluster-claim-idle-ms N`, or, with `toml=True`, through the
config file's `[cluster]` table (both ways are tested).
"""

import collections
import http.client
import os
import select
import signal
import subprocess
import tempfile
import threading
import time

import stomp

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class Node:
    def __init__(self, redis_url, node_id, claim_idle_ms=1000, toml=False):
        binary = os.environ.get("SWITCHBOARD_BIN")
        if not binary:
            raise RuntimeError("SWITCHBOARD_BIN is not set (cargo xtask cluster sets it)")
        self.node_id = node_id
        self.dir = tempfile.TemporaryDirectory(prefix="switchboard-%s-" % node_id)
        config = os.path.join(self.dir.name, "switchboard.toml")
        with open(config, "w") as f:
            f.write('[listeners]\nhttp = "127.0.0.1:0"\nstomp = "127.0.0.1:0"\n')
            if toml:
                f.write(
                    '[cluster]\nurl = "%s"\nnode_id = "%s"\nclaim_idle_ms = %d\n'
                    % (redis_url, node_id, claim_idle_ms)
                )
        argv = [binary, "--config", config]
        if not toml:
            argv += [
                "--cluster", redis_url,
                "--node-id", node_id,
                "--cluster-claim-idle-ms", str(claim_idle_ms),
            ]
        self.log_path = os.path.join(self.dir.name, "node.log")
        self.log = open(self.log_path, "w")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log, env=env
        )
        line = self._read_line(START_TIMEOUT)
        if not line.startswith("switchboard listening"):
            self.stop()
            raise RuntimeError("node %s did not start: %r\n%s" % (node_id, line, self.logs()))
        fields = dict(part.split("=", 1) for part in line.split()[2:])
        host, port = fields["stomp"].rsplit(":", 1)
        self.stomp = (host, int(port))
        host, port = fields["http"].rsplit(":", 1)
        self.http = (host, int(port))

    def _read_line(self, timeout):
        deadline = time.monotonic() + timeout
        out = b""
        while not out.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                break
            chunk = os.read(self.proc.stdout.fileno(), 1)
            if not chunk:
                break
            out += chunk
        return out.decode("utf-8", "replace").strip()

    def get(self, path):
        """(status, body) of an HTTP GET on the node."""
        conn = http.client.HTTPConnection(*self.http, timeout=5)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def metric(self, name):
        """The value of metric `name` (no labels) at /metrics; None when absent."""
        status, body = self.get("/metrics")
        assert status == 200, body
        for line in body.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == name:
                return float(parts[1])
        return None

    def wait_health(self, status, timeout=30.0, body_prefix=None):
        """Polls /healthz until it answers `status` (and a body starting with `body_prefix`)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.get("/healthz")
                if last[0] == status and (body_prefix is None or last[1].startswith(body_prefix)):
                    return last
            except OSError as e:
                last = repr(e)
            time.sleep(0.1)
        raise AssertionError(
            "node %s: /healthz never answered %s within %.0fs (last: %r)"
            % (self.node_id, status, timeout, last)
        )

    def logs(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()[-6000:]

    def kill(self):
        """SIGKILL: no goodbye to Redis, no acknowledgement of anything."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self.log.closed:
            self.log.close()
        self.dir.cleanup()


class Nodes:
    """Starts nodes; `close()` stops all of them (fixture teardown)."""

    def __init__(self):
        self.nodes = []
        self.clients = []

    def start(self, redis_url, node_id, **kw):
        n = Node(redis_url, node_id, **kw)
        self.nodes.append(n)
        return n

    def client(self, node, name=None):
        c = Client(node, name or node.node_id)
        self.clients.append(c)
        return c

    def close(self):
        for c in self.clients:
            c.close()
        for n in self.nodes:
            n.stop()


class Client(stomp.ConnectionListener):
    """A stomp.py connection (STOMP 1.2: `Connection12`, heart-beats off) that records every
    MESSAGE, RECEIPT and ERROR, with bounded waits."""

    def __init__(self, node, name):
        self.name = name
        self.cond = threading.Condition()
        self.messages = []  # (headers, body) in arrival order
        self.receipts = set()
        self.errors = []
        self.conn = stomp.Connection12([node.stomp], heartbeats=(0, 0), reconnect_attempts_max=1)
        self.conn.set_listener("", self)
        self.conn.connect(wait=True)
        self._receipt = 0

    # stomp.py listener interface
    def on_message(self, frame):
        with self.cond:
            self.messages.append((frame.headers, frame.body))
            self.cond.notify_all()

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.add(frame.headers.get("receipt-id"))
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append((frame.headers, frame.body))
            self.cond.notify_all()

    def _next_receipt(self):
        self._receipt += 1
        return "%s-r%d" % (self.name, self._receipt)

    def wait_receipt(self, receipt, timeout=10.0):
        with self.cond:
            ok = self.cond.wait_for(lambda: receipt in self.receipts or self.errors, timeout)
            assert not self.errors, "%s: ERROR %r" % (self.name, self.errors)
            assert ok, "%s: no RECEIPT %s within %.0fs" % (self.name, receipt, timeout)

    def subscribe(self, dest, sub_id="1", ack="auto"):
        """SUBSCRIBE, confirmed by a RECEIPT."""
        r = self._next_receipt()
        self.conn.subscribe(dest, id=sub_id, ack=ack, headers={"receipt": r})
        self.wait_receipt(r)

    def send(self, dest, body, receipt=False, headers=None):
        h = dict(headers or {})
        r = None
        if receipt:
            r = self._next_receipt()
            h["receipt"] = r
        self.conn.send(dest, body, headers=h)
        if r:
            self.wait_receipt(r)

    def ack(self, headers):
        self.conn.ack(headers["ack"])

    def wait_count(self, n, timeout=30.0):
        """Waits until at least `n` messages arrived; the messages (a copy)."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.messages) >= n or self.errors, timeout)
            assert not self.errors, "%s: ERROR %r" % (self.name, self.errors)
            assert len(self.messages) >= n, "%s: %d of %d messages within %.0fs" % (
                self.name, len(self.messages), n, timeout)
            return list(self.messages)

    def bodies(self):
        with self.cond:
            return [b for _, b in self.messages]

    def close(self):
        try:
            if self.conn.is_connected():
                self.conn.disconnect()
        except Exception:
            pass


def wait_total(clients, n, timeout=60.0):
    """Waits until the clients together received at least `n` messages; then a short quiet
    period, so a duplicate arriving late is counted too. Returns every body."""
    deadline = time.monotonic() + timeout
    while sum(len(c.bodies()) for c in clients) < n:
        for c in clients:
            assert not c.errors, "%s: ERROR %r" % (c.name, c.errors)
        if time.monotonic() > deadline:
            got = [len(c.bodies()) for c in clients]
            raise AssertionError("received %s (sum %d) of %d within %.0fs" % (got, sum(got), n, timeout))
        time.sleep(0.05)
    time.sleep(0.5)
    return [b for c in clients for b in c.bodies()]


def probe_until_seen(sender, dest, receivers, timeout=15.0):
    """Sends `probe-N` bodies to `dest` until each receiver has seen one; then drops the probes
    from every receiver's record. For Pub/Sub paths that come back after an outage."""
    deadline = time.monotonic() + timeout
    i = 0
    while not all(any(b.startswith("probe-") for b in r.bodies()) for r in receivers):
        assert time.monotonic() < deadline, "no probe crossed within %.0fs" % timeout
        sender.send(dest, "probe-%d" % i)
        i += 1
        time.sleep(0.2)
    time.sleep(0.5)  # probes still in flight land before the record is cleared
    for r in receivers:
        with r.cond:
            r.messages = [(h, b) for h, b in r.messages if not b.startswith("probe-")]


def assert_each_once(bodies, expected):
    """Every expected body exactly once, nothing else."""
    counts = collections.Counter(bodies)
    dups = {b: c for b, c in counts.items() if c > 1}
    assert not dups, "delivered more than once: %s" % list(dups.items())[:10]
    missing = set(expected) - set(counts)
    assert not missing, "%d never delivered, e.g. %s" % (len(missing), sorted(missing)[:10])
    extra = set(counts) - set(expected)
    assert not extra, "unexpected bodies: %s" % sorted(extra)[:10]
    assert len(bodies) == len(expected)


def assert_in_order_per_publisher(bodies, publishers):
    """Bodies `P:N` of each publisher P arrive with N increasing."""
    for p in publishers:
        seq = [int(b.split(":")[1]) for b in bodies if b.startswith(p + ":")]
        assert seq == sorted(seq), "publisher %s out of order: %s" % (p, seq[:20])
