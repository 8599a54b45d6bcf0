// The counter type of every metric: written by one thread (the loop that owns
// it) with a plain load+store, read by any thread (a scrape) without a lock.
#pragma once
#include <atomic>
#include <cstdint>

namespace conduit::ops {

class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void dec(std::uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

}  // namespace conduit::ops
