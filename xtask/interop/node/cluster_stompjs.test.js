// @stomp/stompjs over WebSocket against two `switchboard` nodes sharing one Redis: what a
// client on one node sends reaches the clients on the other, and a /queue consumed on both
// nodes delivers each message once. Run by `cargo xtask cluster`, which starts Redis and sets
// SWITCHBOARD_REDIS_URL (not by `cargo xtask interop`).
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { Client } = require('@stomp/stompjs');
const { startSwitchboard } = require('./harness');

const WAIT_MS = 30000;
let nodes = [];

function redisUrl() {
  const url = process.env.SWITCHBOARD_REDIS_URL;
  if (!url) throw new Error('SWITCHBOARD_REDIS_URL is not set (cargo xtask cluster sets it)');
  return url;
}

// A connected stompjs client (heart-beats off) that records every message and receipt.
function connect(node, name) {
  return new Promise((resolve, reject) => {
    const client = new Client({
      webSocketFactory: () => new WebSocket(node.wsUrl('/chat'), ['v12.stomp']),
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      debug: () => {},
    });
    const timer = setTimeout(() => reject(new Error(`${name}: no CONNECTED within 10 s`)), 10000);
    client.onConnect = () => { clearTimeout(timer); resolve(client); };
    client.onStompError = (f) => { clearTimeout(timer); reject(new Error(`${name}: ERROR ${f.headers.message}`)); };
    client.onWebSocketError = () => { clearTimeout(timer); reject(new Error(`${name}: WebSocket error`)); };
    client.activate();
  });
}

function receipt(client, id, ms = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no RECEIPT ${id}`)), ms);
    client.watchForReceipt(id, (frame) => { clearTimeout(t); resolve(frame); });
  });
}

// Subscribes (confirmed by a RECEIPT); returns the array the bodies are pushed to.
async function subscribe(client, dest, id) {
  const bodies = [];
  const r = `sub-${id}`;
  const done = receipt(client, r);
  client.subscribe(dest, (m) => bodies.push(m.body), { id, receipt: r });
  await done;
  return bodies;
}

async function waitFor(cond, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 300)); // a late duplicate would land now
}

function assertEachOnce(bodies, expected, who) {
  const seen = new Map();
  for (const b of bodies) seen.set(b, (seen.get(b) || 0) + 1);
  const dups = [...seen].filter(([, n]) => n > 1);
  assert.deepEqual(dups, [], `${who}: delivered more than once`);
  assert.deepEqual([...seen.keys()].sort(), [...expected].sort(), `${who}: not every message once`);
}

const uniq = (p) => `${p}-${Math.random().toString(16).slice(2, 10)}`;

before(async () => {
  const url = redisUrl();
  for (const id of ['js-a', 'js-b']) {
    nodes.push(await startSwitchboard(['--cluster', url, '--node-id', id, '--cluster-claim-idle-ms', '1000']));
  }
});

after(async () => {
  for (const n of nodes) await n.stop();
});

test('a topic message sent on one node reaches subscribers on both, once and in order', async () => {
  const [a, b] = nodes;
  const dest = `/topic/${uniq('js')}`;
  const ca = await connect(a, 'ca');
  const cb = await connect(b, 'cb');
  try {
    const gotA = await subscribe(ca, dest, 'a');
    const gotB = await subscribe(cb, dest, 'b');
    const n = 100;
    for (let i = 0; i < n; i++) {
      ca.publish({ destination: dest, body: `ca:${i}` });
      cb.publish({ destination: dest, body: `cb:${i}` });
    }
    const expected = [];
    for (let i = 0; i < n; i++) expected.push(`ca:${i}`, `cb:${i}`);
    for (const [who, got] of [['node a', gotA], ['node b', gotB]]) {
      await waitFor(() => got.length >= 2 * n, `${who}: ${got.length} of ${2 * n} messages`);
      assertEachOnce(got, expected, who);
      for (const p of ['ca', 'cb']) {
        const seq = got.filter((x) => x.startsWith(`${p}:`)).map((x) => Number(x.split(':')[1]));
        assert.deepEqual(seq, [...seq].sort((x, y) => x - y), `${who}: ${p} out of order`);
      }
    }
  } finally {
    await ca.deactivate();
    await cb.deactivate();
  }
});

test('a queue consumed on both nodes delivers each message exactly once', async () => {
  const [a, b] = nodes;
  const dest = `/queue/${uniq('js')}`;
  const ca = await connect(a, 'ca');
  const cb = await connect(b, 'cb');
  const producer = await connect(a, 'producer');
  try {
    const gotA = await subscribe(ca, dest, 'a');
    const gotB = await subscribe(cb, dest, 'b');
    const n = 300;
    const expected = [];
    for (let i = 0; i < n; i++) {
      producer.publish({ destination: dest, body: `m:${i}` });
      expected.push(`m:${i}`);
    }
    const last = receipt(producer, 'sent-all');
    producer.publish({ destination: `${dest}-end`, body: 'end', headers: { receipt: 'sent-all' } });
    await last;
    await waitFor(() => gotA.length + gotB.length >= n, `${gotA.length}+${gotB.length} of ${n} messages`);
    assertEachOnce([...gotA, ...gotB], expected, 'both nodes');
  } finally {
    await ca.deactivate();
    await cb.deactivate();
    await producer.deactivate();
  }
});
