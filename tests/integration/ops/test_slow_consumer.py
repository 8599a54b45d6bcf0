"""Slow consumers: broadcast with peers that never read, both policies, and echo backpressure.

Broadcast, close policy: 200 connections, 20 of which never read (tiny SO_RCVBUF, never recv). A publisher
(one of the 180 readers) sends M messages of S bytes keeping at most W unread by the slowest reader, so a
reader's server-side queue never holds more than W*S < limits.send_queue_bytes and a reader can only lose a
message through a server bug. The 180 readers must get every message in order; the 20 must be closed with
1008 "slow consumer" (seen when they finally read, after an in-order prefix); the overflow counter moves; and
the server's RSS stays under an explicit bound far below what keeping the non-readers' backlog would cost.
"""

import asyncio
import select
import struct
import threading
import time
import unittest

import opslib
from opslib import (OP_BINARY, AsyncWS, ClosedBy, Conduitd, RawWS, close_payload, read_all_frames, rss_kib,
                    scrape, stalled_client)

KIB = 1024
MIB = 1024 * 1024
QUEUE_CAP = 256 * KIB


class RssSampler:
    """Samples a process's VmRSS every 20 ms in a thread; keeps the maximum."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (OSError, AssertionError):
                return
            self._stop.wait(0.02)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)
        self.peak = max(self.peak, rss_kib(self.pid))
        return False


def message(seq, size):
    return struct.pack("!Q", seq) + bytes([seq & 0xFF]) * (size - 8)


async def fan_out(port, readers, messages, size, window, timeout):
    """Connects `readers` clients (the first publishes), publishes keeping at most `window` messages unread by
    the slowest reader, checks every reader gets every message in order; returns (failures, received, seconds)."""
    received = {}
    failures = []
    progress = asyncio.Event()

    def on_data(ws, op, payload):
        i = ws.index
        seq = int.from_bytes(payload[:8], "big")
        if op != OP_BINARY or seq != received[i] or len(payload) != size or payload[size - 1] != (seq & 0xFF):
            if len(failures) < 10:
                failures.append(f"reader {i}: expected message {received[i]}, got seq {seq} (op {op}, "
                                f"{len(payload)} bytes)")
        received[i] += 1
        progress.set()

    def on_close(ws, code, reason):
        if received[ws.index] < messages:
            failures.append(f"reader {ws.index} closed ({code} {reason}) after {received[ws.index]} messages")
            progress.set()

    clients = []
    for i in range(readers):
        ws = await opslib.FastWS.connect(port, on_data=on_data, on_close=on_close)
        ws.index = i
        received[i] = 0
        clients.append(ws)
    start = time.monotonic()

    async def publish():
        pub = clients[0]
        for seq in range(messages):
            while not failures and min(received.values()) < seq - window + 1:
                progress.clear()
                await progress.wait()
            if failures:
                return
            pub.send(OP_BINARY, message(seq, size))
        while not failures and min(received.values()) < messages:
            progress.clear()
            await progress.wait()

    try:
        await asyncio.wait_for(publish(), timeout)
    except asyncio.TimeoutError:
        failures.append(f"timed out after {timeout}s; slowest reader at {min(received.values())} of {messages}")
    took = time.monotonic() - start
    for ws in clients:
        ws.send_close(1000)
    for ws in clients:
        ws.abort()
    return failures, [received[i] for i in range(readers)], took


class BroadcastClosePolicy(unittest.TestCase):
    READERS = 180
    STALLED = 20
    SIZE = 16 * KIB
    MESSAGES = 2048        # 32 MiB per connection
    WINDOW = 8             # 8 * 16 KiB = 128 KiB < QUEUE_CAP: readers never overflow

    def test_200_connections_20_never_read(self):
        sets = {"limits.send_queue_bytes": QUEUE_CAP, "limits.slow_consumer": "close",
                # Long enough that the 1008 is still waiting in the queue when the stalled peers finally read.
                "server.close_timeout": "10m", "heartbeat.ping_interval": "0s"}
        with Conduitd(mode="broadcast", sets=sets) as server:
            stalled = [stalled_client(server.port) for _ in range(self.STALLED)]
            try:
                baseline = rss_kib(server.proc.pid)
                with RssSampler(server.proc.pid) as rss:
                    failures, received, took = asyncio.run(
                        fan_out(server.port, self.READERS, self.MESSAGES, self.SIZE, self.WINDOW, timeout=150))
                self.assertEqual(failures, [])
                self.assertEqual(received, [self.MESSAGES] * self.READERS)

                m = scrape(server.port)
                overflows = m.get("conduit_send_queue_overflows_total")
                self.assertGreater(overflows, 0)
                self.assertEqual(m.get("conduit_errors_total", kind="slow_consumer"), self.STALLED)
                self.assertEqual(m.get("conduit_messages_dropped_total"), 0)

                # Memory bound. Each stalled peer may hold at most QUEUE_CAP of queued frames (plus the 64 KiB
                # shared batch buffer its last reference keeps alive) before it is cut off; readers hold at most
                # WINDOW messages of shared frames; 8 MiB covers allocator slack and per-connection state.
                # Keeping the stalled peers' backlog instead would cost the whole 32 MiB stream, even shared.
                bound_kib = (self.STALLED * (QUEUE_CAP + 64 * KIB) + self.WINDOW * self.SIZE + 8 * MIB) // KIB
                growth = rss.peak - baseline
                print(f"\n  fan-out of {self.MESSAGES} x {self.SIZE} B to {self.READERS} readers took {took:.1f}s; "
                      f"RSS baseline {baseline} KiB, peak {rss.peak} KiB, growth {growth} KiB "
                      f"(bound {bound_kib} KiB); overflows {overflows:.0f}")
                self.assertLess(bound_kib * KIB, self.MESSAGES * self.SIZE)  # the bound can fail
                if not opslib.sanitizer_build(opslib.conduitd_path()):  # RSS is not live memory under ASan
                    self.assertLess(growth, bound_kib)

                # The stalled peers finally read: an in-order prefix, then close 1008 "slow consumer".
                for i, s in enumerate(stalled):
                    datas, code, reason = read_all_frames(s, timeout=20)
                    self.assertEqual(code, 1008, f"stalled peer {i}: {reason}")
                    self.assertEqual(reason, "slow consumer")
                    seqs = [struct.unpack("!Q", d[:8])[0] for d in datas]
                    self.assertEqual(seqs, list(range(len(seqs))), f"stalled peer {i}: not an in-order prefix")
                    self.assertLess(len(seqs), self.MESSAGES)
                    for d in datas:
                        self.assertEqual(d, message(struct.unpack("!Q", d[:8])[0], self.SIZE))
                    s.sendall(opslib.encode_frame(opslib.OP_CLOSE, close_payload(1008)))
                    s.close()
                opslib.wait_metric(server.port, "conduit_closes_total", lambda v: v == self.STALLED, code="1008")
            finally:
                for s in stalled:
                    s.close()


class BroadcastDropPolicy(unittest.TestCase):
    def test_drop_policy_counts_drops_and_keeps_the_connection(self):
        readers, size, messages, window = 10, 16 * KIB, 512, 8   # 8 MiB stream
        sets = {"limits.send_queue_bytes": QUEUE_CAP, "limits.slow_consumer": "drop", "heartbeat.ping_interval": "0s"}
        with Conduitd(mode="broadcast", sets=sets) as server:
            stalled = [stalled_client(server.port) for _ in range(3)]
            try:
                failures, received, _ = asyncio.run(fan_out(server.port, readers, messages, size, window, timeout=90))
                self.assertEqual(failures, [])
                self.assertEqual(received, [messages] * readers)
                m = scrape(server.port)
                dropped = m.get("conduit_messages_dropped_total")
                self.assertGreater(dropped, 0)
                self.assertEqual(m.get("conduit_send_queue_overflows_total"), dropped)
                self.assertEqual(m.get("conduit_errors_total", kind="slow_consumer"), 0)
                self.assertEqual(m.get("conduit_closes_total", code="1008"), 0)
                # Still open: the stalled peer asks to close, then reads what it kept, in increasing order,
                # and gets the close echoed.
                for i, s in enumerate(stalled):
                    s.sendall(opslib.encode_frame(opslib.OP_CLOSE, close_payload(1000)))
                    datas, code, reason = read_all_frames(s, timeout=20)
                    self.assertEqual(code, 1000, f"stalled peer {i}: {reason}")
                    seqs = [struct.unpack("!Q", d[:8])[0] for d in datas]
                    self.assertEqual(seqs, sorted(set(seqs)), f"stalled peer {i}: order broken")
                    self.assertLess(len(seqs), messages, "a peer that never read cannot have got everything")
                # Each drop is one message missing at one stalled peer.
                self.assertLessEqual(dropped, 3 * messages)
            finally:
                for s in stalled:
                    s.close()


def server_recv_queue(server_port, client_port):
    """Bytes waiting unread in the server's socket for the connection from client_port (/proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
                return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no server socket 127.0.0.1:{server_port} <- :{client_port} in /proc/net/tcp")


class EchoBackpressure(unittest.TestCase):
    def test_echo_default_queue_cap(self):
        self.check_echo_backpressure(1 * MIB)

    def test_echo_small_queue_cap(self):
        # Same cap as the broadcast tests: echo mode must still never answer a non-reader with 1008.
        self.check_echo_backpressure(QUEUE_CAP)

    def check_echo_backpressure(self, cap):
        size = 16 * KIB
        sets = {"limits.send_queue_bytes": cap, "heartbeat.ping_interval": "0s"}
        with Conduitd(mode="echo", sets=sets) as server:
            c = stalled_client(server.port, rcvbuf=4096)
            try:
                baseline = rss_kib(server.proc.pid)
                c.setblocking(False)
                frame_count, sent_bytes = 0, 0
                limit_bytes = 512 * MIB   # what we would push if the server kept reading
                frames = [opslib.encode_frame(OP_BINARY, message(i, size)) for i in range(64)]
                pending = b""
                deadline = time.monotonic() + 120
                last_read = None
                with RssSampler(server.proc.pid) as rss:
                    # Push until the server has stopped reading us, by its own state rather than by a quiet
                    # period (a slow sanitizer build is quiet too): our send blocks, bytes are waiting in the
                    # server socket's receive queue, and its messages_received_total did not move across a
                    # /metrics scrape (served by the same event loop, so a server that merely lags would
                    # have read the waiting bytes in the loop iteration before answering).
                    while sent_bytes < limit_bytes:
                        self.assertLess(time.monotonic(), deadline, "neither stopped reading nor took 512 MiB")
                        if not pending:
                            pending = frames[frame_count % 64]
                            frame_count += 1
                        try:
                            n = c.send(pending)
                        except BlockingIOError:
                            read = scrape(server.port).get("conduit_messages_received_total")
                            if read == last_read and server_recv_queue(server.port, c.getsockname()[1]) > 0:
                                break
                            last_read = read
                            select.select([], [c], [], 0.05)  # until our send buffer has room again
                            continue
                        pending = pending[n:]
                        sent_bytes += n
                        last_read = None
                growth = rss.peak - baseline
                m = scrape(server.port)
                print(f"\n  echo (cap {cap // KIB} KiB): server stopped reading after {sent_bytes / MIB:.1f} MiB; "
                      f"RSS growth {growth} KiB; overflows {m.get('conduit_send_queue_overflows_total'):.0f}")
                self.assertEqual(m.get("conduit_send_queue_overflows_total"), 0,
                                 "echo mode overflowed its queue (it must stop reading instead):\n"
                                 + server.stderr_text()[-1500:])
                self.assertEqual(m.get("conduit_errors_total", kind="slow_consumer"), 0)
                self.assertLess(sent_bytes, 64 * MIB, "the server kept reading a peer that does not read")
                # The queue cap plus one read batch (4 reads of the 256 KiB per-loop buffer) plus allocator slack.
                if not opslib.sanitizer_build(opslib.conduitd_path()):  # RSS is not live memory under ASan
                    self.assertLess(growth, (cap + 1 * MIB + 8 * MIB) // KIB)
                # Now read everything: every complete message we sent is echoed, in order, and no close frame.
                c.setblocking(True)
                full = frame_count
                # Both directions are full now (that is the point), so finish the last frame and send our
                # close from a thread while this one reads: a blocking sendall before reading would deadlock
                # against any server that applies backpressure.
                tail = pending + opslib.encode_frame(opslib.OP_CLOSE, close_payload(1000))
                writer = threading.Thread(target=c.sendall, args=(tail,), daemon=True)
                writer.start()
                datas, code, reason = read_all_frames(c, timeout=60)
                writer.join(timeout=10)
                self.assertEqual(code, 1000, f"expected our close echoed, got {code} {reason}")
                self.assertEqual(len(datas), full)
                for i, d in enumerate(datas):
                    self.assertEqual(d, message(i % 64, size), f"echo {i}")
            finally:
                c.close()


if __name__ == "__main__":
    opslib.main()
