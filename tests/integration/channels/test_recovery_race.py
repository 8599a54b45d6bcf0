"""Loss-free recovery under concurrent publishing (docs/protocol.md, "Recovery").

Several publisher connections publish 1,000 publications into one channel while 50 subscriber
clients drop their connection at random (seeded) moments and re-subscribe with `since` = the last
offset they saw. Every client's observed offsets (recovered + live, across all its connections)
must be exactly 1..N, each with the data its publisher was told was given that offset: no gap, no
duplicate, nothing reordered."""

import asyncio
import json
import os
import random
import time
import unittest

import websockets

import chlib
from chlib import T, connect, pubsub, run

CHANNEL = "race:one"
PUBLISHERS = 4
PUBLICATIONS = 1000
SUBSCRIBERS = 50
SEED = int(os.environ.get("CONDUIT_RACE_SEED", "20261204"))
# Publishers stay at most this many offsets ahead of the median subscriber, so that drops and
# re-subscribes happen while publications are still being published (a Python subscriber is much
# slower than the server: unpaced, publishing would end before most drops).
AHEAD = 40


class Subscriber:
    def __init__(self, port, index, rng, progressed):
        self.port, self.index = port, index
        self.progressed = progressed   # set on every publication seen: wakes paced publishers
        self.seen = []          # (offset, data) in the order observed
        self.epoch = None
        self.drops = 0
        self.recoveries = []    # (since offset, recovered, number of publications)
        # Drop when the stream reaches random offsets (1 to 4 times), while publishers are still going.
        self.drop_at = sorted(rng.sample(range(1, PUBLICATIONS - 50), rng.randint(1, 4)))
        self.during_publishing = 0   # re-subscribes made while publications were still being published
        self.done = asyncio.Event()

    async def session(self, subscribed, target, publishing):
        async with connect(self.port) as ws:
            rid = 1
            req = {"channel": CHANNEL}
            if self.seen or self.epoch is not None:
                req["since"] = {"offset": self.seen[-1][0] if self.seen else 0, "epoch": self.epoch}
            await ws.send(json.dumps({"id": rid, "subscribe": req}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), T))
            if reply.get("id") != rid or "result" not in reply:
                raise AssertionError(f"subscriber {self.index}: subscribe refused: {reply}")
            res = reply["result"]
            if "since" in req:
                if res.get("recovered") is not True:
                    raise AssertionError(f"subscriber {self.index}: recovery from {req['since']} failed: {reply}")
                if res["epoch"] != self.epoch:
                    raise AssertionError(f"subscriber {self.index}: epoch changed: {reply}")
                self.recoveries.append((req["since"]["offset"], True, len(res["publications"])))
                if publishing.is_set():
                    self.during_publishing += 1
                for p in res["publications"]:
                    self.seen.append((p["offset"], p["data"]))
                self.progressed.set()
            else:
                self.epoch = res["epoch"]
            subscribed.set()
            while not (self.seen and self.seen[-1][0] >= target[0] > 0):
                if self.drop_at and self.seen and self.seen[-1][0] >= self.drop_at[0]:
                    while self.drop_at and self.seen[-1][0] >= self.drop_at[0]:
                        self.drop_at.pop(0)
                    self.drops += 1
                    ws.transport.abort()   # vanish without a close handshake, mid-stream
                    return False
                msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if "push" not in msg:
                    raise AssertionError(f"subscriber {self.index}: unexpected frame {msg}")
                p = msg["push"]
                if p["channel"] != CHANNEL or p["epoch"] != self.epoch:
                    raise AssertionError(f"subscriber {self.index}: foreign push {msg}")
                self.seen.append((p["offset"], p["data"]))
                self.progressed.set()
            return True

    async def run(self, subscribed, target, publishing):
        while True:
            try:
                if await self.session(subscribed, target, publishing):
                    return
            except (websockets.ConnectionClosed, ConnectionError) as e:
                raise AssertionError(f"subscriber {self.index}: connection lost unexpectedly: {e!r}")


class RecoveryRace(unittest.TestCase):
    def test_1000_publications_50_dropping_subscribers(self):
        # History large enough that no drop outlives it: a failure here is a recovery bug, not eviction.
        # Several event loops: publishers and re-subscribers sit on different threads, so a publish can
        # really run while a subscribe reads history and joins (on one loop they would take turns).
        with pubsub(sets={"channels.history_size": 5000, "server.threads": 4}) as srv:
            async def go():
                rng = random.Random(SEED)
                progressed = asyncio.Event()
                subs = [Subscriber(srv.port, i, rng, progressed) for i in range(SUBSCRIBERS)]
                issued = [0]   # publish requests sent, all publishers together

                async def pace():
                    while True:
                        seen = sorted(s.seen[-1][0] if s.seen else 0 for s in subs)
                        if issued[0] - seen[len(seen) // 2] < AHEAD:
                            return
                        progressed.clear()
                        try:
                            await asyncio.wait_for(progressed.wait(), 30)
                        except asyncio.TimeoutError:
                            now_at = sorted(s.seen[-1][0] if s.seen else 0 for s in subs)
                            raise AssertionError(f"publishers paced: no subscriber progress in 30 s; "
                                                 f"issued {issued[0]}, subscribers at {now_at}")
                target = [PUBLICATIONS]   # a fresh channel: offsets 1..PUBLICATIONS
                ready = [asyncio.Event() for _ in subs]
                publishing = asyncio.Event()
                tasks = [asyncio.ensure_future(s.run(e, target, publishing)) for s, e in zip(subs, ready)]
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 60)

                published = {}   # offset → data, from the publish replies

                async def publisher(k):
                    async with connect(srv.port, subprotocol=False) as ws:
                        n = PUBLICATIONS // PUBLISHERS
                        window = 1   # one publish in flight per connection: publishing spans the drops
                        sent = 0
                        answered = 0
                        while answered < n:
                            while sent < n and sent - answered < window:
                                await pace()
                                sent += 1
                                issued[0] += 1
                                await ws.send(json.dumps({"id": sent, "publish": {
                                    "channel": CHANNEL, "data": {"p": k, "i": sent}}}))
                            r = json.loads(await asyncio.wait_for(ws.recv(), 30))
                            if "result" not in r:
                                raise AssertionError(f"publisher {k}: {r}")
                            published[r["result"]["offset"]] = {"p": k, "i": r["id"]}
                            answered += 1
                            # Yield between windows so the subscribers' drops land among publications.
                            await asyncio.sleep(0)

                t0 = time.monotonic()
                publishing.set()
                await asyncio.wait_for(asyncio.gather(*(publisher(k) for k in range(PUBLISHERS))), 120)
                publishing.clear()
                self.assertEqual(sorted(published), list(range(1, PUBLICATIONS + 1)))
                await asyncio.wait_for(asyncio.gather(*tasks), 120)
                elapsed = time.monotonic() - t0

                failures = []
                for s in subs:
                    offsets = [o for o, _ in s.seen]
                    if offsets != list(range(1, PUBLICATIONS + 1)):
                        dup = len(offsets) - len(set(offsets))
                        missing = sorted(set(range(1, PUBLICATIONS + 1)) - set(offsets))[:10]
                        first_bad = next((i for i, o in enumerate(offsets) if o != i + 1), None)
                        failures.append(f"subscriber {s.index}: {len(offsets)} offsets, {dup} duplicates, "
                                        f"missing {missing}, first out of place at index {first_bad} "
                                        f"({offsets[max(0, (first_bad or 0) - 3):(first_bad or 0) + 3]}); "
                                        f"recoveries {s.recoveries}")
                        continue
                    wrong = [o for o, d in s.seen if d != published[o]]
                    if wrong:
                        failures.append(f"subscriber {s.index}: wrong data at offsets {wrong[:10]}")
                self.assertEqual(failures, [], "\n".join(failures))
                drops = sum(s.drops for s in subs)
                recovered_nonempty = sum(1 for s in subs for r in s.recoveries if r[2] > 0)
                during = sum(s.during_publishing for s in subs)
                print(f"seed {SEED}: {drops} drops, {during} re-subscribes while publishing, "
                      f"{recovered_nonempty} recoveries with missed publications, {elapsed:.1f}s")
                # The scenario really exercised recovery under concurrent publishing: every subscriber
                # dropped at least once, and most re-subscribes raced live publications.
                self.assertGreaterEqual(drops, SUBSCRIBERS)
                self.assertGreater(during, drops // 2)
                self.assertGreater(recovered_nonempty, 0)
            run(go(), timeout=300)


if __name__ == "__main__":
    chlib.main()
