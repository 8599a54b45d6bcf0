"""The tools scripts/bench relies on, checked for correctness (never timed):
conduit-send-floor measures what it says and refuses what it cannot measure, the Beast
echo baseline echoes every message as one frame with its text/binary flag (auto-fragment
off), the Beast and Node ws broadcast baselines deliver every message to every client
(sender included), bench/summarize.py turns runs of every kind into the tables
docs/benchmarks.md shows, and scripts/bench adds a comparison-server column when
BENCH_UWS_ECHO names an executable and skips it with one log line otherwise."""

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


def table_rows(text):
    """Markdown table rows as lists of stripped cells."""
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ")]


def echo_runs(servers):
    runs = []
    for size in (20, 16384):
        for run in (1, 2, 3):
            for server, eff in servers:
                runs.append({"scenario": "echo", "server": server, "run": run, "size": size, "error": "none",
                             "messages_per_second": eff / 2 * run, "server_cpu_seconds": 1.0,
                             "messages_per_server_cpu_second": eff * run, "latency": {"p50_us": 10, "p99_us": 20},
                             "mismatches": 0, "protocol_errors": 0, "closed_early": 0})
        for run in (1, 2, 3):
            for server, _ in servers:
                runs.append({"scenario": "idle-memory", "server": server, "run": run, "connections": 1000,
                             "rss_before_kb": 1000, "rss_after_kb": 1000 + {"conduit": 500, "beast": 6000,
                                                                            "uws": 250}[server]})
    return runs


class Summarize(unittest.TestCase):
    def test_echo_with_a_uws_column_has_its_rows_and_ratios(self):
        p = summarize(echo_runs((("conduit", 200e3), ("beast", 100e3), ("uws", 250e3))), "echo")
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = table_rows(p.stdout)
        eff = {(r[0], r[1]): r[5] for r in rows if len(r) == 9}
        self.assertEqual(eff[("20 B", "uWebSockets")], "**500,000**")
        self.assertEqual(eff[("16384 B", "beast")], "**200,000**")
        ratios = {r[0]: r[1:] for r in rows if len(r) == 7}
        # conduit/Beast, conduit/uWebSockets and Beast/uWebSockets, each per CPU-second and per second.
        self.assertEqual(ratios["20 B"], ["2.00x", "2.00x", "0.80x", "0.80x", "0.40x", "0.40x"])
        mem = {r[0]: r[5] for r in rows if len(r) == 6}
        self.assertEqual(mem["uWebSockets"], "**0.25**")
        self.assertIn("conduit uses 2.00x of uWebSockets' memory per idle connection.", p.stdout)

    def test_echo_without_uws_keeps_the_two_server_tables(self):
        p = summarize(echo_runs((("conduit", 200e3), ("beast", 100e3))), "echo")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("uWebSockets", p.stdout)
        ratios = {r[0]: r[1:] for r in table_rows(p.stdout) if len(r) == 3 and r[0].endswith(" B")}
        self.assertEqual(ratios["16384 B"], ["2.00x", "2.00x"])

    def test_fanout_with_a_uws_column_has_its_row_and_ratio(self):
        runs = []
        for run in (1, 2, 3):
            for server, eff in (("conduit", 300e3), ("beast", 100e3), ("uws", 400e3)):
                runs.append({"server": server, "run": run, "subscribers_requested": 1000, "window": 1,
                             "messages_requested": 300, "scenario": "fanout", "error": "none",
                             "deliveries_per_server_cpu_second": eff * run, "deliveries_per_second": eff,
                             "server_cpu_seconds": 1.0, "latency": {"p50_us": 10, "p99_us": 20}})
        p = summarize(runs, "fanout")
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = {r[0]: r[1] for r in table_rows(p.stdout) if len(r) == 2}
        self.assertEqual(rows["uWebSockets"], "800,000")
        self.assertEqual(rows["ratio conduit/uWebSockets"], "0.75x")
        self.assertEqual(rows["uWebSockets here / on the reference machine"], f"{800e3 / 250e3:.2f}x")

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
        self.assertEqual(rows["uWebSockets (reference machine)"], "7.1M")
        self.assertEqual(rows["Beast here / on the reference machine"], f"{200e3 / 193e3:.2f}x")


class BenchScriptComparisonColumn(unittest.TestCase):
    """scripts/bench echo, shortened to seconds, with the comparison server given by
    BENCH_UWS_ECHO. The stand-in is the Beast echo baseline: it follows the same
    contract, which is all the script may rely on."""

    def run_bench(self, uws_echo):
        with tempfile.TemporaryDirectory() as d:
            env = dict(os.environ, BENCH_BUILD_DIR=ARGS.build_dir, BENCH_RESULTS_DIR=d, BENCH_RUNS="1",
                       BENCH_DURATION="1", BENCH_WARMUP="0", BENCH_IDLE_CONNECTIONS="20", BENCH_UWS_ECHO=uws_echo)
            p = subprocess.run(["bash", os.path.join(ROOT, "scripts", "bench"), "echo"], env=env, capture_output=True,
                               text=True, timeout=240)
            results = [os.path.join(d, f) for f in os.listdir(d)]
            self.assertEqual(p.returncode, 0, p.stderr[-3000:])
            self.assertEqual(len(results), 1, results)
            with open(results[0]) as f:
                return p.stderr, f.read()

    def test_an_executable_comparison_server_gets_a_column(self):
        log, result = self.run_bench(ARGS.beast_echo)
        self.assertIn(f"uWebSockets echo column: BENCH_UWS_ECHO={ARGS.beast_echo}", log)
        rows = table_rows(result)
        echo = {(r[0], r[1]): r for r in rows if len(r) == 9}
        for size in ("20 B", "16384 B"):
            self.assertIn((size, "uWebSockets"), echo)
            self.assertEqual(echo[(size, "uWebSockets")][8], "none")  # every echo came back intact
        self.assertEqual(len([r for r in rows if len(r) == 7 and r[0] in ("20 B", "16384 B")]), 2)
        self.assertIn("uWebSockets", [r[0] for r in rows if len(r) == 6])  # idle-memory row
        runs = [json.loads(line) for line in result.splitlines() if line.startswith("{")]
        self.assertEqual(sorted({r["server"] for r in runs}), ["beast", "conduit", "uws"])

    def test_a_missing_comparison_server_is_skipped_with_one_line(self):
        missing = os.path.join(tempfile.gettempdir(), "no-such-uws-echo-server")
        log, result = self.run_bench(missing)
        self.assertEqual(log.count("no uWebSockets echo column"), 1, log)
        self.assertIn(f"BENCH_UWS_ECHO={missing} is not an executable file", log)
        self.assertNotIn("uWebSockets", result)
        runs = [json.loads(line) for line in result.splitlines() if line.startswith("{")]
        self.assertEqual(sorted({r["server"] for r in runs}), ["beast", "conduit"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--send-floor", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--beast-echo", required=True)
    parser.add_argument("--beast-broadcast", required=True)
    parser.add_argument("--build-dir", required=True, help="the build directory scripts/bench takes binaries from")
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest])
