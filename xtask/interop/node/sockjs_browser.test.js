// sockjs-client + @stomp/stompjs in a real browser (headless Debian Chromium, driven by
// playwright-core) against the `switchboard` binary's /chat endpoint, which serves SockJS and a
// plain WebSocket, the /app/chat chat app and the demo page at `/`:
//
// 1. The transport matrix: every SockJS transport Chromium can use, plus a plain WebSocket,
//    each same-origin (the page is the demo page served by switchboard; the test code runs
//    inside it with the SockJS/StompJs globals the page loaded) and cross-origin (a page served
//    by this file from http://localhost:P that loads http://127.0.0.1:S/lib/*.js and talks to
//    http://127.0.0.1:S/chat). Each cell runs sockjs_chat.js's scenario (chat round trip,
//    unicode, RECEIPT, client ACK without redelivery) and checks the transport sockjs-client
//    really used. htmlfile cross-origin is skipped: sockjs-client enables it same-origin only.
// 2. The demo page itself: two pages chat through their UI (Enter and the Send button), both
//    show the messages with from/text/time; a screenshot is saved to
//    $SCREENSHOT_DIR/demo-chat.png.
//
// One browser process for the file, a fresh context (profile) per test, every wait bounded.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { launchSwitchboard } = require('./harness');
const { chatScenario } = require('./sockjs_chat');

const LAUNCH_TIMEOUT_MS = 60000;
/** Bound for one matrix cell (page load + scenario). */
const CELL_MS = 20000;
/** Bound for one wait inside the scenario or a page. */
const WAIT_MS = 8000;

/** sockjs-client transports Chromium can use (xdr-* are IE-only). */
const SOCKJS_TRANSPORTS = [
  'websocket',
  'xhr-streaming',
  'xhr-polling',
  'eventsource',
  'iframe-eventsource',
  'htmlfile',
  'iframe-htmlfile',
  'iframe-xhr-polling',
  'jsonp-polling',
];
/** Cells sockjs-client itself refuses, with the reason printed as the skip message. */
const UNSUPPORTED = {
  'htmlfile cross-origin':
    'sockjs-client enables htmlfile only same-origin (HtmlFileTransport.enabled: info.sameOrigin)',
};

let server;
let site;
let browser;

function modulesDir() {
  const modules = (process.env.NODE_PATH || '').split(path.delimiter)[0];
  if (!modules) throw new Error('NODE_PATH is not set: run these tests with `cargo xtask interop`');
  return path.resolve(modules);
}

/** A page server on 127.0.0.1 (reached as http://localhost:P, another origin than the server). */
function serveCrossOriginSite(serverOrigin) {
  const page = `<!doctype html>
<meta charset="utf-8">
<title>cross-origin SockJS page</title>
<script src="${serverOrigin}/lib/sockjs.min.js"></script>
<script src="${serverOrigin}/lib/stomp.umd.min.js"></script>
<p>cross-origin test page</p>
`;
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/cross.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      return res.end(page);
    }
    res.writeHead(url.pathname === '/favicon.ico' ? 204 : 404, { 'content-type': 'text/plain' });
    return res.end();
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      resolve({
        url: (p) => `http://localhost:${srv.address().port}${p}`,
        close: () => {
          srv.closeAllConnections();
          return new Promise((r) => srv.close(() => r()));
        },
      });
    });
  });
}

/** A promise that rejects after `ms` with `what` (and `detail()` for the report). */
function deadline(promise, ms, what, detail = () => '') {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms${detail()}`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** A page in a fresh browser context that records its console output, errors, failed requests. */
async function newPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const log = [];
  page.on('console', (m) => log.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => log.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  const report = () => `\npage log:\n  ${log.slice(-30).join('\n  ')}\nserver log (tail):\n${server.output().slice(-2000)}`;
  return { context, page, log, report };
}

const tag = () => Math.random().toString(16).slice(2, 10);

before(async () => {
  const executablePath = process.env.CHROMIUM_PATH;
  if (!executablePath) throw new Error('CHROMIUM_PATH is not set: run these tests with `cargo xtask interop`');
  const modules = modulesDir();
  for (const f of ['sockjs-client/dist/sockjs.min.js', '@stomp/stompjs/bundles/stomp.umd.min.js']) {
    assert.ok(fs.existsSync(path.join(modules, f)), `${f} missing under ${modules}`);
  }
  server = await launchSwitchboard(
    '[listeners]\nhttp = "127.0.0.1:0"\nstomp = "off"\n' +
    `[sockjs]\nclient_dir = ${JSON.stringify(modules)}\n`,
  );
  site = await serveCrossOriginSite(`http://${server.http}`);
  browser = await chromium.launch({
    executablePath,
    headless: true,
    // Chromium refuses to run as root with its sandbox (CI is root); playwright then passes
    // --no-sandbox. The pages are our own, from loopback.
    chromiumSandbox: !(process.getuid && process.getuid() === 0),
    // No GPU, no QUIC, nothing that talks to the network on its own; playwright gives every
    // launch a fresh temporary profile.
    args: [
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: LAUNCH_TIMEOUT_MS,
  });
});

after(async () => {
  // Each step bounded: a browser that hangs on close must not hold up the suite.
  if (browser) await deadline(browser.close(), WAIT_MS, 'browser did not close').catch(() => {});
  if (site) await site.close();
  if (server) await server.stop();
});

/** Opens the page of a cell; resolves once the client libraries are loaded in it. */
async function openCell(page, transport, origin) {
  if (origin === 'same-origin') {
    // The demo page, which itself connects with `transport` and says which one it got.
    await page.goto(`http://${server.http}/?transport=${transport}&name=matrix`, { timeout: WAIT_MS });
    await page.waitForFunction(() => window.chatConnected === true, null, { timeout: WAIT_MS })
      .catch((e) => {
        throw new Error(`the demo page did not connect over ${transport}: ${e.message}`);
      });
    const used = await page.evaluate(() => window.chatTransport);
    assert.equal(used, transport === 'ws' ? 'plain WebSocket' : transport, 'the demo page\'s own transport');
  } else {
    await page.goto(site.url('/cross.html'), { timeout: WAIT_MS });
  }
  const loaded = await page.evaluate(() => ({
    origin: location.origin,
    sockjs: typeof SockJS,
    stomp: typeof StompJs,
  }));
  assert.deepEqual(
    { sockjs: loaded.sockjs, stomp: loaded.stomp },
    { sockjs: 'function', stomp: 'object' },
    'the page did not load /lib/sockjs.min.js and /lib/stomp.umd.min.js',
  );
  const serverOrigin = `http://${server.http}`;
  if (origin === 'same-origin') assert.equal(loaded.origin, serverOrigin);
  else assert.notEqual(loaded.origin, serverOrigin, 'the cross-origin page is same-origin');
}

for (const origin of ['same-origin', 'cross-origin']) {
  for (const transport of [...SOCKJS_TRANSPORTS, 'ws']) {
    const label = transport === 'ws' ? 'plain WebSocket' : `SockJS ${transport}`;
    const name = `Chromium ${label}, ${origin}: two clients chat, unicode, RECEIPT, client ACK`;
    const skip = UNSUPPORTED[`${transport} ${origin}`];
    if (skip) {
      test(name, { skip });
      continue;
    }
    test(name, { timeout: CELL_MS + 10000 }, async () => {
      const { context, page, report } = await newPage();
      try {
        const run = (async () => {
          await openCell(page, transport, origin);
          return page.evaluate(chatScenario, {
            transport,
            sockjsUrl: `http://${server.http}/chat`,
            wsUrl: `ws://${server.http}/chat`,
            tag: tag(),
            waitMs: WAIT_MS,
          });
        })();
        run.catch(() => {}); // awaited below; the deadline may win first
        const result = await deadline(run, CELL_MS, `${label} ${origin} did not finish`, report)
          .catch((e) => {
            throw new Error(`${e.message}${e.message.includes('page log:') ? '' : report()}`);
          });
        // No silent fallback: sockjs-client reports the transport it really opened.
        assert.deepEqual(result.transports, [transport, transport], `transports used: ${result.transports}`);
      } finally {
        await deadline(context.close(), WAIT_MS, 'context did not close').catch(() => {});
      }
    });
  }
}

test('the demo page: two pages chat through the UI, messages shown with from, text and time; screenshot', { timeout: 60000 }, async () => {
  const shots = process.env.SCREENSHOT_DIR;
  if (!shots) throw new Error('SCREENSHOT_DIR is not set: run these tests with `cargo xtask interop`');
  const t = tag();
  // alice lets SockJS choose (auto), bob forces xhr-streaming: the chat crosses transports.
  const people = [
    { name: `alice-${t}`, query: '', expect: null, ...(await newPage()) },
    { name: `bob-${t}`, query: '&transport=xhr-streaming', expect: 'xhr-streaming', ...(await newPage()) },
  ];
  try {
    for (const p of people) {
      await p.page.setViewportSize({ width: 820, height: 640 });
      await p.page.goto(`http://${server.http}/?name=${encodeURIComponent(p.name)}${p.query}`, { timeout: WAIT_MS });
      await p.page.waitForFunction(() => window.chatConnected === true, null, { timeout: WAIT_MS })
        .catch((e) => { throw new Error(`${p.name}'s demo page did not connect: ${e.message}${p.report()}`); });
      assert.equal(await p.page.textContent('#state'), 'connected');
      assert.equal(await p.page.inputValue('#name'), p.name, '?name= pre-fills #name');
      const used = await p.page.evaluate(() => window.chatTransport);
      if (p.expect) assert.equal(used, p.expect);
      else assert.ok(used, 'the demo page says which transport it uses');
    }
    // The page subscribes in onConnect without asking for a receipt, so a line sent right away
    // could reach the broker before the other page's SUBSCRIBE. Warm up: alice sends numbered
    // lines until both pages show one (at most 5, each awaited for at most 2 s).
    const shows = (p, text, ms) => p.page.waitForFunction(
      (text) => Array.from(document.querySelectorAll('#messages .message .text'))
        .some((e) => e.textContent === text),
      text,
      { timeout: ms },
    ).then(() => true, () => false);
    let warm = false;
    for (let i = 1; i <= 5 && !warm; i++) {
      const text = `warm-up ${t} #${i}`;
      await people[0].page.evaluate(() => window.chatConnected).then((c) => assert.ok(c, 'alice disconnected'));
      await people[0].page.fill('#text', text);
      await people[0].page.press('#text', 'Enter');
      warm = (await shows(people[0], text, 2000)) && (await shows(people[1], text, 2000));
    }
    assert.ok(warm, `no warm-up line reached both pages${people[0].report()}${people[1].report()}`);
    const lines = [
      { by: 0, text: `hello from alice ${t} — é 😀`, how: 'enter' },
      { by: 1, text: `hi alice, bob here ${t} "quoted" \\ back`, how: 'click' },
    ];
    for (const line of lines) {
      const sender = people[line.by];
      await sender.page.fill('#text', line.text);
      if (line.how === 'enter') await sender.page.press('#text', 'Enter');
      else await sender.page.click('#send');
      for (const p of people) {
        const shown = await p.page.waitForFunction(
          (text) => Array.from(document.querySelectorAll('#messages .message'))
            .map((m) => ({
              from: m.querySelector('.from')?.textContent,
              text: m.querySelector('.text')?.textContent,
              time: m.querySelector('.time')?.textContent,
            }))
            .find((m) => m.text === text),
          line.text,
          { timeout: WAIT_MS },
        ).then((h) => h.jsonValue())
          .catch((e) => { throw new Error(`${p.name}'s page shows no message ${JSON.stringify(line.text)}: ${e.message}${p.report()}`); });
        assert.equal(shown.from, sender.name, `${p.name} sees the sender's name`);
        assert.match(shown.time, /^\d\d:\d\d$/, `${p.name} sees an HH:MM time`);
      }
      assert.equal(await sender.page.inputValue('#text'), '', 'the input is cleared after sending');
    }
    fs.mkdirSync(shots, { recursive: true });
    const file = path.join(shots, 'demo-chat.png');
    await people[0].page.screenshot({ path: file });
    assert.ok(fs.statSync(file).size > 1000, `${file} is a real image`);
  } finally {
    for (const p of people) await deadline(p.context.close(), WAIT_MS, 'context did not close').catch(() => {});
  }
});
