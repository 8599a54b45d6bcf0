// Latency histogram of the load generator: log-linear buckets, 64 per power
// of two (values below 64 are exact), so any percentile is within 1/64 of the
// truth. Fixed size: recording never allocates, which keeps the measuring
// instrument's per-message cost flat.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>

#include "conduit_load/load.hpp"

namespace conduit::load {

class LatencyHistogram {
 public:
  static constexpr unsigned kSubBits = 6;
  static constexpr unsigned kSub = 1u << kSubBits;
  static constexpr unsigned kBuckets = (64 - kSubBits + 1) * kSub;

  void record(std::uint64_t ns) noexcept {
    ++counts_[index(ns)];
    ++count_;
    sum_ += ns;
    max_ = std::max(max_, ns);
  }
  void merge(const LatencyHistogram& other) noexcept;
  void reset() noexcept { *this = LatencyHistogram{}; }
  std::uint64_t count() const noexcept { return count_; }

  // "count sum max i:n,i:n,..." (non-empty buckets only), to send a histogram
  // between processes; parse() merges such a text into this one.
  std::string serialize() const;
  bool parse(const std::string& text);

  // In microseconds; only `count` is meaningful when nothing was recorded.
  LatencySummary summary() const;

 private:
  static unsigned index(std::uint64_t v) noexcept {
    if (v < kSub) return static_cast<unsigned>(v);
    const unsigned msb = 63u - static_cast<unsigned>(__builtin_clzll(v));  // >= kSubBits
    const unsigned shift = msb - kSubBits;
    return (shift + 1) * kSub + static_cast<unsigned>((v >> shift) & (kSub - 1));
  }
  static double upper_bound(unsigned i) noexcept;
  double percentile(double q) const noexcept;

  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace conduit::load
