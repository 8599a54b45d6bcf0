// Query strings: the HTTP API's ?channel=...&limit=... parameters.
#include <gtest/gtest.h>

#include "pubsub/query_string.hpp"

namespace {

using conduit::pubsub::percent_decode;
using conduit::pubsub::query_param;

TEST(QueryString, PercentDecoding) {
  EXPECT_EQ(percent_decode("chat%3Alobby"), "chat:lobby");
  EXPECT_EQ(percent_decode("a%2fb%2F"), "a/b/");
  EXPECT_EQ(percent_decode("a+b"), "a+b");  // '+' is not a space here
  EXPECT_EQ(percent_decode("100%"), "100%");
  EXPECT_EQ(percent_decode("%4"), "%4");
  EXPECT_EQ(percent_decode("%zz%41"), "%zzA");
}

TEST(QueryString, Parameters) {
  EXPECT_EQ(query_param("channel=news&limit=10", "channel"), "news");
  EXPECT_EQ(query_param("channel=news&limit=10", "limit"), "10");
  EXPECT_EQ(query_param("limit=10&channel=chat%3Aa", "channel"), "chat:a");
  EXPECT_EQ(query_param("channel&x=1", "channel"), "");
  EXPECT_EQ(query_param("channel=a&channel=b", "channel"), "a");  // the first wins
  EXPECT_FALSE(query_param("channels=a&xchannel=b", "channel"));
  EXPECT_FALSE(query_param("", "channel"));
}

}  // namespace
