#include "pubsub/history.hpp"

#include <algorithm>
#include <random>
#include <utility>

namespace conduit::pubsub {

std::string make_epoch() {
  static constexpr char hex[] = "0123456789abcdef";
  std::random_device source;  // getrandom(2) on Linux
  std::uint64_t bits = (std::uint64_t{source()} << 32) | source();
  std::string epoch(16, '0');
  for (auto& c : epoch) {
    c = hex[bits & 0xF];
    bits >>= 4;
  }
  return epoch;
}

History::History(HistoryLimits limits, std::string epoch) : limits_(limits), epoch_(std::move(epoch)) {}

std::size_t History::entry_bytes(const HistoryEntry& e) noexcept {
  return sizeof(HistoryEntry) + (e.buffer ? e.buffer->size() : 0);
}

void History::pop_front() {
  bytes_ -= entry_bytes(entries_.front());
  entries_.pop_front();
}

std::uint64_t History::append(std::shared_ptr<const std::string> buffer, std::string_view publication,
                              HistoryClock::time_point now) {
  const std::uint64_t offset = ++last_offset_;
  if (limits_.max_entries == 0) return offset;
  entries_.push_back(HistoryEntry{offset, now, std::move(buffer), publication});
  bytes_ += entry_bytes(entries_.back());
  while (entries_.size() > limits_.max_entries) pop_front();
  expire(now);
  return offset;
}

void History::expire(HistoryClock::time_point now) {
  if (limits_.ttl.count() <= 0) return;
  // An entry lives while now - appended_at < ttl.
  while (!entries_.empty() && now - entries_.front().appended_at >= limits_.ttl) pop_front();
}

RecoveryResult History::recover(std::uint64_t since_offset, std::string_view since_epoch,
                                HistoryClock::time_point now) {
  expire(now);
  RecoveryResult result;
  result.position = position();
  if (since_epoch != epoch_ || since_offset > last_offset_) return result;
  if (since_offset == last_offset_) {
    result.recovered = true;
    return result;
  }
  // since_offset < last_offset_: the entries are contiguous and end at
  // last_offset_, so the history covers the gap iff its first offset is at
  // most since_offset + 1.
  if (entries_.empty() || entries_.front().offset > since_offset + 1) return result;
  const auto skip = static_cast<std::size_t>(since_offset + 1 - entries_.front().offset);
  result.publications.assign(entries_.begin() + static_cast<std::ptrdiff_t>(skip), entries_.end());
  result.recovered = true;
  return result;
}

void History::restart(std::string epoch, std::uint64_t last_offset) {
  entries_.clear();
  bytes_ = 0;
  epoch_ = std::move(epoch);
  last_offset_ = last_offset;
}

std::vector<HistoryEntry> History::newest(std::size_t limit, HistoryClock::time_point now) {
  expire(now);
  const std::size_t n = std::min(limit, entries_.size());
  return {entries_.end() - static_cast<std::ptrdiff_t>(n), entries_.end()};
}

}  // namespace conduit::pubsub
