#!/usr/bin/python3
"""`conduit sub`, `conduit pub` and `conduit token` against a real
`conduitd --mode pubsub` started here on a port chosen by the kernel (and
restarted on the same port), stopped by PID.

Covers: a sub/pub round trip (stdout JSON lines, pub's {"offset","epoch"});
pub from stdin; pub over the HTTP API (--http, --api-key) and its refusals;
exit codes (usage 2, connect failure 3, timeout 5, refusal 7); sub across a
restart of conduitd (history lost: recovery failure reported on stderr, then
delivery in the new epoch; --fail-on-gap exits 8); tokens minted by
`conduit token` decoded and verified here with hmac, and accepted or refused
by conduitd according to their channel patterns.

Usage: cli_channels_test.py PATH_TO_CONDUIT PATH_TO_CONDUITD
"""
import base64
import hashlib
import hmac
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

CONDUIT = None
CONDUITD = None
STEP = 30.0  # seconds: upper bound of any single wait below
READY_RE = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")


class Conduitd:
    """conduitd --mode pubsub on 127.0.0.1:PORT (0 = kernel's choice); stopped by PID."""

    def __init__(self, *sets, port=0):
        self.sets = list(sets)
        self.port = port
        self.proc = None
        self.stderr = tempfile.TemporaryFile()

    def __enter__(self):
        cmd = [CONDUITD, "--mode", "pubsub", "--listen", f"127.0.0.1:{self.port}"]
        for s in self.sets:
            cmd += ["--set", s]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr)
        lines = queue.Queue()

        def pump():
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        self.pump = threading.Thread(target=pump, daemon=True)
        self.pump.start()
        deadline = time.monotonic() + STEP
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                log = self.log()
                self.stderr.close()
                raise AssertionError("conduitd did not report 'listening on 127.0.0.1:PORT'\n" + log)
            m = READY_RE.search(line)
            if m:
                self.port = int(m.group(1))
                return self

    def url(self, scheme="ws"):
        return f"{scheme}://127.0.0.1:{self.port}/"

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-4000:]

    def stop(self):
        """SIGTERM and a bounded wait; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STEP)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.pump.is_alive():
            self.pump.join(timeout=STEP)
        self.proc.stdout.close()
        return self.proc.returncode

    def __exit__(self, exc_type, *exc):
        died = self.proc.poll() is not None
        status = self.stop()
        log = self.log()
        self.stderr.close()
        if exc_type is None:
            assert not died, f"conduitd died during the test (status {status})\n{log}"
            assert status == 0, f"conduitd exited {status} after SIGTERM\n{log}"
        return False


class Sub:
    """`conduit sub` running in the background; stdout and stderr read line by line."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([CONDUIT, "sub", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = queue.Queue()
        self.err = queue.Queue()
        self.err_lines = []
        self.pumps = [threading.Thread(target=self._pump, args=(stream, q), daemon=True)
                      for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.pumps:
            t.start()

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line.decode("utf-8", "replace").rstrip("\n"))
        q.put(None)

    def publication(self):
        line = self.out.get(timeout=STEP)
        assert line is not None, "sub's stdout ended: " + "\n".join(self.err_lines)
        return json.loads(line)

    def wait_stderr(self, pattern, count=1):
        """Returns the count-th stderr line (from now on) matching pattern."""
        deadline = time.monotonic() + STEP
        while time.monotonic() < deadline:
            try:
                line = self.err.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.err_lines.append(line)
            if re.search(pattern, line):
                count -= 1
                if count == 0:
                    return line
        raise AssertionError(f"no stderr line matching {pattern!r}; stderr so far:\n" + "\n".join(self.err_lines))

    def finish(self, sig=None):
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STEP)
        finally:
            self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for t in self.pumps:  # they end at EOF, which the exit brings
            t.join(timeout=STEP)
        self.proc.stdout.close()
        self.proc.stderr.close()


def conduit(*args, stdin=None, timeout=STEP):
    run = subprocess.run([CONDUIT, *args], input=stdin, capture_output=True, timeout=timeout)
    return run.returncode, run.stdout.decode(), run.stderr.decode()


def b64url_decode(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def decode_jwt(token, secret):
    """The claims of an HS256 token after checking its header and signature."""
    header, payload, signature = token.split(".")
    expected = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(b64url_decode(signature), expected), "bad signature"
    assert json.loads(b64url_decode(header))["alg"] == "HS256"
    return json.loads(b64url_decode(payload))


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 to an upstream port. cut_and_hold() drops every
    connection through it and holds new ones (accepted, not forwarded) until
    release()."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open = threading.Event()
        self.open.set()
        self.live = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _serve(self, client):
        if not self.open.wait(timeout=STEP) or self.closed:
            client.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=STEP)
        upstream.settimeout(None)
        with self.lock:
            self.live += [client, upstream]
        back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        back.start()
        self._pump(client, upstream)
        back.join(timeout=STEP)
        with self.lock:
            for s in (client, upstream):
                if s in self.live:
                    self.live.remove(s)
        client.close()
        upstream.close()

    def cut_and_hold(self):
        self.open.clear()
        with self.lock:
            for s in self.live:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def release(self):
        self.open.set()

    def close(self):
        self.closed = True
        self.cut_and_hold()
        self.open.set()
        self.listener.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ChannelsCliTest(unittest.TestCase):
    def setUp(self):
        self.subs = []

    def tearDown(self):
        for s in self.subs:
            s.kill()

    def sub(self, *args):
        s = Sub(*args)
        self.subs.append(s)
        return s

    def test_sub_and_pub_round_trip(self):
        with Conduitd() as server:
            sub = self.sub(server.url(), "news", "chat:lobby", "--count", "3")
            sub.wait_stderr(r"^conduit: subscribed (news|chat:lobby) at offset 0 \(epoch \S+\)$", count=2)
            rc, out, err = conduit("pub", server.url(), "news", '{"title": "hello", "n": [1, 2]}')
            self.assertEqual(rc, 0, err)
            first = json.loads(out)
            self.assertEqual(first["offset"], 1)
            self.assertRegex(first["epoch"], r"^\S+$")
            self.assertEqual(out, json.dumps({"offset": 1, "epoch": first["epoch"]}, separators=(",", ":")) + "\n")
            rc, out, err = conduit("pub", server.url(), "chat:lobby", "-", stdin=b'  "from stdin"\n')
            self.assertEqual(rc, 0, err)
            lobby = json.loads(out)
            rc, out, err = conduit("pub", server.url(), "news", "12345678901234567890123")
            self.assertEqual(rc, 0, err)
            self.assertEqual(json.loads(out)["offset"], 2)
            lines = [sub.publication() for _ in range(3)]
            self.assertEqual(sub.finish(), 0)
        by_channel = {}
        for line in lines:
            by_channel.setdefault(line["channel"], []).append(line)
        self.assertEqual(by_channel["news"][0], {"channel": "news", "offset": 1, "epoch": first["epoch"],
                                                  "data": {"title": "hello", "n": [1, 2]}})
        self.assertEqual(by_channel["news"][1]["offset"], 2)
        self.assertEqual(by_channel["news"][1]["data"], 12345678901234567890123)
        self.assertEqual(by_channel["chat:lobby"], [{"channel": "chat:lobby", "offset": 1, "epoch": lobby["epoch"],
                                                     "data": "from stdin"}])

    def test_sub_stops_on_sigterm_with_exit_0(self):
        with Conduitd() as server:
            sub = self.sub(server.url(), "news")
            sub.wait_stderr(r"subscribed news")
            self.assertEqual(sub.finish(signal.SIGTERM), 0)
            sub.wait_stderr(r"^conduit: closed 1000")

    def test_pub_exit_codes(self):
        # 2: DATA that is not JSON, refused before connecting (nothing listens there).
        rc, out, err = conduit("pub", f"ws://127.0.0.1:{free_port()}/", "news", '{"a":')
        self.assertEqual((rc, out), (2, ""), err)
        self.assertIn("not one well-formed JSON value", err)
        # 2: a bad URL.
        rc, _, err = conduit("pub", "http//nope", "news", "1")
        self.assertEqual(rc, 2, err)
        # 3: nothing listening.
        rc, out, err = conduit("pub", f"ws://127.0.0.1:{free_port()}/", "news", "1")
        self.assertEqual((rc, out), (3, ""), err)
        # 5: a server that accepts TCP and never answers.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        try:
            rc, out, err = conduit("pub", "--timeout", "500ms", f"ws://127.0.0.1:{silent.getsockname()[1]}/", "news",
                                   "1")
        finally:
            silent.close()
        self.assertEqual((rc, out), (5, ""), err)
        self.assertIn("timeout", err)
        with Conduitd() as server:
            # 7: the server refuses the publish (invalid channel name: 400).
            rc, out, err = conduit("pub", server.url(), "bad*name", "1")
            self.assertEqual((rc, out), (7, ""), err)
            self.assertRegex(err, r"conduit: publish refused: 400 ")
            # 2: --api-key without --http, --token with --http.
            rc, _, err = conduit("pub", "--api-key", "k", server.url(), "news", "1")
            self.assertEqual(rc, 2, err)
            rc, _, err = conduit("pub", "--http", "--token", "t", server.url(), "news", "1")
            self.assertEqual(rc, 2, err)

    def test_pub_over_the_http_api(self):
        with Conduitd("api.key=sekrit") as server:
            sub = self.sub(server.url(), "news", "--count", "1")
            sub.wait_stderr(r"subscribed news")
            rc, out, err = conduit("pub", "--http", "--api-key", "sekrit", server.url("http"), "news", '{"via":"http"}')
            self.assertEqual(rc, 0, err)
            position = json.loads(out)
            self.assertEqual(position["offset"], 1)
            line = sub.publication()
            self.assertEqual(line, {"channel": "news", "offset": 1, "epoch": position["epoch"], "data": {"via": "http"}})
            self.assertEqual(sub.finish(), 0)
            # A ws:// URL is read as http:// for --http.
            rc, out, err = conduit("pub", "--http", "--api-key", "sekrit", server.url(), "news", "2")
            self.assertEqual((rc, json.loads(out)["offset"]), (0, 2), err)
            # Wrong or missing key: 401, exit 7, the server's message on stderr.
            for key_args in (["--api-key", "wrong"], []):
                rc, out, err = conduit("pub", "--http", *key_args, server.url("http"), "news", "1")
                self.assertEqual((rc, out), (7, ""), err)
                self.assertRegex(err, r"conduit: publish refused: HTTP 401: 401 ")
        # The API is off without api.key: 404.
        with Conduitd() as server:
            rc, out, err = conduit("pub", "--http", "--api-key", "x", server.url("http"), "news", "1")
            self.assertEqual((rc, out), (7, ""), err)
            self.assertIn("HTTP 404", err)
        # Nothing listening: 3.
        rc, _, err = conduit("pub", "--http", f"http://127.0.0.1:{free_port()}", "news", "1")
        self.assertEqual(rc, 3, err)

    def test_sub_across_a_restart_reports_the_lost_history_and_goes_on(self):
        with Conduitd() as first:
            port = first.port
            sub = self.sub(first.url(), "news", "--reconnect-initial", "50ms", "--reconnect-max", "200ms")
            sub.wait_stderr(r"subscribed news")
            for k in (1, 2):
                rc, _, err = conduit("pub", first.url(), "news", str(k))
                self.assertEqual(rc, 0, err)
            before = [sub.publication(), sub.publication()]
        self.assertEqual([p["offset"] for p in before], [1, 2])
        old_epoch = before[0]["epoch"]
        sub.wait_stderr(r"^conduit: reconnecting in \d+ ms")
        # History lives in memory: the restarted server gives "news" a new epoch.
        with Conduitd(port=port) as second:
            line = sub.wait_stderr(r"^conduit: recovery failed on news: epoch changed")
            self.assertIn(f"last delivered offset 2 epoch {old_epoch}", line)
            rc, out, err = conduit("pub", second.url(), "news", '"after"')
            self.assertEqual(rc, 0, err)
            new_epoch = json.loads(out)["epoch"]
            self.assertNotEqual(new_epoch, old_epoch)
            self.assertEqual(sub.publication(), {"channel": "news", "offset": 1, "epoch": new_epoch, "data": "after"})
            self.assertEqual(sub.finish(signal.SIGINT), 0)

    def test_sub_recovers_what_it_missed_while_its_connection_was_down(self):
        with Conduitd() as server:
            proxy = CuttableProxy(server.port)
            try:
                sub = self.sub(f"ws://127.0.0.1:{proxy.port}/", "news", "--reconnect-initial", "50ms",
                               "--reconnect-max", "200ms")
                sub.wait_stderr(r"subscribed news")
                rc, _, err = conduit("pub", server.url(), "news", '"live 1"')
                self.assertEqual(rc, 0, err)
                self.assertEqual(sub.publication()["data"], "live 1")
                # The connection drops; three publications are made while it is down.
                proxy.cut_and_hold()
                sub.wait_stderr(r"^conduit: reconnecting in \d+ ms")
                for k in (2, 3, 4):
                    rc, _, err = conduit("pub", server.url(), "news", f'"missed {k}"')
                    self.assertEqual(rc, 0, err)
                proxy.release()
                sub.wait_stderr(r"^conduit: recovered news: 3 missed publications, now at offset 4 ")
                rc, _, err = conduit("pub", server.url(), "news", '"live 5"')
                self.assertEqual(rc, 0, err)
                lines = [sub.publication() for _ in range(4)]
                self.assertEqual([(p["offset"], p["data"]) for p in lines],
                                 [(2, "missed 2"), (3, "missed 3"), (4, "missed 4"), (5, "live 5")])
                self.assertEqual(sub.finish(signal.SIGTERM), 0)
                self.assertFalse([l for l in sub.err_lines if "recovery failed" in l], sub.err_lines)
                # Nothing else was printed: no duplicate of a recovered publication.
                self.assertIsNone(sub.out.get(timeout=STEP))
            finally:
                proxy.close()

    def test_fail_on_gap_exits_8_after_a_restart(self):
        with Conduitd() as first:
            port = first.port
            sub = self.sub(first.url(), "news", "--fail-on-gap", "--reconnect-initial", "50ms",
                           "--reconnect-max", "200ms")
            sub.wait_stderr(r"subscribed news")
            rc, _, err = conduit("pub", first.url(), "news", "1")
            self.assertEqual(rc, 0, err)
            self.assertEqual(sub.publication()["offset"], 1)
        with Conduitd(port=port):
            self.assertEqual(sub.finish(), 8)

    def test_token_is_an_hs256_jwt_with_the_claims_asked_for(self):
        before = int(time.time())
        rc, out, err = conduit("token", "--secret", "s3cret", "--sub", "alice", "--subscribe", "chat:*",
                               "--subscribe", "news", "--publish", "chat:*", "--ttl", "1h")
        self.assertEqual(rc, 0, err)
        token = out.strip()
        self.assertEqual(out, token + "\n")
        claims = decode_jwt(token, "s3cret")
        self.assertEqual(claims["sub"], "alice")
        self.assertEqual(claims["channels"], {"subscribe": ["chat:*", "news"], "publish": ["chat:*"]})
        self.assertGreaterEqual(claims["exp"], before + 3600)
        self.assertLessEqual(claims["exp"], int(time.time()) + 3600)
        with self.assertRaises(AssertionError):
            decode_jwt(token, "other")
        # --ttl 0s: no expiry; no --subscribe/--publish: no channels claim.
        rc, out, err = conduit("token", "--secret", "s3cret", "--sub", "bob", "--ttl", "0s")
        self.assertEqual(rc, 0, err)
        self.assertEqual(decode_jwt(out.strip(), "s3cret"), {"sub": "bob"})
        # --secret-file: trailing line breaks are not part of the secret (as for auth.jwt_secret_file).
        with tempfile.NamedTemporaryFile("w", suffix=".secret") as f:
            f.write("s3cret\r\n\n")
            f.flush()
            rc, out, err = conduit("token", "--secret-file", f.name, "--sub", "carol")
            self.assertEqual(rc, 0, err)
            self.assertEqual(decode_jwt(out.strip(), "s3cret")["sub"], "carol")
        # Usage errors: no secret, both, an unreadable file, a bad --ttl.
        for args in ([], ["--secret", "a", "--secret-file", "/dev/null"], ["--secret-file", "/nonexistent/x"],
                     ["--secret", "a", "--ttl", "soon"]):
            rc, out, err = conduit("token", "--sub", "x", *args)
            self.assertEqual((rc, out), (2, ""), f"{args}: {err}")

    def test_tokens_grant_what_their_patterns_say(self):
        def token(*args):
            rc, out, err = conduit("token", "--secret", "k3y", "--sub", "alice", *args)
            self.assertEqual(rc, 0, err)
            return out.strip()

        chat = token("--subscribe", "chat:*", "--publish", "chat:*")
        with Conduitd("auth.jwt_secret=k3y") as server:
            # No token: 401 at the handshake, exit 3.
            rc, _, err = conduit("pub", server.url(), "chat:a", "1")
            self.assertEqual(rc, 3, err)
            self.assertIn("401", err)
            # A token signed with another secret: 401 too.
            rc, out, err = conduit("token", "--secret", "wrong", "--sub", "mallory", "--publish", "*")
            rc, _, err = conduit("pub", "--token", out.strip(), server.url(), "chat:a", "1")
            self.assertEqual(rc, 3, err)
            sub = self.sub("--token", chat, server.url(), "chat:room:7", "--count", "1")
            sub.wait_stderr(r"subscribed chat:room:7")
            rc, out, err = conduit("pub", "--token", chat, server.url(), "chat:room:7", '"hi"')
            self.assertEqual(rc, 0, err)
            self.assertEqual(sub.publication()["data"], "hi")
            self.assertEqual(sub.finish(), 0)
            # Outside the patterns: 403 permission denied, exit 7.
            rc, out, err = conduit("pub", "--token", chat, server.url(), "news", "1")
            self.assertEqual((rc, out), (7, ""), err)
            self.assertRegex(err, r"publish refused: 403 ")
            denied = self.sub("--token", chat, server.url(), "news")
            self.assertEqual(denied.finish(), 7)
            denied.wait_stderr(r"^conduit: subscribe news refused: 403 ")


def main():
    global CONDUIT, CONDUITD
    CONDUIT, CONDUITD = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v"])


if __name__ == "__main__":
    main()
