// Shared pieces of the parser fuzz targets: the input format, the record of
// what a parser delivered (events + final verdict), a driver that feeds
// wire::Parser in chunks, an independent frame scanner and an independent
// UTF-8 checker used to state expectations.
//
// Input format (the parser targets):
//   byte 0: bits 0-1 pick max_message_bytes (1 MiB, 4096, 256, 128),
//           bits 2-7 and byte 1 seed the chunk-size generator;
//   bytes 2..: the bytes read after the upgrade (client frames for the server
//              role; fuzz_parser_client reads them as server frames).
// Limits stay >= 128 so that "message too big" never competes with the
// 125-byte control-frame limit: whether a limit applies to control frames is
// not specified by RFC 6455, and both implementations exempt them anyway.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "wire/opcode.hpp"
#include "wire/parser.hpp"

namespace conduit::fuzz {

struct Input {
  std::uint64_t max_message_bytes = 1 << 20;
  std::uint32_t seed = 0;
  const std::uint8_t* stream = nullptr;
  std::size_t stream_len = 0;
};

inline bool decode_input(const std::uint8_t* data, std::size_t size, Input& in) {
  if (size < 2) return false;
  static constexpr std::uint64_t kMax[4] = {1 << 20, 4096, 256, 128};
  in.max_message_bytes = kMax[data[0] & 3];
  in.seed = (std::uint32_t{data[0]} >> 2) | (std::uint32_t{data[1]} << 6);
  in.stream = data + 2;
  in.stream_len = size - 2;
  return true;
}

// Chunk sizes for one split pattern. Modes: whole input, one byte at a time,
// small random chunks (1..16), larger random chunks (1..300).
inline std::vector<std::size_t> make_splits(std::size_t len, std::uint32_t seed) {
  std::vector<std::size_t> out;
  std::uint32_t x = seed * 2654435761u + 0x9E3779B9u;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
  };
  const unsigned mode = seed & 3;
  std::size_t pos = 0;
  while (pos < len) {
    std::size_t n;
    switch (mode) {
      case 0:
        n = len - pos;
        break;
      case 1:
        n = 1;
        break;
      case 2:
        n = 1 + next() % 16;
        break;
      default:
        n = 1 + next() % 300;
        break;
    }
    if (n > len - pos) n = len - pos;
    out.push_back(n);
    pos += n;
  }
  return out;
}

// ---- what a parser delivered ---------------------------------------------------

enum class Kind : char { Text = 'T', Binary = 'B', Ping = 'P', Pong = 'O', Close = 'C' };

struct Event {
  Kind kind;
  std::uint16_t code = 0;  // Close only
  std::string data;        // message payload, ping/pong payload, close reason
  bool operator==(const Event&) const = default;
};

// Final verdict classes. Ok = no error and no close: the input ended (possibly
// inside a frame or message).
enum class Verdict { Ok, Closed, ProtocolError, TooBig, BadUtf8 };

inline const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::Ok:
      return "ok(incomplete)";
    case Verdict::Closed:
      return "close-received";
    case Verdict::ProtocolError:
      return "protocol-error(1002)";
    case Verdict::TooBig:
      return "too-big(1009)";
    case Verdict::BadUtf8:
      return "bad-utf8(1007)";
  }
  return "?";
}

struct Outcome {
  std::vector<Event> events;
  Verdict verdict = Verdict::Ok;
  std::string detail;  // reason text from the implementation, for reports only

  bool same_as(const Outcome& o) const { return verdict == o.verdict && events == o.events; }
};

inline std::string escape(const std::string& s, std::size_t limit = 64) {
  std::string out;
  char buf[8];
  for (std::size_t i = 0; i < s.size() && i < limit; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > limit) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

inline void print_outcome(const char* who, const Outcome& o) {
  std::fprintf(stderr, "  %s: verdict %s%s%s, %zu event(s)\n", who, verdict_name(o.verdict),
               o.detail.empty() ? "" : " / ", o.detail.c_str(), o.events.size());
  for (const Event& e : o.events) {
    if (e.kind == Kind::Close) {
      std::fprintf(stderr, "    close code=%u reason=\"%s\"\n", e.code, escape(e.data).c_str());
    } else {
      std::fprintf(stderr, "    %c len=%zu \"%s\"\n", static_cast<char>(e.kind), e.data.size(), escape(e.data).c_str());
    }
  }
}

inline void print_bytes(const std::uint8_t* p, std::size_t n) {
  std::fprintf(stderr, "  stream (%zu bytes):", n);
  for (std::size_t i = 0; i < n && i < 256; ++i) std::fprintf(stderr, " %02x", p[i]);
  std::fprintf(stderr, n > 256 ? " ...\n" : "\n");
}

inline std::string to_string(const std::uint8_t* p, std::size_t n) {
  return n ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
}

// ---- our parser ----------------------------------------------------------------

struct RecordingHandler {
  Outcome* out;
  void on_message(wire::Opcode op, std::uint8_t* data, std::size_t len, bool compressed) {
    if (compressed) {
      std::fprintf(stderr, "FUZZ INVARIANT: compressed message with allow_rsv1=false\n");
      std::abort();
    }
    if (op != wire::Opcode::Text && op != wire::Opcode::Binary) {
      std::fprintf(stderr, "FUZZ INVARIANT: on_message with opcode %u\n", static_cast<unsigned>(op));
      std::abort();
    }
    out->events.push_back({op == wire::Opcode::Text ? Kind::Text : Kind::Binary, 0, to_string(data, len)});
  }
  void on_ping(const std::uint8_t* data, std::size_t len) {
    out->events.push_back({Kind::Ping, 0, to_string(data, len)});
  }
  void on_pong(const std::uint8_t* data, std::size_t len) {
    out->events.push_back({Kind::Pong, 0, to_string(data, len)});
  }
  void on_close(std::uint16_t code, std::string_view reason) {
    out->events.push_back({Kind::Close, code, std::string(reason)});
    out->verdict = Verdict::Closed;
  }
  void on_error(std::uint16_t code, const char* reason) {
    out->detail = reason ? reason : "";
    switch (code) {
      case wire::close_code::protocol_error:
        out->verdict = Verdict::ProtocolError;
        break;
      case wire::close_code::message_too_big:
        out->verdict = Verdict::TooBig;
        break;
      case wire::close_code::invalid_payload:
        out->verdict = Verdict::BadUtf8;
        break;
      default:
        std::fprintf(stderr, "FUZZ INVARIANT: on_error with close code %u (%s)\n", code, out->detail.c_str());
        std::abort();
    }
  }
};

// Called after every consume() with the number of stream bytes fed so far.
struct NoCheck {
  void operator()(const wire::Parser&, std::size_t, bool) const {}
};

// Feeds stream[0, len) to a fresh parser (server role unless told) in the given chunks. Each
// chunk is copied into its own exactly-sized heap block that is freed right
// after consume() returns, so ASan reports a read past a chunk and any use of
// a pointer kept from an earlier call. consume() unmasks in place, so the
// caller's bytes are never handed over directly.
template <class Check = NoCheck>
Outcome run_ours(const std::uint8_t* stream, std::size_t len, const std::vector<std::size_t>& splits,
                 std::uint64_t max_message_bytes, Check check = {}, wire::Role role = wire::Role::Server) {
  Outcome out;
  wire::Parser parser(role, wire::ParserLimits{max_message_bytes, false});
  RecordingHandler h{&out};
  std::size_t pos = 0;
  for (std::size_t n : splits) {
    if (pos + n > len) n = len - pos;
    std::unique_ptr<std::uint8_t[]> chunk(new std::uint8_t[n ? n : 1]);
    if (n) std::memcpy(chunk.get(), stream + pos, n);
    const std::size_t events_before = out.events.size();
    const bool more = parser.consume(chunk.get(), n, h);
    chunk.reset();
    pos += n;
    if (more != (out.verdict == Verdict::Ok)) {
      std::fprintf(stderr, "FUZZ INVARIANT: consume() returned %d with verdict %s\n", more, verdict_name(out.verdict));
      std::abort();
    }
    if (!more) {
      // A stopped parser must stay stopped and deliver nothing more.
      std::uint8_t extra[4] = {0x81, 0x80, 0, 0};
      const std::size_t events_now = out.events.size();
      if (parser.consume(extra, sizeof extra, h) || out.events.size() != events_now) {
        std::fprintf(stderr, "FUZZ INVARIANT: parser accepted input after stopping\n");
        std::abort();
      }
      if (out.verdict == Verdict::Closed && !parser.closed()) {
        std::fprintf(stderr, "FUZZ INVARIANT: closed() false after on_close\n");
        std::abort();
      }
      if (out.verdict != Verdict::Closed && !parser.failed()) {
        std::fprintf(stderr, "FUZZ INVARIANT: failed() false after on_error\n");
        std::abort();
      }
      break;
    }
    check(parser, pos, out.events.size() != events_before);
  }
  return out;
}

// ---- independent references (deliberately not wire:: code) ------------------------

// Strict UTF-8 (RFC 3629) written from the table in §4 of the RFC. Returns
// true if [p, p+n) is valid; with allow_truncated_tail, a final incomplete but
// still possible sequence is accepted (i.e. "is a valid prefix").
inline bool ref_utf8(const std::uint8_t* p, std::size_t n, bool allow_truncated_tail = false) {
  std::size_t i = 0;
  while (i < n) {
    const std::uint8_t b = p[i];
    if (b < 0x80) {
      ++i;
      continue;
    }
    std::size_t need;
    std::uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b >= 0xC2 && b <= 0xDF) {
      need = 1;
    } else if (b == 0xE0) {
      need = 2, lo = 0xA0;
    } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
      need = 2;
    } else if (b == 0xED) {
      need = 2, hi = 0x9F;
    } else if (b == 0xF0) {
      need = 3, lo = 0x90;
    } else if (b >= 0xF1 && b <= 0xF3) {
      need = 3;
    } else if (b == 0xF4) {
      need = 3, hi = 0x8F;
    } else {
      return false;
    }
    for (std::size_t k = 1; k <= need; ++k) {
      if (i + k >= n) return allow_truncated_tail;
      const std::uint8_t c = p[i + k];
      if (k == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) return false;
    }
    i += need + 1;
  }
  return true;
}

// One frame as laid out in the stream, decoded without judging it.
struct ScannedFrame {
  std::size_t offset = 0;      // of the first header byte
  std::size_t header_len = 0;  // 0 when the header is incomplete
  bool fin = false, rsv1 = false, rsv2 = false, rsv3 = false, masked = false;
  std::uint8_t op = 0;
  std::uint8_t len7 = 0;  // the 7-bit length field (126/127 = extended)
  std::uint64_t len = 0;
  bool payload_complete = false;
  std::string payload;  // unmasked; only when payload_complete
};

// Splits the stream into frames by their headers alone; the last entry may be
// incomplete. Stops at a frame whose payload does not fit in the stream.
inline std::vector<ScannedFrame> scan_frames(const std::uint8_t* p, std::size_t n) {
  std::vector<ScannedFrame> frames;
  std::size_t pos = 0;
  while (pos < n) {
    ScannedFrame f;
    f.offset = pos;
    if (n - pos < 2) {
      frames.push_back(f);
      break;
    }
    const std::uint8_t b0 = p[pos], b1 = p[pos + 1];
    f.fin = b0 & 0x80, f.rsv1 = b0 & 0x40, f.rsv2 = b0 & 0x20, f.rsv3 = b0 & 0x10;
    f.op = b0 & 0x0F;
    f.masked = b1 & 0x80;
    const unsigned len7 = b1 & 0x7F;
    f.len7 = static_cast<std::uint8_t>(len7);
    const std::size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    const std::size_t hlen = 2 + ext + (f.masked ? 4 : 0);
    if (n - pos < hlen) {
      frames.push_back(f);
      break;
    }
    f.len = len7;
    if (ext) {
      f.len = 0;
      for (std::size_t k = 0; k < ext; ++k) f.len = (f.len << 8) | p[pos + 2 + k];
    }
    f.header_len = hlen;
    const std::uint8_t* key = f.masked ? p + pos + 2 + ext : nullptr;
    if (f.len > n - pos - hlen) {
      frames.push_back(f);
      break;
    }
    f.payload_complete = true;
    f.payload = to_string(p + pos + hlen, static_cast<std::size_t>(f.len));
    if (key) {
      for (std::size_t k = 0; k < f.payload.size(); ++k) f.payload[k] = static_cast<char>(f.payload[k] ^ key[k & 3]);
    }
    frames.push_back(std::move(f));
    pos += hlen + static_cast<std::size_t>(frames.back().len);
  }
  return frames;
}

}  // namespace conduit::fuzz
