// Fan-out scenario: N subscribers and one publisher on a broadcast server.
// The publisher keeps a window of W messages ahead of the slowest live
// subscriber; every subscriber checks it got every message, in order, intact.
#include "load/fanout.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

namespace conduit::load {
namespace {

char fanout_pattern_byte(std::size_t i) { return static_cast<char>((i * 13 + 5) & 0xFF); }
// Channel mode: printable and never needing a JSON escape.
char channel_pattern_byte(std::size_t i) { return static_cast<char>('a' + (i * 13 + 5) % 26); }

void put_hex(char* out, std::uint64_t v) {
  static constexpr char digits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i, v >>= 4) out[i] = digits[v & 0xF];
}

bool read_hex(std::string_view in, std::uint64_t& v) {
  v = 0;
  for (char c : in) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  return true;
}

// Processes to spread the subscribers over (1 = all in this process).
unsigned fanout_processes(const FanoutLoadOptions& options) {
  if (options.processes > 0) return options.processes;
  if (options.worker_command.empty()) return 1;
  const std::uint64_t limit = raise_file_limit();
  if (std::uint64_t{options.subscribers} + kFanoutProcessMargin <= limit) return 1;
  const std::uint64_t capacity = limit > kFanoutProcessMargin ? limit - kFanoutProcessMargin : 1;
  return static_cast<unsigned>((options.subscribers + capacity - 1) / capacity);
}

}  // namespace

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

FanoutWorker::FanoutWorker(unsigned index, const Target& target, const FanoutLoadOptions& options, FanoutShared& shared)
    : Worker(index, target, options.connect_concurrency / std::max(1u, options.threads)),
      options_(options),
      shared_(shared),
      pattern_(options.size, '\0') {
  if (options.channel.empty()) {
    for (std::size_t i = kFanoutHeader; i < pattern_.size(); ++i) pattern_[i] = fanout_pattern_byte(i);
  } else {
    for (std::size_t i = kChannelHeader; i < pattern_.size(); ++i) pattern_[i] = channel_pattern_byte(i);
  }
}

void FanoutWorker::on_open(Connection& c) {
  // Channel mode: a subscriber is set up once its subscription is.
  if (options_.channel.empty() || &c == publisher_) return Worker::on_open(c);
  c.queue(wire::Opcode::Text, R"({"id":1,"subscribe":{"channel":")" + options_.channel + "\"}}");
  c.flush();
}

void FanoutWorker::start_publishing() {
  net::post(ioc(), [this] {
    if (!options_.channel.empty()) publish_sent_ns_.assign(options_.messages, 0);
    publishing_ = true;
    shared_.first_publish_ns.store(now_ns());
    publish();
  });
}

// A message reached every live subscriber (or one left): the window may move.
void FanoutWorker::window_moved() {
  if (shared_.progress_fd >= 0) {
    report_progress();
  } else if (publisher_worker_ == this) {
    publish();
  } else {
    net::post(publisher_worker_->ioc(), [w = publisher_worker_] { w->publish(); });
  }
}

void FanoutWorker::report_progress() {
  if (!shared_.started.load()) return;
  std::lock_guard lock(shared_.progress_mutex);
  const std::uint32_t alive = shared_.alive.load(std::memory_order_acquire);
  std::uint64_t wm = shared_.watermark;
  while (wm < options_.messages && shared_.received[wm].load() >= alive) ++wm;
  if (wm == shared_.watermark) return;
  shared_.watermark = wm;
  write_all(shared_.progress_fd, fmt::format("progress {}\n", wm));
}

void FanoutWorker::on_message(Connection& c, wire::Opcode, std::uint8_t* data, std::size_t len) {
  if (&c == publisher_) {
    if (!options_.channel.empty())
      on_publish_reply(std::string_view(reinterpret_cast<const char*>(data), len), now_ns());
    else
      ++publisher_echoes;
    return;
  }
  const std::uint64_t now = now_ns();
  if (!options_.channel.empty()) {
    on_channel_message(c, std::string_view(reinterpret_cast<const char*>(data), len), now);
    return;
  }
  if (len < kFanoutHeader || len != options_.size ||
      std::memcmp(data + kFanoutHeader, pattern_.data() + kFanoutHeader, len - kFanoutHeader) != 0) {
    ++corrupt;
    errors.inc();
    return;
  }
  std::uint64_t seq, sent;
  std::memcpy(&seq, data, 8);
  std::memcpy(&sent, data + 8, 8);
  delivered(c, seq, sent, now);
}

void FanoutWorker::on_channel_message(Connection& c, std::string_view text, std::uint64_t now) {
  if (text.starts_with(R"({"id":1,"result":)")) {
    if (!c.subscribed) {
      c.subscribed = true;
      Worker::on_open(c);
    }
    return;
  }
  constexpr std::string_view data_key = R"("data":")";
  const auto at = text.find(data_key);
  if (!text.starts_with(R"({"push":)") || at == std::string_view::npos ||
      text.size() != at + data_key.size() + options_.size + 3 || !text.ends_with(R"("}})")) {
    ++corrupt;
    errors.inc();
    return;
  }
  const std::string_view payload = text.substr(at + data_key.size(), options_.size);
  std::uint64_t seq, sent;
  if (!read_hex(payload.substr(0, 16), seq) || !read_hex(payload.substr(16, 16), sent) ||
      payload.substr(kChannelHeader) != std::string_view(pattern_).substr(kChannelHeader)) {
    ++corrupt;
    errors.inc();
    return;
  }
  delivered(c, seq, sent, now);
}

void FanoutWorker::on_publish_reply(std::string_view text, std::uint64_t now) {
  // {"id":K,"result":{...}} or {"id":K,"error":{...}}; K = sequence + 1.
  constexpr std::string_view id_key = R"({"id":)";
  std::uint64_t id = 0;
  std::size_t i = id_key.size();
  bool digits = false;
  if (text.starts_with(id_key)) {
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, digits = true)
      id = id * 10 + static_cast<std::uint64_t>(text[i] - '0');
  }
  if (!digits || id == 0 || id > publish_sent_ns_.size() || publish_sent_ns_[id - 1] == 0) {
    ++corrupt;
    errors.inc();
    return;
  }
  if (text.substr(i).starts_with(R"(,"result":)")) {
    publish_histogram_.record(now - publish_sent_ns_[id - 1]);
  } else {
    ++publish_errors;
    errors.inc();
  }
  publish_sent_ns_[id - 1] = 0;  // a second reply to the same id is counted as corrupt
}

void FanoutWorker::delivered(Connection& c, std::uint64_t seq, std::uint64_t sent, std::uint64_t now) {
  if (seq >= options_.messages) {
    ++corrupt;
    errors.inc();
    return;
  }
  if (seq < c.recv_seq) {
    ++out_of_order;
    errors.inc();
    return;
  }
  if (seq > c.recv_seq) {
    gaps += seq - c.recv_seq;
    errors.inc();
  }
  c.recv_seq = seq + 1;
  ++c.received;
  histogram_.record(now - sent);
  messages.inc();
  last_delivery_ns_ = now;
  // seq_cst on both sides of the window (this add, then the publisher's
  // position; the publisher's position, then this count) so that with
  // several threads either we see the publisher waiting or it sees our count.
  const std::uint32_t got = shared_.received[seq].fetch_add(1) + 1;
  if (c.recv_seq == options_.messages) subscriber_finished(c);
  if (options_.window > 0 && got >= shared_.alive.load(std::memory_order_acquire) &&
      seq + options_.window >= publisher_next_hint())
    window_moved();
}

void FanoutWorker::on_closed(Connection& c, std::uint16_t code, bool by_us) {
  if (!tearing_down_) {
    ++closed_early;
    errors.inc();
  }
  if (&c == publisher_) {
    if (!tearing_down_) shared_.publisher_lost.store(true);
  } else if (!c.subscriber_done && !tearing_down_) {
    shared_.alive.fetch_sub(1, std::memory_order_acq_rel);
    subscriber_finished(c);
    if (options_.window > 0) window_moved();
  }
  Worker::on_closed(c, code, by_us);
}

void FanoutWorker::finalize() {
  for (auto& c : connections())
    if (c.get() != publisher_ && c->was_open) gaps += options_.messages - std::min(options_.messages, c->recv_seq);
  std::uint64_t last = shared_.last_delivery_ns.load();
  while (last_delivery_ns_ > last && !shared_.last_delivery_ns.compare_exchange_weak(last, last_delivery_ns_)) {
  }
}

// Publisher side (runs on the publisher's worker).
void FanoutWorker::publish() {
  if (!publishing_ || publisher_ == nullptr || !publisher_->open()) return;
  // Bound what one write carries, so timestamps are close to the moment the
  // bytes leave and a no-wait publisher still follows TCP backpressure.
  constexpr std::size_t kMaxPendingBytes = 64 * 1024;
  const std::uint32_t alive = shared_.alive.load(std::memory_order_acquire);
  while (next_seq_ < options_.messages && publisher_->pending_bytes() < kMaxPendingBytes) {
    if (options_.window > 0 && next_seq_ >= options_.window &&
        (remote_window_ ? remote_watermark_ <= next_seq_ - options_.window
                        : shared_.received[next_seq_ - options_.window].load() < alive))
      break;
    const std::uint64_t now = now_ns();
    if (options_.channel.empty()) {
      std::memcpy(pattern_.data(), &next_seq_, 8);
      std::memcpy(pattern_.data() + 8, &now, 8);
      publisher_->queue(wire::Opcode::Binary, pattern_);
    } else {
      put_hex(pattern_.data(), next_seq_);
      put_hex(pattern_.data() + 16, now);
      request_.clear();
      fmt::format_to(std::back_inserter(request_), R"({{"id":{},"publish":{{"channel":"{}","data":"{}"}}}})",
                     next_seq_ + 1, options_.channel, pattern_);
      publisher_->queue(wire::Opcode::Text, request_);
      publish_sent_ns_[next_seq_] = now;
    }
    ++next_seq_;
    ++published;
    publisher_next_.store(next_seq_);
  }
  publisher_->flush();
}

void FanoutWorker::subscriber_finished(Connection& c) {
  if (c.subscriber_done) return;
  c.subscriber_done = true;
  shared_.finished.fetch_add(1, std::memory_order_acq_rel);
}

void add_rates(FanoutLoadReport& report, std::uint64_t first_publish_ns, std::uint64_t last_delivery_ns) {
  if (last_delivery_ns > first_publish_ns && first_publish_ns != 0) {
    report.seconds = static_cast<double>(last_delivery_ns - first_publish_ns) / 1e9;
    report.deliveries_per_second = static_cast<double>(report.deliveries) / *report.seconds;
  }
  if (report.server_cpu_seconds && *report.server_cpu_seconds > 0)
    report.deliveries_per_server_cpu_second = static_cast<double>(report.deliveries) / *report.server_cpu_seconds;
}

void add_subscriber_counts(const std::vector<std::unique_ptr<FanoutWorker>>& workers, FanoutLoadReport& r,
                           LatencyHistogram& merged) {
  for (auto& w : workers) {
    w->finalize();
    merged.merge(w->histogram());
    r.deliveries += w->messages.get();
    r.gaps += w->gaps;
    r.out_of_order += w->out_of_order;
    r.corrupt += w->corrupt;
    r.protocol_errors += w->protocol_errors;
    r.closed_early += w->closed_early;
  }
}

FanoutLoadReport run_fanout_load(const FanoutLoadOptions& options, const ProgressCallback& progress) {
  FanoutLoadReport report;
  if (options.subscribers == 0 || options.threads == 0 || options.size < kFanoutHeader || options.messages == 0) {
    report.error = LoadError::BadOptions;
    report.error_detail = "subscribers, threads and messages must be at least 1 and size at least 16 bytes";
    return report;
  }
  if (!options.channel.empty() &&
      (options.size < kChannelHeader || options.channel.find_first_of("\"\\ \t") != std::string::npos)) {
    report.error = LoadError::BadOptions;
    report.error_detail = "a channel run needs size at least 32 bytes and a channel name without quotes or spaces";
    return report;
  }
  if (!options.subscriber_urls.empty() && options.channel.empty()) {
    report.error = LoadError::BadOptions;
    report.error_detail = "subscriber URLs are for channel runs (several nodes serving one channel)";
    return report;
  }
  if (const unsigned processes = fanout_processes(options); processes > 1) {
    if (!options.subscriber_urls.empty()) {
      report.error = LoadError::BadOptions;
      report.error_detail = "subscriber URLs need every subscriber in this process (raise the descriptor limit)";
      return report;
    }
    return run_fanout_processes(options, processes, progress);
  }
  const std::uint64_t total = std::uint64_t{options.subscribers} + 1;
  Setup setup = resolve(options, total);
  if (setup.error != LoadError::None) {
    report.error = setup.error;
    report.error_detail = setup.detail;
    return report;
  }
  // One resolved target per subscriber URL; reserved up front because the
  // workers keep references to the targets.
  std::vector<Setup> subscriber_setups;
  subscriber_setups.reserve(options.subscriber_urls.size());
  for (const std::string& url : options.subscriber_urls) {
    ConnectOptions o = options;
    o.url = url;
    subscriber_setups.push_back(resolve(o, 0));
    if (subscriber_setups.back().error != LoadError::None) {
      report.error = subscriber_setups.back().error;
      report.error_detail = url + ": " + subscriber_setups.back().detail;
      return report;
    }
  }
  FanoutShared shared(options.messages);
  const unsigned threads = options.threads;
  std::vector<std::unique_ptr<FanoutWorker>> workers;
  std::uint32_t next_id = 0;
  if (subscriber_setups.empty()) {
    for (unsigned t = 0; t < threads; ++t) {
      // Worker 0 also hosts the publisher (its first connection).
      unsigned count = options.subscribers / threads + (t < options.subscribers % threads ? 1 : 0);
      if (t == 0) ++count;
      workers.push_back(std::make_unique<FanoutWorker>(t, setup.target, options, shared));
      workers.back()->add_connections(next_id, count, 8 * 1024);
      next_id += count;
    }
  } else {
    // Worker 0 holds the publisher alone (its target is `url`); then
    // `threads` workers per subscriber URL, the subscribers spread evenly.
    workers.push_back(std::make_unique<FanoutWorker>(0, setup.target, options, shared));
    workers.back()->add_connections(next_id++, 1, 8 * 1024);
    const auto k = static_cast<unsigned>(subscriber_setups.size());
    const unsigned n = threads * k;
    for (unsigned j = 0; j < n; ++j) {
      const unsigned count = options.subscribers / n + (j < options.subscribers % n ? 1 : 0);
      workers.push_back(std::make_unique<FanoutWorker>(j + 1, subscriber_setups[j % k].target, options, shared));
      workers.back()->add_connections(next_id, count, 8 * 1024);
      next_id += count;
    }
  }
  Connection* publisher = workers[0]->connections()[0].get();
  for (auto& w : workers) w->set_publisher(publisher, workers[0].get());
  const std::vector<Worker*> all = worker_list(workers);

  const auto start = Clock::now();
  const SetupOutcome setup_outcome = start_and_wait_for_setup(options, all, total);
  report.error = setup_outcome.error;
  report.error_detail = setup_outcome.detail;
  report.connect_failures = setup_outcome.failures;
  report.subscribers = setup_outcome.opened > 0 ? setup_outcome.opened - 1 : 0;
  report.expected_deliveries = std::uint64_t{options.subscribers} * options.messages;
  auto counted = [&] { return count_all(all); };
  if (report.error == LoadError::None && !cancelled(options)) {
    shared.alive.store(options.subscribers);
    const auto cpu_before = server_cpu_seconds(options);
    workers[0]->start_publishing();
    const auto deadline = Clock::now() + options.timeout;
    bool timed_out = false;
    run_progress_loop(options, progress, start, true, setup_outcome.opened, report.expected_deliveries, counted, [&] {
      if (shared.finished.load() >= options.subscribers) return true;
      // Without the publisher no further message can come: stop now.
      if (shared.publisher_lost.load()) return true;
      if (Clock::now() >= deadline) return timed_out = true;
      return false;
    });
    const auto cpu_after = server_cpu_seconds(options);
    if (cpu_before && cpu_after) report.server_cpu_seconds = *cpu_after - *cpu_before;
    if (timed_out) {
      report.error = LoadError::Timeout;
      report.error_detail = fmt::format("not every subscriber received all {} messages within {} ms", options.messages,
                                        options.timeout.count());
    }
  }
  teardown(all);

  LatencyHistogram merged;
  add_subscriber_counts(workers, report, merged);
  LatencyHistogram publish_latency;
  for (auto& w : workers) {
    report.publisher_echoes += w->publisher_echoes;
    report.messages_published += w->published;
    report.publish_errors += w->publish_errors;
    publish_latency.merge(w->publish_histogram());
  }
  report.publish_latency = publish_latency.summary();
  if (report.subscribers == 0) report.gaps = 0;  // nothing ran
  report.latency = merged.summary();
  report.close_codes = merged_close_codes(all);
  add_rates(report, shared.first_publish_ns.load(), shared.last_delivery_ns.load());
  return report;
}

}  // namespace conduit::load
