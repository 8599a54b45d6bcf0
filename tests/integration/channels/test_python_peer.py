"""conduitd --mode pubsub spoken by Python websockets, written from docs/protocol.md alone:
subscribe/publish/unsubscribe replies and pushes exactly as documented, the codec's error table
(with and without `id`), the 404/409/429/400 refusals, the close codes of unacceptable frames, and
the channel metrics after all that."""

import asyncio
import json
import unittest

import chlib
from chlib import (M_CHANNELS, M_DELIVERIES, M_HISTORY_BYTES, M_PROTOCOL_ERRORS, M_PUBLICATIONS, M_RECOVERIES,
                   M_SUBSCRIPTIONS, SUBPROTOCOL, T, Peer, connect, pubsub, run, scrape)
from conduitd import OP_BINARY, OP_TEXT, RawWS


def error(code, message, rid=None):
    e = {"error": {"code": code, "message": message}}
    if rid is not None:
        e["id"] = rid
    return e


# The codec's error table (docs/protocol.md, "Errors"): (frame as sent, expected reply).
# A request with a valid id gets its error with that id; `invalid JSON` never carries one.
CODEC_CASES = [
    # without id
    ('{not json', error(400, "invalid JSON")),
    ('{"id":4,"subscribe":{"channel":"a"}', error(400, "invalid JSON")),                # truncated
    ('not json', error(400, "a request must be a JSON object")),                       # text, not an object
    ('{"id":5,"subscribe":{"channel":"a"}} x', error(400, "invalid JSON")),           # after the object
    ('{"id":6,"publish":{"channel":"a","data":tru}}', error(400, "invalid JSON")),     # malformed data
    ('{"id":7,"publish":{"channel":"a","data":[1,]}}', error(400, "invalid JSON")),
    ('[1,2]', error(400, "a request must be a JSON object")),
    ('"subscribe"', error(400, "a request must be a JSON object")),
    ('{"subscribe":{"channel":"a"}}', error(400, 'missing field "id"')),
    ('{"id":0,"subscribe":{"channel":"a"}}', error(400, '"id" must be a positive integer')),
    ('{"id":-3,"subscribe":{"channel":"a"}}', error(400, '"id" must be a positive integer')),
    ('{"id":"1","subscribe":{"channel":"a"}}', error(400, '"id" must be a positive integer')),
    ('{"id":1.0,"subscribe":{"channel":"a"}}', error(400, '"id" must be a positive integer')),
    ('{"id":1e2,"subscribe":{"channel":"a"}}', error(400, '"id" must be a positive integer')),
    ('{"id":18446744073709551616,"subscribe":{"channel":"a"}}', error(400, '"id" must be a positive integer')),
    # with id
    ('{"id":8,"foo":1}', error(400, 'unknown field "foo"', 8)),
    ('{"subscribe":{"channel":"a"},"bar":1,"id":9}', error(400, 'unknown field "bar"', 9)),  # id anywhere
    ('{"id":10,"subscribe":{"channel":"a","x":1}}', error(400, 'unknown field "x" in subscribe', 10)),
    ('{"id":11,"subscribe":{"channel":"a","since":{"offset":1,"epoch":"e","q":1}}}',
     error(400, 'unknown field "q" in since', 11)),
    ('{"id":12,"subscribe":{"channel":"a","channel":"b"}}', error(400, 'duplicate field "channel" in subscribe', 12)),
    ('{"id":13,"subscribe":{"channel":"a","since":{"offset":1,"offset":2,"epoch":"e"}}}',
     error(400, 'duplicate field "offset" in since', 13)),
    ('{"id":14,"subscribe":{"channel":"a"},"publish":{"channel":"a","data":1}}',
     error(400, "more than one operation in a request", 14)),
    ('{"id":15,"subscribe":{"channel":"a"},"subscribe":{"channel":"b"}}',
     error(400, "more than one operation in a request", 15)),
    ('{"id":16}', error(400, "missing operation (subscribe, unsubscribe, publish or refresh)", 16)),
    ('{"id":17,"subscribe":[]}', error(400, "subscribe must be an object", 17)),
    ('{"id":18,"publish":"x"}', error(400, "publish must be an object", 18)),
    ('{"id":19,"unsubscribe":{}}', error(400, 'missing field "channel" in unsubscribe', 19)),
    ('{"id":20,"publish":{"data":1}}', error(400, 'missing field "channel" in publish', 20)),
    ('{"id":21,"publish":{"channel":5,"data":1}}', error(400, '"channel" must be a string', 21)),
    ('{"id":22,"subscribe":{"channel":"a","since":1}}', error(400, '"since" must be an object', 22)),
    ('{"id":23,"subscribe":{"channel":"a","since":{"epoch":"e"}}}', error(400, 'missing field "offset" in since', 23)),
    ('{"id":24,"subscribe":{"channel":"a","since":{"offset":1}}}', error(400, 'missing field "epoch" in since', 24)),
    ('{"id":25,"subscribe":{"channel":"a","since":{"offset":-1,"epoch":"e"}}}',
     error(400, '"since.offset" must be a non-negative integer', 25)),
    ('{"id":26,"subscribe":{"channel":"a","since":{"offset":1.5,"epoch":"e"}}}',
     error(400, '"since.offset" must be a non-negative integer', 26)),
    ('{"id":27,"subscribe":{"channel":"a","since":{"offset":1,"epoch":7}}}',
     error(400, '"since.epoch" must be a string', 27)),
    ('{"id":28,"publish":{"channel":"a"}}', error(400, 'missing field "data" in publish', 28)),
    ('{"id":29,"publish":{"channel":"a","data":' + "[" * 65 + "]" * 65 + "}}",
     error(400, '"data" nests deeper than 64 levels', 29)),
    ('{"id":30,"refresh":{}}', error(400, 'missing field "token" in refresh', 30)),
    ('{"id":31,"refresh":{"token":1}}', error(400, '"token" must be a string', 31)),
    # F: cut to its first 32 bytes then "...", non-printable-ASCII bytes replaced by "?"
    ('{"id":32,"' + "f" * 40 + '":1}', error(400, 'unknown field "' + "f" * 32 + '..."', 32)),
    ('{"id":33,"a\u00e9b":1}', error(400, 'unknown field "a??b"', 33)),
]


class PythonPeer(unittest.TestCase):
    def test_subprotocol_offered_and_not_offered(self):
        with pubsub() as srv:
            async def go():
                async with connect(srv.port) as ws:
                    self.assertEqual(ws.subprotocol, SUBPROTOCOL)
                    p = Peer(ws)
                    r = await p.subscribe("news")
                    self.assertEqual(set(r), {"id", "result"})
                async with connect(srv.port, subprotocol=False) as ws:
                    self.assertIsNone(ws.subprotocol)
                    p = Peer(ws)
                    r = await p.publish("news", 1)
                    self.assertEqual(r["result"]["offset"], 1)
            run(go())

    def test_other_subprotocols_only_refused_400(self):
        with pubsub() as srv:
            status, body = chlib.upgrade_response(srv.port, headers={"Sec-WebSocket-Protocol": "chat.v2, mqtt"})
            self.assertEqual(status, 400)
            self.assertEqual(body.strip(), "this server speaks the subprotocol conduit.v1 only (or none offered)")
            self.assertEqual(scrape(srv.port).get(chlib.M_HANDSHAKE_FAILURES, reason="unsupported_subprotocol"), 1)
            # Offered among others, conduit.v1 is selected.
            async def go():
                async with connect(srv.port, subprotocol=False, subprotocols=["chat.v2", SUBPROTOCOL]) as ws:
                    self.assertEqual(ws.subprotocol, SUBPROTOCOL)
            run(go())

    def test_refresh_without_auth_is_accepted(self):
        with pubsub() as srv:
            async def go():
                p = await Peer.open(srv.port)
                self.assertEqual(await p.request("refresh", {"token": "anything"}), {"id": 1, "result": {}})
                self.assertIn("result", await p.subscribe("after-refresh"))
                await p.close()
            run(go())

    def test_publisher_subscribed_gets_its_own_push(self):
        with pubsub() as srv:
            async def go():
                p = await Peer.open(srv.port)
                epoch = (await p.subscribe("self"))["result"]["epoch"]
                r = await p.publish("self", [1, "two"])     # reply and push in either order
                self.assertEqual(r, {"id": 2, "result": {"offset": 1, "epoch": epoch}})
                self.assertEqual(await p.wait_pushes(1),
                                 [{"channel": "self", "offset": 1, "epoch": epoch, "data": [1, "two"]}])
                await p.close()
            run(go())

    def test_subscribe_publish_push_unsubscribe_as_documented(self):
        with pubsub() as srv:
            async def go():
                a = await Peer.open(srv.port)
                b = await Peer.open(srv.port, subprotocol=False)
                r = await a.subscribe("news")
                self.assertEqual(set(r), {"id", "result"}, r)
                self.assertEqual(set(r["result"]), {"offset", "epoch"}, r)   # no recovery fields without since
                self.assertEqual(r["result"]["offset"], 0)
                epoch = r["result"]["epoch"]
                self.assertIsInstance(epoch, str)
                self.assertTrue(epoch)

                r = await b.publish("news", {"title": "hello"})
                self.assertEqual(r, {"id": 1, "result": {"offset": 1, "epoch": epoch}})
                pushes = await a.wait_pushes(1)
                self.assertEqual(pushes[0], {"channel": "news", "offset": 1, "epoch": epoch, "data": {"title": "hello"}})
                self.assertEqual(set(a.frames[-1]), {"push"})
                # Byte for byte as the docs' tables and example session show them (compact, in that order).
                self.assertEqual(a.raw[0], f'{{"id":1,"result":{{"offset":0,"epoch":"{epoch}"}}}}')
                self.assertEqual(b.raw[0], f'{{"id":1,"result":{{"offset":1,"epoch":"{epoch}"}}}}')
                self.assertEqual(a.raw[1], f'{{"push":{{"channel":"news","offset":1,"epoch":"{epoch}",'
                                           f'"data":{{"title":"hello"}}}}}}')

                # data is passed through as sent: whitespace and escapes inside the value are kept,
                # whitespace around it is not.
                await b.send_raw('{"id":2,"publish":{"channel":"news","data":  {"a" : [1, 2], "u":"\\u00e9"}  }}')
                self.assertEqual(await b.reply(), {"id": 2, "result": {"offset": 2, "epoch": epoch}})
                await a.wait_pushes(2)
                self.assertIn('"data":{"a" : [1, 2], "u":"\\u00e9"}', a.raw[-1])
                # Numbers beyond 64 bits are delivered unchanged.
                await b.send_raw('{"id":3,"publish":{"channel":"news","data":123456789012345678901234567890e400}}')
                self.assertEqual((await b.reply())["result"]["offset"], 3)
                await a.wait_pushes(3)
                self.assertIn('"data":123456789012345678901234567890e400', a.raw[-1])
                b.next_id = 3
                # Field names may use JSON escapes.
                await a.send_raw('{"id":50,"subscribe":{"\\u0063hannel":"other"}}')
                r = await a.reply()
                self.assertEqual(r["id"], 50)
                self.assertIn("result", r)

                # The publisher is not subscribed: the next frame b sees is its own reply.
                r = await b.unsubscribe("news")
                self.assertEqual(r["error"]["code"], 404)
                self.assertEqual([f for f in b.frames if "push" in f], [])

                # unsubscribe → {"id":n,"result":{}}; then no more pushes of that channel.
                self.assertEqual(await a.unsubscribe("news"), {"id": 2, "result": {}})
                self.assertEqual(a.raw[-1], '{"id":2,"result":{}}')
                await b.publish("news", "after unsubscribe")
                await b.publish("other", "marker")
                pushes = await a.wait_pushes(4)
                self.assertEqual(pushes[3]["channel"], "other")
                self.assertEqual(pushes[3]["data"], "marker")
                self.assertEqual(len(a.pushes), 4)
                await a.close()
                await b.close()
            run(go())

    def test_codec_error_table(self):
        with pubsub() as srv:
            async def go():
                p = await Peer.open(srv.port)
                failures = []
                for frame, want in CODEC_CASES:
                    await p.send_raw(frame)
                    got = await p.reply(what=f"the answer to {frame[:60]!r}")
                    if got != want:
                        failures.append(f"{frame[:70]!r}\n    want {json.dumps(want)}\n    got  {json.dumps(got)}")
                # The connection survived all of it.
                r = await p.subscribe("still-open")
                self.assertIn("result", r)
                self.assertEqual(p.closed, None)
                # 64 levels of nesting are accepted.
                await p.send_raw('{"id":99,"publish":{"channel":"a","data":' + "[" * 64 + "]" * 64 + "}}")
                r = await p.reply()
                self.assertEqual(r.get("id"), 99)
                self.assertIn("result", r, r)
                self.assertEqual(failures, [], "\n" + "\n".join(failures))
                await p.close()
            run(go())

    def test_duplicate_id_is_refused(self):
        with pubsub() as srv:
            async def go():
                p = await Peer.open(srv.port)
                await p.send_raw('{"id":1,"id":2,"subscribe":{"channel":"a"}}')
                r = await p.reply()
                # The doc does not say which id (if any) a duplicate-id error carries: only the error is checked.
                self.assertEqual(r["error"], {"code": 400, "message": 'duplicate field "id"'})
                await p.close()
            run(go())

    def test_404_409_and_too_many_subscriptions(self):
        with pubsub(sets={"channels.max_subscriptions_per_connection": 2}) as srv:
            async def go():
                p = await Peer.open(srv.port)
                self.assertEqual(await p.unsubscribe("nope"), {"id": 1, "error": {"code": 404, "message": "not subscribed"}})
                self.assertIn("result", await p.subscribe("a"))
                self.assertEqual(await p.subscribe("a"), {"id": 3, "error": {"code": 409, "message": "already subscribed"}})
                self.assertIn("result", await p.subscribe("b"))
                self.assertEqual(await p.subscribe("c"),
                                 {"id": 5, "error": {"code": 429, "message": "too many subscriptions"}})
                # The limit counts live subscriptions: after leaving one, a new one fits.
                self.assertEqual(await p.unsubscribe("a"), {"id": 6, "result": {}})
                self.assertIn("result", await p.subscribe("c"))
                await p.close()
            run(go())

    def test_publish_rate_limit(self):
        with pubsub(sets={"limits.publish_rate": 1}) as srv:
            async def go():
                p = await Peer.open(srv.port)
                # Three publishes in one burst: the bucket holds one token (burst max(1, rate)).
                await p.send_raw('{"id":1,"publish":{"channel":"r","data":1}}')
                await p.send_raw('{"id":2,"publish":{"channel":"r","data":2}}')
                await p.send_raw('{"id":3,"publish":{"channel":"r","data":3}}')
                r1, r2, r3 = await p.reply(), await p.reply(), await p.reply()
                self.assertEqual(r1["id"], 1)
                self.assertIn("result", r1, r1)
                self.assertEqual(r2, {"id": 2, "error": {"code": 429, "message": "rate limited"}})
                self.assertEqual(r3, {"id": 3, "error": {"code": 429, "message": "rate limited"}})
                # Subscribing is not rate limited, and the connection stays open.
                self.assertIn("result", await p.request("subscribe", {"channel": "r"}))
                await p.close()
            run(go())

    def test_invalid_channel_names(self):
        cfg = "[channels.namespaces.short]\nmax_channel_length = 12\n"
        with pubsub(config=cfg) as srv:
            async def go():
                p = await Peer.open(srv.port)
                ok = ["a", "A-Z_a.z:0@9/=", "x" * 255, "short:abcdef", "other:abcdefghijklmnop"]
                bad = [("", "empty"), ("a b", "bad_character"), ("chat:*", "bad_character"),
                       ("caf\u00e9", "bad_character"), ("a\"b", "bad_character"), ("tab\there", "bad_character"),
                       ("x" * 256, "too_long"), ("short:abcdefg", "too_long")]
                for name in ok:
                    r = await p.subscribe(name)
                    self.assertIn("result", r, f"{name!r}: {r}")
                    r = await p.publish(name, 1)
                    self.assertIn("result", r, f"{name!r}: {r}")
                for name, why in bad:
                    want = {"code": 400, "message": f"invalid channel name: {why}"}
                    self.assertEqual(await p.subscribe(name), {"id": p.next_id, "error": want}, f"subscribe {name!r}")
                    self.assertEqual(await p.publish(name, 1), {"id": p.next_id, "error": want}, f"publish {name!r}")
                await p.close()
            run(go())

    def test_frames_the_protocol_cannot_take(self):
        with pubsub(sets={"limits.max_message_bytes": 1024}) as srv:
            # A binary frame: conduit.v1 is JSON text only → 1003.
            with RawWS(srv.port) as ws:
                ws.send_frame(OP_BINARY, b'{"id":1,"subscribe":{"channel":"a"}}')
                f = ws.expect_close(1003)
                self.assertEqual(f.payload[2:], b"conduit.v1 takes text frames only")
            # docs/errors.md: a binary frame is counted as a protocol error with code 400.
            self.assertEqual(scrape(srv.port).get(M_PROTOCOL_ERRORS, code="400"), 1)
            # Text that is not UTF-8 → 1007.
            with RawWS(srv.port) as ws:
                ws.send_frame(OP_TEXT, b'{"id":1,"publish":{"channel":"a","data":"\xff\xfe"}}')
                ws.expect_close(1007)
            # Larger than limits.max_message_bytes → 1009.
            with RawWS(srv.port) as ws:
                ws.send_frame(OP_TEXT, b'{"id":1,"publish":{"channel":"a","data":"' + b"x" * 2000 + b'"}}')
                ws.expect_close(1009)
            # Below the limit is fine.
            with RawWS(srv.port) as ws:
                ws.send_frame(OP_TEXT, b'{"id":1,"publish":{"channel":"a","data":"' + b"x" * 900 + b'"}}')
                op, payload, _ = ws.recv_message()
                self.assertEqual(json.loads(payload)["result"]["offset"], 1)

    def test_metrics_after_traffic(self):
        with pubsub(sets={"channels.max_subscriptions_per_connection": 2}) as srv:
            async def go():
                a = await Peer.open(srv.port)
                b = await Peer.open(srv.port)
                pub = await Peer.open(srv.port)
                r = await a.subscribe("m1")
                epoch = r["result"]["epoch"]
                await b.subscribe("m1")
                await b.subscribe("m2")
                await pub.publish("m1", "one")
                await pub.publish("m1", "two")
                await pub.publish("m2", "three")
                await a.wait_pushes(2)
                await b.wait_pushes(3)
                # errors: 400 ×3 (one without id), 404 ×1, 409 ×1, 429 ×1
                await pub.send_raw("not json")
                await pub.reply()
                await pub.send_raw('{"id":90,"bogus":1}')
                await pub.reply()
                self.assertEqual((await pub.subscribe("bad name"))["error"]["code"], 400)
                self.assertEqual((await pub.unsubscribe("m1"))["error"]["code"], 404)
                self.assertEqual((await a.subscribe("m1"))["error"]["code"], 409)
                self.assertEqual((await b.subscribe("m3"))["error"]["code"], 429)
                m = scrape(srv.port)
                self.assertEqual(m.get(M_PUBLICATIONS), 3)
                self.assertEqual(m.get(M_DELIVERIES), 5)    # m1 → a, b (×2); m2 → b
                self.assertEqual(m.get(M_SUBSCRIPTIONS), 3)  # a:m1, b:m1, b:m2
                self.assertEqual(m.get(M_CHANNELS), 2)
                self.assertGreater(m.get(M_HISTORY_BYTES), 0)
                self.assertEqual(m.get(M_PROTOCOL_ERRORS, code="400"), 3)
                self.assertEqual(m.get(M_PROTOCOL_ERRORS, code="404"), 1)
                self.assertEqual(m.get(M_PROTOCOL_ERRORS, code="409"), 1)
                self.assertEqual(m.get(M_PROTOCOL_ERRORS, code="429"), 1)
                # recoveries: one recovered, one failed (wrong epoch)
                c = await Peer.open(srv.port)
                r = await c.subscribe("m1", since={"offset": 1, "epoch": epoch})
                self.assertTrue(r["result"]["recovered"], r)
                r = await c.subscribe("m2", since={"offset": 0, "epoch": "not-the-epoch"})
                self.assertFalse(r["result"]["recovered"], r)

                m = scrape(srv.port)
                self.assertEqual(m.get(M_SUBSCRIPTIONS), 5)  # a:m1, b:m1, b:m2, c:m1, c:m2
                self.assertEqual(m.get(M_RECOVERIES, result="recovered"), 1)
                self.assertEqual(m.get(M_RECOVERIES, result="failed"), 1)
                for p in (a, b, c, pub):
                    await p.close()
                # Subscriptions end with their connections.
                deadline = asyncio.get_running_loop().time() + T
                while scrape(srv.port).get(M_SUBSCRIPTIONS) != 0:
                    self.assertLess(asyncio.get_running_loop().time(), deadline, "subscriptions still counted")
                    await asyncio.sleep(0.05)
            run(go())


if __name__ == "__main__":
    chlib.main()
