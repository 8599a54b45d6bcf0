"""conduitd --mode relay: a message goes to every other session connected to the same path (the query
is ignored), in order per sender, never back to its sender and never to another path. Python websockets
and Node ws peers in the same room."""

import asyncio
import json
import unittest

import websockets

import opslib
from opslib import Conduitd, run_node


class Relay(unittest.TestCase):
    def setUp(self):
        self.server = Conduitd(mode="relay").start()

    def tearDown(self):
        self.server.stop()

    def test_same_path_only_not_back_to_sender_in_order(self):
        base = f"ws://127.0.0.1:{self.server.port}"

        async def go():
            a = await websockets.connect(base + "/room/1?user=a")
            b = await websockets.connect(base + "/room/1?user=b")
            c = await websockets.connect(base + "/room/1")
            other = await websockets.connect(base + "/room/2")
            other2 = await websockets.connect(base + "/room/2")
            n = 200
            for i in range(n):
                await a.send(f"a{i}")
            await b.send(b"\x00binary from b")
            got_b = [await asyncio.wait_for(b.recv(), 10) for _ in range(n)]
            got_c = [await asyncio.wait_for(c.recv(), 10) for _ in range(n + 1)]
            got_a = await asyncio.wait_for(a.recv(), 10)
            self.assertEqual(got_b, [f"a{i}" for i in range(n)])
            # In order per sender; b's message may land anywhere among a's.
            self.assertEqual([m for m in got_c if isinstance(m, str)], [f"a{i}" for i in range(n)])
            self.assertEqual([m for m in got_c if isinstance(m, bytes)], [b"\x00binary from b"])  # binary stays binary
            self.assertEqual(got_a, b"\x00binary from b")              # a got b's, none of its own
            # The other room heard nothing of room 1: a marker sent in room 2 after all of room 1's
            # traffic was delivered is the first thing room 2 receives (one loop, one queue per
            # connection: a stray relay would have been queued before it).
            await other2.send("marker in room 2")
            self.assertEqual(await asyncio.wait_for(other.recv(), 10), "marker in room 2")
            # Room 2's message reaches room 2 only, never its sender nor room 1: the next thing a
            # receives is b's marker, the next thing `other` receives is other2's second marker.
            await other.send("room 2 only")
            self.assertEqual(await asyncio.wait_for(other2.recv(), 10), "room 2 only")
            await b.send("marker in room 1")
            self.assertEqual(await asyncio.wait_for(a.recv(), 10), "marker in room 1")
            await other2.send("second marker in room 2")
            self.assertEqual(await asyncio.wait_for(other.recv(), 10), "second marker in room 2")
            self.assertEqual(await asyncio.wait_for(c.recv(), 10), "marker in room 1")
            # A session that left is no longer relayed to; the others still are.
            await c.close()
            await a.send("after c left")
            self.assertEqual(await asyncio.wait_for(b.recv(), 10), "after c left")
            for ws in (a, b, other, other2):
                await ws.close()

        asyncio.run(asyncio.wait_for(go(), 60))

    def test_any_path_is_a_room_and_paths_that_differ_never_share_one(self):
        base = f"ws://127.0.0.1:{self.server.port}"
        # Characters a channel name cannot hold, and paths that an escaping scheme could confuse
        # ("=" is the escape character of the path-to-channel mapping).
        paths = ["/r=1", "/r%3D1", "/r=3D1", "/caf%C3%A9~+!", "/" + "x" * 3000]

        async def go():
            rooms = {}
            for p in paths:
                rooms[p] = [await websockets.connect(base + p), await websockets.connect(base + p)]
            for p in paths:
                await rooms[p][0].send("hello " + p[:20])
            for p in paths:
                self.assertEqual(await asyncio.wait_for(rooms[p][1].recv(), 10), "hello " + p[:20])
            # Nothing crossed rooms: in each room the next message is the room's own marker.
            for p in paths:
                await rooms[p][1].send("marker " + p[:20])
            for p in paths:
                self.assertEqual(await asyncio.wait_for(rooms[p][0].recv(), 10), "marker " + p[:20])
            for pair in rooms.values():
                for ws in pair:
                    await ws.close()

        asyncio.run(asyncio.wait_for(go(), 60))

    def test_node_and_python_peers_share_a_room(self):
        url = f"ws://127.0.0.1:{self.server.port}/chat"
        async def go():
            py = await websockets.connect(url)
            node = asyncio.create_task(asyncio.to_thread(run_node, "node_relay_peer.js", url))
            # Wait until Node has joined: the room then holds two sessions and our send reaches it.
            active = 0
            for _ in range(600):  # bounded: 30 s, for a slow Node start on a loaded machine
                await asyncio.sleep(0.05)
                active = await asyncio.to_thread(lambda: opslib.scrape(self.server.port).get("conduit_connections_active"))
                if active == 2 or node.done():
                    break
            self.assertEqual(active, 2, "the Node peer did not join the room")
            await py.send("hello node")
            reply = await asyncio.wait_for(py.recv(), 20)
            self.assertEqual(reply, "ack:hello node")
            out = await node
            self.assertIn(json.dumps({"got": "hello node"}, separators=(",", ":")), out)
            await py.close()

        asyncio.run(asyncio.wait_for(go(), 90))


class RelayThreads(unittest.TestCase):
    """Relay with server.threads = 3: a room's sessions sit on different event loops, so every
    relayed message crosses threads (labelled mt: ThreadSanitizer runs it)."""

    PEERS = 9
    MESSAGES = 50

    def test_room_spread_over_loops(self):
        with Conduitd(mode="relay", sets={"server.threads": 3, "heartbeat.ping_interval": "0s"}) as server:
            url = f"ws://127.0.0.1:{server.port}/room"

            async def go():
                peers = [await websockets.connect(url, compression=None, open_timeout=20) for _ in range(self.PEERS)]
                # Every peer joined before anyone sends: all of them hear every message from the others.
                await asyncio.to_thread(opslib.wait_metric, server.port, "conduit_connections_active",
                                        lambda v: v == self.PEERS)

                async def send_all(i, ws):
                    for k in range(self.MESSAGES):
                        await ws.send(f"{i}:{k}")

                async def receive_all(i, ws):
                    got = [await asyncio.wait_for(ws.recv(), 30) for _ in range((self.PEERS - 1) * self.MESSAGES)]
                    per_sender = {}
                    for m in got:
                        sender, k = m.split(":")
                        per_sender.setdefault(int(sender), []).append(int(k))
                    self.assertNotIn(i, per_sender, f"peer {i} got its own messages back")
                    self.assertEqual(sorted(per_sender), [j for j in range(self.PEERS) if j != i])
                    for sender, ks in per_sender.items():
                        self.assertEqual(ks, list(range(self.MESSAGES)), f"peer {i}: from {sender} out of order")

                await asyncio.gather(*(send_all(i, ws) for i, ws in enumerate(peers)),
                                     *(receive_all(i, ws) for i, ws in enumerate(peers)))
                for ws in peers:
                    await ws.close()

            asyncio.run(asyncio.wait_for(go(), 120))


if __name__ == "__main__":
    opslib.main()
