"""RFC 6455 framing rules enforced by conduitd, provoked from a raw socket (no library would send these)."""

import os
import struct
import time
import unittest

import conduitd
from conduitd import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Conduitd, RawWS, close_payload,
                      encode_frame, upgrade_request)


class Framing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Conduitd(mode="echo").start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def ws(self, **kw):
        return RawWS(self.server.port, **kw)

    def assert_violation(self, code, *frames, name=""):
        """Sends the given encoded frames on a fresh connection; the server must close with code and end TCP."""
        with self.ws() as c:
            for f in frames:
                c.send(f)
            try:
                c.expect_close(code)
            except AssertionError as e:
                raise AssertionError(f"{name}: {e}") from None
            c.wait_eof()

    # ---- well-formed traffic, delivered in awkward ways ----

    def test_echo_reply_is_unmasked_and_keeps_opcode(self):
        with self.ws() as c:
            c.send_frame(OP_TEXT, b"hi")
            f = c.recv_frame()
            self.assertEqual((f.opcode, f.fin, f.rsv, f.masked, f.payload), (OP_TEXT, True, 0, False, b"hi"))
            c.send_frame(OP_BINARY, b"\x00\xff")
            f = c.recv_frame()
            self.assertEqual((f.opcode, f.masked, f.payload), (OP_BINARY, False, b"\x00\xff"))

    def test_extended_lengths(self):
        with self.ws() as c:
            for n in (0, 125, 126, 127, 65535, 65536):
                msg = os.urandom(n)
                c.send_frame(OP_BINARY, msg)
                op, got, _ = c.recv_message()
                self.assertEqual((op, len(got)), (OP_BINARY, n))
                self.assertEqual(got, msg)

    def test_one_byte_at_a_time(self):
        with self.ws() as c:
            data = (encode_frame(OP_TEXT, b"Hel", fin=False) + encode_frame(OP_PING, b"p") +
                    encode_frame(OP_CONT, b"lo, ", fin=False) + encode_frame(OP_CONT, "wörld".encode()) +
                    encode_frame(OP_BINARY, os.urandom(300)))
            for i in range(len(data)):
                c.send(data[i:i + 1])
                time.sleep(0.0005)  # shapes the input into many small TCP segments; not a synchronisation
            f = c.recv_frame()
            self.assertEqual((f.opcode, f.payload), (OP_PONG, b"p"))
            op, got, _ = c.recv_message()
            self.assertEqual((op, got), (OP_TEXT, "Hello, wörld".encode()))
            op, got, _ = c.recv_message()
            self.assertEqual((op, len(got)), (OP_BINARY, 300))

    def test_ping_interleaved_in_fragmented_message(self):
        with self.ws() as c:
            c.send_frame(OP_TEXT, b"frag", fin=False)
            c.send_frame(OP_PING, b"in-between")
            f = c.recv_frame()  # the pong must come before the message is finished
            self.assertEqual((f.opcode, f.payload), (OP_PONG, b"in-between"))
            c.send_frame(OP_CONT, b"ment", fin=False)
            c.send_frame(OP_PONG, b"unsolicited")  # allowed, ignored
            c.send_frame(OP_CONT, b"ed")
            op, got, frames = c.recv_message()
            self.assertEqual((op, got), (OP_TEXT, b"fragmented"))

    def test_frames_in_the_same_write_as_the_upgrade_request(self):
        # A client may send its first frames right behind the request, before the 101 arrives:
        # they are the start of the WebSocket stream, not part of the HTTP request.
        req, key = upgrade_request("/")
        frames = (encode_frame(OP_TEXT, b"first") + encode_frame(OP_BINARY, b"\x00second")
                  + encode_frame(OP_CLOSE, close_payload(1000)))
        c = RawWS(self.server.port, handshake=False)
        with c:
            c.send(req + frames)
            deadline = time.monotonic() + 10
            while b"\r\n\r\n" not in c.buf:
                chunk = conduitd._recv_until(c.sock, deadline)
                self.assertTrue(chunk, f"closed before the 101; got {c.buf!r}")
                c.buf += chunk
            head, c.buf = c.buf.split(b"\r\n\r\n", 1)
            status, headers = conduitd.parse_head(head)
            self.assertEqual(status, 101)
            self.assertEqual(headers.get("sec-websocket-accept"), conduitd.accept_for(key))
            self.assertEqual(c.recv_message()[:2], (OP_TEXT, b"first"))
            self.assertEqual(c.recv_message()[:2], (OP_BINARY, b"\x00second"))
            c.expect_close(1000, reply=False)
            c.wait_eof()

    def test_ping_pong_raw(self):
        with self.ws() as c:
            payload = os.urandom(125)
            c.send_frame(OP_PING, payload)
            f = c.recv_frame()
            self.assertEqual((f.opcode, f.fin, f.masked, f.payload), (OP_PONG, True, False, payload))

    def test_close_handshake_1000(self):
        with self.ws() as c:
            c.send_frame(OP_CLOSE, close_payload(1000, b"bye"))
            f = c.expect_close(1000, reply=False)
            self.assertLessEqual(len(f.payload), 125)
            waited, frames = c.wait_eof()
            self.assertEqual(frames, [], "nothing may follow the server's close frame")

    def test_close_without_payload_answered(self):
        with self.ws() as c:
            c.send_frame(OP_CLOSE, b"")
            f = c.recv_frame()
            self.assertEqual(f.opcode, OP_CLOSE)
            # docs/protocol.md: an empty close is answered with an empty one.
            self.assertEqual(f.payload, b"", f"an empty close must be answered empty, got {f}")
            c.wait_eof()

    def test_close_with_application_code_answered(self):
        with self.ws() as c:
            c.send_frame(OP_CLOSE, close_payload(4001, "fine ✓".encode()))
            f = c.recv_frame()
            self.assertEqual(f.opcode, OP_CLOSE)
            # docs/protocol.md: the peer's close code is echoed.
            self.assertEqual(f.close_code, 4001, f"the close code must be echoed, got {f}")
            c.wait_eof()

    # ---- protocol violations → 1002 ----

    def test_unmasked_client_frame(self):
        self.assert_violation(1002, encode_frame(OP_TEXT, b"hello", mask=False), name="unmasked")

    def test_rsv_bits_without_extension(self):
        for rsv in (1, 2, 4, 3, 7):
            self.assert_violation(1002, encode_frame(OP_TEXT, b"x", rsv=rsv), name=f"rsv={rsv}")

    def test_rsv_on_control_frame(self):
        self.assert_violation(1002, encode_frame(OP_PING, b"x", rsv=4), name="rsv1 ping")

    def test_reserved_opcodes(self):
        for op in (0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF):
            self.assert_violation(1002, encode_frame(op, b"x"), name=f"opcode {op:#x}")

    def test_fragmented_ping(self):
        self.assert_violation(1002, encode_frame(OP_PING, b"ab", fin=False), name="fragmented ping")

    def test_fragmented_close(self):
        self.assert_violation(1002, encode_frame(OP_CLOSE, close_payload(1000), fin=False), name="fragmented close")

    def test_ping_over_125_bytes(self):
        self.assert_violation(1002, encode_frame(OP_PING, b"p" * 126), name="ping 126")

    def test_close_over_125_bytes(self):
        self.assert_violation(1002, encode_frame(OP_CLOSE, close_payload(1000, b"r" * 124)), name="close 126")

    def test_continuation_without_start(self):
        self.assert_violation(1002, encode_frame(OP_CONT, b"orphan"), name="lone continuation")

    def test_continuation_after_completed_message(self):
        with self.ws() as c:
            c.send_frame(OP_TEXT, b"done")
            self.assertEqual(c.recv_message()[1], b"done")
            c.send_frame(OP_CONT, b"late")
            c.expect_close(1002)

    def test_new_text_during_fragmented_message(self):
        self.assert_violation(1002, encode_frame(OP_TEXT, b"a", fin=False), encode_frame(OP_TEXT, b"b"),
                              name="text during fragments")

    def test_new_binary_during_fragmented_message(self):
        self.assert_violation(1002, encode_frame(OP_BINARY, b"a", fin=False), encode_frame(OP_BINARY, b"b"),
                              name="binary during fragments")

    def test_one_byte_close_payload(self):
        self.assert_violation(1002, encode_frame(OP_CLOSE, b"\x03"), name="1-byte close")

    def test_invalid_close_codes(self):
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535):
            self.assert_violation(1002, encode_frame(OP_CLOSE, close_payload(code)), name=f"close code {code}")

    def test_64bit_length_with_top_bit(self):
        frame = struct.pack("!BB", 0x82, 0x80 | 127) + struct.pack("!Q", 1 << 63) + os.urandom(4)
        self.assert_violation(1002, frame, name="length top bit")

    # ---- invalid UTF-8 → 1007 ----

    def test_invalid_utf8_text(self):
        for bad in (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\x80", b"\xe2\x82"):
            self.assert_violation(1007, encode_frame(OP_TEXT, bad), name=f"utf8 {bad!r}")

    def test_invalid_utf8_detected_before_message_end(self):
        # The first fragment is already invalid: the server must not wait for the rest.
        self.assert_violation(1007, encode_frame(OP_TEXT, b"fine so far \xc0\xaf", fin=False),
                              name="invalid first fragment")

    def test_codepoint_split_across_fragments_is_valid(self):
        with self.ws() as c:
            s = "€𝄞".encode()  # 3 + 4 bytes, split inside both code points
            c.send_frame(OP_TEXT, s[:2], fin=False)
            c.send_frame(OP_CONT, s[2:5], fin=False)
            c.send_frame(OP_CONT, s[5:])
            self.assertEqual(c.recv_message()[:2], (OP_TEXT, s))

    def test_truncated_codepoint_at_message_end(self):
        s = "€".encode()
        self.assert_violation(1007, encode_frame(OP_TEXT, s[:2], fin=False), encode_frame(OP_CONT, b""),
                              name="truncated at end")

    def test_invalid_utf8_binary_is_fine(self):
        with self.ws() as c:
            c.send_frame(OP_BINARY, b"\xff\xfe\xc0")
            self.assertEqual(c.recv_message()[:2], (OP_BINARY, b"\xff\xfe\xc0"))

    def test_invalid_utf8_close_reason(self):
        self.assert_violation(1002, encode_frame(OP_CLOSE, close_payload(1000, b"\xff\xfe")), name="close reason")

    # ---- message size → 1009, from the header ----

    def test_oversize_detected_from_header(self):
        # Announce 10 MB but send only a few bytes: the verdict must come from the header alone.
        with self.ws() as c:
            c.send(encode_frame(OP_BINARY, b"", length=10_000_000)[:2 + 8 + 4] + b"abc")
            c.expect_close(1009)
            c.wait_eof()

    def test_oversize_across_fragments(self):
        with self.ws() as c:
            c.send_frame(OP_BINARY, os.urandom(40000), fin=False)
            c.send(encode_frame(OP_CONT, b"", length=40000)[:2 + 2 + 4])  # header only: total 80000 > 65536
            c.expect_close(1009)
            c.wait_eof()


if __name__ == "__main__":
    conduitd.main()
