// @stomp/stompjs in a real browser (headless Chromium from Debian's `chromium` package, driven
// by playwright-core) against the `switchboard` binary's /chat WebSocket endpoint:
// 1. the README's ```html quick-start block, taken from README.md itself, works as written;
// 2. two pages subscribed to one topic see each other's messages (the chat scenario).
// Pages are served by a loopback HTTP server of this file's own, like the README's
// `python3 -m http.server`, so the browser sends a real loopback `Origin`.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { launchSwitchboard } = require('./harness');
const { onlyBlock, fencedBlocks } = require('./markdown');

const README = path.join(__dirname, '..', '..', '..', 'README.md');
const README_URL = 'ws://127.0.0.1:8080/chat';
const STOMPJS_BUNDLE = 'node_modules/@stomp/stompjs/bundles/stomp.umd.min.js';
const LAUNCH_TIMEOUT_MS = 60000;
const WAIT_MS = 15000;

let server;
let site;
let browser;

/**
 * A loopback HTTP server with `pages` (`{ '/name.html': html }`) and, under `/node_modules/`,
 * the files of the npm prefix xtask installed (the first `NODE_PATH` entry).
 */
function serveSite(pages) {
  const modules = (process.env.NODE_PATH || '').split(path.delimiter)[0];
  if (!modules) throw new Error('NODE_PATH is not set: run these tests with `cargo xtask interop`');
  const root = path.resolve(modules);
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const send = (status, type, body) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (Object.hasOwn(pages, url.pathname)) {
      return send(200, 'text/html; charset=utf-8', pages[url.pathname]);
    }
    if (url.pathname === '/favicon.ico') return send(204, 'image/x-icon', ''); // no 404 noise
    if (url.pathname.startsWith('/node_modules/')) {
      const file = path.resolve(root, decodeURIComponent(url.pathname.slice('/node_modules/'.length)));
      if (file.startsWith(root + path.sep) && file.endsWith('.js')) {
        return fs.readFile(file, (err, body) => {
          if (err) send(404, 'text/plain', 'not found');
          else send(200, 'text/javascript; charset=utf-8', body);
        });
      }
    }
    return send(404, 'text/plain', 'not found');
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      resolve({
        url: (p) => `http://127.0.0.1:${srv.address().port}${p}`,
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

/** A page in a fresh browser context that records its console output and errors. */
async function newPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const log = [];
  page.on('console', (m) => log.push(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => log.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
  const report = () => `\npage log:\n  ${log.join('\n  ')}\nserver log:\n${server.output()}`;
  return { context, page, log, report };
}

const readme = fs.readFileSync(README, 'utf-8');
const quickStart = onlyBlock(readme, 'html');
const chatPage = `<!doctype html>\n<script src="${STOMPJS_BUNDLE}"></script>\n`;

before(async () => {
  const executablePath = process.env.CHROMIUM_PATH;
  if (!executablePath) throw new Error('CHROMIUM_PATH is not set: run these tests with `cargo xtask interop`');
  server = await launchSwitchboard();
  assert.equal(quickStart.split(README_URL).length, 2, `the README's page no longer uses ${README_URL}`);
  assert.ok(quickStart.includes(`src="${STOMPJS_BUNDLE}"`), `the README's page no longer loads ${STOMPJS_BUNDLE}`);
  site = await serveSite({
    '/quickstart.html': quickStart.replace(README_URL, server.wsUrl('/chat')),
    '/chat.html': chatPage,
  });
  browser = await chromium.launch({
    executablePath,
    headless: true,
    // Chromium's sandbox refuses to start as root ("Running as root without --no-sandbox is
    // not supported"), and CI runs as root; playwright then passes --no-sandbox. Not as root,
    // the sandbox stays on. The pages are our own, served from loopback.
    chromiumSandbox: !(process.getuid && process.getuid() === 0),
    timeout: LAUNCH_TIMEOUT_MS,
  });
});

after(async () => {
  // Each step bounded: a browser that hangs on close must not hold up the suite.
  if (browser) await deadline(browser.close(), WAIT_MS, 'browser did not close').catch(() => {});
  if (site) await site.close();
  if (server) await server.stop();
});

test("the README's ```html block extraction sees the fences as CommonMark does", () => {
  const text = '```html\n<p>\n```\n~~~ html\n````\n~~~\n';
  assert.deepEqual(fencedBlocks(text), [
    { language: 'html', code: '<p>\n' },
    { language: 'html', code: '````\n' },
  ]);
});

test("the README's browser snippet works as written in Chromium", async () => {
  const { context, page, report } = await newPage();
  try {
    const got = page.waitForEvent('console', {
      predicate: (m) => m.text() === 'got hello from the browser',
      timeout: WAIT_MS,
    });
    got.catch(() => {}); // awaited below; goto may throw first
    await page.goto(site.url('/quickstart.html'), { timeout: WAIT_MS });
    await got.catch((e) => {
      throw new Error(`no "got hello from the browser" on the console: ${e.message}${report()}`);
    });
  } finally {
    await context.close();
  }
});

test('two browser pages chat on one topic through @stomp/stompjs', async () => {
  const room = `room-${Math.random().toString(16).slice(2, 10)}`;
  const people = [await newPage(), await newPage()];
  try {
    for (const p of people) {
      await p.page.goto(site.url('/chat.html'), { timeout: WAIT_MS });
      // Connect, subscribe, and resolve once the server's RECEIPT says the subscription is in.
      const joined = p.page.evaluate(
        ({ url, room }) => new Promise((resolve, reject) => {
          window.received = [];
          const client = new StompJs.Client({ brokerURL: url, reconnectDelay: 0 });
          window.chat = client;
          client.onConnect = () => {
            client.watchForReceipt('joined', () => resolve());
            client.subscribe(`/topic/${room}`, (m) => window.received.push(m.body), { receipt: 'joined' });
          };
          client.onStompError = (f) => reject(new Error(`ERROR frame: ${f.headers.message}`));
          client.onWebSocketClose = (e) => reject(new Error(`WebSocket closed: ${e.code}`));
          client.activate();
        }),
        { url: server.wsUrl('/chat'), room },
      );
      await deadline(joined, WAIT_MS, 'a page did not connect and subscribe', p.report);
    }
    const lines = ['hi from page 0', 'hi from page 1'];
    for (const [i, line] of lines.entries()) {
      await people[i].page.evaluate(
        ({ room, line }) => window.chat.publish({ destination: `/app/${room}`, body: line }),
        { room, line },
      );
      // Every page, the sender included, gets the line before the next one is sent.
      for (const p of people) {
        await p.page
          .waitForFunction((n) => window.received.length >= n, i + 1, { timeout: WAIT_MS })
          .catch((e) => { throw new Error(`${e.message}${p.report()}`); });
      }
    }
    for (const p of people) {
      assert.deepEqual(await p.page.evaluate(() => window.received), lines);
      await deadline(p.page.evaluate(() => window.chat.deactivate()), WAIT_MS, 'a page did not disconnect');
    }
  } finally {
    for (const p of people) await p.context.close();
  }
});
