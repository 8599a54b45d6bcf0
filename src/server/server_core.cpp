#include "server/server_core.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>

#include "ops/log.hpp"
#include "server/tls.hpp"
#include "wire/frame.hpp"

namespace conduit::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
constexpr std::size_t kBatchBufferBytes = 64 * 1024;

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

// Walks the frames of a run we framed ourselves (unmasked, FIN, no RSV).
template <class Fn>
void for_each_frame(const std::uint8_t* p, std::size_t len, Fn&& fn) {
  std::size_t off = 0;
  while (off + 2 <= len) {
    std::uint8_t op = p[off] & 0x0F;
    std::uint64_t plen = p[off + 1] & 0x7F;
    std::size_t h = 2;
    if (plen == 126) {
      plen = (std::uint64_t(p[off + 2]) << 8) | p[off + 3];
      h = 4;
    } else if (plen == 127) {
      plen = 0;
      for (int i = 0; i < 8; ++i) plen = (plen << 8) | p[off + 2 + i];
      h = 10;
    }
    fn(static_cast<wire::Opcode>(op), std::string_view(reinterpret_cast<const char*>(p + off + h), plen));
    off += h + plen;
  }
}
}  // namespace

// ---------------------------------------------------------------- Loop

void Loop::add(Connection* c) noexcept {
  c->prev_ = nullptr;
  c->next_ = head_;
  if (head_) head_->prev_ = c;
  head_ = c;
  ++count_;
}

void Loop::remove(Connection* c) noexcept {
  if (c->prev_) {
    c->prev_->next_ = c->next_;
  } else if (head_ == c) {
    head_ = c->next_;
  } else {
    return;  // not linked
  }
  if (c->next_) c->next_->prev_ = c->prev_;
  c->prev_ = c->next_ = nullptr;
  --count_;
}

void Loop::push_dirty(std::shared_ptr<Connection> c) { dirty_.push_back(std::move(c)); }

void Loop::schedule_flush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  post([this] { flush_dirty(); });
}

void Loop::flush_dirty() {
  flush_posted_ = false;
  // Broadcast runs for other loops: one post per destination per flush.
  if (!outbox_.empty()) {
    for (std::size_t i = 0; i < outbox_.size(); ++i) {
      if (outbox_[i].empty()) continue;
      Loop* dest = core_.loops_[i].get();
      dest->post([dest, runs = std::move(outbox_[i])] {
        dest->batch([&] {
          for (const BroadcastRun& r : runs) {
            dest->deliver_run(r.buf, r.begin, r.end, r.messages);
            r.buf->release();
          }
        });
      });
      outbox_[i].clear();
    }
  }
  while (!dirty_.empty()) {
    flushing_.swap(dirty_);
    for (auto& c : flushing_) {
      if (c->dirty()) c->flush();
    }
    flushing_.clear();
  }
}

void Loop::deliver_run(net::FrameBuffer* buf, std::uint32_t begin, std::uint32_t end, std::uint32_t messages) {
  for (Connection* c = head_; c;) {
    Connection* next = c->next_;  // delivery may close c (slow consumer) but never unlinks it here
    if (c->state() == Connection::State::Open) {
      if (c->compressed()) {
        for_each_frame(buf->data() + begin, end - begin, [c](wire::Opcode op, std::string_view payload) {
          c->send(payload, op == wire::Opcode::Text ? MessageType::Text : MessageType::Binary);
        });
      } else {
        c->deliver_shared(buf, begin, end, messages);
      }
    }
    c = next;
  }
}

void Loop::broadcast_local(std::string_view data, MessageType type) {
  // Frame once into the loop's batch buffer; every subscriber's queue gets a
  // reference to the same bytes (and extends its tail node when this frame
  // directly follows the previous one).
  std::uint8_t header[wire::max_header_size];
  std::size_t hlen = wire::write_header(header, type == MessageType::Text ? wire::Opcode::Text : wire::Opcode::Binary,
                                        true, false, data.size(), nullptr);
  std::size_t total = hlen + data.size();
  if (!batch_ || batch_->room() < total) {
    if (batch_) batch_->release();
    batch_ = net::FrameBuffer::create(total > kBatchBufferBytes ? total : kBatchBufferBytes);
  }
  std::uint32_t begin = batch_->size;
  std::memcpy(batch_->data() + begin, header, hlen);
  std::memcpy(batch_->data() + begin + hlen, data.data(), data.size());
  batch_->size += static_cast<std::uint32_t>(total);
  std::uint32_t end = batch_->size;
  deliver_run(batch_, begin, end, 1);
  if (core_.loops_.size() > 1) {
    if (outbox_.size() != core_.loops_.size()) outbox_.resize(core_.loops_.size());
    for (std::size_t i = 0; i < outbox_.size(); ++i) {
      if (i == index()) continue;
      auto& box = outbox_[i];
      if (!box.empty() && box.back().buf == batch_ && box.back().end == begin) {
        box.back().end = end;
        ++box.back().messages;
      } else {
        batch_->add_ref();
        box.push_back({batch_, begin, end, 1});
      }
    }
  }
  if (!in_batch) schedule_flush();
}

void Loop::start_sweep() {
  schedule(core_.sweep_interval_ms(), [this] {
    std::int64_t now = now_ms();
    batch([&] { for_each_connection([now](Connection& c) { c.sweep(now); }); });
    release_retired();
    core_.check_drained();
    if (!core_.stopped_.load()) start_sweep();
  });
}

// ---------------------------------------------------------------- ServerCore

ServerCore::ServerCore(ServerOptions options, ServerHandlers handlers)
    : options_(std::move(options)),
      handlers_(std::move(handlers)),
      policy_(options_),
      deflate_(deflate_from(options_.compression)) {
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
}

ServerCore::~ServerCore() {
  abort();
  wait();
  for (auto& l : loops_) {
    if (l->batch_) l->batch_->release();
    for (auto& box : l->outbox_) {
      for (auto& r : box) r.buf->release();
    }
  }
}

void ServerCore::start() {
  if (started_.exchange(true)) return;
  // The library's logger is created on first use; make that happen here,
  // before the loop threads exist, not concurrently on two of them.
  ops::logger();
  unsigned n = options_.threads == 0 ? std::max(1u, std::thread::hardware_concurrency()) : options_.threads;
  for (unsigned i = 0; i < n; ++i) loops_.push_back(std::make_unique<Loop>(*this, i));
  listener_ = listen_on(options_.host, options_.port, "server.listen", false, port_);
  if (!options_.metrics_host.empty()) {
    metrics_listener_ = listen_on(options_.metrics_host, options_.metrics_port, "metrics.listen", true, metrics_port_);
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

// Binds a non-blocking listening socket and watches it on loop 0. Throws
// std::system_error naming the option when the address is bad or taken.
std::unique_ptr<Listener> ServerCore::listen_on(const std::string& host, std::uint16_t port, const char* key,
                                                bool metrics_only, std::uint16_t& bound_port) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) throw std::system_error(ec, std::string(key) + ": bad address '" + host + "'");
  tcp::endpoint ep(addr, port);
  int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), std::string(key) + ": socket");
  auto fail = [&](const std::string& what) {
    int err = errno;
    ::close(fd);
    throw std::system_error(err, std::generic_category(), std::string(key) + ": " + what);
  };
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (addr.is_v6()) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, ep.data(), static_cast<socklen_t>(ep.size())) != 0) {
    fail("cannot bind " + host + ":" + std::to_string(port));
  }
  if (::listen(fd, options_.backlog) != 0) fail("cannot listen");
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
  bound_port = ntohs(local.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                                                 : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  auto l = std::make_unique<Listener>(*this, *loops_[0], fd, metrics_only);  // owns fd from here on
  if (!loops_[0]->watch(fd, l.get(), true)) {
    int err = errno;
    throw std::system_error(err, std::generic_category(), std::string(key) + ": cannot watch the listening socket");
  }
  return l;
}

// ---------------------------------------------------------------- Listener

Listener::~Listener() { close(); }

void Listener::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Listener::accept_ready() {
  // Edge-triggered: accept until the backlog is empty, in slices of 64 so a
  // connection storm does not starve the loop's other sockets.
  for (int i = 0; i < 64; ++i) {
    if (paused_ || fd_ < 0 || core_.stopped_.load()) return;
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      core_.adopt(fd, peer, metrics_only_);
      continue;
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return;
    if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
    // EMFILE/ENFILE/ENOBUFS/ENOMEM: back off briefly instead of spinning; the
    // pending connections wait in the backlog.
    ops::logger().error("event=accept_error reason=\"{}\" retry_ms=100", std::strerror(err));
    loop_.counters().errors[static_cast<std::size_t>(ops::ErrorKind::AcceptFailed)].inc();
    paused_ = true;
    loop_.schedule(100, [this] {
      paused_ = false;
      accept_ready();
    });
    return;
  }
  loop_.post([this] { accept_ready(); });
}

void ServerCore::adopt(int fd, const sockaddr_storage& peer, bool metrics_only) {
  char ip[INET6_ADDRSTRLEN] = "?";
  std::uint16_t port = 0;
  std::string address;
  if (peer.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&peer);
    ::inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    port = ntohs(a->sin6_port);
    address = "[" + std::string(ip) + "]:" + std::to_string(port);
  } else {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&peer);
    ::inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    port = ntohs(a->sin_port);
    address = std::string(ip) + ":" + std::to_string(port);
  }
  live_.fetch_add(1, std::memory_order_relaxed);
  std::uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed);
  Loop& target = *loops_[next_loop_];
  next_loop_ = (next_loop_ + 1) % loops_.size();
  // Started from the target loop's queue (never inside the accepting batch).
  target.post([this, &target, fd, id, metrics_only, address = std::move(address)]() mutable {
    auto conn = std::make_shared<Connection>(*this, target, fd, id, std::move(address));
    conn->metrics_only = metrics_only;
    conn->start();
  });
}

void ServerCore::reserve_admission(const std::string& ip, std::size_t& open_before, std::size_t& from_ip_before) {
  open_before = open_.fetch_add(1, std::memory_order_relaxed);
  from_ip_before = 0;
  if (options_.max_connections_per_ip > 0) {
    std::lock_guard lock(ip_mu_);
    from_ip_before = per_ip_[ip]++;
  }
}

void ServerCore::release_admission(const std::string& ip) {
  open_.fetch_sub(1, std::memory_order_relaxed);
  if (options_.max_connections_per_ip > 0) {
    std::lock_guard lock(ip_mu_);
    auto it = per_ip_.find(ip);
    if (it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
  }
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
    loop->post([loop] { loop->batch([loop] { loop->for_each_connection([](Connection& c) { c.go_away(); }); }); });
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

void ServerCore::broadcast(std::string_view data, MessageType type) {
  net::EventLoop* cur = net::EventLoop::current();
  for (auto& l : loops_) {
    if (l.get() == cur) {
      l->broadcast_local(data, type);
      return;
    }
  }
  // From a thread that is not one of our loops: frame once, post once per loop.
  std::uint8_t header[wire::max_header_size];
  std::size_t hlen = wire::write_header(header, type == MessageType::Text ? wire::Opcode::Text : wire::Opcode::Binary,
                                        true, false, data.size(), nullptr);
  net::FrameBuffer* buf = net::FrameBuffer::create(hlen + data.size());
  std::memcpy(buf->data(), header, hlen);
  std::memcpy(buf->data() + hlen, data.data(), data.size());
  buf->size = static_cast<std::uint32_t>(hlen + data.size());
  for (auto& l : loops_) {
    Loop* loop = l.get();
    buf->add_ref();
    loop->post([loop, buf] {
      loop->batch([&] { loop->deliver_run(buf, 0, buf->size, 1); });
      buf->release();
    });
  }
  buf->release();
}

std::string ServerCore::metrics_text() const {
  std::vector<const ops::ServerCounters*> all;
  for (const auto& l : loops_) all.push_back(&l->counters());
  return ops::render_metrics(all);
}

}  // namespace conduit::server

// ---------------------------------------------------------------- Server

namespace conduit {

struct Server::Impl {
  Impl(ServerOptions o, ServerHandlers h) : core(std::move(o), std::move(h)) {}
  server::ServerCore core;
};

Server::Server(ServerOptions options, ServerHandlers handlers)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handlers))) {}
Server::~Server() = default;
void Server::start() { impl_->core.start(); }
void Server::stop() { impl_->core.stop(); }
void Server::abort() { impl_->core.abort(); }
void Server::wait() { impl_->core.wait(); }
std::uint16_t Server::port() const noexcept { return impl_->core.port(); }
std::uint16_t Server::metrics_port() const noexcept { return impl_->core.metrics_port(); }
bool Server::draining() const noexcept { return impl_->core.draining(); }
std::size_t Server::connection_count() const noexcept { return impl_->core.open_count(); }
void Server::broadcast(std::string_view data, MessageType type) { impl_->core.broadcast(data, type); }
std::string Server::metrics_text() const { return impl_->core.metrics_text(); }

}  // namespace conduit
