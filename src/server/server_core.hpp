// ServerCore: the loops, the listener, admission state, broadcast plumbing.
// Internal to src/server; the public face is conduit::Server.
#pragma once
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
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

// A run of consecutive broadcast frames in one shared buffer, on its way to
// another loop (one post per loop per flush, not per message or connection).
struct BroadcastRun {
  net::FrameBuffer* buf;
  std::uint32_t begin;
  std::uint32_t end;
  std::uint32_t messages;
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
  std::size_t open_count() const noexcept { return open_.load(std::memory_order_relaxed); }
  std::vector<std::unique_ptr<Loop>>& loops() noexcept { return loops_; }
  std::int64_t sweep_interval_ms() const noexcept { return sweep_ms_; }

  // Admission accounting (called on loop threads around the 101 and close).
  // Returns false (and changes nothing) when a cap is reached.
  ops::HandshakeFailure try_admit(const std::string& ip, bool& ok);
  void release_admission(const std::string& ip);
  void on_connection_finished();

 private:
  void accept_next();
  void check_drained();
  void halt_loop(Loop& loop);

  ServerOptions options_;
  ServerHandlers handlers_;
  HandshakePolicy policy_;
  wire::DeflateConfig deflate_;
  std::unique_ptr<TlsContext> tls_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::optional<boost::asio::ip::tcp::acceptor> acceptor_;
  std::optional<boost::asio::steady_timer> grace_timer_;
  std::optional<boost::asio::steady_timer> accept_retry_timer_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> started_{false};
  std::atomic<std::size_t> open_{0};
  std::atomic<std::size_t> live_{0};  // every accepted socket not yet finished
  std::atomic<std::uint64_t> next_id_{1};
  unsigned next_loop_ = 0;
  std::uint16_t port_ = 0;
  std::int64_t sweep_ms_ = 1000;
  std::mutex ip_mu_;
  std::unordered_map<std::string, std::size_t> per_ip_;
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  bool done_ = false;
  friend class Loop;
  friend class Connection;
};

}  // namespace conduit::server
