#!/usr/bin/env python3
"""Writes the seed corpus of the parser fuzz targets into tests/fuzz/corpus/.

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


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        os.remove(os.path.join(OUT, name))
    for i, (name, body) in enumerate(sorted(SEEDS.items())):
        cfg = CONFIGS[i % len(CONFIGS)]
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(cfg + body)
    print(f"{len(SEEDS)} seeds in {OUT}")


if __name__ == "__main__":
    main()
