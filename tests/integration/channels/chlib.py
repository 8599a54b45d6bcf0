"""Shared helpers for the conduit.v1 (channels) peer tests.

These tests are written from docs/protocol.md ("conduit.v1 (channels)"), docs/configuration.md
and docs/errors.md alone: they speak the protocol as an outside client would, through Python
`websockets` (Debian's 10.4, asyncio API), Node `ws`, raw sockets for what no library sends, and
plain HTTP for the API. Each test starts its own `conduitd --mode pubsub` on a kernel-chosen port
(the echo tests' harness, tests/integration/echo/conduitd.py) and stops it by PID.

Run a module as: /usr/bin/python3 test_x.py --conduitd PATH [unittest args]
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ops"))
sys.path.insert(0, os.path.join(HERE, "..", "echo"))

import websockets  # noqa: E402

import conduitd  # noqa: E402

from conduitd import Conduitd, http_request  # noqa: E402,F401
from opslib import scrape  # noqa: E402,F401

# Generous: the same tests run under ASan/UBSan on 2 shared cores.
T = 10.0
SUBPROTOCOL = "conduit.v1"

# Metric names of the channels (docs/errors.md / docs/operations.md list them).
M_CHANNELS = "conduit_channels_active"
M_SUBSCRIPTIONS = "conduit_subscriptions_active"
M_PUBLICATIONS = "conduit_publications_total"
M_DELIVERIES = "conduit_deliveries_total"
M_HISTORY_BYTES = "conduit_history_bytes"  # docs/operations.md, "Channels"
M_RECOVERIES = "conduit_recoveries_total"          # {result="recovered"|"failed"}
M_PROTOCOL_ERRORS = "conduit_protocol_errors_total"  # {code="400"|...}
M_HANDSHAKE_FAILURES = "conduit_handshake_failures_total"
M_HTTP_API_REFUSALS = "conduit_http_api_refusals_total"   # {status, reason}
M_HTTP_API_REQUESTS = "conduit_http_api_requests_total"   # {endpoint}


def main():
    conduitd.main()


def pubsub(sets=None, config=None, args=()):
    """A conduitd --mode pubsub (not started). config: TOML text written to a temporary file."""
    extra = list(args)
    if config is not None:
        f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        f.write(config)
        f.close()
        extra = ["--config", f.name] + extra
    return Conduitd(*extra, sets=sets, mode="pubsub")


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def connect(port, subprotocol=True, path="/", **kw):
    kw.setdefault("ping_interval", None)
    kw.setdefault("compression", None)
    kw.setdefault("open_timeout", T)
    kw.setdefault("close_timeout", T)
    kw.setdefault("max_size", None)
    if subprotocol:
        kw.setdefault("subprotocols", [SUBPROTOCOL])
    return websockets.connect(f"ws://127.0.0.1:{port}{path}", **kw)


async def recv_json(ws, timeout=T):
    msg = await asyncio.wait_for(ws.recv(), timeout)
    if not isinstance(msg, str):
        raise AssertionError(f"expected a text frame, got binary {msg!r}")
    return json.loads(msg)


async def send_json(ws, obj):
    await ws.send(json.dumps(obj, separators=(",", ":")))


class Peer:
    """A conduit.v1 client on one websockets connection: requests with ids, replies matched by id,
    pushes kept in arrival order. Everything the server sends is also kept in `frames`."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.pushes = []
        self.frames = []
        self.raw = []        # every text frame as received
        self._pending = []   # replies not yet claimed, in arrival order
        self._cond = asyncio.Condition()
        self._reader = asyncio.ensure_future(self._read())
        self.closed = None   # (code, reason) once the connection ended

    @classmethod
    async def open(cls, port, **kw):
        return cls(await connect(port, **kw))

    async def _read(self):
        try:
            async for msg in self.ws:
                if not isinstance(msg, str):
                    raise AssertionError(f"server sent a binary frame: {msg!r}")
                obj = json.loads(msg)
                async with self._cond:
                    self.raw.append(msg)
                    self.frames.append(obj)
                    if "push" in obj and "id" not in obj:
                        self.pushes.append(obj["push"])
                    else:
                        self._pending.append(obj)
                    self._cond.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            async with self._cond:
                self.closed = (self.ws.close_code, self.ws.close_reason)
                self._cond.notify_all()

    async def wait_for(self, predicate, timeout=T, what="a condition"):
        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(predicate), timeout)
            except asyncio.TimeoutError:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; frames: {self.frames[-10:]}"
                                     f" closed: {self.closed}")

    async def send_raw(self, text):
        await self.ws.send(text)

    async def reply(self, timeout=T, what="a reply"):
        """The next reply (an object that is not a push), in arrival order."""
        await self.wait_for(lambda: self._pending or self.closed is not None, timeout, what)
        if not self._pending:
            raise AssertionError(f"connection closed {self.closed} while waiting for {what}")
        return self._pending.pop(0)

    async def request(self, op, body, timeout=T):
        self.next_id += 1
        rid = self.next_id
        await send_json(self.ws, {"id": rid, op: body})
        r = await self.reply(timeout, f"the reply to {op} id {rid}")
        if r.get("id") != rid:
            raise AssertionError(f"reply to id {rid} carries id {r.get('id')!r}: {r}")
        return r

    async def subscribe(self, channel, since=None):
        body = {"channel": channel}
        if since is not None:
            body["since"] = since
        return await self.request("subscribe", body)

    async def publish(self, channel, data):
        return await self.request("publish", {"channel": channel, "data": data})

    async def unsubscribe(self, channel):
        return await self.request("unsubscribe", {"channel": channel})

    async def wait_pushes(self, n, timeout=T):
        await self.wait_for(lambda: len(self.pushes) >= n or self.closed is not None, timeout, f"{n} pushes")
        if len(self.pushes) < n:
            raise AssertionError(f"connection closed {self.closed} after {len(self.pushes)} of {n} pushes")
        return self.pushes[:n]

    async def wait_closed(self, timeout=T):
        await self.wait_for(lambda: self.closed is not None, timeout, "the server's close")
        return self.closed

    async def close(self):
        await self.ws.close()
        try:
            await asyncio.wait_for(self._reader, T)
        except Exception:
            pass


# ---- HTTP ----------------------------------------------------------------------


def http(port, method, path, body=None, headers=None, content_length=None):
    """One HTTP/1.1 request; returns (status, headers, body bytes)."""
    if isinstance(body, str):
        body = body.encode()
    h = {"Host": "127.0.0.1", "Connection": "close"}
    if body is not None or content_length is not None:
        h["Content-Length"] = str(len(body or b"") if content_length is None else content_length)
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return http_request(port, head.encode() + (body or b""), T)


def api(port, method, path, obj=None, key=None, raw=None, headers=None):
    """HTTP API request; returns (status, parsed JSON body or the raw text when not JSON)."""
    headers = dict(headers or {})
    if key is not None:
        headers["Authorization"] = f"apikey {key}"
    body = raw if raw is not None else (json.dumps(obj) if obj is not None else None)
    status, hdrs, b = http(port, method, path, body, headers)
    text = b.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def upgrade_response(port, path="/", headers=None):
    """An upgrade that the server is expected to refuse: (status, body text)."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    req, _ = conduitd.upgrade_request(path, extra=extra)
    status, _, body = http_request(port, req, T)
    return status, body.decode("utf-8", "replace")


# ---- JWT (HS256 minted by hand: header.payload.signature, base64url without padding) --------


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims, secret, alg="HS256", header=None, sign_alg=hashlib.sha256):
    h = header if header is not None else {"alg": alg, "typ": "JWT"}
    h_part = b64url(h if isinstance(h, (bytes, str)) else json.dumps(h, separators=(",", ":")))
    p_part = b64url(claims if isinstance(claims, (bytes, str)) else json.dumps(claims, separators=(",", ":")))
    signing_input = f"{h_part}.{p_part}".encode()
    key = secret.encode() if isinstance(secret, str) else secret
    sig = hmac.new(key, signing_input, sign_alg).digest()
    return f"{h_part}.{p_part}.{b64url(sig)}"


def now():
    return int(time.time())
