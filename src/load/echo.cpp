// Echo scenario: N connections each keep `pipeline` messages in flight (or the
// run keeps a total `rate`); every echo is checked byte for byte, and only
// verified echoes count as messages and latency samples.
#include <boost/asio/post.hpp>
#include <cstring>
#include <future>

#include "load/histogram.hpp"
#include "load/worker.hpp"

namespace conduit::load {
namespace {

// Payload of message `seq` on a connection: an 8-byte header carrying seq (as
// 8 ASCII letters in text mode) followed by a per-connection pattern, so a
// wrong, stale or corrupted echo is detected by comparing two memory ranges.
void write_seq_header(std::string& payload, std::uint64_t seq, bool binary) {
  const std::size_t n = std::min<std::size_t>(8, payload.size());
  for (std::size_t i = 0; i < n; ++i) {
    const auto byte = static_cast<std::uint8_t>(seq >> (8 * i));
    payload[i] = binary ? static_cast<char>(byte) : static_cast<char>('A' + (byte & 15));
  }
}

bool header_matches(const std::uint8_t* data, std::size_t n, std::uint64_t seq, bool binary) {
  for (std::size_t i = 0; i < std::min<std::size_t>(8, n); ++i) {
    const auto byte = static_cast<std::uint8_t>(seq >> (8 * i));
    const auto expected = binary ? byte : static_cast<std::uint8_t>('A' + (byte & 15));
    if (data[i] != expected) return false;
  }
  return true;
}

class EchoWorker final : public Worker {
 public:
  EchoWorker(unsigned index, const Target& target, const EchoLoadOptions& options, double rate_share)
      : Worker(index, target, options.connect_concurrency / std::max(1u, options.threads)),
        options_(options),
        rate_share_(rate_share) {}

  // Posted by the controller: start sending (warmup begins).
  void start_sending() {
    net::post(ioc(), [this] {
      sending_ = true;
      if (options_.rate > 0) {
        pace_start_ = Clock::now();
        pace();
      } else {
        for (auto& c : connections())
          if (c->open()) {
            for (unsigned i = 0; i < options_.pipeline; ++i) send_next(*c, now_ns());
            c->flush();
          }
      }
    });
  }
  // Nothing is counted before this runs (counting_ is false), so the window's
  // counters start from zero without a reset.
  void begin_window() {
    net::post(ioc(), [this] {
      histogram_.reset();
      bytes_ = 0;
      rate_misses_ = 0;
      counting_ = true;
      window_start_ = Clock::now();
    });
  }
  // Ends the window and stops sending; returns once the worker has snapshotted.
  void end_window(std::promise<void>& done) {
    net::post(ioc(), [this, &done] {
      counting_ = false;
      sending_ = false;
      window_end_ = Clock::now();
      pace_timer_.cancel();
      done.set_value();
    });
  }

  const LatencyHistogram& histogram() const noexcept { return histogram_; }
  std::uint64_t bytes() const noexcept { return bytes_; }
  std::uint64_t mismatches() const noexcept { return mismatches_; }
  std::uint64_t rate_misses() const noexcept { return rate_misses_; }
  double window_seconds() const noexcept { return seconds_between(window_start_, window_end_); }
  std::uint64_t closed_early() const noexcept { return closed_early_; }

 protected:
  void on_open(Connection& c) override {
    c.payload.assign(options_.size, '\0');
    for (std::size_t i = 8; i < c.payload.size(); ++i) {
      const auto v = static_cast<std::uint32_t>(c.id() * 31 + i * 7);
      c.payload[i] = options_.binary ? static_cast<char>(v & 0xFF) : static_cast<char>('a' + v % 26);
    }
    c.sent_at.assign(options_.pipeline, 0);
    Worker::on_open(c);
  }

  void on_message(Connection& c, wire::Opcode op, std::uint8_t* data, std::size_t len) override {
    const std::uint64_t now = now_ns();
    if (c.recv_seq >= c.send_seq) {
      // A reply to nothing we sent (e.g. a broadcast server's copy of another
      // connection's message).
      ++mismatches_;
      errors.inc();
      return;
    }
    const std::uint64_t seq = c.recv_seq++;
    const bool ok = len == options_.size && op == (options_.binary ? wire::Opcode::Binary : wire::Opcode::Text) &&
                    header_matches(data, len, seq, options_.binary) &&
                    (len <= 8 || std::memcmp(data + 8, c.payload.data() + 8, len - 8) == 0);
    if (!ok) {
      // Not counted as a message: the headline rate is of verified echoes only.
      ++mismatches_;
      errors.inc();
    } else if (counting_) {
      histogram_.record(now - c.sent_at[seq % options_.pipeline]);
      messages.inc();
      bytes_ += len;
    }
    if (sending_ && options_.rate <= 0) send_next(c, now);  // flushed after this read batch
  }

  void on_closed(Connection& c, std::uint16_t code, bool by_us) override {
    if (!tearing_down_) {
      ++closed_early_;
      errors.inc();
    }
    Worker::on_closed(c, code, by_us);
  }

 private:
  void send_next(Connection& c, std::uint64_t now) {
    const std::uint64_t seq = c.send_seq++;
    write_seq_header(c.payload, seq, options_.binary);
    c.sent_at[seq % options_.pipeline] = now;
    c.queue(options_.binary ? wire::Opcode::Binary : wire::Opcode::Text, c.payload);
  }

  // Open-loop pacing: every millisecond, send what the schedule says is due,
  // round-robin over connections that have room in their pipeline.
  void pace() {
    if (!sending_) return;
    const double elapsed = seconds_between(pace_start_, Clock::now());
    const auto due = static_cast<std::uint64_t>(elapsed * rate_share_);
    auto& conns = connections();
    const std::uint64_t now = now_ns();
    while (paced_sent_ < due) {
      bool sent = false;
      for (std::size_t tries = 0; tries < conns.size(); ++tries) {
        Connection& c = *conns[pace_cursor_];
        pace_cursor_ = (pace_cursor_ + 1) % conns.size();
        if (c.open() && c.send_seq - c.recv_seq < options_.pipeline) {
          send_next(c, now);
          c.flush();
          sent = true;
          break;
        }
      }
      ++paced_sent_;
      if (!sent && counting_) ++rate_misses_;
    }
    pace_timer_.expires_after(std::chrono::milliseconds(1));
    pace_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) pace();
    });
  }

  const EchoLoadOptions& options_;
  double rate_share_;
  LatencyHistogram histogram_;
  bool sending_ = false;
  bool counting_ = false;
  std::uint64_t bytes_ = 0;
  // Counted from the first reply on, window or not: a wrong echo is an error
  // whenever it arrives.
  std::uint64_t mismatches_ = 0;
  std::uint64_t rate_misses_ = 0;
  std::uint64_t closed_early_ = 0;
  Clock::time_point window_start_{};
  Clock::time_point window_end_{};
  Clock::time_point pace_start_{};
  std::uint64_t paced_sent_ = 0;
  std::size_t pace_cursor_ = 0;
  net::steady_timer pace_timer_{ioc()};
};

}  // namespace

EchoLoadReport run_echo_load(const EchoLoadOptions& options, const ProgressCallback& progress) {
  EchoLoadReport report;
  if (options.connections == 0 || options.pipeline == 0 || options.threads == 0) {
    report.error = LoadError::BadOptions;
    report.error_detail = "connections, pipeline and threads must be at least 1";
    return report;
  }
  Setup setup = resolve(options, options.connections);
  if (setup.error != LoadError::None) {
    report.error = setup.error;
    report.error_detail = setup.detail;
    return report;
  }
  const unsigned threads = std::min(options.threads, options.connections);
  std::vector<std::unique_ptr<EchoWorker>> workers;
  // Large messages get a read buffer that holds a whole frame, so the parser
  // delivers them in place instead of assembling them from pieces.
  const std::size_t read_buffer = std::clamp<std::size_t>(options.size + 64, 16 * 1024, 1024 * 1024);
  std::uint32_t next_id = 0;
  for (unsigned t = 0; t < threads; ++t) {
    const unsigned count = options.connections / threads + (t < options.connections % threads ? 1 : 0);
    const double share = options.rate * count / options.connections;
    workers.push_back(std::make_unique<EchoWorker>(t, setup.target, options, share));
    workers.back()->add_connections(next_id, count, read_buffer);
    next_id += count;
  }
  const std::vector<Worker*> all = worker_list(workers);
  const auto start = Clock::now();
  const SetupOutcome setup_outcome = start_and_wait_for_setup(options, all, options.connections);
  report.connections = setup_outcome.opened;
  report.connect_failures = setup_outcome.failures;
  report.error = setup_outcome.error;
  report.error_detail = setup_outcome.detail;
  auto counted = [&] { return count_all(all); };
  bool window_ran = false;
  if (report.error == LoadError::None && !cancelled(options)) {
    for (auto& w : workers) w->start_sending();
    if (options.warmup.count() > 0) {
      const auto warm_end = Clock::now() + options.warmup;
      run_progress_loop(options, progress, start, false, report.connections, 0, counted,
                        [&] { return Clock::now() >= warm_end; });
    }
    const auto cpu_before = server_cpu_seconds(options);
    for (auto& w : workers) w->begin_window();
    const auto window_end = Clock::now() + options.duration;
    run_progress_loop(options, progress, start, true, report.connections, 0, counted,
                      [&] { return Clock::now() >= window_end; });
    std::vector<std::promise<void>> ended(workers.size());
    for (std::size_t i = 0; i < workers.size(); ++i) workers[i]->end_window(ended[i]);
    for (auto& p : ended) p.get_future().wait();
    window_ran = true;
    const auto cpu_after = server_cpu_seconds(options);
    if (cpu_before && cpu_after) report.server_cpu_seconds = *cpu_after - *cpu_before;
  }
  teardown(all);

  LatencyHistogram merged;
  double window = 0;
  for (auto& w : workers) {
    merged.merge(w->histogram());
    report.messages += w->messages.get();
    report.bytes += w->bytes();
    report.mismatches += w->mismatches();
    report.rate_misses += w->rate_misses();
    report.protocol_errors += w->protocol_errors;
    report.closed_early += w->closed_early();
    window = std::max(window, w->window_seconds());
  }
  report.latency = merged.summary();
  report.close_codes = merged_close_codes(all);
  if (window_ran && window > 0) {
    report.seconds = window;
    report.messages_per_second = static_cast<double>(report.messages) / window;
  }
  if (report.server_cpu_seconds && *report.server_cpu_seconds > 0)
    report.messages_per_server_cpu_second = static_cast<double>(report.messages) / *report.server_cpu_seconds;
  return report;
}

}  // namespace conduit::load
