// Load generator engine (see include/conduit/load.hpp).
//
// Shape: the calling thread is the controller (setup deadlines, measurement
// window, progress, server CPU sampling); `threads` workers each run one
// io_context that owns a share of the connections. Nothing on the per-message
// path takes a lock: a worker's counters are written only by that worker and
// read by the controller through relaxed atomics.
//
// A connection reads into its own buffer with async_read_some, feeds the bytes
// to wire::Parser (Role::Client) and queues outgoing masked frames into a
// pending buffer that is written with one async_write once the batch of input
// is handled — the generator corks its own writes so that it does not cost
// more syscalls than the server it measures.
#include "conduit/load.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "wire/frame.hpp"
#include "wire/handshake.hpp"
#include "wire/parser.hpp"

namespace conduit::load {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

// ---------------------------------------------------------------------------
// URL

struct WsTarget {
  std::string host;
  std::uint16_t port = 80;
  std::string path = "/";
  std::string host_header;
};

std::optional<WsTarget> parse_target(std::string_view url) {
  constexpr std::string_view scheme = "ws://";
  if (url.substr(0, scheme.size()) != scheme) return std::nullopt;
  url.remove_prefix(scheme.size());
  WsTarget t;
  const std::size_t slash = url.find_first_of("/?");
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) {
    t.path = std::string(url.substr(slash));
    if (t.path[0] == '?') t.path.insert(0, "/");
  }
  if (authority.empty()) return std::nullopt;
  t.host_header = std::string(authority);
  std::string_view port_part;
  if (authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    t.host = std::string(authority.substr(1, close - 1));
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port_part = rest.substr(1);
    }
  } else {
    const std::size_t colon = authority.rfind(':');
    t.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_part = authority.substr(colon + 1);
  }
  if (t.host.empty()) return std::nullopt;
  if (!port_part.empty()) {
    unsigned port = 0;
    for (char c : port_part) {
      if (c < '0' || c > '9') return std::nullopt;
      port = port * 10 + static_cast<unsigned>(c - '0');
      if (port > 65535) return std::nullopt;
    }
    if (port == 0) return std::nullopt;
    t.port = static_cast<std::uint16_t>(port);
  }
  return t;
}

// ---------------------------------------------------------------------------
// Latency histogram: log-linear buckets, 64 per power of two (values below 64
// are exact), so any percentile is within 1/64 of the truth. Fixed size, no
// allocation while recording.

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
  void merge(const LatencyHistogram& other) noexcept {
    for (unsigned i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    max_ = std::max(max_, other.max_);
  }
  void reset() noexcept { *this = LatencyHistogram{}; }

  // "count sum max i:n,i:n,..." (non-empty buckets only), to send a histogram
  // between processes; parse() merges such a text into this one.
  std::string serialize() const {
    std::string out = fmt::format("{} {} {} ", count_, sum_, max_);
    bool first = true;
    for (unsigned i = 0; i < kBuckets; ++i)
      if (counts_[i] != 0) {
        out += fmt::format("{}{}:{}", first ? "" : ",", i, counts_[i]);
        first = false;
      }
    return first ? out + "-" : out;
  }
  bool parse(const std::string& text) {
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

  LatencySummary summary() const {
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

 private:
  static unsigned index(std::uint64_t v) noexcept {
    if (v < kSub) return static_cast<unsigned>(v);
    const unsigned msb = 63u - static_cast<unsigned>(__builtin_clzll(v));  // >= kSubBits
    const unsigned shift = msb - kSubBits;
    return (shift + 1) * kSub + static_cast<unsigned>((v >> shift) & (kSub - 1));
  }
  // Largest value that maps to bucket i.
  static double upper_bound(unsigned i) noexcept {
    if (i < kSub) return i;
    const unsigned shift = i / kSub - 1;
    const std::uint64_t base = (std::uint64_t{kSub} | (i % kSub)) << shift;
    return static_cast<double>(base + ((std::uint64_t{1} << shift) - 1));
  }
  double percentile(double q) const noexcept {
    const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    std::uint64_t seen = 0;
    for (unsigned i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank && counts_[i] != 0) return std::min(upper_bound(i), static_cast<double>(max_));
    }
    return static_cast<double>(max_);
  }

  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t max_ = 0;
};

// Single-writer counter readable from another thread without a locked
// instruction on the writer's side.
class Counter {
 public:
  void add(std::uint64_t n = 1) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::uint64_t get() const noexcept { return value_.load(std::memory_order_relaxed); }
  void reset() noexcept { value_.store(0, std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// ---------------------------------------------------------------------------
// Connection: TCP connect, upgrade, masked frames out, parsed frames in.

class Connection;

// What a scenario does with a connection's events. Called on its worker thread.
class ConnectionEvents {
 public:
  virtual ~ConnectionEvents() = default;
  virtual void on_open(Connection& c) = 0;
  virtual void on_setup_failed(Connection& c, LoadError error, const std::string& detail) = 0;
  virtual void on_message(Connection& c, wire::Opcode op, std::uint8_t* data, std::size_t len) = 0;
  // The write buffer drained (everything queued has been handed to the kernel).
  virtual void on_drained(Connection&) {}
  // The connection is finished. code: close code received (1006 when the TCP
  // connection ended without one); by_us: we started the close handshake.
  virtual void on_closed(Connection& c, std::uint16_t code, bool by_us) = 0;
  virtual void on_protocol_error(Connection& c, std::uint16_t code, const char* reason) = 0;
};

class Connection {
 public:
  enum class State : std::uint8_t { Idle, Connecting, Upgrading, Open, Closing, Closed };

  Connection(net::io_context& ioc, ConnectionEvents& events, std::size_t read_buffer_bytes, std::uint32_t id)
      : socket_(ioc),
        events_(events),
        parser_(wire::Role::Client, wire::ParserLimits{64ull * 1024 * 1024, false}),
        read_buffer_(read_buffer_bytes),
        id_(id) {}

  std::uint32_t id() const noexcept { return id_; }
  State state() const noexcept { return state_; }
  bool open() const noexcept { return state_ == State::Open; }
  std::size_t pending_bytes() const noexcept { return out_pending_.size(); }
  bool writing() const noexcept { return writing_; }

  void start(const tcp::endpoint& endpoint, const WsTarget& target) {
    state_ = State::Connecting;
    target_ = &target;
    socket_.async_connect(endpoint, [this](const boost::system::error_code& ec) { on_connect(ec); });
  }

  // Appends a masked frame; it leaves with the next flush().
  void queue(wire::Opcode op, std::string_view payload) {
    if (state_ != State::Open) return;
    wire::append_frame(out_pending_, op, payload, /*masked=*/true);
  }

  void flush() {
    if (writing_ || out_pending_.empty() || state_ == State::Closed) return;
    writing_ = true;
    out_writing_.swap(out_pending_);
    net::async_write(socket_, net::buffer(out_writing_),
                     [this](const boost::system::error_code& ec, std::size_t) { on_write(ec); });
  }

  // Starts the close handshake (1000); the socket is closed when the server answers.
  void close() {
    if (state_ == State::Open) {
      wire::append_frame(out_pending_, wire::Opcode::Close, wire::close_payload(wire::close_code::normal, {}), true);
      state_ = State::Closing;
      closing_by_us_ = true;
      flush();
    } else if (state_ == State::Connecting || state_ == State::Upgrading || state_ == State::Idle) {
      abort();
    }
  }

  // Drops the TCP connection now.
  void abort() {
    if (state_ == State::Closed) return;
    boost::system::error_code ignored;
    socket_.close(ignored);
    finish(wire::close_code::abnormal);
  }

 private:
  // Frame callbacks from the parser.
  struct Sink {
    Connection& c;
    void on_message(wire::Opcode op, std::uint8_t* data, std::size_t len, bool /*compressed*/) {
      if (c.state_ == State::Open || c.state_ == State::Closing) c.events_.on_message(c, op, data, len);
    }
    void on_ping(const std::uint8_t* data, std::size_t len) {
      if (c.state_ == State::Open)
        wire::append_frame(c.out_pending_, wire::Opcode::Pong,
                           std::string_view(reinterpret_cast<const char*>(data), len), true);
    }
    void on_pong(const std::uint8_t*, std::size_t) {}
    void on_close(std::uint16_t code, std::string_view) { c.peer_close_code_ = code; }
    void on_error(std::uint16_t code, const char* reason) { c.events_.on_protocol_error(c, code, reason); }
  };

  void on_connect(const boost::system::error_code& ec) {
    if (state_ != State::Connecting) return;
    if (ec) {
      state_ = State::Closed;
      events_.on_setup_failed(*this, LoadError::ConnectFailed, ec.message());
      return;
    }
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    state_ = State::Upgrading;
    const std::string key = wire::generate_client_key();
    expected_accept_ = wire::compute_accept_key(key);
    out_writing_ = wire::make_client_request(target_->host_header, target_->path, key, {}, {}, {});
    writing_ = true;
    net::async_write(socket_, net::buffer(out_writing_),
                     [this](const boost::system::error_code& ec, std::size_t) { on_write(ec); });
    read_some();
  }

  void read_some() {
    socket_.async_read_some(net::buffer(read_buffer_),
                            [this](const boost::system::error_code& ec, std::size_t n) { on_read(ec, n); });
  }

  void on_read(const boost::system::error_code& ec, std::size_t n) {
    if (state_ == State::Closed) return;
    if (ec) {
      if (state_ == State::Upgrading) {
        state_ = State::Closed;
        events_.on_setup_failed(*this, LoadError::HandshakeFailed,
                                "connection ended during the upgrade: " + ec.message());
        return;
      }
      abort_with_socket_close();
      return;
    }
    std::uint8_t* data = read_buffer_.data();
    if (state_ == State::Upgrading) {
      // The 101 response is small; keep it until the blank line arrives.
      response_.append(reinterpret_cast<const char*>(data), n);
      const std::size_t end = response_.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (response_.size() > 16384) return fail_upgrade("response header too large");
        return read_some();
      }
      if (const char* problem = check_upgrade_response(std::string_view(response_).substr(0, end + 2)))
        return fail_upgrade(problem);
      const std::size_t header_bytes = end + 4;
      const std::size_t leftover = response_.size() - header_bytes;
      // Frames that arrived with the response are in read_buffer_'s tail.
      data += n - leftover;
      n = leftover;
      std::string().swap(response_);
      state_ = State::Open;
      was_open = true;
      events_.on_open(*this);
      if (state_ != State::Open) return;
    }
    if (n != 0) {
      Sink sink{*this};
      if (!parser_.consume(data, n, sink)) {
        if (parser_.closed()) return on_peer_close();
        // Protocol error: already reported; drop the connection.
        return abort_with_socket_close();
      }
    }
    flush();
    read_some();
  }

  void on_peer_close() {
    if (!closing_by_us_ && state_ == State::Open) {
      // Echo the close (RFC 6455 §5.5.1), then wait for the server to end TCP.
      const std::uint16_t echo =
          peer_close_code_ == wire::close_code::no_status ? wire::close_code::no_status : peer_close_code_;
      wire::append_frame(out_pending_, wire::Opcode::Close, wire::close_payload(echo, {}), true);
      state_ = State::Closing;
    }
    flush();
    // The server closes the TCP connection after the handshake; read until EOF
    // into a scratch buffer (the parser ignores bytes after a close).
    drain_until_eof();
  }

  void drain_until_eof() {
    socket_.async_read_some(net::buffer(read_buffer_), [this](const boost::system::error_code& ec, std::size_t) {
      if (state_ == State::Closed) return;
      if (ec) return abort_with_socket_close();
      drain_until_eof();
    });
  }

  void on_write(const boost::system::error_code& ec) {
    writing_ = false;
    if (state_ == State::Closed) return;
    if (ec) return abort_with_socket_close();
    out_writing_.clear();
    if (!out_pending_.empty()) return flush();
    if (state_ == State::Open) events_.on_drained(*this);
  }

  const char* check_upgrade_response(std::string_view head) const {
    // Status line: "HTTP/1.1 101 ..."
    if (head.substr(0, 12) != "HTTP/1.1 101") return "server did not answer 101 Switching Protocols";
    // Find Sec-WebSocket-Accept case-insensitively.
    std::size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos && pos + 2 < head.size()) {
      const std::size_t line_start = pos + 2;
      const std::size_t line_end = head.find("\r\n", line_start);
      std::string_view line = head.substr(line_start, line_end - line_start);
      const std::size_t colon = line.find(':');
      if (colon != std::string_view::npos) {
        std::string_view name = line.substr(0, colon);
        constexpr std::string_view wanted = "sec-websocket-accept";
        if (name.size() == wanted.size() && std::equal(name.begin(), name.end(), wanted.begin(), [](char a, char b) {
              return std::tolower(static_cast<unsigned char>(a)) == b;
            })) {
          std::string_view value = line.substr(colon + 1);
          while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
          while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
          return value == expected_accept_ ? nullptr : "wrong Sec-WebSocket-Accept";
        }
      }
      pos = line_end;
    }
    return "no Sec-WebSocket-Accept in the response";
  }

  void fail_upgrade(const char* problem) {
    boost::system::error_code ignored;
    socket_.close(ignored);
    state_ = State::Closed;
    std::string first_line = response_.substr(0, response_.find("\r\n"));
    events_.on_setup_failed(*this, LoadError::HandshakeFailed, std::string(problem) + " (" + first_line + ")");
  }

  void abort_with_socket_close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
    finish(peer_close_code_ ? peer_close_code_ : wire::close_code::abnormal);
  }

  void finish(std::uint16_t code) {
    if (state_ == State::Closed) return;
    const bool was_setup = state_ == State::Connecting || state_ == State::Upgrading;
    state_ = State::Closed;
    // Release buffers now: with 10k connections, closed ones should not hold memory.
    std::string().swap(out_pending_);
    if (!writing_) std::string().swap(out_writing_);
    if (was_setup) {
      events_.on_setup_failed(*this, LoadError::ConnectFailed, "aborted during setup");
    } else {
      events_.on_closed(*this, code, closing_by_us_);
    }
  }

  tcp::socket socket_;
  ConnectionEvents& events_;
  wire::Parser parser_;
  std::vector<std::uint8_t> read_buffer_;
  std::string out_pending_;
  std::string out_writing_;
  std::string response_;
  std::string expected_accept_;
  const WsTarget* target_ = nullptr;
  std::uint32_t id_;
  std::uint16_t peer_close_code_ = 0;
  State state_ = State::Idle;
  bool writing_ = false;
  bool closing_by_us_ = false;

 public:
  // Scenario state, kept here to avoid a second allocation per connection.
  std::uint64_t send_seq = 0;          // echo: next sequence number to send
  std::uint64_t recv_seq = 0;          // echo: next echo expected; fanout: next sequence expected
  std::uint64_t received = 0;          // fanout: messages received
  std::vector<std::uint64_t> sent_at;  // echo: send time of in-flight messages, ring of `pipeline`
  std::string payload;                 // echo: payload buffer (pattern after the 8-byte header)
  bool subscriber_done = false;        // fanout
  bool was_open = false;               // the upgrade succeeded at some point
};

// ---------------------------------------------------------------------------
// Worker: one io_context thread and its connections. Setup and teardown are
// shared by all scenarios.

class Worker : public ConnectionEvents {
 public:
  Worker(unsigned index, const WsTarget& target, const tcp::endpoint& endpoint, unsigned concurrency)
      : index_(index), target_(target), endpoint_(endpoint), concurrency_(std::max(1u, concurrency)) {}
  ~Worker() override = default;

  net::io_context& ioc() noexcept { return ioc_; }
  unsigned index() const noexcept { return index_; }

  void add_connections(std::uint32_t first_id, unsigned count, std::size_t read_buffer_bytes) {
    conns_.reserve(conns_.size() + count);
    for (unsigned i = 0; i < count; ++i)
      conns_.push_back(std::make_unique<Connection>(ioc_, *this, read_buffer_bytes, first_id + i));
  }
  std::vector<std::unique_ptr<Connection>>& connections() noexcept { return conns_; }

  void start_thread() {
    work_.emplace(net::make_work_guard(ioc_));
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

  // Opens every connection, at most `concurrency_` at a time.
  void begin_setup() {
    net::post(ioc_, [this] {
      while (in_setup_ < concurrency_ && next_to_start_ < conns_.size()) start_next();
    });
  }

  // Starts the close handshake on every connection; sockets still open after
  // `grace` are dropped. The thread exits once everything is closed.
  void begin_teardown(Milliseconds grace) {
    net::post(ioc_, [this, grace] {
      tearing_down_ = true;
      for (auto& c : conns_) c->close();
      teardown_timer_.expires_after(grace);
      teardown_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        for (auto& c : conns_) c->abort();
      });
      maybe_release();
    });
  }

  // Counters read by the controller.
  std::atomic<unsigned> opened{0};
  std::atomic<unsigned> failed{0};
  std::atomic<unsigned> closed{0};
  Counter messages;  // echoes or deliveries counted in the window
  Counter errors;
  std::mutex detail_mutex;  // guards first_error/first_error_detail (setup only)
  LoadError first_error = LoadError::None;
  std::string first_error_detail;
  std::mutex close_codes_mutex;  // closes are rare; a lock is fine here
  CloseCodeCounts close_codes;
  std::uint64_t protocol_errors = 0;  // read after join

 protected:
  void on_open(Connection&) override {
    opened.fetch_add(1, std::memory_order_relaxed);
    setup_slot_freed();
  }
  void on_setup_failed(Connection&, LoadError error, const std::string& detail) override {
    {
      std::lock_guard lock(detail_mutex);
      if (first_error == LoadError::None) {
        first_error = error;
        first_error_detail = detail;
      }
    }
    failed.fetch_add(1, std::memory_order_relaxed);
    closed.fetch_add(1, std::memory_order_relaxed);
    setup_slot_freed();
    maybe_release();
  }
  void on_closed(Connection&, std::uint16_t code, bool by_us) override {
    if (!by_us || !tearing_down_) {
      std::lock_guard lock(close_codes_mutex);
      ++close_codes[code];
    }
    closed.fetch_add(1, std::memory_order_relaxed);
    maybe_release();
  }
  void on_protocol_error(Connection&, std::uint16_t, const char*) override {
    ++protocol_errors;
    errors.add();
  }

  bool tearing_down_ = false;

 private:
  void start_next() {
    ++in_setup_;
    conns_[next_to_start_++]->start(endpoint_, target_);
  }
  void setup_slot_freed() {
    --in_setup_;
    if (!tearing_down_ && next_to_start_ < conns_.size()) start_next();
  }
  void maybe_release() {
    if (tearing_down_ && closed.load(std::memory_order_relaxed) == conns_.size()) {
      teardown_timer_.cancel();
      work_.reset();
    }
  }

  unsigned index_;
  net::io_context ioc_{1};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::thread thread_;
  const WsTarget& target_;
  tcp::endpoint endpoint_;
  unsigned concurrency_;
  std::vector<std::unique_ptr<Connection>> conns_;
  std::size_t next_to_start_ = 0;
  unsigned in_setup_ = 0;
  net::steady_timer teardown_timer_{ioc_};
};

// ---------------------------------------------------------------------------
// Controller helpers shared by the scenarios.

struct Setup {
  LoadError error = LoadError::None;
  std::string detail;
  WsTarget target;
  tcp::endpoint endpoint;
};

Setup resolve(const ConnectOptions& options, std::uint64_t connections_needed) {
  Setup s;
  auto target = parse_target(options.url);
  if (!target) {
    s.error = LoadError::BadUrl;
    s.detail = "expected ws://host:port/path, got \"" + options.url + "\"";
    return s;
  }
  s.target = *target;
  const std::uint64_t limit = raise_file_limit();
  // A few descriptors for stdio, epoll, eventfds and /proc reads.
  if (connections_needed + 32 > limit) {
    s.error = LoadError::ResourceLimit;
    s.detail = fmt::format(
        "{} connections need more file descriptors than RLIMIT_NOFILE ({}) allows; "
        "split the load over several processes",
        connections_needed, limit);
    return s;
  }
  try {
    net::io_context ioc;
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(s.target.host, std::to_string(s.target.port));
    if (results.empty()) throw std::runtime_error("no address");
    s.endpoint = results.begin()->endpoint();
  } catch (const std::exception& e) {
    s.error = LoadError::ConnectFailed;
    s.detail = "cannot resolve " + s.target.host + ": " + e.what();
  }
  return s;
}

bool cancelled(const ConnectOptions& o) { return o.cancel && o.cancel->load(std::memory_order_relaxed); }

// Waits until every connection is open or failed (or the deadline passes).
// Returns the number opened.
template <class WorkerPtrs>
unsigned wait_for_setup(const ConnectOptions& options, WorkerPtrs& workers, std::uint64_t total, LoadError& error,
                        std::string& detail, std::uint64_t& failures) {
  const auto deadline = Clock::now() + options.connect_timeout;
  for (;;) {
    unsigned opened = 0, failed = 0;
    for (auto& w : workers) {
      opened += w->opened.load();
      failed += w->failed.load();
    }
    if (opened + failed >= total || Clock::now() >= deadline || cancelled(options)) {
      failures = failed + (total - opened - failed);
      if (opened < total) {
        error = LoadError::ConnectFailed;
        detail = fmt::format("{} of {} connections opened", opened, total);
        for (auto& w : workers) {
          std::lock_guard lock(w->detail_mutex);
          if (w->first_error != LoadError::None) {
            error = w->first_error;
            detail += ": " + w->first_error_detail;
            break;
          }
        }
        if (opened + failed < total) detail += " (setup timed out)";
      }
      return opened;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

template <class WorkerPtrs>
void teardown(WorkerPtrs& workers) {
  for (auto& w : workers) w->begin_teardown(Milliseconds(3000));
  for (auto& w : workers) w->join();
}

template <class WorkerPtrs>
CloseCodeCounts merged_close_codes(WorkerPtrs& workers) {
  CloseCodeCounts out;
  for (auto& w : workers) {
    std::lock_guard lock(w->close_codes_mutex);
    for (auto [code, n] : w->close_codes) out[code] += n;
  }
  return out;
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// ---------------------------------------------------------------------------
// Echo scenario.

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
  EchoWorker(unsigned index, const WsTarget& target, const tcp::endpoint& endpoint, const EchoLoadOptions& options,
             double rate_share)
      : Worker(index, target, endpoint, options.connect_concurrency / std::max(1u, options.threads)),
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
  void begin_window() {
    net::post(ioc(), [this] {
      histogram_.reset();
      messages.reset();
      bytes_ = 0;
      mismatches_ = 0;
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
      // An echo for something we never sent.
      ++mismatches_;
      errors.add();
      return;
    }
    const std::uint64_t seq = c.recv_seq++;
    const bool ok = len == options_.size && op == (options_.binary ? wire::Opcode::Binary : wire::Opcode::Text) &&
                    header_matches(data, len, seq, options_.binary) &&
                    (len <= 8 || std::memcmp(data + 8, c.payload.data() + 8, len - 8) == 0);
    if (!ok) {
      ++mismatches_;
      errors.add();
    }
    if (counting_) {
      histogram_.record(now - c.sent_at[seq % options_.pipeline]);
      messages.add();
      bytes_ += len;
    }
    if (sending_ && options_.rate <= 0) send_next(c, now);  // flushed after this read batch
  }

  void on_closed(Connection& c, std::uint16_t code, bool by_us) override {
    if (!tearing_down_) ++closed_early_;
    if (!tearing_down_) errors.add();
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

// Calls progress about once a second until `until` returns true; returns
// early when cancelled.
template <class Counted, class Until>
void run_progress_loop(const ConnectOptions& options, const ProgressCallback& progress, Clock::time_point start,
                       bool measuring, unsigned connections, Counted counted, Until until) {
  auto last_report = Clock::now();
  std::uint64_t last_count = counted().first;
  while (!until() && !cancelled(options)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const auto now = Clock::now();
    if (progress && now - last_report >= std::chrono::seconds(1)) {
      auto [count, errs] = counted();
      Progress p;
      p.elapsed_seconds = seconds_between(start, now);
      p.measuring = measuring;
      p.connections = connections;
      p.messages = count;
      p.errors = errs;
      p.recent_rate = static_cast<double>(count - last_count) / seconds_between(last_report, now);
      progress(p);
      last_report = now;
      last_count = count;
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Public entry points.

std::string_view to_string(LoadError error) {
  switch (error) {
    case LoadError::None:
      return "none";
    case LoadError::BadUrl:
      return "bad URL";
    case LoadError::BadOptions:
      return "bad options";
    case LoadError::ConnectFailed:
      return "connect failed";
    case LoadError::HandshakeFailed:
      return "handshake failed";
    case LoadError::Timeout:
      return "timeout";
    case LoadError::ResourceLimit:
      return "resource limit";
    case LoadError::WorkerFailed:
      return "worker process failed";
  }
  return "unknown";
}

std::uint64_t raise_file_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  return lim.rlim_cur;
}

namespace {

// Sum of the CPU time of every thread of pid, from /proc/PID/task/*/schedstat
// (nanoseconds, field 1). Preferred over /proc/PID/stat, whose clock ticks
// (10 ms) are too coarse for the sub-second windows a fast server needs.
double schedstat_cpu_seconds(int pid) {
  std::error_code ec;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  std::uint64_t total_ns = 0;
  bool any = false;
  for (const auto& entry : std::filesystem::directory_iterator(tasks, ec)) {
    std::ifstream in(entry.path() / "schedstat");
    std::uint64_t ns = 0;
    if (in >> ns) {
      total_ns += ns;
      any = true;
    }
  }
  return any && !ec ? static_cast<double>(total_ns) / 1e9 : -1;
}

double stat_cpu_seconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  // The command name (field 2) may contain spaces; fields after it are plain.
  const std::size_t paren = line.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream rest(line.substr(paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Fields 3..13 come before utime (14) and stime (15).
  for (int i = 3; i <= 13; ++i) rest >> field;
  rest >> utime >> stime;
  if (!rest) return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace

double process_cpu_seconds(int pid) {
  const double precise = schedstat_cpu_seconds(pid);
  return precise >= 0 ? precise : stat_cpu_seconds(pid);
}

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
    workers.push_back(std::make_unique<EchoWorker>(t, setup.target, setup.endpoint, options, share));
    workers.back()->add_connections(next_id, count, read_buffer);
    next_id += count;
  }
  const auto start = Clock::now();
  for (auto& w : workers) {
    w->start_thread();
    w->begin_setup();
  }
  report.connections =
      wait_for_setup(options, workers, options.connections, report.error, report.error_detail, report.connect_failures);
  auto counted = [&] {
    std::uint64_t m = 0, e = 0;
    for (auto& w : workers) {
      m += w->messages.get();
      e += w->errors.get();
    }
    return std::pair{m, e};
  };
  if (report.error == LoadError::None && !cancelled(options)) {
    for (auto& w : workers) w->start_sending();
    if (options.warmup.count() > 0) {
      const auto warm_end = Clock::now() + options.warmup;
      run_progress_loop(options, progress, start, false, report.connections, counted,
                        [&] { return Clock::now() >= warm_end; });
    }
    const double cpu_before = options.server_pid > 0 ? process_cpu_seconds(options.server_pid) : -1;
    for (auto& w : workers) w->begin_window();
    const auto window_end = Clock::now() + options.duration;
    run_progress_loop(options, progress, start, true, report.connections, counted,
                      [&] { return Clock::now() >= window_end; });
    std::vector<std::promise<void>> ended(workers.size());
    for (std::size_t i = 0; i < workers.size(); ++i) workers[i]->end_window(ended[i]);
    for (auto& p : ended) p.get_future().wait();
    const double cpu_after = options.server_pid > 0 ? process_cpu_seconds(options.server_pid) : -1;
    if (cpu_before >= 0 && cpu_after >= 0) report.server_cpu_seconds = cpu_after - cpu_before;
  }
  teardown(workers);

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
  report.seconds = window;
  report.latency = merged.summary();
  report.close_codes = merged_close_codes(workers);
  if (window > 0) report.messages_per_second = static_cast<double>(report.messages) / window;
  if (report.server_cpu_seconds > 0)
    report.messages_per_server_cpu_second = static_cast<double>(report.messages) / report.server_cpu_seconds;
  return report;
}

// ---------------------------------------------------------------------------
// Fanout scenario.

namespace {

// Message layout: [0..8) sequence number, [8..16) publish time (steady_clock
// ns, comparable across processes on one machine), then a fixed pattern.
constexpr std::size_t kFanoutHeader = 16;
// Descriptors kept free in a process of a multi-process fanout run (publisher,
// stdio, pipes, epoll, /proc reads).
constexpr std::uint64_t kFanoutProcessMargin = 64;

char fanout_pattern_byte(std::size_t i) { return static_cast<char>((i * 13 + 5) & 0xFF); }

struct FanoutShared {
  explicit FanoutShared(std::uint64_t messages) : received(messages) {}
  // Subscribers that received message k; the window waits on these.
  std::vector<std::atomic<std::uint32_t>> received;
  // Subscribers still connected; the window compares against this, so a
  // subscriber closed by the server (slow consumer) does not stall the run.
  std::atomic<std::uint32_t> alive{0};
  std::atomic<std::uint32_t> finished{0};  // subscribers done (got the last message, or closed)
  std::atomic<std::uint64_t> first_publish_ns{0};
  std::atomic<std::uint64_t> last_delivery_ns{0};
  // Worker process of a multi-process run (run_fanout_worker): window progress
  // goes to the parent as "progress N" lines on progress_fd instead of to a
  // local publisher. N = messages every live subscriber here has received.
  int progress_fd = -1;
  std::atomic<bool> started{false};
  std::mutex progress_mutex;
  std::uint64_t watermark = 0;  // guarded by progress_mutex
};

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

class FanoutWorker final : public Worker {
 public:
  FanoutWorker(unsigned index, const WsTarget& target, const tcp::endpoint& endpoint, const FanoutLoadOptions& options,
               FanoutShared& shared)
      : Worker(index, target, endpoint, options.connect_concurrency / std::max(1u, options.threads)),
        options_(options),
        shared_(shared),
        pattern_(options.size, '\0') {
    for (std::size_t i = kFanoutHeader; i < pattern_.size(); ++i) pattern_[i] = fanout_pattern_byte(i);
  }

  void set_publisher(Connection* publisher, FanoutWorker* publisher_worker) {
    publisher_ = publisher;
    publisher_worker_ = publisher_worker;
  }

  void start_publishing() {
    net::post(ioc(), [this] {
      publishing_ = true;
      shared_.first_publish_ns.store(now_ns());
      publish();
    });
  }

  // A message reached every live subscriber (or one left): the window may move.
  void window_moved() {
    if (shared_.progress_fd >= 0) {
      report_progress();
    } else if (publisher_worker_ == this) {
      publish();
    } else {
      net::post(publisher_worker_->ioc(), [w = publisher_worker_] { w->publish(); });
    }
  }

  // Worker process: sends "progress N" when the local watermark moved.
  void report_progress() {
    if (!shared_.started.load()) return;
    std::lock_guard lock(shared_.progress_mutex);
    const std::uint32_t alive = shared_.alive.load(std::memory_order_acquire);
    std::uint64_t wm = shared_.watermark;
    while (wm < options_.messages && shared_.received[wm].load() >= alive) ++wm;
    if (wm == shared_.watermark) return;
    shared_.watermark = wm;
    write_all(shared_.progress_fd, fmt::format("progress {}\n", wm));
  }

  // Parent of worker processes: the publisher waits on the subscribers'
  // progress reported by the workers (the lowest watermark of them all).
  void enable_remote_window() { remote_window_ = true; }
  void remote_progress(std::uint64_t watermark) {
    remote_watermark_ = watermark;
    publish();
  }

  const LatencyHistogram& histogram() const noexcept { return histogram_; }
  std::uint64_t gaps = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t corrupt = 0;
  std::uint64_t publisher_echoes = 0;
  std::uint64_t published = 0;

 protected:
  void on_message(Connection& c, wire::Opcode, std::uint8_t* data, std::size_t len) override {
    if (&c == publisher_) {
      ++publisher_echoes;
      return;
    }
    const std::uint64_t now = now_ns();
    if (len < kFanoutHeader || len != options_.size ||
        std::memcmp(data + kFanoutHeader, pattern_.data() + kFanoutHeader, len - kFanoutHeader) != 0) {
      ++corrupt;
      errors.add();
      return;
    }
    std::uint64_t seq, sent;
    std::memcpy(&seq, data, 8);
    std::memcpy(&sent, data + 8, 8);
    if (seq >= options_.messages) {
      ++corrupt;
      errors.add();
      return;
    }
    if (seq < c.recv_seq) {
      ++out_of_order;
      errors.add();
      return;
    }
    if (seq > c.recv_seq) {
      gaps += seq - c.recv_seq;
      errors.add();
    }
    c.recv_seq = seq + 1;
    ++c.received;
    histogram_.record(now - sent);
    messages.add();
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

  void on_drained(Connection& c) override {
    if (&c == publisher_) publish();
  }

  void on_closed(Connection& c, std::uint16_t code, bool by_us) override {
    if (&c != publisher_ && !c.subscriber_done && !tearing_down_) {
      shared_.alive.fetch_sub(1, std::memory_order_acq_rel);
      subscriber_finished(c);
      if (options_.window > 0) window_moved();
    }
    Worker::on_closed(c, code, by_us);
  }

 public:
  void finalize() {
    // Messages a subscriber never received at all (after its last one).
    for (auto& c : connections())
      if (c.get() != publisher_ && c->was_open) gaps += options_.messages - std::min(options_.messages, c->recv_seq);
    std::uint64_t last = shared_.last_delivery_ns.load();
    while (last_delivery_ns_ > last && !shared_.last_delivery_ns.compare_exchange_weak(last, last_delivery_ns_)) {
    }
  }

  // Publisher side (runs on the publisher's worker).
  void publish() {
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
      std::memcpy(pattern_.data(), &next_seq_, 8);
      std::memcpy(pattern_.data() + 8, &now, 8);
      publisher_->queue(wire::Opcode::Binary, pattern_);
      ++next_seq_;
      ++published;
      publisher_next_.store(next_seq_);
    }
    publisher_->flush();
  }

 private:
  std::uint64_t publisher_next_hint() const noexcept { return publisher_worker_->publisher_next_.load(); }

  void subscriber_finished(Connection& c) {
    if (c.subscriber_done) return;
    c.subscriber_done = true;
    shared_.finished.fetch_add(1, std::memory_order_acq_rel);
  }

  const FanoutLoadOptions& options_;
  FanoutShared& shared_;
  std::string pattern_;  // the publisher's payload buffer; the reference pattern for subscribers
  Connection* publisher_ = nullptr;
  FanoutWorker* publisher_worker_ = nullptr;
  LatencyHistogram histogram_;
  bool publishing_ = false;
  std::uint64_t next_seq_ = 0;
  std::atomic<std::uint64_t> publisher_next_{0};
  std::uint64_t last_delivery_ns_ = 0;
  bool remote_window_ = false;
  std::uint64_t remote_watermark_ = 0;
};

FanoutLoadReport run_fanout_processes(const FanoutLoadOptions& options, unsigned processes,
                                      const ProgressCallback& progress);

// Processes to spread the subscribers over (1 = all in this process).
unsigned fanout_processes(const FanoutLoadOptions& options) {
  if (options.processes > 0) return options.processes;
  if (options.worker_command.empty()) return 1;
  const std::uint64_t limit = raise_file_limit();
  if (std::uint64_t{options.subscribers} + kFanoutProcessMargin <= limit) return 1;
  const std::uint64_t capacity = limit > kFanoutProcessMargin ? limit - kFanoutProcessMargin : 1;
  return static_cast<unsigned>((options.subscribers + capacity - 1) / capacity);
}

// Deliveries per second over first publish → last delivery (steady-clock ns),
// and per server-CPU-second when the server's CPU time was measured.
void add_rates(FanoutLoadReport& report, std::uint64_t first_publish_ns, std::uint64_t last_delivery_ns) {
  if (last_delivery_ns > first_publish_ns && first_publish_ns != 0) {
    report.seconds = static_cast<double>(last_delivery_ns - first_publish_ns) / 1e9;
    report.deliveries_per_second = static_cast<double>(report.deliveries) / report.seconds;
  }
  if (report.server_cpu_seconds > 0)
    report.deliveries_per_server_cpu_second = static_cast<double>(report.deliveries) / report.server_cpu_seconds;
}

// Sums the subscriber-side counts of finished fan-out workers into a report
// (this process's FanoutLoadReport, or a worker process's report to its
// parent) and merges their latency histograms into merged.
template <class Report, class WorkerPtrs>
void add_subscriber_counts(WorkerPtrs& workers, Report& r, LatencyHistogram& merged) {
  for (auto& w : workers) {
    w->finalize();
    merged.merge(w->histogram());
    r.deliveries += w->messages.get();
    r.gaps += w->gaps;
    r.out_of_order += w->out_of_order;
    r.corrupt += w->corrupt;
    r.protocol_errors += w->protocol_errors;
  }
}

}  // namespace

FanoutLoadReport run_fanout_load(const FanoutLoadOptions& options, const ProgressCallback& progress) {
  FanoutLoadReport report;
  if (options.subscribers == 0 || options.threads == 0 || options.size < kFanoutHeader || options.messages == 0) {
    report.error = LoadError::BadOptions;
    report.error_detail = "subscribers, threads and messages must be at least 1 and size at least 16 bytes";
    return report;
  }
  if (const unsigned processes = fanout_processes(options); processes > 1)
    return run_fanout_processes(options, processes, progress);
  const std::uint64_t total = std::uint64_t{options.subscribers} + 1;
  Setup setup = resolve(options, total);
  if (setup.error != LoadError::None) {
    report.error = setup.error;
    report.error_detail = setup.detail;
    return report;
  }
  FanoutShared shared(options.messages);
  const unsigned threads = options.threads;
  std::vector<std::unique_ptr<FanoutWorker>> workers;
  std::uint32_t next_id = 0;
  for (unsigned t = 0; t < threads; ++t) {
    // Worker 0 also hosts the publisher (its first connection).
    unsigned count = options.subscribers / threads + (t < options.subscribers % threads ? 1 : 0);
    if (t == 0) ++count;
    workers.push_back(std::make_unique<FanoutWorker>(t, setup.target, setup.endpoint, options, shared));
    workers.back()->add_connections(next_id, count, 8 * 1024);
    next_id += count;
  }
  Connection* publisher = workers[0]->connections()[0].get();
  for (auto& w : workers) w->set_publisher(publisher, workers[0].get());

  const auto start = Clock::now();
  for (auto& w : workers) {
    w->start_thread();
    w->begin_setup();
  }
  const unsigned opened =
      wait_for_setup(options, workers, total, report.error, report.error_detail, report.connect_failures);
  report.subscribers = opened > 0 ? opened - 1 : 0;
  report.expected_deliveries = std::uint64_t{options.subscribers} * options.messages;
  auto counted = [&] {
    std::uint64_t m = 0, e = 0;
    for (auto& w : workers) {
      m += w->messages.get();
      e += w->errors.get();
    }
    return std::pair{m, e};
  };
  if (report.error == LoadError::None && !cancelled(options)) {
    shared.alive.store(options.subscribers);
    const double cpu_before = options.server_pid > 0 ? process_cpu_seconds(options.server_pid) : -1;
    workers[0]->start_publishing();
    const auto deadline = Clock::now() + options.timeout;
    bool timed_out = false;
    run_progress_loop(options, progress, start, true, opened, counted, [&] {
      if (shared.finished.load() >= options.subscribers) return true;
      if (Clock::now() >= deadline) return timed_out = true;
      return false;
    });
    const double cpu_after = options.server_pid > 0 ? process_cpu_seconds(options.server_pid) : -1;
    if (cpu_before >= 0 && cpu_after >= 0) report.server_cpu_seconds = cpu_after - cpu_before;
    if (timed_out) {
      report.error = LoadError::Timeout;
      report.error_detail = fmt::format("not every subscriber received all {} messages within {} ms", options.messages,
                                        options.timeout.count());
    }
  }
  teardown(workers);

  LatencyHistogram merged;
  add_subscriber_counts(workers, report, merged);
  for (auto& w : workers) {
    report.publisher_echoes += w->publisher_echoes;
    report.messages_published += w->published;
  }
  if (report.subscribers == 0) report.gaps = 0;  // nothing ran
  report.latency = merged.summary();
  report.close_codes = merged_close_codes(workers);
  add_rates(report, shared.first_publish_ns.load(), shared.last_delivery_ns.load());
  return report;
}

// ---------------------------------------------------------------------------
// Fanout over several processes.
//
// The parent (run_fanout_processes) opens only the publisher and starts K
// worker processes (options.worker_command), each holding a share of the
// subscribers. Text lines over the workers' stdin/stdout:
//
//   parent → worker  config SUBSCRIBERS SIZE MESSAGES WINDOW THREADS TIMEOUT_MS CONNECT_TIMEOUT_MS CONCURRENCY URL
//   worker → parent  ready OPENED FAILED ERROR DETAIL          (all its subscribers are open, or setup failed)
//   parent → worker  start                                     (every worker is ready; publishing begins)
//   worker → parent  progress N                                (every live subscriber here has messages 0..N-1)
//   worker → parent  report SUBSCRIBERS FAILED DELIVERIES GAPS OUT_OF_ORDER CORRUPT PROTOCOL_ERRORS LAST_NS ERROR
//                           CLOSE_CODES HIST_COUNT HIST_SUM HIST_MAX HIST_BUCKETS DETAIL
//   parent → worker  stop                                      (end early; EOF on stdin means the same)
//
// The publisher sends message k once every worker's watermark is above
// k - window, which is what the single-process window means: every live
// subscriber has received message k - window. Publish timestamps are
// steady_clock (CLOCK_MONOTONIC), comparable across processes, so the workers
// measure publish → receive latency themselves and send their histograms,
// which the parent merges bucket by bucket.

namespace {

// Reads lines from a file descriptor with a bounded wait.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  // nullopt on EOF, error, timeout or cancel.
  std::optional<std::string> read_line(Milliseconds wait, const std::atomic<bool>* cancel) {
    const auto deadline = Clock::now() + wait;
    for (;;) {
      if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      if (eof_ || Clock::now() >= deadline || (cancel && cancel->load())) return std::nullopt;
      if (!poll_read(100)) continue;
    }
  }
  // Waits up to timeout_ms for input; false when nothing arrived. Sets eof().
  bool poll_read(int timeout_ms) {
    pollfd pfd{fd_, POLLIN, 0};
    const int r = ::poll(&pfd, 1, timeout_ms);
    if (r < 0 && errno == EINTR) return false;
    if (r <= 0) {
      if (r < 0) eof_ = true;
      return false;
    }
    char buf[4096];
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) return false;
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  bool eof() const noexcept { return eof_; }
  bool has_line() const noexcept { return buffer_.find('\n') != std::string::npos; }

 private:
  int fd_;
  std::string buffer_;
  bool eof_ = false;
};

std::string one_line(std::string text) {
  for (char& ch : text)
    if (ch == '\n' || ch == '\r') ch = ' ';
  return text;
}

std::string codes_to_text(const CloseCodeCounts& codes) {
  std::string out;
  for (auto [code, n] : codes) out += fmt::format("{}{}:{}", out.empty() ? "" : ",", code, n);
  return out.empty() ? "-" : out;
}

bool codes_from_text(const std::string& text, CloseCodeCounts& codes) {
  if (text == "-") return true;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    unsigned code = 0;
    unsigned long long n = 0;
    if (std::sscanf(item.c_str(), "%u:%llu", &code, &n) != 2 || code > 65535) return false;
    codes[static_cast<std::uint16_t>(code)] += n;
  }
  return true;
}

LoadError load_error_from(unsigned value) {
  return value <= static_cast<unsigned>(LoadError::WorkerFailed) ? static_cast<LoadError>(value)
                                                                 : LoadError::BadOptions;
}

// Rest of the stream after the next space (the free-text DETAIL field).
std::string rest_of(std::istringstream& in) {
  std::string rest;
  std::getline(in, rest);
  if (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
  return rest;
}

struct SubscriberProcess {
  unsigned index = 0;
  unsigned share = 0;  // subscribers it opens
  pid_t pid = -1;
  int to_child = -1;  // its stdin
  std::unique_ptr<net::posix::stream_descriptor> from_child;
  std::string buffer;                       // io thread only
  std::atomic<std::uint64_t> watermark{0};  // written by the io thread
  std::mutex mutex;                         // guards what follows
  bool ready = false;
  bool reported = false;
  bool eof = false;
  unsigned opened = 0;
  std::uint64_t failed = 0;
  LoadError error = LoadError::None;
  std::string detail;
  FanoutLoadReport report;  // counts from its report line
  LatencyHistogram histogram;
  std::uint64_t last_delivery_ns = 0;
  std::string bad_line;  // the first line that could not be parsed
  int exit_status = -1;  // waitpid status once reaped
};

class SubscriberProcesses {
 public:
  SubscriberProcesses(std::vector<std::unique_ptr<SubscriberProcess>>& procs, FanoutWorker& publisher_worker)
      : procs_(procs), worker_(publisher_worker) {}

  void start_reading() {
    for (auto& p : procs_) read_line(*p);
  }
  void close_all() {
    for (auto& p : procs_) {
      boost::system::error_code ignored;
      p->from_child->close(ignored);
    }
  }

 private:
  void read_line(SubscriberProcess& p) {
    net::async_read_until(*p.from_child, net::dynamic_buffer(p.buffer), '\n',
                          [this, &p](const boost::system::error_code& ec, std::size_t n) {
                            if (ec) {
                              std::lock_guard lock(p.mutex);
                              p.eof = true;
                              return;
                            }
                            std::string line = p.buffer.substr(0, n - 1);
                            p.buffer.erase(0, n);
                            handle(p, line);
                            read_line(p);
                          });
  }

  void handle(SubscriberProcess& p, const std::string& line) {
    std::istringstream in(line);
    std::string kind;
    in >> kind;
    if (kind == "progress") {
      std::uint64_t n = 0;
      if (in >> n) {
        p.watermark.store(n);
        std::uint64_t low = std::numeric_limits<std::uint64_t>::max();
        for (auto& q : procs_) low = std::min(low, q->watermark.load());
        worker_.remote_progress(low);
        return;
      }
    } else if (kind == "ready") {
      unsigned opened = 0, error = 0;
      std::uint64_t failed = 0;
      if (in >> opened >> failed >> error) {
        std::lock_guard lock(p.mutex);
        p.opened = opened;
        p.failed = failed;
        p.error = load_error_from(error);
        p.detail = rest_of(in);
        p.ready = true;
        return;
      }
    } else if (kind == "report") {
      FanoutLoadReport r;
      std::uint64_t last = 0;
      unsigned error = 0;
      std::string codes, hist[4];
      if (in >> r.subscribers >> r.connect_failures >> r.deliveries >> r.gaps >> r.out_of_order >> r.corrupt >>
          r.protocol_errors >> last >> error >> codes >> hist[0] >> hist[1] >> hist[2] >> hist[3]) {
        r.error = load_error_from(error);
        r.error_detail = rest_of(in);
        LatencyHistogram h;
        if (codes_from_text(codes, r.close_codes) && h.parse(hist[0] + " " + hist[1] + " " + hist[2] + " " + hist[3])) {
          std::lock_guard lock(p.mutex);
          p.report = std::move(r);
          p.histogram = h;
          p.last_delivery_ns = last;
          p.reported = true;
          return;
        }
      }
    }
    std::lock_guard lock(p.mutex);
    if (p.bad_line.empty()) p.bad_line = line.substr(0, 200);
  }

  std::vector<std::unique_ptr<SubscriberProcess>>& procs_;
  FanoutWorker& worker_;
};

// Starts argv with its stdin and stdout connected to new pipes; "" or an error message.
std::string spawn_worker(const std::vector<std::string>& command, SubscriberProcess& p, net::io_context& ioc) {
  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    const int e = errno;
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    return std::string("pipe: ") + std::strerror(e);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);  // the parent ignores it; a worker dies of it when the parent is gone
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> argv;
  for (const auto& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const int rc = ::posix_spawn(&p.pid, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (rc != 0) {
    p.pid = -1;
    ::close(in_pipe[1]);
    ::close(out_pipe[0]);
    return fmt::format("cannot start worker process {}: {}", command[0], std::strerror(rc));
  }
  p.to_child = in_pipe[1];
  p.from_child = std::make_unique<net::posix::stream_descriptor>(ioc, out_pipe[0]);
  return {};
}

// Reaps every started worker: waits up to `grace` for them to exit, then kills
// the rest by PID (SIGKILL) and reaps them too.
void reap_workers(std::vector<std::unique_ptr<SubscriberProcess>>& procs, Milliseconds grace) {
  for (auto& p : procs)
    if (p->to_child >= 0) {
      ::close(p->to_child);  // EOF on its stdin: a worker still running stops
      p->to_child = -1;
    }
  const auto deadline = Clock::now() + grace;
  for (;;) {
    bool running = false;
    for (auto& p : procs) {
      if (p->pid <= 0) continue;
      int status = 0;
      const pid_t r = ::waitpid(p->pid, &status, WNOHANG);
      if (r == p->pid || (r < 0 && errno == ECHILD)) {
        p->exit_status = status;
        p->pid = -1;
      } else {
        running = true;
      }
    }
    if (!running) return;
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& p : procs) {
    if (p->pid <= 0) continue;
    ::kill(p->pid, SIGKILL);
    int status = 0;
    while (::waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
    }
    p->exit_status = status;
    p->pid = -1;
  }
}

std::string describe_exit(int status) {
  if (status < 0) return "not reaped";
  if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return "ended";
}

}  // namespace

namespace {

FanoutLoadReport run_fanout_processes(const FanoutLoadOptions& options, unsigned processes,
                                      const ProgressCallback& progress) {
  FanoutLoadReport report;
  report.processes = processes;
  if (options.worker_command.empty() || processes > options.subscribers) {
    report.error = LoadError::BadOptions;
    report.error_detail = options.worker_command.empty()
                              ? "splitting subscribers over processes needs a worker command"
                              : fmt::format("{} processes need at least {} subscribers", processes, processes);
    return report;
  }
  Setup setup = resolve(options, 1);  // this process opens the publisher only
  if (setup.error != LoadError::None) {
    report.error = setup.error;
    report.error_detail = setup.detail;
    return report;
  }
  const std::uint64_t limit = raise_file_limit();
  const unsigned largest = (options.subscribers + processes - 1) / processes;
  if (largest + kFanoutProcessMargin > limit) {
    report.error = LoadError::ResourceLimit;
    report.error_detail = fmt::format(
        "{} subscribers per process need more file descriptors than RLIMIT_NOFILE ({}) allows; use more processes",
        largest, limit);
    return report;
  }
  // A worker that died must show up as EPIPE on its stdin, not kill us.
  std::signal(SIGPIPE, SIG_IGN);

  FanoutShared shared(options.messages);
  std::vector<std::unique_ptr<FanoutWorker>> workers;
  workers.push_back(std::make_unique<FanoutWorker>(0, setup.target, setup.endpoint, options, shared));
  workers[0]->add_connections(0, 1, 8 * 1024);
  workers[0]->set_publisher(workers[0]->connections()[0].get(), workers[0].get());
  workers[0]->enable_remote_window();

  std::vector<std::unique_ptr<SubscriberProcess>> procs;
  std::string problem;
  for (unsigned i = 0; i < processes && problem.empty(); ++i) {
    auto p = std::make_unique<SubscriberProcess>();
    p->index = i;
    p->share = options.subscribers / processes + (i < options.subscribers % processes ? 1 : 0);
    problem = spawn_worker(options.worker_command, *p, workers[0]->ioc());
    if (!problem.empty()) break;
    const std::string config =
        fmt::format("config {} {} {} {} {} {} {} {} {}\n", p->share, options.size, options.messages, options.window,
                    options.threads, options.timeout.count(), options.connect_timeout.count(),
                    // the same number of connects in flight in total as one process would have
                    std::max(1u, options.connect_concurrency / processes), options.url);
    procs.push_back(std::move(p));
    if (!write_all(procs.back()->to_child, config))
      problem = fmt::format("worker process {} did not take its configuration: {}", i, std::strerror(errno));
  }
  SubscriberProcesses channel(procs, *workers[0]);
  channel.start_reading();

  const auto start = Clock::now();
  workers[0]->start_thread();
  workers[0]->begin_setup();
  LoadError error = problem.empty() ? LoadError::None : LoadError::WorkerFailed;
  int dead_worker = -1;  // a worker that ended without its report: its exit status goes into the detail

  // Setup: the publisher and every worker's subscribers connected.
  if (error == LoadError::None) {
    const auto deadline = Clock::now() + options.connect_timeout + Milliseconds(5000);
    for (;;) {
      bool all_ready = true;
      for (auto& p : procs) {
        std::lock_guard lock(p->mutex);
        if (p->ready) continue;
        all_ready = false;
        if (p->eof && problem.empty()) {
          error = LoadError::WorkerFailed;
          dead_worker = static_cast<int>(p->index);
          problem = fmt::format("worker process {} ended during setup{}", p->index,
                                p->bad_line.empty() ? "" : " (said \"" + p->bad_line + "\")");
        }
      }
      const bool publisher_done = workers[0]->opened.load() + workers[0]->failed.load() >= 1;
      if (!problem.empty() || (all_ready && publisher_done) || cancelled(options)) break;
      if (Clock::now() >= deadline) {
        problem = fmt::format("setup timed out after {} ms", options.connect_timeout.count());
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!problem.empty() && error == LoadError::None) error = LoadError::ConnectFailed;
    if (workers[0]->failed.load() > 0) {
      std::lock_guard lock(workers[0]->detail_mutex);
      ++report.connect_failures;
      if (problem.empty()) {
        error = workers[0]->first_error;
        problem = "the publisher could not connect: " + workers[0]->first_error_detail;
      }
    }
    for (auto& p : procs) {
      std::lock_guard lock(p->mutex);
      if (!p->ready) {
        report.connect_failures += p->share;
        continue;
      }
      report.subscribers += p->opened;
      report.connect_failures += p->share - std::min<std::uint64_t>(p->share, p->opened);
      if (p->opened < p->share && problem.empty()) {
        error = p->error != LoadError::None ? p->error : LoadError::ConnectFailed;
        problem = p->detail.empty()
                      ? fmt::format("worker process {}: {} of {} subscribers opened", p->index, p->opened, p->share)
                      : fmt::format("worker process {}: {}", p->index, p->detail);
      }
    }
  }
  report.expected_deliveries = std::uint64_t{options.subscribers} * options.messages;

  // Run: start every worker, publish, wait for every worker's report.
  if (error == LoadError::None && !cancelled(options)) {
    const double cpu_before = options.server_pid > 0 ? process_cpu_seconds(options.server_pid) : -1;
    for (auto& p : procs) write_all(p->to_child, "start\n");
    workers[0]->start_publishing();
    // Workers give up after `timeout` themselves and report; the grace covers their teardown.
    const auto deadline = Clock::now() + options.timeout + Milliseconds(10000);
    auto counted = [&] {
      std::uint64_t m = 0;
      for (auto& p : procs) m += p->watermark.load() * p->share;
      return std::pair{m, std::uint64_t{0}};
    };
    run_progress_loop(options, progress, start, true, report.subscribers, counted, [&] {
      bool all = true;
      for (auto& p : procs) {
        std::lock_guard lock(p->mutex);
        if (p->reported) continue;
        all = false;
        if (p->eof) {
          if (problem.empty()) {
            error = LoadError::WorkerFailed;
            dead_worker = static_cast<int>(p->index);
            problem = fmt::format("worker process {} ended without a report", p->index);
          }
          return true;
        }
      }
      if (all) return true;
      if (Clock::now() >= deadline) {
        problem = fmt::format("worker processes did not report within {} ms", (options.timeout.count() + 10000));
        error = LoadError::Timeout;
        return true;
      }
      return false;
    });
    const double cpu_after = options.server_pid > 0 ? process_cpu_seconds(options.server_pid) : -1;
    if (cpu_before >= 0 && cpu_after >= 0) report.server_cpu_seconds = cpu_after - cpu_before;
    if (!problem.empty() && error == LoadError::None) error = LoadError::WorkerFailed;
  }

  // Ask workers still running to stop and report (bounded), then reap them all.
  for (auto& p : procs) write_all(p->to_child, "stop\n");
  {
    const auto deadline = Clock::now() + Milliseconds(5000);
    for (;;) {
      bool waiting = false;
      for (auto& p : procs) {
        std::lock_guard lock(p->mutex);
        if (!p->reported && !p->eof) waiting = true;
      }
      if (!waiting || Clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  net::post(workers[0]->ioc(), [&channel] { channel.close_all(); });
  teardown(workers);
  reap_workers(procs, Milliseconds(5000));
  if (dead_worker >= 0)
    problem += " (" + describe_exit(procs[static_cast<std::size_t>(dead_worker)]->exit_status) + ")";

  // Merge.
  LatencyHistogram merged;
  std::uint64_t last = 0;
  CloseCodeCounts codes = merged_close_codes(workers);
  workers[0]->finalize();
  report.protocol_errors = workers[0]->protocol_errors;
  report.publisher_echoes = workers[0]->publisher_echoes;
  report.messages_published = workers[0]->published;
  for (auto& p : procs) {
    std::lock_guard lock(p->mutex);
    if (!p->reported) {
      if (problem.empty()) {
        error = LoadError::WorkerFailed;
        problem = fmt::format("worker process {} sent no report ({})", p->index, describe_exit(p->exit_status));
      }
      continue;
    }
    const FanoutLoadReport& r = p->report;
    merged.merge(p->histogram);
    last = std::max(last, p->last_delivery_ns);
    report.deliveries += r.deliveries;
    report.gaps += r.gaps;
    report.out_of_order += r.out_of_order;
    report.corrupt += r.corrupt;
    report.protocol_errors += r.protocol_errors;
    for (auto [code, n] : r.close_codes) codes[code] += n;
    if (r.error != LoadError::None && problem.empty()) {
      error = r.error;
      problem = fmt::format("worker process {}: {}", p->index, r.error_detail);
    }
  }
  report.error = error;
  report.error_detail = problem;
  if (report.subscribers == 0 || shared.first_publish_ns.load() == 0) report.gaps = 0;  // nothing ran
  report.latency = merged.summary();
  report.close_codes = codes;
  add_rates(report, shared.first_publish_ns.load(), last);
  return report;
}

}  // namespace

int run_fanout_worker(int in_fd, int out_fd, const std::atomic<bool>* cancel) {
  LineReader input(in_fd);
  FanoutLoadOptions o;
  o.cancel = cancel;
  {
    const auto line = input.read_line(Milliseconds(30000), cancel);
    std::istringstream in(line.value_or(""));
    std::string kind;
    long long timeout_ms = 0, connect_ms = 0;
    if (!(in >> kind >> o.subscribers >> o.size >> o.messages >> o.window >> o.threads >> timeout_ms >> connect_ms >>
          o.connect_concurrency >> o.url) ||
        kind != "config") {
      std::fprintf(stderr, "conduit fanout worker: no valid configuration on stdin\n");
      return 2;
    }
    o.timeout = Milliseconds(timeout_ms);
    o.connect_timeout = Milliseconds(connect_ms);
  }
  FanoutLoadReport r;
  LatencyHistogram merged;
  std::uint64_t last = 0;
  auto send_report = [&] {
    write_all(out_fd, fmt::format("report {} {} {} {} {} {} {} {} {} {} {} {}\n", r.subscribers, r.connect_failures,
                                  r.deliveries, r.gaps, r.out_of_order, r.corrupt, r.protocol_errors, last,
                                  static_cast<unsigned>(r.error), codes_to_text(r.close_codes), merged.serialize(),
                                  one_line(r.error_detail)));
  };
  Setup setup;
  if (o.subscribers == 0 || o.threads == 0 || o.size < kFanoutHeader || o.messages == 0) {
    setup.error = LoadError::BadOptions;
    setup.detail = "bad configuration";
  } else {
    setup = resolve(o, o.subscribers);
  }
  if (setup.error != LoadError::None) {
    r.error = setup.error;
    r.error_detail = setup.detail;
    r.connect_failures = o.subscribers;
    write_all(out_fd, fmt::format("ready 0 {} {} {}\n", o.subscribers, static_cast<unsigned>(r.error),
                                  one_line(r.error_detail)));
    send_report();
    return 1;
  }

  FanoutShared shared(o.messages);
  shared.progress_fd = out_fd;
  std::vector<std::unique_ptr<FanoutWorker>> workers;
  const unsigned threads = std::min(o.threads, o.subscribers);
  std::uint32_t next_id = 0;
  for (unsigned t = 0; t < threads; ++t) {
    const unsigned count = o.subscribers / threads + (t < o.subscribers % threads ? 1 : 0);
    workers.push_back(std::make_unique<FanoutWorker>(t, setup.target, setup.endpoint, o, shared));
    workers.back()->add_connections(next_id, count, 8 * 1024);
    next_id += count;
  }
  // No publisher here; worker 0 stands in as the "publisher worker" whose
  // position is 0, so every complete message reports progress.
  for (auto& w : workers) w->set_publisher(nullptr, workers[0].get());
  for (auto& w : workers) {
    w->start_thread();
    w->begin_setup();
  }
  r.subscribers = wait_for_setup(o, workers, o.subscribers, r.error, r.error_detail, r.connect_failures);
  write_all(out_fd, fmt::format("ready {} {} {} {}\n", r.subscribers, r.connect_failures,
                                static_cast<unsigned>(r.error), one_line(r.error_detail)));
  if (r.error == LoadError::None) {
    const auto line = input.read_line(o.connect_timeout + Milliseconds(10000), cancel);
    if (line && *line == "start") {
      shared.alive.store(r.subscribers);
      shared.started.store(true);
      workers[0]->report_progress();
      const auto deadline = Clock::now() + o.timeout;
      for (;;) {
        if (shared.finished.load() >= o.subscribers) break;
        if (Clock::now() >= deadline) {
          r.error = LoadError::Timeout;
          r.error_detail =
              fmt::format("not every subscriber received all {} messages within {} ms", o.messages, o.timeout.count());
          break;
        }
        if (cancelled(o)) break;
        input.poll_read(5);
        if (input.eof() || input.has_line()) break;  // "stop" or the parent is gone
      }
    }
  }
  teardown(workers);
  add_subscriber_counts(workers, r, merged);
  if (!shared.started.load()) r.gaps = 0;  // nothing was published to these subscribers
  r.close_codes = merged_close_codes(workers);
  last = shared.last_delivery_ns.load();
  send_report();
  return 0;
}

// ---------------------------------------------------------------------------
// Idle connections.

namespace {
class IdleWorker final : public Worker {
 public:
  using Worker::Worker;

 protected:
  void on_message(Connection&, wire::Opcode, std::uint8_t*, std::size_t) override {}
};
}  // namespace

IdleLoadReport run_idle_load(const IdleLoadOptions& options,
                             const std::function<void(const IdleLoadReport&)>& on_ready) {
  IdleLoadReport report;
  if (options.connections == 0 || options.threads == 0) {
    report.error = LoadError::BadOptions;
    report.error_detail = "connections and threads must be at least 1";
    if (on_ready) on_ready(report);
    return report;
  }
  Setup setup = resolve(options, options.connections);
  if (setup.error != LoadError::None) {
    report.error = setup.error;
    report.error_detail = setup.detail;
    if (on_ready) on_ready(report);
    return report;
  }
  const unsigned threads = std::min(options.threads, options.connections);
  std::vector<std::unique_ptr<IdleWorker>> workers;
  std::uint32_t next_id = 0;
  for (unsigned t = 0; t < threads; ++t) {
    const unsigned count = options.connections / threads + (t < options.connections % threads ? 1 : 0);
    workers.push_back(
        std::make_unique<IdleWorker>(t, setup.target, setup.endpoint, options.connect_concurrency / threads));
    // Idle connections only see the 101 and the odd ping.
    workers.back()->add_connections(next_id, count, 1024);
    next_id += count;
  }
  const auto start = Clock::now();
  for (auto& w : workers) {
    w->start_thread();
    w->begin_setup();
  }
  report.connections =
      wait_for_setup(options, workers, options.connections, report.error, report.error_detail, report.connect_failures);
  report.connect_seconds = seconds_between(start, Clock::now());
  if (on_ready) on_ready(report);
  if (report.error == LoadError::None) {
    const auto hold_end = Clock::now() + options.hold;
    while (!cancelled(options) && (options.hold.count() == 0 || Clock::now() < hold_end))
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  teardown(workers);
  report.close_codes = merged_close_codes(workers);
  return report;
}

// ---------------------------------------------------------------------------
// Formatting.

namespace {

std::string json_escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20)
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(ch)));
        else
          out += ch;
    }
  }
  return out;
}

std::string json_latency(const LatencySummary& l) {
  return fmt::format(
      R"({{"count":{},"mean_us":{:.2f},"p50_us":{:.2f},"p90_us":{:.2f},"p99_us":{:.2f},"p999_us":{:.2f},"max_us":{:.2f}}})",
      l.count, l.mean_us, l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us);
}

std::string json_close_codes(const CloseCodeCounts& codes) {
  std::string out = "{";
  for (auto [code, n] : codes) out += fmt::format("{}\"{}\":{}", out.size() > 1 ? "," : "", code, n);
  return out + "}";
}

std::string text_close_codes(const CloseCodeCounts& codes) {
  if (codes.empty()) return "none";
  std::string out;
  for (auto [code, n] : codes) out += fmt::format("{}{}: {}", out.empty() ? "" : ", ", code, n);
  return out;
}

std::string text_error(LoadError error, const std::string& detail) {
  if (error == LoadError::None) return {};
  return fmt::format("error:         {}: {}\n", to_string(error), detail);
}

}  // namespace

std::string format_report(const EchoLoadReport& r) {
  std::string out = text_error(r.error, r.error_detail);
  out += fmt::format("connections:   {} ({} failed)\n", r.connections, r.connect_failures);
  out += fmt::format("messages:      {} in {:.2f} s = {:.0f} msg/s\n", r.messages, r.seconds, r.messages_per_second);
  out += fmt::format("latency (us):  p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  p99.9 {:.1f}  max {:.1f}\n", r.latency.p50_us,
                     r.latency.p90_us, r.latency.p99_us, r.latency.p999_us, r.latency.max_us);
  out += fmt::format("errors:        {} mismatched, {} protocol, {} closed early, {} rate misses\n", r.mismatches,
                     r.protocol_errors, r.closed_early, r.rate_misses);
  out += fmt::format("server closes: {}\n", text_close_codes(r.close_codes));
  if (r.server_cpu_seconds >= 0)
    out += fmt::format("server CPU:    {:.2f} s = {:.0f} msg per server-CPU-second\n", r.server_cpu_seconds,
                       r.messages_per_server_cpu_second);
  return out;
}

std::string format_report(const FanoutLoadReport& r) {
  std::string out = text_error(r.error, r.error_detail);
  out += fmt::format("subscribers:   {} ({} failed){}\n", r.subscribers, r.connect_failures,
                     r.processes > 1 ? fmt::format(" in {} worker processes", r.processes) : std::string());
  out += fmt::format("deliveries:    {} of {} in {:.2f} s = {:.0f} deliveries/s ({} published)\n", r.deliveries,
                     r.expected_deliveries, r.seconds, r.deliveries_per_second, r.messages_published);
  out += fmt::format("latency (us):  p50 {:.1f}  p90 {:.1f}  p99 {:.1f}  max {:.1f}\n", r.latency.p50_us,
                     r.latency.p90_us, r.latency.p99_us, r.latency.max_us);
  out += fmt::format("order:         {} missing, {} out of order, {} corrupt, {} protocol errors\n", r.gaps,
                     r.out_of_order, r.corrupt, r.protocol_errors);
  out += fmt::format("server closes: {}\n", text_close_codes(r.close_codes));
  if (r.server_cpu_seconds >= 0)
    out += fmt::format("server CPU:    {:.2f} s = {:.0f} deliveries per server-CPU-second\n", r.server_cpu_seconds,
                       r.deliveries_per_server_cpu_second);
  return out;
}

std::string to_json(const EchoLoadReport& r) {
  return fmt::format(
      R"({{"scenario":"echo","error":"{}","error_detail":"{}","connections":{},"connect_failures":{},)"
      R"("seconds":{:.4f},"messages":{},"messages_per_second":{:.1f},"bytes":{},"latency":{},"mismatches":{},)"
      R"("protocol_errors":{},"closed_early":{},"rate_misses":{},"close_codes":{},"server_cpu_seconds":{:.3f},)"
      R"("messages_per_server_cpu_second":{:.1f}}})",
      to_string(r.error), json_escape(r.error_detail), r.connections, r.connect_failures, r.seconds, r.messages,
      r.messages_per_second, r.bytes, json_latency(r.latency), r.mismatches, r.protocol_errors, r.closed_early,
      r.rate_misses, json_close_codes(r.close_codes), r.server_cpu_seconds, r.messages_per_server_cpu_second);
}

std::string to_json(const FanoutLoadReport& r) {
  return fmt::format(
      R"({{"scenario":"fanout","error":"{}","error_detail":"{}","subscribers":{},"connect_failures":{},)"
      R"("messages_published":{},"deliveries":{},"expected_deliveries":{},"seconds":{:.4f},)"
      R"("deliveries_per_second":{:.1f},"latency":{},"gaps":{},"out_of_order":{},"corrupt":{},"protocol_errors":{},)"
      R"("publisher_echoes":{},"close_codes":{},"server_cpu_seconds":{:.3f},"deliveries_per_server_cpu_second":{:.1f},)"
      R"("processes":{}}})",
      to_string(r.error), json_escape(r.error_detail), r.subscribers, r.connect_failures, r.messages_published,
      r.deliveries, r.expected_deliveries, r.seconds, r.deliveries_per_second, json_latency(r.latency), r.gaps,
      r.out_of_order, r.corrupt, r.protocol_errors, r.publisher_echoes, json_close_codes(r.close_codes),
      r.server_cpu_seconds, r.deliveries_per_server_cpu_second, r.processes);
}

std::string to_json(const IdleLoadReport& r) {
  return fmt::format(R"({{"scenario":"idle","error":"{}","error_detail":"{}","connections":{},"connect_failures":{},)"
                     R"("connect_seconds":{:.3f},"close_codes":{}}})",
                     to_string(r.error), json_escape(r.error_detail), r.connections, r.connect_failures,
                     r.connect_seconds, json_close_codes(r.close_codes));
}

}  // namespace conduit::load
