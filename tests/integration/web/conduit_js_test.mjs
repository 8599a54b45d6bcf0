// web/conduit.js in Node (the `ws` package as its WebSocket), against a real conduitd on
// 127.0.0.1: what the browser test does not reach. Fast; no browser.
//
//   node conduit_js_test.mjs --conduitd PATH
//
//   backoff     with nothing listening, every reconnect delay lies in [0, min(maxDelay,
//               minDelay * 2^(n-1))] (full jitter) and attempts keep coming
//   not open    publish before the connection is open rejects with code 0 "not connected"
//   refused     a publish the token does not allow rejects with the server's 403
//   expiry      a token function: the server closes with 3000 when the token expires, the client
//               asks the function for a new token, reconnects and recovers what was published
//               meanwhile (over the HTTP API)
//   no function a token string: after 3000 the client stays closed (reconnectIn null)
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import WebSocket from "ws";

const HERE = dirname(fileURLToPath(import.meta.url));
const { Conduit } = await import(join(HERE, "..", "..", "..", "web", "conduit.js"));

const i = process.argv.indexOf("--conduitd");
if (i < 0) {
  console.error("usage: node conduit_js_test.mjs --conduitd PATH");
  process.exit(2);
}
const CONDUITD = process.argv[i + 1];
const SECRET = "conduit-js-test";
const API_KEY = "conduit-js-key";
const TIMEOUT = 20_000;

const b64url = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
function token(sub, seconds, publish = ["t:*"]) {
  const body = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url({
    sub, exp: Math.floor(Date.now() / 1000) + seconds, channels: { subscribe: ["t:*"], publish },
  })}`;
  return `${body}.${createHmac("sha256", SECRET).update(body).digest("base64url")}`;
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

// Resolves with the first event of `name` that satisfies pred; rejects after TIMEOUT.
function waitEvent(client, name, pred = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`no "${name}" event within ${TIMEOUT} ms`)); }, TIMEOUT);
    const off = client.on(name, (e) => {
      if (!pred(e)) return;
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}

async function startDaemon() {
  const proc = spawn(CONDUITD, ["--listen", "127.0.0.1:0", "--mode", "pubsub", "--set", `auth.jwt_secret=${SECRET}`,
    "--set", `api.key=${API_KEY}`], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (d) => { stderr = (stderr + d).slice(-10000); });
  const exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve(code ?? signal)));
  const port = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("conduitd did not listen\n" + stderr)), 30_000);
    proc.stdout.on("data", (d) => {
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec((out += d));
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    exited.then((status) => { clearTimeout(timer); reject(new Error(`conduitd exited (${status})\n${stderr}`)); });
  });
  return {
    port,
    async stop() {
      proc.kill("SIGTERM");
      const status = await exited;
      if (status !== 0) throw new Error(`conduitd exited with ${status} after SIGTERM\n${stderr}`);
    },
  };
}

// A port with nothing listening: bound, then closed.
async function deadPort() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

const results = [];
async function scenario(name, fn) {
  try {
    await fn();
    results.push(true);
    console.log(`ok   ${name}`);
  } catch (e) {
    results.push(false);
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  }
}

await scenario("backoff: full jitter under an exponential bound", async () => {
  const minDelay = 20, maxDelay = 160;
  const client = new Conduit({ url: `ws://127.0.0.1:${await deadPort()}/`, WebSocket, minDelay, maxDelay });
  const delays = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${delays.length} attempts within ${TIMEOUT} ms`)), TIMEOUT);
    const off = client.on("closed", (e) => {
      delays.push(e.reconnectIn);
      if (delays.length === 10) { off(); clearTimeout(timer); resolve(); }
    });
  });
  // close() between attempts ends the client and says so.
  const final = waitEvent(client, "closed");
  client.close();
  check((await final).reconnectIn === null, "close() between attempts did not report reconnectIn null");
  check(client.state === "closed", `state ${client.state} after close()`);
  delays.forEach((d, n) => {
    const bound = Math.min(maxDelay, minDelay * 2 ** n);
    check(Number.isInteger(d) && d >= 0 && d < bound, `delay ${n + 1} = ${d}, outside [0, ${bound})`);
  });
});

const daemon = await startDaemon();
const url = `ws://127.0.0.1:${daemon.port}/`;
try {
  await scenario("not open: publish before the connection opens is refused with code 0", async () => {
    const client = new Conduit({ url, WebSocket, token: token("u", 60), autoConnect: false });
    const err = await client.publish("t:a", 1).then(() => null, (e) => e);
    check(err && err.code === 0 && err.message === "not connected", `got ${err}`);
  });

  await scenario("refused: a publish the token does not allow rejects with 403", async () => {
    const client = new Conduit({ url, WebSocket, token: token("u", 60, []) });
    await waitEvent(client, "open");
    const err = await client.publish("t:a", 1).then(() => null, (e) => e);
    check(err && err.code === 403 && err.message === "permission denied", `got ${err}`);
    check(client.state === "open", "the connection did not stay open");
    client.close();
  });

  await scenario("expiry: a token function renews the token after 3000 and the subscription recovers", async () => {
    let calls = 0;
    let published;
    const publishedGate = new Promise((resolve) => { published = resolve; });
    // The first token expires within ~2 s; the next is handed out once the publication below is
    // made, so that the reconnect surely comes after it (the function is awaited before each attempt).
    const client = new Conduit({ url, WebSocket, minDelay: 50, token: async () => {
      if (++calls === 1) return token("u", 2);
      await publishedGate;
      return token("u", 3600);
    } });
    const got = [];
    client.subscribe("t:exp", { onPublication: (p) => got.push(p.data) });
    await waitEvent(client, "open");
    const closed = await waitEvent(client, "closed");
    check(closed.code === 3000 && closed.reconnectIn !== null, `closed with ${JSON.stringify(closed)}`);
    // Published while the client is away: recovered on the next connection.
    const res = await fetch(`http://127.0.0.1:${daemon.port}/api/publish`, { method: "POST",
      headers: { Authorization: `apikey ${API_KEY}` }, body: JSON.stringify({ channel: "t:exp", data: "meanwhile" }) });
    check(res.status === 200, `POST /api/publish answered ${res.status}`);
    const recoveredEvent = waitEvent(client, "recovered");
    published();
    const recovered = await recoveredEvent;
    check(recovered.publications === 1 && JSON.stringify(got) === '["meanwhile"]', `recovered ${JSON.stringify(got)}`);
    check(calls >= 2, "the token function was not asked again");
    client.close();
  });

  await scenario("no function: after 3000 a token string does not reconnect", async () => {
    const client = new Conduit({ url, WebSocket, token: token("u", 2) });
    await waitEvent(client, "open");
    const closed = await waitEvent(client, "closed");
    check(closed.code === 3000 && closed.reconnectIn === null, `closed with ${JSON.stringify(closed)}`);
    check(client.state === "closed", `state ${client.state}`);
  });
} finally {
  await daemon.stop();
}
const failed = results.filter((ok) => !ok).length;
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
