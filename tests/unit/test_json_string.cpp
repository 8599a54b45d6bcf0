// conduit::append_json_string: the one JSON string escaper behind conduit.v1
// replies and pushes, token claims, the HTTP API, JSON log lines and
// `conduit sub` output. Its output must be a JSON string literal that a JSON
// parser reads back as exactly the input.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <string_view>

#include "conduit/json_string.hpp"

using conduit::append_json_string;

namespace {

std::string json_string(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

}  // namespace

TEST(JsonString, EscapesQuotesBackslashesAndControlBytes) {
  EXPECT_EQ(json_string(""), R"("")");
  EXPECT_EQ(json_string("chat:lobby"), R"("chat:lobby")");
  EXPECT_EQ(json_string("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(json_string("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(json_string(std::string_view("\x00\x01\x1f", 3)), R"("\u0000\u0001\u001f")");
  // Not control bytes in JSON: DEL, '/' and UTF-8 sequences pass as they are.
  EXPECT_EQ(json_string("\x7f/caf\xc3\xa9"), "\"\x7f/caf\xc3\xa9\"");
}

TEST(JsonString, AppendsAfterWhatIsThere) {
  std::string out = "{\"epoch\":";
  append_json_string(out, "x\ny");
  EXPECT_EQ(out, R"({"epoch":"x\ny")");
}

// The logger writes into spdlog's fmt memory buffer, not a std::string.
TEST(JsonString, WritesIntoAFmtMemoryBuffer) {
  fmt::memory_buffer out;
  append_json_string(out, "a\"\x02z");
  EXPECT_EQ(std::string_view(out.data(), out.size()), R"("a\"\u0002z")");
}

TEST(JsonString, AJsonParserReadsBackEveryAsciiByte) {
  std::string all;
  for (int c = 0; c < 0x80; ++c) all.push_back(static_cast<char>(c));
  const std::string all_with_utf8 = all + "caf\xc3\xa9 \xe2\x98\x95";
  for (const std::string& text : {all, all_with_utf8, std::string(300, '"'), std::string("\\\\\\")}) {
    simdjson::padded_string json(json_string(text));
    simdjson::ondemand::parser parser;
    auto doc = parser.iterate(json);
    std::string_view back;
    ASSERT_EQ(doc.get_string().get(back), simdjson::SUCCESS) << json_string(text);
    EXPECT_EQ(back, text);
  }
}
