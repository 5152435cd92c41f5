"""Flow control with stomp.py: a queue with a backlog drains to a default (auto-ack) consumer and
to a client-individual one, completely, in order, none lost, and nobody is dropped as a slow
consumer. The backlog is published first over a raw socket (one SEND per message, then a SEND
with a receipt), so every message waits in the queue before the consumer subscribes.
"""

import socket
import threading
import time
import uuid

import pytest
import stomp

from switchboard_proc import Server


def publish_backlog(host_port, destination, n):
    """Publishes bodies "0".."n-1" to `destination` over one raw STOMP 1.2 connection; the last
    SEND asks for a receipt, and the broker's RECEIPT says all of them are queued."""
    sock = socket.create_connection(host_port, timeout=30)
    try:
        sock.sendall(b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\0")
        buf = b""
        while b"\0" not in buf:
            chunk = sock.recv(4096)
            assert chunk, "connection closed before CONNECTED"
            buf += chunk
        assert buf.startswith(b"CONNECTED"), buf
        head = ("SEND\ndestination:%s\ncontent-length:" % destination).encode()
        batch = []
        for i in range(n - 1):
            body = str(i).encode()
            batch.append(head + str(len(body)).encode() + b"\n\n" + body + b"\0")
            if len(batch) == 10_000:
                sock.sendall(b"".join(batch))
                batch = []
        last = str(n - 1)
        batch.append(
            (
                "SEND\ndestination:%s\nreceipt:done\ncontent-length:%d\n\n%s\0"
                % (destination, len(last), last)
            ).encode()
        )
        sock.sendall(b"".join(batch))
        buf = b""
        deadline = time.monotonic() + 300
        while b"receipt-id:done" not in buf:
            assert time.monotonic() < deadline, "no RECEIPT for the backlog"
            chunk = sock.recv(65536)
            assert chunk, "connection closed before the RECEIPT: %r" % buf[-500:]
            buf += chunk
            assert not buf.startswith(b"ERROR"), buf[:500]
        sock.sendall(b"DISCONNECT\n\n\0")
    finally:
        sock.close()


class Drain(stomp.ConnectionListener):
    """Checks bodies arrive as "0", "1", ... and counts them; acks each when `ack` is set."""

    def __init__(self, n, conn=None):
        self.n = n
        self.conn = conn
        self.next = 0
        self.problem = None
        self.errors = []
        self.done = threading.Event()

    def on_message(self, frame):
        if frame.body != str(self.next) and self.problem is None:
            self.problem = "expected %d, got %r" % (self.next, frame.body[:40])
        self.next += 1
        if self.conn is not None:
            self.conn.ack(frame.headers["ack"])
        if self.next >= self.n:
            self.done.set()

    def on_error(self, frame):
        self.errors.append((frame.headers, frame.body))
        self.done.set()

    def on_disconnected(self):
        self.done.set()


@pytest.mark.parametrize(
    "n, ack_mode",
    [
        (10_000, "auto"),
        (10_000, "client-individual"),
        (1_000_000, "auto"),
        (1_000_000, "client-individual"),
    ],
)
def test_a_queue_backlog_drains_completely_in_order(n, ack_mode):
    # The default max_pending_per_queue (10,000) holds the small backlog; the large one needs
    # the limit raised. The outbound queue keeps its default (4,096 frames).
    extra = "[limits]\nmax_pending_per_queue = 1000000\n" if n > 10_000 else ""
    server = Server(extra)
    try:
        destination = "/queue/backlog-%s" % uuid.uuid4().hex[:8]
        publish_backlog(server.stomp_host_port, destination, n)
        conn = stomp.Connection12([server.stomp_host_port], reconnect_attempts_max=1)
        drain = Drain(n, conn if ack_mode != "auto" else None)
        conn.set_listener("drain", drain)
        conn.connect(wait=True)
        conn.subscribe(destination, id="1", ack=ack_mode)
        # Bounded: stomp.py parses some tens of thousands of frames a second.
        assert drain.done.wait(timeout=max(60, n / 2000)), "received %d of %d" % (drain.next, n)
        assert drain.errors == [], drain.errors
        assert drain.problem is None, drain.problem
        assert drain.next == n
        assert conn.is_connected()
        conn.disconnect()
        assert "slow consumer" not in server.logs().lower()
    finally:
        server.stop()
