// @stomp/stompjs (a client nobody here wrote) against the `switchboard` binary over the /chat
// WebSocket endpoint. Node 20 has no global WebSocket: the `ws` package provides it.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');
const { Client } = require('@stomp/stompjs');

const START_TIMEOUT_MS = 20000;
let server;

function startServer() {
  const bin = process.env.SWITCHBOARD_BIN;
  if (!bin) throw new Error('SWITCHBOARD_BIN is not set (cargo xtask interop sets it)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-stompjs-'));
  const config = path.join(dir, 'switchboard.toml');
  fs.writeFileSync(
    config,
    '[listeners]\nhttp = "127.0.0.1:0"\nstomp = "off"\n[limits]\nheartbeat_ms = [400, 400]\n',
  );
  const proc = spawn(bin, ['--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  proc.stderr.on('data', (d) => { logs += d; });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('server did not start:\n' + logs)), START_TIMEOUT_MS);
    proc.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n')[0];
      if (out.includes('\n') && line.startsWith('switchboard listening')) {
        clearTimeout(timer);
        const http = /http=(\S+)/.exec(line)[1];
        proc.removeAllListeners('exit');
        resolve({ proc, dir, url: `ws://${http}/chat`, logs: () => logs });
      }
    });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${logs}`)));
  });
}

function stopServer(s) {
  return new Promise((resolve) => {
    const done = (code) => { fs.rmSync(s.dir, { recursive: true, force: true }); resolve(code); };
    if (s.proc.exitCode !== null) return done(s.proc.exitCode);
    const kill = setTimeout(() => s.proc.kill('SIGKILL'), 15000);
    s.proc.once('exit', (code) => { clearTimeout(kill); done(code); });
    s.proc.kill('SIGTERM');
  });
}

// A connected client; resolves once CONNECTED arrived.
function connect(url, opts = {}) {
  return new Promise((resolve, reject) => {
    const client = new Client({
      webSocketFactory: () => new WebSocket(url, opts.protocols || ['v12.stomp']),
      reconnectDelay: 0,
      forceBinaryWSFrames: opts.binary ?? false,
      heartbeatIncoming: opts.heartbeatIncoming ?? 0,
      heartbeatOutgoing: opts.heartbeatOutgoing ?? 0,
      debug: () => {},
    });
    const timer = setTimeout(() => reject(new Error('no CONNECTED within 5 s')), 5000);
    client.onConnect = (frame) => { clearTimeout(timer); resolve({ client, frame }); };
    client.onStompError = (frame) => { clearTimeout(timer); reject(new Error('ERROR: ' + frame.headers.message)); };
    client.onWebSocketError = () => { clearTimeout(timer); reject(new Error('WebSocket error')); };
    client.activate();
  });
}

// Collects messages of a subscription; `next()` waits for the next one.
function collector() {
  const items = [];
  const waiters = [];
  return {
    push(m) { const w = waiters.shift(); if (w) w(m); else items.push(m); },
    next(ms = 5000) {
      if (items.length) return Promise.resolve(items.shift());
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no message within ${ms} ms`)), ms);
        waiters.push((m) => { clearTimeout(t); resolve(m); });
      });
    },
    get pending() { return items.length; },
  };
}

function receipt(client, id, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no RECEIPT ${id}`)), ms);
    client.watchForReceipt(id, (frame) => { clearTimeout(t); resolve(frame); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const uniq = (p) => `${p}-${Math.random().toString(16).slice(2, 10)}`;

before(async () => { server = await startServer(); });
after(async () => { if (server) await stopServer(server); });

test('CONNECTED over v12.stomp with version 1.2', async () => {
  const { client, frame } = await connect(server.url);
  assert.equal(frame.headers.version, '1.2');
  assert.match(frame.headers.server, /^switchboard/);
  await client.deactivate();
});

test('older subprotocols negotiate older STOMP versions', async () => {
  for (const [proto, version] of [['v11.stomp', '1.1'], ['v10.stomp', '1.0']]) {
    const { client, frame } = await connect(server.url, { protocols: [proto] });
    assert.equal(frame.headers.version ?? '1.0', version, proto);
    await client.deactivate();
  }
});

test('send via /app is received on /topic', async () => {
  const { client } = await connect(server.url);
  const room = uniq('room');
  const got = collector();
  client.subscribe(`/topic/${room}`, (m) => got.push(m), { receipt: 'sub-1' });
  await receipt(client, 'sub-1');
  client.publish({ destination: `/app/${room}`, body: 'hello from stompjs', headers: { 'x-who': 'node' } });
  const m = await got.next();
  assert.equal(m.body, 'hello from stompjs');
  assert.equal(m.headers.destination, `/topic/${room}`);
  assert.equal(m.headers['x-who'], 'node');
  await client.deactivate();
});

test('two browsers see each other on a topic', async () => {
  const a = await connect(server.url);
  const b = await connect(server.url);
  const room = uniq('room');
  const ga = collector();
  const gb = collector();
  a.client.subscribe(`/topic/${room}`, (m) => ga.push(m), { receipt: 'ra' });
  b.client.subscribe(`/topic/${room}`, (m) => gb.push(m), { receipt: 'rb' });
  await Promise.all([receipt(a.client, 'ra'), receipt(b.client, 'rb')]);
  a.client.publish({ destination: `/app/${room}`, body: 'from a' });
  assert.equal((await ga.next()).body, 'from a');
  assert.equal((await gb.next()).body, 'from a');
  await a.client.deactivate();
  await b.client.deactivate();
});

test('receipts for SEND', async () => {
  const { client } = await connect(server.url);
  const r = receipt(client, 'send-receipt');
  client.publish({ destination: `/topic/${uniq('t')}`, body: 'x', headers: { receipt: 'send-receipt' } });
  const frame = await r;
  assert.equal(frame.headers['receipt-id'], 'send-receipt');
  await client.deactivate();
});

test('client acks: unacked queue messages go to the next consumer', async () => {
  const q = `/queue/${uniq('jobs')}`;
  const a = await connect(server.url);
  const got = collector();
  a.client.subscribe(q, (m) => got.push(m), { ack: 'client-individual', receipt: 'qa' });
  await receipt(a.client, 'qa');
  a.client.publish({ destination: q, body: 'job-1' });
  a.client.publish({ destination: q, body: 'job-2' });
  const m1 = await got.next();
  const m2 = await got.next();
  assert.equal(m1.body, 'job-1');
  assert.ok(m1.headers.ack, 'MESSAGE carries an ack header for client acks');
  m1.ack();
  m2.nack();
  const again = await got.next();
  assert.equal(again.body, 'job-2');
  assert.equal(again.headers.redelivered, 'true');
  // Leave job-2 unacked and go away: another consumer gets it.
  await a.client.deactivate();
  const b = await connect(server.url);
  const gotB = collector();
  b.client.subscribe(q, (m) => gotB.push(m), { ack: 'client' });
  const m = await gotB.next();
  assert.equal(m.body, 'job-2');
  m.ack();
  await b.client.deactivate();
});

test('heart-beats flow both ways and keep the session alive', async () => {
  const { client, frame } = await connect(server.url, { heartbeatIncoming: 400, heartbeatOutgoing: 400 });
  assert.equal(frame.headers['heart-beat'], '400,400');
  let closed = false;
  client.onWebSocketClose = () => { closed = true; };
  // stompjs closes the socket if no heart-beat arrives within 2x400 ms; stay 2 s.
  await sleep(2000);
  assert.equal(closed, false, 'the session survived 2 s on heart-beats alone');
  const t = uniq('hb');
  const got = collector();
  client.subscribe(`/topic/${t}`, (m) => got.push(m), { receipt: 'hb-sub' });
  await receipt(client, 'hb-sub');
  client.publish({ destination: `/topic/${t}`, body: 'alive' });
  assert.equal((await got.next()).body, 'alive');
  await client.deactivate();
});

test('binary WebSocket frames work too', async () => {
  const { client } = await connect(server.url, { binary: true });
  const t = uniq('bin');
  const got = collector();
  client.subscribe(`/topic/${t}`, (m) => got.push(m), { receipt: 'bin-sub' });
  await receipt(client, 'bin-sub');
  client.publish({ destination: `/topic/${t}`, binaryBody: new TextEncoder().encode('bytes!') });
  assert.equal((await got.next()).body, 'bytes!');
  await client.deactivate();
});

test('a page from a foreign origin is refused with 403', async () => {
  const status = await new Promise((resolve, reject) => {
    const ws = new WebSocket(server.url, ['v12.stomp'], { origin: 'https://evil.example' });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode));
    ws.on('open', () => { ws.close(); reject(new Error('foreign origin was accepted')); });
    ws.on('error', () => {});
  });
  assert.equal(status, 403);
  // A page served from loopback (a dev server) is fine.
  const { client } = await connect(server.url, {});
  await client.deactivate();
});

test('SIGTERM: ERROR "shutting down", then close 1001', async () => {
  const own = await startServer();
  try {
    const { client } = await connect(own.url);
    const error = new Promise((resolve) => { client.onStompError = (f) => resolve(f); });
    const closed = new Promise((resolve) => { client.onWebSocketClose = (evt) => resolve(evt.code); });
    own.proc.kill('SIGTERM');
    const frame = await error;
    assert.match(frame.headers.message, /shutting down|going down/);
    assert.equal(await closed, 1001);
    await client.deactivate();
  } finally {
    assert.equal(await stopServer(own), 0);
  }
});
