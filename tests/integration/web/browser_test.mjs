// conduitd's pages in a real browser: Debian's Chromium, headless, driven by
// playwright-core (no browser download), everything on 127.0.0.1.
//
//   node browser_test.mjs --conduitd PATH --conduit PATH --reports DIR [--chromium PATH]
//
// Scenarios (each waits on page events with a bound, never on a sleep):
//   chat        two pages chat in one room; a third page in another room sees none of it;
//               a page that joins later sees the room's history (auth on: tokens minted here)
//   history     a page joining a room with more messages than history keeps sees the newest ones
//   reconnect   both pages drop their connection (the page's Disconnect), three messages are
//               published over the HTTP API, the pages reconnect: each shows "recovering", then
//               exactly the three, in order, once, and "Recovered 3 missed messages"
//   restart     conduitd is stopped (SIGTERM) while both pages are open and started again on the
//               same port; three messages are published over the HTTP API as soon as it listens;
//               both pages reconnect by themselves and show the three, in order, once; then again
//               with the pages offline until the publications are made: each page says that the
//               history was lost with the old process and shows what the new one holds
//   dashboard   /dashboard's numbers move while `conduit bench fanout` runs against the server
//   wss         the chat over https/wss with a certificate from a CA made here (openssl);
//               Chromium trusts the leaf's key through --ignore-certificate-errors-spki-list
// Screenshots go to the reports folder (CI keeps it as an artifact).
import { spawn, execFileSync } from "node:child_process";
import { createHmac, createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import WebSocket from "ws";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith("--") ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
for (const need of ["conduitd", "conduit", "reports"]) {
  if (!args[need]) {
    console.error(`usage: node browser_test.mjs --conduitd PATH --conduit PATH --reports DIR [--chromium PATH]`);
    process.exit(2);
  }
}
const CHROMIUM = args.chromium ?? "/usr/bin/chromium";
const REPORTS = args.reports;
mkdirSync(REPORTS, { recursive: true });

// Bounds: generous, since the machine may be loaded; a passing run waits far less.
const START_TIMEOUT = 30_000;
const EVENT_TIMEOUT = 20_000;
const SECRET = "browser-test-secret";
const API_KEY = "browser-test-key";

// ---- conduitd as a child process --------------------------------------------

class Daemon {
  constructor(extraArgs = [], listen = "127.0.0.1:0") {
    this.extraArgs = extraArgs;
    this.listen = listen;
    this.stderr = "";
  }

  async start() {
    this.proc = spawn(args.conduitd, ["--listen", this.listen, "--mode", "pubsub", "--set", `api.key=${API_KEY}`,
      "--set", `auth.jwt_secret=${SECRET}`, ...this.extraArgs], { stdio: ["ignore", "pipe", "pipe"] });
    this.proc.stderr.on("data", (d) => { this.stderr = (this.stderr + d).slice(-20000); });
    this.exited = new Promise((resolve) => this.proc.on("exit", (code, signal) => resolve({ code, signal })));
    this.port = await new Promise((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`conduitd did not listen within ${START_TIMEOUT} ms\n${this.stderr}`)),
        START_TIMEOUT);
      this.proc.stdout.on("data", (d) => {
        out += d;
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`conduitd exited (${code ?? signal}) before listening\n${this.stderr}`));
      });
    });
    return this;
  }

  // SIGTERM and a bounded wait for a clean exit (status 0).
  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 15_000);
    const { code, signal } = await this.exited;
    clearTimeout(timer);
    if (code !== 0) throw new Error(`conduitd exited with ${code ?? signal} after SIGTERM\n${this.stderr}`);
  }
}

// ---- helpers ------------------------------------------------------------------

const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
function mintToken(sub) {
  const body = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url({
    sub, exp: Math.floor(Date.now() / 1000) + 3600, channels: { subscribe: ["chat:*"], publish: ["chat:*"] },
  })}`;
  return `${body}.${createHmac("sha256", SECRET).update(body).digest("base64url")}`;
}

async function apiPublish(port, channel, data) {
  const res = await fetch(`http://127.0.0.1:${port}/api/publish`, {
    method: "POST", headers: { Authorization: `apikey ${API_KEY}` }, body: JSON.stringify({ channel, data }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST /api/publish answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// The chat lines of a page: [{offset, user, text}] in display order.
function messagesOf(page) {
  return page.$$eval("#messages li.message", (lis) => lis.map((li) => ({
    offset: Number(li.dataset.offset), user: li.querySelector("b").textContent, text: li.querySelector(".text").textContent,
  })));
}

async function openChat(context, base, nick, room) {
  const page = await context.newPage();
  page.on("pageerror", (e) => { page.errors = [...(page.errors ?? []), e.message]; });
  await page.goto(`${base}/?token=${mintToken(nick)}&nick=${nick}&room=${room}&join`);
  await waitStatus(page, "open");
  return page;
}

function waitStatus(page, state) {
  return page.waitForSelector(`#status[data-state="${state}"]`, { timeout: EVENT_TIMEOUT });
}

// Waits until the page shows a message with this text.
function waitText(page, text) {
  return page.waitForFunction(
    (t) => [...document.querySelectorAll("#messages li.message .text")].some((e) => e.textContent === t),
    text, { timeout: EVENT_TIMEOUT });
}

function waitNotice(page, substring) {
  return page.waitForFunction(
    (t) => [...document.querySelectorAll("#messages li.notice")].some((e) => e.textContent.includes(t)),
    substring, { timeout: EVENT_TIMEOUT });
}

async function send(page, text) {
  await page.fill("#text", text);
  await page.click("#send-button");
  await waitText(page, text);
}

// Every message once, offsets strictly increasing within the shown sequence.
function checkNoDuplicate(list, who) {
  const texts = list.map((m) => m.text);
  check(new Set(texts).size === texts.length, `${who} shows a message twice: ${JSON.stringify(texts)}`);
}

function checkInOrder(list, expected, who) {
  const texts = list.map((m) => m.text);
  let at = -1;
  for (const t of expected) {
    const i = texts.indexOf(t);
    check(i > at, `${who}: "${t}" missing or out of order in ${JSON.stringify(texts)}`);
    at = i;
  }
}

// ---- scenarios ------------------------------------------------------------------

const results = [];
async function scenario(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true, ms: Date.now() - t0 });
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false, ms: Date.now() - t0 });
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  }
}

const browserArgs = [
  // Nothing but loopback: every host name fails to resolve.
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
  "--no-first-run", "--disable-sync", "--disable-component-update",
];
if (process.getuid?.() === 0) browserArgs.push("--no-sandbox");  // CI containers run as root

const HISTORY_SIZE = ["--set", "channels.history_size=50"];
let daemon = await new Daemon(HISTORY_SIZE).start();
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: browserArgs });
const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
let base = () => `http://127.0.0.1:${daemon.port}`;
let ann, bob;

try {
  await scenario("chat: two pages in one room, a third in another room sees nothing", async () => {
    ann = await openChat(context, base(), "ann", "lobby");
    bob = await openChat(context, base(), "bob", "lobby");
    const cat = await openChat(context, base(), "cat", "garden");
    await send(ann, "hello from ann");
    await waitText(bob, "hello from ann");
    await send(bob, "hi ann, bob here");
    await waitText(ann, "hi ann, bob here");
    // cat's own message arriving proves cat's page is live; the lobby's are not there.
    await send(cat, "anyone in the garden?");
    const catSees = (await messagesOf(cat)).map((m) => m.text);
    check(JSON.stringify(catSees) === JSON.stringify(["anyone in the garden?"]), `cat sees ${JSON.stringify(catSees)}`);
    check(!(await messagesOf(ann)).some((m) => m.text === "anyone in the garden?"), "ann sees the garden");
    // A page joining later gets the room's history, in order.
    const dan = await openChat(context, base(), "dan", "lobby");
    await waitText(dan, "hi ann, bob here");
    const danSees = await messagesOf(dan);
    checkInOrder(danSees, ["hello from ann", "hi ann, bob here"], "dan (history)");
    checkNoDuplicate(danSees, "dan");
    await ann.screenshot({ path: join(REPORTS, "chat.png") });
    await cat.close();
    await dan.close();
  });

  await scenario("history: a page joining a busy room sees its newest messages that history keeps", async () => {
    // 80 messages in a room whose history keeps 50 (channels.history_size below): the page asks
    // for 100, then 80 (all there are) from offset 0, which is gone, then a quarter, 20: offsets 61..80.
    for (let i = 1; i <= 80; i++) await apiPublish(daemon.port, "chat:busy", { user: "backend", text: `busy ${i}` });
    const eli = await openChat(context, base(), "eli", "busy");
    await waitText(eli, "busy 80");
    const list = await messagesOf(eli);
    const want = Array.from({ length: 20 }, (_, i) => `busy ${61 + i}`);
    check(JSON.stringify(list.map((m) => m.text)) === JSON.stringify(want), `eli sees ${JSON.stringify(list.map((m) => m.text))}`);
    check(JSON.stringify(list.map((m) => m.offset)) === JSON.stringify(want.map((_, i) => 61 + i)), "offsets are not 61..80");
    await eli.close();
  });

  await scenario("reconnect: a dropped connection recovers exactly what was missed", async () => {
    for (const p of [ann, bob]) {
      await p.click("#connection-toggle");
      await waitStatus(p, "closed");
    }
    const missed = ["missed one", "missed two", "missed three"];
    for (const text of missed) await apiPublish(daemon.port, "chat:lobby", { user: "backend", text });
    for (const p of [ann, bob]) await p.click("#connection-toggle");
    for (const [p, who] of [[ann, "ann"], [bob, "bob"]]) {
      await waitNotice(p, "Recovered 3 missed messages");
      await waitStatus(p, "open");
      const list = await messagesOf(p);
      checkInOrder(list, ["hello from ann", "hi ann, bob here", ...missed], who);
      checkNoDuplicate(list, who);
      check(list.at(-1).text === "missed three", `${who}: the recovered messages are not the last ones`);
      const offsets = list.map((m) => m.offset);
      check(offsets.every((o, i) => i === 0 || o === offsets[i - 1] + 1), `${who}: offsets ${offsets} have a gap`);
    }
    // A message sent now is live again for both.
    await send(bob, "back online");
    await waitText(ann, "back online");
  });

  await scenario("restart: both pages reconnect by themselves and show what was published meanwhile", async () => {
    const port = daemon.port;
    const before = { ann: (await messagesOf(ann)).length, bob: (await messagesOf(bob)).length };
    await daemon.stop();
    await waitStatus(ann, "closed");
    await waitStatus(bob, "closed");
    daemon = await new Daemon(HISTORY_SIZE, `127.0.0.1:${port}`).start();
    const during = ["after restart 1", "after restart 2", "after restart 3"];
    for (const text of during) await apiPublish(daemon.port, "chat:lobby", { user: "backend", text });
    for (const [p, who] of [[ann, "ann"], [bob, "bob"]]) {
      await waitText(p, "after restart 3");
      await waitStatus(p, "open");
      const list = await messagesOf(p);
      const fresh = list.slice(before[who]);
      check(JSON.stringify(fresh.map((m) => m.text)) === JSON.stringify(during),
        `${who} after the restart shows ${JSON.stringify(fresh.map((m) => m.text))}`);
      checkNoDuplicate(list, who);
    }
    // What the page says depends on who came first: the pages reconnecting before the first
    // publication see them live; after it, their recovery fails (the history died with the old
    // process) and the new history is replayed from its start, with a notice saying so.
    // The same with the pages offline until the publications are made (their Disconnect button),
    // so that their recovery surely meets the new epoch: the page says the history was lost, then
    // shows what the new server holds.
    for (const p of [ann, bob]) {
      await p.click("#connection-toggle");
      await waitStatus(p, "closed");
    }
    await daemon.stop();
    daemon = await new Daemon(HISTORY_SIZE, `127.0.0.1:${port}`).start();
    const offline = ["while offline 1", "while offline 2"];
    for (const text of offline) await apiPublish(daemon.port, "chat:lobby", { user: "backend", text });
    const count = { ann: (await messagesOf(ann)).length, bob: (await messagesOf(bob)).length };
    for (const p of [ann, bob]) await p.click("#connection-toggle");
    for (const [p, who] of [[ann, "ann"], [bob, "bob"]]) {
      await waitNotice(p, "Recovered 2 messages sent since the server restarted");
      await waitNotice(p, "Could not recover: the server restarted");
      const list = await messagesOf(p);
      check(JSON.stringify(list.slice(count[who]).map((m) => m.text)) === JSON.stringify(offline),
        `${who} after the second restart shows ${JSON.stringify(list.slice(count[who]).map((m) => m.text))}`);
      checkNoDuplicate(list, who);
    }
    await ann.screenshot({ path: join(REPORTS, "chat-after-restart.png") });
  });

  await scenario("dashboard: the numbers move while conduit bench runs", async () => {
    // A WebSocket without a token: refused with 401, counted as auth_missing.
    const status = await new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${daemon.port}/`, ["conduit.v1"]);
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode));
      ws.on("open", () => { ws.close(); resolve(101); });
      ws.on("error", () => {});
    });
    check(status === 401, `an upgrade without a token answered ${status}`);
    // A page that leaves: its browser closes the WebSocket with 1001 (going away).
    const leaving = await openChat(context, base(), "gus", "lobby");
    await leaving.close();
    const dash = await context.newPage();
    await dash.goto(`${base()}/dashboard`);
    // The tables: the refusal by its reason, and the page that left by its close code.
    await dash.waitForSelector('#handshake-failures tr[data-key="auth_missing"]', { timeout: EVENT_TIMEOUT });
    await dash.waitForSelector('#close-codes tr[data-key="1001"]', { timeout: EVENT_TIMEOUT });
    await dash.waitForFunction(() => Number(document.body.dataset.samples ?? 0) >= 2, null, { timeout: EVENT_TIMEOUT });
    const bench = spawn(args.conduit, ["bench", "fanout", `ws://127.0.0.1:${daemon.port}/?token=${mintToken("bench")}`,
      "--channel", "chat:bench", "--subscribers", "20", "--messages", "200000", "--window", "64", "--timeout", "60s"],
    { stdio: ["ignore", "pipe", "pipe"] });
    let benchOut = "";
    bench.stdout.on("data", (d) => { benchOut += d; });
    bench.stderr.on("data", (d) => { benchOut += d; });
    try {
      const rate = (id) => `Number(document.querySelector("#card-${id} .value").dataset.value || 0)`;
      await dash.waitForFunction(`${rate("messages-in")} > 100 && ${rate("messages-out")} > 1000 && ${rate("connections")} >= 21
          && ${rate("subscriptions")} >= 20 && ${rate("publications")} > 100`, null, { timeout: EVENT_TIMEOUT });
      await dash.screenshot({ path: join(REPORTS, "dashboard.png"), fullPage: true });
    } catch (e) {
      throw new Error(`${e.message}\nbench output: ${benchOut}`);
    } finally {
      bench.kill("SIGTERM");
    }
    await dash.close();
  });
} finally {
  await context.close();
}

await scenario("wss: the chat over TLS with a certificate from a CA made by the test", async () => {
  const dir = mkdtempSync(join(tmpdir(), "conduit-web-tls-"));
  // A CA, and a leaf for IP 127.0.0.1 signed by it (Chromium reads only subjectAltName).
  execFileSync("sh", ["-ec", `
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=conduit test CA" \
      -keyout ca.key -out ca.pem
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 -keyout leaf.key -out leaf.csr
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > leaf.ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile leaf.ext -out leaf.pem
    cat leaf.pem ca.pem > chain.pem`], { cwd: dir, stdio: "pipe" });
  // Chromium is told to trust this leaf's key (its SPKI's SHA-256), nothing else.
  const der = execFileSync("sh", ["-c", "openssl x509 -in leaf.pem -pubkey -noout | openssl pkey -pubin -outform der"], { cwd: dir });
  const spki = createHash("sha256").update(der).digest("base64");
  const tls = await new Daemon(["--set", `tls.cert=${join(dir, "chain.pem")}`, "--set", `tls.key=${join(dir, "leaf.key")}`]).start();
  const tlsBrowser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
    args: [...browserArgs, `--ignore-certificate-errors-spki-list=${spki}`] });
  try {
    const ctx = await tlsBrowser.newContext();
    const httpsBase = `https://127.0.0.1:${tls.port}`;
    const eve = await openChat(ctx, httpsBase, "eve", "secure");
    const fay = await openChat(ctx, httpsBase, "fay", "secure");
    check(await eve.evaluate(() => window.conduitChat.client.url.startsWith("wss://")), "the page did not use wss://");
    await send(eve, "over wss");
    await waitText(fay, "over wss");
    await ctx.close();
  } finally {
    await tlsBrowser.close();
    await tls.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

await browser.close();
await daemon.stop();
const failed = results.filter((r) => !r.ok);
console.log(`${results.length - failed.length} passed, ${failed.length} failed; screenshots in ${REPORTS}`);
process.exit(failed.length ? 1 : 0);
