"""Broadcast fan-out correctness (not timed).

conduitd --mode broadcast, 1000 subscribers and one publisher that keeps W=32 messages in flight (it sends
message i once every subscriber still reading has received message i-W), 64-byte messages: every subscriber
receives every message, in order. Then the same with 10 subscribers that stop reading (tiny receive
buffer, reading paused): those 10 are closed with 1008 "slow consumer" after an in-order prefix, while
the 990 others still receive everything."""

import asyncio
import os
import time
import unittest

import opslib
from opslib import OP_BINARY, Conduitd, FastWS, scrape

SUBSCRIBERS = 1000
WINDOW = 32
SIZE = 64
THREADS = int(os.environ.get("CONDUIT_FANOUT_THREADS", "1"))


def payload(seq, size=SIZE):
    return seq.to_bytes(8, "big") + bytes([seq & 0xFF]) * (size - 8)


async def run_fanout(port, messages, stall=0, stall_after=100, timeout=150, sizes=None):
    """Returns (failures, received per subscriber, close info of stalled subscribers, seconds)."""
    active = SUBSCRIBERS - stall
    count = [0] * messages          # subscribers still reading that have received message seq
    received = [0] * SUBSCRIBERS
    failures = []
    progress = asyncio.Event()
    stalled_done = asyncio.get_running_loop().create_future()
    stalled_closes = {}

    def on_data(ws, op, data):
        i = ws.index
        seq = int.from_bytes(data[:8], "big")
        size = sizes(seq) if sizes else SIZE
        if op != OP_BINARY or seq != received[i] or len(data) != size or data[size - 1] != (seq & 0xFF):
            if len(failures) < 10:
                failures.append(f"subscriber {i}: expected {received[i]}, got seq {seq} ({len(data)} bytes)")
            progress.set()
            return
        received[i] += 1
        if i < active:
            count[seq] += 1
            progress.set()
        elif received[i] == stall_after:
            ws.transport.pause_reading()  # stop reading: the kernel buffers fill, then the server queue

    def on_close(ws, code, reason):
        i = ws.index
        if i < active:
            if received[i] < messages:
                failures.append(f"subscriber {i} closed ({code} {reason}) after {received[i]} messages")
                progress.set()
        else:
            stalled_closes[i] = (code, reason, received[i])
            if len(stalled_closes) == stall and not stalled_done.done():
                stalled_done.set_result(None)

    subs = []
    for i in range(SUBSCRIBERS):
        kw = {"rcvbuf": 4096} if i >= active else {}
        ws = await FastWS.connect(port, on_data=on_data, on_close=on_close, **kw)
        ws.index = i
        subs.append(ws)
    pub = await FastWS.connect(port)  # receives its own broadcasts too (and reads them)
    start = time.monotonic()

    async def publish():
        for seq in range(messages):
            while not failures and seq >= WINDOW and count[seq - WINDOW] < active:
                progress.clear()
                await progress.wait()
            if failures:
                return
            pub.send(OP_BINARY, payload(seq, sizes(seq) if sizes else SIZE))
        while not failures and count[messages - 1] < active:
            progress.clear()
            await progress.wait()

    try:
        await asyncio.wait_for(publish(), timeout)
    except asyncio.TimeoutError:
        failures.append(f"timed out; slowest active subscriber at {min(received[:active])} of {messages}")
    took = time.monotonic() - start
    if stall and not failures:
        for ws in subs[active:]:
            ws.transport.resume_reading()
        try:
            await asyncio.wait_for(stalled_done, 30)
        except asyncio.TimeoutError:
            failures.append(f"only {len(stalled_closes)} of {stall} stalled subscribers saw a close")
    for ws in subs + [pub]:
        ws.send_close(1000)
    for ws in subs + [pub]:
        ws.abort()
    return failures, received, stalled_closes, took


class Fanout(unittest.TestCase):
    def test_1000_subscribers_window_32_all_in_order(self):
        messages = 2000
        with Conduitd(mode="broadcast", sets={"server.threads": THREADS, "heartbeat.ping_interval": "0s",
                                              "log.level": "warn"}) as server:
            failures, received, _, took = asyncio.run(run_fanout(server.port, messages))
            self.assertEqual(failures, [])
            self.assertEqual(received, [messages] * SUBSCRIBERS)
            m = scrape(server.port)
            self.assertEqual(m.get("conduit_send_queue_overflows_total"), 0)
            # Every message went to every subscriber and to the publisher.
            self.assertGreaterEqual(m.get("conduit_messages_sent_total"), messages * (SUBSCRIBERS + 1))
            print(f"\n  threads={THREADS}: {messages} x {SIZE} B to {SUBSCRIBERS} subscribers, W={WINDOW}: "
                  f"{took:.1f}s ({messages * SUBSCRIBERS / took:,.0f} deliveries/s through Python peers)")

    def test_10_subscribers_stop_reading(self):
        # The same run, with 10 subscribers that stop reading after 100 messages. Linux autotunes the
        # server's socket send buffer up to net.ipv4.tcp_wmem's max (4 MiB here), so a stalled subscriber
        # absorbs ~4 MiB in the kernel before the server's queue grows at all: with 64-byte messages that
        # would take ~65k messages (65M deliveries), more than a bounded test can drive from Python. So
        # the first SMALL messages are 64 bytes, then LARGE messages of 16 KiB (8 MiB) push the stalled
        # peers past kernel buffers + limits.send_queue_bytes; W=32 throughout.
        small, large, stall = 500, 512, 10
        messages = small + large
        sizes = lambda seq: SIZE if seq < small else 16 * 1024  # noqa: E731
        sets = {"server.threads": THREADS, "heartbeat.ping_interval": "0s", "log.level": "warn",
                # W=32 in-flight 16 KiB messages (512 KiB) fit in a reader's queue: only stalled peers overflow.
                "limits.send_queue_bytes": "1MiB", "server.close_timeout": "10m"}
        with Conduitd(mode="broadcast", sets=sets) as server:
            failures, received, closes, took = asyncio.run(
                run_fanout(server.port, messages, stall=stall, sizes=sizes))
            self.assertEqual(failures, [])
            active = SUBSCRIBERS - stall
            self.assertEqual(received[:active], [messages] * active)
            self.assertEqual(len(closes), stall)
            for i, (code, reason, n) in closes.items():
                self.assertEqual((code, reason), (1008, "slow consumer"), f"stalled subscriber {i}")
                self.assertLess(n, messages, f"stalled subscriber {i} got everything: it never overflowed")
                self.assertGreaterEqual(n, 100)
            m = scrape(server.port)
            self.assertEqual(m.get("conduit_errors_total", kind="slow_consumer"), stall)
            self.assertGreater(m.get("conduit_send_queue_overflows_total"), 0)
            print(f"\n  threads={THREADS}: {stall} stalled subscribers closed 1008 after "
                  f"{sorted(c[2] for c in closes.values())} messages; {active} got all {messages}")


if __name__ == "__main__":
    opslib.main()
