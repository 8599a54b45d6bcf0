#include "server/server_core.hpp"

#include "ops/log.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "server/tls.hpp"

namespace conduit::server {

namespace {
wire::DeflateConfig deflate_from(const CompressionOptions& c) {
  wire::DeflateConfig d;
  d.enabled = c.enabled;
  d.server_no_context_takeover = c.server_no_context_takeover;
  d.client_no_context_takeover = c.client_no_context_takeover;
  d.server_max_window_bits = c.server_max_window_bits;
  d.client_max_window_bits = c.client_max_window_bits;
  d.level = c.level;
  d.min_compress_bytes = c.min_compress_bytes;
  return d;
}

unsigned loop_count(const ServerOptions& o) {
  return o.threads == 0 ? std::max(1u, std::thread::hardware_concurrency()) : o.threads;
}
}  // namespace

ServerCore::ServerCore(ServerOptions options, ServerHandlers handlers)
    : options_(std::move(options)),
      handlers_(std::move(handlers)),
      policy_(options_),
      deflate_(deflate_from(options_.compression)),
      admission_(options_.max_connections_per_ip > 0),
      everyone_(std::make_shared<GroupState>(loop_count(options_))) {
  if (!options_.tls.cert_file.empty() || !options_.tls.key_file.empty()) {
    if (options_.tls.cert_file.empty() || options_.tls.key_file.empty()) {
      throw std::runtime_error("tls.cert and tls.key must be set together");
    }
    tls_ = std::make_unique<TlsContext>(options_.tls);
  }
  // Sweep often enough that every deadline is honoured within a quarter of
  // its length, but not more than every 5 ms nor less than once a second.
  std::int64_t shortest = options_.handshake_timeout.count();
  auto consider = [&](std::int64_t v) {
    if (v > 0 && v < shortest) shortest = v;
  };
  consider(options_.close_timeout.count());
  consider(options_.heartbeat.ping_interval.count());
  consider(options_.heartbeat.pong_timeout.count());
  sweep_ms_ = std::clamp<std::int64_t>(shortest / 4, 5, 1000);
  const unsigned n = loop_count(options_);
  for (unsigned i = 0; i < n; ++i) loops_.push_back(std::make_unique<Loop>(*this, i));
  add_builtin_routes();
}

ServerCore::~ServerCore() {
  abort();
  wait();
}

void ServerCore::add_builtin_routes() {
  conduit::HttpRoute healthz{"GET", "/healthz", PathMatch::Exact, [](const HttpRequest&) {
                               return HttpResponse{200, "text/plain", {}, "ok\n"};
                             }};
  conduit::HttpRoute readyz{"GET", "/readyz", PathMatch::Exact, [this](const HttpRequest&) {
                              if (draining()) return HttpResponse{503, "text/plain", {}, "draining\n"};
                              for (const auto& check : readiness_checks_) {
                                std::string why = check();
                                if (!why.empty()) return HttpResponse{503, "text/plain", {}, why + "\n"};
                              }
                              return HttpResponse{200, "text/plain", {}, "ready\n"};
                            }};
  conduit::HttpRoute metrics{"GET", "/metrics", PathMatch::Exact, [this](const HttpRequest&) {
                               return HttpResponse{200, "text/plain; version=0.0.4", {}, metrics_text()};
                             }};
  routes_.add(std::move(healthz));
  routes_.add(std::move(readyz));
  routes_.add(std::move(metrics));
}

void ServerCore::add_route(conduit::HttpRoute route) {
  if (started_.load()) throw std::logic_error("Server::add_route: routes must be added before start()");
  if (!route.handler && !route.async_handler) throw std::invalid_argument("Server::add_route: a route needs a handler");
  routes_.add(std::move(route));
}

void ServerCore::add_end_of_batch_hook(std::function<void(unsigned)> hook) {
  if (started_.load()) throw std::logic_error("Server::add_end_of_batch_hook: hooks must be added before start()");
  for (auto& l : loops_) {
    Loop* loop = l.get();
    loop->add_hook([hook, loop] { hook(loop->index()); });
  }
}

void ServerCore::add_close_hook(std::function<void(Session&)> hook) {
  if (started_.load()) throw std::logic_error("Server::add_close_hook: hooks must be added before start()");
  close_hooks_.push_back(std::move(hook));
}

void ServerCore::add_metrics_source(std::function<void(std::string&)> append) {
  if (started_.load()) throw std::logic_error("Server::add_metrics_source: sources must be added before start()");
  metrics_sources_.push_back(std::move(append));
}

void ServerCore::add_readiness_check(std::function<std::string()> check) {
  if (started_.load()) throw std::logic_error("Server::add_readiness_check: checks must be added before start()");
  readiness_checks_.push_back(std::move(check));
}

void ServerCore::count_labeled_refusal(std::string_view label) {
  static constexpr std::size_t max_labels = 64;
  bool valid = !label.empty() && label.size() <= 64;
  for (char c : label) valid = valid && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  std::lock_guard lock(labeled_mutex_);
  auto it = labeled_refusals_.find(label);
  if (it != labeled_refusals_.end()) {
    ++it->second;
  } else if (valid && labeled_refusals_.size() < max_labels) {
    labeled_refusals_.emplace(std::string(label), 1);
  } else {
    ++labeled_refusals_[to_string(HandshakeFailure::RefusedByHook)];
  }
}

bool ServerCore::post(unsigned loop_index, std::function<void()> fn) {
  if (loop_index >= loops_.size() || stopped_.load()) return false;
  loops_[loop_index]->post(std::move(fn));
  return true;
}

void ServerCore::publish(const std::shared_ptr<GroupState>& group, std::string_view data, MessageType type,
                         const Session* except) {
  net::EventLoop* current = net::EventLoop::current();
  for (auto& l : loops_) {
    if (l.get() == current) {
      l->fanout().publish(group, data, type, except);
      return;
    }
  }
  publish_from_outside(*this, group, data, type, except);
}

void ServerCore::start() {
  if (started_.exchange(true)) return;
  listener_ =
      Listener::open(*this, *loops_[0], options_.host, options_.port, options_.backlog, "server.listen", false, port_);
  if (!options_.metrics_host.empty()) {
    metrics_listener_ = Listener::open(*this, *loops_[0], options_.metrics_host, options_.metrics_port,
                                       options_.backlog, "metrics.listen", true, metrics_port_);
  }
  for (auto& l : loops_) {
    Loop* loop = l.get();
    loop->post([loop] { loop->start_sweep(); });
    loop->thread() = std::thread([loop] {
      if (int err = loop->run(); err != 0) {
        // Never expected: this loop's sessions no longer make progress. Say so loudly.
        ops::logger().critical("event=loop_failed loop={} reason=\"epoll_wait: {}\"", loop->index(),
                               std::strerror(err));
      }
    });
  }
}

std::uint64_t ServerCore::connection_accepted() noexcept {
  live_.fetch_add(1, std::memory_order_relaxed);
  return next_id_.fetch_add(1, std::memory_order_relaxed);
}

Loop& ServerCore::next_loop() noexcept {
  Loop& l = *loops_[next_loop_];
  next_loop_ = (next_loop_ + 1) % loops_.size();
  return l;
}

void ServerCore::on_connection_finished() {
  live_.fetch_sub(1, std::memory_order_relaxed);
  if (draining()) check_drained();
}

void ServerCore::check_drained() {
  if (!draining() || stopped_.load()) return;
  if (live_.load() != 0) return;
  // Every connection has finished: stop the loops (from any loop thread).
  if (stopped_.exchange(true)) return;
  for (auto& l : loops_) {
    Loop* loop = l.get();
    loop->post([loop, this] { halt_loop(*loop); });
  }
}

// On the loop's own thread: close the listeners (loop 0) and let run()
// return; pending timers (sweep, grace, accept retry) die with the loop.
void ServerCore::halt_loop(Loop& loop) {
  if (loop.index() == 0) {
    if (listener_) listener_->close();
    if (metrics_listener_) metrics_listener_->close();
  }
  loop.stop();
}

void ServerCore::stop() {
  if (!started_.load() || draining_.exchange(true)) return;
  ops::logger().info("event=shutdown_started open_connections={} grace_ms={}", open_count(),
                     options_.shutdown_grace.count());
  // New upgrade attempts keep being accepted and are answered 503 while we drain.
  for (auto& l : loops_) {
    Loop* loop = l.get();
    loop->post([loop] { loop->for_each_connection([](Connection& c) { c.go_away(); }); });
  }
  Loop* first = loops_[0].get();
  first->post([this, first] {
    first->schedule(options_.shutdown_grace.count(), [this] {
      if (stopped_.load()) return;
      ops::logger().warn("event=shutdown_grace_expired remaining={}", live_.load());
      abort();
    });
    check_drained();
  });
}

void ServerCore::abort() {
  if (!started_.load() || stopped_.exchange(true)) return;
  draining_.store(true);
  for (auto& l : loops_) {
    Loop* loop = l.get();
    loop->post([this, loop] {
      loop->for_each_connection([](Connection& c) { c.abort_connection(); });
      halt_loop(*loop);
    });
  }
}

void ServerCore::wait() {
  for (auto& l : loops_) {
    if (l->thread().joinable()) {
      if (l->thread().get_id() == std::this_thread::get_id()) continue;
      l->thread().join();
    }
  }
}

std::string ServerCore::metrics_text() const {
  std::vector<const ServerCounters*> all;
  for (const auto& l : loops_) all.push_back(&l->counters());
  std::map<std::string, std::uint64_t, std::less<>> labeled;
  {
    std::lock_guard lock(labeled_mutex_);
    labeled = labeled_refusals_;
  }
  std::string out = render_metrics(all, labeled);
  for (const auto& source : metrics_sources_) source(out);
  return out;
}

}  // namespace conduit::server
