// Client::Impl: the state behind conduit::Client and the pieces its files
// share. Private to the client's implementation (client.cpp, client_connect.cpp,
// client_read.cpp, client_send.cpp, client_reconnect.cpp); it brings in Asio,
// OpenSSL and the wire engine, so no other file includes it.
//
// Everything that touches a connection runs on one strand: the lifecycle
// coroutine (run -> connect_once -> run_open), the writer and the heartbeat.
// Other threads only touch the small send-side state under `mu`
// (offline queue, open flag, queued byte counts) and post to the strand, which
// keeps send() thread-safe and the per-message path free of locks on the
// I/O thread except that one short critical section.
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "client/url.hpp"
#include "conduit/client.hpp"
#include "wire/deflate.hpp"
#include "wire/frame.hpp"
#include "wire/parser.hpp"

namespace conduit {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Strand = asio::strand<asio::io_context::executor_type>;

namespace client_detail {

inline constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

inline ClientFailure make_failure(ClientError e, std::string detail = {}) {
  ClientFailure f;
  f.code = make_error_code(e);
  f.detail = std::move(detail);
  return f;
}

// Maps an Asio/OS error of the transport to the client's enum.
ClientError classify_transport_error(const boost::system::error_code& ec);

// The permessage-deflate settings the client offers with ClientOptions::compression.
inline wire::DeflateConfig client_deflate_config() {
  wire::DeflateConfig config;
  config.enabled = true;
  return config;
}

struct Outgoing {
  wire::Opcode op;
  std::string payload;  // data messages keep their payload so an unsent one can go back offline
};

// A deadline on one phase of a connection (connect, handshake, close): when it
// fires it closes the socket, which ends whatever that phase was waiting for.
struct Watchdog {
  explicit Watchdog(const Strand& s) : timer(s) {}
  asio::steady_timer timer;
  bool expired = false;
};

// One TCP (or TLS) connection attempt and, when it opens, its whole life.
struct Conn {
  Conn(const Strand& strand, ssl::context* tls_ctx, wire::ParserLimits limits)
      : plain(strand),
        parser(wire::Role::Client, limits),
        write_signal(strand),
        heartbeat(strand),
        read_resume(strand) {
    if (tls_ctx != nullptr) tls = std::make_unique<ssl::stream<tcp::socket>>(strand, *tls_ctx);
  }

  tcp::socket& socket() { return tls ? tls->next_layer() : plain; }

  template <class Buffers>
  asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> read_some(const Buffers& buffers) {
    if (tls) return tls->async_read_some(buffers, use_tuple);
    return plain.async_read_some(buffers, use_tuple);
  }
  template <class Buffers>
  asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> write(const Buffers& buffers) {
    if (tls) return asio::async_write(*tls, buffers, use_tuple);
    return asio::async_write(plain, buffers, use_tuple);
  }

  // Ends every pending operation of this connection: socket I/O, writer and
  // heartbeat waits, watchdogs. Safe to call more than once.
  void abort() {
    boost::system::error_code ignored;
    socket().close(ignored);
    write_signal.cancel();
    heartbeat.cancel();
    read_resume.cancel();
    for (auto& wd : watchdogs) wd->timer.cancel();
  }

  tcp::socket plain;
  std::unique_ptr<ssl::stream<tcp::socket>> tls;
  wire::Parser parser;
  asio::steady_timer write_signal;  // the writer sleeps on it while wq is empty; cancel() wakes it
  asio::steady_timer heartbeat;
  asio::steady_timer read_resume;  // the reader sleeps on it while read() consumers lag
  std::vector<std::shared_ptr<Watchdog>> watchdogs;

  std::unique_ptr<wire::PerMessageDeflate> deflate;  // set when the server accepted permessage-deflate
  std::string pending_input;                         // bytes that arrived with the 101 response
  std::deque<Outgoing> wq;                           // frames waiting for the writer
  bool opened = false;                               // 101 validated
  bool done = false;                                 // connection over: nothing more is written or read
  bool sent_close = false;
  bool got_close = false;
  bool by_server = false;  // the server's close came first
  bool parser_stopped = false;
  bool close_written = false;  // our close frame reached the socket
  bool half_closed = false;
  // We failed the connection (protocol error): our close frame is enqueued
  // once the messages send() accepted before the failure are in wq, so they
  // still go out first; until then on_send keeps accepting into wq.
  bool close_deferred = false;
  bool discard_input = false;  // after we failed the connection: frames still arriving are ignored
  std::uint16_t close_code = close_code::abnormal;
  std::string close_reason;
  std::uint64_t reads = 0;  // liveness for the heartbeat: any bytes received
  std::optional<ClientFailure> failure;
  Clock::time_point opened_at;
};

}  // namespace client_detail

struct Client::Impl : std::enable_shared_from_this<Impl> {
  using Conn = client_detail::Conn;
  using Outgoing = client_detail::Outgoing;
  using Watchdog = client_detail::Watchdog;

  // Throws std::system_error(ClientError::invalid_url) for a URL that is not ws:// or wss://.
  Impl(asio::io_context* external, std::string url_text, ClientOptions options, ClientHandlers hs);
  void setup_tls();

  // ---- callbacks (suppressed once the Client object is gone) -------------------
  void emit_state(ClientState s, unsigned att, ClientDuration delay, std::error_code error) {
    state.store(s);
    if (!stopping.load() && handlers.on_state) handlers.on_state(ClientStateEvent{s, att, delay, error});
  }
  void emit_error(const ClientFailure& f) {
    if (!stopping.load() && handlers.on_error) handlers.on_error(f);
  }
  void report_ping_pong(PingPong event, std::string_view payload) {
    if (!stopping.load() && handlers.on_ping_pong) handlers.on_ping_pong(event, payload);
  }

  // ---- lifecycle and reconnect (client_reconnect.cpp) -----------------------------
  bool should_stop() {
    std::lock_guard lock(mu);
    return app_closed || stopping.load();
  }
  // The wait before reconnect attempt n+1: full jitter over the backoff window.
  ClientDuration backoff_delay(unsigned n);
  static asio::awaitable<void> run(std::shared_ptr<Impl> self) { co_await self->run_loop(); }
  asio::awaitable<void> run_loop();
  // The client is closed for good: fail pending reads, wake wait().
  void finish();
  // The open connection's life: flush the offline queue, run writer, heartbeat
  // and reader, then the close handshake.
  asio::awaitable<void> run_open(std::shared_ptr<Conn> c);

  // ---- connect and handshake (client_connect.cpp) ------------------------------------
  std::shared_ptr<Watchdog> arm_watchdog(const std::shared_ptr<Conn>& c, ClientDuration d);
  static void disarm(const std::shared_ptr<Conn>& c, const std::shared_ptr<Watchdog>& wd);
  // One attempt: resolve, connect, TLS, upgrade. Returns the connection with
  // opened = true, or with failure set (already reported through on_error).
  // `hint` receives a server's Retry-After, the least wait before the next attempt.
  asio::awaitable<std::shared_ptr<Conn>> connect_once(ClientDuration& hint);

  // ---- read path (client_read.cpp) -----------------------------------------------------
  // Parser events for one connection (called synchronously from consume()).
  struct ParserEvents;
  // A message to handlers.on_message, or to a read() waiting, or to the read queue.
  void deliver(MessageType type, std::string_view data);
  asio::awaitable<void> reader(std::shared_ptr<Conn> c);

  // ---- send path and heartbeat (client_send.cpp) --------------------------------------
  // Unsent data messages of `c` go back to the front of the offline queue, in
  // order (or are dropped when closing or !resend_unsent). Caller holds mu.
  void requeue_unsent_locked(Conn& c);
  static asio::awaitable<void> writer(std::shared_ptr<Impl> self, std::shared_ptr<Conn> c);
  // Once both close frames are exchanged (or we failed the connection), send
  // our FIN. RFC 6455 §7.1.1 lets the server close TCP first, but peers that
  // wait for the client's EOF would otherwise stall for close_timeout.
  static void maybe_half_close(Conn& c);
  static asio::awaitable<void> heartbeat(std::shared_ptr<Impl> self, std::shared_ptr<Conn> c);
  void enqueue(Conn& c, wire::Opcode op, std::string payload);
  void start_close(const std::shared_ptr<Conn>& c, std::uint16_t code, const std::string& reason);
  void on_send(Outgoing o);

  // ---- called on the strand from the public API (client.cpp) ---------------------------
  void on_app_ping(std::string payload);
  // A connect attempt in progress is left to finish (bounded by its timeouts):
  // run_open() then flushes the offline queue and starts the close handshake.
  void on_app_close();
  void on_abort();

  // ---- copies of state guarded by mu -----------------------------------------------------
  std::error_code final_error_copy() {
    std::lock_guard lock(mu);
    return final_error;
  }
  std::uint16_t app_close_code_copy() {
    std::lock_guard lock(mu);
    return app_close_code;
  }
  std::string app_close_reason_copy() {
    std::lock_guard lock(mu);
    return app_close_reason;
  }
  std::string subprotocol() const {
    std::lock_guard lock(mu);
    return current_subprotocol;
  }

  // ---- configuration (immutable after construction) -------------------------------
  client_detail::WsUrl url;
  ClientOptions opt;
  ClientHandlers handlers;
  std::unique_ptr<asio::io_context> own_ctx;
  asio::io_context& ctx;
  Strand strand;
  ssl::context tls_ctx;
  std::string tls_setup_error;
  std::thread thread;

  // ---- shared with other threads ----------------------------------------------------
  std::atomic<ClientState> state{ClientState::Idle};
  std::atomic<unsigned> attempt{0};
  std::atomic<bool> stopping{false};  // the Client is being destroyed
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<ClientMessage> offline;   // guarded by mu
  std::size_t offline_bytes = 0;       // guarded by mu
  bool out_open = false;               // guarded by mu: sends go to the strand
  std::size_t pending_send_bytes = 0;  // guarded by mu: accepted while open, not yet written
  bool app_closed = false;             // guarded by mu
  bool finished = false;               // guarded by mu
  std::uint16_t app_close_code = close_code::normal;
  std::string app_close_reason;
  std::error_code final_error;
  std::string current_subprotocol;

  // ---- strand only ------------------------------------------------------------------------
  std::shared_ptr<Conn> conn;
  std::shared_ptr<tcp::resolver> resolver;
  asio::steady_timer backoff_timer;
  std::mt19937_64 rng;
  std::vector<std::uint8_t> read_buf;
  std::deque<ClientMessage> read_q;
  std::size_t read_q_bytes = 0;
  bool read_paused = false;
  std::deque<std::function<void(std::error_code, ClientMessage)>> readers;
};

}  // namespace conduit
