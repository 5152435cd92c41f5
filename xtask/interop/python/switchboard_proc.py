"""Starts the release `switchboard` binary (path in $SWITCHBOARD_BIN) on free loopback ports.

Shared by the STOMP interop tests. The server prints one line on stdout once it listens:
`switchboard listening http=ADDR stomp=ADDR stomp_tls=ADDR|off`.
"""

import os
import queue
import select
import signal
import subprocess
import tempfile
import time

import pytest

START_TIMEOUT = 20.0


class Server:
    def __init__(self, extra_toml="", extra_listeners=""):
        binary = os.environ.get("SWITCHBOARD_BIN")
        if not binary:
            raise RuntimeError("SWITCHBOARD_BIN is not set (cargo xtask interop sets it)")
        self.dir = tempfile.TemporaryDirectory(prefix="switchboard-test-")
        config = os.path.join(self.dir.name, "switchboard.toml")
        with open(config, "w") as f:
            f.write('[listeners]\nhttp = "127.0.0.1:0"\nstomp = "127.0.0.1:0"\n')
            f.write(extra_listeners)
            f.write(extra_toml)
        self.log_path = os.path.join(self.dir.name, "server.log")
        self.log = open(self.log_path, "w")
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        self.proc = subprocess.Popen(
            [binary, "--config", config],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
        )
        line = self._read_line(START_TIMEOUT)
        if not line.startswith("switchboard listening"):
            self.stop()
            raise RuntimeError("server did not start: %r\n%s" % (line, self.logs()))
        fields = dict(part.split("=", 1) for part in line.split()[2:])
        self.http = fields["http"]
        self.stomp = fields["stomp"]
        host, port = self.stomp.rsplit(":", 1)
        self.stomp_host_port = (host, int(port))
        host, port = self.http.rsplit(":", 1)
        self.http_host_port = (host, int(port))
        self.stomp_tls_host_port = None
        if fields.get("stomp_tls", "off") != "off":
            host, port = fields["stomp_tls"].rsplit(":", 1)
            self.stomp_tls_host_port = (host, int(port))

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

    def logs(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self, timeout=15.0):
        """SIGTERM, then wait; returns the exit code (kills after `timeout`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        code = self.proc.returncode
        self.dir.cleanup()
        return code


@pytest.fixture
def server():
    s = Server('[limits]\nheartbeat_ms = [500, 500]\n')
    yield s
    s.stop()


class Events:
    """A stomp.py listener that records everything into a queue, for waits with timeouts."""

    def __init__(self):
        self.q = queue.Queue()
        self.stash = []
        self.heartbeats = 0
        self.connected_frame = None

    # stomp.ConnectionListener interface
    def on_connecting(self, host_and_port):
        pass

    def on_connected(self, frame):
        self.connected_frame = frame
        self.q.put(("connected", frame))

    def on_disconnecting(self):
        pass

    def on_disconnected(self):
        self.q.put(("disconnected", None))

    def on_heartbeat_timeout(self):
        self.q.put(("heartbeat_timeout", None))

    def on_before_message(self, frame):
        pass

    def on_message(self, frame):
        self.q.put(("message", frame))

    def on_receipt(self, frame):
        self.q.put(("receipt", frame))

    def on_error(self, frame):
        self.q.put(("error", frame))

    def on_send(self, frame):
        pass

    def on_heartbeat(self):
        self.heartbeats += 1

    def on_receiver_loop_completed(self, frame):
        pass

    def _take(self, kind):
        for i, (k, frame) in enumerate(self.stash):
            if k == kind:
                del self.stash[i]
                return True, frame
        return False, None

    def next(self, kind, timeout=5.0):
        """The next event of `kind`; events of other kinds stay queued for their own `next`.

        An ERROR frame while waiting for something else fails the test with its content.
        """
        found, frame = self._take(kind)
        if found:
            return frame
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s event within %.1fs" % (kind, timeout))
            try:
                k, frame = self.q.get(timeout=left)
            except queue.Empty:
                raise AssertionError("no %s event within %.1fs" % (kind, timeout))
            if k == kind:
                return frame
            if k == "error":
                raise AssertionError(
                    "ERROR frame while waiting for %s: %r %r" % (kind, frame.headers, frame.body)
                )
            self.stash.append((k, frame))

    def none(self, kind, wait=0.5):
        """Asserts no event of `kind` arrives within `wait` seconds (nor is already queued)."""
        found, frame = self._take(kind)
        if found:
            raise AssertionError("unexpected %s: %r %r" % (kind, frame.headers, frame.body))
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                k, frame = self.q.get(timeout=left)
            except queue.Empty:
                return
            if k == kind:
                raise AssertionError("unexpected %s: %r %r" % (kind, frame.headers, frame.body))
            self.stash.append((k, frame))
