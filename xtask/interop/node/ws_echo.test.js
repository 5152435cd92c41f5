'use strict';
// Node `ws` (a client nobody here wrote) against switchboard-ws's echo_server.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');
const { startEchoServer, countingProxy } = require('./harness');

const TIMEOUT_MS = 10000;
const MIB = 1024 * 1024;

/** Opens a client; `ws.acceptedExtensions` is the server's Sec-WebSocket-Extensions header. */
function open(url, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 16 * MIB, ...options });
    ws.acceptedExtensions = '';
    ws.once('upgrade', (res) => {
      ws.acceptedExtensions = res.headers['sec-websocket-extensions'] || '';
    });
    const timer = setTimeout(() => reject(new Error('open timed out')), TIMEOUT_MS);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve(ws);
    });
    ws.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** The next message as `{ data, isBinary }`. */
function nextMessage(ws) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message in time')), TIMEOUT_MS);
    ws.once('message', (data, isBinary) => {
      clearTimeout(timer);
      resolve({ data, isBinary });
    });
  });
}

async function echo(ws, payload, options) {
  const reply = nextMessage(ws);
  ws.send(payload, options);
  return reply;
}

function closed(ws) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no close in time')), TIMEOUT_MS);
    ws.once('close', (code, reason) => {
      clearTimeout(timer);
      resolve({ code, reason: reason.toString() });
    });
  });
}

async function finish(ws) {
  const done = closed(ws);
  ws.close(1000);
  await done;
}

describe('ws against echo_server', () => {
  let server;
  before(async () => {
    server = await startEchoServer();
  });
  after(async () => {
    if (server) await server.stop();
  });

  for (const deflate of [false, true]) {
    const mode = deflate ? 'deflate' : 'plain';

    it(`echoes text messages (${mode})`, async () => {
      const ws = await open(server.url, { perMessageDeflate: deflate });
      for (const msg of ['', 'hello', 'héllo wörld ✓ 😀', 'x'.repeat(125), 'y'.repeat(126), 'z'.repeat(65536)]) {
        const { data, isBinary } = await echo(ws, msg);
        assert.equal(isBinary, false);
        assert.equal(data.toString('utf8'), msg);
      }
      await finish(ws);
    });

    it(`echoes binary messages (${mode})`, async () => {
      const ws = await open(server.url, { perMessageDeflate: deflate });
      for (const msg of [Buffer.alloc(0), Buffer.from([0]), crypto.randomBytes(256), crypto.randomBytes(70000)]) {
        const { data, isBinary } = await echo(ws, msg);
        assert.equal(isBinary, true);
        assert.ok(Buffer.compare(data, msg) === 0, `binary echo of ${msg.length} bytes differs`);
      }
      await finish(ws);
    });

    it(`echoes fragmented messages (${mode})`, async () => {
      const ws = await open(server.url, { perMessageDeflate: deflate });
      let reply = nextMessage(ws);
      ws.send('hel', { fin: false });
      ws.send('lo ', { fin: false });
      ws.send('wörld ✓', { fin: true });
      let { data, isBinary } = await reply;
      assert.equal(isBinary, false);
      assert.equal(data.toString('utf8'), 'hello wörld ✓');

      const chunks = Array.from({ length: 50 }, () => crypto.randomBytes(1000));
      reply = nextMessage(ws);
      chunks.forEach((c, i) => ws.send(c, { binary: true, fin: i === chunks.length - 1 }));
      ({ data, isBinary } = await reply);
      assert.equal(isBinary, true);
      assert.ok(Buffer.compare(data, Buffer.concat(chunks)) === 0, 'fragmented binary echo differs');

      ({ data } = await echo(ws, 'after'));
      assert.equal(data.toString('utf8'), 'after');
      await finish(ws);
    });

    it(`echoes 1 MiB messages (${mode})`, async () => {
      const ws = await open(server.url, { perMessageDeflate: deflate });
      const bin = crypto.randomBytes(MIB);
      let { data, isBinary } = await echo(ws, bin);
      assert.equal(isBinary, true);
      assert.ok(Buffer.compare(data, bin) === 0, '1 MiB binary echo differs');
      const text = 'lorem ipsum dolor sit amet '.repeat(40000).slice(0, MIB);
      ({ data, isBinary } = await echo(ws, text));
      assert.equal(isBinary, false);
      assert.equal(data.toString('utf8'), text);
      await finish(ws);
    });
  }

  it('negotiates permessage-deflate and compresses on the wire both ways', async () => {
    const text = 'all work and no play makes jack a dull boy\n'.repeat(24000);

    const proxy = await countingProxy(server.port);
    const ws = await open(`ws://127.0.0.1:${proxy.port}`, { perMessageDeflate: true });
    assert.match(ws.acceptedExtensions, /^permessage-deflate/);
    assert.equal(ws.extensions, 'permessage-deflate');
    const { data } = await echo(ws, text);
    assert.equal(data.toString('utf8'), text);
    await finish(ws);
    await proxy.close();
    assert.ok(proxy.up < text.length / 10, `client->server ${proxy.up} bytes: not compressed`);
    assert.ok(proxy.down < text.length / 10, `server->client ${proxy.down} bytes: not compressed`);

    const plainProxy = await countingProxy(server.port);
    const plain = await open(`ws://127.0.0.1:${plainProxy.port}`, { perMessageDeflate: false });
    assert.equal(plain.acceptedExtensions, '');
    await echo(plain, text);
    await finish(plain);
    await plainProxy.close();
    assert.ok(plainProxy.up > text.length && plainProxy.down > text.length);
  });

  it('accepts and honours the deflate parameters', async () => {
    const ws = await open(server.url, {
      perMessageDeflate: {
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
        serverMaxWindowBits: 10,
        clientMaxWindowBits: 10,
      },
    });
    assert.match(ws.acceptedExtensions, /permessage-deflate/);
    assert.match(ws.acceptedExtensions, /server_no_context_takeover/);
    for (let i = 0; i < 20; i++) {
      const msg = `message ${i} ` + 'abc'.repeat(1000);
      const { data } = await echo(ws, msg);
      assert.equal(data.toString('utf8'), msg);
    }
    await finish(ws);
  });

  for (const code of [1000, 4000]) {
    it(`echoes close code ${code}`, async () => {
      const ws = await open(server.url);
      const { data } = await echo(ws, 'before close');
      assert.equal(data.toString('utf8'), 'before close');
      const done = closed(ws);
      ws.close(code, 'bye');
      const { code: got } = await done;
      assert.equal(got, code);
    });
  }

  it('answers pings with pongs carrying the same data', async () => {
    const ws = await open(server.url);
    for (const payload of [Buffer.from('are you there?'), Buffer.alloc(0)]) {
      const pong = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no pong in time')), TIMEOUT_MS);
        ws.once('pong', (data) => {
          clearTimeout(timer);
          resolve(data);
        });
      });
      ws.ping(payload);
      assert.ok(Buffer.compare(await pong, payload) === 0);
    }
    const { data } = await echo(ws, 'still echoing');
    assert.equal(data.toString('utf8'), 'still echoing');
    await finish(ws);
  });
});
