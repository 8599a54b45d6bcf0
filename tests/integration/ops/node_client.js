// Node `ws` as an independent peer for the ops tests.
// Usage: node node_client.js SCENARIO URL [ARGS...]
//   subprotocol URL OFFERED_CSV EXPECTED   open offering OFFERED, expect EXPECTED ("-" = none) to be selected, echo once
//   none_selected URL OFFERED_CSV          expect a 101 without Sec-WebSocket-Protocol
//   refused URL OFFERED_CSV STATUS         expect the upgrade to be refused with STATUS
//   wss_echo URL CA_FILE                   wss: echo text and binary, answer the server's ping
// Prints "ok" and exits 0 on success; prints the failure and exits 1 otherwise.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const WebSocket = require('ws');

const [scenario, url, ...args] = process.argv.slice(2);
setTimeout(() => { console.error(`timeout: ${scenario}`); process.exit(1); }, 30000).unref();

function open(protocols, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { perMessageDeflate: false, handshakeTimeout: 10000, ...options });
    ws.closeInfo = new Promise((res) => ws.once('close', (code, reason) => res({ code, reason: reason.toString() })));
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}

function echo(ws, data, binary) {
  return new Promise((resolve, reject) => {
    ws.once('message', (d, isBinary) => { assert.equal(isBinary, binary); resolve(d); });
    ws.once('close', (code) => reject(new Error(`closed ${code}`)));
    ws.send(data, { binary });
  });
}

async function main() {
  if (scenario === 'subprotocol') {
    const offered = args[0] ? args[0].split(',') : [];
    const ws = await open(offered);
    assert.equal(ws.protocol, args[1] === '-' ? '' : args[1], 'selected subprotocol');
    const got = await echo(ws, 'hello', false);
    assert.equal(got.toString(), 'hello');
    ws.close(1000);
    const info = await ws.closeInfo;
    assert.equal(info.code, 1000);
  } else if (scenario === 'none_selected') {
    // The server accepts (101) without Sec-WebSocket-Protocol. ws is stricter than RFC 6455 §4.1
    // (which lets a client continue) and fails such a connection itself, with this exact message:
    // that message is how we observe "101 with no subprotocol" from Node.
    const offered = args[0].split(',');
    try {
      await open(offered);
    } catch (e) {
      assert.equal(e.status, undefined, `the upgrade must not be refused (${e.message})`);
      assert.equal(e.message, 'Server sent no subprotocol');
      console.log('ok');
      return;
    }
    throw new Error('ws accepted a connection without a subprotocol');
  } else if (scenario === 'refused') {
    const offered = args[0] ? args[0].split(',') : [];
    try {
      await open(offered);
    } catch (e) {
      assert.equal(e.status, Number(args[1]), `refusal status (${e.message})`);
      console.log('ok');
      return;
    }
    throw new Error('the upgrade was accepted');
  } else if (scenario === 'wss_echo') {
    const ca = fs.readFileSync(args[0]);
    const ws = await open([], { ca });
    assert.equal((await echo(ws, 'secure hello', false)).toString(), 'secure hello');
    const big = Buffer.alloc(50000, 7);
    assert.ok((await echo(ws, big, true)).equals(big));
    // Heartbeat over TLS: the server pings after heartbeat.ping_interval of silence; ws answers automatically.
    await new Promise((resolve) => ws.once('ping', resolve));
    // A second ping comes only if the connection survived the first (ws answers pings itself).
    await new Promise((resolve) => ws.once('ping', resolve));
    assert.equal(ws.readyState, WebSocket.OPEN, 'connection must survive answered pings');
    assert.equal((await echo(ws, 'after ping', false)).toString(), 'after ping');
    ws.close(1000);
    assert.equal((await ws.closeInfo).code, 1000);
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  console.log('ok');
}

main().then(() => process.exit(0), (e) => { console.error(e.stack || String(e)); process.exit(1); });
