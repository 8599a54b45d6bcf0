// client_detail::is_json_value: the check ChannelClient::publish and
// publish_http run on publish data before sending (a request with data that is
// not JSON would be invalid JSON as a whole, which the server answers without
// an id). It must accept everything the server accepts, big numbers included.
#include <gtest/gtest.h>

#include <string>

#include "client/json_check.hpp"

using conduit::client_detail::is_json_value;

TEST(JsonCheck, AcceptsEveryKindOfValue) {
  for (const char* ok : {"null", "true", "false", "0", "-0", "1.5", "-2e10", "1E+2", "12345678901234567890123",
                         "1e999999", "\"\"", "\"a\\\"b\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"", "\"m\xc3\xa9\"", "[]", "{}",
                         " [1, [2, {\"a\": null}]] ", "{\"a\":{\"b\":[true,false]}}\n"}) {
    EXPECT_TRUE(is_json_value(ok)) << ok;
  }
}

TEST(JsonCheck, RefusesWhatIsNotOneJsonValue) {
  for (const char* bad :
       {"",        " ",         "{",   "{\"a\":}", "{\"a\" 1}", "{a:1}",    "[1,]",    "[1 2]", "01",
        "1.",      ".5",        "-",   "1e",       "+1",        "tru",      "nul",     "'x'",   "\"abc",
        "\"\\x\"", "\"\\u12\"", "1 2", "{} []",    "NaN",       "\"\x01\"", "\"\xc3\""}) {
    EXPECT_FALSE(is_json_value(bad)) << bad;
  }
}

TEST(JsonCheck, BoundsNesting) {
  EXPECT_TRUE(is_json_value(std::string(512, '[') + std::string(512, ']')));
  EXPECT_FALSE(is_json_value(std::string(513, '[') + std::string(513, ']')));
  EXPECT_FALSE(is_json_value(std::string(100000, '[')));
}
