"""Harness of the scale-out tests: a real redis-server, several `conduitd --mode pubsub` nodes whose
channels go through it (`redis.url`), and a real nginx round-robin in front of them, all on loopback
ports of their own, each started by the test and stopped by PID.

Clients speak conduit.v1 as docs/protocol.md describes it (the channels tests' Peer, Python
websockets); the nodes' behaviour under Redis faults is the one docs/operations.md ("Several nodes")
and docs/configuration.md (`[redis]`) promise.

Run a module as: /usr/bin/python3 test_x.py --conduitd PATH [--redis-server PATH] [--nginx PATH]
[unittest args]
"""

import asyncio
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "channels"))

import chlib  # noqa: E402  (tests/integration/channels/chlib.py)
import conduitd  # noqa: E402  (tests/integration/echo/conduitd.py)
from chlib import Peer, api, scrape  # noqa: E402,F401
from conduitd import Conduitd, http_request  # noqa: E402
from opslib import log_events  # noqa: E402,F401

REDIS_SERVER = "/usr/bin/redis-server"
NGINX = "/usr/sbin/nginx"

# Bounds, generous: these tests run on 2 shared cores, under sanitizers too.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
# conduitd retries Redis with backoff up to 5 s (docs/configuration.md, `[redis]`): a node sees a
# restarted Redis within that, plus the connection setup and the resync.
RECONNECT_TIMEOUT = 30.0
API_KEY = "scale-test-key"

# Metrics of the Redis engine (docs/operations.md, "Several nodes").
M_CONNECTED = "conduit_redis_connected"
M_PUBLISHES = "conduit_redis_publishes_total"     # {result="ok"|"unavailable"|"unknown"|"error"}
M_RESYNCS = "conduit_redis_resyncs_total"         # {result="recovered"|"failed"}
M_CONNECTS = "conduit_redis_connects_total"
M_DISCONNECTS = "conduit_redis_disconnects_total"
M_MESSAGES = "conduit_redis_messages_total"
M_BACKLOG = "conduit_redis_backlog_bytes"


def main():
    """Takes --redis-server and --nginx (optional) off argv, then runs the unittest main of the
    channels/echo harness (which takes --conduitd)."""
    global REDIS_SERVER, NGINX
    for flag in ("--redis-server", "--nginx"):
        if flag in sys.argv:
            i = sys.argv.index(flag)
            value = os.path.abspath(sys.argv[i + 1])
            del sys.argv[i:i + 2]
            if flag == "--redis-server":
                REDIS_SERVER = value
            else:
                NGINX = value
    for path in (REDIS_SERVER, NGINX):
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} is missing: install redis-server and nginx-light (scripts/setup)")
    conduitd.main()


def free_port():
    """A loopback port nothing listens on now. redis-server and nginx need a number up front (unlike
    conduitd, which takes port 0 and prints the port): the kernel picks one, we release it and the
    server binds it a moment later; a start that loses that race fails with a clear message."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(port, timeout=0.5):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate, timeout, what, step=0.05):
    """Polls predicate until it returns a true value (returned) or timeout passes (AssertionError).
    For state only reachable by asking (an HTTP route, a metric): the bound is what matters."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


# ---- redis-server ---------------------------------------------------------------------------


class Redis:
    """A redis-server on a loopback port of its own, in a temporary directory (its AOF files live
    there, so a restart with persistence finds them). Started in the foreground with its log on
    stdout; ready once it logs "Ready to accept connections"."""

    def __init__(self, persistent=False, port=None):
        self.persistent = persistent
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="conduit-scale-redis-")
        self.proc = None
        self.lines = []

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self):
        cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
               "--daemonize", "no", "--logfile", "", "--save", ""]
        if self.persistent:
            # Every write is on disk before Redis answers it: a publish acknowledged to a client
            # survives a kill -9 of Redis.
            cmd += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            cmd += ["--appendonly", "no"]
        return cmd

    def start(self):
        self.lines = []
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        ready = queue.Queue()

        def pump(proc=self.proc, out=self.lines):
            for line in proc.stdout:
                out.append(line)
                if b"Ready to accept connections" in line:
                    ready.put(True)
            ready.put(False)

        threading.Thread(target=pump, daemon=True).start()
        try:
            ok = ready.get(timeout=START_TIMEOUT)
        except queue.Empty:
            ok = False
        if not ok:
            self.kill()
            raise AssertionError(f"redis-server did not become ready on port {self.port}:\n" + self.log_tail())
        return self

    def log_tail(self, n=30):
        return b"".join(self.lines[-n:]).decode("utf-8", "replace")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL: Redis gets no chance to write anything more (what an OOM kill or a crash does)."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=STOP_TIMEOUT)
            self.proc.stdout.close()
            self.proc = None

    def command_reply(self, *args, timeout=5.0):
        """One command over RESP; returns the reply decoded (bulk strings as bytes, arrays as lists)."""
        payload = f"*{len(args)}\r\n".encode()
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            payload += f"${len(a)}\r\n".encode() + a + b"\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(payload)
            f = s.makefile("rb")
            return _read_resp(f)

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _read_resp(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise AssertionError(f"truncated RESP reply {line!r}")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise AssertionError(f"redis error reply: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_resp(f) for _ in range(n)]
    raise AssertionError(f"unknown RESP reply {line!r}")


# ---- conduitd nodes -------------------------------------------------------------------------


def node(redis_url, sets=None):
    """A conduitd --mode pubsub whose channels go through Redis (not started). The API key opens
    /api/publish, /api/channels and /api/history."""
    s = {"redis.url": redis_url, "api.key": API_KEY}
    s.update(sets or {})
    return Conduitd(sets=s, mode="pubsub")


def sigkill(n):
    """Kills a node with SIGKILL (no drain: its clients see their TCP connections end) and waits
    for it; the harness's stop() then does nothing."""
    n._signalled = True
    n.proc.send_signal(signal.SIGKILL)
    n.proc.wait(timeout=STOP_TIMEOUT)
    n._release()
    n.proc = None


def readyz(port):
    status, _, body = chlib.http(port, "GET", "/readyz")
    return status, body.decode("utf-8", "replace").strip()


def channel_subscribers(port, channel):
    """Subscribers of channel on this node, from GET /api/channels (0 when it is not listed)."""
    status, body = api(port, "GET", "/api/channels", key=API_KEY)
    if status != 200:
        raise AssertionError(f"/api/channels answered {status}: {body}")
    return sum(c["subscribers"] for c in body["channels"] if c["channel"] == channel)


def metric(port, name, **labels):
    return scrape(port).get(name, **labels)


# ---- nginx ----------------------------------------------------------------------------------

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream conduit {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://conduit;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_read_timeout 75s;
            proxy_send_timeout 75s;
            proxy_buffering off;
        }}
    }}
}}
"""


class Nginx:
    """nginx (one process: daemon off, master_process off) proxying WebSocket to the given
    upstream ports, round-robin (nginx's default): consecutive connections alternate between the
    nodes, and a connection to a node that refuses it is passed to the next one."""

    def __init__(self, upstream_ports):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="conduit-scale-nginx-")
        servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstream_ports)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, servers=servers, port=self.port))
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-e", os.path.join(self.dir, "error.log"),
                                      "-c", self.conf], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not accepts(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"nginx did not start on port {self.port}:\n{self.log_tail()}")
            time.sleep(0.02)
        return self

    def log_tail(self, n=30):
        try:
            with open(os.path.join(self.dir, "error.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def close(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)  # fast shutdown
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=STOP_TIMEOUT)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- clients --------------------------------------------------------------------------------


def run(coro, timeout=150):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def open_peers(port, n):
    """n conduit.v1 connections to port, opened one after another (so that nginx's round robin
    alternates them between the nodes)."""
    peers = []
    for _ in range(n):
        peers.append(await Peer.open(port))
    return peers


async def close_peers(peers):
    await asyncio.gather(*(p.close() for p in peers if p.closed is None), return_exceptions=True)


def data_pushes(peer, channel):
    """The publications (pushes with data) of channel this peer received, in arrival order."""
    return [p for p in peer.pushes if p.get("channel") == channel and "data" in p]


def recovery_failed_pushes(peer, channel):
    return [p for p in peer.pushes if p.get("channel") == channel and "recovery_failed" in p]


async def async_wait_until(predicate, timeout, what, step=0.05):
    """wait_until inside a coroutine: the clients' readers keep running while it polls."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(step)
