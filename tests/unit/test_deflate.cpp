// permessage-deflate: negotiation, RFC 7692 vectors, context takeover,
// decompression bombs and corrupt data.
#include <gtest/gtest.h>

#include <zlib.h>

#include <cstdint>
#include <random>
#include <string>

#include "wire/deflate.hpp"

namespace {

using namespace conduit::wire;

const std::uint8_t* u8(const std::string& s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }
std::string str(std::initializer_list<int> list) {
  std::string s;
  for (int b : list) s.push_back(static_cast<char>(b));
  return s;
}

DeflateConfig enabled() {
  DeflateConfig c;
  c.enabled = true;
  return c;
}

// ---- negotiation --------------------------------------------------------------

TEST(DeflateNegotiation, DisabledNeverNegotiates) {
  EXPECT_FALSE(negotiate_deflate("permessage-deflate", DeflateConfig{}).has_value());
}

TEST(DeflateNegotiation, PlainOffer) {
  const auto n = negotiate_deflate("permessage-deflate", enabled());
  ASSERT_TRUE(n);
  EXPECT_EQ(n->response, "permessage-deflate");
  EXPECT_FALSE(n->params.server_no_context_takeover);
  EXPECT_FALSE(n->params.client_no_context_takeover);
  EXPECT_EQ(n->params.server_max_window_bits, 15);
  EXPECT_EQ(n->params.client_max_window_bits, 15);
}

TEST(DeflateNegotiation, BrowserOfferWithValuelessClientBits) {
  // What Chromium sends. With a default config we do not answer
  // client_max_window_bits (15 is the default anyway).
  auto n = negotiate_deflate("permessage-deflate; client_max_window_bits", enabled());
  ASSERT_TRUE(n);
  EXPECT_EQ(n->response, "permessage-deflate");
  DeflateConfig small = enabled();
  small.client_max_window_bits = 10;
  n = negotiate_deflate("permessage-deflate; client_max_window_bits", small);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->response, "permessage-deflate; client_max_window_bits=10");
  EXPECT_EQ(n->params.client_max_window_bits, 10);
}

TEST(DeflateNegotiation, NoClientBitsAnswerWhenNotOffered) {
  DeflateConfig small = enabled();
  small.client_max_window_bits = 10;
  const auto n = negotiate_deflate("permessage-deflate", small);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->response, "permessage-deflate");
  EXPECT_EQ(n->params.client_max_window_bits, 15);
}

TEST(DeflateNegotiation, AllParameters) {
  const auto n = negotiate_deflate(
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; "
      "client_max_window_bits=12",
      enabled());
  ASSERT_TRUE(n);
  EXPECT_TRUE(n->params.server_no_context_takeover);
  EXPECT_TRUE(n->params.client_no_context_takeover);
  EXPECT_EQ(n->params.server_max_window_bits, 10);
  EXPECT_EQ(n->params.client_max_window_bits, 12);
  EXPECT_EQ(n->response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; "
            "client_max_window_bits=12");
}

TEST(DeflateNegotiation, ConfigNoContextTakeoverIsAnswered) {
  DeflateConfig c = enabled();
  c.server_no_context_takeover = true;
  c.client_no_context_takeover = true;
  const auto n = negotiate_deflate("permessage-deflate", c);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->response, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
  EXPECT_TRUE(n->params.server_no_context_takeover);
  EXPECT_TRUE(n->params.client_no_context_takeover);
}

TEST(DeflateNegotiation, ServerWindowNeverAboveOffer) {
  DeflateConfig c = enabled();
  c.server_max_window_bits = 9;
  auto n = negotiate_deflate("permessage-deflate; server_max_window_bits=12", c);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->params.server_max_window_bits, 9);
  EXPECT_EQ(n->response, "permessage-deflate; server_max_window_bits=9");
  n = negotiate_deflate("permessage-deflate; server_max_window_bits=\"11\"", enabled());
  ASSERT_TRUE(n);
  EXPECT_EQ(n->params.server_max_window_bits, 11);
}

TEST(DeflateNegotiation, BadOffersAreSkipped) {
  for (const char* bad :
       {"permessage-deflate; foo", "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7", "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=08", "permessage-deflate; client_max_window_bits=x",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover=1",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10", "x-webkit-deflate-frame", ""}) {
    EXPECT_FALSE(negotiate_deflate(bad, enabled()).has_value()) << bad;
  }
}

TEST(DeflateNegotiation, FirstAcceptableOfferWins) {
  const auto n = negotiate_deflate(
      "permessage-deflate; server_max_window_bits=99, permessage-deflate; client_no_context_takeover, "
      "permessage-deflate",
      enabled());
  ASSERT_TRUE(n);
  EXPECT_EQ(n->response, "permessage-deflate; client_no_context_takeover");
}

TEST(DeflateNegotiation, ClientOfferAndResponse) {
  DeflateConfig c = enabled();
  EXPECT_EQ(make_deflate_offer(c), "permessage-deflate; client_max_window_bits");
  c.client_no_context_takeover = true;
  c.server_max_window_bits = 10;
  EXPECT_EQ(make_deflate_offer(c),
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits");

  auto p =
      accept_deflate_response("permessage-deflate; server_no_context_takeover; client_max_window_bits=9", enabled());
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->server_no_context_takeover);
  EXPECT_EQ(p->client_max_window_bits, 9);
  EXPECT_FALSE(accept_deflate_response("permessage-deflate; client_max_window_bits", enabled()).has_value());
  EXPECT_FALSE(accept_deflate_response("permessage-deflate; bogus", enabled()).has_value());
  EXPECT_FALSE(accept_deflate_response("permessage-deflate, permessage-deflate", enabled()).has_value());
}

// ---- compression --------------------------------------------------------------

TEST(PerMessageDeflate, Rfc7692HelloVectors) {
  PerMessageDeflate server(Role::Server, DeflateParams{}, 6);
  std::string out;
  server.compress(u8("Hello"), 5, out);
  // §7.2.3.1 and §7.2.3.2: the same message again, with the shared window,
  // becomes a back-reference.
  EXPECT_EQ(out, str({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}));
  out.clear();
  server.compress(u8("Hello"), 5, out);
  EXPECT_EQ(out, str({0xf2, 0x00, 0x11, 0x00, 0x00}));

  PerMessageDeflate client(Role::Client, DeflateParams{}, 6);
  std::string plain;
  const std::string first = str({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
  ASSERT_EQ(client.decompress(u8(first), first.size(), plain, 1000), InflateResult::Ok);
  EXPECT_EQ(plain, "Hello");
  const std::string second = str({0xf2, 0x00, 0x11, 0x00, 0x00});
  ASSERT_EQ(client.decompress(u8(second), second.size(), plain, 1000), InflateResult::Ok);
  EXPECT_EQ(plain, "Hello");
}

TEST(PerMessageDeflate, Rfc7692StoredAndFinalBlocks) {
  PerMessageDeflate d(Role::Server, DeflateParams{}, 6);
  std::string plain;
  // §7.2.3.3: a stored (uncompressed) block.
  const std::string stored = str({0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00});
  ASSERT_EQ(d.decompress(u8(stored), stored.size(), plain, 100), InflateResult::Ok);
  EXPECT_EQ(plain, "Hello");
  // §7.2.3.4 with BFINAL set: "Hello" in one final fixed-Huffman block.
  const std::string final_block = str({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
  ASSERT_EQ(d.decompress(u8(final_block), final_block.size(), plain, 100), InflateResult::Ok);
  EXPECT_EQ(plain, "Hello");
}

std::string sample_text(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  static const char* words[] = {"alpha ", "beta ", "gamma ", "delta ", "{\"price\":", "12.5,", "\"qty\":3} "};
  std::string s;
  while (s.size() < n) s += words[rng() % 7];
  s.resize(n);
  return s;
}

void round_trip(const DeflateParams& params, bool expect_takeover_gain) {
  PerMessageDeflate server(Role::Server, params, 6);
  PerMessageDeflate client(Role::Client, params, 6);
  std::size_t second_size = 0, first_size = 0;
  for (int i = 0; i < 20; ++i) {
    const std::string msg = sample_text(static_cast<std::size_t>(50 + i * 997), 3);  // repeated prefixes
    std::string wire, plain;
    // Server → client.
    server.compress(u8(msg), msg.size(), wire);
    if (i == 0) first_size = wire.size();
    ASSERT_EQ(client.decompress(u8(wire), wire.size(), plain, 1 << 20), InflateResult::Ok) << i;
    ASSERT_EQ(plain, msg) << i;
    // Client → server.
    wire.clear();
    client.compress(u8(msg), msg.size(), wire);
    ASSERT_EQ(server.decompress(u8(wire), wire.size(), plain, 1 << 20), InflateResult::Ok) << i;
    ASSERT_EQ(plain, msg) << i;
  }
  // The same first message again: with context takeover it is a short
  // back-reference; without it compresses exactly as the first time.
  const std::string again = sample_text(50, 3);
  std::string wire;
  server.compress(u8(again), again.size(), wire);
  second_size = wire.size();
  if (expect_takeover_gain) {
    EXPECT_LT(second_size, first_size);
  } else {
    EXPECT_EQ(second_size, first_size);
  }
  std::string plain;
  ASSERT_EQ(client.decompress(u8(wire), wire.size(), plain, 1 << 20), InflateResult::Ok);
  EXPECT_EQ(plain, again);
}

TEST(PerMessageDeflate, RoundTripWithContextTakeover) { round_trip(DeflateParams{}, true); }

TEST(PerMessageDeflate, RoundTripWithoutContextTakeover) {
  DeflateParams p;
  p.server_no_context_takeover = true;
  p.client_no_context_takeover = true;
  round_trip(p, false);
}

TEST(PerMessageDeflate, SmallWindows) {
  DeflateParams p;
  p.server_max_window_bits = 8;  // compressed with a 9-bit zlib window
  p.client_max_window_bits = 8;
  PerMessageDeflate server(Role::Server, p, 9);
  // An independent inflater with a true 8-bit window must decode it.
  z_stream z{};
  ASSERT_EQ(inflateInit2(&z, -8), Z_OK);
  for (int i = 0; i < 5; ++i) {
    const std::string msg = sample_text(5000, static_cast<unsigned>(i));
    std::string wire = "";
    server.compress(u8(msg), msg.size(), wire);
    wire += str({0x00, 0x00, 0xff, 0xff});
    std::string plain(msg.size() + 16, '\0');
    z.next_in = reinterpret_cast<Bytef*>(wire.data());
    z.avail_in = static_cast<uInt>(wire.size());
    z.next_out = reinterpret_cast<Bytef*>(plain.data());
    z.avail_out = static_cast<uInt>(plain.size());
    const int rc = inflate(&z, Z_SYNC_FLUSH);
    ASSERT_TRUE(rc == Z_OK || rc == Z_BUF_ERROR) << rc;
    plain.resize(plain.size() - z.avail_out);
    ASSERT_EQ(plain, msg) << i;
  }
  inflateEnd(&z);
}

TEST(PerMessageDeflate, EmptyMessage) {
  PerMessageDeflate server(Role::Server, DeflateParams{}, 6);
  PerMessageDeflate client(Role::Client, DeflateParams{}, 6);
  std::string wire, plain = "stale";
  server.compress(nullptr, 0, wire);
  ASSERT_EQ(client.decompress(u8(wire), wire.size(), plain, 10), InflateResult::Ok);
  EXPECT_EQ(plain, "");
}

// zlib emits nothing for a sync flush with no new input, so a second empty
// message used to compress to zero bytes; the receiver's appended 00 00 FF FF
// then read as a stored block header with the wrong length and the next
// messages inflated to garbage (found by fuzz_deflate). RFC 7692 §7.2.3.6:
// an empty message compresses to the single byte 0x00.
TEST(PerMessageDeflate, RepeatedEmptyMessagesWithContextTakeover) {
  PerMessageDeflate server(Role::Server, DeflateParams{}, 6);
  PerMessageDeflate client(Role::Client, DeflateParams{}, 6);
  const std::string hello = "the quick brown fox";
  const std::string messages[] = {hello, "", "", "", hello, "", hello};
  for (const std::string& m : messages) {
    std::string wire, plain = "stale";
    server.compress(u8(m), m.size(), wire);
    if (m.empty()) {
      EXPECT_EQ(wire, std::string(1, '\0'));
    }
    ASSERT_EQ(client.decompress(u8(wire), wire.size(), plain, 1000), InflateResult::Ok);
    EXPECT_EQ(plain, m);
  }
}

// A zero-length compressed payload (no DEFLATE block at all) is read as the
// empty message and leaves the stream as it was, so later messages still inflate.
TEST(PerMessageDeflate, ZeroLengthCompressedPayloadIsEmptyMessage) {
  PerMessageDeflate server(Role::Server, DeflateParams{}, 6);
  PerMessageDeflate client(Role::Client, DeflateParams{}, 6);
  const std::string hello = "hello hello hello";
  std::string wire, plain;
  for (int round = 0; round < 3; ++round) {
    wire.clear();
    server.compress(u8(hello), hello.size(), wire);
    ASSERT_EQ(client.decompress(u8(wire), wire.size(), plain, 1000), InflateResult::Ok);
    EXPECT_EQ(plain, hello);
    plain = "stale";
    ASSERT_EQ(client.decompress(nullptr, 0, plain, 1000), InflateResult::Ok);
    EXPECT_EQ(plain, "");
  }
}

TEST(PerMessageDeflate, BombIsTooBig) {
  const std::string zeros(10 << 20, '\0');  // 10 MiB of zeros deflates to ~10 KiB
  PerMessageDeflate client(Role::Client, DeflateParams{}, 9);
  std::string wire;
  client.compress(u8(zeros), zeros.size(), wire);
  ASSERT_LT(wire.size(), 64u * 1024);
  PerMessageDeflate server(Role::Server, DeflateParams{}, 6);
  std::string plain;
  EXPECT_EQ(server.decompress(u8(wire), wire.size(), plain, 65536), InflateResult::TooBig);
  EXPECT_LE(plain.capacity(), 2u << 20);  // stopped early instead of inflating 10 MiB
}

TEST(PerMessageDeflate, ExactlyAtLimitIsOk) {
  const std::string msg = sample_text(4096, 9);
  PerMessageDeflate a(Role::Client, DeflateParams{}, 6);
  PerMessageDeflate b(Role::Server, DeflateParams{}, 6);
  std::string wire, plain;
  a.compress(u8(msg), msg.size(), wire);
  EXPECT_EQ(b.decompress(u8(wire), wire.size(), plain, 4096), InflateResult::Ok);
  EXPECT_EQ(plain, msg);
  PerMessageDeflate c(Role::Server, DeflateParams{}, 6);
  EXPECT_EQ(c.decompress(u8(wire), wire.size(), plain, 4095), InflateResult::TooBig);
}

TEST(PerMessageDeflate, CorruptIsCorrupt) {
  PerMessageDeflate d(Role::Server, DeflateParams{}, 6);
  std::string plain;
  const std::string bad_block_type = str({0xff, 0xff, 0xff, 0xff});  // BTYPE=11 is reserved
  EXPECT_EQ(d.decompress(u8(bad_block_type), bad_block_type.size(), plain, 1000), InflateResult::Corrupt);
  PerMessageDeflate e(Role::Server, DeflateParams{}, 6);
  // A stored block whose length and its complement disagree.
  const std::string bad_stored = str({0x00, 0x05, 0x00, 0x00, 0x00, 'H', 'e', 'l', 'l', 'o'});
  EXPECT_EQ(e.decompress(u8(bad_stored), bad_stored.size(), plain, 1000), InflateResult::Corrupt);
}

}  // namespace
