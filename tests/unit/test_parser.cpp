// Parser: every RFC 6455 §5 rule listed in wire/parser.hpp, arbitrary input
// splits, extended lengths, fragmentation with interleaved control frames,
// incremental UTF-8 and the memory rules.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "wire/frame.hpp"
#include "wire/parser.hpp"

namespace {

using namespace conduit::wire;
using Bytes = std::vector<std::uint8_t>;

// Records every callback as one readable string so streams can be compared.
struct Recorder {
  std::vector<std::string> events;
  std::vector<const std::uint8_t*> message_ptrs;
  std::uint16_t error_code = 0;

  void on_message(Opcode op, std::uint8_t* data, std::size_t len, bool compressed) {
    message_ptrs.push_back(data);
    events.push_back(std::string(op == Opcode::Text     ? "text"
                                 : op == Opcode::Binary ? "binary"
                                                        : "BAD-OP") +
                     (compressed ? "+z:" : ":") + std::string(reinterpret_cast<const char*>(data), len));
  }
  void on_ping(const std::uint8_t* data, std::size_t len) {
    events.push_back("ping:" + std::string(reinterpret_cast<const char*>(data), len));
  }
  void on_pong(const std::uint8_t* data, std::size_t len) {
    events.push_back("pong:" + std::string(reinterpret_cast<const char*>(data), len));
  }
  void on_close(std::uint16_t code, std::string_view reason) {
    events.push_back("close:" + std::to_string(code) + ":" + std::string(reason));
  }
  void on_error(std::uint16_t code, const char* reason) {
    error_code = code;
    events.push_back("error:" + std::to_string(code));
    EXPECT_NE(reason, nullptr);
    EXPECT_GT(std::strlen(reason), 0u);
  }
};

struct FrameSpec {
  std::uint8_t op;
  std::string payload;
  bool fin = true;
  bool masked = true;
  std::uint8_t rsv = 0;  // bits 0x40/0x20/0x10 of byte 0
};

// Builds a frame by hand (independent of write_header/append_frame), masking
// with a naive loop and a key that varies per frame.
Bytes frame(const FrameSpec& f) {
  static std::uint8_t counter = 0;
  Bytes out;
  out.push_back(static_cast<std::uint8_t>((f.fin ? 0x80 : 0) | f.rsv | f.op));
  const std::uint64_t len = f.payload.size();
  const std::uint8_t mbit = f.masked ? 0x80 : 0;
  if (len < 126) {
    out.push_back(static_cast<std::uint8_t>(mbit | len));
  } else if (len <= 0xFFFF) {
    out.push_back(mbit | 126);
    out.push_back(static_cast<std::uint8_t>(len >> 8));
    out.push_back(static_cast<std::uint8_t>(len));
  } else {
    out.push_back(mbit | 127);
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(len >> (8 * i)));
  }
  std::uint8_t key[4] = {static_cast<std::uint8_t>(0xA5 + counter), 0x5A, static_cast<std::uint8_t>(counter * 3), 0xC3};
  ++counter;
  if (f.masked) out.insert(out.end(), key, key + 4);
  for (std::size_t i = 0; i < len; ++i) {
    const auto b = static_cast<std::uint8_t>(f.payload[i]);
    out.push_back(f.masked ? static_cast<std::uint8_t>(b ^ key[i % 4]) : b);
  }
  return out;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::string str(std::initializer_list<int> list) {
  std::string s;
  for (int b : list) s.push_back(static_cast<char>(b));
  return s;
}

constexpr std::uint8_t kCont = 0x0, kText = 0x1, kBinary = 0x2, kClose = 0x8, kPing = 0x9, kPong = 0xA;

// Feeds stream (copied, since the parser unmasks in place) in the given piece
// sizes (the last piece takes the rest). Returns the recorder.
Recorder feed(Parser& parser, Bytes stream, const std::vector<std::size_t>& pieces = {}) {
  Recorder rec;
  std::size_t pos = 0;
  for (std::size_t piece : pieces) {
    if (pos >= stream.size()) break;
    const std::size_t n = std::min(piece, stream.size() - pos);
    // Each piece in its own allocation, as if read separately: catches reads
    // past the piece under ASan.
    Bytes chunk(stream.begin() + static_cast<std::ptrdiff_t>(pos),
                stream.begin() + static_cast<std::ptrdiff_t>(pos + n));
    if (!parser.consume(chunk.data(), chunk.size(), rec)) return rec;
    pos += n;
  }
  if (pos < stream.size()) {
    Bytes rest(stream.begin() + static_cast<std::ptrdiff_t>(pos), stream.end());
    parser.consume(rest.data(), rest.size(), rec);
  }
  return rec;
}

std::vector<std::string> parse(Bytes stream, Role role = Role::Server, ParserLimits limits = {}) {
  Parser parser(role, limits);
  return feed(parser, std::move(stream)).events;
}

std::vector<std::string> parse_bytewise(const Bytes& stream, Role role = Role::Server, ParserLimits limits = {}) {
  Parser parser(role, limits);
  return feed(parser, stream, std::vector<std::size_t>(stream.size(), 1)).events;
}

using Events = std::vector<std::string>;

// ---- basic messages ---------------------------------------------------------

TEST(Parser, SingleTextFrameIsDeliveredZeroCopy) {
  Bytes stream = frame({kText, "Hello"});
  Parser parser(Role::Server);
  Recorder rec;
  EXPECT_TRUE(parser.consume(stream.data(), stream.size(), rec));
  EXPECT_EQ(rec.events, Events{"text:Hello"});
  ASSERT_EQ(rec.message_ptrs.size(), 1u);
  EXPECT_EQ(rec.message_ptrs[0], stream.data() + 6);  // a view into the input, unmasked in place
  EXPECT_TRUE(parser.idle());
  EXPECT_EQ(parser.buffered_bytes(), 0u);
}

// A server holds one parser per connection, idle ones included: only the
// frame state is in the object, bytes a read split are on the heap.
TEST(Parser, ObjectIsSmall) { EXPECT_LE(sizeof(Parser), 40u); }

// Every split (a header, a control frame, a message) allocates the parser's
// held block; it is freed as soon as the split is resolved.
TEST(Parser, NoHeapMemoryOnceSplitsAreResolved) {
  Parser parser(Role::Server);
  Recorder rec;
  // A 16-bit-length header (2 + 2 + 4 mask bytes) split into single bytes,
  // its payload whole.
  Bytes big = frame({kBinary, std::string(300, 'x')});
  for (std::size_t i = 0; i < 8; ++i) ASSERT_TRUE(parser.consume(&big[i], 1, rec));
  EXPECT_FALSE(parser.idle());
  Bytes rest(big.begin() + 8, big.end());
  ASSERT_TRUE(parser.consume(rest.data(), rest.size(), rec));
  EXPECT_EQ(rec.events, Events{"binary:" + std::string(300, 'x')});
  EXPECT_TRUE(parser.idle());
  // A ping whose payload is split.
  const Bytes ping = frame({kPing, "0123456789"});
  Bytes head(ping.begin(), ping.begin() + 9), tail(ping.begin() + 9, ping.end());
  ASSERT_TRUE(parser.consume(head.data(), head.size(), rec));
  EXPECT_FALSE(parser.idle());
  ASSERT_TRUE(parser.consume(tail.data(), tail.size(), rec));
  EXPECT_EQ(rec.events.back(), "ping:0123456789");
  EXPECT_TRUE(parser.idle());
  EXPECT_EQ(parser.buffered_bytes(), 0u);
  // A ping whose header ends exactly where a read ends, its payload in the
  // next read (found by the fuzzer: the parser held an empty block).
  Bytes ping_head(ping.begin(), ping.begin() + 6), ping_payload(ping.begin() + 6, ping.end());
  ASSERT_TRUE(parser.consume(ping_head.data(), ping_head.size(), rec));
  ASSERT_TRUE(parser.consume(ping_payload.data(), ping_payload.size(), rec));
  EXPECT_EQ(rec.events.back(), "ping:0123456789");
  EXPECT_TRUE(parser.idle());
}

TEST(Parser, ExtendedLengths) {
  for (std::size_t len : {0, 1, 125, 126, 127, 65535, 65536, 70000}) {
    std::string payload(len, '\0');
    for (std::size_t i = 0; i < len; ++i) payload[i] = static_cast<char>(i * 31 + 7);
    const Bytes f = frame({kBinary, payload});
    ParserLimits limits;
    limits.max_message_bytes = 1 << 20;
    EXPECT_EQ(parse(f, Role::Server, limits), Events{"binary:" + payload}) << len;
    EXPECT_EQ(parse_bytewise(f, Role::Server, limits), Events{"binary:" + payload}) << len;
  }
}

TEST(Parser, ClientRoleAcceptsUnmaskedFrames) {
  const Bytes stream = cat({frame({kText, "a", true, false}), frame({kBinary, std::string(300, 'b'), true, false}),
                            frame({kPing, "p", true, false})});
  EXPECT_EQ(parse(stream, Role::Client), (Events{"text:a", "binary:" + std::string(300, 'b'), "ping:p"}));
  EXPECT_EQ(parse_bytewise(stream, Role::Client), (Events{"text:a", "binary:" + std::string(300, 'b'), "ping:p"}));
}

TEST(Parser, EmptyMessages) {
  EXPECT_EQ(parse(frame({kText, ""})), Events{"text:"});
  EXPECT_EQ(parse(cat({frame({kBinary, "", false}), frame({kCont, "", false}), frame({kCont, ""})})),
            Events{"binary:"});
  Parser parser(Role::Server);
  Recorder rec = feed(parser, cat({frame({kText, "", false}), frame({kCont, ""})}));
  ASSERT_EQ(rec.message_ptrs.size(), 1u);
  EXPECT_NE(rec.message_ptrs[0], nullptr);  // handlers may memcpy from it
}

TEST(Parser, PingPongPayloads) {
  EXPECT_EQ(parse(cat({frame({kPing, ""}), frame({kPing, std::string(125, 'x')}), frame({kPong, "pp"})})),
            (Events{"ping:", "ping:" + std::string(125, 'x'), "pong:pp"}));
}

// ---- fragmentation ----------------------------------------------------------

TEST(Parser, FragmentsAreJoinedWithInterleavedControlFrames) {
  const Bytes stream = cat({frame({kText, "Hel", false}), frame({kPing, "p1"}), frame({kCont, "lo, ", false}),
                            frame({kPong, "p2"}), frame({kCont, "world"}), frame({kBinary, "next"})});
  const Events expected{"ping:p1", "pong:p2", "text:Hello, world", "binary:next"};
  EXPECT_EQ(parse(stream), expected);
  EXPECT_EQ(parse_bytewise(stream), expected);
}

TEST(Parser, MessageBufferIsReleasedAfterDelivery) {
  Parser parser(Role::Server);
  const Bytes first = frame({kBinary, std::string(1000, 'a'), false});
  Recorder rec = feed(parser, first);
  EXPECT_TRUE(rec.events.empty());
  EXPECT_FALSE(parser.idle());
  EXPECT_EQ(parser.buffered_bytes(), 1000u);
  rec = feed(parser, frame({kCont, "b"}));
  EXPECT_EQ(rec.events, Events{"binary:" + std::string(1000, 'a') + "b"});
  EXPECT_TRUE(parser.idle());
  EXPECT_EQ(parser.buffered_bytes(), 0u);
}

TEST(Parser, SplitControlFrameInsideFragmentedMessage) {
  // The ping arrives a byte at a time between two fragments, its payload in
  // the parser's control buffer while the message buffer holds "ab".
  const Bytes ping = frame({kPing, "ping-payload"});
  Parser parser(Role::Server);
  Recorder rec = feed(parser, frame({kText, "ab", false}));
  for (std::uint8_t b : ping) {
    Bytes one{b};
    ASSERT_TRUE(parser.consume(one.data(), 1, rec));
  }
  EXPECT_EQ(rec.events, Events{"ping:ping-payload"});
  EXPECT_EQ(parser.buffered_bytes(), 2u);
  Recorder rest = feed(parser, frame({kCont, "cd"}));
  EXPECT_EQ(rest.events, Events{"text:abcd"});
  EXPECT_TRUE(parser.idle());
}

// The same multi-frame stream split at random points always yields the same events.
TEST(Parser, RandomSplitsOfMultiFrameStream) {
  std::string big(70000, 'z');
  const Bytes stream =
      cat({frame({kText, "héllo wörld"}), frame({kBinary, std::string(200, 'q'), false}), frame({kPing, "1234567"}),
           frame({kCont, "tail"}), frame({kText, "€", false}), frame({kCont, "€"}), frame({kBinary, big}),
           frame({kPong, ""}), frame({kText, std::string(126, 'm')}), frame({kClose, str({0x03, 0xE8}) + "done"})});
  ParserLimits limits;
  limits.max_message_bytes = 100000;
  const Events expected = parse(stream, Role::Server, limits);
  ASSERT_EQ(expected.size(), 8u);
  EXPECT_EQ(expected.back(), "close:1000:done");
  EXPECT_EQ(parse_bytewise(stream, Role::Server, limits), expected);
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::size_t> pieces;
    std::size_t total = 0;
    while (total < stream.size()) {
      // Mostly small pieces so that headers and masks split everywhere.
      const std::size_t n = rng() % 4 == 0 ? 1 + rng() % 5000 : 1 + rng() % 20;
      pieces.push_back(n);
      total += n;
    }
    Parser parser(Role::Server, limits);
    ASSERT_EQ(feed(parser, stream, pieces).events, expected) << "round " << round;
    EXPECT_TRUE(parser.closed());
  }
}

// ---- §5 protocol errors → 1002 ----------------------------------------------

void expect_error(const Bytes& stream, std::uint16_t code, Role role = Role::Server, ParserLimits limits = {}) {
  Parser whole(role, limits);
  Recorder rec = feed(whole, stream);
  ASSERT_FALSE(rec.events.empty());
  EXPECT_EQ(rec.events.back(), "error:" + std::to_string(code));
  EXPECT_TRUE(whole.failed());
  Parser bytewise(role, limits);
  Recorder rec2 = feed(bytewise, stream, std::vector<std::size_t>(stream.size(), 1));
  EXPECT_EQ(rec.events, rec2.events);
}

TEST(ParserErrors, ReservedBits) {
  expect_error(frame({kText, "x", true, true, 0x40}), 1002);  // RSV1 without extension
  expect_error(frame({kText, "x", true, true, 0x20}), 1002);
  expect_error(frame({kText, "x", true, true, 0x10}), 1002);
  ParserLimits deflate;
  deflate.allow_rsv1 = true;
  expect_error(frame({kText, "x", true, true, 0x20}), 1002, Role::Server, deflate);
  expect_error(cat({frame({kText, "x", false, true, 0x40}), frame({kCont, "y", true, true, 0x40})}), 1002, Role::Server,
               deflate);
  expect_error(frame({kPing, "x", true, true, 0x40}), 1002, Role::Server, deflate);
}

TEST(ParserErrors, Rsv1AllowedOnFirstFrameWhenNegotiated) {
  ParserLimits deflate;
  deflate.allow_rsv1 = true;
  // Compressed text is not UTF-8-checked by the parser (the bytes are deflate data).
  const std::string compressed = str({0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00});
  EXPECT_EQ(parse(frame({kText, compressed, true, true, 0x40}), Role::Server, deflate), Events{"text+z:" + compressed});
  EXPECT_EQ(
      parse(cat({frame({kText, compressed.substr(0, 3), false, true, 0x40}), frame({kCont, compressed.substr(3)})}),
            Role::Server, deflate),
      Events{"text+z:" + compressed});
}

TEST(ParserErrors, ReservedOpcodes) {
  for (std::uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    expect_error(frame({op, ""}), 1002);
  }
}

TEST(ParserErrors, ControlFrameRules) {
  expect_error(frame({kPing, "x", false}), 1002);  // fragmented control frame
  expect_error(frame({kPong, std::string(126, 'x')}), 1002);
  expect_error(frame({kClose, str({0x03})}), 1002);  // 1-byte close payload
}

TEST(ParserErrors, FragmentationRules) {
  expect_error(frame({kCont, "orphan"}), 1002);
  expect_error(cat({frame({kText, "a", false}), frame({kText, "b"})}), 1002);
  expect_error(cat({frame({kBinary, "a", false}), frame({kBinary, "b", false})}), 1002);
  // A finished message does not leave a message open.
  expect_error(cat({frame({kText, "a"}), frame({kCont, "b"})}), 1002);
}

TEST(ParserErrors, MaskingRules) {
  expect_error(frame({kText, "x", true, false}), 1002, Role::Server);
  expect_error(frame({kText, "x", true, true}), 1002, Role::Client);
  expect_error(frame({kPing, "", true, false}), 1002, Role::Server);
}

TEST(ParserErrors, LengthEncodings) {
  // 64-bit length with the top bit set.
  expect_error(Bytes{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, 1002);
  // Non-minimal encodings.
  expect_error(Bytes{0x82, 0xFE, 0x00, 0x05, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e'}, 1002);
  expect_error(Bytes{0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 1, 2, 3, 4}, 1002);
}

TEST(ParserErrors, CloseCodes) {
  for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535}) {
    expect_error(frame({kClose, str({code >> 8, code & 0xFF})}), 1002);
  }
  for (int code : {1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999}) {
    EXPECT_EQ(parse(frame({kClose, str({code >> 8, code & 0xFF}) + "r"})),
              Events{"close:" + std::to_string(code) + ":r"});
  }
}

// ---- UTF-8 → 1007 -----------------------------------------------------------

TEST(ParserUtf8, InvalidTextIs1007) {
  for (const std::string& bad :
       {str({0xC0, 0x80}), str({0xE0, 0x80, 0x80}), str({0xF0, 0x80, 0x80, 0x80}), str({0xED, 0xA0, 0x80}),
        str({0xF4, 0x90, 0x80, 0x80}), str({0xFF}), std::string("ok") + str({0xC2})}) {
    expect_error(frame({kText, bad}), 1007);
  }
  // Binary messages are not UTF-8.
  EXPECT_EQ(parse(frame({kBinary, str({0xFF, 0xC0})})), Events{"binary:" + str({0xFF, 0xC0})});
}

TEST(ParserUtf8, SequenceSplitAcrossFragmentsIsValid) {
  // U+1F600 F0 9F 98 80 split 2/2 across fragments, and '€' E2 82 AC split 1/2.
  const Bytes stream = cat({frame({kText, "a" + str({0xF0, 0x9F}), false}),
                            frame({kCont, str({0x98, 0x80, 0xE2}), false}), frame({kCont, str({0x82, 0xAC})})});
  const Events expected{"text:a" + str({0xF0, 0x9F, 0x98, 0x80, 0xE2, 0x82, 0xAC})};
  EXPECT_EQ(parse(stream), expected);
  EXPECT_EQ(parse_bytewise(stream), expected);
}

TEST(ParserUtf8, TruncatedAtMessageEndIs1007) {
  expect_error(cat({frame({kText, "a", false}), frame({kCont, str({0xE2, 0x82})})}), 1007);
}

TEST(ParserUtf8, FailsFastMidFragment) {
  // A 1000-byte fragment whose 5th byte is invalid: the error comes with the
  // first 10 payload bytes, before the frame (or the message) is complete.
  std::string payload = "abcd" + str({0xFF}) + std::string(995, 'x');
  Bytes f = frame({kText, payload, false});
  const std::size_t header = 2 + 2 + 4;
  Parser parser(Role::Server);
  Recorder rec = feed(parser, Bytes(f.begin(), f.begin() + header + 10));
  EXPECT_EQ(rec.events, Events{"error:1007"});
  EXPECT_TRUE(parser.failed());
}

TEST(ParserUtf8, OverlongRejectedAtSecondByte) {
  Bytes f = frame({kText, str({0xE0, 0x80, 0x80, 'a'})});
  Parser parser(Role::Server);
  // Header (6 bytes) + the two payload bytes E0 80.
  Recorder rec = feed(parser, Bytes(f.begin(), f.begin() + 8), {7});
  EXPECT_EQ(rec.events, Events{"error:1007"});
}

TEST(ParserUtf8, InvalidCloseReasonIs1002) { expect_error(frame({kClose, str({0x03, 0xE8, 0xC0, 0x80})}), 1002); }

// ---- size limit → 1009 ------------------------------------------------------

TEST(ParserLimit, OversizeFrameDetectedFromHeader) {
  ParserLimits limits;
  limits.max_message_bytes = 1000;
  Bytes f = frame({kBinary, std::string(1001, 'x')});
  Parser parser(Role::Server, limits);
  // Only the header (2 + 2 + 4 bytes): no payload has been sent yet.
  Recorder rec = feed(parser, Bytes(f.begin(), f.begin() + 8));
  EXPECT_EQ(rec.events, Events{"error:1009"});
  EXPECT_EQ(parser.buffered_bytes(), 0u);
  EXPECT_EQ(parse(frame({kBinary, std::string(1000, 'x')}), Role::Server, limits),
            Events{"binary:" + std::string(1000, 'x')});
}

TEST(ParserLimit, FragmentsSumDetectedAtOffendingHeader) {
  ParserLimits limits;
  limits.max_message_bytes = 100;
  const Bytes ok = cat({frame({kText, std::string(60, 'a'), false}), frame({kCont, std::string(40, 'b')})});
  EXPECT_EQ(parse(ok, Role::Server, limits), Events{"text:" + std::string(60, 'a') + std::string(40, 'b')});
  const Bytes first = frame({kText, std::string(60, 'a'), false});
  Bytes second = frame({kCont, std::string(41, 'b')});
  Parser parser(Role::Server, limits);
  Recorder rec = feed(parser, first);
  EXPECT_TRUE(rec.events.empty());
  rec = feed(parser, Bytes(second.begin(), second.begin() + 6));  // header only
  EXPECT_EQ(rec.events, Events{"error:1009"});
  EXPECT_EQ(parser.buffered_bytes(), 0u);  // released on failure
}

TEST(ParserLimit, HugeDeclaredLength) {
  expect_error(Bytes{0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4}, 1009);
}

// ---- close and terminal states ----------------------------------------------

TEST(ParserClose, EmptyCloseIs1005) { EXPECT_EQ(parse(frame({kClose, ""})), Events{"close:1005:"}); }

TEST(ParserClose, InputAfterCloseIsIgnored) {
  Parser parser(Role::Server);
  Bytes stream = cat({frame({kClose, str({0x03, 0xE9}) + "going"}), frame({kText, "after"})});
  Recorder rec;
  EXPECT_FALSE(parser.consume(stream.data(), stream.size(), rec));
  EXPECT_EQ(rec.events, Events{"close:1001:going"});
  EXPECT_TRUE(parser.closed());
  Bytes more = frame({kText, "more"});
  EXPECT_FALSE(parser.consume(more.data(), more.size(), rec));
  EXPECT_EQ(rec.events.size(), 1u);
}

TEST(ParserClose, InputAfterErrorIsIgnored) {
  Parser parser(Role::Server);
  Bytes bad = frame({kCont, "x"});
  Recorder rec;
  EXPECT_FALSE(parser.consume(bad.data(), bad.size(), rec));
  Bytes good = frame({kText, "y"});
  EXPECT_FALSE(parser.consume(good.data(), good.size(), rec));
  EXPECT_EQ(rec.events, Events{"error:1002"});
}

TEST(ParserClose, CloseInsideFragmentedMessage) {
  const Bytes stream = cat({frame({kText, "part", false}), frame({kClose, str({0x03, 0xE8})})});
  EXPECT_EQ(parse(stream), Events{"close:1000:"});
  EXPECT_EQ(parse_bytewise(stream), Events{"close:1000:"});
}

// Mutated streams (random byte flips, truncations) must give the same events,
// errors included, whether fed whole, a byte at a time or in random pieces:
// the verdict depends on the bytes, never on how reads split them. Under ASan
// this also shows that no mutation reads or writes out of bounds.
TEST(ParserRobustness, MutatedStreamsAreSplitInvariant) {
  const Bytes base = cat({frame({kText, "héllo", false}), frame({kPing, "pp"}), frame({kCont, std::string(300, 'x')}),
                          frame({kBinary, std::string(70, 'b')}), frame({kClose, str({0x03, 0xE8}) + "ok"})});
  std::mt19937 rng(1234);
  ParserLimits limits;
  limits.max_message_bytes = 1000;
  for (int round = 0; round < 2000; ++round) {
    Bytes stream = base;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int i = 0; i < flips; ++i) stream[rng() % stream.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
    if (rng() % 4 == 0) stream.resize(rng() % stream.size());
    const Events whole = parse(stream, Role::Server, limits);
    ASSERT_EQ(parse_bytewise(stream, Role::Server, limits), whole) << "round " << round;
    std::vector<std::size_t> pieces;
    for (std::size_t total = 0; total < stream.size();) {
      pieces.push_back(1 + rng() % 40);
      total += pieces.back();
    }
    Parser parser(Role::Server, limits);
    ASSERT_EQ(feed(parser, stream, pieces).events, whole) << "round " << round;
  }
}

// The serializer's output parses back (Client role for server frames, Server
// role for masked client frames).
TEST(ParserRoundTrip, AppendFrameOutputParses) {
  std::string server_out, client_out;
  for (std::size_t len : {0, 10, 125, 126, 65535, 65536}) {
    append_frame(server_out, Opcode::Binary, std::string(len, 's'), false);
    append_frame(client_out, Opcode::Binary, std::string(len, 'c'), true);
  }
  append_frame(client_out, Opcode::Close, close_payload(1000, "bye"), true);
  ParserLimits limits;
  limits.max_message_bytes = 1 << 20;
  Events server_events = parse(Bytes(server_out.begin(), server_out.end()), Role::Client, limits);
  Events client_events = parse(Bytes(client_out.begin(), client_out.end()), Role::Server, limits);
  ASSERT_EQ(server_events.size(), 6u);
  ASSERT_EQ(client_events.size(), 7u);
  EXPECT_EQ(server_events[5], "binary:" + std::string(65536, 's'));
  EXPECT_EQ(client_events[4], "binary:" + std::string(65535, 'c'));
  EXPECT_EQ(client_events[6], "close:1000:bye");
}

}  // namespace
