#!/usr/bin/python3
"""The `conduit` CLI as a script uses it: the real binary against a raw-socket
server written here, checking what reached the server, stdout, stderr and the
exit status of each command.

Covers: repeatable options followed by the URL, `send -` / `send @FILE` /
`--binary`, `send --timeout` closing with a close frame, `--verbose`,
`--show-ping-pong`, the `/ping` and `/close` stdin commands of `connect`,
`connect --max-attempts`, 4xx refusals ending the run (exit 3) unless
`--retry-all`, and `--compression` against Node ws.

Usage: cli_commands_test.py PATH_TO_CONDUIT
"""
import asyncio
import base64
import hashlib
import os
import shutil
import struct
import sys
import tempfile

from cli_echo_test import BINARY, CLOSE, PING, PONG, TEXT, Peer, close_payload, frame

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
STEP = 20  # seconds: upper bound of any single wait below


class Server:
    """A raw server; `script(peer, headers)` runs for each connection after the
    101 (or `refuse(n)` answers with an HTTP error instead)."""

    def __init__(self, script=None, subprotocol=None, refuse=None):
        self.script = script
        self.subprotocol = subprotocol
        self.refuse = refuse
        self.connections = 0
        self.headers = []  # one dict (lower-case names) per connection
        self.done = asyncio.get_running_loop().create_future()

    async def start(self):
        self.server = await asyncio.start_server(self.on_connection, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def url(self, path="/"):
        return f"ws://127.0.0.1:{self.port}{path}"

    async def on_connection(self, reader, writer):
        self.connections += 1
        peer = Peer(reader, writer)
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            lines = request.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            self.headers.append(headers)
            if self.refuse:
                status, extra = self.refuse(self.connections)
                body = b"refused"
                writer.write(f"HTTP/1.1 {status} No\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body)
                await writer.drain()
                return
            accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + GUID).digest())
            chosen = f"Sec-WebSocket-Protocol: {self.subprotocol}\r\n" if self.subprotocol else ""
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n" + chosen.encode() + b"\r\n")
            await writer.drain()
            await self.script(peer, headers)
            if not self.done.done():
                self.done.set_result(None)
        except Exception as e:  # reported as the case's failure
            if not self.done.done():
                self.done.set_exception(e)
        finally:
            writer.close()


async def run(conduit, *args, stdin_data=None, hold_stdin=False):
    """Runs conduit to its exit. stdin: stdin_data, or kept open and silent with
    hold_stdin (`connect` closes at stdin EOF), else /dev/null."""
    proc = await asyncio.create_subprocess_exec(
        conduit, *args,
        stdin=asyncio.subprocess.PIPE if stdin_data is not None or hold_stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        if hold_stdin:
            outputs = asyncio.gather(proc.stdout.read(), proc.stderr.read())
            await asyncio.wait_for(proc.wait(), STEP)
            out, err = await asyncio.wait_for(outputs, STEP)
            proc.stdin.close()
        else:
            out, err = await asyncio.wait_for(proc.communicate(stdin_data), STEP)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def check(status, out, err, expected_status, expected_out=None):
    assert status == expected_status, f"exit {status}, expected {expected_status}; stderr:\n{err}"
    if expected_out is not None:
        assert out == expected_out, f"stdout {out!r}, expected {expected_out!r}; stderr:\n{err}"


async def echo_once(peer, headers):
    op, payload = await peer.read_message()
    await peer.send(frame(op, payload))
    op, payload = await peer.read_message()
    assert op == CLOSE and payload[:2] == close_payload(1000), f"got {op} {payload!r}"
    await peer.send(frame(CLOSE, close_payload(1000)))


async def received_one(into):
    async def script(peer, headers):
        op, payload = await peer.read_message()
        into.append((op, payload))
        op, payload = await peer.read_message()
        assert op == CLOSE, f"expected close after the message, got {op}"
        await peer.send(frame(CLOSE, close_payload(1000)))
    return script


async def case_header_before_url(conduit):
    srv = await Server(echo_once).start()
    status, out, err = await run(conduit, "send", "--header", "X-A: 1", "--header", "X-B: two", srv.url(), "hi",
                                 "--wait", "1")
    check(status, out, err, 0, "hi\n")
    assert srv.headers[0].get("x-a") == "1" and srv.headers[0].get("x-b") == "two", srv.headers


async def case_subprotocols_before_url(conduit):
    srv = await Server(echo_once, subprotocol="b").start()
    status, out, err = await run(conduit, "send", "--subprotocol", "a", "--subprotocol", "b", srv.url(), "hi",
                                 "--wait", "1")
    check(status, out, err, 0, "hi\n")
    assert srv.headers[0].get("sec-websocket-protocol") == "a, b", srv.headers


async def case_send_stdin(conduit):
    got = []
    srv = await Server(await received_one(got)).start()
    data = "line one\nline two\n\nlast, no newline é"
    status, out, err = await run(conduit, "send", srv.url(), "-", stdin_data=data.encode())
    check(status, out, err, 0, "")
    assert got == [(TEXT, data.encode())], got


async def case_send_file_binary(conduit):
    got = []
    srv = await Server(await received_one(got)).start()
    payload = bytes(range(256)) * 300  # 76800 bytes, not UTF-8
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(payload)
    try:
        status, out, err = await run(conduit, "send", "--binary", srv.url(), "@" + f.name)
    finally:
        os.unlink(f.name)
    check(status, out, err, 0, "")
    assert got == [(BINARY, payload)], f"{len(got)} messages, {[(o, len(p)) for o, p in got]}"


async def case_send_missing_file(conduit):
    srv = await Server(echo_once).start()
    status, out, err = await run(conduit, "send", srv.url(), "@/nonexistent/message.json")
    check(status, out, err, 2, "")
    assert err == "conduit: @/nonexistent/message.json: cannot open: No such file or directory\n", err
    assert srv.connections == 0, "connected although the message could not be read"


async def case_send_timeout_closes(conduit):
    closes = []

    async def silent(peer, headers):
        op, payload = await peer.read_message()
        assert (op, payload) == (TEXT, b"anyone?"), (op, payload)
        op, payload = await peer.read_message()  # no answer: the next frame must be the close
        closes.append((op, payload))
        await peer.send(frame(CLOSE, payload[:2]))
        await peer.expect_eof()

    srv = await Server(silent).start()
    status, out, err = await run(conduit, "send", srv.url(), "anyone?", "--wait", "1", "--timeout", "1s")
    check(status, out, err, 5, "")
    assert "conduit: timeout: 0 of 1 messages after 1s" in err, err
    await asyncio.wait_for(srv.done, STEP)
    assert closes == [(CLOSE, close_payload(1001, b"timeout"))], closes


async def case_verbose(conduit):
    srv = await Server(echo_once).start()
    status, out, err = await run(conduit, "send", "--verbose", srv.url("/v?x=1"), "hi", "--wait", "1",
                                 "--header", "X-Trace: 7")
    check(status, out, err, 0, "hi\n")
    lines = err.splitlines()
    for expected in ["> GET /v?x=1 HTTP/1.1", f"> Host: 127.0.0.1:{srv.port}", "> X-Trace: 7",
                     "< HTTP/1.1 101 Switching Protocols", "< Upgrade: websocket"]:
        assert expected in lines, f"{expected!r} not in stderr:\n{err}"
    key = srv.headers[0]["sec-websocket-key"]
    assert f"> Sec-WebSocket-Key: {key}" in lines, err
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    assert f"< Sec-WebSocket-Accept: {accept}" in lines, err


async def case_ping_close_commands(conduit):
    seen = []

    async def script(peer, headers):
        await peer.send(frame(PING, b"srv"))
        seen.append(await peer.read_message())  # our pong
        seen.append(await peer.read_message())  # /ping hello
        await peer.send(frame(PONG, b"hello"))
        seen.append(await peer.read_message())  # //x → "/x"
        seen.append(await peer.read_message())  # /close 4001 bye now
        await peer.send(frame(CLOSE, close_payload(4001)))
        await peer.expect_eof()

    srv = await Server(script).start()
    proc = await asyncio.create_subprocess_exec(
        conduit, "connect", "--show-ping-pong", "--no-reconnect", srv.url(), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    err_lines = []
    try:
        async def read_until(text):
            while True:
                line = (await asyncio.wait_for(proc.stderr.readline(), STEP)).decode()
                assert line, f"stderr ended before {text!r}:\n{''.join(err_lines)}"
                err_lines.append(line)
                if text in line:
                    return

        await read_until("conduit: open")
        await read_until('conduit: pong sent "srv"')
        proc.stdin.write(b"/close 1005\n/ping hello\n")
        await proc.stdin.drain()
        await read_until('conduit: pong received "hello"')
        proc.stdin.write(b"//x\n/close 4001 bye now\n")
        await proc.stdin.drain()
        status = await asyncio.wait_for(proc.wait(), STEP)
        out = await proc.stdout.read()
        err_lines.append((await proc.stderr.read()).decode())
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    err = "".join(err_lines)
    check(status, out.decode(), err, 0, "")
    await asyncio.wait_for(srv.done, STEP)
    assert seen == [(PONG, b"srv"), (PING, b"hello"), (TEXT, b"/x"), (CLOSE, close_payload(4001, b"bye now"))], seen
    for expected in ['conduit: ping received "srv"', 'conduit: ping sent "hello"',
                     "conduit: /close: '1005' is not a close code to send (1000-1003, 1007-1014, 3000-4999)",
                     "conduit: closed 4001"]:
        assert expected in err, f"{expected!r} not in stderr:\n{err}"


def refusing(status):
    return lambda n: (status, "")


async def case_max_attempts(conduit):
    srv = await Server(refuse=refusing(503)).start()
    status, out, err = await run(conduit, "connect", srv.url(), "--max-attempts", "2", "--reconnect-initial", "10ms",
                                 "--reconnect-max", "20ms", hold_stdin=True)
    check(status, out, err, 3, "")
    assert srv.connections == 3, f"{srv.connections} attempts, expected 1 + 2 reconnects"
    assert "conduit: error: gave up reconnecting after max_attempts: after 2 attempts" in err, err
    assert "(attempt 2)" in err and "(attempt 3)" not in err, err


async def case_4xx_is_final(conduit):
    srv = await Server(refuse=refusing(403)).start()
    status, out, err = await run(conduit, "connect", srv.url(), "--reconnect-initial", "10ms", hold_stdin=True)
    check(status, out, err, 3, "")
    assert srv.connections == 1, f"{srv.connections} attempts after a 403"
    assert "conduit: HTTP 403 is final: not retrying (--retry-all retries it)" in err, err


async def case_429_retried(conduit):
    srv = await Server(refuse=refusing(429)).start()
    status, out, err = await run(conduit, "connect", srv.url(), "--max-attempts", "1", "--reconnect-initial", "10ms",
                                 hold_stdin=True)
    check(status, out, err, 3, "")
    assert srv.connections == 2, f"{srv.connections} attempts after a 429 with --max-attempts 1"


async def case_retry_all(conduit):
    srv = await Server(refuse=refusing(404)).start()
    status, out, err = await run(conduit, "connect", srv.url(), "--retry-all", "--max-attempts", "2",
                                 "--reconnect-initial", "10ms", hold_stdin=True)
    check(status, out, err, 3, "")
    assert srv.connections == 3, f"{srv.connections} attempts after 404 with --retry-all --max-attempts 2"
    assert "is final" not in err, err


async def case_compression(conduit):
    """--compression against Node ws with perMessageDeflate: negotiated, and the echo is right both ways."""
    node = os.environ.get("CONDUIT_NODE") or shutil.which("node")
    server = await asyncio.create_subprocess_exec(
        node, os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_echo_server.js"), "--deflate",
        stdout=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(server.stdout.readline(), STEP)).decode()
        port = int(line.strip().rsplit(":", 1)[1])
        message = "compress me " * 1000
        status, out, err = await run(conduit, "send", "--compression", "--verbose", f"ws://127.0.0.1:{port}/",
                                     message, "--wait", "1")
        check(status, out, err, 0, message + "\n")
        lines = err.splitlines()
        assert any(l.startswith("> Sec-WebSocket-Extensions: permessage-deflate") for l in lines), err
        assert any(l.startswith("< Sec-WebSocket-Extensions: permessage-deflate") for l in lines), err
        # Without the flag nothing is offered.
        status, out, err = await run(conduit, "send", "--verbose", f"ws://127.0.0.1:{port}/", "plain", "--wait", "1")
        check(status, out, err, 0, "plain\n")
        assert "Sec-WebSocket-Extensions" not in err, err
    finally:
        server.kill()
        await server.wait()


CASES = [case_header_before_url, case_subprotocols_before_url, case_send_stdin, case_send_file_binary,
         case_send_missing_file, case_send_timeout_closes, case_verbose, case_ping_close_commands, case_max_attempts,
         case_4xx_is_final, case_429_retried, case_retry_all, case_compression]


def main():
    conduit = sys.argv[1]
    failures = 0
    for case in CASES:
        try:
            asyncio.run(asyncio.wait_for(case(conduit), 3 * STEP))
            print(f"ok   {case.__name__}", flush=True)
        except BaseException as e:
            failures += 1
            print(f"FAIL {case.__name__}: {type(e).__name__}: {e}", flush=True)
    print(f"{len(CASES) - failures}/{len(CASES)} cases passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
