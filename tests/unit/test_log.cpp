// The library's logger as an application sees it (include/conduit/log.hpp):
// a handler receives every line at or above the level, silence drops them all,
// and level names are the ones the docs and conduitd's log.level use.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "conduit/log.hpp"
#include "ops/log.hpp"

namespace {

using conduit::LogLevel;

struct Captured {
  std::vector<std::pair<LogLevel, std::string>> lines;
};

conduit::LogOptions capture_into(Captured& c, LogLevel level) {
  conduit::LogOptions o;
  o.level = level;
  o.handler = [&c](LogLevel l, std::string_view line) { c.lines.emplace_back(l, std::string(line)); };
  return o;
}

class LogTest : public ::testing::Test {
 protected:
  // Leave the process-wide logger as the documented default for other tests.
  void TearDown() override { conduit::configure_logging({}); }
};

TEST_F(LogTest, HandlerReceivesLibraryAndApplicationLines) {
  Captured c;
  conduit::configure_logging(capture_into(c, LogLevel::info));
  conduit::ops::logger().warn("event=protocol_error id={} code={}", 7, 1002);  // as the library logs
  conduit::log(LogLevel::info, "event=signal signal=SIGTERM");                 // as an application logs
  ASSERT_EQ(c.lines.size(), 2u);
  EXPECT_EQ(c.lines[0].first, LogLevel::warn);
  EXPECT_EQ(c.lines[0].second, "event=protocol_error id=7 code=1002");
  EXPECT_EQ(c.lines[1].first, LogLevel::info);
  EXPECT_EQ(c.lines[1].second, "event=signal signal=SIGTERM");
}

TEST_F(LogTest, LevelFiltersAndSilenceDropsEverything) {
  Captured c;
  conduit::configure_logging(capture_into(c, LogLevel::warn));
  conduit::log(LogLevel::info, "event=open id=1");
  conduit::log(LogLevel::error, "event=accept_error");
  ASSERT_EQ(c.lines.size(), 1u);
  EXPECT_EQ(c.lines[0].second, "event=accept_error");

  Captured after;
  conduit::configure_logging(capture_into(after, LogLevel::trace));
  conduit::silence_logging();
  conduit::log(LogLevel::critical, "event=loop_failed");
  EXPECT_TRUE(after.lines.empty());
}

TEST_F(LogTest, LevelNamesMatchTheDocs) {
  const std::pair<const char*, LogLevel> names[] = {
      {"trace", LogLevel::trace}, {"debug", LogLevel::debug},       {"info", LogLevel::info}, {"warn", LogLevel::warn},
      {"error", LogLevel::error}, {"critical", LogLevel::critical}, {"off", LogLevel::off}};
  for (const auto& [name, level] : names) {
    EXPECT_EQ(conduit::parse_log_level(name), level) << name;
    EXPECT_EQ(conduit::to_string(level), name);
  }
  EXPECT_FALSE(conduit::parse_log_level("warning").has_value());
  EXPECT_FALSE(conduit::parse_log_level("INFO").has_value());
}

}  // namespace
