"""TLS (issue 3 item 6): a self-signed certificate made by the test with openssl; Python websockets and
Node ws over wss (echo, heartbeat); bad certificate/key paths → exit status 2 naming the key."""

import asyncio
import os
import ssl
import tempfile
import time
import unittest

import websockets

import opslib
from opslib import Conduitd, make_self_signed, run_conduitd_to_exit, run_node, scrape


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.cert, cls.key = make_self_signed(cls.tmp.name)
        cls.server = Conduitd(mode="echo", sets={"tls.cert": cls.cert, "tls.key": cls.key,
                                                 "heartbeat.ping_interval": "200ms",
                                                 "heartbeat.pong_timeout": "400ms"}).start()
        cls.url = f"wss://localhost:{cls.server.port}/"

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        return ctx

    def test_python_wss_echo_and_heartbeat(self):
        pings_before = self.tls_scrape().get("conduit_pings_sent_total")
        timeouts_before = self.tls_scrape().get("conduit_pong_timeouts_total")

        async def go():
            async with websockets.connect(self.url, ssl=self.ssl_context(), ping_interval=None,
                                          compression=None, max_size=1 << 20) as ws:
                self.assertIsNotNone(ws.transport.get_extra_info("ssl_object"))
                version = ws.transport.get_extra_info("ssl_object").version()
                self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
                await ws.send("hello over tls")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), "hello over tls")
                big = os.urandom(60000)
                await ws.send(big)
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), big)
                # Heartbeat over TLS: wait until the server has sent pings that websockets answered, then the
                # connection is still usable.
                await asyncio.to_thread(self.wait_tls_metric, "conduit_pings_sent_total",
                                        lambda v: v >= pings_before + 2)
                await ws.send("after pings")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), "after pings")
        asyncio.run(asyncio.wait_for(go(), 40))
        self.assertEqual(self.tls_scrape().get("conduit_pong_timeouts_total"), timeouts_before)

    def test_node_wss_echo_and_heartbeat(self):
        run_node("node_client.js", "wss_echo", self.url, self.cert)

    def test_plain_client_on_tls_port_is_refused_and_counted(self):
        before = self.tls_failures()
        # A plaintext upgrade request on the TLS port is not a TLS ClientHello.
        with self.assertRaises((AssertionError, opslib.EOF, ConnectionError, TimeoutError)):
            opslib.upgrade_status(self.server.port)
        # /metrics is only reachable over TLS on this port; read it over TLS.
        self.wait_tls_metric("conduit_handshake_failures_total", lambda v: v >= before + 1, reason="tls")
        self.assertGreaterEqual(self.tls_errors(), 1)
        self.assertIn("event=tls_error", self.server.stderr_text())

    def wait_tls_metric(self, name, predicate, timeout=15.0, **labels):
        deadline = time.monotonic() + timeout
        while True:
            v = self.tls_scrape().get(name, **labels)
            if predicate(v):
                return v
            self.assertLess(time.monotonic(), deadline, f"{name}{labels} stuck at {v}")
            time.sleep(0.05)

    def tls_scrape(self):
        import socket
        ctx = self.ssl_context()
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    try:
                        chunk = s.recv(65536)
                    except (ssl.SSLError, ConnectionResetError):
                        break
                    if not chunk:
                        break
                    data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        self.assertEqual(opslib.parse_head(head)[0], 200)
        samples, types = opslib.parse_prometheus(body.decode())
        return opslib.Metrics(samples, types, body.decode())

    def tls_failures(self):
        return self.tls_scrape().get("conduit_handshake_failures_total", reason="tls")

    def tls_errors(self):
        return self.tls_scrape().get("conduit_errors_total", kind="tls")


class TlsConfigErrors(unittest.TestCase):
    def test_missing_cert_file_exits_2_naming_tls_cert(self):
        with tempfile.TemporaryDirectory() as d:
            cert, key = make_self_signed(d)
            status, out = run_conduitd_to_exit(["--listen", "127.0.0.1:0", "--set", f"tls.cert={d}/nope.pem",
                                                "--set", f"tls.key={key}"])
            self.assertEqual(status, 2, out)
            self.assertIn("tls.cert", out)
            self.assertIn("nope.pem", out)
            self.assertNotIn("listening on", out)

    def test_missing_key_file_exits_2_naming_tls_key(self):
        with tempfile.TemporaryDirectory() as d:
            cert, key = make_self_signed(d)
            status, out = run_conduitd_to_exit(["--listen", "127.0.0.1:0", "--set", f"tls.cert={cert}",
                                                "--set", f"tls.key={d}/nokey.pem"])
            self.assertEqual(status, 2, out)
            self.assertIn("tls.key", out)

    def test_key_not_matching_cert_exits_2(self):
        with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
            cert, _ = make_self_signed(d1)
            _, other_key = make_self_signed(d2)
            status, out = run_conduitd_to_exit(["--listen", "127.0.0.1:0", "--set", f"tls.cert={cert}",
                                                "--set", f"tls.key={other_key}"])
            self.assertEqual(status, 2, out)
            self.assertIn("tls.key", out)

    def test_cert_file_that_is_not_pem_exits_2(self):
        with tempfile.TemporaryDirectory() as d:
            _, key = make_self_signed(d)
            junk = os.path.join(d, "junk.pem")
            with open(junk, "w") as f:
                f.write("not a certificate\n")
            status, out = run_conduitd_to_exit(["--listen", "127.0.0.1:0", "--set", f"tls.cert={junk}",
                                                "--set", f"tls.key={key}"])
            self.assertEqual(status, 2, out)
            self.assertIn("tls.cert", out)


if __name__ == "__main__":
    opslib.main()
