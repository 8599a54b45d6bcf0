// The load generator's threads and what every scenario shares: a Worker is
// one io_context thread with its share of the connections; the controller
// (the calling thread) resolves the target, waits for setup, drives progress
// and tears everything down.
//
// Nothing on the per-message path takes a lock: a worker's counters are
// written only by that worker and read by the controller through relaxed
// atomics (ops::Counter, the library's single-writer counter).
#pragma once
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "conduit_load/load.hpp"
#include "load/ws_connection.hpp"
#include "ops/metrics.hpp"

namespace conduit::load {

using Clock = std::chrono::steady_clock;

inline std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}
inline double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
inline bool cancelled(const ConnectOptions& o) { return o.cancel && o.cancel->load(std::memory_order_relaxed); }

class Worker : public ConnectionEvents {
 public:
  Worker(unsigned index, const Target& target, unsigned concurrency)
      : index_(index), target_(target), concurrency_(std::max(1u, concurrency)) {}
  ~Worker() override = default;

  net::io_context& ioc() noexcept { return ioc_; }
  unsigned index() const noexcept { return index_; }

  void add_connections(std::uint32_t first_id, unsigned count, std::size_t read_buffer_bytes);
  std::vector<std::unique_ptr<Connection>>& connections() noexcept { return conns_; }

  void start_thread();
  void join();
  // Opens every connection, at most `concurrency` at a time.
  void begin_setup();
  // Starts the close handshake on every connection; sockets still open after
  // `grace` are dropped. The thread exits once everything is closed.
  void begin_teardown(Milliseconds grace);

  // Counters read by the controller.
  std::atomic<unsigned> opened{0};
  std::atomic<unsigned> failed{0};
  std::atomic<unsigned> closed{0};
  ops::Counter messages;  // verified echoes or deliveries counted in the window
  ops::Counter errors;
  std::mutex detail_mutex;  // guards first_error/first_error_detail (setup only)
  LoadError first_error = LoadError::None;
  std::string first_error_detail;
  std::mutex close_codes_mutex;  // closes are rare; a lock is fine here
  CloseCodeCounts close_codes;
  std::uint64_t protocol_errors = 0;  // read after join

 protected:
  void on_open(Connection&) override;
  void on_setup_failed(Connection&, LoadError error, const std::string& detail) override;
  void on_closed(Connection&, std::uint16_t code, bool by_us) override;
  void on_protocol_error(Connection&, std::uint16_t, const char*) override;

  bool tearing_down_ = false;

 private:
  void start_next();
  void setup_slot_freed();
  void maybe_release();

  unsigned index_;
  net::io_context ioc_{1};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::thread thread_;
  const Target& target_;
  unsigned concurrency_;
  std::vector<std::unique_ptr<Connection>> conns_;
  std::size_t next_to_start_ = 0;
  unsigned in_setup_ = 0;
  net::steady_timer teardown_timer_{ioc_};
};

// The resolved target of a run, with the TLS context its connections share.
struct Setup {
  LoadError error = LoadError::None;
  std::string detail;
  std::unique_ptr<net::ssl::context> tls;  // wss:// only; Target::tls points here
  Target target;
};

// Parses and resolves options.url, checks that `connections_needed` fit in
// RLIMIT_NOFILE and, for wss://, builds the TLS context.
Setup resolve(const ConnectOptions& options, std::uint64_t connections_needed);

// Controller helpers over any vector of (unique) pointers to Workers.
struct SetupOutcome {
  unsigned opened = 0;
  std::uint64_t failures = 0;
  LoadError error = LoadError::None;
  std::string detail;
};
SetupOutcome wait_for_setup(const ConnectOptions& options, const std::vector<Worker*>& workers, std::uint64_t total);
// Starts every worker's thread and connection setup, then wait_for_setup.
SetupOutcome start_and_wait_for_setup(const ConnectOptions& options, const std::vector<Worker*>& workers,
                                      std::uint64_t total);
void teardown(const std::vector<Worker*>& workers);
CloseCodeCounts merged_close_codes(const std::vector<Worker*>& workers);

template <class WorkerPtrs>
std::vector<Worker*> worker_list(const WorkerPtrs& workers) {
  std::vector<Worker*> out;
  for (auto& w : workers) out.push_back(w.get());
  return out;
}

// Progress of a running scenario: what it has counted so far.
struct Counted {
  std::uint64_t messages = 0;
  std::uint64_t errors = 0;
};
// The messages and errors counted so far by all workers.
Counted count_all(const std::vector<Worker*>& workers);

// Calls progress about once a second until `until` returns true; returns
// early when cancelled. Polls every 5 ms: the controller is not on the
// per-message path.
template <class CountFn, class UntilFn>
void run_progress_loop(const ConnectOptions& options, const ProgressCallback& progress, Clock::time_point start,
                       bool measuring, unsigned connections, std::uint64_t expected, CountFn counted, UntilFn until) {
  auto last_report = Clock::now();
  std::uint64_t last_count = counted().messages;
  while (!until() && !cancelled(options)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const auto now = Clock::now();
    if (progress && now - last_report >= std::chrono::seconds(1)) {
      const Counted c = counted();
      Progress p;
      p.elapsed_seconds = seconds_between(start, now);
      p.measuring = measuring;
      p.connections = connections;
      p.messages = c.messages;
      p.expected = expected;
      p.errors = c.errors;
      p.recent_rate = static_cast<double>(c.messages - last_count) / seconds_between(last_report, now);
      progress(p);
      last_report = now;
      last_count = c.messages;
    }
  }
}

}  // namespace conduit::load
