// Node `ws` as an independent peer of conduitd. Usage: node node_peer.js URL SCENARIO
// Prints "ok SCENARIO" and exits 0 when every check holds; prints the failure and exits 1 otherwise.
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const WebSocket = require('ws');

const [url, scenario] = process.argv.slice(2);
const STEP_MS = 10000;

// Hard bound on the whole run, whatever happens.
setTimeout(() => {
  console.error(`timeout: scenario ${scenario} did not finish`);
  process.exit(1);
}, 45000).unref();

function open(options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: STEP_MS, ...options });
    // Registered at once so that a close arriving before anyone waits for it is not missed.
    ws.closeInfo = new Promise((res) => ws.once('close', (code, reason) => res({ code, reason: reason.toString() })));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function within(promise, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), STEP_MS);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

function nextMessage(ws) {
  return within(new Promise((resolve, reject) => {
    const onClose = (code) => reject(new Error(`closed with ${code} while waiting for a message`));
    ws.once('close', onClose);
    ws.once('message', (data, isBinary) => {
      ws.off('close', onClose);
      resolve({ data, isBinary });
    });
  }), 'a message');
}

function closed(ws) {
  return within(ws.closeInfo, 'close');
}

async function echo(ws, data, binary) {
  const p = nextMessage(ws);
  ws.send(data, { binary });
  const got = await p;
  assert.equal(got.isBinary, binary, 'opcode must be kept');
  return got.data;
}

function sendFragmented(ws, parts, binary) {
  parts.forEach((part, i) => ws.send(part, { binary, fin: i === parts.length - 1 }));
}

const scenarios = {
  async echo() {
    const ws = await open();
    for (const text of ['hello', '', 'héllo ✓ 𝄞', 'x'.repeat(126), 'y'.repeat(65535)]) {
      assert.equal((await echo(ws, text, false)).toString(), text);
    }
    for (const n of [0, 1, 125, 126, 65536, 60 * 1024]) {
      const buf = crypto.randomBytes(n);
      assert.deepEqual(await echo(ws, buf, true), buf);
    }
    // fragmented: echoed as one message
    let p = nextMessage(ws);
    sendFragmented(ws, ['frag', 'mented ✓', ' text'], false);
    let got = await p;
    assert.equal(got.isBinary, false);
    assert.equal(got.data.toString(), 'fragmented ✓ text');
    const parts = [crypto.randomBytes(1000), crypto.randomBytes(3000), crypto.randomBytes(10)];
    p = nextMessage(ws);
    sendFragmented(ws, parts, true);
    got = await p;
    assert.equal(got.isBinary, true);
    assert.deepEqual(got.data, Buffer.concat(parts));
    // ping -> pong with the same payload
    const pong = within(new Promise((resolve) => ws.once('pong', resolve)), 'pong');
    ws.ping(Buffer.from('node-ping'));
    assert.equal((await pong).toString(), 'node-ping');
    // clean close
    const c = closed(ws);
    ws.close(1000, 'done');
    assert.equal((await c).code, 1000);
  },

  async oversize() {
    const ws = await open();
    const c = closed(ws);
    ws.send(crypto.randomBytes(65537));
    assert.equal((await c).code, 1009);
  },

  async large() {
    const ws = await open();
    const buf = crypto.randomBytes(1024 * 1024);
    assert.deepEqual(await echo(ws, buf, true), buf);
    ws.close(1000);
    await closed(ws);
  },

  async heartbeat() {
    // ws answers pings automatically; we watch them arrive and check the connection survives them.
    const ws = await open();
    let pings = 0;
    ws.on('ping', () => { pings += 1; });
    await within(new Promise((resolve) => {
      const check = () => (pings >= 3 ? resolve() : setTimeout(check, 20));
      check();
    }), 'three server pings');
    assert.equal(ws.readyState, WebSocket.OPEN, 'answered pings must keep the connection open');
    assert.equal((await echo(ws, 'after pings', false)).toString(), 'after pings');
    ws.close(1000);
    await closed(ws);
  },

  async 'compression-on'() {
    const ws = await open({ perMessageDeflate: { threshold: 0 } });
    assert.match(ws.extensions, /permessage-deflate/, `negotiated: "${ws.extensions}"`);
    const text = 'compressible '.repeat(5000);
    assert.equal((await echo(ws, text, false)).toString(), text);
    const buf = crypto.randomBytes(20000);
    assert.deepEqual(await echo(ws, buf, true), buf);
    for (let i = 0; i < 20; i++) { // context takeover across messages, if negotiated
      const m = `message ${i} `.repeat(50);
      assert.equal((await echo(ws, m, false)).toString(), m);
    }
    ws.close(1000);
    await closed(ws);
  },

  async 'compression-off'() {
    const ws = await open({ perMessageDeflate: true });
    assert.equal(ws.extensions, '', `nothing may be negotiated, got "${ws.extensions}"`);
    const text = 'plain '.repeat(1000);
    assert.equal((await echo(ws, text, false)).toString(), text);
    ws.close(1000);
    await closed(ws);
  },
};

(async () => {
  const run = scenarios[scenario];
  if (!url || !run) {
    console.error(`usage: node node_peer.js URL (${Object.keys(scenarios).join('|')})`);
    process.exit(2);
  }
  await run();
  console.log(`ok ${scenario}`);
  process.exit(0);
})().catch((err) => {
  console.error(`FAIL ${scenario}: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
