// ServerCore: the loops, the listener, admission state, broadcast plumbing.
// Internal to src/server; the public face is conduit::Server.
#pragma once
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "conduit/server.hpp"
#include "net/event_loop.hpp"
#include "server/connection.hpp"
#include "server/handshake_policy.hpp"
#include "wire/deflate.hpp"

namespace conduit::server {

struct TlsContext;
class Loop;
class ServerCore;

// A run of consecutive broadcast frames in one shared buffer, on its way to
// another loop (one post per loop per flush, not per message or connection).
struct BroadcastRun {
  net::FrameBuffer* buf;
  std::uint32_t begin;
  std::uint32_t end;
  std::uint32_t messages;
};

// A listening socket on loop 0's readiness set. Accepted descriptors are
// handed round-robin to the loops. metrics_only: the separate metrics.listen
// address, which serves the HTTP routes and refuses WebSocket upgrades.
class Listener final : public net::IoHandler {
 public:
  Listener(ServerCore& core, Loop& loop, int fd, bool metrics_only) noexcept
      : core_(core), loop_(loop), fd_(fd), metrics_only_(metrics_only) {}
  ~Listener();
  void on_io(std::uint32_t) override { accept_ready(); }
  void accept_ready();
  void close() noexcept;

 private:
  ServerCore& core_;
  Loop& loop_;
  int fd_;
  bool metrics_only_;
  bool paused_ = false;  // after EMFILE and friends: retried by a timer
};

class Loop : public net::EventLoop {
 public:
  Loop(ServerCore& core, unsigned index) : net::EventLoop(index), core_(core) {}

  void add(Connection* c) noexcept;
  void remove(Connection* c) noexcept;
  Connection* first() noexcept { return head_; }
  std::size_t size() const noexcept { return count_; }

  // Marks c as having unflushed output (c->dirty() already set by caller).
  void push_dirty(std::shared_ptr<Connection> c);
  // Flushes every dirty connection and hands broadcast runs to other loops.
  void flush_dirty();
  void schedule_flush();
  void end_of_batch() override { flush_dirty(); }

  // Runs fn as one batch: output it queues is flushed once, at the end.
  template <class Fn>
  void batch(Fn&& fn) {
    in_batch = true;
    fn();
    in_batch = false;
    flush_dirty();
  }
  // Calls fn on every connection of this loop; fn may finish (and so unlink)
  // the connection it is given.
  template <class Fn>
  void for_each_connection(Fn&& fn) {
    for (Connection* c = head_; c;) {
      Connection* next = c->next_;
      auto keep = c->shared();
      fn(*c);
      c = next;
    }
  }

  // Broadcast support.
  void broadcast_local(std::string_view data, MessageType type);
  void deliver_run(net::FrameBuffer* buf, std::uint32_t begin, std::uint32_t end, std::uint32_t messages);
  void start_sweep();

 private:
  ServerCore& core_;
  Connection* head_ = nullptr;
  std::size_t count_ = 0;
  std::vector<std::shared_ptr<Connection>> dirty_;
  std::vector<std::shared_ptr<Connection>> flushing_;
  bool flush_posted_ = false;
  net::FrameBuffer* batch_ = nullptr;              // current broadcast batch buffer (one ref held)
  std::vector<std::vector<BroadcastRun>> outbox_;  // per destination loop
  friend class ServerCore;
};

class ServerCore {
 public:
  ServerCore(ServerOptions options, ServerHandlers handlers);
  ~ServerCore();

  void start();
  void stop();
  void abort();
  void wait();
  void broadcast(std::string_view data, MessageType type);
  std::string metrics_text() const;

  const ServerOptions& options() const noexcept { return options_; }
  const ServerHandlers& handlers() const noexcept { return handlers_; }
  const HandshakePolicy& policy() const noexcept { return policy_; }
  const wire::DeflateConfig& deflate_config() const noexcept { return deflate_; }
  TlsContext* tls() const noexcept { return tls_.get(); }
  bool draining() const noexcept { return draining_.load(std::memory_order_acquire); }
  std::uint16_t port() const noexcept { return port_; }
  std::uint16_t metrics_port() const noexcept { return metrics_port_; }
  std::size_t open_count() const noexcept { return open_.load(std::memory_order_relaxed); }
  std::vector<std::unique_ptr<Loop>>& loops() noexcept { return loops_; }
  std::int64_t sweep_interval_ms() const noexcept { return sweep_ms_; }

  // Admission accounting (loop threads, around the 101 and the close). A
  // handshake reserves its slot before the policy decides, and is told the
  // counts before it (server-wide and from its address); a refused one
  // releases the slot at once.
  void reserve_admission(const std::string& ip, std::size_t& open_before, std::size_t& from_ip_before);
  void release_admission(const std::string& ip);
  void on_connection_finished();

 private:
  // Takes an accepted descriptor (loop 0's thread) and starts its connection
  // on the next loop.
  void adopt(int fd, const sockaddr_storage& peer, bool metrics_only);
  std::unique_ptr<Listener> listen_on(const std::string& host, std::uint16_t port, const char* key, bool metrics_only,
                                      std::uint16_t& bound_port);
  void check_drained();
  void halt_loop(Loop& loop);

  ServerOptions options_;
  ServerHandlers handlers_;
  HandshakePolicy policy_;
  wire::DeflateConfig deflate_;
  std::unique_ptr<TlsContext> tls_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<Listener> metrics_listener_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> started_{false};
  std::atomic<std::size_t> open_{0};
  std::atomic<std::size_t> live_{0};  // every accepted socket not yet finished
  std::atomic<std::uint64_t> next_id_{1};
  unsigned next_loop_ = 0;
  std::uint16_t port_ = 0;
  std::uint16_t metrics_port_ = 0;
  std::int64_t sweep_ms_ = 1000;
  std::mutex ip_mu_;
  std::unordered_map<std::string, std::size_t> per_ip_;
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  bool done_ = false;
  friend class Loop;
  friend class Listener;
  friend class Connection;
};

}  // namespace conduit::server
