#!/usr/bin/python3
"""Drives `conduit connect URL --echo --no-reconnect` the way an independent
conformance suite does: one process per case, a raw-socket server written here
that sends exactly the frames it wants (fragmented, 16 MiB, hostile) and checks
every frame the client sends back (masked, right opcode, right payload, right
close code) and the exit status.

Usage: cli_echo_test.py PATH_TO_CONDUIT
"""
import asyncio
import base64
import hashlib
import os
import struct
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CASE_TIMEOUT = 30  # seconds per case, everything included
BIG = 16 * 1024 * 1024

TEXT, BINARY, CLOSE, PING, PONG, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


def frame(opcode, payload=b"", fin=True, rsv=0, mask=None):
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head.append(mask_bit | n)
    elif n < 65536:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(head) + payload


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class Peer:
    """The server side of one connection."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    async def handshake(self):
        request = await self.reader.readuntil(b"\r\n\r\n")
        key = None
        for line in request.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip()
        assert key, "no Sec-WebSocket-Key"
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        self.writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        await self.writer.drain()

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def read_frame(self):
        """One client frame: (fin, opcode, payload); asserts it is masked."""
        b0, b1 = await self.reader.readexactly(2)
        assert b1 & 0x80, "client frame not masked"
        assert (b0 & 0x70) == 0, "client set RSV bits"
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        mask = await self.reader.readexactly(4)
        payload = await self.reader.readexactly(n)
        if n:
            # XOR 8 bytes at a time: 16 MiB payloads must not take seconds.
            key = int.from_bytes(mask * 2, "little")
            padded = payload + b"\0" * (-n % 8)
            words = memoryview(padded).cast("Q")
            payload = b"".join(struct.pack("<Q", w ^ key) for w in words)[:n]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    async def read_message(self):
        """Next data message (fragments joined) or control frame, skipping pongs we did not ask for."""
        fin, op, payload = await self.read_frame()
        if op in (TEXT, BINARY):
            parts = [payload]
            while not fin:
                fin, cont, more = await self.read_frame()
                assert cont == CONT, f"expected continuation, got {cont}"
                parts.append(more)
            return op, b"".join(parts)
        return op, payload

    async def expect_close(self, code):
        op, payload = await self.read_message()
        while op == PONG:
            op, payload = await self.read_message()
        assert op == CLOSE, f"expected close {code}, got opcode {op}"
        got = struct.unpack("!H", payload[:2])[0] if payload else None
        assert got == code, f"expected close code {code}, got {got}"

    async def expect_eof(self):
        rest = await asyncio.wait_for(self.reader.read(), 10)
        assert rest == b"", f"data after close: {rest[:20]!r}"


async def run_case(conduit, name, script, expected_exit, extra_args=()):
    done = asyncio.get_running_loop().create_future()

    async def on_connection(reader, writer):
        peer = Peer(reader, writer)
        try:
            await peer.handshake()
            await script(peer)
            if not done.done():
                done.set_result(None)
        except Exception as e:  # reported as the case's failure
            if not done.done():
                done.set_exception(e)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        conduit, "connect", f"ws://127.0.0.1:{port}/{name}", "--echo", "--no-reconnect",
        "--max-message-bytes", "67108864", *extra_args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await asyncio.wait_for(done, CASE_TIMEOUT)
        status = await asyncio.wait_for(proc.wait(), CASE_TIMEOUT)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    finally:
        server.close()
    stderr = (await proc.stderr.read()).decode(errors="replace")
    assert status == expected_exit, f"exit status {status}, expected {expected_exit}; stderr:\n{stderr}"


async def normal_close(peer, code=1000):
    await peer.send(frame(CLOSE, close_payload(code)))
    await peer.expect_close(code)
    await peer.expect_eof()


def echo_case(messages):
    """messages: list of (frames to send, expected opcode, expected payload)."""
    async def script(peer):
        for frames, op, payload in messages:
            await peer.send(b"".join(frames))
            got_op, got = await peer.read_message()
            while got_op == PONG:
                got_op, got = await peer.read_message()
            assert got_op == op, f"echo opcode {got_op}, expected {op}"
            assert got == payload, f"echo payload differs ({len(got)} vs {len(payload)} bytes)"
        await normal_close(peer)
    return script


def hostile_case(frames, code):
    async def script(peer):
        await peer.send(b"".join(frames))
        await peer.expect_close(code)
        # The client failed the connection: it must not send anything more.
        await peer.send(frame(CLOSE, close_payload(code)))
        await peer.expect_eof()
    return script


def echo_then_fail_case(frames, echoes, code):
    """A valid message (or several) and a bad frame in one write: the client
    writes the echoes it had already queued, then fails with `code`."""
    async def script(peer):
        await peer.send(b"".join(frames))
        for op, payload in echoes:
            got_op, got = await peer.read_message()
            assert (got_op, got) == (op, payload), f"expected echo {op} {payload!r} first, got {got_op} {got[:40]!r}"
        await peer.expect_close(code)
        await peer.send(frame(CLOSE, close_payload(code)))
        await peer.expect_eof()
    return script


async def ping_case(peer):
    await peer.send(frame(PING, b"are you there"))
    op, payload = await peer.read_message()
    assert (op, payload) == (PONG, b"are you there"), f"got {op} {payload!r}"
    # Ping interleaved in a fragmented message: the pong comes first, then the echo.
    await peer.send(frame(TEXT, b"frag", fin=False) + frame(PING, b"mid") + frame(CONT, b"mented", fin=True))
    op, payload = await peer.read_message()
    assert (op, payload) == (PONG, b"mid"), f"got {op} {payload!r}"
    op, payload = await peer.read_message()
    assert (op, payload) == (TEXT, b"fragmented"), f"got {op} {payload!r}"
    await normal_close(peer)


async def empty_close_case(peer):
    await peer.send(frame(CLOSE, b""))
    op, payload = await peer.read_message()
    assert op == CLOSE and payload in (b"", close_payload(1000)), f"got {op} {payload!r}"
    await peer.expect_eof()


async def drop_case(peer):
    await peer.send(frame(TEXT, b"bye"))
    await peer.read_message()
    peer.writer.transport.abort()  # no close frame: abnormal end


async def run_cli(conduit, args, server_script=None):
    """Runs `conduit ARGS...` (the URL's port is filled in for {port}) against a raw server that runs
    server_script(reader, writer) per connection, or against a port nothing listens on when
    server_script is None. Returns (exit status, stderr)."""
    server = None
    if server_script is None:
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()  # closed: connecting now gets RST
    else:
        server = await asyncio.start_server(server_script, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        conduit, *[a.format(port=port) for a in args],
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), CASE_TIMEOUT)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    finally:
        if server:
            server.close()
    return proc.returncode, err.decode(errors="replace")


async def refuse_503(reader, writer):
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 4\r\n"
                 b"Connection: close\r\n\r\nbusy")
    await writer.drain()
    writer.close()


async def accept_and_stay_silent(reader, writer):
    peer = Peer(reader, writer)
    await peer.handshake()
    try:
        await asyncio.wait_for(reader.read(), CASE_TIMEOUT)  # reads (the message, the close), never answers
    except asyncio.TimeoutError:
        pass


def exit_status_cases():
    """(name, args, server script or None, expected exit status, text expected on stderr)."""
    return [
        ("connect-refused", ["connect", "ws://127.0.0.1:{port}/", "--no-reconnect"], None, 3, "conduit: error:"),
        ("send-refused", ["send", "ws://127.0.0.1:{port}/", "hi"], None, 3, "conduit: error:"),
        ("connect-503", ["connect", "ws://127.0.0.1:{port}/", "--no-reconnect"], refuse_503, 3, "503"),
        ("send-timeout", ["send", "ws://127.0.0.1:{port}/", "hi", "--wait", "1", "--timeout", "500ms"],
         accept_and_stay_silent, 5, ""),
    ]


def main():
    conduit = sys.argv[1]
    big_binary = os.urandom(BIG)
    big_text = ("é" * (BIG // 2)).encode()  # 2-byte code points, split across fragments below
    chunk = 1 << 20
    big_text_frames = [frame(TEXT if i == 0 else CONT, big_text[i:i + chunk - 1], fin=i + chunk - 1 >= len(big_text))
                       for i in range(0, len(big_text), chunk - 1)]
    invalid_utf8 = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"

    cases = [
        ("text", echo_case([([frame(TEXT, b"hello")], TEXT, b"hello")]), 0),
        ("empty-text", echo_case([([frame(TEXT, b"")], TEXT, b"")]), 0),
        ("binary", echo_case([([frame(BINARY, bytes(range(256)))], BINARY, bytes(range(256)))]), 0),
        ("many", echo_case([([frame(TEXT, str(i).encode())], TEXT, str(i).encode()) for i in range(200)]), 0),
        ("fragmented-text", echo_case([([frame(TEXT, b"Hel", fin=False), frame(CONT, b"lo, ", fin=False),
                                         frame(CONT, b"world")], TEXT, b"Hello, world")]), 0),
        ("fragmented-binary", echo_case([([frame(BINARY, b"\x00\x01", fin=False), frame(CONT, b"", fin=False),
                                           frame(CONT, b"\x02")], BINARY, b"\x00\x01\x02")]), 0),
        ("utf8-split-codepoint", echo_case([([frame(TEXT, "κό".encode()[:3], fin=False),
                                              frame(CONT, "κό".encode()[3:])], TEXT, "κό".encode())]), 0),
        ("16MiB-binary", echo_case([([frame(BINARY, big_binary)], BINARY, big_binary)]), 0),
        ("16MiB-text-fragmented", echo_case([(big_text_frames, TEXT, big_text)]), 0),
        ("ping", ping_case, 0),
        ("close-empty", empty_close_case, 0),
        ("close-3000", lambda p: normal_close(p, 3000), 1),
        ("dropped", drop_case, 1),
        ("masked-server-frame", hostile_case([frame(TEXT, b"x", mask=b"abcd")], 1002), 4),
        ("rsv1", hostile_case([frame(TEXT, b"x", rsv=4)], 1002), 4),
        ("rsv3", hostile_case([frame(TEXT, b"x", rsv=1)], 1002), 4),
        ("reserved-opcode", hostile_case([frame(0x3, b"")], 1002), 4),
        ("reserved-control-opcode", hostile_case([frame(0xB, b"")], 1002), 4),
        ("fragmented-ping", hostile_case([frame(PING, b"x", fin=False)], 1002), 4),
        ("big-ping", hostile_case([frame(PING, b"x" * 126)], 1002), 4),
        ("continuation-without-start", hostile_case([frame(CONT, b"x")], 1002), 4),
        ("text-during-fragmented", hostile_case([frame(TEXT, b"a", fin=False), frame(TEXT, b"b")], 1002), 4),
        ("close-1-byte", hostile_case([frame(CLOSE, b"\x03")], 1002), 4),
        ("close-code-1005", hostile_case([frame(CLOSE, close_payload(1005))], 1002), 4),
        ("close-code-999", hostile_case([frame(CLOSE, close_payload(999))], 1002), 4),
        ("close-bad-utf8-reason", hostile_case([frame(CLOSE, close_payload(1000, b"\xff"))], 1002), 4),
        ("invalid-utf8", hostile_case([frame(TEXT, invalid_utf8)], 1007), 4),
        ("invalid-utf8-in-fragment", hostile_case([frame(TEXT, b"ok", fin=False), frame(CONT, b"\xc0\xaf", fin=False)],
                                                  1007), 4),
    ]
    cases += [
        # A valid message, then a frame with RSV2 (Autobahn 3.2).
        ("echo-then-rsv2", echo_then_fail_case([frame(TEXT, b"Hello, world!"), frame(TEXT, b"x", rsv=2)],
                                               [(TEXT, b"Hello, world!")], 1002), 4),
        # A valid message, a reserved opcode, then a ping that must not be answered (Autobahn 4.1.3).
        ("echo-then-reserved-opcode", echo_then_fail_case([frame(TEXT, b"hello"), frame(0x5, b""), frame(PING)],
                                                          [(TEXT, b"hello")], 1002), 4),
        # A fragmented message completed, then a continuation with nothing to continue (Autobahn 5.15).
        ("echo-then-stray-continuation", echo_then_fail_case(
            [frame(TEXT, b"frag1", fin=False), frame(CONT, b"frag2"), frame(CONT, b"frag3", fin=False),
             frame(CONT, b"frag4")], [(TEXT, b"frag1frag2")], 1002), 4),
        # Two valid messages, then invalid UTF-8.
        ("echoes-then-invalid-utf8", echo_then_fail_case([frame(TEXT, b"one"), frame(BINARY, b"\x00two"),
                                                          frame(TEXT, b"\xff")],
                                                         [(TEXT, b"one"), (BINARY, b"\x00two")], 1007), 4),
    ]
    too_big = ("too-big", hostile_case([frame(BINARY, b"x" * 2000)], 1009), 4, ("--max-message-bytes", "1000"))

    failures = 0
    for name, script, expected in cases:
        try:
            asyncio.run(run_case(conduit, name, script, expected))
            print(f"ok   {name}", flush=True)
        except BaseException as e:
            failures += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
    name, script, expected, extra = too_big
    try:
        # The later --max-message-bytes wins over the suite's 64 MiB.
        asyncio.run(run_case(conduit, name, script, expected, extra))
        print(f"ok   {name}", flush=True)
    except BaseException as e:
        failures += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
    statuses = exit_status_cases()
    for name, args, server_script, expected, text in statuses:
        try:
            status, err = asyncio.run(run_cli(conduit, args, server_script))
            assert status == expected, f"exit status {status}, expected {expected}; stderr:\n{err}"
            assert text in err, f"stderr lacks {text!r}:\n{err}"
            print(f"ok   {name}", flush=True)
        except BaseException as e:
            failures += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
    total = len(cases) + 1 + len(statuses)
    print(f"{total - failures}/{total} cases passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
