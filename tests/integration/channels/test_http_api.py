"""The HTTP API of conduitd --mode pubsub on the WebSocket port: POST /api/publish reaches WebSocket
subscribers, GET /api/channels, GET /api/history with limit; and its refusals, checked in the
documented order 404 (API disabled), 405, 401, 413, 400, each with a JSON error body."""

import json
import unittest

import chlib
from chlib import Peer, api, http, pubsub, run

KEY = "k-3a7f9c"
MAX_BODY = 1024


def error_body(test, status, body, code):
    test.assertEqual(status, code, body)
    test.assertIsInstance(body, dict, f"error body is not JSON: {body!r}")
    test.assertEqual(set(body), {"error"}, body)
    test.assertEqual(set(body["error"]), {"code", "message"}, body)
    test.assertEqual(body["error"]["code"], code, body)
    msg = body["error"]["message"]
    test.assertIsInstance(msg, str)
    test.assertTrue(msg.strip(), body)
    test.assertNotIn("\n", msg)


class HttpApi(unittest.TestCase):
    def setUp(self):
        self.srv = pubsub(sets={"api.key": KEY, "api.max_body_bytes": MAX_BODY}).start()
        self.port = self.srv.port

    def tearDown(self):
        self.srv.stop()

    def test_publish_reaches_websocket_subscribers_channels_history(self):
        async def go():
            a = await Peer.open(self.port)
            b = await Peer.open(self.port, subprotocol=False)
            ra = await a.subscribe("news")
            await b.subscribe("news")
            await b.subscribe("sport")
            epoch = ra["result"]["epoch"]

            status, body = api(self.port, "POST", "/api/publish", {"channel": "news", "data": {"x": 1}}, key=KEY)
            self.assertEqual((status, body), (200, {"offset": 1, "epoch": epoch}))
            for p in (a, b):
                pushes = await p.wait_pushes(1)
                self.assertEqual(pushes[0], {"channel": "news", "offset": 1, "epoch": epoch, "data": {"x": 1}})
            for i in (2, 3, 4):
                status, body = api(self.port, "POST", "/api/publish", {"channel": "news", "data": i}, key=KEY)
                self.assertEqual((status, body), (200, {"offset": i, "epoch": epoch}))
            # A WebSocket publish and an HTTP publish share one offset sequence.
            self.assertEqual((await a.publish("news", "ws"))["result"], {"offset": 5, "epoch": epoch})
            await a.wait_pushes(5)
            self.assertEqual([p["data"] for p in a.pushes], [{"x": 1}, 2, 3, 4, "ws"])

            status, body = api(self.port, "GET", "/api/channels", key=KEY)
            self.assertEqual(status, 200, body)
            self.assertEqual(set(body), {"channels"}, body)
            self.assertEqual(sorted(body["channels"], key=lambda c: c["channel"]),
                             [{"channel": "news", "subscribers": 2}, {"channel": "sport", "subscribers": 1}])

            status, body = api(self.port, "GET", "/api/history?channel=news&limit=2", key=KEY)
            self.assertEqual((status, body), (200, {"offset": 5, "epoch": epoch, "publications": [
                {"offset": 4, "data": 4}, {"offset": 5, "data": "ws"}]}))
            status, body = api(self.port, "GET", "/api/history?channel=news", key=KEY)  # limit defaults to 100
            self.assertEqual(status, 200, body)
            self.assertEqual([p["offset"] for p in body["publications"]], [1, 2, 3, 4, 5])
            self.assertEqual(body["publications"][0], {"offset": 1, "data": {"x": 1}})
            status, body = api(self.port, "GET", "/api/history?limit=1&channel=news", key=KEY)
            self.assertEqual((status, [p["offset"] for p in body["publications"]]), (200, [5]))

            # Answered requests are counted (conduit_http_api_requests_total{endpoint}): 4 publishes,
            # 1 channels and 3 history requests so far.
            m = chlib.scrape(self.port)
            answered = [v for (name, _), v in m.samples.items() if name == chlib.M_HTTP_API_REQUESTS]
            self.assertTrue(answered, f"{chlib.M_HTTP_API_REQUESTS} is not exported")
            self.assertEqual(sum(answered), 8)
            await b.close()
            status, body = api(self.port, "GET", "/api/channels", key=KEY)
            self.assertEqual(body, {"channels": [{"channel": "news", "subscribers": 1}]})
            await a.close()
        run(go())

    def test_401_missing_or_wrong_key(self):
        ok = {"channel": "news", "data": 1}
        for headers in ({}, {"Authorization": "apikey wrong"}, {"Authorization": f"Bearer {KEY}"},
                        {"Authorization": f"apikey {KEY}x"}, {"Authorization": "apikey "}):
            status, body = api(self.port, "POST", "/api/publish", ok, headers=headers)
            with self.subTest(headers=headers):
                error_body(self, status, body, 401)
        for path in ("/api/channels", "/api/history?channel=news"):
            status, body = api(self.port, "GET", path)
            error_body(self, status, body, 401)

    def test_refusals_counted_by_status(self):
        before = chlib.scrape(self.port)
        api(self.port, "POST", "/api/publish", {"channel": "a", "data": 1}, key="wrong")          # 401
        api(self.port, "POST", "/api/publish", {"channel": "a", "data": 1})                       # 401
        api(self.port, "GET", "/api/publish", key=KEY)                                            # 405
        api(self.port, "POST", "/api/publish", raw="{", key=KEY)                                  # 400
        api(self.port, "POST", "/api/publish", raw="x" * (MAX_BODY + 1), key=KEY)                 # 413
        after = chlib.scrape(self.port)

        def total(m, status):
            return sum(v for (name, labels), v in m.samples.items()
                       if name == chlib.M_HTTP_API_REFUSALS and dict(labels).get("status") == status)
        self.assertTrue(any(name == chlib.M_HTTP_API_REFUSALS for name, _ in after.samples),
                        f"{chlib.M_HTTP_API_REFUSALS} is not exported")
        got = {s: total(after, s) - total(before, s) for s in ("400", "401", "405", "413")}
        self.assertEqual(got, {"400": 1, "401": 2, "405": 1, "413": 1})

    def test_400_bad_requests(self):
        for raw in ("{not json", "", "[1]", '"news"', '{"channel":"news"}', '{"data":1}',
                    '{"channel":"news","data":1,"extra":2}', '{"channel":5,"data":1}',
                    '{"channel":"bad name","data":1}', '{"channel":"news","data":tru}',
                    '{"channel":"news","data":1} trailing'):
            status, body = api(self.port, "POST", "/api/publish", raw=raw, key=KEY)
            with self.subTest(body=raw):
                error_body(self, status, body, 400)

    def test_413_body_over_api_max_body_bytes(self):
        big = json.dumps({"channel": "news", "data": "x" * (MAX_BODY + 10)})
        status, body = api(self.port, "POST", "/api/publish", raw=big, key=KEY)
        error_body(self, status, body, 413)
        fits = json.dumps({"channel": "news", "data": "x" * (MAX_BODY - 40)})
        self.assertLessEqual(len(fits), MAX_BODY)
        status, body = api(self.port, "POST", "/api/publish", raw=fits, key=KEY)
        self.assertEqual(status, 200, body)

    def test_405_wrong_method(self):
        for method, path in (("GET", "/api/publish"), ("PUT", "/api/publish"), ("POST", "/api/channels"),
                             ("DELETE", "/api/history?channel=news")):
            status, body = api(self.port, method, path, key=KEY)
            with self.subTest(method=method, path=path):
                error_body(self, status, body, 405)

    def test_order_405_401_413_400(self):
        big_bad = "{" + "x" * (MAX_BODY + 10)
        # wrong method + wrong key → 405
        status, body = api(self.port, "GET", "/api/publish", key="wrong")
        error_body(self, status, body, 405)
        # wrong key + oversized → 401
        status, body = api(self.port, "POST", "/api/publish", raw=big_bad, key="wrong")
        error_body(self, status, body, 401)
        # no key + a body over the server's default HTTP body limit (64 KiB) → still 401
        status, body = api(self.port, "POST", "/api/publish", raw="{" + "x" * 100000)
        error_body(self, status, body, 401)
        # wrong key + bad JSON → 401
        status, body = api(self.port, "POST", "/api/publish", raw="{not json", key="wrong")
        error_body(self, status, body, 401)
        # oversized + bad JSON → 413
        status, body = api(self.port, "POST", "/api/publish", raw=big_bad, key=KEY)
        error_body(self, status, body, 413)


    def test_404_unknown_api_path(self):
        for method, path in (("GET", "/api/nope"), ("POST", "/api/publishx")):
            status, body = api(self.port, method, path, key=KEY)
            with self.subTest(method=method, path=path):
                error_body(self, status, body, 404)

    def test_json_content_type(self):
        status, headers, _ = http(self.port, "GET", "/api/channels", headers={"Authorization": f"apikey {KEY}"})
        self.assertEqual(status, 200)
        self.assertTrue(headers.get("content-type", "").startswith("application/json"), headers)
        status, headers, _ = http(self.port, "GET", "/api/channels")
        self.assertEqual(status, 401)
        self.assertTrue(headers.get("content-type", "").startswith("application/json"), headers)


class HttpApiDisabled(unittest.TestCase):
    CASES = (("POST", "/api/publish", '{"channel":"news","data":1}'), ("GET", "/api/channels", None),
             ("GET", "/api/history?channel=news", None), ("GET", "/api/publish", None))   # 404 before 405

    def test_404_when_api_key_empty(self):
        for sets in ({}, {"api.key": '""'}):
            with pubsub(sets=sets) as srv:
                for method, path, body in self.CASES:
                    for key in ("anything", None):
                        status, reply = api(srv.port, method, path, raw=body, key=key)
                        self.assertEqual(status, 404, f"{sets} {method} {path} key={key}: {reply!r}")

    def test_404_when_api_key_empty_is_the_plain_404_of_any_unknown_path(self):
        # docs/protocol.md, "HTTP API": refusals have a JSON body "except the 404 of a disabled API,
        # which is the server's plain-text 404 for any unknown path".
        with pubsub() as srv:
            status, hdrs, unknown = chlib.http(srv.port, "GET", "/zz-no-such-path")
            self.assertEqual(status, 404)
            for method, path, body in self.CASES:
                status, headers, reply = chlib.http(srv.port, method, path, body,
                                                    {"Authorization": "apikey anything"})
                bare = path.split("?")[0]
                with self.subTest(method=method, path=path):
                    self.assertEqual(status, 404)
                    self.assertEqual(reply, unknown.replace(b"/zz-no-such-path", bare.encode()))
                    self.assertEqual(headers.get("content-type"), hdrs.get("content-type"))


if __name__ == "__main__":
    chlib.main()
