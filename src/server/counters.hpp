// The server's metrics. Each server event loop owns one ServerCounters and is
// the only writer of it, so counting on the per-message path is a plain
// load+store on a cache line no other thread writes (no lock, no atomic RMW).
// A scrape sums every loop's counters into a prometheus-cpp registry.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ops/metrics.hpp"
#include "server/failures.hpp"

namespace conduit::server {

using ops::Counter;

struct alignas(64) ServerCounters {
  Counter connections_active;
  Counter connections_total;
  Counter messages_received;
  Counter messages_sent;
  Counter bytes_received;
  Counter bytes_sent;
  Counter send_queue_overflows;
  Counter messages_dropped;  // slow_consumer = drop
  Counter pings_sent;
  Counter pong_timeouts;
  std::array<Counter, static_cast<std::size_t>(HandshakeFailure::Count)> handshake_failures;
  std::array<Counter, static_cast<std::size_t>(ErrorKind::Count)> errors;
  // Close codes sent or received at the end of a connection: 1000..1015 and
  // 3000/4000 buckets would be unbounded; codes outside 1000..1015 are "other".
  std::array<Counter, 16> closes_1000;
  Counter closes_other;
  Counter closes_abnormal;  // 1006: no close frame

  void count_close(std::uint16_t code) noexcept {
    if (code == 1006)
      closes_abnormal.inc();
    else if (code >= 1000 && code <= 1015)
      closes_1000[code - 1000].inc();
    else
      closes_other.inc();
  }
};

// Sums the loops' counters and renders the Prometheus text format.
// `labeled_refusals` adds samples to conduit_handshake_failures_total under
// labels chosen by the accept hook (added to a built-in reason of the same name).
std::string render_metrics(const std::vector<const ServerCounters*>& loops,
                           const std::map<std::string, std::uint64_t, std::less<>>& labeled_refusals);

}  // namespace conduit::server
