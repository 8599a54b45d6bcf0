"""Metrics and logs.

/metrics parses as Prometheus text and its counters move as expected after known actions (handshake
failure reasons, closes by code, messages and bytes, pings with a short heartbeat, pong timeouts).
Logs: one open and one close line per connection with the documented fields, one line per refused
handshake, nothing per message at info; log.format=json is one JSON object per line."""

import asyncio
import json
import re
import signal
import socket
import subprocess
import time
import unittest

import websockets

import opslib
from opslib import (EOF, OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, Conduitd, RawWS, close_payload, get_status,
                    http_request, log_events, run_conduitd_to_exit, scrape, upgrade_status, wait_metric)

REQUIRED = {
    "conduit_connections_active": "gauge",
    "conduit_connections_total": "counter",
    "conduit_handshake_failures_total": "counter",
    "conduit_messages_received_total": "counter",
    "conduit_messages_sent_total": "counter",
    "conduit_bytes_received_total": "counter",
    "conduit_bytes_sent_total": "counter",
    "conduit_closes_total": "counter",
    "conduit_send_queue_overflows_total": "counter",
    "conduit_messages_dropped_total": "counter",
    "conduit_pings_sent_total": "counter",
    "conduit_pong_timeouts_total": "counter",
    "conduit_errors_total": "counter",
}


def family_type(m, name):
    # prometheus-cpp declares counters by family name without the _total suffix or with it; accept either.
    return m.types.get(name) or m.types.get(name[:-len("_total")] if name.endswith("_total") else name)


class Metrics(unittest.TestCase):
    def setUp(self):
        self.server = Conduitd(mode="echo", sets={
            "server.allowed_origins": '["https://ok.example"]',
            "heartbeat.ping_interval": "200ms", "heartbeat.pong_timeout": "300ms",
            "limits.max_message_bytes": 1000}).start()
        self.port = self.server.port
        self.o = {"Origin": "https://ok.example"}

    def tearDown(self):
        self.server.stop()

    def test_exposition_parses_and_has_every_metric(self):
        m = scrape(self.port)
        for name, kind in REQUIRED.items():
            self.assertEqual(family_type(m, name), kind, f"{name}: TYPE {family_type(m, name)}\n{m.text}")
            self.assertTrue(any(k[0] == name for k in m.samples), f"no sample for {name}")
        self.assertEqual(m.get("conduit_connections_active"), 0)
        self.assertEqual(m.get("conduit_connections_total"), 0)

    def test_handshake_failure_reasons(self):
        before = scrape(self.port)
        self.assertEqual(upgrade_status(self.port, {"Origin": "https://evil.example"})[0], 403)
        self.assertEqual(upgrade_status(self.port)[0], 403)  # no Origin while a list is set
        req = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 8\r\nOrigin: https://ok.example\r\n\r\n")
        status, hdrs, _ = http_request(self.port, req)
        self.assertEqual(status, 426)
        self.assertEqual(hdrs.get("sec-websocket-version"), "13")
        req = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
        self.assertEqual(http_request(self.port, req)[0], 400)
        self.assertEqual(opslib.get_status(self.port, "/nope")[0], 404)
        after = scrape(self.port)
        for reason, n in (("origin", 2), ("bad_version", 1), ("bad_request", 1), ("not_found", 1)):
            delta = (after.get("conduit_handshake_failures_total", reason=reason)
                     - before.get("conduit_handshake_failures_total", reason=reason))
            self.assertEqual(delta, n, reason)
        self.assertEqual(after.get("conduit_connections_total"), 0)

    def test_messages_bytes_and_closes_by_code(self):
        with RawWS(self.port, handshake=False) as c:
            c.sock.sendall(opslib.upgrade_request("/", extra="Origin: https://ok.example\r\n")[0])
            c.buf = b""
            while b"\r\n\r\n" not in c.buf:
                c.buf += c.sock.recv(4096)
            c.buf = c.buf.split(b"\r\n\r\n", 1)[1]
            for i in range(3):
                c.send_frame(OP_TEXT, f"m{i}".encode())
                self.assertEqual(c.recv_message()[1], f"m{i}".encode())
            m = scrape(self.port)
            self.assertEqual(m.get("conduit_connections_active"), 1)
            self.assertEqual(m.get("conduit_messages_received_total"), 3)
            self.assertEqual(m.get("conduit_messages_sent_total"), 3)
            self.assertGreater(m.get("conduit_bytes_received_total"), 3 * 8)
            self.assertGreater(m.get("conduit_bytes_sent_total"), 3 * 4)
            c.send_frame(OP_CLOSE, close_payload(1000))
            c.expect_close(1000, reply=False)
            c.wait_eof()
        wait_metric(self.port, "conduit_closes_total", lambda v: v == 1, code="1000")

        def raw_open():
            c = RawWS(self.port, handshake=False)
            c.sock.sendall(opslib.upgrade_request("/", extra="Origin: https://ok.example\r\n")[0])
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += c.sock.recv(4096)
            c.buf = buf.split(b"\r\n\r\n", 1)[1]
            return c

        with raw_open() as c:
            c.send_frame(OP_TEXT, b"\xff\xfe")  # invalid UTF-8
            c.expect_close(1007)
            c.wait_eof()
        with raw_open() as c:
            c.send_frame(OP_BINARY, b"x" * 1001)  # over limits.max_message_bytes
            c.expect_close(1009)
            c.wait_eof()
        with raw_open() as c:
            c.send_frame(OP_TEXT, b"x", rsv=2)  # RSV bit without an extension
            c.expect_close(1002)
            c.wait_eof()
        wait_metric(self.port, "conduit_closes_total", lambda v: v == 1, code="1007")
        wait_metric(self.port, "conduit_closes_total", lambda v: v == 1, code="1009")
        wait_metric(self.port, "conduit_closes_total", lambda v: v == 1, code="1002")
        m = scrape(self.port)
        self.assertEqual(m.get("conduit_errors_total", kind="invalid_payload"), 1)
        self.assertEqual(m.get("conduit_errors_total", kind="message_too_big"), 1)
        self.assertEqual(m.get("conduit_errors_total", kind="protocol_error"), 1)
        self.assertEqual(m.get("conduit_connections_total"), 4)
        self.assertEqual(m.get("conduit_connections_active"), 0)

    def test_pings_and_pong_timeouts(self):
        async def answering_client():
            # websockets answers pings itself; ping_interval=None: it sends none of its own.
            async with websockets.connect(self.server.url, origin="https://ok.example", ping_interval=None,
                                          compression=None) as ws:
                await asyncio.to_thread(wait_metric, self.port, "conduit_pings_sent_total", lambda v: v >= 3)
                await ws.send("still here")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), "still here")
        asyncio.run(asyncio.wait_for(answering_client(), 30))
        self.assertEqual(scrape(self.port).get("conduit_pong_timeouts_total"), 0)

        c = RawWS(self.port, handshake=False)
        c.sock.sendall(opslib.upgrade_request("/", extra="Origin: https://ok.example\r\n")[0])
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += c.sock.recv(4096)
        c.buf = buf.split(b"\r\n\r\n", 1)[1]
        with c:
            self.assertEqual(c.recv_frame(timeout=5).opcode, OP_PING)
            # never answer: dropped after pong_timeout
            try:
                while True:
                    c.recv_frame(timeout=5)
            except EOF:
                pass
        m = wait_metric(self.port, "conduit_pong_timeouts_total", lambda v: v == 1)
        m = scrape(self.port)
        self.assertEqual(m.get("conduit_errors_total", kind="pong_timeout"), 1)
        self.assertGreaterEqual(m.get("conduit_closes_total", code="1006"), 1)


FIELDS_OPEN = {"id", "remote", "path", "subprotocol"}
FIELDS_CLOSE = {"id", "remote", "path", "subprotocol", "code", "reason", "duration_ms", "bytes_in", "bytes_out"}


HELD_MS = 400  # the last connection of exercise() stays open this long: duration_ms must show it


class Logs(unittest.TestCase):
    def exercise(self, server, n=5, messages=50):
        """Returns {path: milliseconds the client saw the connection open (upper bound of duration_ms)}."""
        spans = {}

        async def go():
            for i in range(n):
                path = f"/chat?i={i}"
                start = time.monotonic()
                async with websockets.connect(server.url + path[1:], subprotocols=["v1"],
                                              compression=None) as ws:
                    for k in range(messages):
                        await ws.send(f"{i}-{k}")
                        await asyncio.wait_for(ws.recv(), 10)
                    if i == n - 1:
                        await asyncio.sleep(HELD_MS / 1000)  # the duration under test
                spans[path] = (time.monotonic() - start) * 1000
        asyncio.run(asyncio.wait_for(go(), 60))
        self.spans = spans
        self.assertEqual(upgrade_status(server.port, {"Sec-WebSocket-Protocol": "nope"})[0], 400)
        wait_metric(server.port, "conduit_connections_active", lambda v: v == 0)
        wait_metric(server.port, "conduit_closes_total", lambda v: v == n, code="1000")

    def test_text_lines(self):
        with Conduitd(mode="echo", sets={"server.subprotocols": '["v1"]', "server.require_subprotocol": "true"}) as s:
            self.exercise(s)
            text = s.stderr_text()
        events = log_events(text)
        opens = [e for e in events if e.get("event") == "open"]
        closes = [e for e in events if e.get("event") == "close"]
        refused = [e for e in events if e.get("event") == "handshake_refused"]
        self.assertEqual(len(opens), 5, text)
        self.assertEqual(len(closes), 5, text)
        self.assertEqual(sorted(e["id"] for e in opens), sorted(e["id"] for e in closes))
        for e in opens:
            self.assertLessEqual(FIELDS_OPEN, set(e), e)
            self.assertEqual(e["subprotocol"], "v1")
            self.assertTrue(e["path"].startswith("/chat?i="), e)
            self.assertRegex(e["remote"], r"^127\.0\.0\.1:\d+$")
        for e in closes:
            self.assertLessEqual(FIELDS_CLOSE, set(e), e)
            self.assertEqual(e["code"], "1000")
            self.assertGreaterEqual(int(e["bytes_in"]), 50 * 6)
            self.assertGreaterEqual(int(e["bytes_out"]), 50 * 5)
            # duration_ms is the connection's life as the server saw it: inside what the client saw,
            # and at least the time the last connection was deliberately held open.
            self.assertLessEqual(int(e["duration_ms"]), self.spans[e["path"]] + 50, e)
        held = [e for e in closes if e["path"] == "/chat?i=4"]
        self.assertEqual(len(held), 1, closes)
        self.assertGreaterEqual(int(held[0]["duration_ms"]), HELD_MS - 5, held[0])
        self.assertEqual(len(refused), 1, text)
        self.assertEqual(refused[0]["status"], "400")
        self.assertIn("remote", refused[0])
        self.assertTrue(refused[0]["reason"])
        # Nothing per message at info: 250 messages went through, the log has only connection-level lines.
        lines = [l for l in text.splitlines() if "event=" in l]
        self.assertLessEqual(len(lines), 5 + 5 + 1 + 2, "\n".join(lines))

    def test_json_lines(self):
        """log.format=json: every stderr line, from start to the shutdown notice, is one JSON object with
        the documented level names, and numeric fields are JSON numbers."""
        s = Conduitd(mode="echo", sets={"log.format": "json", "server.subprotocols": '["v1"]',
                                        "server.require_subprotocol": "true"})
        s.start()
        try:
            self.exercise(s)
            # Stop it ourselves so the daemon's shutdown lines are part of what is checked.
            s.proc.send_signal(signal.SIGTERM)
            self.assertEqual(s.proc.wait(timeout=30), 0, s.diagnostics())
            text = s.stderr_text()
        finally:
            s._kill()
        objs = []
        for line in text.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                self.fail(f"stderr line is not JSON: {line!r}\n{text}")
            self.assertIsInstance(obj, dict, line)
            self.assertIsInstance(obj.get("ts"), str, line)
            self.assertIn(obj.get("level"), {"trace", "debug", "info", "warn", "error", "critical"}, line)
            objs.append(obj)
        opens = [o for o in objs if o.get("event") == "open"]
        closes = [o for o in objs if o.get("event") == "close"]
        self.assertEqual(len(opens), 5, text)
        self.assertEqual(len(closes), 5, text)
        for o in closes:
            self.assertLessEqual(FIELDS_CLOSE, set(o), o)
            self.assertEqual(o["code"], 1000)  # a number, not "1000"
            self.assertIsInstance(o["duration_ms"], int, o)
            self.assertIsInstance(o["bytes_in"], int, o)
            self.assertIsInstance(o["id"], int, o)
            self.assertIsInstance(o["remote"], str, o)  # 127.0.0.1:PORT stays a string
            self.assertEqual(o["subprotocol"], "v1")
            self.assertLessEqual(int(o["duration_ms"]), self.spans[o["path"]] + 50, o)
        held = [o for o in closes if o["path"] == "/chat?i=4"]
        self.assertEqual(len(held), 1, closes)
        self.assertGreaterEqual(int(held[0]["duration_ms"]), HELD_MS - 5, held[0])
        # 5 opens, 5 closes, 1 refusal, the signal and shutdown_started lines, and at most two more.
        self.assertLessEqual(len(objs), 5 + 5 + 1 + 2 + 2)
        refused = [o for o in objs if o.get("event") == "handshake_refused"]
        self.assertEqual(len(refused), 1, text)
        self.assertEqual(refused[0]["status"], 400)
        self.assertEqual(refused[0]["level"], "warn")  # not "warning"
        signals = [o for o in objs if o.get("event") == "signal"]
        self.assertEqual(len(signals), 1, text)
        self.assertEqual((signals[0]["signal"], signals[0]["action"]), ("SIGTERM", "shutdown"), text)
        self.assertEqual(len([o for o in objs if o.get("event") == "shutdown_started"]), 1, text)

    def test_json_errors_are_json_too(self):
        """With log.format=json, a configuration error found after the config is read (an unreadable
        certificate) and a start failure (the address in use) are JSON lines naming the problem."""
        status, out, err = run_split(["--listen", "127.0.0.1:0", "--set", "log.format=json",
                                      "--set", "tls.cert=/nonexistent/cert.pem", "--set", "tls.key=/nonexistent/key.pem"])
        self.assertEqual(status, 2, err)
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, err)
        obj = json.loads(lines[0])
        self.assertEqual((obj["event"], obj["key"], obj["level"]), ("config_error", "tls.cert", "critical"), obj)
        self.assertIn("/nonexistent/cert.pem", obj["reason"])

        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            status, out, err = run_split(["--mode", "echo", "--listen", f"127.0.0.1:{port}", "--set", "log.format=json"])
        self.assertEqual(status, 1, err)
        self.assertNotIn("listening on", out)
        objs = [json.loads(l) for l in err.splitlines()]
        self.assertEqual([o["event"] for o in objs], ["start_failed"], err)
        self.assertIn("in use", objs[0]["reason"])


def run_split(args, timeout=15.0):
    """Runs conduitd to exit; returns (status, stdout, stderr)."""
    p = subprocess.run([opslib.conduitd_path()] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


class MetricsListener(unittest.TestCase):
    """metrics.listen: a second, HTTP-only listener (e.g. reachable by Prometheus, not by clients)."""

    def test_separate_address_serves_routes_and_refuses_upgrades(self):
        server = Conduitd(mode="echo", sets={"metrics.listen": "127.0.0.1:0"}).start()
        try:
            deadline = time.monotonic() + 10
            mport = None
            while mport is None and time.monotonic() < deadline:
                for line in list(server.stdout_lines):
                    m = re.match(rb"metrics listening on 127\.0\.0\.1:(\d+)", line)
                    if m:
                        mport = int(m.group(1))
                time.sleep(0.02)
            self.assertIsNotNone(mport, "no 'metrics listening on' line\n" + server.diagnostics())
            self.assertNotEqual(mport, server.port)

            async def echo_once():
                async with websockets.connect(server.url) as ws:
                    await ws.send("hello")
                    self.assertEqual(await asyncio.wait_for(ws.recv(), 10), "hello")
            asyncio.run(echo_once())

            m = scrape(mport)
            self.assertEqual(m.get("conduit_messages_received_total"), 1)
            self.assertEqual(get_status(mport, "/healthz")[0], 200)
            self.assertEqual(get_status(mport, "/readyz")[0], 200)
            self.assertEqual(upgrade_status(mport)[0], 404)
            self.assertEqual(upgrade_status(server.port)[0], 101)
            self.assertEqual(get_status(server.port, "/metrics")[0], 200)  # still on the main port too
        finally:
            server.stop()

    def test_bad_address_is_a_config_error(self):
        status, out = run_conduitd_to_exit(["--listen", "127.0.0.1:0", "--set", "metrics.listen=nowhere"])
        self.assertEqual(status, 2, out)
        self.assertIn("metrics.listen", out)


if __name__ == "__main__":
    opslib.main()
