"""The HTTP side of conduitd: upgrade refusals, built-in routes, handshake timeout (slowloris)."""

import base64
import os
import time
import unittest

import conduitd
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ops"))
import opslib  # noqa: E402  (strict /metrics scraping)
from conduitd import EOF, OP_TEXT, Conduitd, RawWS, accept_for, connect_tcp, http_request, upgrade_request

HANDSHAKE_TIMEOUT = 0.3


class Http(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Conduitd(mode="echo", sets={"server.handshake_timeout": "300ms"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def request(self, raw):
        return http_request(self.server.port, raw)

    def assert_refused(self, raw, status):
        got, headers, body = self.request(raw)
        self.assertEqual(got, status, f"response body: {body!r}")
        self.assertNotIn("sec-websocket-accept", headers)
        return headers, body

    def test_upgrade_accepted_with_correct_accept(self):
        req, key = upgrade_request("/")
        with connect_tcp(self.server.port) as s:
            s.sendall(req)
            status, headers, _ = _read_head(s)
            self.assertEqual(status, 101)
            self.assertEqual(headers.get("sec-websocket-accept"), accept_for(key))
            self.assertEqual(headers.get("upgrade", "").lower(), "websocket")
            self.assertIn("upgrade", headers.get("connection", "").lower())

    def test_rfc_example_key(self):
        req, key = upgrade_request("/", key="dGhlIHNhbXBsZSBub25jZQ==")
        with connect_tcp(self.server.port) as s:
            s.sendall(req)
            status, headers, _ = _read_head(s)
            self.assertEqual(status, 101)
            self.assertEqual(headers.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")

    def test_upgrade_on_any_path_in_echo_mode(self):
        with RawWS(self.server.port, path="/some/where?x=1") as c:
            c.send_frame(OP_TEXT, b"path")
            self.assertEqual(c.recv_message()[1], b"path")

    def test_header_tokens_case_insensitive_and_lists(self):
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET / HTTP/1.1\r\nHost: x\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
               f"sec-websocket-key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        with connect_tcp(self.server.port) as s:
            s.sendall(req)
            status, headers, _ = _read_head(s)
            self.assertEqual(status, 101)
            self.assertEqual(headers.get("sec-websocket-accept"), accept_for(key))

    def test_bad_key_400_with_reason(self):
        for key in ("not-base64!!", base64.b64encode(os.urandom(15)).decode(), base64.b64encode(os.urandom(17)).decode()):
            req, _ = upgrade_request("/", key=key)
            headers, body = self.assert_refused(req, 400)
            self.assertTrue(body.strip(), f"400 must carry a one-line reason (key {key!r})")
            self.assertLessEqual(len(body.strip().splitlines()), 1, f"one line, got {body!r}")

    def test_missing_key_400(self):
        req = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n")
        self.assert_refused(req, 400)

    def test_upgrade_with_post_400(self):
        req, _ = upgrade_request("/")
        self.assert_refused(req.replace(b"GET ", b"POST ", 1).replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\n"),
                            400)

    def test_upgrade_http10_400(self):
        req, _ = upgrade_request("/")
        self.assert_refused(req.replace(b"HTTP/1.1", b"HTTP/1.0", 1), 400)

    def test_version_8_is_426_with_supported_version(self):
        req, _ = upgrade_request("/", version="8")
        headers, _ = self.assert_refused(req, 426)
        self.assertEqual(headers.get("sec-websocket-version"), "13")

    def test_plain_get_unknown_path_404(self):
        self.assert_refused(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404)

    def test_healthz_200(self):
        status, _, _ = self.request(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(status, 200)

    def test_garbage_request_400(self):
        self.assert_refused(b"\x16\x03\x01 not http at all\r\n\r\n", 400)

    # ---- slowloris ----

    def test_half_request_dropped_after_handshake_timeout(self):
        with connect_tcp(self.server.port) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
            start = time.monotonic()
            got = _read_to_eof(s, timeout=10)
            waited = time.monotonic() - start
            self.assertNotIn(b"101", got[:12])
            # Dropped by the timeout (not at once, not never): a coarse timer may round up, never down much.
            self.assertGreaterEqual(waited, HANDSHAKE_TIMEOUT * 0.5, f"dropped after {waited:.3f}s")
            self.assertLess(waited, HANDSHAKE_TIMEOUT + 3, f"dropped after {waited:.3f}s")

    def test_dribbling_request_dropped_by_total_deadline(self):
        # A slowloris sends a byte now and then; the deadline is for the whole request, not per byte.
        req, _ = upgrade_request("/", extra="X-Padding: " + "p" * 200 + "\r\n")
        with connect_tcp(self.server.port) as s:
            start = time.monotonic()
            deadline = start + 10
            closed_at = None
            for i in range(len(req) - 1):  # never the final byte
                try:
                    s.sendall(req[i:i + 1])
                except (BrokenPipeError, ConnectionResetError):
                    closed_at = time.monotonic()
                    break
                s.settimeout(0.05)  # pacing of the dribble, and a poll for the server's close
                try:
                    if s.recv(4096) == b"":
                        closed_at = time.monotonic()
                        break
                except (TimeoutError, OSError) as e:
                    if isinstance(e, ConnectionResetError):
                        closed_at = time.monotonic()
                        break
                if time.monotonic() > deadline:
                    break
            self.assertIsNotNone(closed_at, "a request dribbled for 10 s was never dropped")
            self.assertLess(closed_at - start, HANDSHAKE_TIMEOUT + 3)

    def test_request_head_over_16_kib_is_431_and_counted(self):
        # docs/errors.md 431: answered as soon as 16 KiB arrived without the end of the head.
        before = opslib.scrape(self.server.port).get("conduit_handshake_failures_total", reason="header_too_large")
        req, _ = upgrade_request("/")
        head = req[:-2]  # without the final CRLF: the head never ends
        filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        with connect_tcp(self.server.port) as s:
            s.sendall(head + filler * 17)  # > 16 KiB and still no blank line
            status, headers, _ = _read_head(s)
            self.assertEqual(status, 431)
            _read_to_eof(s, 10)
        after = opslib.scrape(self.server.port).get("conduit_handshake_failures_total", reason="header_too_large")
        self.assertEqual(after, before + 1)
        # Control: a complete 15 KiB head is within the limit.
        with connect_tcp(self.server.port) as s:
            s.sendall(head + filler * 15 + b"\r\n")
            status, _, _ = _read_head(s)
            self.assertEqual(status, 101)

    def test_complete_request_just_in_time_is_served(self):
        # Control for the two tests above: splitting a request is fine if it completes in time.
        req, key = upgrade_request("/")
        timeouts_before = opslib.scrape(self.server.port).get("conduit_handshake_failures_total", reason="timeout")
        with connect_tcp(self.server.port) as s, connect_tcp(self.server.port) as silent:
            s.sendall(req[:20])
            s.sendall(req[20:])
            status, headers, _ = _read_head(s)
            self.assertEqual(status, 101)
            # ... and the open connection is not subject to the handshake timeout. The event that shows
            # the deadline has passed: `silent`, opened at the same time and sending nothing, is dropped
            # for it. Exactly that one timeout is counted, and ours still echoes.
            _read_to_eof(silent, HANDSHAKE_TIMEOUT + 10)
            ws = RawWS.__new__(RawWS)
            ws.sock, ws.buf = s, b""
            ws.send_frame(OP_TEXT, b"still here")
            self.assertEqual(ws.recv_message()[1], b"still here")
            self.assertEqual(opslib.scrape(self.server.port).get("conduit_handshake_failures_total", reason="timeout"),
                             timeouts_before + 1)


def _read_head(s, timeout=conduitd.IO_TIMEOUT):
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf:
        chunk = conduitd._recv_until(s, deadline)
        if not chunk:
            raise EOF(f"closed before the response head; got {buf!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    status, headers = conduitd.parse_head(head)
    return status, headers, rest


def _read_to_eof(s, timeout):
    deadline = time.monotonic() + timeout
    got = b""
    while True:
        try:
            chunk = conduitd._recv_until(s, deadline)
        except TimeoutError:
            raise AssertionError(f"connection still open after {timeout}s")
        if not chunk:
            return got
        got += chunk


if __name__ == "__main__":
    conduitd.main()
