// @stomp/stompjs (a client nobody here wrote) against the `switchboard` binary with [auth.jwt]
// and [[acl]] configured: a JWT (HS256, made here with node:crypto) in the WebSocket URL's
// `access_token` query parameter — what a browser does, since it cannot set headers on a
// WebSocket — and in an `Authorization: Bearer` header (the `ws` package can set one); no token
// and a forged one are refused. Node 20 has no global WebSocket: the `ws` package provides it.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const { Client } = require('@stomp/stompjs');
const { launchSwitchboard } = require('./harness');

const SECRET = 'node-interop-secret-of-at-least-32-bytes';

const CONFIG = `[listeners]
http = "127.0.0.1:0"
stomp = "off"

[auth]
default = "deny"

[auth.jwt]
secret = "${SECRET}"
groups_claim = "groups"

[[acl]]
who = "group:staff"
destinations = ["/topic/staff.**"]
actions = ["subscribe", "send"]
allow = true
`;

let server;

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** A compact JWS: base64url(header).base64url(claims).base64url(HMAC-SHA256). */
function jwtHs256(claims, secret = SECRET) {
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
  const sig = crypto.createHmac('sha256', secret).update(input).digest();
  return `${input}.${b64url(sig)}`;
}

const staffToken = (sub) =>
  jwtHs256({ sub, groups: ['staff'], exp: Math.floor(Date.now() / 1000) + 600 });

/** Activates a client; resolves `{ client }` on CONNECTED, `{ error }` on an ERROR frame. */
function connect(url, wsOptions) {
  return new Promise((resolve, reject) => {
    const client = new Client({
      webSocketFactory: () => new WebSocket(url, ['v12.stomp'], wsOptions),
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      debug: () => {},
    });
    const timer = setTimeout(() => reject(new Error('no CONNECTED or ERROR within 5 s')), 5000);
    client.onConnect = () => { clearTimeout(timer); resolve({ client }); };
    client.onStompError = (frame) => {
      clearTimeout(timer);
      client.deactivate();
      resolve({ error: frame.headers.message });
    };
    client.onWebSocketError = () => { clearTimeout(timer); reject(new Error('WebSocket error')); };
    client.activate();
  });
}

/** Subscribes to a staff topic, sends to it, and resolves the body that comes back. */
function roundTrip(client, destination, body) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no MESSAGE within 5 s')), 5000);
    client.subscribe(destination, (m) => { clearTimeout(timer); resolve(m.body); }, {
      receipt: 'sub-1',
    });
    client.watchForReceipt('sub-1', () => client.publish({ destination, body }));
  });
}

before(async () => {
  // Everything the server crates log, so the last test can look for the token in it (this
  // file runs in its own process: the variable reaches only this server).
  process.env.RUST_LOG = 'switchboard_server=trace,switchboard_sockjs=trace,switchboard_broker=trace,info';
  server = await launchSwitchboard(CONFIG);
});

after(async () => {
  if (server) await server.stop();
});

test('a JWT in the access_token query parameter authenticates a stompjs client', async () => {
  const url = server.wsUrl(`/chat?access_token=${encodeURIComponent(staffToken('alice'))}`);
  const { client, error } = await connect(url);
  assert.equal(error, undefined);
  assert.equal(await roundTrip(client, '/topic/staff.news', 'hello staff'), 'hello staff');
  await client.deactivate();
});

test('a JWT in an Authorization: Bearer header on the upgrade authenticates too', async () => {
  const { client, error } = await connect(server.wsUrl('/chat'), {
    headers: { Authorization: `Bearer ${staffToken('bob')}` },
  });
  assert.equal(error, undefined);
  assert.equal(await roundTrip(client, '/topic/staff.board', 'minutes'), 'minutes');
  await client.deactivate();
});

test('no token, or a forged one, is refused with the same message', async () => {
  const none = await connect(server.wsUrl('/chat'));
  assert.equal(none.error, 'Access refused');
  const forged = jwtHs256({ sub: 'mallory', groups: ['staff'], exp: Math.floor(Date.now() / 1000) + 600 }, 'x'.repeat(40));
  const bad = await connect(server.wsUrl(`/chat?access_token=${forged}`));
  assert.equal(bad.error, 'Access refused');
});

test('the server log never shows the token', async () => {
  const token = staffToken('carol');
  const { client } = await connect(server.wsUrl(`/chat?access_token=${token}`));
  await client.deactivate();
  const logs = server.output();
  assert.ok(logs.includes('session opened'), `debug logging is on: ${logs}`);
  assert.ok(!logs.includes(token), logs);
  assert.ok(!logs.includes('access_token'), logs);
});
