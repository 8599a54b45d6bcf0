// conduit.js: a small client for conduit.v1 (the channels protocol of conduitd),
// an ES module without dependencies. docs/protocol.md ("JavaScript client")
// describes it; the wire protocol it speaks is on the same page.
//
//   import { Conduit } from "/conduit.js";
//   const client = new Conduit({ token });
//   client.subscribe("chat:lobby", { onPublication: (p) => show(p.data) });
//   await client.publish("chat:lobby", { text: "hi" });
//
// Invariants: a subscription delivers each publication at most once and in
// offset order within an epoch (it remembers the last position it delivered and
// drops anything at or below it); after a reconnect it resubscribes with `since`
// = that position, so what the server still holds arrives before anything live.

const PROTOCOL = "conduit.v1";

// A refused request (the server's error reply), or a request that could not
// get a reply: code 0 with "not connected" / "disconnected" / "closed".
export class ConduitError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "ConduitError";
    this.code = code;
  }
}

function defaultUrl() {
  if (typeof location === "undefined") throw new Error("conduit.js: pass { url } outside a browser page");
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/";
}

function withToken(url, token) {
  if (!token) return url;
  const u = new URL(url);
  u.searchParams.set("token", token);
  return u.toString();
}

class Subscription {
  constructor(client, channel, handlers) {
    this.client = client;
    this.channel = channel;
    this.handlers = handlers;
    // The position of the last publication delivered (or of the subscribe
    // result when none was): what a resubscribe asks to continue from.
    this.position = handlers.since ? { offset: handlers.since.offset, epoch: handlers.since.epoch } : null;
    // Publications of history wanted on the first subscribe (Infinity: all);
    // historyTry is how many the current attempt asks for.
    this.historyWanted = handlers.since ? 0 : handlers.history === true ? Infinity : Number(handlers.history ?? 0);
    this.historyTry = 0;
    this.active = true;
    // Pushes are ignored while a subscribe with `since` is being replaced
    // (they come again, in order, in its result).
    this.replaying = false;
    // Why the next subscribe carries `since` (the `reason` of the recovering,
    // recovered and failed events): "reconnect", "history" (the history option) or
    // "new_epoch" (the channel's history restarted).
    this.replayReason = "reconnect";
  }

  unsubscribe() {
    if (!this.active) return;
    this.active = false;
    this.client._subscriptions.delete(this.channel);
    if (this.client.state === "open") {
      this.client._request({ unsubscribe: { channel: this.channel } }).catch(() => {});
    }
  }

  _deliver(pub) {
    const p = this.position;
    if (p && pub.epoch === p.epoch && pub.offset <= p.offset) return;  // already delivered
    this.position = { offset: pub.offset, epoch: pub.epoch };
    this.handlers.onPublication?.(pub);
  }
}

export class Conduit {
  // options:
  //   url           ws:// or wss:// URL; default: the page's own host, path /
  //   token         a JWT string, or a function returning one (or a promise of
  //                 one), asked again before each connection attempt
  //   minDelay      first reconnect delay bound, ms (default 500)
  //   maxDelay      largest reconnect delay bound, ms (default 15000)
  //   WebSocket     the WebSocket class (default: the global one; Node: require("ws"))
  //   autoConnect   connect at once (default true)
  constructor(options = {}) {
    this.url = options.url ?? defaultUrl();
    this.token = options.token ?? null;
    this.minDelay = options.minDelay ?? 500;
    this.maxDelay = options.maxDelay ?? 15000;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.state = "closed";  // connecting | open | closed
    this.attempt = 0;       // failed attempts since the last open
    this._listeners = new Map();
    this._subscriptions = new Map();  // channel → Subscription
    this._pending = new Map();        // request id → { resolve, reject }
    this._nextId = 1;
    this._ws = null;
    this._timer = null;
    this._opening = false;
    this._stopped = true;
    if (options.autoConnect ?? true) this.connect();
  }

  // on("state" | "connecting" | "open" | "recovering" | "recovered" | "failed" |
  //    "closed" | "error", fn): returns a function that removes the listener.
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this._listeners.get(event)?.delete(fn);
  }

  _emit(event, detail) {
    for (const fn of this._listeners.get(event) ?? []) {
      try {
        fn(detail);
      } catch (e) {
        console.error("conduit.js: a listener of", event, "threw", e);
      }
    }
  }

  _setState(state, detail = {}) {
    this.state = state;
    this._emit(state, detail);
    this._emit("state", { state, ...detail });
  }

  connect() {
    this._stopped = false;
    if (this._ws || this._timer || this._opening) return;
    this._open();
  }

  // Closes for good (no reconnect); pending requests fail with "closed".
  close(code = 1000, reason = "") {
    this._stopped = true;
    clearTimeout(this._timer);
    this._timer = null;
    // With a socket its onclose reports the end; without one (between
    // attempts, or while a token function runs) it is reported here.
    if (this._ws) this._ws.close(code, reason);
    else this._setState("closed", { code, reason, reconnectIn: null });
  }

  async _open() {
    this._setState("connecting", { attempt: this.attempt + 1 });
    let token = this.token;
    this._opening = true;  // one attempt at a time, also while a token function runs
    try {
      if (typeof token === "function") token = await token();
    } catch (e) {
      this._emit("error", { code: 0, message: "token: " + e.message });
      this._scheduleReconnect(1006, "no token");
      return;
    } finally {
      this._opening = false;
    }
    if (this._stopped) return;
    let ws;
    try {
      ws = new this.WebSocket(withToken(this.url, token), [PROTOCOL]);
    } catch (e) {
      this._emit("error", { code: 0, message: e.message });
      this._scheduleReconnect(1006, e.message);
      return;
    }
    this._ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this._setState("open", {});
      for (const sub of this._subscriptions.values()) this._sendSubscribe(sub);
    };
    ws.onmessage = (ev) => this._onMessage(ev.data);
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._ws = null;
      for (const { reject } of this._pending.values()) {
        reject(new ConduitError(0, this._stopped ? "closed" : "disconnected"));
      }
      this._pending.clear();
      this._scheduleReconnect(ev.code, ev.reason);
    };
    ws.onerror = () => {};  // onclose follows with the code
  }

  _scheduleReconnect(code, reason) {
    // 3000 (token expired) needs a new token: only a token function can give one.
    const giveUp = this._stopped || (code === 3000 && typeof this.token !== "function");
    if (giveUp) {
      this._stopped = true;
      this._setState("closed", { code, reason, reconnectIn: null });
      return;
    }
    // Full jitter: anywhere between 0 and the exponential bound, so that many
    // clients dropped at once (a server restart) do not come back in a wave.
    const bound = Math.min(this.maxDelay, this.minDelay * 2 ** Math.min(this.attempt, 30));
    const delay = Math.floor(Math.random() * bound);
    this.attempt += 1;
    this._setState("closed", { code, reason, reconnectIn: delay });
    this._timer = setTimeout(() => {
      this._timer = null;
      if (!this._stopped) this._open();
    }, delay);
  }

  _request(body) {
    if (this.state !== "open" || !this._ws) return Promise.reject(new ConduitError(0, "not connected"));
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject });
      this._ws.send(JSON.stringify({ id, ...body }));
    });
  }

  // Subscribes to channel; the subscription survives reconnects until
  // unsubscribe(). handlers:
  //   onPublication({channel, offset, epoch, data})  each publication, once, in order
  //   onSubscribed(result)      every subscribe result (after each (re)connect)
  //   onRecoveryFailed(position)  the server could not fill the gap since the
  //                             last publication delivered (history lost or
  //                             trimmed); delivery continues from `position`
  //   onError(ConduitError)     the subscribe was refused (the subscription ends)
  //   since {offset, epoch}     start after this position (recovery) instead of now
  //   history                   N: first deliver (up to) the channel's last N
  //                             publications that history holds; true: all
  //                             of them (from offset 1); then live
  subscribe(channel, handlers = {}) {
    if (this._subscriptions.has(channel)) throw new Error(`conduit.js: already subscribed to ${channel}`);
    const sub = new Subscription(this, channel, handlers);
    this._subscriptions.set(channel, sub);
    if (this.state === "open") this._sendSubscribe(sub);
    return sub;
  }

  _sendSubscribe(sub) {
    const since = sub.position;
    const reason = sub.replayReason;
    const request = { channel: sub.channel };
    if (since) {
      request.since = since;
      this._emit("recovering", { channel: sub.channel, since, reason });
    }
    this._request({ subscribe: request }).then(
      (result) => this._onSubscribed(sub, since, reason, result),
      (err) => {
        if (err.code === 0) return;  // disconnected: resubscribed on the next open
        if (this._subscriptions.get(sub.channel) === sub) this._subscriptions.delete(sub.channel);
        sub.active = false;
        sub.handlers.onError?.(err);
      },
    );
  }

  _onSubscribed(sub, since, reason, result) {
    if (!sub.active) return;
    sub.handlers.onSubscribed?.(result);
    if (since && result.recovered) {
      sub.replaying = false;
      sub.replayReason = "reconnect";  // from now on a resubscribe continues where this leaves off
      for (const pub of result.publications) sub._deliver(pub);
      this._emit("recovered", { channel: sub.channel, since, reason, publications: result.publications.length });
      return;
    }
    const position = { offset: result.offset, epoch: result.epoch };
    const newEpoch = Boolean(since) && since.epoch !== result.epoch;
    // History on join that does not reach back that far (trimmed by size or
    // age): ask for a quarter as many, down to one, before giving up.
    if (since && reason === "history" && !newEpoch && sub.historyTry > 1) {
      sub.historyTry = Math.floor(sub.historyTry / 4);
      this._replayFrom(sub, Math.max(0, result.offset - sub.historyTry), result.epoch, "history");
      return;
    }
    if (since) {
      this._emit("failed", { channel: sub.channel, since, reason, position, newEpoch });
      sub.handlers.onRecoveryFailed?.(position);
    }
    // Subscribe again with a `since` in the channel's current epoch when the
    // caller wants history (the history option, first subscribe only), or when
    // the channel began a new life (its server restarted and lost the old
    // history): from offset 0, so every publication of the new life that
    // history holds is delivered, before any live one.
    let from = null;
    let why = "reconnect";
    if (!since && sub.historyWanted > 0 && result.offset > 0) {
      sub.historyTry = Math.min(sub.historyWanted, result.offset);
      from = result.offset - sub.historyTry;
      why = "history";
    } else if (newEpoch && result.offset > 0) {
      from = 0;
      why = "new_epoch";
    }
    sub.historyWanted = 0;
    if (from === null) {
      sub.replaying = false;
      sub.replayReason = "reconnect";
      sub.position = position;
      return;
    }
    this._replayFrom(sub, from, result.epoch, why);
  }

  // Resubscribes sub with since = {offset, epoch}: unsubscribe, then subscribe.
  // Pushes in between are ignored: the result carries them again, in order.
  _replayFrom(sub, offset, epoch, reason) {
    sub.position = { offset, epoch };
    sub.replaying = true;
    sub.replayReason = reason;
    this._request({ unsubscribe: { channel: sub.channel } }).then(
      () => {
        if (sub.active && this.state === "open") this._sendSubscribe(sub);
      },
      () => {},  // disconnected: the next open resubscribes from sub.position
    );
  }

  // Publishes data (any JSON value) to channel. Resolves with {offset, epoch};
  // rejects with a ConduitError: the server's refusal (e.g. 403, 429), or code
  // 0 when not connected or when the connection dropped before the reply (the
  // publication may then have been made or not).
  publish(channel, data) {
    return this._request({ publish: { channel, data } });
  }

  // Hands the server a new token for this connection (before the old one
  // expires); later connections use options.token as before.
  refresh(token) {
    return this._request({ refresh: { token } });
  }

  _onMessage(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      this._emit("error", { code: 0, message: "a frame that is not JSON" });
      return;
    }
    if (msg.push) {
      const push = msg.push;
      const sub = this._subscriptions.get(push.channel);
      if (!sub || !sub.active) return;
      if (push.recovery_failed) {
        sub.position = push.recovery_failed;
        this._emit("failed", { channel: push.channel, since: null, position: push.recovery_failed });
        sub.handlers.onRecoveryFailed?.(push.recovery_failed);
      } else if (!sub.replaying) {
        sub._deliver(push);
      }
      return;
    }
    const pending = msg.id !== undefined ? this._pending.get(msg.id) : undefined;
    if (!pending) {
      if (msg.error) this._emit("error", msg.error);
      return;
    }
    this._pending.delete(msg.id);
    if (msg.error) pending.reject(new ConduitError(msg.error.code, msg.error.message));
    else pending.resolve(msg.result);
  }
}
