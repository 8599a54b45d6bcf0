"""TLS: a self-signed certificate made by the test with openssl; Python websockets and
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
        # A plaintext upgrade request on the TLS port is not a TLS ClientHello: the server ends the
        # connection at once (at most a TLS alert first). Waiting out a timeout is not a refusal.
        req, _ = opslib.upgrade_request("/")
        got = b""
        with opslib.conduitd.connect_tcp(self.server.port) as s:
            s.sendall(req)
            s.settimeout(5.0)
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
            except ConnectionResetError:
                pass
            except TimeoutError:
                self.fail(f"a plaintext request on the TLS port was not refused within 5 s (got {got!r})")
        self.assertFalse(got.startswith(b"HTTP/"), f"plaintext answered in plaintext on the TLS port: {got!r}")
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


class PermissiveTlsServer:
    """Control peer: a Python TLS server that accepts TLS 1.0+ at OpenSSL security level 0 and allows
    renegotiation. Proves that this machine's client side can offer what conduitd must refuse, so a
    refusal measured against conduitd is conduitd's and not the client library's."""

    def __init__(self, cert, key):
        import socket
        import threading
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1
        self.ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(20)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(raw, server_side=True) as t:
                    t.settimeout(10)
                    while t.recv(4096):  # reading lets OpenSSL process a renegotiation
                        pass
            except (OSError, ssl.SSLError):
                pass

    def close(self):
        self.sock.close()


def old_tls_handshake(port, version):
    """TLS handshake offering only `version` (security level 0 so OpenSSL offers it at all);
    returns the negotiated version, or raises ssl.SSLError / OSError."""
    import socket
    import warnings
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as t:
            return t.version()


def renegotiation_attempt(port):
    """Connects with `openssl s_client -tls1_2`, asks for a renegotiation (its R command) once the
    handshake is done, and returns s_client's output once the renegotiation was refused (s_client
    ends), or completed (the certificate is verified again after RENEGOTIATING)."""
    import subprocess
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    os.set_blocking(p.stdout.fileno(), False)
    out = b""

    def pump_until(done, timeout):
        nonlocal out
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            chunk = p.stdout.read()
            if chunk:
                out += chunk
            elif p.poll() is not None:
                return
            else:
                time.sleep(0.02)

    try:
        pump_until(lambda: b"Verify return code" in out, 30)  # s_client's summary: handshake done
        p.stdin.write(b"R\n")
        p.stdin.flush()
        pump_until(lambda: b"verify return:" in out.partition(b"RENEGOTIATING")[2] or b"no renegotiation" in out, 30)
    finally:
        p.kill()
        p.wait(10)
    return out.decode("utf-8", "replace")


class TlsHardening(unittest.TestCase):
    """docs/configuration.md (tls.cert): TLS 1.2+, no compression, no renegotiation."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.cert, cls.key = make_self_signed(cls.tmp.name)
        cls.server = Conduitd(mode="echo", sets={"tls.cert": cls.cert, "tls.key": cls.key}).start()
        cls.control = PermissiveTlsServer(cls.cert, cls.key)

    @classmethod
    def tearDownClass(cls):
        cls.control.close()
        cls.server.stop()
        cls.tmp.cleanup()

    def test_tls_1_0_and_1_1_refused(self):
        for version, name in ((ssl.TLSVersion.TLSv1, "TLSv1"), (ssl.TLSVersion.TLSv1_1, "TLSv1.1")):
            with self.subTest(version=name):
                self.assertEqual(old_tls_handshake(self.control.port, version), name,
                                 "control: this machine's client must be able to speak the old version")
                with self.assertRaises((ssl.SSLError, ConnectionResetError)) as e:
                    got = old_tls_handshake(self.server.port, version)
                    self.fail(f"conduitd accepted {got}")
                self.assertNotIsInstance(e.exception, TimeoutError)
        self.assertEqual(old_tls_handshake(self.server.port, ssl.TLSVersion.TLSv1_2), "TLSv1.2")
        self.assertIn('reason="error:0A000102:SSL routines::unsupported protocol"', self.server.stderr_text())

    def test_no_renegotiation(self):
        # Control: `openssl s_server -client_renegotiation` renegotiates when asked (OpenSSL 3 servers
        # refuse client-initiated renegotiation by default, Python's ssl server always).
        import subprocess
        srv = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", self.cert,
                                "-key", self.key, "-tls1_2", "-client_renegotiation"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            import re
            import select
            printed = b""  # read from the fd itself: a buffered readline could hold the line select waits for
            deadline = time.monotonic() + 30
            while not (m := re.search(rb"ACCEPT 127\.0\.0\.1:(\d+)\n", printed)):  # its readiness line
                ready, _, _ = select.select([srv.stdout], [], [], max(0.0, deadline - time.monotonic()))
                self.assertTrue(ready, f"openssl s_server printed no ACCEPT line within 30 s: {printed!r}")
                chunk = os.read(srv.stdout.fileno(), 4096)
                self.assertTrue(chunk, f"openssl s_server ended before accepting: {printed!r}")
                printed += chunk
            control = renegotiation_attempt(int(m.group(1)))
        finally:
            srv.kill()
            srv.wait(10)
        self.assertIn("RENEGOTIATING", control, control)
        self.assertNotIn("no renegotiation", control, "control: a permissive server renegotiates")
        out = renegotiation_attempt(self.server.port)
        self.assertIn("RENEGOTIATING", out, out)
        self.assertIn("no renegotiation", out, f"conduitd must refuse to renegotiate:\n{out}")

    def test_no_tls_compression(self):
        import socket
        ctx = ssl.create_default_context(cafile=self.cert)
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as t:
                self.assertIsNone(t.compression())


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
