"""conduitd --mode pubsub (the default mode): the daemon's configuration reaches the channels. The
client side is Python websockets speaking conduit.v1 as docs/protocol.md describes it; settings come
from --set and files exactly as docs/configuration.md describes them."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import websockets

import opslib
from opslib import Conduitd


class Peer:
    """A conduit.v1 client: requests with increasing ids, replies matched by id, pushes kept."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.pushes = []

    @classmethod
    async def connect(cls, port, token=None):
        url = f"ws://127.0.0.1:{port}/" + (f"?token={token}" if token else "")
        return cls(await websockets.connect(url, subprotocols=["conduit.v1"], open_timeout=20))

    async def request(self, op, body):
        self.next_id += 1
        rid = self.next_id
        await self.ws.send(json.dumps({"id": rid, op: body}))
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if msg.get("id") == rid:
                return msg
            self.pushes.append(msg)

    async def push(self):
        if self.pushes:
            return self.pushes.pop(0)
        return json.loads(await asyncio.wait_for(self.ws.recv(), 10))


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 60))


def hs256_token(secret, claims):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


class PubsubDaemon(unittest.TestCase):
    def test_pubsub_is_the_default_mode(self):
        with Conduitd(mode=None) as server:
            async def go():
                a = await Peer.connect(server.port)
                self.assertEqual(a.ws.subprotocol, "conduit.v1")
                reply = await a.request("subscribe", {"channel": "news"})
                self.assertEqual(reply["result"]["offset"], 0)
                reply = await a.request("publish", {"channel": "news", "data": {"x": [1, 2]}})
                self.assertEqual(reply["result"]["offset"], 1)
                push = await a.push()
                self.assertEqual(push, {"push": {"channel": "news", "offset": 1, "epoch": reply["result"]["epoch"],
                                                 "data": {"x": [1, 2]}}})
                await a.ws.close()
            run(go())

    def test_history_and_namespaces_from_the_configuration(self):
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write('[channels]\nhistory_size = 2\n\n[channels.namespaces.chat]\nhistory_size = 0\n')
        self.addCleanup(os.remove, f.name)
        with Conduitd("--config", f.name, mode="pubsub") as server:
            async def go():
                a = await Peer.connect(server.port)
                epochs = {}
                for channel in ("news", "chat:lobby"):
                    for i in range(1, 5):
                        reply = await a.request("publish", {"channel": channel, "data": i})
                        self.assertEqual(reply["result"]["offset"], i)
                        epochs[channel] = reply["result"]["epoch"]
                # news keeps its last 2 ([channels] history_size = 2), offsets 3 and 4: a client that saw
                # offset 2 recovers both; one that saw offset 1 (it needs 2) cannot.
                reply = await a.request("subscribe", {"channel": "news",
                                                      "since": {"offset": 2, "epoch": epochs["news"]}})
                self.assertTrue(reply["result"]["recovered"], reply)
                self.assertEqual([p["data"] for p in reply["result"]["publications"]], [3, 4])
                reply = await a.request("subscribe", {"channel": "other",
                                                      "since": {"offset": 0, "epoch": "x"}})
                self.assertFalse(reply["result"]["recovered"], reply)
                # Older than the 2 kept: not recovered.
                b = await Peer.connect(server.port)
                reply = await b.request("subscribe", {"channel": "news",
                                                      "since": {"offset": 1, "epoch": epochs["news"]}})
                self.assertFalse(reply["result"]["recovered"], reply)
                # chat:* has no history (the namespace's history_size = 0): nothing to recover.
                reply = await b.request("subscribe", {"channel": "chat:lobby",
                                                      "since": {"offset": 3, "epoch": epochs["chat:lobby"]}})
                self.assertFalse(reply["result"]["recovered"], reply)
                self.assertEqual(reply["result"]["offset"], 4)
                for p in (a, b):
                    await p.ws.close()
            run(go())

    def test_subscription_and_publish_rate_limits(self):
        sets = {"channels.max_subscriptions_per_connection": 2,
                "channels.namespaces.wide.max_subscriptions_per_connection": 3,
                "limits.publish_rate": 0.01}  # one publish, then one per 100 s
        with Conduitd(mode="pubsub", sets=sets) as server:
            async def go():
                a = await Peer.connect(server.port)
                for channel in ("a", "b"):
                    self.assertIn("result", await a.request("subscribe", {"channel": channel}))
                reply = await a.request("subscribe", {"channel": "c"})
                self.assertEqual(reply["error"]["code"], 429, reply)
                # The namespace's own limit counts the connection's total.
                self.assertIn("result", await a.request("subscribe", {"channel": "wide:1"}))
                reply = await a.request("subscribe", {"channel": "wide:2"})
                self.assertEqual(reply["error"]["code"], 429, reply)
                self.assertIn("result", await a.request("publish", {"channel": "a", "data": 1}))
                reply = await a.request("publish", {"channel": "a", "data": 2})
                self.assertEqual(reply["error"], {"code": 429, "message": "rate limited"})
                await a.ws.close()
            run(go())

    def test_jwt_secret_file(self):
        secret = "s3cret-from-a-file"
        with tempfile.NamedTemporaryFile("w", suffix=".secret", delete=False) as f:
            f.write(secret + "\n")  # the trailing newline is not part of the secret
        self.addCleanup(os.remove, f.name)
        with Conduitd(mode="pubsub", sets={"auth.jwt_secret_file": f.name}) as server:
            async def go():
                with self.assertRaises(websockets.exceptions.InvalidStatusCode) as refused:
                    await Peer.connect(server.port)
                self.assertEqual(refused.exception.status_code, 401)
                with self.assertRaises(websockets.exceptions.InvalidStatusCode) as refused:
                    await Peer.connect(server.port, hs256_token(secret + "\n", {"sub": "u"}))
                self.assertEqual(refused.exception.status_code, 401)
                token = hs256_token(secret, {"sub": "u", "exp": int(time.time()) + 600,
                                             "channels": {"subscribe": ["news"], "publish": ["news"]}})
                a = await Peer.connect(server.port, token)
                self.assertIn("result", await a.request("subscribe", {"channel": "news"}))
                reply = await a.request("subscribe", {"channel": "secret"})
                self.assertEqual(reply["error"]["code"], 403, reply)
                await a.ws.close()
            run(go())


class PubsubHttpApi(unittest.TestCase):
    """api.key and api.max_body_bytes reach the HTTP API of conduitd."""

    def http(self, port, method, path, body=None, key=None):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=body.encode() if body is not None else None)
        if key:
            req.add_header("Authorization", f"apikey {key}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def test_api_key_and_body_limit(self):
        with Conduitd(mode="pubsub", sets={"api.key": "k3y", "api.max_body_bytes": 100}) as server:
            body = json.dumps({"channel": "news", "data": {"a": 1}})
            status, text = self.http(server.port, "POST", "/api/publish", body)
            self.assertEqual((status, json.loads(text)["error"]["code"]), (401, 401))
            status, text = self.http(server.port, "POST", "/api/publish", body, key="k3y")
            self.assertEqual(status, 200, text)
            self.assertEqual(json.loads(text)["offset"], 1)
            status, text = self.http(server.port, "POST", "/api/publish",
                                     json.dumps({"channel": "news", "data": "x" * 100}), key="k3y")
            self.assertEqual(status, 413, text)
            status, text = self.http(server.port, "GET", "/api/history?channel=news", key="k3y")
            self.assertEqual(status, 200, text)
            self.assertEqual(json.loads(text)["publications"], [{"offset": 1, "data": {"a": 1}}])

    def test_no_key_no_api(self):
        with Conduitd(mode="pubsub") as server:
            status, _ = self.http(server.port, "GET", "/api/channels", key="anything")
            self.assertEqual(status, 404)


if __name__ == "__main__":
    opslib.main()
