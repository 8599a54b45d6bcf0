// ServerCore: the server's loops and their threads, the listeners, the route
// table, admission, the group of every session, and the shutdown sequence.
// Internal to src/server; the public face is conduit::Server (server.cpp).
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "conduit/server.hpp"
#include "server/admission.hpp"
#include "server/fanout.hpp"
#include "server/handshake_policy.hpp"
#include "server/http_routes.hpp"
#include "server/listener.hpp"
#include "server/loop.hpp"
#include "wire/deflate.hpp"

namespace conduit::server {

struct TlsContext;

class ServerCore {
 public:
  // Creates the loops (not their threads) and the built-in routes.
  ServerCore(ServerOptions options, ServerHandlers handlers);
  ~ServerCore();

  void start();
  void stop();
  void abort();
  void wait();

  // Before start(): the route table and the end-of-batch hooks are read
  // without a lock by the loops. Throws std::logic_error once started.
  void add_route(conduit::HttpRoute route);
  void add_end_of_batch_hook(std::function<void(unsigned loop_index)> hook);
  void add_close_hook(std::function<void(Session&)> hook);
  void add_metrics_source(std::function<void(std::string&)> append);
  void add_readiness_check(std::function<std::string()> check);
  const std::vector<std::function<void(Session&)>>& close_hooks() const noexcept { return close_hooks_; }
  // A refusal by the accept hook with its own label (any loop thread).
  void count_labeled_refusal(std::string_view label);
  // Any thread: runs fn on that loop's thread. False when there is no such
  // loop or the server has stopped (fn is then not run).
  bool post(unsigned loop_index, std::function<void()> fn);

  // Any thread: frames data once and delivers it to every member of group.
  // To every member of group but `except` (nullptr: none). Any thread.
  void publish(const std::shared_ptr<GroupState>& group, std::string_view data, MessageType type,
               const Session* except = nullptr);
  const std::shared_ptr<GroupState>& everyone() const noexcept { return everyone_; }
  std::string metrics_text() const;

  const ServerOptions& options() const noexcept { return options_; }
  const ServerHandlers& handlers() const noexcept { return handlers_; }
  const HandshakePolicy& policy() const noexcept { return policy_; }
  const RouteTable& routes() const noexcept { return routes_; }
  const wire::DeflateConfig& deflate_config() const noexcept { return deflate_; }
  Admission& admission() noexcept { return admission_; }
  TlsContext* tls() const noexcept { return tls_.get(); }
  bool draining() const noexcept { return draining_.load(std::memory_order_acquire); }
  bool stopped() const noexcept { return stopped_.load(); }
  std::uint16_t port() const noexcept { return port_; }
  std::uint16_t metrics_port() const noexcept { return metrics_port_; }
  std::size_t open_count() const noexcept { return admission_.open(); }
  std::vector<std::unique_ptr<Loop>>& loops() noexcept { return loops_; }
  std::int64_t sweep_interval_ms() const noexcept { return sweep_ms_; }

  // Listener (loop 0's thread): counts an accepted socket, returns its id,
  // and picks the loop it goes to (round robin).
  std::uint64_t connection_accepted() noexcept;
  Loop& next_loop() noexcept;
  // A connection (accepted or upgraded) has finished.
  void on_connection_finished();
  // When draining and every connection has finished: stop the loops.
  void check_drained();

 private:
  void add_builtin_routes();
  void halt_loop(Loop& loop);

  ServerOptions options_;
  ServerHandlers handlers_;
  HandshakePolicy policy_;
  wire::DeflateConfig deflate_;
  std::unique_ptr<TlsContext> tls_;
  RouteTable routes_;
  Admission admission_;
  std::shared_ptr<GroupState> everyone_;  // declared before loops_: outlives their sessions
  std::vector<std::unique_ptr<Loop>> loops_;
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<Listener> metrics_listener_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<bool> started_{false};
  std::atomic<std::size_t> live_{0};  // every accepted socket not yet finished
  std::atomic<std::uint64_t> next_id_{1};
  unsigned next_loop_ = 0;
  std::uint16_t port_ = 0;
  std::uint16_t metrics_port_ = 0;
  std::int64_t sweep_ms_ = 1000;
  std::vector<std::function<void(Session&)>> close_hooks_;
  std::vector<std::function<void(std::string&)>> metrics_sources_;
  std::vector<std::function<std::string()>> readiness_checks_;
  mutable std::mutex labeled_mutex_;  // refusals are rare: a lock is fine here
  std::map<std::string, std::uint64_t, std::less<>> labeled_refusals_;
};

}  // namespace conduit::server
