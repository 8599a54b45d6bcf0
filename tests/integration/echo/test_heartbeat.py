"""Server heartbeat: pings after heartbeat.ping_interval of peer silence; no answer within
heartbeat.pong_timeout drops the connection. Intervals are fractions of a second."""

import asyncio
import os
import sys
import time
import unittest

import websockets

import conduitd
from conduitd import EOF, OP_PING, OP_PONG, OP_TEXT, Conduitd, RawWS, run_node

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ops"))
import opslib  # noqa: E402  (strict /metrics scraping)

PING_INTERVAL = 0.2
PONG_TIMEOUT = 0.5  # leaves a loaded 2-core machine time to answer, still a fraction of a second


class Heartbeat(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Conduitd(mode="echo", sets={
            "heartbeat.ping_interval": "200ms",
            "heartbeat.pong_timeout": "500ms",
        }).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_silent_client_receives_ping(self):
        with RawWS(self.server.port) as c:
            start = time.monotonic()
            f = c.recv_frame(timeout=5)
            waited = time.monotonic() - start
            self.assertEqual(f.opcode, OP_PING, f"expected a ping, got {f}")
            self.assertFalse(f.masked)
            self.assertLessEqual(len(f.payload), 125)
            # Not before the interval: a coarse timer may be late, not early by much.
            self.assertGreaterEqual(waited, PING_INTERVAL * 0.5, f"ping after {waited:.3f}s")

    def test_client_that_never_answers_is_dropped(self):
        with RawWS(self.server.port) as c:
            start = time.monotonic()
            ping = c.recv_frame(timeout=5)
            self.assertEqual(ping.opcode, OP_PING, f"expected a ping first, got {ping}")
            ping_at = time.monotonic()
            # docs/errors.md "Pong timeout": the peer is presumed dead, so the connection is dropped
            # without a close frame (a close handshake with a dead peer would only wait close_timeout).
            frames = []
            while True:
                try:
                    f = c.recv_frame(timeout=5)
                except EOF:
                    break
                except TimeoutError:
                    self.fail(f"not dropped 5 s after an unanswered ping (frames since: {frames})")
                frames.append(f)
                self.assertEqual(f.opcode, OP_PING, f"only pings may precede the drop, got {f}")
            dropped_at = time.monotonic()
            self.assertGreaterEqual(dropped_at - ping_at, PONG_TIMEOUT * 0.5,
                                    f"dropped {dropped_at - ping_at:.3f}s after the ping: pong_timeout is {PONG_TIMEOUT}")
            self.assertLess(dropped_at - start, PING_INTERVAL + PONG_TIMEOUT + 3)

    def test_client_that_answers_pings_stays(self):
        with RawWS(self.server.port) as c:
            pings = 0
            end = time.monotonic() + 4 * (PING_INTERVAL + PONG_TIMEOUT)
            while time.monotonic() < end:
                try:
                    f = c.recv_frame(timeout=max(0.01, end - time.monotonic()))
                except TimeoutError:
                    break
                except EOF:
                    self.fail(f"dropped although every ping was answered (after {pings} pings)")
                self.assertEqual(f.opcode, OP_PING, f"unexpected frame {f}")
                pings += 1
                c.send_frame(OP_PONG, f.payload)
            self.assertGreaterEqual(pings, 2, "a silent client must be pinged repeatedly")
            c.send_frame(OP_TEXT, b"alive")
            self.assertEqual(c.recv_message()[1], b"alive")

    def test_python_websockets_auto_pong_keeps_connection(self):
        # websockets answers pings by itself; the server must accept those pongs as liveness. The
        # event waited for is the server's own count of pings sent: several pings, each answered
        # by websockets, and the connection is still open and echoing, with no pong timeout.
        before = opslib.scrape(self.server.port)
        pings_before = before.get("conduit_pings_sent_total")
        timeouts_before = before.get("conduit_pong_timeouts_total")

        async def go():
            async with websockets.connect(self.server.url, ping_interval=None, compression=None) as ws:
                await asyncio.to_thread(opslib.wait_metric, self.server.port, "conduit_pings_sent_total",
                                        lambda v: v >= pings_before + 3, 20.0)
                await asyncio.wait_for(ws.send("still"), 5)
                self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "still")
        asyncio.run(asyncio.wait_for(go(), 40))
        self.assertEqual(opslib.scrape(self.server.port).get("conduit_pong_timeouts_total"), timeouts_before)

    def test_node_ws_receives_ping_and_stays(self):
        out = run_node("node_peer.js", self.server.url, "heartbeat", timeout=60)
        self.assertIn("ok heartbeat", out)


class HeartbeatDefaults(unittest.TestCase):
    def test_no_ping_within_default_interval(self):
        # Control: with the default 25 s interval nobody is pinged after a second.
        with Conduitd(mode="echo") as server, RawWS(server.port) as c:
            with self.assertRaises(TimeoutError):
                f = c.recv_frame(timeout=1.0)
                raise AssertionError(f"unexpected frame with default heartbeat: {f}")


if __name__ == "__main__":
    conduitd.main()
