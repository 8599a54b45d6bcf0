"""History and recovery semantics of conduit.v1 (docs/protocol.md, "Recovery"; docs/configuration.md,
[channels] and namespaces): `since` with the wrong epoch, above the last offset, older than the
history, at the last offset; a namespace with history_size = 0; a namespace with a short
history_ttl, whose expiry is observed through GET /api/history."""

import asyncio
import time
import unittest

import chlib
from chlib import Peer, api, run

KEY = "history-test-key"
CONFIG = """
[channels]
history_size = 5

[channels.namespaces.nohist]
history_size = 0

[channels.namespaces.ttl]
history_ttl = "1s"
history_size = 50
"""


def pubs(channel, epoch, offsets, data=lambda i: {"n": i}):
    return [{"channel": channel, "offset": i, "epoch": epoch, "data": data(i)} for i in offsets]


class History(unittest.TestCase):
    def setUp(self):
        self.srv = chlib.pubsub(sets={"api.key": KEY}, config=CONFIG).start()

    def tearDown(self):
        self.srv.stop()

    def recover(self, channel, since):
        async def go():
            p = await Peer.open(self.srv.port)
            r = await p.subscribe(channel, since=since)
            await p.close()
            return r
        return run(go())

    def publish(self, channel, n):
        async def go():
            p = await Peer.open(self.srv.port)
            out = [await p.publish(channel, {"n": i + 1}) for i in range(n)]
            await p.close()
            return out
        return run(go())

    def test_epoch_is_created_with_the_channel_and_kept(self):
        async def go():
            p = await Peer.open(self.srv.port)
            r = await p.subscribe("h0")
            epoch = r["result"]["epoch"]
            self.assertEqual(r["result"]["offset"], 0)
            r = await p.publish("h0", 1)
            self.assertEqual(r["result"], {"offset": 1, "epoch": epoch})
            await p.close()
        run(go())

    def test_wrong_epoch_and_offset_ahead(self):
        replies = self.publish("h1", 3)
        epoch = replies[-1]["result"]["epoch"]
        other = "0" * 16 if epoch != "0" * 16 else "1" * 16
        self.assertEqual(self.recover("h1", {"offset": 1, "epoch": other}),
                         {"id": 1, "result": {"offset": 3, "epoch": epoch, "recovered": False, "publications": []}})
        self.assertEqual(self.recover("h1", {"offset": 4, "epoch": epoch}),
                         {"id": 1, "result": {"offset": 3, "epoch": epoch, "recovered": False, "publications": []}})
        self.assertEqual(self.recover("h1", {"offset": 1, "epoch": epoch}),
                         {"id": 1, "result": {"offset": 3, "epoch": epoch, "recovered": True,
                                              "publications": pubs("h1", epoch, [2, 3])}})
        self.assertEqual(self.recover("h1", {"offset": 3, "epoch": epoch}),
                         {"id": 1, "result": {"offset": 3, "epoch": epoch, "recovered": True, "publications": []}})

    def test_since_older_than_history(self):
        replies = self.publish("h2", 10)   # history_size 5: 6..10 kept
        epoch = replies[-1]["result"]["epoch"]
        for since in (0, 2, 4):
            self.assertEqual(self.recover("h2", {"offset": since, "epoch": epoch}),
                             {"id": 1, "result": {"offset": 10, "epoch": epoch, "recovered": False, "publications": []}},
                             f"since {since}")
        self.assertEqual(self.recover("h2", {"offset": 5, "epoch": epoch}),
                         {"id": 1, "result": {"offset": 10, "epoch": epoch, "recovered": True,
                                              "publications": pubs("h2", epoch, range(6, 11))}})
        status, body = api(self.srv.port, "GET", "/api/history?channel=h2", key=KEY)
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {"offset": 10, "epoch": epoch,
                                "publications": [{"offset": i, "data": {"n": i}} for i in range(6, 11)]})

    def test_namespace_without_history(self):
        async def go():
            # A subscriber keeps the channel alive (a channel without subscribers and without history
            # is dropped, docs/operations.md), so its epoch and offsets persist across the checks.
            keeper = await Peer.open(self.srv.port)
            await keeper.subscribe("nohist:a")
            pub = await Peer.open(self.srv.port)
            replies = [await pub.publish("nohist:a", {"n": i}) for i in (1, 2, 3)]
            epoch = replies[-1]["result"]["epoch"]
            other = await Peer.open(self.srv.port)
            self.assertEqual(await other.subscribe("nohist:a", since={"offset": 3, "epoch": epoch}),
                             {"id": 1, "result": {"offset": 3, "epoch": epoch, "recovered": True, "publications": []}})
            await other.unsubscribe("nohist:a")
            self.assertEqual(await other.subscribe("nohist:a", since={"offset": 2, "epoch": epoch}),
                             {"id": 3, "result": {"offset": 3, "epoch": epoch, "recovered": False, "publications": []}})
            status, body = api(self.srv.port, "GET", "/api/history?channel=nohist:a", key=KEY)
            self.assertEqual((status, body), (200, {"offset": 3, "epoch": epoch, "publications": []}))
            for p in (keeper, pub, other):
                await p.close()
        run(go())
        # A channel outside the namespace keeps the [channels] history.
        replies = self.publish("nohistory", 2)
        self.assertEqual(self.recover("nohistory", {"offset": 0, "epoch": replies[-1]["result"]["epoch"]})
                         ["result"]["recovered"], True)

    def test_channel_without_subscribers_or_history_starts_a_new_epoch(self):
        # docs/configuration.md, [channels]: a channel with no subscribers and nothing left in its
        # history (history off here) is dropped, and its next use starts a new epoch. So the only
        # subscriber of a history_size = 0 channel, reconnecting at the last offset, cannot recover.
        async def go():
            a = await Peer.open(self.srv.port)
            epoch = (await a.subscribe("nohist:solo"))["result"]["epoch"]
            self.assertEqual((await a.publish("nohist:solo", 1))["result"], {"offset": 1, "epoch": epoch})
            await a.close()
            # The server has processed a's departure once its subscription is gone (bounded poll).
            deadline = time.monotonic() + 10
            while chlib.scrape(self.srv.port).get(chlib.M_SUBSCRIPTIONS) != 0:
                self.assertLess(time.monotonic(), deadline, "the closed subscriber's subscription is still counted")
                await asyncio.sleep(0.02)
            b = await Peer.open(self.srv.port)
            r = await b.subscribe("nohist:solo", since={"offset": 1, "epoch": epoch})
            self.assertEqual(set(r["result"]), {"offset", "epoch", "recovered", "publications"})
            self.assertEqual((r["result"]["offset"], r["result"]["recovered"], r["result"]["publications"]),
                             (0, False, []))
            self.assertNotEqual(r["result"]["epoch"], epoch)
            await b.close()
        run(go())

    def test_ttl_expiry(self):
        async def go():
            # The keeper's subscription keeps the channel (and its epoch) alive once its history expired.
            keeper = await Peer.open(self.srv.port)
            await keeper.subscribe("ttl:a")
            t_before = time.monotonic()
            pub = await Peer.open(self.srv.port)
            replies = [await pub.publish("ttl:a", {"n": i}) for i in (1, 2)]
            epoch = replies[-1]["result"]["epoch"]
            # Expiry observed by polling (bounded); the assertion is on what the history says, and
            # that it did not empty before the TTL could have passed.
            deadline = time.monotonic() + 20
            while True:
                status, body = api(self.srv.port, "GET", "/api/history?channel=ttl:a", key=KEY)
                self.assertEqual(status, 200, body)
                self.assertEqual((body["offset"], body["epoch"]), (2, epoch), body)
                if body["publications"] == []:
                    break
                self.assertEqual([p["offset"] for p in body["publications"]], [1, 2], body)
                self.assertLess(time.monotonic(), deadline, f"history_ttl 1s: publications still there: {body}")
                await asyncio.sleep(0.05)
            self.assertGreaterEqual(time.monotonic() - t_before, 1.0, "history emptied before history_ttl")
            other = await Peer.open(self.srv.port)
            self.assertEqual(await other.subscribe("ttl:a", since={"offset": 1, "epoch": epoch}),
                             {"id": 1, "result": {"offset": 2, "epoch": epoch, "recovered": False, "publications": []}})
            await other.unsubscribe("ttl:a")
            self.assertEqual(await other.subscribe("ttl:a", since={"offset": 2, "epoch": epoch}),
                             {"id": 3, "result": {"offset": 2, "epoch": epoch, "recovered": True, "publications": []}})
            for p in (keeper, pub, other):
                await p.close()
        run(go())
        # A channel outside the namespace keeps the default TTL (5 minutes).
        replies = self.publish("ttlx", 1)
        self.assertTrue(self.recover("ttlx", {"offset": 0, "epoch": replies[-1]["result"]["epoch"]})
                        ["result"]["recovered"])


if __name__ == "__main__":
    chlib.main()
