"""server.io: the io_uring engine is used when asked for (one log line says so), falls back to epoll
with a reason where it cannot run, echoes small, large and fragmented messages exactly, and the
close handshake completes. The whole echo/ops subset also runs on io_uring under the ctest label
`uring` (CONDUIT_IO=io_uring)."""

import os
import unittest

import conduitd
from conduitd import OP_BINARY, OP_PING, OP_TEXT, Conduitd, RawWS, run_conduitd_to_exit

OP_CONT, OP_CLOSE, OP_PONG = 0x0, 0x8, 0xA


def io_uring_available():
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            return f.read().strip() == "0"
    except FileNotFoundError:  # kernels before 6.6 have no such switch: io_uring is on
        return True


class IoEngine(unittest.TestCase):
    def test_io_uring_runs_when_asked_and_echoes_exactly(self):
        if not io_uring_available():
            self.skipTest("io_uring is disabled on this machine (kernel.io_uring_disabled)")
        with Conduitd(sets={"server.io": '"io_uring"'}) as server:
            ws = RawWS(server.port)
            for size in (0, 20, 125, 126, 16 * 1024, 60 * 1024):  # one buffer, and messages over two
                payload = bytes((i * 7 + size) & 0xFF for i in range(size))
                ws.send_frame(OP_BINARY, payload)
                op, got, _ = ws.recv_message()
                self.assertEqual((op, got), (OP_BINARY, payload), f"{size} B")
            # A fragmented text message with a ping between the fragments.
            ws.send_frame(OP_TEXT, b"hel", fin=False)
            ws.send_frame(OP_PING, b"p")
            ws.send_frame(OP_CONT, b"lo")
            pong = ws.recv_frame()
            self.assertEqual((pong.opcode, pong.payload), (OP_PONG, b"p"))
            op, got, _ = ws.recv_message()
            self.assertEqual((op, got), (OP_TEXT, b"hello"))
            # Many messages in one write: each is answered, in order.
            ws.send(b"".join(conduitd.encode_frame(OP_BINARY, b"m%d" % i) for i in range(200)))
            for i in range(200):
                self.assertEqual(ws.recv_message()[1], b"m%d" % i)
            ws.send_frame(OP_CLOSE, b"\x03\xe8")
            ws.expect_close(1000, reply=False)
            waited, _ = ws.wait_eof()
            self.assertLess(waited, 5)
            log = server.stderr_text()
            self.assertIn("event=io_engine engine=io_uring", log, log)
            self.assertIn("code=1000", log, log)

    def test_default_is_epoll_without_a_line(self):
        env_engine = os.environ.get("CONDUIT_IO")
        with Conduitd() as server:
            ws = RawWS(server.port)
            ws.send_frame(OP_TEXT, b"x")
            self.assertEqual(ws.recv_message()[1], b"x")
            log = server.stderr_text()
            if env_engine == "io_uring":
                self.assertIn("event=io_engine engine=io_uring", log, log)
            else:
                self.assertNotIn("event=io_engine", log, log)

    def test_bad_value_names_the_key(self):
        status, out = run_conduitd_to_exit(["--listen", "127.0.0.1:0", "--set", 'server.io="kqueue"'])
        self.assertEqual(status, 2, out)
        self.assertIn("server.io", out)
        self.assertIn("kqueue", out)


if __name__ == "__main__":
    conduitd.main()
