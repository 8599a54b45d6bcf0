"""Shared helpers for the ops integration tests (operations and broadcast fan-out).

Reuses the echo tests' harness (tests/integration/echo/conduitd.py: Conduitd,
RawWS, http_request...) and adds what the ops tests need: a strict Prometheus
text parser, RSS of the server, a minimal asyncio WebSocket client for
hundreds of connections in one process, raw sockets with a tiny receive
buffer (peers that stop reading), and a self-signed certificate made with the
openssl CLI.

Run a module as: /usr/bin/python3 test_x.py --conduitd PATH [unittest args]
"""

import asyncio
import base64
import os
import re
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "echo"))

import conduitd  # noqa: E402  (tests/integration/echo/conduitd.py)
from conduitd import (EOF, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Conduitd, RawWS,  # noqa: E402,F401
                      accept_for, close_payload, encode_frame, http_request, parse_head, run_conduitd_to_exit,
                      upgrade_request)

NODE = os.environ.get("CONDUIT_NODE", "node")
TESTS_DIR = os.path.abspath(os.path.join(HERE, "..", ".."))


def main():
    conduitd.main()


# ---- metrics ---------------------------------------------------------------

_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$')
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_prometheus(text):
    """Parses Prometheus text exposition format 0.0.4 strictly.

    Returns {(name, frozenset(labels)): float}. Raises AssertionError on any line
    that is not a comment, a blank line or a well-formed sample, on a sample
    whose metric family has no TYPE, and on duplicate series."""
    samples = {}
    types = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 2 and parts[1] == "TYPE":
                if len(parts) != 4 or parts[3] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                    raise AssertionError(f"line {lineno}: bad TYPE line {line!r}")
                if parts[2] in types:
                    raise AssertionError(f"line {lineno}: second TYPE for {parts[2]}")
                types[parts[2]] = parts[3]
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise AssertionError(f"line {lineno}: not a Prometheus sample: {line!r}")
        name, _, label_text, value = m.group(1), m.group(2), m.group(3), m.group(4)
        labels = {}
        if label_text:
            pos = 0
            while pos < len(label_text):
                lm = _LABEL_RE.match(label_text, pos)
                if not lm or lm.end() == pos:
                    raise AssertionError(f"line {lineno}: bad labels in {line!r}")
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
        try:
            v = float(value)
        except ValueError:
            raise AssertionError(f"line {lineno}: bad value in {line!r}")
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in types and family not in types:
            raise AssertionError(f"line {lineno}: sample {name} without a TYPE line")
        if types.get(name) == "counter" and v < 0:
            raise AssertionError(f"line {lineno}: negative counter {line!r}")
        key = (name, frozenset(labels.items()))
        if key in samples:
            raise AssertionError(f"line {lineno}: duplicate series {line!r}")
        samples[key] = v
    return samples, types


class Metrics:
    def __init__(self, samples, types, text):
        self.samples, self.types, self.text = samples, types, text

    def get(self, name, **labels):
        """Value of one series. An absent series fails: conduitd exports every series (each label
        value of a labelled counter included) from start-up, so absence means a renamed or lost
        metric, and reading it as 0 would let every `== 0` check pass."""
        key = (name, frozenset(labels.items()))
        if key not in self.samples:
            same_name = sorted(dict(k[1]) for k in self.samples if k[0] == name)
            raise AssertionError(f"metric series {name}{labels or ''} is not exported"
                                 + (f"; series of that name: {same_name}" if same_name else ""))
        return self.samples[key]

    def has(self, name, **labels):
        return (name, frozenset(labels.items())) in self.samples


def scrape(port, timeout=10.0):
    req = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    status, headers, body = http_request(port, req, timeout)
    if status != 200:
        raise AssertionError(f"/metrics answered {status}")
    if not headers.get("content-type", "").startswith("text/plain"):
        raise AssertionError(f"/metrics content-type {headers.get('content-type')!r}")
    text = body.decode("utf-8")
    samples, types = parse_prometheus(text)
    return Metrics(samples, types, text)


def wait_metric(port, name, predicate, timeout=15.0, **labels):
    """Polls /metrics until predicate(value) holds; returns the value. Fails with the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        v = scrape(port).get(name, **labels)
        if predicate(v):
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{labels} = {v} did not reach the expected value within {timeout}s")
        time.sleep(0.05)


def get_status(port, path, timeout=10.0):
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    return http_request(port, req, timeout)


def conduitd_path():
    import conduitd
    return conduitd.CONDUITD


def sanitizer_build(binary):
    """True when binary links a sanitizer runtime: ASan keeps freed memory in a
    quarantine and adds shadow memory, so RSS no longer measures live memory."""
    import subprocess
    try:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "libasan" in out or "libtsan" in out


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def raw_upgrade(port, path="/", headers=None, timeout=10.0):
    """Sends an upgrade request with extra headers; returns (status, headers, sock, leftover).

    The caller owns (and must close) the socket."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    req, key = upgrade_request(path, extra=extra)
    s = conduitd.connect_tcp(port, timeout)
    s.sendall(req)
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf:
        chunk = conduitd._recv_until(s, deadline)
        if not chunk:
            s.close()
            raise EOF(f"closed before a full response head; got {buf!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    status, hdrs = parse_head(head)
    if status == 101 and hdrs.get("sec-websocket-accept") != accept_for(key):
        s.close()
        raise AssertionError("wrong Sec-WebSocket-Accept")
    return status, hdrs, s, rest


def upgrade_status(port, headers=None, path="/"):
    """(status, headers) of one upgrade attempt; the connection is closed afterwards."""
    status, hdrs, s, _ = raw_upgrade(port, path, headers)
    s.close()
    return status, hdrs


# ---- asyncio raw client ------------------------------------------------------


class AsyncWS:
    """A minimal WebSocket client on asyncio streams (cheap enough for 1000s per process)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port, path="/", headers=None, rcvbuf=None, limit=1 << 20):
        if rcvbuf:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=limit)
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=limit)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        req, key = upgrade_request(path, extra=extra)
        writer.write(req)
        head = await reader.readuntil(b"\r\n\r\n")
        status, hdrs = parse_head(head[:-4])
        if status != 101:
            writer.close()
            raise AssertionError(f"expected 101, got {status}")
        if hdrs.get("sec-websocket-accept") != accept_for(key):
            raise AssertionError("wrong Sec-WebSocket-Accept")
        ws = cls(reader, writer)
        ws.response_headers = hdrs
        return ws

    async def recv_frame(self):
        """(opcode, payload, fin); raises EOF when the server ends TCP."""
        try:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            if b1 & 0x80:
                raise AssertionError("server sent a masked frame")
            payload = await self.reader.readexactly(n) if n else b""
        except (asyncio.IncompleteReadError, ConnectionResetError) as e:
            raise EOF(str(e))
        return b0 & 0x0F, payload, bool(b0 & 0x80)

    async def recv_data(self):
        """Next data frame's (opcode, payload), answering pings; a close frame raises ClosedBy."""
        while True:
            op, payload, _ = await self.recv_frame()
            if op == OP_PING:
                self.send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                raise ClosedBy(payload)
            return op, payload

    def send_frame(self, opcode, payload=b""):
        self.writer.write(encode_frame(opcode, payload))

    def send_close(self, code=1000):
        try:
            self.send_frame(OP_CLOSE, close_payload(code))
        except (ConnectionError, RuntimeError):
            pass

    def abort(self):
        try:
            self.writer.transport.abort()
        except Exception:
            pass


class ClosedBy(Exception):
    """A close frame arrived."""

    def __init__(self, payload):
        self.code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        self.reason = payload[2:].decode("utf-8", "replace")
        super().__init__(f"close {self.code} {self.reason!r}")


# ---- blocking raw socket that never reads --------------------------------------


def stalled_client(port, rcvbuf=4096, timeout=10.0):
    """Completes a handshake on a socket with a tiny receive buffer and returns it (the caller stops reading)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    req, key = upgrade_request("/")
    s.sendall(req)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(1)  # byte by byte: never consume past the response head
        if not chunk:
            raise EOF("closed during handshake")
        buf += chunk
    status, hdrs = parse_head(buf[:-4])
    if status != 101:
        raise AssertionError(f"expected 101, got {status}")
    return s


def read_all_frames(sock, timeout=20.0):
    """Reads a socket until EOF or a close frame; returns (data_payloads, close_code, close_reason)."""
    sock.settimeout(timeout)
    buf = bytearray()
    datas = []
    deadline = time.monotonic() + timeout
    pos = 0
    while True:
        # parse what we have
        while True:
            if len(buf) - pos < 2:
                break
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            h = 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n = struct.unpack_from("!H", buf, pos + 2)[0]
                h = 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n = struct.unpack_from("!Q", buf, pos + 2)[0]
                h = 10
            if len(buf) - pos < h + n:
                break
            payload = bytes(buf[pos + h:pos + h + n])
            pos += h + n
            op = b0 & 0x0F
            if op == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return datas, code, payload[2:].decode("utf-8", "replace")
            if op in (OP_TEXT, OP_BINARY):
                datas.append(payload)
        if time.monotonic() > deadline:
            raise AssertionError(f"no close frame within {timeout}s ({len(datas)} messages read)")
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            chunk = b""
        except socket.timeout:
            raise AssertionError(f"no close frame within {timeout}s ({len(datas)} messages read)")
        if not chunk:
            return datas, None, "EOF without close frame"
        buf += chunk


# ---- TLS ---------------------------------------------------------------------


def make_self_signed(directory, cn="localhost"):
    """Makes a self-signed EC certificate with the openssl CLI; returns (cert_path, key_path)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={cn}",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def run_node(script, *args, timeout=60, env=None):
    """Runs a Node script from this folder; returns stdout; fails with its output on non-zero exit."""
    e = dict(os.environ)
    e["NODE_PATH"] = os.path.join(TESTS_DIR, "node_modules")
    e.update(env or {})
    p = subprocess.run([NODE, os.path.join(HERE, script)] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout, cwd=HERE, env=e)
    out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        raise AssertionError(f"node {script} {' '.join(map(str, args))} failed (status {p.returncode}):\n{out}")
    return out


def log_events(text):
    """Parses text-format log lines into dicts of key=value (quoted values unquoted)."""
    out = []
    for line in text.splitlines():
        i = line.find("event=")
        if i < 0:
            continue
        fields = {}
        for m in re.finditer(r'(\w+)=("((?:[^"\\]|\\.)*)"|\S*)', line[i:]):
            fields[m.group(1)] = m.group(3) if m.group(3) is not None else m.group(2)
        out.append(fields)
    return out


# ---- fast asyncio client (Protocol based: no per-frame buffer memmove) ---------


class FastWS(asyncio.Protocol):
    """Client connection on a raw asyncio Protocol, for many connections and many messages per process.

    Parses frames in place from one buffer (compacted lazily), answers pings, and calls
    on_data(ws, opcode, payload_memoryview) for each data frame and on_close(ws, code, reason) once
    when a close frame arrives or TCP ends (code None then)."""

    def __init__(self, path="/", headers=None, on_data=None, on_close=None):
        self.path, self.headers = path, headers or {}
        self.on_data, self.on_close = on_data, on_close
        self.buf = bytearray()
        self.pos = 0
        self.open = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.transport = None
        self.key = None
        self.status = None
        self.response_headers = {}
        self.close_code = None
        self.close_reason = None

    @classmethod
    async def connect(cls, port, rcvbuf=None, **kw):
        """Opens a connection; rcvbuf sets SO_RCVBUF before connecting (a tiny window for peers that stall)."""
        loop = asyncio.get_running_loop()
        if rcvbuf:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", port))
            _, ws = await loop.create_connection(lambda: cls(**kw), sock=sock)
        else:
            _, ws = await loop.create_connection(lambda: cls(**kw), "127.0.0.1", port)
        await ws.open
        return ws

    def connection_made(self, transport):
        self.transport = transport
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        req, self.key = upgrade_request(self.path, extra=extra)
        transport.write(req)

    def data_received(self, data):
        self.buf += data
        if not self.open.done():
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status, hdrs = parse_head(bytes(self.buf[:end]))
            self.status, self.response_headers = status, hdrs
            del self.buf[:end + 4]
            if status != 101:
                self.open.set_exception(AssertionError(f"expected 101, got {status}"))
                self.transport.close()
                return
            if hdrs.get("sec-websocket-accept") != accept_for(self.key):
                self.open.set_exception(AssertionError("wrong Sec-WebSocket-Accept"))
                self.transport.close()
                return
            self.open.set_result(self)
        buf, pos, n_buf = self.buf, self.pos, len(self.buf)
        mv = memoryview(buf)
        try:
            while n_buf - pos >= 2:
                b0, b1 = buf[pos], buf[pos + 1]
                n = b1 & 0x7F
                h = 2
                if n == 126:
                    if n_buf - pos < 4:
                        break
                    n = (buf[pos + 2] << 8) | buf[pos + 3]
                    h = 4
                elif n == 127:
                    if n_buf - pos < 10:
                        break
                    n = int.from_bytes(buf[pos + 2:pos + 10], "big")
                    h = 10
                if n_buf - pos < h + n:
                    break
                op = b0 & 0x0F
                payload = mv[pos + h:pos + h + n]
                pos += h + n
                if op == OP_PING:
                    self.transport.write(encode_frame(OP_PONG, bytes(payload)))
                elif op == OP_CLOSE:
                    p = bytes(payload)
                    self._closed(struct.unpack("!H", p[:2])[0] if len(p) >= 2 else 1005, p[2:].decode("utf-8", "replace"))
                elif op in (OP_TEXT, OP_BINARY) and self.on_data:
                    self.on_data(self, op, payload)
            payload = None
        finally:
            mv.release()
        if pos == n_buf:
            self.buf.clear()
            self.pos = 0
        elif pos > 1 << 20:
            del self.buf[:pos]
            self.pos = 0
        else:
            self.pos = pos

    def _closed(self, code, reason):
        if self.close_code is None and not self.closed.done():
            self.close_code, self.close_reason = code, reason
            if self.on_close:
                self.on_close(self, code, reason)
            self.closed.set_result((code, reason))

    def connection_lost(self, exc):
        if not self.open.done():
            self.open.set_exception(EOF(f"connection lost during handshake: {exc!r}"))
        if not self.closed.done():
            if self.on_close:
                self.on_close(self, None, "EOF without close frame")
            self.closed.set_result((None, "EOF without close frame"))

    def send(self, opcode, payload):
        self.transport.write(encode_frame(opcode, payload))

    def send_close(self, code=1000):
        if not self.transport.is_closing():
            self.transport.write(encode_frame(OP_CLOSE, close_payload(code)))

    def abort(self):
        if self.transport:
            self.transport.abort()
