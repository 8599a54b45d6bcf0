"""Several conduitd nodes sharing one Redis (`redis.url`), behind nginx: a publication made on any
node reaches the subscribers of every node, in order, once; a client whose node dies recovers on
another; Redis killed and restarted (with and without persistence) is survived, with refusals that
say so and recovery or an explicit recovery_failed; a node started before its Redis becomes ready
when Redis comes up.

Written from docs/protocol.md (conduit.v1), docs/configuration.md (`[redis]`) and
docs/operations.md ("Several nodes").
"""

import asyncio
import signal
import unittest

import scalelib
from scalelib import (API_KEY, M_CONNECTED, M_PUBLISHES, M_RESYNCS, Nginx, Peer, Redis, api, channel_subscribers,
                      close_peers, data_pushes, log_events, metric, node, open_peers, readyz, recovery_failed_pushes,
                      run, sigkill, wait_until, async_wait_until)

T = 15.0  # bound of one wait for pushes


def unavailable(test, status, body):
    """The refusal of a publish the node could not hand to Redis (HTTP)."""
    test.assertEqual((status, body), (503, {"error": {"code": 503, "message": "unavailable"}}))


class Cluster(unittest.TestCase):
    """redis-server + two nodes (A, B); nginx in front when a test asks for it."""

    persistent = False

    def start_cluster(self, with_nginx=False, sets=None):
        self.redis = Redis(persistent=self.persistent).start()
        self.addCleanup(self.redis.close)
        self.a = node(self.redis.url, sets).start()
        self.addCleanup(self.a.stop)
        self.b = node(self.redis.url, sets).start()
        self.addCleanup(self.b.stop)
        for n in (self.a, self.b):
            wait_until(lambda: readyz(n.port) == (200, "ready"), scalelib.RECONNECT_TIMEOUT,
                       f"/readyz 200 on node {n.port}")
        if with_nginx:
            self.nginx = Nginx([self.a.port, self.b.port]).start()
            self.addCleanup(self.nginx.close)

    def publish_http(self, port, channel, data):
        return api(port, "POST", "/api/publish", {"channel": channel, "data": data}, key=API_KEY)


class FanoutAcrossNodes(Cluster):
    def test_200_subscribers_behind_nginx_get_every_publication_in_order_once(self):
        self.start_cluster(with_nginx=True)
        n_subs, n_pubs, ch = 200, 100, "fan"

        async def go():
            subs = await open_peers(self.nginx.port, n_subs)
            replies = await asyncio.gather(*(s.subscribe(ch) for s in subs))
            for r in replies:
                self.assertEqual(r["result"]["offset"], 0, r)
            epochs = {r["result"]["epoch"] for r in replies}
            self.assertEqual(len(epochs), 1, f"subscribers on two nodes saw different epochs: {epochs}")
            # nginx spread them: both nodes hold subscribers, together all of them.
            on_a, on_b = channel_subscribers(self.a.port, ch), channel_subscribers(self.b.port, ch)
            self.assertGreater(on_a, 0, "no subscriber reached node A through nginx")
            self.assertGreater(on_b, 0, "no subscriber reached node B through nginx")
            self.assertEqual(on_a + on_b, n_subs)

            pub = await Peer.open(self.nginx.port)
            epoch = epochs.pop()
            for i in range(n_pubs):
                r = await pub.publish(ch, {"seq": i})
                self.assertEqual(r, {"id": r["id"], "result": {"offset": i + 1, "epoch": epoch}})
            # A marker after everything: a late duplicate would arrive before it (one order per
            # channel), so exactly n_pubs + 1 pushes ending with the marker means no duplicate.
            self.assertEqual((await pub.publish(ch, "end"))["result"]["offset"], n_pubs + 1)
            for s in subs:
                await s.wait_for(lambda s=s: any(p.get("data") == "end" for p in s.pushes), T, "the end marker")
            for s in subs:
                got = data_pushes(s, ch)
                self.assertEqual([p["offset"] for p in got], list(range(1, n_pubs + 2)))
                self.assertEqual([p["data"] for p in got], [{"seq": i} for i in range(n_pubs)] + ["end"])
                self.assertEqual({p["epoch"] for p in got}, {epoch})
                self.assertEqual(recovery_failed_pushes(s, ch), [])
            await close_peers(subs + [pub])
            # Both nodes delivered: each received the publications from Redis.
            for n in (self.a, self.b):
                self.assertGreaterEqual(metric(n.port, scalelib.M_MESSAGES), n_pubs + 1)

        run(go())

    def test_http_publish_on_one_node_reaches_subscribers_of_the_other(self):
        self.start_cluster()
        ch = "cross"

        def nodes_subscribed():
            # Nodes subscribed in Redis to the channel's pub/sub channel (PREFIX:p:{C}).
            return self.redis.command_reply("PUBSUB", "NUMSUB", "conduit:p:{cross}")[1]

        async def go():
            on_a = [await Peer.open(self.a.port) for _ in range(3)]
            on_b = [await Peer.open(self.b.port) for _ in range(3)]
            self.assertEqual(nodes_subscribed(), 0)
            ra = [await p.subscribe(ch) for p in on_a]
            epoch = ra[0]["result"]["epoch"]
            # Only the node with subscribers listens to the channel in Redis.
            await async_wait_until(lambda: nodes_subscribed() == 1, T, "node A to subscribe in Redis")
            for i in range(1, 6):
                self.assertEqual(self.publish_http(self.b.port, ch, {"from": "b", "i": i}),
                                 (200, {"offset": i, "epoch": epoch}))
            for p in on_a:
                got = await p.wait_pushes(5, T)
                self.assertEqual(got, [{"channel": ch, "offset": i, "epoch": epoch, "data": {"from": "b", "i": i}}
                                       for i in range(1, 6)])
            # The channel's position is in Redis: node B reports the same one, and recovers from it.
            rb = [await p.subscribe(ch, since={"offset": 3, "epoch": epoch}) for p in on_b]
            for r in rb:
                self.assertEqual(r["result"]["offset"], 5)
                self.assertEqual(r["result"]["epoch"], epoch)
                self.assertIs(r["result"]["recovered"], True)
                self.assertEqual([p["offset"] for p in r["result"]["publications"]], [4, 5])
            # And the other way: a WebSocket publish on A reaches B's subscribers.
            self.assertEqual((await on_a[0].publish(ch, "from a"))["result"], {"offset": 6, "epoch": epoch})
            for p in on_b:
                got = await p.wait_pushes(1, T)
                self.assertEqual(got, [{"channel": ch, "offset": 6, "epoch": epoch, "data": "from a"}])
            await async_wait_until(lambda: nodes_subscribed() == 2, T, "node B to subscribe in Redis")
            # The last subscriber of a node leaving unsubscribes that node in Redis.
            await close_peers(on_a)
            await async_wait_until(lambda: nodes_subscribed() == 1, T, "node A to unsubscribe in Redis")
            await close_peers(on_b)
            await async_wait_until(lambda: nodes_subscribed() == 0, T, "node B to unsubscribe in Redis")

        run(go())


class NodeFailover(Cluster):
    def test_clients_of_a_killed_node_reconnect_through_nginx_and_recover_without_gap(self):
        self.start_cluster(with_nginx=True)
        n_subs, ch = 20, "failover"

        async def go():
            subs = await open_peers(self.nginx.port, n_subs)
            epoch = {(await s.subscribe(ch))["result"]["epoch"] for s in subs}.pop()
            on_a = channel_subscribers(self.a.port, ch)
            self.assertGreater(on_a, 0)
            self.assertEqual(on_a + channel_subscribers(self.b.port, ch), n_subs)
            for i in range(1, 11):
                self.assertEqual(self.publish_http(self.b.port, ch, i), (200, {"offset": i, "epoch": epoch}))
            for s in subs:
                await s.wait_pushes(10, T)

            sigkill(self.a)
            # Exactly the clients that were on A lose their connection (nginx ends it when A's does).
            await async_wait_until(lambda: sum(s.closed is not None for s in subs) >= on_a, T,
                                   f"node A's {on_a} clients to see their connections end")
            lost = [s for s in subs if s.closed is not None]
            self.assertEqual(len(lost), on_a)
            stayed = [s for s in subs if s.closed is None]
            self.assertEqual(len(stayed), n_subs - on_a)

            # Published while A's clients are away.
            for i in range(11, 21):
                self.assertEqual(self.publish_http(self.b.port, ch, i), (200, {"offset": i, "epoch": epoch}))
            back = []
            for s in lost:
                last = data_pushes(s, ch)[-1]
                self.assertEqual(last["offset"], 10)
                p = await Peer.open(self.nginx.port)  # nginx passes over the dead node
                r = await p.subscribe(ch, since={"offset": last["offset"], "epoch": last["epoch"]})
                self.assertEqual(r["result"]["recovered"], True, r)
                self.assertEqual((r["result"]["offset"], r["result"]["epoch"]), (20, epoch))
                self.assertEqual([(q["offset"], q["data"]) for q in r["result"]["publications"]],
                                 [(i, i) for i in range(11, 21)])
                back.append(p)
            self.assertEqual(channel_subscribers(self.b.port, ch), n_subs)
            for i in range(21, 26):
                self.assertEqual(self.publish_http(self.b.port, ch, i), (200, {"offset": i, "epoch": epoch}))
            for s in stayed:
                got = await s.wait_pushes(25, T)
                self.assertEqual([(p["offset"], p["data"]) for p in got], [(i, i) for i in range(1, 26)])
            for p in back:
                got = await p.wait_pushes(5, T)
                self.assertEqual([(q["offset"], q["data"]) for q in got], [(i, i) for i in range(21, 26)])
            for s in stayed + back:
                self.assertEqual(recovery_failed_pushes(s, ch), [])
            await close_peers(stayed + back)

        run(go())


class RedisOutage(Cluster):
    """Redis SIGKILLed under a running publisher, then restarted on the same port and directory."""

    def outage(self):
        self.start_cluster()
        ch = "outage"
        nodes = (self.a, self.b)

        async def go():
            subs = [await Peer.open(n.port) for n in nodes for _ in range(4)]
            epoch = {(await s.subscribe(ch))["result"]["epoch"] for s in subs}.pop()
            pub = await Peer.open(self.a.port)
            for i in range(1, 6):
                self.assertEqual((await pub.publish(ch, f"pre-{i}"))["result"], {"offset": i, "epoch": epoch})
            for s in subs:
                await s.wait_pushes(5, T)
            resyncs_before = {n.port: (metric(n.port, M_RESYNCS, result="recovered"),
                                       metric(n.port, M_RESYNCS, result="failed")) for n in nodes}

            # A publisher that keeps publishing, one request at a time, while Redis is killed.
            outcomes = []   # (data, reply)
            killed = asyncio.Event()

            async def keep_publishing():
                for i in range(100000):
                    data = f"run-{i}"
                    r = await pub.publish(ch, data)
                    outcomes.append((data, r))
                    if i == 20:
                        killed.set()
                    if "error" in r and r["error"]["code"] == 503:
                        return
                raise AssertionError("publishes kept succeeding after Redis was killed")

            task = asyncio.ensure_future(keep_publishing())
            await asyncio.wait_for(killed.wait(), T)
            self.redis.kill()
            await asyncio.wait_for(task, T)

            # Replies: successes, then at most one "outcome unknown" (the publish in flight when
            # Redis died), then "unavailable". Nothing else.
            acked, unknown, refused = [], [], []
            for data, r in outcomes:
                if "result" in r:
                    self.assertEqual((unknown, refused), ([], []), f"a publish succeeded after a failure: {outcomes}")
                    self.assertEqual(r["result"]["epoch"], epoch)
                    self.assertEqual(r["result"]["offset"], 6 + len(acked))
                    acked.append(data)
                elif r["error"] == {"code": 504, "message": "outcome unknown"}:
                    self.assertEqual(refused, [], f"504 after a 503: {outcomes}")
                    unknown.append(data)
                else:
                    self.assertEqual(r["error"], {"code": 503, "message": "unavailable"}, r)
                    refused.append(data)
            self.assertLessEqual(len(unknown), 1, outcomes)
            self.assertGreaterEqual(len(acked), 20)

            for n in nodes:
                status, body = await async_wait_until(
                    lambda n=n: (lambda r: r if r[0] == 503 else None)(readyz(n.port)),
                    scalelib.RECONNECT_TIMEOUT, f"/readyz 503 on node {n.port}")
                self.assertTrue(body.startswith("redis unavailable: "), body)
                self.assertEqual(metric(n.port, M_CONNECTED), 0)
            # Refused on both nodes, by both paths: never sent to Redis.
            status, body = self.publish_http(self.b.port, ch, "refused-http")
            unavailable(self, status, body)
            refused.append("refused-http")
            r = await subs[-1].publish(ch, "refused-ws")
            self.assertEqual(r["error"], {"code": 503, "message": "unavailable"}, r)
            refused.append("refused-ws")
            other = await Peer.open(self.a.port)
            r = await other.subscribe("elsewhere")
            self.assertEqual(r["error"], {"code": 503, "message": "unavailable"}, r)
            self.assertGreaterEqual(metric(self.b.port, M_PUBLISHES, result="unavailable"), 2)
            self.assertGreaterEqual(metric(self.a.port, M_PUBLISHES, result="unavailable"),
                                    len([d for d in refused if d.startswith("run-")]))
            for s in subs + [pub, other]:
                self.assertIsNone(s.closed, "a client lost its connection during the Redis outage")

            self.redis.start()
            for n in nodes:
                await async_wait_until(lambda n=n: readyz(n.port) == (200, "ready"), scalelib.RECONNECT_TIMEOUT,
                                       f"/readyz 200 on node {n.port} after Redis came back")
                self.assertEqual(metric(n.port, M_CONNECTED), 1)
            return subs, pub, other, epoch, acked, unknown, refused, resyncs_before

        return go

    def check_logs(self, resync_result):
        """Each node logged the outage and the reconnection. A failed resync is always logged; a
        recovered one only when the node had missed something (most often it had not: it received
        every acknowledged publication before Redis died), so its line is optional, but a resync
        that is logged must have the expected result."""
        for n in (self.a, self.b):
            events = log_events(n.stderr_text())
            names = [e.get("event") for e in events]
            for ev in ("redis_connected", "redis_disconnected"):
                self.assertIn(ev, names, f"node {n.port} logged no event={ev}")
            resyncs = [e for e in events if e.get("event") == "channel_resync"]
            self.assertEqual({e.get("result") for e in resyncs} - {resync_result}, set(), resyncs)
            if resync_result == "failed":
                self.assertTrue(resyncs, f"node {n.port} logged no event=channel_resync result=failed")


class RedisOutageWithPersistence(RedisOutage):
    persistent = True

    def test_redis_killed_and_restarted_with_aof_always_loses_nothing_acknowledged(self):
        outage = self.outage()
        ch = "outage"

        async def go():
            subs, pub, other, epoch, acked, unknown, refused, before = await outage()
            # Every node resyncs its channel from the stream and recovers.
            for n in (self.a, self.b):
                await async_wait_until(
                    lambda n=n: metric(n.port, M_RESYNCS, result="recovered") > before[n.port][0],
                    scalelib.RECONNECT_TIMEOUT, f"a recovered resync on node {n.port}")
                self.assertEqual(metric(n.port, M_RESYNCS, result="failed"), before[n.port][1])
            after = [f"post-{i}" for i in range(1, 6)]
            for d in after:
                status, body = self.publish_http(self.a.port, ch, d)
                self.assertEqual(status, 200, body)
                self.assertEqual(body["epoch"], epoch)
            pre = [f"pre-{i}" for i in range(1, 6)]
            for s in subs:
                await s.wait_for(lambda s=s: any(p.get("data") == after[-1] for p in s.pushes), T, "the last post-")
                got = data_pushes(s, ch)
                datas = [p["data"] for p in got]
                # The publish whose outcome was unknown may or may not have happened; the rest did,
                # in order, once; the refused ones never.
                expected = pre + acked + after
                if unknown and unknown[0] in datas:
                    expected = pre + acked + unknown + after
                self.assertEqual(datas, expected)
                self.assertEqual([p["offset"] for p in got], list(range(1, len(expected) + 1)))
                self.assertEqual({p["epoch"] for p in got}, {epoch})
                self.assertEqual(recovery_failed_pushes(s, ch), [])
                for d in refused:
                    self.assertNotIn(d, datas)
            # A client that was away recovers across the outage, on either node.
            for n in (self.a, self.b):
                late = await Peer.open(n.port)
                r = await late.subscribe(ch, since={"offset": 5, "epoch": epoch})
                self.assertIs(r["result"]["recovered"], True, r)
                self.assertEqual([p["data"] for p in r["result"]["publications"]],
                                 [p["data"] for p in data_pushes(subs[0], ch)][5:])
                await late.close()
            await close_peers(subs + [pub, other])

        run(go())
        self.check_logs("recovered")


class RedisOutageWithoutPersistence(RedisOutage):
    persistent = False

    def test_redis_killed_and_restarted_empty_tells_every_subscriber_recovery_failed(self):
        outage = self.outage()
        ch = "outage"

        async def go():
            subs, pub, other, epoch, acked, unknown, refused, before = await outage()
            # Redis lost the channel: every subscriber on every node is told, with the position
            # live pushes continue from.
            for s in subs:
                await s.wait_for(lambda s=s: recovery_failed_pushes(s, ch), scalelib.RECONNECT_TIMEOUT,
                                 "a recovery_failed push")
            failed = [recovery_failed_pushes(s, ch) for s in subs]
            for f in failed:
                self.assertEqual(len(f), 1, f)
                self.assertEqual(set(f[0]), {"channel", "recovery_failed"}, f)
                self.assertEqual(set(f[0]["recovery_failed"]), {"offset", "epoch"}, f)
            positions = {(f[0]["recovery_failed"]["offset"], f[0]["recovery_failed"]["epoch"]) for f in failed}
            self.assertEqual(len(positions), 1, f"the nodes disagree on the new position: {positions}")
            offset, new_epoch = positions.pop()
            self.assertNotEqual(new_epoch, epoch, "Redis lost the channel but the epoch did not change")
            for n in (self.a, self.b):
                self.assertGreater(metric(n.port, M_RESYNCS, result="failed"), before[n.port][1])

            # Offsets start again from 1 in the new epoch, and the stream stays live.
            self.assertEqual(offset, 0)
            for i in range(1, 4):
                self.assertEqual(self.publish_http(self.b.port, ch, f"post-{i}"),
                                 (200, {"offset": i, "epoch": new_epoch}))
            for s in subs:
                await s.wait_for(lambda s=s: any(p.get("data") == "post-3" for p in s.pushes), T, "post-3")
                got = data_pushes(s, ch)
                marker = s.pushes.index(recovery_failed_pushes(s, ch)[0])
                tail = [p for p in s.pushes[marker + 1:] if "data" in p]
                self.assertEqual([(p["offset"], p["epoch"], p["data"]) for p in tail],
                                 [(i, new_epoch, f"post-{i}") for i in range(1, 4)])
                datas = [p["data"] for p in got]
                for d in refused:
                    self.assertNotIn(d, datas)
                # Before the marker: a prefix of what was published before the kill, in order, once.
                # Not necessarily all of it: a publication Redis acknowledged but had not yet sent to
                # this node when it died is gone with Redis's data, which is the gap the
                # recovery_failed push announces.
                head = [p["data"] for p in s.pushes[:marker] if "data" in p]
                sent = [f"pre-{i}" for i in range(1, 6)] + acked + unknown
                self.assertEqual(head, sent[:len(head)])
                self.assertGreaterEqual(len(head), 5)
            # A client that comes back with a position of the lost epoch is told it cannot recover.
            late = await Peer.open(self.a.port)
            r = await late.subscribe(ch, since={"offset": 5, "epoch": epoch})
            self.assertEqual(r["result"], {"offset": 3, "epoch": new_epoch, "recovered": False, "publications": []})
            await close_peers(subs + [pub, other, late])

        run(go())
        self.check_logs("failed")


class SlowNode(Cluster):
    """A node that stops reading its Redis subscription is disconnected by Redis (the pub/sub output
    buffer limit) instead of growing Redis's memory; when it runs again it reconnects and resyncs
    the channel from the Redis history, so its subscribers miss nothing (docs/operations.md,
    "Sizing")."""

    def test_redis_disconnects_a_stalled_node_which_then_resyncs_its_subscribers(self):
        # The subscriber's send queue holds the whole burst B delivers once it runs again (the test
        # is about the node and Redis, not about a slow client).
        self.start_cluster(sets={"limits.send_queue_bytes": "256MiB", "channels.history_size": 2000})
        ch, chunk = "slow", "x" * 32000
        self.redis.command_reply("CONFIG", "SET", "client-output-buffer-limit", "pubsub 1048576 0 0")

        def pubsub_clients():
            # Connections subscribed to something: only B's, since only B has a subscriber.
            text = self.redis.command_reply("CLIENT", "LIST", "TYPE", "pubsub").decode()
            return len([line for line in text.splitlines() if line.strip()])

        async def go():
            sub = await Peer.open(self.b.port)
            epoch = (await sub.subscribe(ch))["result"]["epoch"]
            await async_wait_until(lambda: pubsub_clients() == 1, T, "node B's subscription in Redis")
            disconnects = metric(self.b.port, scalelib.M_DISCONNECTS)
            resyncs = metric(self.b.port, M_RESYNCS, result="recovered")
            self.b.proc.send_signal(signal.SIGSTOP)
            try:
                # Publish on A until Redis drops B's subscription (what it cannot send B piles up in
                # B's output buffer, limited to 1 MB here), at most 1,500 publications.
                published = 0
                while pubsub_clients() == 1:
                    self.assertLess(published, 1500, "Redis never disconnected the stalled node")
                    published += 1
                    self.assertEqual(self.publish_http(self.a.port, ch, {"i": published, "pad": chunk}),
                                     (200, {"offset": published, "epoch": epoch}))
                self.assertIn(b"output buffer limits", b"".join(self.redis.lines))
            finally:
                self.b.proc.send_signal(signal.SIGCONT)
            # B finds its connection gone, reconnects and resyncs from the stream: its subscriber gets
            # every publication, in order, once, and no recovery_failed.
            await sub.wait_for(lambda: any(p.get("data", {}).get("i") == published for p in sub.pushes
                                           if isinstance(p.get("data"), dict)),
                               scalelib.RECONNECT_TIMEOUT, f"publication {published} on the stalled node")
            self.assertEqual(self.publish_http(self.a.port, ch, "end")[0], 200)
            await sub.wait_for(lambda: any(p.get("data") == "end" for p in sub.pushes), T, "the end marker")
            got = data_pushes(sub, ch)
            self.assertEqual([p["offset"] for p in got], list(range(1, published + 2)))
            self.assertEqual(recovery_failed_pushes(sub, ch), [])
            self.assertGreater(metric(self.b.port, scalelib.M_DISCONNECTS), disconnects)
            self.assertGreater(metric(self.b.port, M_RESYNCS, result="recovered"), resyncs)
            await sub.close()

        run(go())


class RedisDownAtStart(unittest.TestCase):
    def test_node_starts_without_redis_and_becomes_ready_when_it_comes_up(self):
        redis = Redis()  # a port chosen, nothing listening on it yet
        self.addCleanup(redis.close)
        a = node(redis.url).start()
        self.addCleanup(a.stop)

        self.assertEqual(readyz(a.port)[0], 503)
        status, body = readyz(a.port)
        self.assertTrue(body.startswith("redis unavailable: "), body)
        self.assertEqual(scalelib.chlib.http(a.port, "GET", "/healthz")[0], 200)
        self.assertEqual(metric(a.port, M_CONNECTED), 0)
        unavailable(self, *api(a.port, "POST", "/api/publish", {"channel": "c", "data": 1}, key=API_KEY))

        async def refused():
            p = await Peer.open(a.port)
            r = await p.subscribe("c")
            self.assertEqual(r["error"], {"code": 503, "message": "unavailable"}, r)
            r = await p.publish("c", 2)
            self.assertEqual(r["error"], {"code": 503, "message": "unavailable"}, r)
            await p.close()

        run(refused())
        # It keeps trying (with backoff) and says so.
        wait_until(lambda: any(e.get("event") == "redis_connect_failed" for e in log_events(a.stderr_text())),
                   scalelib.RECONNECT_TIMEOUT, "event=redis_connect_failed in the log")

        redis.start()
        wait_until(lambda: readyz(a.port) == (200, "ready"), scalelib.RECONNECT_TIMEOUT,
                   "/readyz 200 once Redis is up")
        self.assertEqual(metric(a.port, M_CONNECTED), 1)

        async def works():
            p = await Peer.open(a.port)
            r = await p.subscribe("c")
            self.assertEqual(r["result"]["offset"], 0, r)
            epoch = r["result"]["epoch"]
            status, body = api(a.port, "POST", "/api/publish", {"channel": "c", "data": 3}, key=API_KEY)
            self.assertEqual((status, body), (200, {"offset": 1, "epoch": epoch}))
            self.assertEqual(await p.wait_pushes(1, T), [{"channel": "c", "offset": 1, "epoch": epoch, "data": 3}])
            await p.close()

        run(works())


if __name__ == "__main__":
    scalelib.main()
