// UTF-8 validator: RFC 3629 rules, early rejection, incremental feeding.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "wire/utf8.hpp"

namespace {

using conduit::wire::is_valid_utf8;
using conduit::wire::Utf8Validator;

std::vector<std::uint8_t> bytes(std::initializer_list<int> list) {
  std::vector<std::uint8_t> v;
  for (int b : list) v.push_back(static_cast<std::uint8_t>(b));
  return v;
}

bool valid(const std::vector<std::uint8_t>& v) { return is_valid_utf8(v.data(), v.size()); }
bool valid(const std::string& s) { return is_valid_utf8(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()); }

// Encodes a code point without validity checks (lets the test build surrogates
// and out-of-range values on purpose).
std::string encode(std::uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

TEST(Utf8, AcceptsAsciiAndMultiByte) {
  EXPECT_TRUE(valid(std::string()));
  EXPECT_TRUE(valid(std::string("hello, world — κόσμε 世界 🌍")));
  EXPECT_TRUE(valid(bytes({0xC2, 0x80})));              // U+0080, smallest 2-byte
  EXPECT_TRUE(valid(bytes({0xDF, 0xBF})));              // U+07FF
  EXPECT_TRUE(valid(bytes({0xE0, 0xA0, 0x80})));        // U+0800, smallest 3-byte
  EXPECT_TRUE(valid(bytes({0xED, 0x9F, 0xBF})));        // U+D7FF, just below surrogates
  EXPECT_TRUE(valid(bytes({0xEE, 0x80, 0x80})));        // U+E000, just above surrogates
  EXPECT_TRUE(valid(bytes({0xEF, 0xBF, 0xBF})));        // U+FFFF
  EXPECT_TRUE(valid(bytes({0xF0, 0x90, 0x80, 0x80})));  // U+10000, smallest 4-byte
  EXPECT_TRUE(valid(bytes({0xF4, 0x8F, 0xBF, 0xBF})));  // U+10FFFF, the maximum
}

TEST(Utf8, RejectsOverlongs) {
  EXPECT_FALSE(valid(bytes({0xC0, 0x80})));
  EXPECT_FALSE(valid(bytes({0xC1, 0xBF})));
  EXPECT_FALSE(valid(bytes({0xE0, 0x80, 0x80})));
  EXPECT_FALSE(valid(bytes({0xE0, 0x9F, 0xBF})));
  EXPECT_FALSE(valid(bytes({0xF0, 0x80, 0x80, 0x80})));
  EXPECT_FALSE(valid(bytes({0xF0, 0x8F, 0xBF, 0xBF})));
}

TEST(Utf8, RejectsSurrogatesAndOutOfRange) {
  EXPECT_FALSE(valid(bytes({0xED, 0xA0, 0x80})));        // U+D800
  EXPECT_FALSE(valid(bytes({0xED, 0xBF, 0xBF})));        // U+DFFF
  EXPECT_FALSE(valid(bytes({0xF4, 0x90, 0x80, 0x80})));  // U+110000
  EXPECT_FALSE(valid(bytes({0xF5, 0x80, 0x80, 0x80})));
  EXPECT_FALSE(valid(bytes({0xFE})));
  EXPECT_FALSE(valid(bytes({0xFF})));
}

TEST(Utf8, RejectsStrayAndMissingContinuations) {
  EXPECT_FALSE(valid(bytes({0x80})));
  EXPECT_FALSE(valid(bytes({0x41, 0xBF, 0x41})));
  EXPECT_FALSE(valid(bytes({0xC2, 0x41})));
  EXPECT_FALSE(valid(bytes({0xE1, 0x80, 0x41})));
  EXPECT_FALSE(valid(bytes({0xF1, 0x80, 0x80, 0x41})));
  // Truncated at the end of the buffer.
  EXPECT_FALSE(valid(bytes({0xC2})));
  EXPECT_FALSE(valid(bytes({0xE1, 0x80})));
  EXPECT_FALSE(valid(bytes({0xF1, 0x80, 0x80})));
}

// Every code point 0..0x10FFFF and a few beyond, against the definition.
TEST(Utf8, EveryCodePointAgreesWithDefinition) {
  for (std::uint32_t cp = 0; cp <= 0x11FFFF; ++cp) {
    const bool expected = cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    ASSERT_EQ(valid(encode(cp)), expected) << "U+" << std::hex << cp;
  }
}

// Invalid bytes after long ASCII runs exercise the 8/16-byte fast path exits
// at every alignment.
TEST(Utf8, FastPathFindsInvalidByteAtEveryPosition) {
  for (std::size_t len = 1; len < 70; ++len) {
    for (std::size_t bad = 0; bad < len; ++bad) {
      std::vector<std::uint8_t> v(len, 'a');
      v[bad] = 0xFF;
      ASSERT_FALSE(valid(v)) << len << " " << bad;
      v[bad] = 0x7F;
      ASSERT_TRUE(valid(v)) << len << " " << bad;
    }
  }
}

TEST(Utf8Validator, AcceptsSequencesSplitAtEveryByte) {
  const std::string text = "añ€😀z";
  const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
  for (std::size_t split = 0; split <= text.size(); ++split) {
    Utf8Validator v;
    ASSERT_TRUE(v.feed(p, split));
    ASSERT_TRUE(v.feed(p + split, text.size() - split));
    EXPECT_TRUE(v.complete());
  }
}

TEST(Utf8Validator, TruncatedSequenceIsPrefixButNotComplete) {
  Utf8Validator v;
  const auto head = bytes({'o', 'k', 0xF0, 0x9F});
  EXPECT_TRUE(v.feed(head.data(), head.size()));
  EXPECT_FALSE(v.failed());
  EXPECT_FALSE(v.complete());
  const auto tail = bytes({0x98, 0x80});
  EXPECT_TRUE(v.feed(tail.data(), tail.size()));
  EXPECT_TRUE(v.complete());
}

TEST(Utf8Validator, FailsAtFirstImpossibleByte) {
  // E0 80 can never be completed: rejected on the second byte, not the third.
  Utf8Validator v;
  const auto b = bytes({0xE0});
  EXPECT_TRUE(v.feed(b.data(), 1));
  const auto c = bytes({0x80});
  EXPECT_FALSE(v.feed(c.data(), 1));
  EXPECT_TRUE(v.failed());
  // Stays failed.
  const auto ascii = bytes({'a'});
  EXPECT_FALSE(v.feed(ascii.data(), 1));
  EXPECT_FALSE(v.complete());

  Utf8Validator surrogate;
  const auto ed = bytes({0xED, 0xA0});
  EXPECT_FALSE(surrogate.feed(ed.data(), ed.size()));

  Utf8Validator too_big;
  const auto f4 = bytes({0xF4, 0x90});
  EXPECT_FALSE(too_big.feed(f4.data(), f4.size()));
}

TEST(Utf8Validator, ResetClearsFailure) {
  Utf8Validator v;
  const auto bad = bytes({0xFF});
  EXPECT_FALSE(v.feed(bad.data(), 1));
  v.reset();
  EXPECT_TRUE(v.complete());
  const auto good = bytes({'x'});
  EXPECT_TRUE(v.feed(good.data(), 1));
}

}  // namespace
