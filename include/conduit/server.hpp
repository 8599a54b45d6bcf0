// conduit::Server: a WebSocket server on Asio with our own RFC 6455 engine.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/http.hpp"
#include "conduit/message.hpp"
#include "conduit/options.hpp"
#include "conduit/session.hpp"

namespace conduit {

class Server;
namespace server {
class ServerCore;
ServerCore& core_of(Server& server);  // for the library's own layers (pub/sub)
}  // namespace server

// What the accept hook sees of an upgrade request (views valid during the call).
struct UpgradeInfo {
  std::string_view path;   // target without the query
  std::string_view query;  // after '?', may be empty
  std::string_view remote_address;
  std::string_view origin;
  std::vector<std::string_view> offered_subprotocols;
  std::function<std::string_view(std::string_view name)> header;  // case-insensitive
};

struct UpgradeDecision {
  bool accept = true;
  unsigned status = 403;    // when refused
  std::string reason;       // when refused: one line, body of the response
  std::string subprotocol;  // when accepted: overrides the server's choice if non-empty
  // When refused: the label this refusal is counted under in
  // conduit_handshake_failures_total{reason} (e.g. "auth_expired"), instead of
  // "refused_by_hook". [a-z0-9_] only; at most 64 distinct labels are kept,
  // further ones are counted as "refused_by_hook".
  std::string failure_label;
  std::shared_ptr<void> user_data;
};

struct ServerHandlers {
  // Called after the built-in admission checks pass, before the 101.
  std::function<UpgradeDecision(const UpgradeInfo&)> on_upgrade;
  std::function<void(Session&)> on_open;
  std::function<void(Session&, std::string_view data, MessageType type)> on_message;
  std::function<void(Session&, std::uint16_t code, std::string_view reason)> on_close;
  // The session's queued outbound bytes fell to zero after having been above
  // half of send_queue_bytes.
  std::function<void(Session&)> on_drain;
};

class Server {
 public:
  Server(ServerOptions options, ServerHandlers handlers);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts the event-loop threads. Throws std::system_error when the
  // address cannot be bound.
  void start();
  // Graceful shutdown: stop accepting, refuse upgrades with 503, close every
  // session with 1001, wait up to shutdown_grace, then drop what remains.
  // Returns immediately; wait() blocks until done. Safe from any thread and
  // from a signal-handling thread.
  void stop();
  // Immediate stop (second signal): drop everything now.
  void abort();
  // Blocks until the server has fully stopped.
  void wait();

  std::uint16_t port() const noexcept;
  // Port of the separate metrics listener (ServerOptions::metrics_host), 0 if none.
  std::uint16_t metrics_port() const noexcept;
  bool draining() const noexcept;
  std::size_t connection_count() const noexcept;

  // Sends data to every open session: framed once into a shared buffer that
  // every session's queue references (sessions with permessage-deflate get a
  // compressed copy, shared per compression setting under
  // server_no_context_takeover, else one per session). Any thread. Each session's slow-consumer policy
  // applies as for send(). A broadcast is a publish to the group of every
  // open session (see conduit::Group).
  void broadcast(std::string_view data, MessageType type = MessageType::Text);

  // ---- extension points -------------------------------------------------
  // Adds an HTTP route (conduit/http.hpp) served on the main port and on the
  // metrics listener. Before start() only (throws std::logic_error after): the
  // loops read the table without a lock. A route with the method, path and
  // match of an existing one (a built-in included) replaces it.
  void add_route(HttpRoute route);
  // Adds a hook run on every loop at the end of each batch of work (after
  // the batch's messages were handled, before its output is written), with
  // that loop's index. Output the hook produces (send, publish) is written in
  // the same batch. Before start() only (throws std::logic_error after).
  void add_end_of_batch_hook(std::function<void(unsigned loop_index)> hook);
  // Adds a hook run on a session's loop when an opened session ends, before
  // ServerHandlers::on_close (for libraries that keep per-session state, e.g.
  // channel subscriptions). Before start() only (throws std::logic_error after).
  void add_close_hook(std::function<void(Session&)> hook);
  // Adds a source of extra Prometheus text appended to metrics_text() (and
  // /metrics): complete metric families (# HELP, # TYPE, samples) whose names
  // differ from the server's own. Called on the scraping thread; it must be
  // thread-safe. Before start() only (throws std::logic_error after).
  void add_metrics_source(std::function<void(std::string& out)> append);
  // Adds a readiness check to GET /readyz: it returns "" when ready, else a
  // one-line reason that /readyz answers with 503 (e.g. "redis unavailable:
  // connection refused"), so that a load balancer stops routing here. Called
  // on the thread that serves /readyz; it must be thread-safe and quick.
  // Before start() only (throws std::logic_error after).
  void add_readiness_check(std::function<std::string()> check);
  // Number of event loops (threads); loop indexes are 0 .. loop_count() - 1.
  unsigned loop_count() const noexcept;
  // Runs fn on loop loop_index's thread, after the loop's current batch, in
  // the order posted (per posting thread). Safe from any thread, e.g. a
  // client library's I/O thread handing over messages; from a handler, fn
  // runs later, never inline. Returns false, and fn is not run, when there is
  // no such loop or the server has stopped (a post racing stop() may also
  // not run). Work posted before start() runs once the loops start.
  bool post(unsigned loop_index, std::function<void()> fn);
  // post() to every loop, each with its own copy of fn (called with the loop's
  // index). Returns false when the server has stopped.
  bool post_to_all_loops(std::function<void(unsigned loop_index)> fn);

  // Prometheus text exposition of the server's metrics.
  std::string metrics_text() const;

  struct Impl;

 private:
  friend class Group;
  friend server::ServerCore& server::core_of(Server& server);
  std::unique_ptr<Impl> impl_;
};

}  // namespace conduit
