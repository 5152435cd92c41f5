// docs/cluster/haproxy.cfg as written (only addresses, ports and maxconn changed) in front of two
// `switchboard` nodes of one cluster: sockjs-client + @stomp/stompjs chat through it over
// xhr-streaming, xhr-polling and websocket (sticky on the `<server>` URL segment; without
// stickiness an HTTP transport's xhr_send reaches a node that does not know the session), plain
// WebSocket, and the JSESSIONID cookie way with raw SockJS HTTP requests (sockjs-client in Node
// keeps no cookies). Run by `cargo xtask cluster` (Debian's haproxy, SWITCHBOARD_REDIS_URL).
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const SockJS = require('sockjs-client');
const WebSocket = require('ws');
const { Client } = require('@stomp/stompjs');
const { freePort, launchSwitchboard, startServer } = require('./harness');
const { chatScenario } = require('./sockjs_chat');

const SAMPLE = path.join(__dirname, '..', '..', '..', 'docs', 'cluster', 'haproxy.cfg');
const WAIT_MS = 8000;
const tag = () => Math.random().toString(16).slice(2, 10);

let nodes = [];
const proxies = {};
let dir;

function redisUrl() {
  const url = process.env.SWITCHBOARD_REDIS_URL;
  if (!url) throw new Error('SWITCHBOARD_REDIS_URL is not set (cargo xtask cluster sets it)');
  return url;
}

// The sample with our loopback addresses; `cookie` swaps its two `use_backend` lines.
function config(httpPort, stompPort, cookie) {
  let cfg = fs.readFileSync(SAMPLE, 'utf8');
  const replace = (from, to) => {
    assert.ok(cfg.includes(from), `docs/cluster/haproxy.cfg no longer has ${JSON.stringify(from)}`);
    cfg = cfg.split(from).join(to);
  };
  replace('maxconn 100000', 'maxconn 1000');
  replace('bind :80\n', `bind 127.0.0.1:${httpPort}\n`);
  replace('bind :61613\n', `bind 127.0.0.1:${stompPort}\n`);
  nodes.forEach((n, i) => {
    const httpPortOf = n.http.split(':')[1];
    replace(`10.0.0.1${i + 1}:61613 check port 8080`, `${n.stomp} check port ${httpPortOf}`);
    replace(`10.0.0.1${i + 1}:8080`, n.http);
  });
  // The sample has three nodes; this test runs two.
  cfg = cfg.split('\n').filter((l) => !/^\s*server n3 /.test(l)).join('\n');
  if (cookie) {
    replace('    use_backend sockjs_by_server if sockjs_session\n', '');
    replace('    # use_backend sockjs_by_cookie if sockjs_start\n', '    use_backend sockjs_by_cookie if sockjs_start\n');
  }
  return cfg;
}

async function startHaproxy(name, cookie) {
  const httpPort = await freePort();
  const stompPort = await freePort();
  const file = path.join(dir, `${name}.cfg`);
  fs.writeFileSync(file, config(httpPort, stompPort, cookie));
  const server = await startServer(['haproxy', '-db', '-f', file], [httpPort, stompPort]);
  return { http: `127.0.0.1:${httpPort}`, stop: () => server.stop(), output: server.output };
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'switchboard-lb-'));
  const url = redisUrl();
  for (const id of ['lb-a', 'lb-b']) {
    nodes.push(await launchSwitchboard(
      '[listeners]\nhttp = "127.0.0.1:0"\nstomp = "127.0.0.1:0"\n'
      + `[cluster]\nurl = "${url}"\nnode_id = "${id}"\nclaim_idle_ms = 1000\n`
      + '[sockjs]\ncookie_needed = true\n',
    ));
  }
  proxies.server = await startHaproxy('by-server', false);
  proxies.cookie = await startHaproxy('by-cookie', true);
});

after(async () => {
  for (const p of Object.values(proxies)) await p.stop();
  for (const n of nodes) await n.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

for (const transport of ['xhr-streaming', 'xhr-polling', 'websocket', 'ws']) {
  test(`through HAProxy (sticky on <server>): ${transport} chat across the cluster`, { timeout: 60000 }, async () => {
    // Several rounds: each session gets a random <server>, so sessions land on both nodes.
    for (let round = 0; round < 3; round++) {
      const result = await chatScenario({
        SockJS,
        Client,
        WebSocket,
        transport,
        sockjsUrl: `http://${proxies.server.http}/chat`,
        wsUrl: `ws://${proxies.server.http}/chat`,
        tag: tag(),
        waitMs: WAIT_MS,
      }).catch((e) => {
        throw new Error(`${e.message}\nhaproxy: ${proxies.server.output().slice(-1000)}`);
      });
      assert.deepEqual(result.transports, [transport, transport]);
    }
  });
}

// One SockJS HTTP request through the cookie proxy.
async function sockjs(method, urlPath, cookie, body) {
  const res = await fetch(`http://${proxies.cookie.http}${urlPath}`, {
    method,
    headers: cookie ? { cookie } : {},
    body,
    signal: AbortSignal.timeout(WAIT_MS),
  });
  return { status: res.status, text: await res.text(), setCookie: res.headers.get('set-cookie') };
}

test('through HAProxy (JSESSIONID prefixed with the node): xhr-polling sessions stay on their node', { timeout: 60000 }, async () => {
  const info = await sockjs('GET', '/chat/info');
  assert.equal(info.status, 200);
  assert.equal(JSON.parse(info.text).cookie_needed, true);
  const pinnedTo = new Set();
  const connect = JSON.stringify(['CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\n\n\u0000']);
  for (let i = 0; i < 6; i++) {
    const session = `s${tag()}`;
    // The session opens on whichever node HAProxy picks; its answer carries the cookie.
    const open = await sockjs('POST', `/chat/1${i}0/${session}/xhr`);
    assert.equal(open.text, 'o\n');
    const m = /^JSESSIONID=(n[12])~([^;]*)/.exec(open.setCookie || '');
    assert.ok(m, `no JSESSIONID prefixed by HAProxy: ${open.setCookie}`);
    pinnedTo.add(m[1]);
    const cookie = `JSESSIONID=${m[1]}~${m[2]}`;
    // A different <server> segment per request: only the cookie keeps them on that node.
    const send = await sockjs('POST', `/chat/2${i}1/${session}/xhr_send`, cookie, connect);
    assert.equal(send.status, 204, `xhr_send reached a node without the session: ${send.status} ${send.text}`);
    const poll = await sockjs('POST', `/chat/3${i}2/${session}/xhr`, cookie);
    assert.match(poll.text, /^a\["CONNECTED\\n/, poll.text);
  }
  // leastconn spread the sessions over both nodes, and the cookie took each back to its own.
  assert.deepEqual([...pinnedTo].sort(), ['n1', 'n2']);
});
