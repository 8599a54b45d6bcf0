#!/usr/bin/python3
"""Independent WebSocket peers for the client tests (Python websockets 10.4 and
raw asyncio sockets for answers no correct server would give).

Every mode prints `listening on HOST:PORT` on stdout once it accepts
connections, so the test waits on that line instead of sleeping.

Modes:
  echo             websockets server echoing every message with its type
  reject           answers every upgrade with --status and --body (and Retry-After
                   when --retry-after is given; --retry-after-date-in S sends it
                   as the HTTP-date S seconds after the response's Date header)
                   for the first --reject-count connections, then behaves like `echo`
  bad-accept       raw: 101 with a wrong Sec-WebSocket-Accept
  bad-subprotocol  raw: 101 selecting a subprotocol nobody offered
  close-after      websockets: accepts, then closes with --close-code / --close-reason
  chatty           raw: accepts, then sends a text frame `tick N` every --period-ms and
                   never answers anything (no pongs): data as the only sign of life
  no-read          raw: accepts, then never reads again (the client's writes pile up)
"""
import argparse
import asyncio
import base64
import email.utils
import hashlib
import http
import signal
import socket
import ssl
import sys
import time

import websockets

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def announce(server_sockets):
    sock = server_sockets[0]
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"listening on {shown}:{port}", flush=True)


async def echo_handler(ws, path=None):
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


def tls_context(args):
    if not args.cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    return ctx


async def run_websockets(args, handler, process_request=None):
    server = await websockets.serve(
        handler,
        args.host,
        args.port,
        ssl=tls_context(args),
        subprotocols=args.subprotocol or None,
        process_request=process_request,
        max_size=None,
        ping_interval=None,
        compression=None,
        backlog=1024,
    )
    announce(server.sockets)
    await stop_event().wait()
    server.close()
    await server.wait_closed()


def stop_event():
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, event.set)
    loop.add_signal_handler(signal.SIGINT, event.set)
    return event


async def raw_http(args, make_response):
    async def on_connection(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        key = ""
        for line in request.decode("latin-1").split("\r\n"):
            if line.lower().startswith("sec-websocket-key:"):
                key = line.split(":", 1)[1].strip()
        writer.write(make_response(key))
        await writer.drain()
        try:
            await asyncio.wait_for(reader.read(), 5)
        except asyncio.TimeoutError:
            pass
        writer.close()

    server = await asyncio.start_server(on_connection, args.host, args.port, ssl=tls_context(args))
    announce(server.sockets)
    await stop_event().wait()
    server.close()


async def raw_websocket(args, after_open):
    """Completes the opening handshake by hand, then runs after_open(reader, writer)."""
    async def on_connection(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        key = ""
        for line in request.decode("latin-1").split("\r\n"):
            if line.lower().startswith("sec-websocket-key:"):
                key = line.split(":", 1)[1].strip()
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept_for(key)}\r\n\r\n").encode())
        await writer.drain()
        try:
            await after_open(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        writer.close()

    server = await asyncio.start_server(on_connection, args.host, args.port)
    if args.rcvbuf:
        for sock in server.sockets:  # inherited by accepted sockets: a small window fills fast
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
    announce(server.sockets)
    await stop_event().wait()
    server.close()


async def chatty(args, reader, writer):
    async def drain_input():  # read and ignore (pings included): never answered
        while await reader.read(65536):
            pass

    ignore = asyncio.create_task(drain_input())
    n = 0
    while not ignore.done():
        payload = f"tick {n}".encode()
        writer.write(bytes([0x81, len(payload)]) + payload)
        await writer.drain()
        n += 1
        await asyncio.sleep(args.period_ms / 1000)


async def never_read(args, reader, writer):
    await asyncio.sleep(3600)


def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--subprotocol", action="append")
    p.add_argument("--status", type=int, default=403)
    p.add_argument("--body", default="go away")
    p.add_argument("--retry-after")
    p.add_argument("--retry-after-date-in", type=int)
    p.add_argument("--reject-count", type=int, default=1 << 30)
    p.add_argument("--close-code", type=int, default=1000)
    p.add_argument("--close-reason", default="")
    p.add_argument("--period-ms", type=int, default=50)
    p.add_argument("--rcvbuf", type=int, default=0)
    args = p.parse_args()

    if args.mode == "echo":
        asyncio.run(run_websockets(args, echo_handler))
    elif args.mode == "reject":
        rejected = 0

        def process_request(path, headers):
            nonlocal rejected
            if rejected >= args.reject_count:
                return None
            rejected += 1
            extra = [("Retry-After", args.retry_after)] if args.retry_after else []
            if args.retry_after_date_in is not None:
                now = int(time.time())
                extra = [("Date", email.utils.formatdate(now, usegmt=True)),
                         ("Retry-After", email.utils.formatdate(now + args.retry_after_date_in, usegmt=True))]
            print(f"rejected {rejected}", flush=True)
            return (http.HTTPStatus(args.status), extra, args.body.encode())

        asyncio.run(run_websockets(args, echo_handler, process_request))
    elif args.mode == "close-after":
        async def closer(ws, path=None):
            await ws.close(args.close_code, args.close_reason)

        asyncio.run(run_websockets(args, closer))
    elif args.mode == "bad-accept":
        asyncio.run(raw_http(args, lambda key: (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_for(key + 'x')}\r\n\r\n").encode()))
    elif args.mode == "bad-subprotocol":
        asyncio.run(raw_http(args, lambda key: (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_for(key)}\r\nSec-WebSocket-Protocol: never-offered\r\n\r\n").encode()))
    elif args.mode == "chatty":
        asyncio.run(raw_websocket(args, lambda r, w: chatty(args, r, w)))
    elif args.mode == "no-read":
        asyncio.run(raw_websocket(args, lambda r, w: never_read(args, r, w)))
    else:
        sys.exit(f"unknown mode {args.mode}")


if __name__ == "__main__":
    main()
