"""server.close_timeout and the lingering close (docs/errors.md "Close timeout", docs/protocol.md).

After a close frame of ours the server waits at most close_timeout for the peer's close frame or FIN:
- after a normal close that the peer never answers (here: a slow consumer's 1008 that the peer never
  reads), the connection ends as 1006 with our reason and errors_total{kind="close_timeout"} counts it;
- after a protocol error (1002) the server has already shut down its side and only lingers, reading
  until the peer closes, so that unread input does not turn the close into a reset. When the peer never
  closes, the connection ends after close_timeout with the code of the error (1002), counted as a
  protocol error and not as a close timeout.
"""

import asyncio
import time
import unittest

import websockets

import opslib
from opslib import OP_TEXT, Conduitd, RawWS, log_events, scrape, stalled_client, wait_metric

CLOSE_TIMEOUT_S = 0.5


class CloseTimeout(unittest.TestCase):
    def test_protocol_error_then_silent_peer_lingers_until_close_timeout(self):
        sets = {"server.close_timeout": "500ms", "heartbeat.ping_interval": "0s"}
        with Conduitd(mode="echo", sets=sets) as server:
            with RawWS(server.port) as c:
                c.send_frame(OP_TEXT, b"unmasked", mask=False)
                c.expect_close(1002, reply=False)
                closed_at = time.monotonic()
                # Neither a close frame nor a FIN from us: the server lingers, then drops us.
                wait_metric(server.port, "conduit_connections_active", lambda v: v == 0)
                lingered = time.monotonic() - closed_at
                self.assertGreaterEqual(lingered, CLOSE_TIMEOUT_S * 0.8,
                                        f"dropped {lingered:.3f}s after the 1002: close_timeout is 500ms")
                m = scrape(server.port)
                self.assertEqual(m.get("conduit_errors_total", kind="protocol_error"), 1)
                self.assertEqual(m.get("conduit_errors_total", kind="close_timeout"), 0)
                self.assertEqual(m.get("conduit_closes_total", code="1002"), 1)
                self.assertEqual(m.get("conduit_closes_total", code="1006"), 0)
            text = server.stderr_text()
        closes = [e for e in log_events(text) if e.get("event") == "close"]
        self.assertEqual(len(closes), 1, text)
        self.assertEqual(closes[0]["code"], "1002", closes[0])

    def test_unread_slow_consumer_close_times_out_as_1006(self):
        sets = {"server.close_timeout": "500ms", "heartbeat.ping_interval": "0s",
                "limits.send_queue_bytes": "64KiB", "limits.slow_consumer": "close"}
        with Conduitd(mode="broadcast", sets=sets) as server:
            stalled = stalled_client(server.port, rcvbuf=4096)
            try:
                asyncio.run(asyncio.wait_for(self.publish_until_slow_consumer(server.port), 120))
                # Its 1008 sits behind bytes it never reads: after close_timeout the server gives up.
                wait_metric(server.port, "conduit_errors_total", lambda v: v == 1, kind="close_timeout")
                wait_metric(server.port, "conduit_connections_active", lambda v: v == 0)
                m = scrape(server.port)
                self.assertEqual(m.get("conduit_closes_total", code="1006"), 1)
                self.assertEqual(m.get("conduit_closes_total", code="1008"), 0)
            finally:
                stalled.close()
            text = server.stderr_text()
        closes = [e for e in log_events(text) if e.get("event") == "close" and e.get("code") == "1006"]
        self.assertEqual(len(closes), 1, text)
        self.assertEqual(closes[0]["reason"], "slow consumer", closes[0])

    @staticmethod
    async def publish_until_slow_consumer(port):
        """Broadcasts 16 KiB messages (reading our own copies back) until the stalled peer is cut off."""
        async with websockets.connect(f"ws://127.0.0.1:{port}/", compression=None, max_size=None,
                                      ping_interval=None) as ws:
            async def drain():
                async for _ in ws:
                    pass
            reader = asyncio.create_task(drain())
            payload = b"x" * 16384
            for i in range(4000):  # bounded: 64 MiB, far beyond socket buffers plus the 64 KiB queue
                await ws.send(payload)
                if i % 16 == 15:
                    m = await asyncio.to_thread(scrape, port)
                    if m.get("conduit_errors_total", kind="slow_consumer") >= 1:
                        break
            else:
                raise AssertionError("the stalled peer was never cut off as a slow consumer")
            await ws.close()
            reader.cancel()


if __name__ == "__main__":
    opslib.main()
