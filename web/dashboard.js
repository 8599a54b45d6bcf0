// The dashboard at /dashboard: reads /stats (the server's metrics as JSON)
// every second, shows current values and per-second rates computed from the
// counters' differences, and draws the last two minutes on small canvases.

const HISTORY = 120;  // samples kept per chart (one per second)

// One card per number: id, title, how to read it from the metrics, whether it
// is a rate (a counter's change per second) and how to format it.
const CARDS = [
  { id: "connections", title: "Connections", read: (m) => value(m, "conduit_connections_active") },
  { id: "messages-in", title: "Messages/s in", rate: true, read: (m) => value(m, "conduit_messages_received_total") },
  { id: "messages-out", title: "Messages/s out", rate: true, read: (m) => value(m, "conduit_messages_sent_total") },
  { id: "bytes-in", title: "Bytes/s in", rate: true, bytes: true, read: (m) => value(m, "conduit_bytes_received_total") },
  { id: "bytes-out", title: "Bytes/s out", rate: true, bytes: true, read: (m) => value(m, "conduit_bytes_sent_total") },
  { id: "publications", title: "Publications/s", rate: true, read: (m) => value(m, "conduit_publications_total") },
  { id: "subscriptions", title: "Subscriptions", read: (m) => value(m, "conduit_subscriptions_active") },
  { id: "channels", title: "Channels", read: (m) => value(m, "conduit_channels_active") },
  { id: "history-bytes", title: "History bytes", bytes: true, read: (m) => value(m, "conduit_history_bytes") },
  { id: "slow-consumers", title: "Slow-consumer closes", read: (m) => value(m, "conduit_errors_total", { kind: "slow_consumer" }) },
  { id: "dropped", title: "Messages dropped", read: (m) => value(m, "conduit_messages_dropped_total") },
  { id: "connections-total", title: "Connections (total)", read: (m) => value(m, "conduit_connections_total") },
];

// The sum of a family's samples whose labels include `labels`; null when the
// server does not export the family (shown as "–", never as 0).
function value(metrics, name, labels = {}) {
  const samples = metrics[name];
  if (!samples) return null;
  let sum = 0;
  for (const s of samples) {
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value ?? 0;
  }
  return sum;
}

function format(v, bytes) {
  if (v === null || Number.isNaN(v)) return "–";
  if (bytes) {
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? Math.round(v) : v.toFixed(1)) + " " + units[i];
  }
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(2) + " M";
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(1) + " k";
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

const cards = new Map();
for (const c of CARDS) {
  const el = document.createElement("section");
  el.className = "card";
  el.id = "card-" + c.id;
  el.innerHTML = `<h3></h3><div class="value" data-value="">–</div><canvas width="200" height="48"></canvas>`;
  el.querySelector("h3").textContent = c.title;
  document.getElementById("cards").append(el);
  cards.set(c.id, { ...c, el, series: [], last: null });
}

function draw(canvas, series) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const points = series.filter((v) => v !== null);
  if (points.length < 2) return;
  const max = Math.max(...points, 1);
  ctx.strokeStyle = "#2a6fd6";
  ctx.fillStyle = "rgba(42,111,214,0.12)";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  const step = w / (HISTORY - 1);
  const x0 = w - (series.length - 1) * step;
  series.forEach((v, i) => {
    const x = x0 + i * step, y = h - 2 - ((v ?? 0) / max) * (h - 4);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.lineTo(w, h);
  ctx.lineTo(x0, h);
  ctx.closePath();
  ctx.fill();
}

function fillTable(id, metrics, name, label) {
  const table = document.getElementById(id);
  const rows = (metrics[name] ?? []).filter((s) => s.value > 0).sort((a, b) => b.value - a.value);
  table.replaceChildren();
  if (rows.length === 0) {
    const tr = table.insertRow();
    tr.insertCell().textContent = metrics[name] ? "none" : "not exported";
    tr.className = "muted";
    return;
  }
  for (const s of rows) {
    const tr = table.insertRow();
    tr.dataset.key = s.labels[label];
    tr.insertCell().textContent = s.labels[label];
    tr.insertCell().textContent = format(s.value);
  }
}

let previous = null;  // { t, values: Map(id → raw counter) }
let samples = 0;

async function tick() {
  let metrics;
  const t = performance.now();
  try {
    const response = await fetch("/stats", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    metrics = (await response.json()).metrics;
  } catch (err) {
    document.getElementById("status").dataset.state = "closed";
    document.getElementById("status-text").textContent = "cannot read /stats: " + err.message;
    previous = null;
    return;
  }
  const values = new Map();
  for (const c of cards.values()) {
    const raw = c.read(metrics);
    values.set(c.id, raw);
    let shown = raw;
    if (c.rate) {
      const before = previous?.values.get(c.id);
      // A counter that went down belongs to a restarted server: no rate this time.
      shown = before == null || raw === null || raw < before ? null : (raw - before) / ((t - previous.t) / 1000);
    }
    c.series.push(shown);
    if (c.series.length > HISTORY) c.series.shift();
    const v = c.el.querySelector(".value");
    v.textContent = format(shown, c.bytes);
    v.dataset.value = shown === null ? "" : String(shown);
    draw(c.el.querySelector("canvas"), c.series);
  }
  previous = { t, values };
  fillTable("handshake-failures", metrics, "conduit_handshake_failures_total", "reason");
  fillTable("close-codes", metrics, "conduit_closes_total", "code");
  samples += 1;
  document.body.dataset.samples = String(samples);
  document.getElementById("status").dataset.state = "open";
  document.getElementById("status-text").textContent = "live, updated " + new Date().toLocaleTimeString();
}

tick();
setInterval(tick, 1000);
