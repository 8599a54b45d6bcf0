"""conduitd --mode echo driven by an independent client: Python websockets (Debian's 10.4, asyncio API)."""

import asyncio
import os
import unittest

import websockets

import conduitd
from conduitd import Conduitd

T = conduitd.IO_TIMEOUT


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def connect(url, **kw):
    # No client pings and no compression unless a test asks: each test sees only what it provokes.
    kw.setdefault("ping_interval", None)
    kw.setdefault("compression", None)
    kw.setdefault("open_timeout", T)
    kw.setdefault("close_timeout", T)
    return websockets.connect(url, **kw)


async def expect_close_after_send(test, ws, msg, code):
    """Sends msg and expects the server to close with code (seen in its close frame)."""
    try:
        await asyncio.wait_for(ws.send(msg), T)
        await asyncio.wait_for(ws.recv(), T)
    except websockets.ConnectionClosed as e:
        test.assertIsNotNone(e.rcvd, "server must send a close frame, not just drop TCP")
        test.assertEqual(e.rcvd.code, code, f"close reason: {e.rcvd.reason!r}")
        return
    test.fail(f"expected close {code}, the server answered with a message")


async def echo_once(ws, msg):
    await asyncio.wait_for(ws.send(msg), T)
    return await asyncio.wait_for(ws.recv(), T)


class DefaultLimits(unittest.TestCase):
    """One conduitd with its defaults (max message 65536 bytes)."""

    @classmethod
    def setUpClass(cls):
        cls.server = Conduitd(mode="echo").start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_text_echoed_as_text(self):
        async def go():
            async with connect(self.server.url) as ws:
                for msg in ["hello", "", "héllo wörld ✓ 𝄞", "x" * 125, "y" * 126, "z" * 65535]:
                    got = await echo_once(ws, msg)
                    self.assertIsInstance(got, str, "text must come back as text")
                    self.assertEqual(got, msg)
        run(go())

    def test_binary_echoed_as_binary(self):
        async def go():
            async with connect(self.server.url) as ws:
                for msg in [b"\x00\x01\x02\xff", b"", os.urandom(126), os.urandom(4096)]:
                    got = await echo_once(ws, msg)
                    self.assertIsInstance(got, bytes, "binary must come back as binary")
                    self.assertEqual(got, msg)
        run(go())

    def test_fragmented_text_echoed_as_one_message(self):
        async def go():
            async with connect(self.server.url) as ws:
                parts = ["frag", "mented ", "mess", "age ✓"]
                await asyncio.wait_for(ws.send(parts), T)  # an iterable is sent as fragments
                got = await asyncio.wait_for(ws.recv(), T)
                self.assertEqual(got, "".join(parts))
                # the next message is separate: nothing was left over from the fragments
                self.assertEqual(await echo_once(ws, "after"), "after")
        run(go())

    def test_fragmented_binary_echoed_as_one_message(self):
        async def go():
            async with connect(self.server.url) as ws:
                parts = [os.urandom(1000) for _ in range(7)]
                await asyncio.wait_for(ws.send(parts), T)
                got = await asyncio.wait_for(ws.recv(), T)
                self.assertIsInstance(got, bytes)
                self.assertEqual(got, b"".join(parts))
        run(go())

    def test_60k_message_under_default_limit(self):
        async def go():
            async with connect(self.server.url) as ws:
                msg = os.urandom(60 * 1024)
                self.assertEqual(await echo_once(ws, msg), msg)
                text = "é" * (30 * 1024)  # 60 KiB of 2-byte UTF-8
                self.assertEqual(await echo_once(ws, text), text)
        run(go())

    def test_message_at_exact_limit_passes_and_one_byte_more_is_1009(self):
        async def go():
            async with connect(self.server.url) as ws:
                msg = os.urandom(65536)
                self.assertEqual(await echo_once(ws, msg), msg)
                await expect_close_after_send(self, ws, os.urandom(65537), 1009)
        run(go())

    def test_many_messages_in_order(self):
        async def go():
            async with connect(self.server.url) as ws:
                n = 500
                async def sender():
                    for i in range(n):
                        await ws.send(f"m{i}")
                task = asyncio.ensure_future(sender())
                for i in range(n):
                    self.assertEqual(await asyncio.wait_for(ws.recv(), T), f"m{i}")
                await task
        run(go())

    def test_ping_gets_pong_with_same_payload(self):
        async def go():
            async with connect(self.server.url) as ws:
                for payload in [b"", b"abc", os.urandom(125)]:
                    waiter = await ws.ping(payload)  # resolves only on a pong carrying this payload
                    await asyncio.wait_for(waiter, T)
        run(go())

    def test_close_handshake_1000(self):
        async def go():
            ws = await connect(self.server.url)
            await ws.send("bye")
            self.assertEqual(await asyncio.wait_for(ws.recv(), T), "bye")
            await asyncio.wait_for(ws.close(1000, "done"), T)
            self.assertEqual(ws.close_code, 1000)  # the code in the server's answering close frame
            await asyncio.wait_for(ws.wait_closed(), T)
        run(go())

    def test_concurrent_connections_are_independent(self):
        async def one(i):
            async with connect(self.server.url) as ws:
                for j in range(20):
                    msg = f"{i}:{j}"
                    self.assertEqual(await echo_once(ws, msg), msg)
        async def go():
            await asyncio.gather(*(one(i) for i in range(20)))
        run(go())


class RaisedLimit(unittest.TestCase):
    """limits.max_message_bytes raised to 2 MiB: 1 MiB messages are echoed whole."""

    @classmethod
    def setUpClass(cls):
        cls.server = Conduitd(mode="echo", sets={
            "limits.max_message_bytes": 2 * 1024 * 1024,
            # the echo of a 1 MiB message must fit in the outbound queue
            "limits.send_queue_bytes": 8 * 1024 * 1024,
        }).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_1mib_binary_and_text(self):
        async def go():
            async with connect(self.server.url, max_size=None) as ws:
                msg = os.urandom(1024 * 1024)
                self.assertEqual(await echo_once(ws, msg), msg)
                text = "ab✓" * (1024 * 1024 // 5)
                self.assertEqual(await echo_once(ws, text), text)
        run(go())

    def test_1mib_fragmented(self):
        async def go():
            async with connect(self.server.url, max_size=None) as ws:
                parts = [os.urandom(64 * 1024) for _ in range(16)]
                await asyncio.wait_for(ws.send(parts), T)
                self.assertEqual(await asyncio.wait_for(ws.recv(), T), b"".join(parts))
        run(go())

    def test_above_raised_limit_is_1009(self):
        async def go():
            async with connect(self.server.url, max_size=None) as ws:
                await expect_close_after_send(self, ws, os.urandom(2 * 1024 * 1024 + 1), 1009)
        run(go())


class DefaultLimitRejects1MiB(unittest.TestCase):
    def test_1mib_with_default_limit_is_1009(self):
        async def go():
            with Conduitd(mode="echo") as server:
                async with connect(server.url, max_size=None) as ws:
                    await expect_close_after_send(self, ws, os.urandom(1024 * 1024), 1009)
        run(go())


if __name__ == "__main__":
    conduitd.main()
