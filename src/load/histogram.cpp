#include "load/histogram.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <sstream>

namespace conduit::load {

void LatencyHistogram::merge(const LatencyHistogram& other) noexcept {
  for (unsigned i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
}

std::string LatencyHistogram::serialize() const {
  std::string out = fmt::format("{} {} {} ", count_, sum_, max_);
  bool first = true;
  for (unsigned i = 0; i < kBuckets; ++i)
    if (counts_[i] != 0) {
      out += fmt::format("{}{}:{}", first ? "" : ",", i, counts_[i]);
      first = false;
    }
  return first ? out + "-" : out;
}

bool LatencyHistogram::parse(const std::string& text) {
  std::istringstream in(text);
  std::uint64_t count = 0, sum = 0, max = 0;
  std::string buckets;
  if (!(in >> count >> sum >> max >> buckets)) return false;
  LatencyHistogram h;
  h.count_ = count;
  h.sum_ = sum;
  h.max_ = max;
  if (buckets != "-") {
    std::istringstream b(buckets);
    std::string item;
    while (std::getline(b, item, ',')) {
      unsigned i = 0;
      unsigned long long n = 0;
      if (std::sscanf(item.c_str(), "%u:%llu", &i, &n) != 2 || i >= kBuckets) return false;
      h.counts_[i] += n;
    }
  }
  merge(h);
  return true;
}

LatencySummary LatencyHistogram::summary() const {
  LatencySummary s;
  s.count = count_;
  if (count_ == 0) return s;
  s.mean_us = static_cast<double>(sum_) / static_cast<double>(count_) / 1e3;
  s.p50_us = percentile(0.50) / 1e3;
  s.p90_us = percentile(0.90) / 1e3;
  s.p99_us = percentile(0.99) / 1e3;
  s.p999_us = percentile(0.999) / 1e3;
  s.max_us = static_cast<double>(max_) / 1e3;
  return s;
}

// Largest value that maps to bucket i.
double LatencyHistogram::upper_bound(unsigned i) noexcept {
  if (i < kSub) return i;
  const unsigned shift = i / kSub - 1;
  const std::uint64_t base = (std::uint64_t{kSub} | (i % kSub)) << shift;
  return static_cast<double>(base + ((std::uint64_t{1} << shift) - 1));
}

double LatencyHistogram::percentile(double q) const noexcept {
  const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  std::uint64_t seen = 0;
  for (unsigned i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank && counts_[i] != 0) return std::min(upper_bound(i), static_cast<double>(max_));
  }
  return static_cast<double>(max_);
}

}  // namespace conduit::load
