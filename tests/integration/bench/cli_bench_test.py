#!/usr/bin/python3
"""`conduit bench` and `conduit bench fanout` as a script sees them: the real
`conduit` binary against real `conduitd` servers started here on ports chosen
by the kernel (echo, broadcast, TLS, and one that closes every connection with
1009), checking stdout, stderr and the exit status.

What the CLI promises (docs/cli.md, `conduit bench --help`):
- a run that measured nothing, lost a connection early or saw a mismatched echo
  fails with exit status 6, and mismatched replies are not counted as messages;
- a bad URL is a usage error: exit 2, one line on stderr, no report;
- wss:// URLs work, with --ca or --insecure as for `connect`;
- progress lines end with "\\r" only when stderr is a terminal; fanout progress
  shows the percent done and deliveries/s;
- JSON reports use null for what was not measured.

Usage: cli_bench_test.py PATH_TO_CONDUIT PATH_TO_CONDUITD [unittest args]
"""
import json
import os
import pty
import queue
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

CONDUIT = None
CONDUITD = None
START_TIMEOUT = 30.0  # conduitd readiness, generous for a loaded 2-core machine
RUN_TIMEOUT = 120.0  # one bench run, everything included
READY_RE = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")


class Conduitd:
    """conduitd on 127.0.0.1:0 in the given mode; stopped (and reaped) by PID."""

    def __init__(self, mode, *sets):
        self.mode = mode
        self.sets = list(sets)
        self.proc = None
        self.port = None

    def __enter__(self):
        cmd = [CONDUITD, "--mode", self.mode, "--listen", "127.0.0.1:0"]
        for s in self.sets:
            cmd += ["--set", s]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        lines = queue.Queue()

        def pump():  # keep draining stdout so conduitd never blocks on it
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while self.port is None:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.__exit__(None, None, None)
                raise AssertionError("conduitd did not report 'listening on 127.0.0.1:PORT'")
            m = READY_RE.search(line)
            if m:
                self.port = int(m.group(1))
        return self

    def url(self, scheme="ws"):
        return f"{scheme}://127.0.0.1:{self.port}/"

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_bench(*args):
    """Runs `conduit bench ARGS` to the end; returns (status, stdout, stderr)."""
    proc = subprocess.run([CONDUIT, "bench", *args], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=RUN_TIMEOUT)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def json_report(testcase, stdout, stderr):
    lines = [l for l in stdout.splitlines() if l.strip()]
    testcase.assertEqual(len(lines), 1, f"expected one JSON line; stdout={stdout!r} stderr={stderr[-2000:]!r}")
    return json.loads(lines[0])


class BenchVerdictTest(unittest.TestCase):
    """Exit status and headline figures."""

    def test_echo_server_passes_and_unmeasured_values_are_null(self):
        with Conduitd("echo") as server:
            rc, out, err = run_bench("--connections", "4", "--duration", "500ms", "--json", server.url())
        r = json_report(self, out, err)
        self.assertEqual(rc, 0, f"{r}\n{err}")
        self.assertEqual(r["error"], "none")
        self.assertGreater(r["messages"], 0)
        self.assertEqual((r["mismatches"], r["closed_early"], r["protocol_errors"]), (0, 0, 0), r)
        # seconds is printed with 4 decimals: compare within that rounding.
        self.assertAlmostEqual(r["messages_per_second"], r["messages"] / r["seconds"],
                               delta=1.0 + r["messages_per_second"] * 1e-3)
        # No --server-pid: the server's CPU was not measured.
        self.assertIsNone(r["server_cpu_seconds"], r)
        self.assertIsNone(r["messages_per_server_cpu_second"], r)
        self.assertGreater(r["latency"]["p50_us"], 0)

    def test_server_cpu_is_a_number_when_measured(self):
        with Conduitd("echo") as server:
            rc, out, err = run_bench("--connections", "2", "--duration", "300ms", "--server-pid",
                                     str(server.proc.pid), "--json", server.url())
        r = json_report(self, out, err)
        self.assertEqual(rc, 0, f"{r}\n{err}")
        self.assertIsInstance(r["server_cpu_seconds"], float, r)
        self.assertGreaterEqual(r["server_cpu_seconds"], 0.0)
        self.assertIsInstance(r["messages_per_server_cpu_second"], (int, float), r)

    def test_broadcast_server_fails_and_mismatches_are_not_messages(self):
        # Against a broadcast server each connection also receives the other
        # three connections' messages: at least three of every four replies
        # are not its echo.
        with Conduitd("broadcast") as server:
            rc, out, err = run_bench("--connections", "4", "--duration", "500ms", "--json", server.url())
        r = json_report(self, out, err)
        self.assertEqual(rc, 6, f"{r}\n{err}")
        self.assertGreater(r["mismatches"], 0, r)
        self.assertLessEqual(3 * r["messages"], r["mismatches"], r)
        # seconds is printed with 4 decimals: compare within that rounding.
        self.assertAlmostEqual(r["messages_per_second"], r["messages"] / r["seconds"],
                               delta=1.0 + r["messages_per_second"] * 1e-3)
        self.assertIn("mismatch", err)

    def test_server_that_closes_every_connection_fails(self):
        # 100-byte messages over a 16-byte limit: conduitd closes each
        # connection with 1009 at its first message.
        with Conduitd("echo", "limits.max_message_bytes=16") as server:
            rc, out, err = run_bench("--connections", "3", "--size", "100", "--duration", "500ms", "--json",
                                     server.url())
        r = json_report(self, out, err)
        self.assertEqual(rc, 6, f"{r}\n{err}")
        self.assertEqual(r["messages"], 0, r)
        self.assertEqual(r["closed_early"], 3, r)
        self.assertEqual(r["close_codes"], {"1009": 3}, r)
        # Nothing arrived: no latency figures.
        self.assertEqual(r["latency"]["count"], 0)
        for key in ("mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us"):
            self.assertIsNone(r["latency"][key], r)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("closed early", err)

    def test_text_report_of_a_failed_run(self):
        with Conduitd("echo", "limits.max_message_bytes=16") as server:
            rc, out, err = run_bench("--connections", "2", "--size", "100", "--duration", "300ms", server.url())
        self.assertEqual(rc, 6, f"{out}\n{err}")
        self.assertIn("messages:      0", out)
        self.assertIn("1009: 2", out)

    def test_fanout_with_the_publisher_closed_early_fails(self):
        # The publisher's 100-byte messages exceed the limit: conduitd closes
        # the publisher with 1009 and no subscriber gets anything.
        with Conduitd("broadcast", "limits.max_message_bytes=16") as server:
            rc, out, err = run_bench("fanout", "--subscribers", "3", "--size", "100", "--messages", "10",
                                     "--timeout", "3s", "--json", server.url())
        r = json_report(self, out, err)
        self.assertEqual(rc, 6, f"{r}\n{err}")
        self.assertEqual(r["deliveries"], 0, r)
        self.assertGreaterEqual(r["closed_early"], 1, r)
        self.assertIsNone(r["deliveries_per_second"], r)
        self.assertIsNone(r["seconds"], r)
        self.assertIsNone(r["server_cpu_seconds"], r)

    def test_fanout_passes_against_a_broadcast_server(self):
        with Conduitd("broadcast") as server:
            rc, out, err = run_bench("fanout", "--subscribers", "5", "--messages", "50", "--window", "4", "--json",
                                     server.url())
        r = json_report(self, out, err)
        self.assertEqual(rc, 0, f"{r}\n{err}")
        self.assertEqual(r["deliveries"], 5 * 50, r)
        self.assertEqual(r["closed_early"], 0, r)
        self.assertGreater(r["deliveries_per_second"], 0)
        self.assertIsNone(r["deliveries_per_server_cpu_second"], r)


class BenchUrlTest(unittest.TestCase):
    """A bad URL is a usage error, as for `connect` and `send`."""

    def check_usage_error(self, *args):
        rc, out, err = run_bench(*args)
        self.assertEqual(rc, 2, f"stdout={out!r} stderr={err!r}")
        self.assertEqual(out, "", "no report for a usage error")
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("URL", err)
        self.assertNotIn("\r", err)

    def test_echo_bad_scheme(self):
        self.check_usage_error("--json", "http://127.0.0.1:1/")

    def test_echo_not_a_url(self):
        self.check_usage_error("not a url")

    def test_fanout_bad_port(self):
        self.check_usage_error("fanout", "--json", "ws://127.0.0.1:99999/")

    def test_unreadable_ca_file(self):
        # Checked before any connection is tried: no server needed.
        rc, out, err = run_bench("--ca", "/nonexistent/ca.pem", "--json", "wss://127.0.0.1:1/")
        self.assertEqual(rc, 2, f"stdout={out!r} stderr={err!r}")
        self.assertEqual(out, "")
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn("/nonexistent/ca.pem", err)


class BenchTlsTest(unittest.TestCase):
    """wss:// with --ca (verified) and --insecure, against conduitd with TLS."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        d = cls.dir.name

        def openssl(*args):
            subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                "-subj", "/CN=conduit bench test CA")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj",
                "/CN=localhost")
        with open(os.path.join(d, "san.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
                "server.pem", "-days", "2", "-extfile", "san.ext")
        cls.ca = os.path.join(d, "ca.pem")
        cls.tls = (f"tls.cert={os.path.join(d, 'server.pem')}", f"tls.key={os.path.join(d, 'server.key')}")

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_echo_over_wss_with_ca(self):
        with Conduitd("echo", *self.tls) as server:
            rc, out, err = run_bench("--connections", "3", "--duration", "300ms", "--ca", self.ca, "--json",
                                     server.url("wss"))
        r = json_report(self, out, err)
        self.assertEqual(rc, 0, f"{r}\n{err}")
        self.assertGreater(r["messages"], 0)
        self.assertEqual(r["mismatches"], 0)

    def test_echo_over_wss_insecure(self):
        with Conduitd("echo", *self.tls) as server:
            rc, out, err = run_bench("--connections", "2", "--duration", "300ms", "--insecure", "--json",
                                     server.url("wss"))
        r = json_report(self, out, err)
        self.assertEqual(rc, 0, f"{r}\n{err}")
        self.assertGreater(r["messages"], 0)

    def test_untrusted_certificate_fails(self):
        with Conduitd("echo", *self.tls) as server:
            rc, out, err = run_bench("--connections", "2", "--duration", "300ms", "--json", server.url("wss"))
        r = json_report(self, out, err)
        self.assertEqual(rc, 6, f"{r}\n{err}")
        self.assertEqual(r["error"], "handshake failed", r)
        self.assertIn("certificate", r["error_detail"], r)

    def test_fanout_over_wss(self):
        with Conduitd("broadcast", *self.tls) as server:
            rc, out, err = run_bench("fanout", "--subscribers", "4", "--messages", "30", "--ca", self.ca, "--json",
                                     server.url("wss"))
        r = json_report(self, out, err)
        self.assertEqual(rc, 0, f"{r}\n{err}")
        self.assertEqual(r["deliveries"], 4 * 30, r)

    def test_fanout_over_wss_in_worker_processes(self):
        with Conduitd("broadcast", *self.tls) as server:
            rc, out, err = run_bench("fanout", "--processes", "2", "--subscribers", "4", "--messages", "30", "--ca",
                                     self.ca, "--json", server.url("wss"))
        r = json_report(self, out, err)
        self.assertEqual(rc, 0, f"{r}\n{err}")
        self.assertEqual(r["processes"], 2, r)
        self.assertEqual(r["deliveries"], 4 * 30, r)


class BenchProgressTest(unittest.TestCase):
    """Progress lines: plain lines into a pipe or file, redrawn with \\r on a terminal."""

    def first_progress(self, args, use_pty):
        """Starts a long bench run, returns the stderr bytes up to its first
        complete progress line, then interrupts the run (SIGINT) and reaps it."""
        if use_pty:
            master, slave = pty.openpty()
            proc = subprocess.Popen([CONDUIT, "bench", *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=slave)
            os.close(slave)
            fd = master
        else:
            proc = subprocess.Popen([CONDUIT, "bench", *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
            fd = proc.stderr.fileno()
        seen = b""
        try:
            deadline = time.monotonic() + 60
            # A progress line is complete when the next one starts ("[" after
            # a "\r" or "\n"), or at its own end of line.
            while not re.search(rb"\[[ \d.]+s\][^\r\n]*[\r\n]", seen):
                remaining = deadline - time.monotonic()
                self.assertGreater(remaining, 0, f"no progress line within 60 s: {seen!r}")
                ready, _, _ = select.select([fd], [], [], remaining)
                if not ready:
                    continue
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # pty closed
                    chunk = b""
                self.assertTrue(chunk, f"bench ended before a progress line: {seen!r}")
                seen += chunk
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if use_pty:
                os.close(master)
            else:
                proc.stderr.close()
        return seen

    def test_echo_progress_into_a_pipe_has_no_carriage_return(self):
        with Conduitd("echo") as server:
            seen = self.first_progress(["--connections", "2", "--duration", "60s", server.url()], use_pty=False)
        self.assertNotIn(b"\r", seen)
        self.assertRegex(seen, rb"\[ *\d+\.\ds\] measuring 2 connections, \d+ messages, \d+ msg/s, 0 errors\n")

    def test_echo_progress_on_a_terminal_is_redrawn(self):
        with Conduitd("echo") as server:
            seen = self.first_progress(["--connections", "2", "--duration", "60s", server.url()], use_pty=True)
        self.assertIn(b"\r[", seen)

    def test_fanout_progress_shows_percent_and_rate(self):
        with Conduitd("broadcast") as server:
            seen = self.first_progress(["fanout", "--subscribers", "3", "--window", "1", "--messages", "100000000",
                                        "--timeout", "60s", server.url()], use_pty=False)
        self.assertNotIn(b"\r", seen)
        self.assertRegex(seen, rb"\[ *\d+\.\ds\] +\d+\.\d+% done, \d+ of 300000000 deliveries, \d+ deliveries/s, "
                               rb"0 errors\n")


def main():
    global CONDUIT, CONDUITD
    if len(sys.argv) < 3:
        sys.exit("usage: cli_bench_test.py PATH_TO_CONDUIT PATH_TO_CONDUITD [unittest args]")
    CONDUIT, CONDUITD = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)


if __name__ == "__main__":
    main()
