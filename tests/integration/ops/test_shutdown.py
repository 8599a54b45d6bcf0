"""Graceful shutdown with 1000 connected clients.

SIGTERM → every client gets close 1001 "going away" after every echo of what the server had accepted
before the signal; /readyz answers 503 and new upgrades get 503 + Retry-After while draining; the process
exits 0 within server.shutdown_grace. Also: the grace expiry with a peer that never answers, and a
second signal exiting at once."""

import asyncio
import signal
import subprocess
import time
import unittest

import opslib
from opslib import OP_TEXT, Conduitd, FastWS, RawWS, get_status, scrape, upgrade_status

CLIENTS = 1000
PER_CLIENT = 5
GRACE_S = 10


class GracefulShutdown(unittest.TestCase):
    def test_1000_clients_sigterm(self):
        server = Conduitd(mode="echo", sets={"server.shutdown_grace": f"{GRACE_S}s", "heartbeat.ping_interval": "0s",
                                             "log.level": "warn"}).start()
        try:
            asyncio.run(asyncio.wait_for(self.scenario(server), 150))
        finally:
            if server.alive():
                server._kill()
            server._release()

    async def scenario(self, server):
        got = {}
        closes = {}
        order_errors = []

        def on_data(ws, op, payload):
            expect = f"{ws.index}:{got[ws.index]}".encode()
            if bytes(payload) != expect and len(order_errors) < 10:
                order_errors.append(f"client {ws.index}: expected {expect!r}, got {bytes(payload)!r}")
            got[ws.index] += 1

        def on_close(ws, code, reason):
            closes[ws.index] = (code, reason, got[ws.index])

        clients = []
        for i in range(CLIENTS):
            ws = await FastWS.connect(server.port, on_data=on_data, on_close=on_close)
            ws.index = i
            got[i] = 0
            clients.append(ws)
        self.assertEqual(scrape(server.port).get("conduit_connections_active"), CLIENTS)

        # Every client sends PER_CLIENT messages; once the server has accepted them all (the counter is
        # bumped when a message is handed to the application, i.e. its echo is queued), signal at once.
        for ws in clients:
            for k in range(PER_CLIENT):
                ws.send(OP_TEXT, f"{ws.index}:{k}".encode())
        deadline = time.monotonic() + 60
        while scrape(server.port).get("conduit_messages_received_total") < CLIENTS * PER_CLIENT:
            self.assertLess(time.monotonic(), deadline, "the server did not accept every message")
            await asyncio.sleep(0.02)
        signalled = time.monotonic()
        server._signalled = True
        server.proc.send_signal(signal.SIGTERM)

        # Every client sees its echoes, then 1001 "going away". Clients hold their close reply for now,
        # so the server is still draining while we probe it.
        await asyncio.wait_for(asyncio.gather(*(ws.closed for ws in clients)), 60)
        bad = {i: c for i, c in closes.items() if c[0] != 1001 or c[1] != "going away"}
        self.assertEqual(bad, {}, f"{len(bad)} clients did not get 1001 'going away' (first: {list(bad.items())[:3]})")
        self.assertEqual(order_errors, [])
        short = {i: n for i, n in got.items() if n != PER_CLIENT}
        self.assertEqual(short, {}, f"{len(short)} clients lost echoes accepted before the signal")

        # While draining: /readyz is 503, a new upgrade is 503 with Retry-After, /healthz still 200.
        self.assertTrue(server.alive(), "conduitd exited before its clients answered the close")
        status, _, body = await asyncio.to_thread(get_status, server.port, "/readyz")
        self.assertEqual(status, 503, body)
        refused_before = (await asyncio.to_thread(scrape, server.port)).get(
            "conduit_handshake_failures_total", reason="shutting_down")
        status, hdrs = await asyncio.to_thread(upgrade_status, server.port)
        self.assertEqual(status, 503)
        self.assertIn("retry-after", hdrs)
        refused_after = (await asyncio.to_thread(scrape, server.port)).get(
            "conduit_handshake_failures_total", reason="shutting_down")
        self.assertEqual(refused_after, refused_before + 1, "a 503 while draining counts as shutting_down")
        status, _, _ = await asyncio.to_thread(get_status, server.port, "/healthz")
        self.assertEqual(status, 200)

        # Clients answer; the server finishes the close handshakes and exits 0 within the grace period.
        for ws in clients:
            ws.send_close(1001)
        rc = await asyncio.to_thread(server.proc.wait, GRACE_S + 5)
        took = time.monotonic() - signalled
        print(f"\n  {CLIENTS} clients: SIGTERM → exit {rc} in {took:.2f}s (grace {GRACE_S}s)")
        self.assertEqual(rc, 0, server.diagnostics())
        self.assertLess(took, GRACE_S, "drained connections must not wait for the grace period")
        for ws in clients:
            ws.abort()

    def test_grace_expires_with_a_peer_that_never_answers(self):
        server = Conduitd(mode="echo", sets={"server.shutdown_grace": "1s", "heartbeat.ping_interval": "0s",
                                             "server.close_timeout": "60s"}).start()
        try:
            with RawWS(server.port) as c:
                start = time.monotonic()
                server._signalled = True
                server.proc.send_signal(signal.SIGTERM)
                c.expect_close(1001, reply=False)  # and never answer
                rc = server.proc.wait(timeout=10)
                took = time.monotonic() - start
                self.assertEqual(rc, 0, server.diagnostics())
                self.assertGreaterEqual(took, 0.9, "exited before the grace period although a peer was open")
                self.assertLess(took, 5.0)
                self.assertIn("event=shutdown_grace_expired", server.stderr_text())
                # The peer never answered our 1001: no close handshake, so the connection is recorded as 1006.
                self.assertRegex(server.stderr_text(), r'event=close .* code=1006 reason="server stopped"')
        finally:
            if server.alive():
                server._kill()
            server._release()

    def test_second_signal_exits_at_once(self):
        server = Conduitd(mode="echo", sets={"server.shutdown_grace": "60s", "heartbeat.ping_interval": "0s",
                                             "server.close_timeout": "60s"}).start()
        try:
            with RawWS(server.port) as c:
                server._signalled = True
                server.proc.send_signal(signal.SIGTERM)
                c.expect_close(1001, reply=False)
                self.assertTrue(server.alive())
                start = time.monotonic()
                server.proc.send_signal(signal.SIGTERM)
                rc = server.proc.wait(timeout=10)
                self.assertLess(time.monotonic() - start, 5.0)
                self.assertEqual(rc, 130, "second signal: immediate exit with status 130")
        finally:
            if server.alive():
                server._kill()
            server._release()


if __name__ == "__main__":
    opslib.main()
