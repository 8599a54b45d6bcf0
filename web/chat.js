// The chat at /: one room is the channel "chat:ROOM"; a message is the
// publication {"user": NICK, "text": TEXT}. On join the room's history is
// shown (what the server still holds from offset 1), then live messages; after
// a lost connection the client recovers what was missed (conduit.js) and the
// page says how that went.
import { Conduit } from "/conduit.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$("token").value = params.get("token") ?? "";
if (params.get("nick")) $("nick").value = params.get("nick");
if (params.get("room")) $("room").value = params.get("room");

let client = null;
let channel = null;

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status-text").textContent = text;
}

function addLine(kind, text, pub) {
  const li = document.createElement("li");
  li.className = kind;
  if (pub) {
    li.dataset.offset = String(pub.offset);
    const who = document.createElement("b");
    who.textContent = String(pub.data?.user ?? "?");
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = String(pub.data?.text ?? JSON.stringify(pub.data));
    li.append(who, body);
  } else {
    li.textContent = text;
  }
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(li);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function join(nick, room, token) {
  channel = "chat:" + room;
  $("join").hidden = true;
  $("room-view").hidden = false;
  $("room-title").textContent = "#" + room + " as " + nick;
  document.title = "#" + room + " · Conduit chat";

  client = new Conduit({ token: token || null });
  window.conduitChat = { client, channel };  // for the browser tests and the curious
  client.on("connecting", ({ attempt }) => setStatus("connecting", attempt > 1 ? `connecting (attempt ${attempt})…` : "connecting…"));
  client.on("open", () => setStatus("open", "online"));
  client.on("closed", ({ code, reconnectIn }) => {
    if (reconnectIn === null) {
      setStatus("closed", `offline (close ${code})`);
    } else {
      // A refused handshake (e.g. 401 without a valid token) reaches a page as 1006 before any open.
      const hint = code === 1006 && client.attempt >= 2 && !token ? " (if the server has auth on, it needs a token)" : "";
      setStatus("closed", `offline (close ${code}), retrying in ${(reconnectIn / 1000).toFixed(1)} s${hint}`);
    }
  });
  client.on("recovering", ({ reason }) => {
    setStatus("recovering", "recovering…");
    if (reason === "reconnect") addLine("notice", "Reconnected: recovering missed messages…");
  });
  client.on("recovered", ({ reason, publications }) => {
    setStatus("open", "online");
    if (reason === "reconnect") {
      addLine("notice recovered", publications === 0 ? "Recovered: nothing was missed."
        : `Recovered ${publications} missed message${publications === 1 ? "" : "s"} (above).`);
    } else if (reason === "new_epoch") {
      addLine("notice recovered", `Recovered ${publications} message${publications === 1 ? "" : "s"} sent since the server restarted (above).`);
    }
  });
  client.on("failed", ({ reason, newEpoch }) => {
    setStatus("open", "online");
    if (reason === "history") {
      addLine("notice", "Older messages of this room are no longer kept; new ones appear below.");
      return;
    }
    addLine("notice failed", newEpoch
      ? "Could not recover: the server restarted and its history was lost (it is kept in memory). Messages sent before the restart that you had not seen are gone; messages sent since are shown below."
      : "Could not recover: the server no longer holds every message you missed. Some are gone; new messages continue below.");
  });
  client.subscribe(channel, {
    history: 100,  // the room's last 100 messages, as far as the server keeps them
    onPublication: (pub) => addLine("message", "", pub),
    onError: (err) => addLine("notice failed", `Cannot join: ${err.message} (${err.code})`),
  });
  $("text").focus();
}

$("join").addEventListener("submit", (ev) => {
  ev.preventDefault();
  join($("nick").value.trim(), $("room").value.trim(), $("token").value.trim());
});

$("send").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = $("text");
  const text = input.value;
  if (!text || !client) return;
  try {
    await client.publish(channel, { user: $("nick").value.trim(), text });
    input.value = "";
  } catch (err) {
    addLine("notice failed", `Not sent (${err.message}); try again.`);
  }
});

$("connection-toggle").addEventListener("click", () => {
  const button = $("connection-toggle");
  if (button.textContent === "Disconnect") {
    client.close(1000, "user disconnected");
    button.textContent = "Reconnect";
  } else {
    client.connect();
    button.textContent = "Disconnect";
  }
});

if (params.get("nick") && params.get("room") && params.has("join")) {
  join(params.get("nick"), params.get("room"), params.get("token") ?? "");
}
