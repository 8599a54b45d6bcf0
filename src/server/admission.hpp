// Admission accounting: how many sessions are open, server-wide and per
// client address. Loop threads reserve a slot before the policy decides (so
// two loops admitting at once cannot both take the last slot) and release it
// when a refused handshake ends or an admitted session finishes.
#pragma once
#include <atomic>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

namespace conduit::server {

class Admission {
 public:
  explicit Admission(bool count_per_ip) : count_per_ip_(count_per_ip) {}

  // Takes a slot for ip and says how many were taken before it.
  void reserve(const std::string& ip, std::size_t& open_before, std::size_t& from_ip_before);
  void release(const std::string& ip);
  std::size_t open() const noexcept { return open_.load(std::memory_order_relaxed); }

 private:
  const bool count_per_ip_;  // only when max_connections_per_ip is set: the map costs a lock
  std::atomic<std::size_t> open_{0};
  std::mutex ip_mu_;
  std::unordered_map<std::string, std::size_t> per_ip_;
};

}  // namespace conduit::server
