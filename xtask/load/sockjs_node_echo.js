// sockjs-node (npm `sockjs`, pinned in xtask/src/interop.rs) as a SockJS echo server at /echo:
// the peer of `cargo xtask load sockjs --compare`. xtask starts it with NODE_PATH pointing at
// target/xtask/node/node_modules.
//
//   node sockjs_node_echo.js HOST:PORT [--response-limit BYTES]
//
// Every message a session receives is written back to it. Prints one line
// `sockjs-node echo listening on HOST:PORT/echo` once it listens; SIGTERM or SIGINT stops it.
'use strict';

const http = require('node:http');
const sockjs = require('sockjs');

function usage(why) {
  process.stderr.write(`sockjs_node_echo: ${why}\nusage: node sockjs_node_echo.js HOST:PORT [--response-limit BYTES]\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
let addr = null;
let responseLimit = 128 * 1024; // sockjs-node's default
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--response-limit') {
    responseLimit = Number(args[++i]);
    if (!Number.isInteger(responseLimit) || responseLimit < 1) usage('--response-limit needs a positive integer');
  } else if (addr === null) {
    addr = args[i];
  } else {
    usage(`unexpected argument ${args[i]}`);
  }
}
const m = /^([^:]+):(\d+)$/.exec(addr || '');
if (!m) usage('HOST:PORT expected');

const echo = sockjs.createServer({
  prefix: '/echo',
  response_limit: responseLimit,
  log: () => {}, // per-request logging would dominate a load test
});
echo.on('connection', (conn) => {
  conn.on('data', (message) => conn.write(message));
});

const server = http.createServer();
echo.installHandlers(server);
server.listen(Number(m[2]), m[1], () => {
  const a = server.address();
  process.stdout.write(`sockjs-node echo listening on ${a.address}:${a.port}/echo\n`);
});
server.on('error', (e) => {
  process.stderr.write(`sockjs_node_echo: ${e.message}\n`);
  process.exit(1);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
