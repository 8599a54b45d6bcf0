#!/usr/bin/python3
"""`conduit bench fanout` with its subscribers spread over worker processes
(`--processes K`), against a real `conduitd --mode broadcast` started here on a
port chosen by the kernel.

Checks the merged JSON report (every subscriber got every message in order,
deliveries == subscribers * messages, processes == K, latency present), that a
setup failure in the workers gives a clear error and exit status 6, and that no
worker process outlives its parent, even when the parent is killed.

Usage: cli_fanout_processes_test.py PATH_TO_CONDUIT PATH_TO_CONDUITD
"""
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

CONDUIT = None
CONDUITD = None
START_TIMEOUT = 30.0  # conduitd readiness, generous for a loaded 2-core machine
RUN_TIMEOUT = 120.0  # one `conduit bench fanout` run, everything included
READY_RE = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")


class Conduitd:
    """conduitd --mode broadcast on 127.0.0.1:0; stopped (and reaped) by PID."""

    def __init__(self, *sets):
        self.sets = list(sets)
        self.proc = None
        self.port = None
        self.stderr = tempfile.TemporaryFile()

    def __enter__(self):
        cmd = [CONDUITD, "--mode", "broadcast", "--listen", "127.0.0.1:0"]
        for s in self.sets:
            cmd += ["--set", s]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr)
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

    def url(self):
        return f"ws://127.0.0.1:{self.port}/"

    def __exit__(self, exc_type, *exc):
        """Stops conduitd gracefully (SIGTERM) and, unless the test already failed, checks it exited 0:
        a sanitizer finding at exit (a leak) or a crash in shutdown is a non-zero status."""
        died_on_its_own = self.proc.poll() is not None
        problem = None
        if died_on_its_own:
            problem = f"conduitd died during the test (status {self.proc.returncode})"
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
                if self.proc.returncode != 0:
                    problem = f"conduitd exited with status {self.proc.returncode} after SIGTERM"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problem = "conduitd did not exit within 30 s of SIGTERM"
        self.stderr.seek(0)
        err = self.stderr.read().decode("utf-8", "replace")
        self.stderr.close()
        if problem and exc_type is None:
            raise AssertionError(problem + "\n--- conduitd stderr (tail)\n" + "\n".join(err.splitlines()[-40:]))
        return False


def processes_with_token(token):
    """PIDs of live processes whose environment carries token (our conduit and its workers)."""
    needle = f"CONDUIT_FANOUT_TEST_TOKEN={token}".encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env.split(b"\0") and state != b"Z":
            pids.append(int(name))
    return pids


class FanoutProcessesTest(unittest.TestCase):
    def setUp(self):
        self.token = uuid.uuid4().hex
        self.env = dict(os.environ, CONDUIT_FANOUT_TEST_TOKEN=self.token)

    def tearDown(self):
        # Whatever happened, leave nothing behind (kill by PID).
        for pid in processes_with_token(self.token):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def assert_no_leftovers(self, within=10.0):
        deadline = time.monotonic() + within
        while True:
            left = processes_with_token(self.token)
            if not left:
                return
            if time.monotonic() >= deadline:
                self.fail(f"processes left behind: {left}")
            time.sleep(0.05)

    def run_fanout(self, url, *args):
        cmd = [CONDUIT, "bench", "fanout", *args, "--json", url]
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=RUN_TIMEOUT, env=self.env)
        lines = [l for l in proc.stdout.decode().splitlines() if l.startswith("{")]
        self.assertEqual(len(lines), 1, f"no JSON report; stdout={proc.stdout!r} stderr={proc.stderr[-2000:]!r}")
        return proc.returncode, json.loads(lines[0]), proc.stderr.decode(errors="replace")

    def test_three_processes_deliver_everything_in_order(self):
        subscribers, messages = 300, 200
        with Conduitd() as server:
            rc, r, err = self.run_fanout(server.url(), "--processes", "3", "--subscribers", str(subscribers),
                                         "--window", "8", "--messages", str(messages), "--timeout", "60s")
        self.assertEqual(rc, 0, f"{r}\n{err}")
        self.assertEqual(r["error"], "none", r)
        self.assertEqual(r["processes"], 3)
        self.assertEqual(r["subscribers"], subscribers)
        self.assertEqual(r["connect_failures"], 0)
        self.assertEqual(r["messages_published"], messages)
        self.assertEqual(r["expected_deliveries"], subscribers * messages)
        self.assertEqual(r["deliveries"], subscribers * messages)
        self.assertEqual((r["gaps"], r["out_of_order"], r["corrupt"], r["protocol_errors"]), (0, 0, 0, 0), r)
        self.assertGreater(r["seconds"], 0)
        self.assertGreater(r["deliveries_per_second"], 0)
        latency = r["latency"]
        self.assertEqual(latency["count"], subscribers * messages)
        for key in ("p50_us", "p90_us", "p99_us", "max_us", "mean_us"):
            self.assertIn(key, latency)
        self.assertGreater(latency["p50_us"], 0)
        self.assertLessEqual(latency["p50_us"], latency["p99_us"])
        self.assertLessEqual(latency["p99_us"], latency["max_us"])
        self.assert_no_leftovers()

    def test_splits_by_itself_when_the_file_limit_is_low(self):
        # RLIMIT_NOFILE 256 holds 256 - 64 = 192 subscribers per process: 400
        # subscribers need ceil(400 / 192) = 3 worker processes.
        import resource

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

        with Conduitd() as server:
            cmd = [CONDUIT, "bench", "fanout", "--subscribers", "400", "--window", "4", "--messages", "50",
                   "--timeout", "60s", "--json", server.url()]
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=RUN_TIMEOUT,
                                  env=self.env, preexec_fn=low_limit)
        r = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        self.assertEqual(proc.returncode, 0, f"{r}\n{proc.stderr[-2000:]!r}")
        self.assertEqual(r["processes"], 3, r)
        self.assertEqual(r["deliveries"], 400 * 50, r)
        self.assertEqual((r["gaps"], r["out_of_order"], r["corrupt"]), (0, 0, 0), r)
        self.assert_no_leftovers()

    def test_refused_subscribers_fail_clearly(self):
        # conduitd answers 503 beyond 50 connections: 90 subscribers in 3
        # workers cannot all connect.
        with Conduitd("server.max_connections=50") as server:
            rc, r, err = self.run_fanout(server.url(), "--processes", "3", "--subscribers", "90", "--messages", "20",
                                         "--timeout", "30s")
        self.assertEqual(rc, 6, f"{r}\n{err}")
        self.assertNotEqual(r["error"], "none", r)
        self.assertIn("503", r["error_detail"], r)
        self.assertEqual(r["processes"], 3)
        self.assertGreater(r["connect_failures"], 0)
        self.assertEqual(r["deliveries"], 0)
        self.assert_no_leftovers()

    def test_workers_do_not_outlive_a_killed_parent(self):
        with Conduitd() as server:
            cmd = [CONDUIT, "bench", "fanout", "--processes", "2", "--subscribers", "20", "--window", "1",
                   "--messages", "100000000", "--timeout", "60s", "--json", server.url()]
            parent = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, env=self.env)
            try:
                deadline = time.monotonic() + 30
                while len(processes_with_token(self.token)) < 3:  # the parent and its 2 workers
                    self.assertIsNone(parent.poll(), "conduit ended before its workers started")
                    self.assertLess(time.monotonic(), deadline, "worker processes did not start")
                    time.sleep(0.05)
                parent.kill()
                parent.wait(timeout=10)
            finally:
                if parent.poll() is None:
                    parent.kill()
                    parent.wait()
            # Workers see EOF on their stdin and end by themselves.
            self.assert_no_leftovers(within=20.0)


def main():
    global CONDUIT, CONDUITD
    if len(sys.argv) < 3:
        sys.exit("usage: cli_fanout_processes_test.py PATH_TO_CONDUIT PATH_TO_CONDUITD [unittest args]")
    CONDUIT, CONDUITD = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)


if __name__ == "__main__":
    main()
