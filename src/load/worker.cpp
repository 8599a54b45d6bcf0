#include "load/worker.hpp"

#include <fmt/format.h>

#include <boost/asio/post.hpp>

namespace conduit::load {

void Worker::add_connections(std::uint32_t first_id, unsigned count, std::size_t read_buffer_bytes) {
  conns_.reserve(conns_.size() + count);
  for (unsigned i = 0; i < count; ++i)
    conns_.push_back(std::make_unique<Connection>(ioc_, *this, target_, read_buffer_bytes, first_id + i));
}

void Worker::start_thread() {
  work_.emplace(net::make_work_guard(ioc_));
  thread_ = std::thread([this] { ioc_.run(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::begin_setup() {
  net::post(ioc_, [this] {
    while (in_setup_ < concurrency_ && next_to_start_ < conns_.size()) start_next();
  });
}

void Worker::begin_teardown(Milliseconds grace) {
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

void Worker::on_open(Connection&) {
  opened.fetch_add(1, std::memory_order_relaxed);
  setup_slot_freed();
}

void Worker::on_setup_failed(Connection&, LoadError error, const std::string& detail) {
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

void Worker::on_closed(Connection&, std::uint16_t code, bool by_us) {
  if (!by_us || !tearing_down_) {
    std::lock_guard lock(close_codes_mutex);
    ++close_codes[code];
  }
  closed.fetch_add(1, std::memory_order_relaxed);
  maybe_release();
}

void Worker::on_protocol_error(Connection&, std::uint16_t, const char*) {
  ++protocol_errors;
  errors.inc();
}

void Worker::start_next() {
  ++in_setup_;
  conns_[next_to_start_++]->start();
}

void Worker::setup_slot_freed() {
  --in_setup_;
  if (!tearing_down_ && next_to_start_ < conns_.size()) start_next();
}

void Worker::maybe_release() {
  if (tearing_down_ && closed.load(std::memory_order_relaxed) == conns_.size()) {
    teardown_timer_.cancel();
    work_.reset();
  }
}

Setup resolve(const ConnectOptions& options, std::uint64_t connections_needed) {
  Setup s;
  auto url = client_detail::parse_ws_url(options.url);
  if (!url) {
    s.error = LoadError::BadUrl;
    s.detail = "expected ws://host[:port]/path or wss://..., got \"" + options.url + "\"";
    return s;
  }
  s.target.url = std::move(*url);
  if (s.target.url.secure) {
    namespace ssl = net::ssl;
    s.tls = std::make_unique<ssl::context>(ssl::context::tls_client);
    s.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                       ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    if (!options.ca_file.empty()) {
      s.tls->load_verify_file(options.ca_file, ec);
      if (ec) {
        s.error = LoadError::BadOptions;
        s.detail = "cannot load CA file " + options.ca_file + ": " + ec.message();
        return s;
      }
    } else if (!options.insecure) {
      s.tls->set_default_verify_paths(ec);
      if (ec) {
        s.error = LoadError::BadOptions;
        s.detail = "cannot load the system certificate store: " + ec.message();
        return s;
      }
    }
    s.target.tls = s.tls.get();
    s.target.verify_peer = !options.insecure;
  }
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
    auto results = resolver.resolve(s.target.url.host, std::to_string(s.target.url.port));
    if (results.empty()) throw std::runtime_error("no address");
    s.target.endpoint = results.begin()->endpoint();
  } catch (const std::exception& e) {
    s.error = LoadError::ConnectFailed;
    s.detail = "cannot resolve " + s.target.url.host + ": " + e.what();
  }
  return s;
}

SetupOutcome start_and_wait_for_setup(const ConnectOptions& options, const std::vector<Worker*>& workers,
                                      std::uint64_t total) {
  for (Worker* w : workers) {
    w->start_thread();
    w->begin_setup();
  }
  return wait_for_setup(options, workers, total);
}

Counted count_all(const std::vector<Worker*>& workers) {
  Counted c;
  for (Worker* w : workers) {
    c.messages += w->messages.get();
    c.errors += w->errors.get();
  }
  return c;
}

SetupOutcome wait_for_setup(const ConnectOptions& options, const std::vector<Worker*>& workers, std::uint64_t total) {
  SetupOutcome out;
  const auto deadline = Clock::now() + options.connect_timeout;
  for (;;) {
    unsigned opened = 0, failed = 0;
    for (Worker* w : workers) {
      opened += w->opened.load();
      failed += w->failed.load();
    }
    if (opened + failed >= total || Clock::now() >= deadline || cancelled(options)) {
      out.opened = opened;
      out.failures = failed + (total - opened - failed);
      if (opened < total) {
        out.error = LoadError::ConnectFailed;
        out.detail = fmt::format("{} of {} connections opened", opened, total);
        for (Worker* w : workers) {
          std::lock_guard lock(w->detail_mutex);
          if (w->first_error != LoadError::None) {
            out.error = w->first_error;
            out.detail += ": " + w->first_error_detail;
            break;
          }
        }
        if (opened + failed < total) out.detail += " (setup timed out)";
      }
      return out;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void teardown(const std::vector<Worker*>& workers) {
  for (Worker* w : workers) w->begin_teardown(Milliseconds(3000));
  for (Worker* w : workers) w->join();
}

CloseCodeCounts merged_close_codes(const std::vector<Worker*>& workers) {
  CloseCodeCounts out;
  for (Worker* w : workers) {
    std::lock_guard lock(w->close_codes_mutex);
    for (auto [code, n] : w->close_codes) out[code] += n;
  }
  return out;
}

}  // namespace conduit::load
