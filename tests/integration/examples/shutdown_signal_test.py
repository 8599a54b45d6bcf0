#!/usr/bin/python3
"""conduit::ShutdownOnSignal in a real process: examples/echo_server (which
constructs it before Server::start()) receives real signals.

- SIGTERM, and SIGINT, with a client connected: the client gets close 1001 and
  the process exits 0 (the loop threads inherited the blocked mask, so the
  signal reached the helper's signalfd instead of killing the process).
- A second SIGTERM while a peer holds the drain open (it never answers the
  close): the process exits at once with status 130.

Usage: shutdown_signal_test.py PATH_TO_ECHO_SERVER
"""
import base64
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

STEP = 20  # seconds: upper bound of every wait


def start(exe):
    proc = subprocess.Popen([exe, "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.match(r"listening on 127\.0\.0\.1:(\d+)$", line.strip())
    assert m, f"no 'listening on' line: {line!r}"
    return proc, int(m.group(1))


def connect(port):
    """A raw WebSocket client after its 101."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=STEP)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "connection closed during the upgrade"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"EOF after {len(data)} of {n} bytes"
        data += chunk
    return data


def expect_close(sock, code):
    b0, b1 = read_exact(sock, 2)
    assert b0 & 0x0F == 0x8, f"expected a close frame, got opcode {b0 & 0x0F}"
    payload = read_exact(sock, b1 & 0x7F)
    got = struct.unpack("!H", payload[:2])[0]
    assert got == code, f"close code {got}, expected {code}"


def wait_exit(proc):
    try:
        return proc.wait(timeout=STEP)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def graceful(exe, signo):
    proc, port = start(exe)
    sock = connect(port)
    proc.send_signal(signo)
    expect_close(sock, 1001)
    sock.sendall(b"\x88\x82abcd" + bytes(a ^ b for a, b in zip(struct.pack("!H", 1001), b"ab")))  # masked close
    status = wait_exit(proc)
    assert status == 0, f"exit status {status} after {signal.Signals(signo).name}; stderr: {proc.stderr.read()}"
    sock.close()


def second_signal(exe):
    proc, port = start(exe)
    sock = connect(port)
    proc.send_signal(signal.SIGTERM)
    expect_close(sock, 1001)  # and never answer: the drain waits for us
    assert proc.poll() is None, "exited before the drain ended"
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    status = wait_exit(proc)
    assert status == 130, f"second signal: exit status {status}, expected 130"
    assert time.monotonic() - started < 5, "second signal did not exit at once"
    sock.close()


def main():
    exe = sys.argv[1]
    failures = 0
    for name, case in [("sigterm", lambda: graceful(exe, signal.SIGTERM)),
                       ("sigint", lambda: graceful(exe, signal.SIGINT)),
                       ("second-signal", lambda: second_signal(exe))]:
        try:
            case()
            print(f"ok   {name}", flush=True)
        except BaseException as e:
            failures += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
