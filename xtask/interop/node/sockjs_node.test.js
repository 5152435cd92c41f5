// sockjs-client (its Node transports: websocket over faye-websocket, xhr-streaming and
// xhr-polling over Node's http) with @stomp/stompjs against the `switchboard` binary's /chat
// SockJS endpoint: per transport, sockjs_chat.js's scenario (two clients chat through
// /app/chat -> /topic/messages, unicode intact, RECEIPT, client ACK without redelivery) and a
// check that sockjs-client really used that transport; then the chat app's answer to a bad
// body (a message on /user/queue/errors, the connection stays up).
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const SockJS = require('sockjs-client');
const WebSocket = require('ws');
const { Client } = require('@stomp/stompjs');
const { launchSwitchboard } = require('./harness');
const { chatScenario } = require('./sockjs_chat');

const WAIT_MS = 8000;
const NODE_TRANSPORTS = ['websocket', 'xhr-streaming', 'xhr-polling'];

let server;
const tag = () => Math.random().toString(16).slice(2, 10);

before(async () => {
  server = await launchSwitchboard();
});
after(async () => {
  if (server) await server.stop();
});

for (const transport of NODE_TRANSPORTS) {
  test(`sockjs-client ${transport} in Node: two clients chat, unicode, RECEIPT, client ACK`, { timeout: 30000 }, async () => {
    const result = await chatScenario({
      SockJS,
      Client,
      WebSocket,
      transport,
      sockjsUrl: `http://${server.http}/chat`,
      wsUrl: server.wsUrl('/chat'),
      tag: tag(),
      waitMs: WAIT_MS,
    }).catch((e) => {
      throw new Error(`${e.message}\nserver log (tail):\n${server.output().slice(-2000)}`);
    });
    assert.deepEqual(result.transports, [transport, transport], `transports used: ${result.transports}`);
  });
}

test('sockjs-client xhr-streaming in Node: a bad chat body gets an answer on /user/queue/errors, the session stays up', { timeout: 30000 }, async () => {
  let sock;
  const client = new Client({
    webSocketFactory: () => (sock = new SockJS(`http://${server.http}/chat`, null, { transports: ['xhr-streaming'] })),
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    debug: () => {},
  });
  const bounded = (promise, what) => {
    let timer;
    return Promise.race([
      promise,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} within ${WAIT_MS} ms`)), WAIT_MS); }),
    ]).finally(() => clearTimeout(timer));
  };
  const errors = [];
  client.onStompError = (f) => errors.push(f.headers.message);
  await bounded(new Promise((resolve, reject) => {
    client.onConnect = resolve;
    client.onWebSocketClose = (e) => reject(new Error(`closed ${e.code} before CONNECTED`));
    client.activate();
  }), 'no CONNECTED');
  try {
    assert.equal(sock.transport, 'xhr-streaming');
    const complaints = [];
    let complained;
    const complaint = new Promise((r) => { complained = r; });
    const subscribed = new Promise((r) => client.watchForReceipt('errs', r));
    client.subscribe('/user/queue/errors', (m) => { complaints.push(m.body); complained(); }, { receipt: 'errs' });
    await bounded(subscribed, 'no RECEIPT for SUBSCRIBE /user/queue/errors');
    client.publish({ destination: '/app/chat', body: 'this is not JSON' });
    await bounded(complaint, 'no message on /user/queue/errors after a bad body');
    assert.ok(complaints[0].length > 0, 'the error message says something');
    // Still connected and served.
    const alive = new Promise((r) => client.watchForReceipt('alive', r));
    client.publish({
      destination: '/app/chat',
      headers: { receipt: 'alive', 'content-type': 'application/json' },
      body: JSON.stringify({ from: 'node', text: `still here ${tag()}` }),
    });
    await bounded(alive, 'no RECEIPT after the bad body');
    assert.deepEqual(errors, [], 'no ERROR frame');
    assert.equal(client.connected, true);
  } finally {
    await bounded(client.deactivate(), 'did not disconnect').catch(() => {});
  }
});
