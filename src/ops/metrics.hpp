// Server metrics. Each event loop owns one ServerCounters and is the only
// writer of it, so counting on the per-message path is a plain load+store on a
// cache line no other thread writes (no lock, no atomic RMW). A scrape sums
// every loop's counters into a prometheus-cpp registry and serializes that.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

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

enum class HandshakeFailure : std::uint8_t {
  BadRequest,      // 400: malformed upgrade request
  BadVersion,      // 426
  OriginRejected,  // 403
  OverCapacity,    // 503: server.max_connections
  PerIpCapacity,   // 503: server.max_connections_per_ip
  ShuttingDown,    // 503
  NoSubprotocol,   // 400: server.require_subprotocol
  RefusedByHook,   // status chosen by the accept hook
  HookFailed,      // 500: the accept hook threw
  Timeout,         // server.handshake_timeout (slowloris)
  HeaderTooLarge,  // 431
  NotFound,        // 404 for a plain request to an unknown path
  TlsFailure,      // TLS handshake failed
  Count
};
const char* to_string(HandshakeFailure f) noexcept;

enum class ErrorKind : std::uint8_t {
  ProtocolError,    // 1002
  InvalidPayload,   // 1007
  MessageTooBig,    // 1009
  ConnectionReset,  // ECONNRESET / EPIPE / other socket errors
  PongTimeout,
  CloseTimeout,  // peer did not complete the close handshake
  SlowConsumer,  // send queue overflow → 1008
  Tls,
  HandlerException,  // an application handler threw → 1011 (or 500 from the accept hook)
  AcceptFailed,      // accept(2) failed (EMFILE, ENFILE, ENOBUFS...): retried after 100 ms
  Count
};
const char* to_string(ErrorKind k) noexcept;

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
std::string render_metrics(const std::vector<const ServerCounters*>& loops);

}  // namespace conduit::ops
