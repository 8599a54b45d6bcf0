"""The tools scripts/bench relies on, checked for correctness (never timed):
conduit-send-floor measures what it says and refuses what it cannot measure, the Beast
echo baseline echoes every message as one frame with its text/binary flag (auto-fragment
off), the Beast and Node ws broadcast baselines deliver every message to every client
(sender included), and bench/summarize.py turns runs of every kind into the tables
docs/benchmarks.md shows."""

import argparse
import asyncio
import base64
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import unittest

import websockets

ARGS = None
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


class SendFloor(unittest.TestCase):
    def run_floor(self, *args, timeout=60):
        return subprocess.run([ARGS.send_floor, *args], capture_output=True, text=True, timeout=timeout)

    def test_counts_every_send_and_reports_json(self):
        p = self.run_floor("--connections", "20", "--bytes", "2112", "--rounds", "7", "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        r = json.loads(p.stdout)
        self.assertEqual(r["scenario"], "send-floor")
        self.assertEqual(r["error"], "none")
        self.assertEqual((r["connections"], r["bytes"], r["rounds"], r["sends"]), (20, 2112, 7, 140))
        self.assertGreater(r["sender_cpu_seconds"], 0)
        self.assertAlmostEqual(r["sends_per_cpu_second"] / (140 / r["sender_cpu_seconds"]), 1, delta=1e-3)
        self.assertAlmostEqual(r["us_per_send"] / (r["sender_cpu_seconds"] / 140 * 1e6), 1, delta=1e-3)

    def test_text_output(self):
        p = self.run_floor("--connections", "3", "--bytes", "66", "--rounds", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"^3 connections x 2 rounds of 66-byte sends: \d+ sends per sender-CPU-second")

    def test_a_send_that_does_not_fit_is_an_error_not_a_number(self):
        # 64 MiB cannot go out in one non-blocking send: the tool must say so and exit 1.
        p = self.run_floor("--connections", "1", "--bytes", str(64 << 20), "--rounds", "1", "--json")
        self.assertEqual(p.returncode, 1)
        self.assertIn("short", p.stderr)
        self.assertEqual(p.stdout, "")

    def test_bad_usage_exits_2(self):
        for args in (["--connections", "0"], ["--bytes", "x"], ["--rounds"], ["--frobnicate"]):
            p = self.run_floor(*args)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn("usage:", p.stderr)


class Server:
    """A baseline started on a free port (--port 0), stopped by its PID. Every baseline
    prints "listening on [HOST:]PORT" once it accepts connections."""

    def __init__(self, *cmd):
        self.proc = subprocess.Popen([*cmd, "--port", "0"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"listening on (?:127\.0\.0\.1:)?(\d+)$", line.strip())
        if m is None:
            self.stop()
            raise AssertionError(f"no listening line from {cmd}: {line!r}")
        self.port = int(m.group(1))
        self.url = f"ws://127.0.0.1:{self.port}/"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class RawClient:
    """A minimal RFC 6455 client on a plain socket, so a test sees frames, not messages
    (a websockets client would reassemble fragments and hide how a message was sent)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise AssertionError("server closed the connection")
        return chunk

    def _take(self, n):
        while len(self.buf) < n:
            self.buf += self._recv()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def frame(self):
        """(fin, opcode, payload) of the next frame from the server."""
        b0, b1 = self._take(2)
        assert not b1 & 0x80, "a server frame must not be masked"
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._take(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._take(8))
        return bool(b0 & 0x80), b0 & 0x0F, self._take(n)

    def close(self):
        self.sock.close()


class BeastEchoBaseline(unittest.TestCase):
    def test_each_echo_is_one_frame_with_the_flag_it_came_with(self):
        # auto_fragment(false): Beast's default would send 16 KiB as four 4 KiB frames.
        with Server(ARGS.beast_echo) as server:
            client = RawClient(server.port)
            try:
                for opcode, payload in ((2, bytes(range(256)) * 64), (2, b"x" * 20), (1, b"text stays text"),
                                        (2, os.urandom(100000))):
                    client.send(opcode, payload)
                    self.assertEqual(client.frame(), (True, opcode, payload), (opcode, len(payload)))
            finally:
                client.close()


def check_broadcast(test, url):
    async def go():
        clients = [await websockets.connect(url) for _ in range(3)]
        for i in range(50):
            await clients[0].send(i.to_bytes(4, "big"))
        for c in clients:
            got = [await asyncio.wait_for(c.recv(), 10) for _ in range(50)]
            test.assertEqual(got, [i.to_bytes(4, "big") for i in range(50)])
        for c in clients:
            await c.close()

    asyncio.run(asyncio.wait_for(go(), 30))


class BroadcastBaselines(unittest.TestCase):
    def test_node_every_client_gets_every_message_in_order(self):
        with Server(ARGS.node, os.path.join(ROOT, "bench", "node_broadcast_server.js")) as server:
            check_broadcast(self, server.url)

    def test_beast_every_client_gets_every_message_in_order(self):
        with Server(ARGS.beast_broadcast) as server:
            check_broadcast(self, server.url)

    def test_beast_sends_each_delivery_as_one_binary_frame(self):
        with Server(ARGS.beast_broadcast) as server:
            client = RawClient(server.port)
            try:
                payload = os.urandom(16384)
                client.send(2, payload)
                self.assertEqual(client.frame(), (True, 2, payload))
            finally:
                client.close()


def summarize(runs, scenario):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "runs.jsonl")
        with open(path, "w") as f:
            f.write("\n".join(json.dumps(r) for r in runs) + "\n")
        machine = os.path.join(d, "machine.txt")
        with open(machine, "w") as f:
            f.write("cpu: test\n")
        return subprocess.run([sys.executable, os.path.join(ROOT, "bench", "summarize.py"), scenario, path, machine,
                               f"scripts/bench {scenario}"], capture_output=True, text=True, timeout=30)


class Summarize(unittest.TestCase):
    def test_fanout_table_has_every_server_and_the_floor_in_deliveries(self):
        runs = []
        for run in (1, 2, 3):
            for server, eff in (("conduit", 300e3), ("beast", 100e3), ("node", 120e3)):
                runs.append({"server": server, "run": run, "subscribers_requested": 1000, "window": 32,
                             "messages_requested": 2000, "scenario": "fanout", "error": "none",
                             "deliveries_per_server_cpu_second": eff * run, "deliveries_per_second": eff,
                             "server_cpu_seconds": 1.0, "latency": {"p50_us": 10, "p99_us": 20}})
            # 150k sends of 32 frames each = 4.8M deliveries per CPU-second (median run).
            runs.append({"server": "floor", "run": run, "subscribers_requested": 1000, "window": 32,
                         "messages_requested": 300, "scenario": "send-floor", "error": "none", "sends": 300000,
                         "sender_cpu_seconds": 2.0, "seconds": 2.0, "sends_per_cpu_second": 75e3 * run,
                         "us_per_send": 6.6})
        p = summarize(runs, "fanout")
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in p.stdout.splitlines()
                if line.startswith("| ") and line.count("|") == 3}
        self.assertEqual(rows["conduit"], "600,000")
        self.assertEqual(rows["Beast"], "200,000")
        self.assertEqual(rows["Node ws"], "240,000")
        self.assertEqual(rows["send floor: bare send(2) of W frames, no WebSocket code"], "4,800,000")
        self.assertEqual(rows["ratio conduit/Beast"], "3.00x")
        self.assertEqual(rows["ratio conduit/send floor"], "0.12x")
        self.assertEqual(rows["uWebSockets (issue 5)"], "7.1M")
        self.assertEqual(rows["Beast here / in issue 5"], f"{200e3 / 193e3:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--send-floor", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--beast-echo", required=True)
    parser.add_argument("--beast-broadcast", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest])
