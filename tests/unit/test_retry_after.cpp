// Retry-After as the client reads it: delay-seconds and the three HTTP-date forms.
#include <gtest/gtest.h>

#include "client/retry_after.hpp"

namespace {

using namespace std::chrono;
using conduit::client_detail::parse_http_date;
using conduit::client_detail::parse_retry_after;

// 1994-11-06 08:49:37 UTC, the RFC's example instant.
const system_clock::time_point example = sys_days(year{1994} / November / 6) + hours(8) + minutes(49) + seconds(37);

TEST(RetryAfter, HttpDateForms) {
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), example);   // IMF-fixdate
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), example);  // RFC 850
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), example);        // asctime
}

TEST(RetryAfter, MalformedDates) {
  for (const char* bad :
       {"", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 31 Feb 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 6 Nov 1994 08:49:37 GMT", "tomorrow"}) {
    EXPECT_FALSE(parse_http_date(bad)) << bad;
  }
}

TEST(RetryAfter, Seconds) {
  EXPECT_EQ(parse_retry_after("120", "", example), milliseconds(120000));
  EXPECT_EQ(parse_retry_after(" 0 ", "", example), milliseconds(0));
  EXPECT_EQ(parse_retry_after("99999999999999999999999", "", example), milliseconds(86400000));  // capped
  EXPECT_FALSE(parse_retry_after("-1", "", example));
  EXPECT_FALSE(parse_retry_after("1.5", "", example));
  EXPECT_FALSE(parse_retry_after("", "", example));
}

TEST(RetryAfter, DateCountedFromTheDateHeader) {
  // The server's Date is the reference: the client's own clock (here a day off) does not matter.
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:42 GMT", "Sun, 06 Nov 1994 08:49:37 GMT", example + hours(24)),
            milliseconds(5000));
  // Without a Date header, from now.
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", "", example), milliseconds(60000));
  // In the past: retry at once; far ahead: capped at a day.
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", "", example), milliseconds(0));
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 2094 08:00:00 GMT", "", example), milliseconds(86400000));
}

}  // namespace
