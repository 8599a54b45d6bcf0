// conduit::Client: a reconnecting WebSocket client on the same RFC 6455 engine
// as the server (masked frames, same parser and limits).
//
// Life of a client: start() → Connecting → Open → (connection lost) →
// Reconnecting(attempt, delay) → Connecting → Open ... until close() (a normal
// close by the application never reconnects), max_attempts, or destruction.
//
// Threads: by default a client runs its own I/O thread. Given an io_context, it
// runs on that context instead (many clients can share one thread; the caller
// runs the context). Callbacks always run on the client's I/O thread, one at a
// time, and must not block. send(), close(), state() are safe from any thread.
//
// Asio and Beast stay out of this header (pimpl) so users' builds stay light;
// only the coroutine helper header conduit/client_coro.hpp includes Asio.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "conduit/client_error.hpp"
#include "conduit/message.hpp"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace conduit {

using ClientDuration = std::chrono::milliseconds;

struct ReconnectOptions {
  // Reconnect at all after a connection ends (not after close() by the application).
  bool enabled = true;
  // Full-jitter exponential backoff: before attempt n (0-based, counted per client),
  // wait uniform(0, min(max_delay, initial_delay * 2^n)). Default 500ms / 30s.
  ClientDuration initial_delay{500};
  ClientDuration max_delay{30000};
  // The attempt counter resets only after a connection stayed open this long, so a
  // server that accepts and then drops at once still gets an ever longer backoff.
  // Default 10s.
  ClientDuration healthy_after{10000};
  // Consecutive failed attempts before giving up (state Closed with
  // max_attempts_reached). 0 = forever (default).
  unsigned max_attempts = 0;
};

struct ClientOptions {
  // The client pings after this long; 0 disables the heartbeat. Default 25s: below
  // the ~30s idle timeout of common NATs and load balancers.
  ClientDuration ping_interval{25000};
  // No frame at all (pong or anything else) within this long after a ping → the
  // connection is dead (pong_timeout), dropped and reconnected. Default 10s.
  ClientDuration pong_timeout{10000};
  ReconnectOptions reconnect;

  // DNS + TCP connect, all resolved addresses together. Default 10s.
  ClientDuration connect_timeout{10000};
  // TLS handshake + HTTP upgrade. Default 10s.
  ClientDuration handshake_timeout{10000};
  // After our close frame, how long to wait for the server's before dropping TCP. Default 5s.
  ClientDuration close_timeout{5000};

  // Largest message accepted from the server (all fragments); larger → we close
  // with 1009 (message_too_big), detected from the frame header. Default 16 MiB.
  std::size_t max_message_bytes = 16u << 20;
  // Messages sent while not open wait here (payload bytes) and go out in order
  // after the next open. 0 = send() fails with offline_queue_full while offline.
  // Default 1 MiB.
  std::size_t offline_queue_bytes = 1u << 20;
  // Messages accepted by send() but not yet written when a connection ends go
  // out first on the next connection (true, default: nothing accepted is lost
  // to a reconnect). false drops them instead: for a protocol layer that
  // rebuilds its state after each open (conduit::ChannelClient re-subscribes
  // with its own position), to which a request replayed from the previous
  // connection would be stale.
  bool resend_unsent = true;
  // Payload bytes accepted by send() and not yet handed to the socket while open;
  // beyond it send() fails with send_queue_full. Default 16 MiB.
  std::size_t send_queue_bytes = 16u << 20;
  // Messages held for read() when nobody is reading (coroutine interface only).
  // Beyond it the client stops reading the socket (TCP backpressure). Default 16 MiB.
  std::size_t read_queue_bytes = 16u << 20;

  // Extra request headers (Authorization, Cookie, ...), sent as given.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string origin;                     // Origin header; empty = none
  std::vector<std::string> subprotocols;  // offered, in preference order

  // Offer permessage-deflate (RFC 7692) in the upgrade. When the server
  // accepts, messages of 64 bytes or more go out compressed (zlib level 6,
  // context kept between messages unless the server asks otherwise) and
  // compressed messages are inflated, max_message_bytes applying to the
  // inflated size (larger → we close with 1009; invalid deflate data → 1007).
  // Off by default, as on the server: it costs CPU and memory per connection
  // (a zlib stream each way) and only pays for compressible traffic.
  bool compression = false;

  // wss:// only. Certificates are verified against the system store (or ca_file)
  // and the URL's host name; SNI is sent for host names.
  std::string ca_file;    // PEM bundle to trust instead of the system store
  bool insecure = false;  // skip certificate and host name verification (tests only)
};

enum class ClientState : std::uint8_t {
  Idle,          // constructed, start() not called yet
  Connecting,    // resolving, connecting, TLS, upgrade
  Open,          // messages flow
  Closing,       // close() called, close handshake in progress
  Reconnecting,  // waiting `delay` before attempt `attempt`
  Closed,        // for good: close(), reconnect disabled, or max_attempts reached
};
const char* to_string(ClientState s) noexcept;

struct ClientStateEvent {
  ClientState state = ClientState::Idle;
  unsigned attempt = 0;     // consecutive failures so far (Connecting/Reconnecting)
  ClientDuration delay{0};  // Reconnecting: the wait before the next attempt
  std::error_code error;    // why the previous connection ended or attempt failed, if it did
};

// A failure, with everything known about it.
struct ClientFailure {
  std::error_code code;          // a ClientError (client_category())
  std::string detail;            // human explanation: OS / OpenSSL reason, parser reason...
  unsigned http_status = 0;      // handshake_rejected: the status
  std::string http_body;         // handshake_rejected: the response body (first 4 KiB)
  std::string subprotocol;       // unexpected_subprotocol: what the server selected
  std::uint16_t close_code = 0;  // closed_by_server / protocol errors: the close code
  std::string message() const;   // one line: code message + detail
};

// A ping or pong frame seen on an open connection (ClientHandlers::on_ping_pong).
enum class PingPong : std::uint8_t {
  ping_sent,      // our heartbeat or Client::ping()
  ping_received,  // the server's ping (answered with a pong automatically)
  pong_sent,      // our automatic answer to the server's ping
  pong_received,  // the server's pong (or an unsolicited one)
};
const char* to_string(PingPong p) noexcept;

struct ClientMessage {
  MessageType type = MessageType::Text;
  std::string data;
};

struct ClientHandlers {
  // A connection is open; subprotocol is the server's selection ("" when none).
  std::function<void(const std::string& subprotocol)> on_open;
  // One whole message (fragments joined). data is valid only during the call.
  // When set, read() is not fed.
  std::function<void(std::string_view data, MessageType type)> on_message;
  // A connection ended: the close code and reason (1006 and empty when there was
  // no close frame), and whether the server sent the close first.
  std::function<void(std::uint16_t code, std::string_view reason, bool by_server)> on_close;
  // A connect attempt failed or a connection failed; reconnect follows if enabled.
  std::function<void(const ClientFailure&)> on_error;
  std::function<void(const ClientStateEvent&)> on_state;
  // The upgrade exchange of each attempt that got an HTTP response: the request
  // as sent and the response's status line and headers, each as HTTP text
  // ("GET / HTTP/1.1\r\nHost: ...\r\n\r\n"). Called before on_open, or before
  // on_error when the upgrade was refused. For diagnostics (`conduit --verbose`).
  std::function<void(std::string_view request, std::string_view response)> on_handshake;
  // Every ping and pong sent or received (control frames are otherwise handled
  // by the client itself). The payload is at most 125 bytes.
  std::function<void(PingPong event, std::string_view payload)> on_ping_pong;
};

class Client;

// Awaitable read for Asio coroutines: include conduit/client_coro.hpp, then in an
// asio::awaitable<> coroutine: `auto [ec, msg] = co_await client.read();`
// Result type of read() for a completion token; specialised in client_coro.hpp
// (empty here, so read() is only usable where that header is included).
template <class CompletionToken, class = void>
struct ClientReadResult {};
struct ClientReadOperation {
  Client* client;
  template <class CompletionToken>
  typename ClientReadResult<std::decay_t<CompletionToken>>::type operator()(CompletionToken&& token);
};

class Client {
 public:
  // url: ws://host[:port][/path][?query] or wss://...; IPv6 literals as [::1].
  // Throws std::system_error(invalid_url) for a malformed URL.
  Client(std::string url, ClientOptions options = {}, ClientHandlers handlers = {});
  // Runs on ctx (the caller runs it) instead of an own thread.
  Client(boost::asio::io_context& ctx, std::string url, ClientOptions options = {}, ClientHandlers handlers = {});
  // Drops the connection without a close handshake and waits for the I/O work to
  // end; call close() + wait() first for a clean close.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Begins connecting. Handlers must be set (constructor) before.
  void start();

  // Queues one message (thread-safe). While open it goes out in order; while
  // connecting/reconnecting it waits in the offline queue. Returns
  // offline_queue_full, send_queue_full or not_open (closed for good) when not queued.
  std::error_code send(std::string_view data, MessageType type = MessageType::Text);

  // Sends a ping with this payload (at most 125 bytes, RFC 6455 §5.5) on the
  // open connection; the server's pong arrives through on_ping_pong. Returns
  // std::errc::message_size for a longer payload and not_open when no
  // connection is open (pings are never queued offline).
  std::error_code ping(std::string_view payload = {});

  // Normal close by the application: close handshake with code, no reconnect.
  // Messages already accepted by send() go out before the close frame. During a
  // connect attempt the attempt is allowed to finish (bounded by connect_timeout
  // and handshake_timeout) so that queued messages are delivered; while waiting
  // to reconnect the client is Closed at once and the offline queue dropped.
  void close(std::uint16_t code = 1000, std::string_view reason = {});

  // Blocks until the client is Closed for good or timeout passes; true when closed.
  // Not for use on the client's own I/O thread.
  bool wait(ClientDuration timeout = ClientDuration::max());

  ClientState state() const noexcept;
  // Consecutive failed attempts (resets after healthy_after of open connection).
  unsigned attempt() const noexcept;
  std::string subprotocol() const;
  // The error that made the client Closed for good (empty after a normal close).
  std::error_code final_error() const;

  // Callback read, for the coroutine interface: delivers the next message
  // received (or an error when the client is closed for good). Messages are
  // queued for read() only when handlers.on_message is not set.
  void async_read(std::function<void(std::error_code, ClientMessage)> handler);
  ClientReadOperation read() { return ClientReadOperation{this}; }

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace conduit
