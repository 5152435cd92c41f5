'use strict';
// Helpers for the Node interop tests: our binaries on free loopback ports, stopped afterwards,
// and a byte-counting proxy. Binaries come from environment variables that
// `cargo xtask interop` sets (see ../README.md); run the tests through it.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const STARTUP_TIMEOUT_MS = 30000;
const STOP_TIMEOUT_MS = 5000;

/** A loopback port nobody listens on right now (bound, then released for a server). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** The path in environment variable `name`; throws when it is unset. */
function binary(name) {
  const path = process.env[name];
  if (!path) {
    throw new Error(`${name} is not set: run these tests with \`cargo xtask interop\``);
  }
  return path;
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `argv` and waits until every port in `ports` accepts connections. Returns
 * `{ stop(), output() }`; `stop()` terminates it (SIGKILL after a bounded wait).
 */
async function startServer(argv, ports) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let exited = null;
  const keep = (chunk) => {
    out = (out + chunk.toString()).slice(-4000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exit = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
  });
  const server = {
    output: () => out,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exit;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (const port of ports) {
    for (;;) {
      if (exited) {
        throw new Error(`${argv.join(' ')} exited (${JSON.stringify(exited)}):\n${out}`);
      }
      if (await canConnect(port)) break;
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error(`${argv.join(' ')} did not listen on ${port}:\n${out}`);
      }
      await sleep(50);
    }
  }
  return server;
}

/** A switchboard-ws `echo_server` on a free port: `{ url, port, stop() }`. */
async function startEchoServer() {
  const port = await freePort();
  const server = await startServer([binary('SWITCHBOARD_ECHO_SERVER'), `127.0.0.1:${port}`], [port]);
  return { url: `ws://127.0.0.1:${port}`, port, stop: () => server.stop(), output: server.output };
}

/**
 * A `switchboard` server with HTTP/WebSocket and STOMP over TCP on free ports:
 * `{ httpPort, stompPort, wsUrl(path), stop() }`.
 */
async function startSwitchboard(extraArgs = []) {
  const httpPort = await freePort();
  const stompPort = await freePort();
  const argv = [
    binary('SWITCHBOARD_BIN'),
    '--http', `127.0.0.1:${httpPort}`,
    '--stomp', `127.0.0.1:${stompPort}`,
    ...extraArgs,
  ];
  const server = await startServer(argv, [httpPort, stompPort]);
  return {
    httpPort,
    stompPort,
    wsUrl: (path = '/chat') => `ws://127.0.0.1:${httpPort}${path}`,
    stop: () => server.stop(),
    output: server.output,
  };
}

/**
 * A `switchboard` server started from a config file whose listeners are on port 0, so no port
 * is picked in advance: the addresses come from the line it prints once it listens
 * (`switchboard listening http=ADDR stomp=ADDR|off stomp_tls=ADDR|off`). `toml` is the whole
 * config. Resolves to `{ http, stomp, wsUrl(path), output(), stop() }`; `stop()` sends SIGTERM
 * (SIGKILL after a bounded wait) and resolves to the exit code.
 */
function launchSwitchboard(toml = '[listeners]\nhttp = "127.0.0.1:0"\nstomp = "off"\n') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-node-'));
  const config = path.join(dir, 'switchboard.toml');
  fs.writeFileSync(config, toml);
  const child = spawn(binary('SWITCHBOARD_BIN'), ['--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  child.stderr.on('data', (d) => {
    logs = (logs + d.toString()).slice(-8000);
  });
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal));
    child.once('error', (e) => resolve(`spawn error: ${e.message}`)); // no 'exit' follows
  });
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    const code = await exited;
    clearTimeout(timer);
    cleanup();
    return code;
  };
  return new Promise((resolve, reject) => {
    let out = '';
    let settled = false;
    const fail = (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stop().then(() => reject(new Error(`switchboard ${why}:\n${logs}`)));
    };
    const timer = setTimeout(() => fail(`did not start within ${STARTUP_TIMEOUT_MS} ms`), STARTUP_TIMEOUT_MS);
    exited.then((code) => fail(`exited with ${code}`));
    child.stdout.on('data', (d) => {
      if (out.includes('\n')) return;
      out += d.toString();
      if (!out.includes('\n')) return;
      const line = out.split('\n')[0];
      const http = /^switchboard listening http=(\S+)/.exec(line);
      if (!http) return fail(`printed ${JSON.stringify(line)} instead of its addresses`);
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const stomp = /stomp=(\S+)/.exec(line);
      resolve({
        http: http[1],
        stomp: stomp ? stomp[1] : 'off',
        wsUrl: (p = '/chat') => `ws://${http[1]}${p}`,
        output: () => logs,
        stop,
      });
    });
  });
}

/**
 * Forwards a loopback port to `targetPort` and counts bytes: `up` client-to-server, `down`
 * server-to-client. Resolves to `{ port, up, down, close() }` (counters read live).
 */
function countingProxy(targetPort) {
  const sockets = new Set();
  const counts = { up: 0, down: 0 };
  const srv = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.on('data', (d) => {
      counts.up += d.length;
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      counts.down += d.length;
      client.write(d);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      resolve({
        port: srv.address().port,
        get up() { return counts.up; },
        get down() { return counts.down; },
        close() {
          for (const s of sockets) s.destroy();
          return new Promise((r) => srv.close(() => r()));
        },
      });
    });
  });
}

module.exports = {
  freePort,
  binary,
  startServer,
  startEchoServer,
  startSwitchboard,
  launchSwitchboard,
  countingProxy,
};
