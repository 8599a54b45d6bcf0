"""conduitd with server.threads=2: connections spread over two loops, each echo intact and in order.
Carries the ctest label mt, so it also runs under ThreadSanitizer."""

import asyncio
import os
import unittest

import websockets

import conduitd
from conduitd import OP_TEXT, Conduitd, RawWS


class TwoThreads(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Conduitd(mode="echo", sets={
            "server.threads": 2,
            # Short interval so every loop's heartbeat shows within the test; a long pong
            # timeout so that 32 busy asyncio clients on a loaded machine (or TSan) answer in time.
            "heartbeat.ping_interval": "200ms",
            "heartbeat.pong_timeout": "5s",
        }).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_many_connections_echo_in_order(self):
        async def one(i):
            async with websockets.connect(self.server.url, ping_interval=None, compression=None,
                                          open_timeout=20, close_timeout=20) as ws:
                async def sender():
                    for j in range(100):
                        await ws.send(f"{i}:{j}" if j % 2 else f"{i}:{j}".encode())
                task = asyncio.ensure_future(sender())
                for j in range(100):
                    got = await asyncio.wait_for(ws.recv(), 20)
                    self.assertEqual(got, f"{i}:{j}" if j % 2 else f"{i}:{j}".encode())
                await task
                big = os.urandom(50000)
                await ws.send(big)
                self.assertEqual(await asyncio.wait_for(ws.recv(), 20), big)

        async def go():
            await asyncio.gather(*(one(i) for i in range(32)))
        asyncio.run(asyncio.wait_for(go(), 90))

    def test_heartbeat_on_every_loop(self):
        # Connections land on both loops; each must be pinged by its own loop's timer.
        conns = [RawWS(self.server.port) for _ in range(8)]
        try:
            for c in conns:
                f = c.recv_frame(timeout=10)
                self.assertEqual(f.opcode, 0x9, f"expected a ping, got {f}")
            for c in conns:
                c.send_frame(OP_TEXT, b"x")
                self.assertEqual(c.recv_message()[1], b"x")
        finally:
            for c in conns:
                c.close()

    def test_churn(self):
        # Open/close many short connections across both loops while others stay busy.
        async def short(i):
            async with websockets.connect(self.server.url, ping_interval=None, compression=None,
                                          open_timeout=20, close_timeout=20) as ws:
                await ws.send(str(i))
                self.assertEqual(await asyncio.wait_for(ws.recv(), 20), str(i))

        async def go():
            for batch in range(5):
                await asyncio.gather(*(short(batch * 20 + i) for i in range(20)))
        asyncio.run(asyncio.wait_for(go(), 90))


if __name__ == "__main__":
    conduitd.main()
