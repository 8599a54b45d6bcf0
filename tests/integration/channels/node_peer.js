// Node `ws` as a second independent conduit.v1 client, written from docs/protocol.md alone.
// Usage: node node_peer.js URL
// Subscribes, receives pushes published by another connection, drops, re-subscribes with `since`
// (recovered: the missed publications in order), then with a wrong epoch and with an offset above
// the channel's last one (recovered: false, no publications). Prints "ok" and exits 0, or prints
// the failed assertion and exits 1.
'use strict';

const assert = require('node:assert/strict');
const WebSocket = require('ws');

const url = process.argv[2];
setTimeout(() => { console.error('timeout'); process.exit(1); }, 60000).unref();

// One connection: requests with ids, replies matched by id, pushes queued in order.
class Peer {
  static open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, ['conduit.v1'], { perMessageDeflate: false, handshakeTimeout: 10000 });
      ws.once('open', () => resolve(new Peer(ws)));
      ws.once('unexpected-response', (req, res) => reject(new Error(`status ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }

  constructor(ws) {
    assert.equal(ws.protocol, 'conduit.v1', 'selected subprotocol');
    this.ws = ws;
    this.nextId = 0;
    this.replies = new Map();
    this.pushes = [];
    this.waiters = [];
    ws.on('message', (data, isBinary) => {
      assert.equal(isBinary, false, 'conduit.v1 frames are text');
      const msg = JSON.parse(data.toString('utf8'));
      if ('push' in msg && !('id' in msg)) this.pushes.push(msg.push);
      else this.replies.set(msg.id, msg);
      this.wake();
    });
    ws.on('close', (code) => { this.closedWith = code; this.wake(); });
  }

  wake() { const w = this.waiters; this.waiters = []; w.forEach((f) => f()); }

  async until(pred, what) {
    const deadline = Date.now() + 15000;
    while (!pred()) {
      if (this.closedWith !== undefined) throw new Error(`closed ${this.closedWith} while waiting for ${what}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, 1000).unref(); });
    }
  }

  async request(op, body) {
    const id = ++this.nextId;
    this.ws.send(JSON.stringify({ id, [op]: body }));
    await this.until(() => this.replies.has(id), `reply ${id}`);
    const r = this.replies.get(id);
    this.replies.delete(id);
    return r;
  }

  async pushesN(n) {
    await this.until(() => this.pushes.length >= n, `${n} pushes`);
    return this.pushes.slice(0, n);
  }

  close() { this.ws.terminate(); }
}

async function main() {
  const ch = 'node:room';
  const sub = await Peer.open();
  const pub = await Peer.open();
  const first = await sub.request('subscribe', { channel: ch });
  assert.deepEqual(Object.keys(first.result).sort(), ['epoch', 'offset']);
  assert.equal(first.result.offset, 0);
  const epoch = first.result.epoch;
  assert.equal(typeof epoch, 'string');

  for (let i = 1; i <= 3; i++) {
    const r = await pub.request('publish', { channel: ch, data: { n: i, s: `m${i}` } });
    assert.deepEqual(r, { id: i, result: { offset: i, epoch } });
  }
  const live = await sub.pushesN(3);
  assert.deepEqual(live, [1, 2, 3].map((i) => ({ channel: ch, offset: i, epoch, data: { n: i, s: `m${i}` } })));
  const last = live[2];
  sub.close();

  // Missed while away: 4 and 5.
  for (let i = 4; i <= 5; i++) {
    const r = await pub.request('publish', { channel: ch, data: { n: i, s: `m${i}` } });
    assert.equal(r.result.offset, i);
  }
  const again = await Peer.open();
  const rec = await again.request('subscribe', { channel: ch, since: { offset: last.offset, epoch: last.epoch } });
  assert.deepEqual(rec, {
    id: 1,
    result: {
      offset: 5, epoch, recovered: true,
      publications: [4, 5].map((i) => ({ channel: ch, offset: i, epoch, data: { n: i, s: `m${i}` } })),
    },
  });
  // Then live ones, none repeated.
  await pub.request('publish', { channel: ch, data: 'six' });
  const after = await again.pushesN(1);
  assert.deepEqual(after, [{ channel: ch, offset: 6, epoch, data: 'six' }]);

  // Wrong epoch, and an offset above the last one: recovered false, the current position, nothing else.
  const other = await Peer.open();
  const wrongEpoch = await other.request('subscribe', { channel: ch, since: { offset: 2, epoch: `${epoch}x` } });
  assert.deepEqual(wrongEpoch, { id: 1, result: { offset: 6, epoch, recovered: false, publications: [] } });
  await other.request('unsubscribe', { channel: ch });
  const ahead = await other.request('subscribe', { channel: ch, since: { offset: 99, epoch } });
  assert.deepEqual(ahead, { id: 3, result: { offset: 6, epoch, recovered: false, publications: [] } });
  // At the last offset: recovered with nothing to send.
  await other.request('unsubscribe', { channel: ch });
  const atEnd = await other.request('subscribe', { channel: ch, since: { offset: 6, epoch } });
  assert.deepEqual(atEnd, { id: 5, result: { offset: 6, epoch, recovered: true, publications: [] } });

  [pub, again, other].forEach((p) => p.close());
  console.log('ok');
}

main().then(() => process.exit(0), (e) => { console.error(e && e.stack ? e.stack : e); process.exit(1); });
