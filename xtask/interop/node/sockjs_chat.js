'use strict';
// The chat scenario the SockJS interop tests run, in Node (sockjs_node.test.js) and inside a
// Chromium page (sockjs_browser.test.js, through page.evaluate). `chatScenario` is therefore
// self-contained: it uses only its argument and, when the argument does not carry them, the
// page's globals `SockJS`, `StompJs` and `WebSocket`; it returns plain JSON.
//
// Two STOMP clients (@stomp/stompjs) connect over `transport` (a sockjs-client transport name,
// forced with `transports: [name]`, or `ws` for a plain WebSocket without SockJS), then:
// 1. both SUBSCRIBE to /topic/messages (each confirmed by a RECEIPT);
// 2. alice SENDs {"from","text"} to /app/chat: both get a MESSAGE with content-type
//    application/json and body {"from","text","time":"HH:MM"};
// 3. bob SENDs a text with é, U+2028, U+2029, an emoji, quotes and a backslash: both get it
//    back exactly;
// 4. a SEND with a `receipt` header is answered by its RECEIPT;
// 5. client acks: alice subscribes to a fresh /queue/... with ack:client-individual, bob sends
//    job-1, alice gets it and ACKs it (the ACK carries a receipt, which arrives), alice
//    unsubscribes (receipt), bob subscribes (receipt), alice sends job-2: bob's first message is
//    job-2, so job-1 was not redelivered;
// and no ERROR frame and no unexpected close happened along the way. It returns the transport
// sockjs-client reported for each client once connected (its `transport` property), so the
// caller can check that no silent fallback happened.

/**
 * @param {object} p
 * @param {string} p.transport  sockjs-client transport name, or 'ws'
 * @param {string} p.sockjsUrl  http URL of the SockJS endpoint (e.g. http://127.0.0.1:P/chat)
 * @param {string} p.wsUrl      ws URL of the plain WebSocket endpoint (for 'ws')
 * @param {string} p.tag        unique per run, keeps texts and queue names apart
 * @param {number} p.waitMs     bound for each single wait
 * @param {Function} [p.SockJS] [p.Client] [p.WebSocket]  constructors (Node); else globals
 */
async function chatScenario(p) {
  const SockJSCtor = p.SockJS || globalThis.SockJS;
  const ClientCtor = p.Client || (globalThis.StompJs && globalThis.StompJs.Client);
  const WebSocketCtor = p.WebSocket || globalThis.WebSocket;
  if (!ClientCtor) throw new Error('@stomp/stompjs is not loaded (no StompJs.Client)');
  if (p.transport !== 'ws' && !SockJSCtor) throw new Error('sockjs-client is not loaded (no SockJS)');

  const events = [];
  let failed = null;
  let fail;
  // Rejects as soon as any client sees an ERROR frame or loses its connection unexpectedly.
  const failure = new Promise((_, reject) => {
    fail = (why) => {
      if (!failed) {
        failed = why;
        events.push(`failure: ${why}`);
        reject(new Error(why));
      }
    };
  });
  failure.catch(() => {});
  const within = (promise, what) => {
    let timer;
    const expired = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} within ${p.waitMs} ms`)), p.waitMs);
    });
    const settled = Promise.race([promise, expired, failure]).finally(() => clearTimeout(timer));
    // A wait abandoned because an earlier step threw must not become an unhandled rejection;
    // whoever awaits it still sees the error.
    settled.catch(() => {});
    return settled;
  };

  const people = [];
  function connect(name) {
    return within(new Promise((resolve, reject) => {
      let sock = null;
      let closing = false;
      const person = { name, client: null, transport: null };
      const client = new ClientCtor({
        webSocketFactory: () => {
          sock = p.transport === 'ws'
            ? new WebSocketCtor(p.wsUrl, ['v12.stomp'])
            : new SockJSCtor(p.sockjsUrl, null, { transports: [p.transport] });
          return sock;
        },
        reconnectDelay: 0,
        heartbeatIncoming: 0,
        heartbeatOutgoing: 0,
        debug: () => {},
      });
      person.client = client;
      person.close = async () => {
        closing = true;
        await client.deactivate();
      };
      client.onConnect = () => {
        // sockjs-client sets `transport` once its transport is open and clears it on close.
        person.transport = p.transport === 'ws' ? 'ws' : sock && sock.transport;
        events.push(`${name}: connected via ${person.transport}`);
        resolve(person);
      };
      client.onStompError = (f) => {
        const why = `${name} got an ERROR frame: ${f.headers.message || ''} ${f.body || ''}`;
        fail(why);
        reject(new Error(why));
      };
      client.onWebSocketClose = (e) => {
        events.push(`${name}: closed ${e && e.code} ${(e && e.reason) || ''}`);
        if (!closing) {
          const why = `${name}: connection closed (${e && e.code} ${(e && e.reason) || ''}) unexpectedly`;
          fail(why);
          reject(new Error(why));
        }
      };
      client.activate();
      people.push(person);
    }), `${name} did not connect over ${p.transport}`);
  }

  // Messages of one subscription; `next(what)` waits (bounded) for the next one.
  function inbox() {
    const items = [];
    const waiters = [];
    return {
      push(m) {
        const w = waiters.shift();
        if (w) w(m); else items.push(m);
      },
      next(what) {
        if (items.length) return Promise.resolve(items.shift());
        return within(new Promise((resolve) => waiters.push(resolve)), what);
      },
      get pending() { return items.length; },
    };
  }

  function receipt(person, id, what) {
    return within(new Promise((resolve) => person.client.watchForReceipt(id, resolve)), `no RECEIPT ${id} (${what})`);
  }

  // The next chat message on `box` whose text is `text` (earlier ones, from other runs, skipped).
  async function chatMessage(box, text, who) {
    for (;;) {
      const m = await box.next(`${who} got no chat message ${JSON.stringify(text)}`);
      let body;
      try {
        body = JSON.parse(m.body);
      } catch (e) {
        throw new Error(`${who}: a /topic/messages body is not JSON: ${m.body}`);
      }
      if (body.text === text) return { headers: m.headers, body };
      events.push(`${who}: skipped ${m.body}`);
    }
  }

  function checkChat(got, from, text, who) {
    const problems = [];
    if (!String(got.headers['content-type'] || '').startsWith('application/json')) {
      problems.push(`content-type ${got.headers['content-type']}`);
    }
    if (got.body.from !== from) problems.push(`from ${JSON.stringify(got.body.from)}, sent ${from}`);
    if (got.body.text !== text) problems.push(`text ${JSON.stringify(got.body.text)}`);
    if (!/^\d\d:\d\d$/.test(got.body.time || '')) problems.push(`time ${JSON.stringify(got.body.time)}`);
    if (problems.length) throw new Error(`${who}: chat message wrong: ${problems.join(', ')}`);
  }

  try {
    const alice = await connect('alice');
    const bob = await connect('bob');

    // 1. Both subscribe to the chat topic.
    const boxes = new Map();
    for (const person of [alice, bob]) {
      const box = inbox();
      boxes.set(person, box);
      const id = `sub-${person.name}`;
      const r = receipt(person, id, `SUBSCRIBE /topic/messages by ${person.name}`);
      person.client.subscribe('/topic/messages', (m) => box.push(m), { receipt: id });
      await r;
    }

    // 2. A chat round trip through /app/chat.
    const hello = `hello over ${p.transport} ${p.tag}`;
    alice.client.publish({
      destination: '/app/chat',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ from: 'alice', text: hello }),
    });
    for (const person of [alice, bob]) {
      checkChat(await chatMessage(boxes.get(person), hello, person.name), 'alice', hello, person.name);
    }

    // 3. Unicode that JSON and SockJS framing must carry intact.
    const unicode = `é \u2028 \u2029 😀 "quotes" back\\slash ${p.tag}`;
    bob.client.publish({
      destination: '/app/chat',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ from: 'bob', text: unicode }),
    });
    for (const person of [alice, bob]) {
      checkChat(await chatMessage(boxes.get(person), unicode, person.name), 'bob', unicode, person.name);
    }

    // 4. A receipt for a SEND.
    const sent = receipt(alice, 'send-receipt', 'SEND with a receipt header');
    alice.client.publish({
      destination: '/app/chat',
      headers: { 'content-type': 'application/json', receipt: 'send-receipt' },
      body: JSON.stringify({ from: 'alice', text: `receipt ${p.tag}` }),
    });
    const r = await sent;
    if (r.headers['receipt-id'] !== 'send-receipt') throw new Error(`RECEIPT for ${r.headers['receipt-id']}`);

    // 5. Client acks on a queue; the acked message is not redelivered to the next consumer.
    const queue = `/queue/acks-${p.tag}`;
    const aliceJobs = inbox();
    let rq = receipt(alice, 'qa', `SUBSCRIBE ${queue} by alice`);
    const aliceSub = alice.client.subscribe(queue, (m) => aliceJobs.push(m), {
      ack: 'client-individual',
      receipt: 'qa',
    });
    await rq;
    bob.client.publish({ destination: queue, body: 'job-1' });
    const job1 = await aliceJobs.next('alice got no job-1 from the queue');
    if (job1.body !== 'job-1') throw new Error(`alice got ${job1.body} instead of job-1`);
    if (!job1.headers.ack) throw new Error('a client-individual MESSAGE has no ack header');
    rq = receipt(alice, 'ack-1', 'ACK of job-1');
    job1.ack({ receipt: 'ack-1' });
    await rq;
    rq = receipt(alice, 'unsub', `UNSUBSCRIBE ${queue} by alice`);
    aliceSub.unsubscribe({ receipt: 'unsub' });
    await rq;
    const bobJobs = inbox();
    rq = receipt(bob, 'qb', `SUBSCRIBE ${queue} by bob`);
    bob.client.subscribe(queue, (m) => bobJobs.push(m), { ack: 'client-individual', receipt: 'qb' });
    await rq;
    alice.client.publish({ destination: queue, body: 'job-2' });
    const first = await bobJobs.next('bob got nothing from the queue');
    if (first.body !== 'job-2') {
      throw new Error(`bob's first queue message is ${JSON.stringify(first.body)} (redelivered: ` +
        `${first.headers.redelivered}): the acked job-1 came back`);
    }
    rq = receipt(bob, 'ack-2', 'ACK of job-2');
    first.ack({ receipt: 'ack-2' });
    await rq;
    if (aliceJobs.pending || bobJobs.pending) throw new Error('a queue message arrived twice');
    if (failed) throw new Error(failed);

    const transports = people.map((x) => x.transport);
    for (const person of people) {
      await within(person.close(), `${person.name} did not disconnect`);
    }
    return { transports, events };
  } catch (e) {
    for (const person of people) {
      try { person.close(); } catch (_) { /* already closed */ }
    }
    // Error objects do not cross page.evaluate with their details; a message with the log does.
    throw new Error(`${e.message}\n  client log: ${events.join(' | ')}`);
  }
}

module.exports = { chatScenario };
