"""Fixtures for the interop tests: our binaries on free loopback ports, stopped afterwards.

The binaries come from environment variables that `cargo xtask interop` sets
(see xtask/interop/README.md). Run the tests through it, not bare pytest.
"""

import os
import socket
import subprocess
import threading
import time

import pytest

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


def free_port():
    """A loopback port nobody listens on right now (bound, then released for a server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(var):
    """The path in environment variable `var`; fails the test loudly when it is unset."""
    path = os.environ.get(var)
    if not path:
        pytest.fail(f"{var} is not set: run these tests with `cargo xtask interop`")
    if not os.path.isfile(path):
        pytest.fail(f"{var}={path} does not exist")
    return path


class Server:
    """A child process that listens on the given loopback ports; output goes to `log`."""

    def __init__(self, argv, ports, log):
        self.argv = argv
        self.ports = ports
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            for port in ports:
                self._wait_for(port)
        except BaseException:
            self.stop()
            raise

    def _wait_for(self, port):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.argv} exited with {self.proc.returncode}:\n{self.output()}"
                )
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.argv} did not listen on port {port} "
                        f"within {STARTUP_TIMEOUT}s:\n{self.output()}"
                    )
                time.sleep(0.05)

    def output(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def echo_url(tmp_path_factory):
    """`ws://127.0.0.1:PORT` of a fresh switchboard-ws `echo_server` (one per test module)."""
    port = free_port()
    log = tmp_path_factory.mktemp("echo_server") / "output.log"
    server = Server([binary("SWITCHBOARD_ECHO_SERVER"), f"127.0.0.1:{port}"], [port], log)
    yield f"ws://127.0.0.1:{port}"
    server.stop()


class CountingProxy:
    """Forwards a loopback port to `target_port`, counting bytes each way.

    `up` counts client-to-server bytes, `down` server-to-client: how the tests prove that
    permessage-deflate really compresses on the wire in both directions.
    """

    def __init__(self, target_port):
        self.target_port = target_port
        self.up = 0
        self.down = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            client.settimeout(None)
            upstream.settimeout(None)
            for src, dst, field in ((client, upstream, "up"), (upstream, client, "down")):
                t = threading.Thread(target=self._pipe, args=(src, dst, field), daemon=True)
                t.start()
                self._threads.append(t)

    def _pipe(self, src, dst, field):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    setattr(self, field, getattr(self, field) + len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self):
        self._closed = True
        self._listener.close()


@pytest.fixture
def counting_proxy():
    """A factory `counting_proxy(port) -> CountingProxy`; proxies are closed after the test."""
    proxies = []

    def make(target_port):
        proxy = CountingProxy(target_port)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


class Switchboard:
    """Where a running `switchboard` server listens."""

    def __init__(self, server, http_port, stomp_port):
        self.server = server
        self.host = "127.0.0.1"
        self.http_port = http_port
        self.stomp_port = stomp_port

    def ws_url(self, path="/chat"):
        return f"ws://{self.host}:{self.http_port}{path}"


@pytest.fixture(scope="module")
def switchboard(tmp_path_factory):
    """A fresh `switchboard` server (HTTP/WebSocket and STOMP over TCP on free ports), one per
    test module. For tests that need other flags, build a `Server` the same way."""
    http_port, stomp_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("switchboard") / "output.log"
    argv = [
        binary("SWITCHBOARD_BIN"),
        "--http",
        f"127.0.0.1:{http_port}",
        "--stomp",
        f"127.0.0.1:{stomp_port}",
    ]
    server = Server(argv, [http_port, stomp_port], log)
    yield Switchboard(server, http_port, stomp_port)
    server.stop()
