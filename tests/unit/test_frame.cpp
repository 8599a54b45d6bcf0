// Frame serialization and masking against naive references.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "wire/frame.hpp"
#include "wire/mask.hpp"

namespace {

using namespace conduit::wire;

void naive_mask(std::uint8_t* data, std::size_t len, const std::uint8_t key[4], std::size_t offset) {
  for (std::size_t i = 0; i < len; ++i) data[i] ^= key[(offset + i) % 4];
}

TEST(Mask, MatchesNaiveForEveryLengthOffsetAndAlignment) {
  std::mt19937 rng(42);
  const std::uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};
  std::vector<std::uint8_t> backing(200);
  for (std::size_t align = 0; align < 8; ++align) {
    for (std::size_t len = 0; len < 80; ++len) {
      for (std::size_t offset = 0; offset < 9; ++offset) {
        for (auto& b : backing) b = static_cast<std::uint8_t>(rng());
        std::vector<std::uint8_t> expected(backing.begin() + align, backing.begin() + align + len);
        naive_mask(expected.data(), len, key, offset);
        apply_mask(backing.data() + align, len, key, offset);
        ASSERT_TRUE(std::equal(expected.begin(), expected.end(), backing.begin() + align))
            << "align " << align << " len " << len << " offset " << offset;
      }
    }
  }
}

TEST(Mask, PiecewiseEqualsWhole) {
  const std::uint8_t key[4] = {1, 2, 3, 4};
  std::vector<std::uint8_t> whole(1000);
  for (std::size_t i = 0; i < whole.size(); ++i) whole[i] = static_cast<std::uint8_t>(i * 7);
  std::vector<std::uint8_t> pieces = whole;
  apply_mask(whole.data(), whole.size(), key);
  std::size_t done = 0;
  for (std::size_t step : {1, 3, 7, 13, 64, 100, 812}) {
    apply_mask(pieces.data() + done, step, key, done);
    done += step;
  }
  ASSERT_EQ(done, pieces.size());
  EXPECT_EQ(whole, pieces);
}

TEST(Mask, RandomKeysDiffer) {
  // 3000 keys cross the per-thread 4 KiB block boundary at least twice.
  std::set<std::uint32_t> seen;
  for (int i = 0; i < 3000; ++i) {
    std::uint8_t k[4];
    random_mask_key(k);
    seen.insert(std::uint32_t{k[0]} | std::uint32_t{k[1]} << 8 | std::uint32_t{k[2]} << 16 | std::uint32_t{k[3]} << 24);
  }
  // A collision among 3000 uniform 32-bit values has probability ~0.1%; more
  // than a handful means the source is broken.
  EXPECT_GT(seen.size(), 2990u);
}

TEST(FrameHeader, LengthEncodings) {
  std::uint8_t h[max_header_size];
  struct Case {
    std::uint64_t len;
    std::size_t header_len;
  };
  for (Case c : {Case{0, 2}, Case{125, 2}, Case{126, 4}, Case{65535, 4}, Case{65536, 10}, Case{1ULL << 40, 10}}) {
    const std::size_t n = write_header(h, Opcode::Binary, true, false, c.len, nullptr);
    ASSERT_EQ(n, c.header_len) << c.len;
    EXPECT_EQ(h[0], 0x82);
    if (c.header_len == 2) {
      EXPECT_EQ(h[1], c.len);
    } else if (c.header_len == 4) {
      EXPECT_EQ(h[1], 126);
      EXPECT_EQ((std::uint64_t{h[2]} << 8) | h[3], c.len);
    } else {
      EXPECT_EQ(h[1], 127);
      std::uint64_t v = 0;
      for (int i = 0; i < 8; ++i) v = (v << 8) | h[2 + i];
      EXPECT_EQ(v, c.len);
    }
  }
}

TEST(FrameHeader, FlagsAndMaskKey) {
  std::uint8_t h[max_header_size];
  const std::uint8_t key[4] = {9, 8, 7, 6};
  const std::size_t n = write_header(h, Opcode::Text, false, true, 300, key);
  ASSERT_EQ(n, 8u);
  EXPECT_EQ(h[0], 0x41);  // FIN=0, RSV1, Text
  EXPECT_EQ(h[1], 0x80 | 126);
  EXPECT_EQ(h[2], 1);
  EXPECT_EQ(h[3], 44);
  EXPECT_EQ(0, std::memcmp(h + 4, key, 4));
  EXPECT_EQ(write_header(h, Opcode::Ping, true, false, 0, nullptr), 2u);
  EXPECT_EQ(h[0], 0x89);
  EXPECT_EQ(h[1], 0x00);
}

TEST(AppendFrame, UnmaskedServerFrame) {
  std::string out = "prefix";
  append_frame(out, Opcode::Text, "Hello", false);
  EXPECT_EQ(out, std::string("prefix\x81\x05Hello", 13));
}

TEST(AppendFrame, MaskedClientFrameUnmasksToPayload) {
  for (std::size_t len : {0, 1, 5, 125, 126, 1000, 65535, 65536}) {
    std::string payload(len, '\0');
    for (std::size_t i = 0; i < len; ++i) payload[i] = static_cast<char>('a' + i % 26);
    std::string out;
    append_frame(out, Opcode::Binary, payload, true);
    const std::size_t ext = len < 126 ? 0 : len <= 0xFFFF ? 2 : 8;
    ASSERT_EQ(out.size(), 2 + ext + 4 + len);
    auto* b = reinterpret_cast<std::uint8_t*>(out.data());
    EXPECT_EQ(b[0], 0x82);
    EXPECT_TRUE(b[1] & 0x80);
    std::uint8_t key[4];
    std::memcpy(key, b + 2 + ext, 4);
    naive_mask(b + 2 + ext + 4, len, key, 0);
    EXPECT_EQ(out.substr(2 + ext + 4), payload) << len;
  }
}

TEST(AppendFrame, EachMaskedFrameGetsAFreshKey) {
  std::string a, b;
  append_frame(a, Opcode::Text, "same", true);
  append_frame(b, Opcode::Text, "same", true);
  // Equal keys by chance: probability 2^-32.
  EXPECT_NE(a.substr(2, 4), b.substr(2, 4));
}

TEST(ClosePayload, CodeAndReason) {
  EXPECT_EQ(close_payload(1000, "bye"), std::string("\x03\xE8"
                                                    "bye",
                                                    5));
  EXPECT_EQ(close_payload(1005, "ignored"), "");
  EXPECT_EQ(close_payload(4000, ""), std::string("\x0F\xA0", 2));
}

TEST(ClosePayload, TruncatesOnCodePointBoundary) {
  EXPECT_EQ(close_payload(1000, std::string(200, 'x')).size(), 125u);
  // 122 ASCII bytes, then a 3-byte '€' that would straddle byte 123: dropped whole.
  std::string reason(122, 'a');
  reason += "€tail";
  const std::string p = close_payload(1000, reason);
  EXPECT_EQ(p.size(), 2u + 122u);
  EXPECT_EQ(p.substr(2), std::string(122, 'a'));
  // 120 ASCII + '€' ends exactly at 123: kept.
  std::string fits(120, 'a');
  fits += "€€";
  EXPECT_EQ(close_payload(1000, fits).substr(2), std::string(120, 'a') + "€");
}

}  // namespace
