"""Test harness for conduitd integration tests.

Starts conduitd as a child process on a free port chosen by the kernel
(`--listen 127.0.0.1:0`), waits for its readiness line
`listening on 127.0.0.1:PORT` (bounded), and stops it by PID. A conduitd that
exits on its own with an error status, or dies of a signal we did not send
(e.g. a sanitizer abort), fails the test with the tail of its stderr.

Also holds RawWS, a deliberately minimal WebSocket client on a plain socket,
used to send what real clients never send (protocol violations, half requests)
and to see the exact frames the server writes.

Run a test module as:
    /usr/bin/python3 test_x.py --conduitd PATH [unittest args...]
"""

import base64
import hashlib
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

CONDUITD = None  # path to the conduitd binary, set by main()
HERE = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.path.abspath(os.path.join(HERE, "..", ".."))

# Generous bounds: the same tests run under ASan/UBSan and TSan on 2 shared cores.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
IO_TIMEOUT = 10.0

READY_RE = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Conduitd:
    """A conduitd child process. Use as a context manager. The tests here speak raw WebSocket to an
    echo server, so the mode is echo unless given (mode=None: conduitd's own default, pubsub)."""

    def __init__(self, *args, sets=None, mode="echo"):
        self.args = list(args)
        self.sets = dict(sets or {})
        self.mode = mode
        self.proc = None
        self.port = None
        self.stdout_lines = []
        self._stderr_file = None
        self._signalled = False

    def command(self):
        cmd = [CONDUITD, "--listen", "127.0.0.1:0"]
        if self.mode:
            cmd += ["--mode", self.mode]
        for k, v in self.sets.items():
            cmd += ["--set", f"{k}={v}"]
        return cmd + self.args

    def start(self):
        self._stderr_file = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr_file)
        lines = queue.Queue()

        def pump():  # keeps draining stdout so conduitd never blocks on a full pipe
            for line in self.proc.stdout:
                self.stdout_lines.append(line)
                lines.put(line)
            lines.put(None)

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                msg = f"conduitd printed no readiness line within {START_TIMEOUT}s\n" + self.diagnostics()
                self._kill()
                raise AssertionError(msg)
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=STOP_TIMEOUT)
                msg = f"conduitd exited with status {self.proc.returncode} before it was ready\n" + self.diagnostics()
                self._release()
                raise AssertionError(msg)
            m = READY_RE.search(line)
            if m:
                self.port = int(m.group(1))
                if self.port == 0:
                    raise AssertionError("conduitd reported port 0: it must print the bound port")
                return self

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/"

    def stderr_text(self):
        if not self._stderr_file or self._stderr_file.closed:
            return ""
        self._stderr_file.seek(0)
        return self._stderr_file.read().decode("utf-8", "replace")

    def diagnostics(self):
        err = self.stderr_text()
        tail = "\n".join(err.splitlines()[-60:])
        out = b"".join(self.stdout_lines[-20:]).decode("utf-8", "replace")
        return f"command: {' '.join(self.command())}\n--- conduitd stdout (tail)\n{out}--- conduitd stderr (tail)\n{tail}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _kill(self):
        if self.alive():
            self._signalled = True
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
        self._release()

    def _release(self):
        """Closes our ends of the pipes once the process is gone."""
        if self.proc is None or self.proc.poll() is None:
            return
        self._pump.join(timeout=STOP_TIMEOUT)
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if self._stderr_file and not self._stderr_file.closed:
            self._stderr_file.close()

    def stop(self):
        """SIGTERM, bounded wait, SIGKILL. Fails if conduitd had died on its own or exits with an error."""
        if self.proc is None:
            return
        try:
            self._stop()
        finally:
            self._release()

    def _stop(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"conduitd died during the test (status {self.proc.returncode})\n" + self.diagnostics())
        self._signalled = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
            raise AssertionError(f"conduitd did not exit within {STOP_TIMEOUT}s of SIGTERM\n" + self.diagnostics())
        rc = self.proc.returncode
        # conduitd handles SIGTERM (drain, then exit 0): death by the signal's default action
        # means the handler is gone, and a sanitizer report at exit (leaks) is a non-zero status.
        if rc != 0:
            raise AssertionError(f"conduitd exited with status {rc} after SIGTERM\n" + self.diagnostics())

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            # Keep the original failure; just make sure the process is gone.
            if self.proc is not None and self._stderr_file and not self._stderr_file.closed:
                sys.stderr.write(self.diagnostics() + "\n")
            self._kill()
            return False
        self.stop()
        return False


def run_conduitd_to_exit(args, timeout=15.0):
    """Runs conduitd with args (no --listen added) and returns (status, stdout+stderr)."""
    p = subprocess.run([CONDUITD] + list(args), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


# ---- raw sockets ------------------------------------------------------------


class EOF(Exception):
    """The server closed the TCP connection."""


def connect_tcp(port, timeout=IO_TIMEOUT):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def http_request(port, request: bytes, timeout=IO_TIMEOUT):
    """Sends a raw HTTP request; returns (status, headers dict lower-cased, body) of the response.

    Reads the body by Content-Length when given, else until the server closes."""
    with connect_tcp(port, timeout) as s:
        s.sendall(request)
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in buf:
            chunk = _recv_until(s, deadline)
            if not chunk:
                raise EOF(f"connection closed before a full response head; got {buf!r}")
            buf += chunk
        head, body = buf.split(b"\r\n\r\n", 1)
        status, headers = parse_head(head)
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(body) < n:
                chunk = _recv_until(s, deadline)
                if not chunk:
                    break
                body += chunk
        elif headers.get("transfer-encoding", "").lower() != "chunked":
            while True:
                chunk = _recv_until(s, deadline)
                if not chunk:
                    break
                body += chunk
        return status, headers, body


def _recv_until(s, deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out waiting for the server")
    s.settimeout(left)
    try:
        return s.recv(65536)
    except ConnectionResetError:
        return b""


def parse_head(head: bytes):
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        raise AssertionError(f"not an HTTP status line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(m.group(1)), headers


def upgrade_request(path="/", key=None, version="13", extensions=None, extra=""):
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n")
    if extensions:
        req += f"Sec-WebSocket-Extensions: {extensions}\r\n"
    return (req + extra + "\r\n").encode(), key


def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, length=None):
    """One frame as a client would write it (masked by default). length overrides the header's length."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + xor_mask(payload, key)


def xor_mask(data, key):
    if not data:
        return b""
    k = (key * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(len(data), "big")


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, payload, masked):
        self.fin, self.rsv, self.opcode, self.payload, self.masked = fin, rsv, opcode, payload, masked

    @property
    def close_code(self):
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return f"Frame(op={self.opcode:#x} fin={self.fin} rsv={self.rsv} len={len(self.payload)} {p!r})"


OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class RawWS:
    """A WebSocket client on a plain socket that does exactly what it is told."""

    def __init__(self, port, path="/", extensions=None, timeout=IO_TIMEOUT, handshake=True):
        self.sock = connect_tcp(port, timeout)
        self.buf = b""
        self.response_headers = {}
        if handshake:
            self.handshake(path, extensions, timeout)

    def handshake(self, path="/", extensions=None, timeout=IO_TIMEOUT):
        req, key = upgrade_request(path, extensions=extensions)
        self.sock.sendall(req)
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            chunk = _recv_until(self.sock, deadline)
            if not chunk:
                raise EOF(f"closed during the handshake; got {self.buf!r}")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status, headers = parse_head(head)
        if status != 101:
            raise AssertionError(f"expected 101, got {status}: {head!r}")
        if headers.get("sec-websocket-accept") != accept_for(key):
            raise AssertionError(f"wrong Sec-WebSocket-Accept: {headers.get('sec-websocket-accept')!r}")
        self.response_headers = headers

    def send(self, data: bytes):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(encode_frame(opcode, payload, **kw))

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            chunk = _recv_until(self.sock, deadline)
            if not chunk:
                raise EOF(f"server closed the connection (had {len(self.buf)} of {n} bytes buffered)")
            self.buf += chunk

    def _take(self, n, deadline):
        self._fill(n, deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self, timeout=IO_TIMEOUT):
        deadline = time.monotonic() + timeout
        b0, b1 = self._take(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8, deadline))[0]
        masked = bool(b1 & 0x80)
        key = self._take(4, deadline) if masked else None
        payload = self._take(n, deadline)
        if masked:
            payload = xor_mask(payload, key)
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload, masked)

    def recv_message(self, timeout=IO_TIMEOUT):
        """Next data message (reassembled), answering nothing; returns (opcode, payload, frames)."""
        deadline = time.monotonic() + timeout
        frames = []
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode in (OP_PING, OP_PONG):
                continue
            if f.opcode == OP_CLOSE:
                raise AssertionError(f"expected a message, got close {f.close_code} {f.payload[2:]!r}")
            frames.append(f)
            if f.fin:
                return frames[0].opcode, b"".join(x.payload for x in frames), frames

    def expect_close(self, code, timeout=IO_TIMEOUT, reply=True):
        """Reads until a close frame arrives; asserts its code; answers it; returns the frame."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            try:
                f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            except EOF:
                raise AssertionError(f"expected close {code}, the connection ended without a close frame; "
                                     f"frames before: {seen}")
            except (TimeoutError, socket.timeout):
                raise AssertionError(f"expected close {code} within {timeout}s, got none; frames before: {seen}")
            if f.opcode == OP_CLOSE:
                if f.close_code != code:
                    raise AssertionError(f"expected close {code}, got {f.close_code} reason {f.payload[2:]!r}")
                if f.masked:
                    raise AssertionError("server sent a masked close frame")
                if reply:
                    try:
                        self.send_frame(OP_CLOSE, close_payload(code))
                    except OSError:
                        pass
                return f
            seen.append(f)

    def wait_eof(self, timeout=IO_TIMEOUT):
        """Waits until the server closes TCP; returns seconds waited. Frames arriving meanwhile are returned too."""
        start = time.monotonic()
        deadline = start + timeout
        frames = []
        while True:
            try:
                frames.append(self.recv_frame(max(0.001, deadline - time.monotonic())))
            except EOF:
                return time.monotonic() - start, frames
            except (TimeoutError, socket.timeout):
                raise AssertionError(f"server did not close the TCP connection within {timeout}s; frames: {frames}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def run_node(script, *args, timeout=60):
    """Runs a Node peer script from this folder; returns its stdout; fails with its output on non-zero exit."""
    node = os.environ.get("CONDUIT_NODE", "node")
    p = subprocess.run([node, os.path.join(HERE, script)] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout, cwd=HERE)
    out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        raise AssertionError(f"node {script} {' '.join(map(str, args))} failed (status {p.returncode}):\n{out}")
    return out


def main():
    global CONDUITD
    argv = list(sys.argv)
    if "--conduitd" not in argv:
        sys.exit("usage: test_x.py --conduitd PATH [unittest args]")
    i = argv.index("--conduitd")
    CONDUITD = os.path.abspath(argv[i + 1])
    del argv[i:i + 2]
    if not os.access(CONDUITD, os.X_OK):
        sys.exit(f"conduitd not found or not executable: {CONDUITD}")
    unittest.main(module="__main__", argv=argv, verbosity=2)
