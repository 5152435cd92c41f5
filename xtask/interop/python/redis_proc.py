"""Redis servers for the cluster tests: Debian's `redis-server` on free loopback ports.

`cargo xtask cluster` makes sure `redis-server` and `redis-cli` are installed (xtask/src/redis.rs,
which starts the same kinds of servers for the Node suite and `cargo xtask load cluster`). The
tests here start their own, because one of them stops and restarts Redis in the middle:

- `RedisServer()`: persistence off (`--save "" --appendonly no`);
- `RedisServer(aof=True)`: `--appendonly yes --appendfsync always`; `stop()` then `start()` bring
  it back on the same port and directory, with what it had;
- `RedisCluster()`: three `--cluster-enabled yes` masters joined with
  `redis-cli --cluster create ... --cluster-replicas 0`, ready once each says `cluster_state:ok`.

Every wait is bounded; `close()` kills what is still running and removes the directories.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

READY_TIMEOUT = 30.0
CLI_TIMEOUT = 30.0
CLUSTER_TIMEOUT = 60.0
BUS_OFFSET = 10000


def free_port(bus=False):
    """A loopback port nobody listens on; with `bus`, port + 10000 (a cluster node's bus) too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not bus:
            return port
        if port + BUS_OFFSET > 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + BUS_OFFSET))
            return port
        except OSError:
            continue
    raise RuntimeError("no free loopback port (with a free bus port) in 200 tries")


def _base_dir():
    base = os.environ.get("SWITCHBOARD_REDIS_DIR")
    if base:
        os.makedirs(base, exist_ok=True)
    return base


class RedisServer:
    def __init__(self, aof=False, cluster=False, port=None):
        self.port = port or free_port(bus=cluster)
        self.dir = tempfile.mkdtemp(prefix="redis-%d-" % self.port, dir=_base_dir())
        self.args = [
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.dir,
            "--daemonize", "no",
            "--logfile", "",
            "--save", "",
        ]
        if aof:
            self.args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            self.args += ["--appendonly", "no"]
        if cluster:
            self.args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000",
            ]
        self.proc = None
        self.log_path = os.path.join(self.dir, "redis.log")
        self.start()

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self):
        """Starts (or restarts) the server; waits until it answers PING (AOF loaded)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["redis-server", *self.args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited (%s):\n%s" % (self.proc.returncode, self.logs()))
            try:
                if self.cli("ping").strip() == "PONG":
                    return
            except RuntimeError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING:\n%s" % self.logs())
            time.sleep(0.05)

    def cli(self, *args, cluster_mode=False):
        """`redis-cli -p PORT ARGS...` (bounded); its output, or RuntimeError."""
        argv = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)]
        if cluster_mode:
            argv.append("-c")
        run = subprocess.run(
            argv + [str(a) for a in args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
        if run.returncode != 0 or run.stdout.startswith(("ERR", "Could not connect")):
            raise RuntimeError("redis-cli %s: %s%s" % (args, run.stdout, run.stderr))
        return run.stdout

    def stop(self):
        """SHUTDOWN (the AOF is flushed first), then waits for the exit (kills after a bound)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.cli("shutdown")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass  # redis-cli reports the closed connection of a successful SHUTDOWN
        try:
            self.proc.wait(READY_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster:
    """Three masters, no replicas: every hash slot is served by one of them."""

    def __init__(self):
        self.nodes = []
        try:
            for _ in range(3):
                self.nodes.append(RedisServer(cluster=True))
            addrs = ["127.0.0.1:%d" % n.port for n in self.nodes]
            run = subprocess.run(
                ["redis-cli", "--cluster", "create", *addrs,
                 "--cluster-replicas", "0", "--cluster-yes"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT,
            )
            if run.returncode != 0 or "[ERR]" in run.stdout:
                raise RuntimeError("redis-cli --cluster create: %s%s" % (run.stdout, run.stderr))
            deadline = time.monotonic() + CLUSTER_TIMEOUT
            for node in self.nodes:
                while "cluster_state:ok" not in node.cli("cluster", "info"):
                    if time.monotonic() > deadline:
                        raise RuntimeError("cluster_state not ok on %d" % node.port)
                    time.sleep(0.2)
        except BaseException:
            self.close()
            raise

    @property
    def urls(self):
        return [n.url for n in self.nodes]

    def keys_per_node(self):
        """How many keys each master holds (DBSIZE)."""
        return [int(n.cli("dbsize").strip()) for n in self.nodes]

    def close(self):
        for n in self.nodes:
            n.close()
