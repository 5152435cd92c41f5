// docs/cluster/haproxy.cfg and docs/cluster/nginx.conf as written (only addresses, ports,
// maxconn and logging changed) in front of two `switchboard` nodes of one cluster:
// sockjs-client + @stomp/stompjs chat through each over xhr-streaming, xhr-polling and websocket
// (sticky on the `<server>` URL segment; without stickiness an HTTP transport's xhr_send reaches
// a node that does not know the session), plain WebSocket, and HAProxy's JSESSIONID cookie way
// with raw SockJS HTTP requests (sockjs-client in Node keeps no cookies). Run by
// `cargo xtask cluster` (Debian's haproxy and nginx-light, SWITCHBOARD_REDIS_URL).
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

const DOCS = path.join(__dirname, '..', '..', '..', 'docs', 'cluster');
const SAMPLE = path.join(DOCS, 'haproxy.cfg');
const WAIT_MS = 8000;
const tag = () => Math.random().toString(16).slice(2, 10);

let nodes = [];
const proxies = {};
let dir;
// A stompjs client per node, subscribed to /topic/messages for the whole file (see before()).
const holders = [];

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

// The nginx sample with our loopback addresses, logging to stderr, no access log.
function nginxConfig(httpPort) {
  let cfg = fs.readFileSync(path.join(DOCS, 'nginx.conf'), 'utf8');
  const replace = (from, to) => {
    assert.ok(cfg.includes(from), `docs/cluster/nginx.conf no longer has ${JSON.stringify(from)}`);
    cfg = cfg.split(from).join(to);
  };
  replace('listen 8080;', `listen 127.0.0.1:${httpPort};`);
  replace('http {\n', 'http {\n    access_log off;\n');
  nodes.forEach((n, i) => replace(`server 10.0.0.1${i + 1}:8080;`, `server ${n.http};`));
  return cfg.split('\n').filter((l) => !/^\s*server 10\.0\.0\.13:/.test(l)).join('\n');
}

async function startNginx() {
  const httpPort = await freePort();
  const prefix = path.join(dir, 'nginx');
  fs.mkdirSync(prefix, { recursive: true });
  const file = path.join(prefix, 'nginx.conf');
  fs.writeFileSync(file, nginxConfig(httpPort));
  const server = await startServer([
    'nginx', '-p', prefix, '-c', file,
    '-g', `daemon off; master_process off; pid ${path.join(prefix, 'nginx.pid')}; error_log stderr;`,
  ], [httpPort]);
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
  proxies.nginx = await startNginx();
  // The chat scenario subscribes to /topic/messages and unsubscribes again every round. A node
  // whose last local subscriber of a destination leaves unsubscribes from Redis, and a SUBSCRIBE
  // RECEIPT only says the node has the subscription (crates/cluster/README.md, "Receipts"):
  // a message sent from another node right after a quick resubscribe can miss it. These tests
  // are about the load balancers, so one long-lived subscriber per node keeps /topic/messages
  // subscribed in Redis, and a probe from each node to the other proves the path before any
  // test runs.
  for (const n of nodes) {
    const c = new Client({
      webSocketFactory: () => new WebSocket(n.wsUrl('/chat'), ['v12.stomp']),
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      debug: () => {},
    });
    const seen = [];
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('holder: no CONNECTED')), WAIT_MS);
      c.onConnect = () => { clearTimeout(t); resolve(); };
      c.activate();
    });
    c.subscribe('/topic/messages', (m) => seen.push(m.body));
    holders.push({ client: c, seen });
  }
  const deadline = Date.now() + 15000;
  for (let i = 0; ; i++) {
    const crossed = holders.every((h) => h.seen.some((b) => b.startsWith('probe-')));
    if (crossed) break;
    assert.ok(Date.now() < deadline, 'no probe crossed between the nodes within 15 s');
    holders.forEach((h, j) => h.client.publish({ destination: '/topic/messages', body: `probe-${j}-${i}` }));
    await new Promise((r) => setTimeout(r, 200));
  }
});

after(async () => {
  for (const h of holders) await h.client.deactivate();
  for (const p of Object.values(proxies)) await p.stop();
  for (const n of nodes) await n.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

for (const [name, key] of [['HAProxy', 'server'], ['nginx', 'nginx']]) {
  for (const transport of ['xhr-streaming', 'xhr-polling', 'websocket', 'ws']) {
    test(`through ${name} (sticky on <server>): ${transport} chat across the cluster`, { timeout: 60000 }, async () => {
      const proxy = proxies[key];
      // Several rounds: each session gets a random <server>, so sessions land on both nodes.
      for (let round = 0; round < 3; round++) {
        const result = await chatScenario({
          SockJS,
          Client,
          WebSocket,
          transport,
          sockjsUrl: `http://${proxy.http}/chat`,
          wsUrl: `ws://${proxy.http}/chat`,
          tag: tag(),
          waitMs: WAIT_MS,
        }).catch((e) => {
          throw new Error(`${e.message}\n${name}: ${proxy.output().slice(-1000)}`);
        });
        assert.deepEqual(result.transports, [transport, transport]);
      }
    });
  }
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
