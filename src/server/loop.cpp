#include "server/loop.hpp"

#include <cstdlib>
#include <cstring>

#include "ops/log.hpp"
#include "server/server_core.hpp"

namespace conduit::server {

namespace {
// The engine asked for: CONDUIT_IO when set (so a test suite can run on
// either engine without touching every server it starts), else server.io.
// TLS connections read and write through OpenSSL's memory BIOs, which the
// completion engine does not drive: a TLS server stays on epoll.
IoEngine asked_engine(const ServerCore& core) {
  IoEngine io = core.options().io;
  if (const char* env = std::getenv("CONDUIT_IO"); env && *env) {
    if (std::strcmp(env, "io_uring") == 0) {
      io = IoEngine::IoUring;
    } else if (std::strcmp(env, "epoll") == 0) {
      io = IoEngine::Epoll;
    } else {
      ops::logger().warn("event=io_engine reason=\"CONDUIT_IO={} is neither epoll nor io_uring: ignored\"", env);
    }
  }
  return io;
}

net::IoEngine requested_engine(const ServerCore& core) {
  return asked_engine(core) == IoEngine::IoUring && !core.tls() ? net::IoEngine::IoUring : net::IoEngine::Epoll;
}
}  // namespace

Loop::Loop(ServerCore& core, unsigned index)
    : net::EventLoop(index, requested_engine(core)),
      core_(core),
      connections_(&core.everyone()->sets[index]),
      fanout_(*this) {
  add_end_of_batch_hook([this] { end_batch(); });
  // With io_uring asked for, one line per server (from its first loop):
  // that it runs, or why epoll runs instead.
  if (index == 0) {
    if (completion_io()) {
      ops::logger().info("event=io_engine engine=io_uring");
    } else if (asked_engine(core) == IoEngine::IoUring) {
      ops::logger().warn("event=io_engine engine=epoll requested=io_uring reason=\"{}\"",
                         core.tls() ? "TLS runs on epoll only" : fallback_reason());
    }
  }
}

Loop::~Loop() = default;

void Loop::add(Connection* c) noexcept {
  connections_->link(c->everyone_);
  core_.everyone()->members.fetch_add(1, std::memory_order_relaxed);
}

void Loop::remove(Connection* c) noexcept {
  connections_->unlink(c->everyone_);
  core_.everyone()->members.fetch_sub(1, std::memory_order_relaxed);
}

void Loop::flush_later(std::shared_ptr<Connection> c) { dirty_.push_back(std::move(c)); }

void Loop::end_batch() {
  for (auto& hook : hooks_) hook();
  // Flushing runs on_drain handlers, which may publish or send again: repeat
  // until neither runs for other loops nor output is left.
  do {
    fanout_.hand_off();
    flush_dirty();
  } while (fanout_.hand_off());
}

void Loop::flush_dirty() {
  while (!dirty_.empty()) {
    flushing_.swap(dirty_);
    for (auto& c : flushing_) {
      if (c->dirty()) c->flush();
    }
    flushing_.clear();
  }
}

void Loop::push_foreign(ForeignSend s) {
  const bool first = foreign_.empty();
  foreign_.push_back(std::move(s));
  if (first) post([this] { drain_foreign(); });
}

std::vector<ForeignSend> Loop::take_foreign(const Connection* c) {
  std::vector<ForeignSend> mine;
  if (foreign_.empty()) return mine;
  auto keep = foreign_.begin();
  for (auto it = foreign_.begin(); it != foreign_.end(); ++it) {
    if (it->conn.get() == c) {
      mine.push_back(std::move(*it));
    } else {
      if (keep != it) *keep = std::move(*it);
      ++keep;
    }
  }
  foreign_.erase(keep, foreign_.end());
  return mine;
}

void Loop::drain_foreign() {
  // Under the lock, so that a sender's view (queued bytes + admitted bytes)
  // never misses a message on its way from one to the other. Every pending
  // send is taken, so each connection's admitted count starts again at 0.
  std::lock_guard lock(foreign_mu_);
  for (auto& s : foreign_) {
    s.conn->foreign_bytes_.store(0, std::memory_order_relaxed);
    s.conn->enqueue_admitted(s);
  }
  foreign_.clear();
}

Loop::ParkedInput Loop::take_parked_input(const Connection* c) {
  ParkedInput out;
  if (auto it = parked_.find(c); it != parked_.end()) {
    out = std::move(it->second);
    parked_.erase(it);
  }
  return out;
}

void Loop::start_sweep() {
  schedule(core_.sweep_interval_ms(), [this] {
    std::int64_t now = now_ms();
    for_each_connection([now](Connection& c) { c.sweep(now); });
    core_.check_drained();
    if (!core_.stopped()) start_sweep();
  });
}

}  // namespace conduit::server
