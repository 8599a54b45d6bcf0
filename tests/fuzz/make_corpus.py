#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: tests/fuzz/corpus/ (server-role
parser targets), corpus-client/ (fuzz_parser_client: the same cases as a server
sends them, unmasked), corpus-deflate/ (fuzz_deflate) and corpus-upgrade/
(fuzz_upgrade).

Each file is: 1 config byte (bits 0-1: max_message_bytes 1 MiB/4096/256/128,
bits 2-7 + next byte: split seed) + 1 seed byte + client frames (masked, as a
server reads them). Re-run after changing the input format; the files are
committed so run.sh needs no Python.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")
KEY = b"\x37\xfa\x21\x3d"


def frame(op, payload=b"", fin=True, rsv=0, masked=True, len_form=None, declared=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n = len(payload) if declared is None else declared
    form = len_form or (7 if n < 126 else 16 if n < 65536 else 64)
    mbit = 0x80 if masked else 0
    if form == 7:
        hdr = bytes([b0, mbit | n])
    elif form == 16:
        hdr = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if not masked:
        return hdr + payload
    return hdr + KEY + bytes(c ^ KEY[i % 4] for i, c in enumerate(payload))


def close(code=None, reason=b""):
    return frame(8, b"" if code is None else struct.pack(">H", code) + reason)


TEXT, BIN, CONT, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10

SEEDS = {
    "text_hello": frame(TEXT, b"Hello"),
    "binary": frame(BIN, bytes(range(40))),
    "empty_text": frame(TEXT, b""),
    "fragmented_text_ping": frame(TEXT, b"Hel", fin=False) + frame(PING, b"p") + frame(CONT, b"lo"),
    "utf8_split_fragments": frame(TEXT, "a\u20ac".encode()[:2], fin=False) + frame(CONT, "a\u20ac".encode()[2:]),
    "three_messages": frame(TEXT, b"one") + frame(BIN, b"\x00\xff") + frame(TEXT, b"three"),
    "ping_pong": frame(PING, b"ping!") + frame(PONG, b"pong!"),
    "close_normal": close(1000, b"bye"),
    "close_empty": close(),
    "close_1byte": frame(CLOSE, b"\x03"),
    "close_1005": close(1005),
    "close_1014": close(1014, b"gw"),
    "close_3000": close(3000),
    "close_5000": close(5000, b"x"),
    "close_bad_reason": close(1000, b"\xc0\xaf"),
    "close_then_data": close(1001) + frame(TEXT, b"after"),
    "unmasked": frame(TEXT, b"hi", masked=False),
    "rsv1": frame(TEXT, b"hi", rsv=4),
    "rsv2": frame(BIN, b"hi", rsv=2),
    "opcode_3": frame(3, b"x"),
    "opcode_b": frame(0xB, b""),
    "cont_without_start": frame(CONT, b"x"),
    "text_during_fragment": frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"),
    "ping_fragmented": frame(PING, b"x", fin=False),
    "ping_126": frame(PING, b"p" * 126),
    "len16_200": frame(BIN, b"z" * 200),
    "len16_nonminimal": frame(TEXT, b"abc", len_form=16),
    "len64_nonminimal": frame(BIN, b"abc", len_form=64),
    "len64_70000_partial": frame(BIN, b"q" * 16, declared=70000),
    "len64_msb": frame(BIN, b"", declared=1 << 63),
    "fragments_over_128": frame(BIN, b"a" * 100, fin=False) + frame(CONT, b"b" * 100),
    "bad_utf8": frame(TEXT, b"ab\xff"),
    "utf8_overlong": frame(TEXT, b"\xe0\x80\xaf"),
    "utf8_surrogate": frame(TEXT, b"\xed\xa0\x80"),
    "utf8_above_max": frame(TEXT, b"\xf4\x90\x80\x80"),
    "utf8_truncated_final": frame(TEXT, b"ok\xe2\x82"),
    "utf8_bad_mid_fragment": frame(TEXT, b"ok", fin=False) + frame(CONT, b"\xf4\x90", fin=False),
    "utf8_empty_final_fragment": frame(TEXT, b"a\xe2", fin=False) + frame(CONT, b""),
    "close_1byte_header_only": frame(CLOSE, b"\x03")[:-1],
    "partial_header": frame(TEXT, b"x") + b"\x81\xfe\x00",
}

# Config bytes: vary the limit and the split pattern across the seeds.
CONFIGS = [b"\x00\x00", b"\x05\x11", b"\x0a\x42", b"\x0f\x99", b"\x02\x07", b"\x03\x00"]


def client_seeds():
    """The server-role cases re-encoded as a server sends them (unmasked), plus a masked one."""
    seeds = {}
    for name, body in SEEDS.items():
        seeds[name] = unmask_all(body)
    seeds["masked_from_server"] = frame(TEXT, b"hi")
    seeds["text_then_masked"] = frame(TEXT, b"ok", masked=False) + frame(TEXT, b"no")
    return seeds


def unmask_all(stream):
    """Rewrites a stream of masked frames (as built by frame()) as unmasked frames; a trailing
    incomplete frame is kept as it is."""
    out = b""
    pos = 0
    while pos + 2 <= len(stream):
        b0, b1 = stream[pos], stream[pos + 1]
        n7 = b1 & 0x7F
        ext = 2 if n7 == 126 else 8 if n7 == 127 else 0
        masked = b1 & 0x80
        hlen = 2 + ext + (4 if masked else 0)
        if pos + hlen > len(stream):
            break
        n = n7 if not ext else int.from_bytes(stream[pos + 2:pos + 2 + ext], "big")
        if pos + hlen + n > len(stream) or not masked:
            break
        key = stream[pos + 2 + ext:pos + hlen]
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(stream[pos + hlen:pos + hlen + n]))
        out += bytes([b0, n7]) + stream[pos + 2:pos + 2 + ext] + payload
        pos += hlen + n
    return out + stream[pos:]


def deflate_seeds():
    """fuzz_deflate inputs: config byte, mode byte, then [repeat byte in round-trip mode] + length + bytes."""
    import zlib

    def raw(data, wbits=15):
        c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
        return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]  # tail 00 00 ff ff removed (RFC 7692)

    def msgs(*parts):
        return b"".join(bytes([len(p)]) + p for p in parts)

    bomb = raw(b"\0" * 200000)[:255]
    return {
        "hello": b"\x02\x00" + msgs(raw(b"Hello"), raw(b"Hello again")),
        "empty": b"\x01\x00" + msgs(b"", raw(b"")),
        "stored_block": b"\x01\x00" + msgs(b"\x01\x05\x00\xfa\xffhello"),
        "bomb_small_limit": b"\x00\x00" + msgs(bomb),
        "bomb_1k_limit": b"\x05\x00" + msgs(bomb),
        "corrupt": b"\x02\x00" + msgs(b"\xff\xff\xff\xff"),
        "final_block_then_more": b"\x02\x00" + msgs(zlib.compress(b"abc")[2:-4] + raw(b"def")),
        "roundtrip_text": b"\x02\x86" + b"\x00" + msgs(b"the quick brown fox")[0:] + b"\x10" + msgs(b"abc"),
        "roundtrip_bomb": b"\x01\x81" + b"\xff" + msgs(b"\0" * 200),
        "roundtrip_no_context": b"\xfa\x89" + b"\x03" + msgs(b"hello") + b"\x03" + msgs(b"hello"),
    }


def upgrade_seeds():
    """fuzz_upgrade inputs: options byte, then the raw request."""
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    base = (b"GET /chat?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n")
    return {
        "plain_upgrade": b"\x00" + base + b"\r\n",
        "subprotocols": b"\x06" + base + b"Sec-WebSocket-Protocol: chat, chat.v2\r\n\r\n",
        "origin_allowed": b"\x01" + base + b"Origin: https://a.example.com\r\n\r\n",
        "origin_refused": b"\x01" + base + b"Origin: https://evil.test\r\n\r\n",
        "deflate_offer": b"\x48" + base + (b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, "
                                           b"permessage-deflate; server_max_window_bits=10\r\n\r\n"),
        "at_capacity": b"\x20" + base + b"\r\n",
        "draining": b"\x10" + base + b"\r\n",
        "bad_version": b"\x00" + base.replace(b"Version: 13", b"Version: 8") + b"\r\n",
        "bad_key": b"\x00" + base.replace(key, b"short") + b"\r\n",
        "not_upgrade": b"\x00GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "http10": b"\x00" + base.replace(b"HTTP/1.1", b"HTTP/1.0") + b"\r\n",
        "garbage": b"\x00\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        "incomplete": b"\x00" + base,
    }


def write_dir(name, seeds, prefix=None):
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    for i, (seed, body) in enumerate(sorted(seeds.items())):
        cfg = CONFIGS[i % len(CONFIGS)] if prefix is None else b""
        with open(os.path.join(out, seed), "wb") as fh:
            fh.write(cfg + body)
    print(f"{len(seeds)} seeds in {out}")


def main():
    write_dir("corpus", SEEDS)
    write_dir("corpus-client", client_seeds())
    write_dir("corpus-deflate", deflate_seeds(), prefix=False)
    write_dir("corpus-upgrade", upgrade_seeds(), prefix=False)


if __name__ == "__main__":
    main()
