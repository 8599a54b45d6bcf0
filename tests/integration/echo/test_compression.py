"""permessage-deflate (RFC 7692): off by default, negotiated with compression.enabled=true,
working with Python websockets, Node ws and hand-made compressed frames."""

import asyncio
import os
import unittest
import zlib

import websockets

import conduitd
from conduitd import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, Conduitd, RawWS, run_node

TAIL = b"\x00\x00\xff\xff"


class Deflater:
    """Client side of permessage-deflate: raw deflate, sync flush, tail stripped (RFC 7692 §7.2.1)."""

    def __init__(self, takeover=True):
        self.takeover = takeover
        self.c = zlib.compressobj(wbits=-15)

    def compress(self, data):
        if not self.takeover:
            self.c = zlib.compressobj(wbits=-15)
        out = self.c.compress(data) + self.c.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL)
        return out[:-4]


class Inflater:
    def __init__(self):
        self.d = zlib.decompressobj(wbits=-15)

    def decompress(self, data):
        return self.d.decompress(data + TAIL)


def negotiated(headers):
    return headers.get("sec-websocket-extensions", "")


def connect(url, **kw):
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 10)
    return websockets.connect(url, **kw)


class CompressionOn(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Conduitd(mode="echo", sets={"compression.enabled": "true"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_python_websockets_deflate(self):
        async def go():
            async with connect(self.server.url, compression="deflate") as ws:
                names = [e.name for e in ws.extensions]
                self.assertEqual(names, ["permessage-deflate"], f"negotiated: {ws.response_headers}")
                for msg in ["compressible " * 4000, os.urandom(30000), "small", b"", "é✓" * 1000]:
                    await asyncio.wait_for(ws.send(msg), 10)
                    self.assertEqual(await asyncio.wait_for(ws.recv(), 10), msg)
                parts = ["part one " * 100, "part two " * 100]
                await ws.send(parts)
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), "".join(parts))
        asyncio.run(asyncio.wait_for(go(), 60))

    def test_node_ws_per_message_deflate(self):
        self.assertIn("ok compression-on", run_node("node_peer.js", self.server.url, "compression-on"))

    def test_server_compresses_with_context_takeover(self):
        with RawWS(self.server.port, extensions="permessage-deflate; client_max_window_bits") as c:
            self.assertIn("permessage-deflate", negotiated(c.response_headers))
            out, inf = Deflater(), Inflater()
            text = ("the quick brown fox jumps over the lazy dog " * 500).encode()
            for i in range(3):  # the same message again: with takeover, later frames reference earlier ones
                c.send_frame(OP_TEXT, out.compress(text), rsv=4)
                f = c.recv_frame()
                self.assertEqual(f.opcode, OP_TEXT)
                self.assertEqual(f.rsv, 4, "a 22 KB compressible echo should be sent compressed (RSV1)")
                self.assertLess(len(f.payload), len(text) // 4)
                self.assertEqual(inf.decompress(f.payload), text)

    def test_no_context_takeover_is_agreed(self):
        offer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        with RawWS(self.server.port, extensions=offer) as c:
            agreed = negotiated(c.response_headers)
            self.assertIn("permessage-deflate", agreed)
            # RFC 7692 §7.1.1.1: accepting an offer with server_no_context_takeover means answering with it.
            self.assertIn("server_no_context_takeover", agreed)
            out = Deflater(takeover=False)
            msg = os.urandom(100) + b"z" * 5000
            sent = []
            for _ in range(2):
                c.send_frame(OP_BINARY, out.compress(msg), rsv=4)
                f = c.recv_frame()
                # 5 KB is far above compression.min_bytes: the echo is compressed (RSV1).
                self.assertEqual(f.rsv, 4, f"a 5 KB compressible echo must be sent compressed, got {f}")
                self.assertEqual(Inflater().decompress(f.payload), msg,
                                 "a fresh inflater per message must do without server context")
                sent.append(f.payload)
            # No server context kept: the same message compresses to the same bytes both times.
            self.assertEqual(sent[0], sent[1], "server_no_context_takeover: the second echo referenced the first")

    def test_fragmented_compressed_message(self):
        with RawWS(self.server.port, extensions="permessage-deflate") as c:
            body = ("fragment me " * 1000).encode()
            z = Deflater().compress(body)
            third = len(z) // 3
            c.send_frame(OP_TEXT, z[:third], fin=False, rsv=4)  # RSV1 only on the first frame
            c.send_frame(OP_PING, b"mid")
            c.send_frame(OP_CONT, z[third:2 * third], fin=False)
            c.send_frame(OP_CONT, z[2 * third:])
            op, got, frames = c.recv_message()
            self.assertEqual(frames[0].rsv, 4, f"a 12 KB compressible echo must be sent compressed: {frames[0]}")
            self.assertEqual((op, Inflater().decompress(got)), (OP_TEXT, body))

    def test_uncompressed_message_still_accepted(self):
        with RawWS(self.server.port, extensions="permessage-deflate") as c:
            c.send_frame(OP_TEXT, b"plain")
            op, got, frames = c.recv_message()
            if frames[0].rsv == 4:
                got = Inflater().decompress(got)
            self.assertEqual(got, b"plain")

    def test_decompression_bomb_is_1009(self):
        with RawWS(self.server.port, extensions="permessage-deflate") as c:
            bomb = Deflater().compress(b"\x00" * (4 * 1024 * 1024))  # ~4 KB on the wire, 4 MiB inflated
            self.assertLess(len(bomb), 65536)
            c.send_frame(OP_BINARY, bomb, rsv=4)
            c.expect_close(1009)
            c.wait_eof()

    def test_invalid_utf8_inside_compressed_text_is_1007(self):
        with RawWS(self.server.port, extensions="permessage-deflate") as c:
            c.send_frame(OP_TEXT, Deflater().compress(b"valid then \xff\xfe"), rsv=4)
            c.expect_close(1007)

    def test_rsv1_on_control_frame_is_1002(self):
        with RawWS(self.server.port, extensions="permessage-deflate") as c:
            c.send_frame(OP_PING, b"x", rsv=4)
            c.expect_close(1002)

    def test_rsv1_on_continuation_is_1002(self):
        with RawWS(self.server.port, extensions="permessage-deflate") as c:
            z = Deflater().compress(b"abc" * 100)
            c.send_frame(OP_TEXT, z[:5], fin=False, rsv=4)
            c.send_frame(OP_CONT, z[5:], rsv=4)
            c.expect_close(1002)

    def test_not_negotiated_when_not_offered(self):
        with RawWS(self.server.port) as c:
            self.assertEqual(negotiated(c.response_headers), "")
            c.send_frame(OP_TEXT, Deflater().compress(b"hello"), rsv=4)
            c.expect_close(1002)


class CompressedBroadcast(unittest.TestCase):
    """A broadcast reaches peers with and without permessage-deflate, with and without
    server context takeover: each gets every message, compressed (RSV1) when it agreed to
    the extension and the message is at least compression.min_bytes, and inflatable the
    way its negotiation says. Peers that agreed to no server context takeover are served
    one shared compressed copy; they must be able to inflate each message on its own."""

    def test_broadcast_to_mixed_compression_peers(self):
        sets = {"compression.enabled": "true"}
        with Conduitd(mode="broadcast", sets=sets) as server:
            fresh_a = RawWS(server.port, extensions="permessage-deflate; server_no_context_takeover")
            fresh_b = RawWS(server.port, extensions="permessage-deflate; server_no_context_takeover")
            takeover = RawWS(server.port, extensions="permessage-deflate")
            plain = RawWS(server.port)
            sender = RawWS(server.port)
            peers = [fresh_a, fresh_b, takeover, plain, sender]
            try:
                for p in (fresh_a, fresh_b):
                    self.assertIn("server_no_context_takeover", negotiated(p.response_headers))
                self.assertNotIn("server_no_context_takeover", negotiated(takeover.response_headers))
                self.assertNotIn("permessage-deflate", negotiated(plain.response_headers))
                messages = [("news " * 400).encode(), b"tiny", ("news " * 400).encode(), os.urandom(3000)]
                for m in messages:
                    sender.send_frame(OP_BINARY, m, mask=True)
                inflate_takeover = Inflater()
                payloads = {}
                for name, p in (("fresh_a", fresh_a), ("fresh_b", fresh_b), ("takeover", takeover),
                                ("plain", plain)):
                    got = []
                    for m in messages:
                        f = p.recv_frame()
                        self.assertEqual(f.opcode, OP_BINARY, name)
                        compressible = len(m) >= 64 and p is not plain
                        self.assertEqual(f.rsv, 4 if compressible else 0, f"{name}: RSV1 for {len(m)} bytes")
                        got.append(f.payload)
                        if f.rsv != 4:
                            data = f.payload
                        elif p is takeover:
                            data = inflate_takeover.decompress(f.payload)
                        else:
                            data = Inflater().decompress(f.payload)  # no context: a fresh inflater each time
                        self.assertEqual(data, m, name)
                    payloads[name] = got
                self.assertEqual(payloads["fresh_a"], payloads["fresh_b"])
                # With takeover, the repeated message refers back to the first: smaller than without.
                self.assertLess(len(payloads["takeover"][2]), len(payloads["fresh_a"][2]))
            finally:
                for p in peers:
                    p.close()


class CompressionOff(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Conduitd(mode="echo", sets={"compression.enabled": "false"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_python_websockets_offer_declined(self):
        async def go():
            async with connect(self.server.url, compression="deflate") as ws:
                self.assertEqual(ws.extensions, [])
                self.assertNotIn("Sec-WebSocket-Extensions", ws.response_headers)
                msg = "plain " * 1000
                await ws.send(msg)
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), msg)
        asyncio.run(asyncio.wait_for(go(), 60))

    def test_node_ws_offer_declined(self):
        self.assertIn("ok compression-off", run_node("node_peer.js", self.server.url, "compression-off"))

    def test_raw_offer_declined_and_rsv1_rejected(self):
        with RawWS(self.server.port, extensions="permessage-deflate; client_max_window_bits") as c:
            self.assertEqual(negotiated(c.response_headers), "")
            c.send_frame(OP_TEXT, Deflater().compress(b"hello"), rsv=4)
            c.expect_close(1002)


class CompressionDefault(unittest.TestCase):
    def test_off_by_default(self):
        with Conduitd(mode="echo") as server, RawWS(server.port, extensions="permessage-deflate") as c:
            self.assertEqual(negotiated(c.response_headers), "")


class CompressionFanOut(unittest.TestCase):
    """docs/protocol.md: broadcast (and relay) frames to compressed connections are compressed per
    connection (context takeover makes the bytes differ per connection); to uncompressed connections
    they are sent uncompressed."""

    # 5000 hex digits: about half compressible on its own, almost free once the compressor has seen it.
    MSG = os.urandom(2500).hex().encode()

    def receive(self, c, inflater):
        """Next data frame as (rsv, payload decompressed when RSV1 is set, wire length)."""
        _, payload, frames = c.recv_message()
        rsv = frames[0].rsv
        return rsv, (inflater.decompress(payload) if rsv == 4 else payload), len(payload)

    def check_compressed(self, c, inflater, what):
        rsv, got, wire = self.receive(c, inflater)
        self.assertEqual(rsv, 4, f"{what}: a 5 KB message to a deflate connection must be compressed")
        self.assertEqual(got, self.MSG, what)
        return wire

    def check_plain(self, c, what):
        rsv, got, _ = self.receive(c, None)
        self.assertEqual((rsv, got), (0, self.MSG), f"{what}: an uncompressed connection gets plain frames")

    def test_broadcast(self):
        with Conduitd(mode="broadcast", sets={"compression.enabled": "true", "heartbeat.ping_interval": "0s"}) \
                as server, RawWS(server.port, extensions="permessage-deflate") as a, RawWS(server.port) as plain:
            inf_a = Inflater()
            plain.send_frame(OP_TEXT, self.MSG)
            first_a = self.check_compressed(a, inf_a, "a, first message")
            self.check_plain(plain, "sender")
            # b joins after a's compressor has seen the message: b's copy must stand alone.
            with RawWS(server.port, extensions="permessage-deflate") as b:
                inf_b = Inflater()
                out_a = Deflater()
                a.send_frame(OP_TEXT, out_a.compress(self.MSG), rsv=4)
                second_a = self.check_compressed(a, inf_a, "a, second message (its own, broadcast back)")
                first_b = self.check_compressed(b, inf_b, "b, joined late")
                self.check_plain(plain, "plain, second message")
                # Context takeover per connection: a's second copy refers back to its first, b's cannot.
                self.assertLess(second_a, first_a // 4, "a's compressor did not keep its context")
                self.assertGreater(first_b, second_a, "b got a frame that refers to history it never saw")

    def test_relay(self):
        with Conduitd(mode="relay", sets={"compression.enabled": "true", "heartbeat.ping_interval": "0s"}) \
                as server, RawWS(server.port, path="/room", extensions="permessage-deflate") as a, \
                RawWS(server.port, path="/room", extensions="permessage-deflate") as b, \
                RawWS(server.port, path="/room") as sender, RawWS(server.port, path="/room") as plain:
            inf_a, inf_b = Inflater(), Inflater()
            sizes_a = []
            for i in range(2):
                sender.send_frame(OP_TEXT, self.MSG)
                sizes_a.append(self.check_compressed(a, inf_a, f"a, message {i}"))
                self.check_compressed(b, inf_b, f"b, message {i}")
                self.check_plain(plain, f"plain, message {i}")
            self.assertLess(sizes_a[1], sizes_a[0] // 4, "a's compressor did not keep its context")
            # The sender gets nothing back: the next thing it receives is plain's marker.
            plain.send_frame(OP_TEXT, b"marker")
            self.assertEqual(sender.recv_message()[:2], (OP_TEXT, b"marker"))


if __name__ == "__main__":
    conduitd.main()
