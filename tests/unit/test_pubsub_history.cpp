// Channel history: offsets, retention by count and age, recovery rules.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "pubsub/history.hpp"

namespace {

using namespace std::chrono_literals;
using conduit::pubsub::History;
using conduit::pubsub::HistoryClock;
using conduit::pubsub::HistoryEntry;
using conduit::pubsub::HistoryLimits;
using conduit::pubsub::make_epoch;

const HistoryClock::time_point t0{};  // an arbitrary "now": time is a parameter

// Appends a publication whose text is "p<offset>" and checks the offset
// announced beforehand is the one assigned.
std::uint64_t publish(History& h, HistoryClock::time_point now) {
  const std::uint64_t offset = h.next_offset();
  auto buffer = std::make_shared<const std::string>("p" + std::to_string(offset));
  const std::uint64_t assigned = h.append(buffer, *buffer, now);
  EXPECT_EQ(assigned, offset);
  return assigned;
}

std::vector<std::uint64_t> offsets(const std::vector<HistoryEntry>& entries) {
  std::vector<std::uint64_t> out;
  for (const auto& e : entries) {
    EXPECT_EQ(e.publication, "p" + std::to_string(e.offset));
    out.push_back(e.offset);
  }
  return out;
}

TEST(PubsubHistory, OffsetsStartAtOneAndIncrease) {
  History h({10, 0ms}, "e1");
  EXPECT_EQ(h.position().offset, 0u);
  EXPECT_EQ(h.position().epoch, "e1");
  EXPECT_EQ(publish(h, t0), 1u);
  EXPECT_EQ(publish(h, t0), 2u);
  EXPECT_EQ(publish(h, t0), 3u);
  EXPECT_EQ(h.position().offset, 3u);
}

TEST(PubsubHistory, KeepsOnlyTheNewestMaxEntries) {
  History h({3, 0ms}, "e");
  for (int i = 0; i < 5; ++i) publish(h, t0);
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(offsets(h.newest(100, t0)), (std::vector<std::uint64_t>{3, 4, 5}));
  EXPECT_EQ(offsets(h.newest(2, t0)), (std::vector<std::uint64_t>{4, 5}));
}

TEST(PubsubHistory, SharesTheBufferInsteadOfCopying) {
  History h({3, 0ms}, "e");
  auto buffer = std::make_shared<const std::string>("{\"push\":{\"x\":1}}");
  const std::string_view inner = std::string_view(*buffer).substr(8, 7);
  h.append(buffer, inner, t0);
  const auto entries = h.newest(1, t0);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].buffer.get(), buffer.get());
  EXPECT_EQ(entries[0].publication.data(), inner.data());
  EXPECT_EQ(entries[0].publication, "{\"x\":1}");
}

TEST(PubsubHistory, ByteCountFollowsWhatIsHeld) {
  History h({2, 0ms}, "e");
  EXPECT_EQ(h.bytes(), 0u);
  publish(h, t0);  // "p1"
  const std::size_t one = h.bytes();
  EXPECT_GE(one, 2u);
  publish(h, t0);
  EXPECT_EQ(h.bytes(), 2 * one);
  publish(h, t0);  // evicts p1; p3 has the same size
  EXPECT_EQ(h.bytes(), 2 * one);
  History ttl({10, 1000ms}, "e");
  publish(ttl, t0);
  ttl.expire(t0 + 1000ms);
  EXPECT_EQ(ttl.size(), 0u);
  EXPECT_EQ(ttl.bytes(), 0u);
}

TEST(PubsubHistory, TtlDropsOldEntriesWithoutSleeping) {
  History h({100, 1000ms}, "e");
  publish(h, t0);          // 1
  publish(h, t0 + 500ms);  // 2
  publish(h, t0 + 999ms);  // 3
  EXPECT_EQ(offsets(h.newest(10, t0 + 999ms)), (std::vector<std::uint64_t>{1, 2, 3}));
  // Entry 1 is exactly 1000 ms old: gone. Entry 2 is 500 ms old: kept.
  EXPECT_EQ(offsets(h.newest(10, t0 + 1000ms)), (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(offsets(h.newest(10, t0 + 1999ms)), (std::vector<std::uint64_t>{}));
  // Offsets keep counting after the history emptied.
  EXPECT_EQ(publish(h, t0 + 2000ms), 4u);
}

TEST(PubsubHistory, ZeroSizeTurnsHistoryOffButStillCountsOffsets) {
  History h({0, 300000ms}, "e");
  EXPECT_EQ(publish(h, t0), 1u);
  EXPECT_EQ(publish(h, t0), 2u);
  EXPECT_EQ(h.size(), 0u);
  EXPECT_EQ(h.bytes(), 0u);
  auto at_end = h.recover(2, "e", t0);
  EXPECT_TRUE(at_end.recovered);
  EXPECT_TRUE(at_end.publications.empty());
  auto behind = h.recover(1, "e", t0);
  EXPECT_FALSE(behind.recovered);
  EXPECT_TRUE(behind.publications.empty());
  EXPECT_EQ(behind.position.offset, 2u);
}

TEST(PubsubHistory, RecoverReturnsExactlyWhatWasMissedInOrder) {
  History h({10, 0ms}, "e");
  for (int i = 0; i < 5; ++i) publish(h, t0);
  auto r = h.recover(2, "e", t0);
  EXPECT_TRUE(r.recovered);
  EXPECT_EQ(offsets(r.publications), (std::vector<std::uint64_t>{3, 4, 5}));
  EXPECT_EQ(r.position.offset, 5u);
  EXPECT_EQ(r.position.epoch, "e");
  auto from_start = h.recover(0, "e", t0);
  EXPECT_TRUE(from_start.recovered);
  EXPECT_EQ(offsets(from_start.publications), (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
  auto up_to_date = h.recover(5, "e", t0);
  EXPECT_TRUE(up_to_date.recovered);
  EXPECT_TRUE(up_to_date.publications.empty());
}

TEST(PubsubHistory, RecoverOnAnEmptyChannel) {
  History h({10, 0ms}, "e");
  auto r = h.recover(0, "e", t0);
  EXPECT_TRUE(r.recovered);
  EXPECT_TRUE(r.publications.empty());
  EXPECT_EQ(r.position.offset, 0u);
}

TEST(PubsubHistory, OtherEpochIsNotRecoverable) {
  History h({10, 0ms}, "e-new");
  for (int i = 0; i < 3; ++i) publish(h, t0);
  for (std::uint64_t since : {0u, 1u, 3u}) {
    auto r = h.recover(since, "e-old", t0);
    EXPECT_FALSE(r.recovered) << since;
    EXPECT_TRUE(r.publications.empty());
    EXPECT_EQ(r.position.offset, 3u);
    EXPECT_EQ(r.position.epoch, "e-new");
  }
}

TEST(PubsubHistory, OffsetNoLongerCoveredIsNotRecoverable) {
  History h({3, 0ms}, "e");
  for (int i = 0; i < 6; ++i) publish(h, t0);     // holds 4, 5, 6
  EXPECT_FALSE(h.recover(2, "e", t0).recovered);  // needs 3: evicted
  EXPECT_TRUE(h.recover(2, "e", t0).publications.empty());
  auto r = h.recover(3, "e", t0);  // needs 4: held
  EXPECT_TRUE(r.recovered);
  EXPECT_EQ(offsets(r.publications), (std::vector<std::uint64_t>{4, 5, 6}));
}

TEST(PubsubHistory, OffsetExpiredByTtlIsNotRecoverable) {
  History h({10, 1000ms}, "e");
  publish(h, t0);          // 1
  publish(h, t0 + 600ms);  // 2
  EXPECT_TRUE(h.recover(0, "e", t0 + 900ms).recovered);
  auto r = h.recover(0, "e", t0 + 1100ms);  // 1 expired
  EXPECT_FALSE(r.recovered);
  EXPECT_TRUE(r.publications.empty());
  auto r2 = h.recover(1, "e", t0 + 1100ms);
  EXPECT_TRUE(r2.recovered);
  EXPECT_EQ(offsets(r2.publications), (std::vector<std::uint64_t>{2}));
}

TEST(PubsubHistory, OffsetAboveTheLastIsNotRecoverable) {
  History h({10, 0ms}, "e");
  for (int i = 0; i < 3; ++i) publish(h, t0);
  for (std::uint64_t since : {4ull, 1000ull, ~0ull}) {
    auto r = h.recover(since, "e", t0);
    EXPECT_FALSE(r.recovered) << since;
    EXPECT_TRUE(r.publications.empty());
    EXPECT_EQ(r.position.offset, 3u);
  }
}

TEST(PubsubHistory, EpochsAreRandomHex) {
  const std::string a = make_epoch();
  const std::string b = make_epoch();
  EXPECT_EQ(a.size(), 16u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

}  // namespace
