// An asynchronous Redis client on its own thread: the backplane's connection
// to Redis. Built on hiredis' async API with our own adapter on an epoll loop
// that the client's thread owns, so no caller's event loop ever waits for
// Redis.
//
// Threading
//   - start() launches the client's thread (once: a stopped client does not
//     start again); stop() ends it and joins, and may be called from several
//     threads and more than once. Neither
//     may be called from a callback (stop() throws std::logic_error there: the
//     thread cannot join itself), and the Client must not be destroyed from
//     one (that terminates the process with a log line).
//   - command(), subscribe() and unsubscribe() may be called from any thread,
//     at any time, and never block on the network: they append to a queue
//     under a mutex and wake the client's thread.
//   - Every callback (each command's `done`, and the Events) runs on the
//     client's thread, one at a time. A callback may call command(),
//     subscribe() and unsubscribe(); it must not block for long, since the
//     client sends and receives nothing while it runs.
//   - Commands from one thread reach Redis in call order. All commands queued
//     since the loop last woke are written together (pipelined), and each
//     `done` runs in the order the commands were sent.
//
// Failure semantics
//   - The client holds two connections to the same server: one for commands,
//     one for pub/sub (a subscribed connection can run nothing else). The pair
//     is "connected" only when both have authenticated (AUTH when a password
//     is set; SELECT db on the command connection), answered a PING, and every
//     channel in the subscription set is subscribed again. Then connected()
//     turns true and on_connected runs: from there on every message published
//     to those channels is delivered, so an engine recovers what it missed
//     during the outage from within on_connected. During a reconnection,
//     messages of channels already subscribed again may reach on_message just
//     before on_connected runs; they are live messages that the recovery will
//     also find in history, so an engine deduplicates (by offset).
//   - While not connected, command() never waits for Redis to come back: its
//     `done` runs at once (on the client's thread) with an error Reply whose
//     text starts with "unavailable:". Commands are never held across an
//     outage, so a publication refused during an outage is never sent later.
//   - A command already sent when the connection breaks is answered
//     "unavailable: connection lost before the reply (...)": Redis may or may
//     not have run it (the reply is what was lost). A caller that must know
//     checks with a later command (e.g. reading a stream it appended to).
//   - Losing either connection drops both (one state for the pair), runs
//     on_disconnected(reason) once, and reconnects with exponential backoff
//     and full jitter: attempt n waits a uniformly random time in
//     [0, min(backoff_max, backoff_initial * 2^n)]. A connection attempt (TCP
//     connect, AUTH, SELECT, PING, re-subscribing) that does not finish within
//     connect_timeout fails with reason "connect timeout".
//   - Each transition is logged once: event=redis_connected (info) and
//     event=redis_disconnected reason="..." (warning; info when stop() ends
//     the connection). Each failed attempt runs on_connect_failed(reason) and
//     logs event=redis_connect_failed: at warning level when it is the first
//     sign of the outage (the first failure after start(), before any
//     connection), at debug level otherwise (the retries after that, and
//     every retry after a redis_disconnected line, which already announced
//     the outage). A long outage therefore logs one warning, whatever its
//     length.
//   - Memory is bounded: at most max_pending commands are outstanding (queued
//     or sent and awaiting a reply); a command beyond that is answered at once
//     with "unavailable: too many pending commands (max_pending=N)".
//   - stop() answers every command not yet answered with "unavailable:
//     stopping" before it returns (on the client's thread), runs
//     on_disconnected("stopping") if the pair was connected, and returns
//     without waiting for any backoff delay. Before start() and after stop(),
//     command() answers "unavailable: client not running" on the calling
//     thread (there is no client thread to run it on).
//   - Hostname resolution happens on the client's thread (hiredis resolves
//     synchronously when it connects): it delays the client, never a caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace conduit::redis {

// Where the Redis server is. Built by parse_url or by hand.
struct Endpoint {
  // An IP address or a name. hiredis connects to the first address a name
  // resolves to, so "localhost" may mean ::1 while Redis listens on
  // 127.0.0.1 only: prefer the address Redis binds.
  std::string host;
  std::uint16_t port = 6379;
  std::string password;  // empty: no AUTH
  int db = 0;            // SELECTed on the command connection when not 0
};

// Parses redis://[:password@]host[:port][/db]. A user name
// (redis://user:password@host) is refused: the client authenticates with the
// password alone (AUTH password, the "default" user of Redis 6+ ACLs), and
// silently ignoring a user name would log in as someone else than asked.
// Percent-escapes (%XX) in the password are decoded. An IPv6 host is written
// in brackets: redis://[::1]:6379. Throws std::invalid_argument naming what is
// wrong (scheme, empty host, port out of 1..65535, db not a number, ...).
Endpoint parse_url(std::string_view url);

// A reply from Redis, copied out of hiredis (safe to keep after the callback).
// Errors produced by the client itself (never sent, or the reply was lost)
// are Type::error with str starting "unavailable:".
struct Reply {
  enum class Type { nil, integer, string, status, error, array };
  Type type = Type::nil;
  std::int64_t integer = 0;     // Type::integer
  std::string str;              // Type::string, status, error
  std::vector<Reply> elements;  // Type::array

  bool is_error() const noexcept { return type == Type::error; }
  // True for the client's own refusals (not connected, stopping, overload,
  // connection lost): the caller maps these to "service unavailable".
  bool is_unavailable() const noexcept { return type == Type::error && str.starts_with("unavailable:"); }
};

struct Options {
  // Deadline for one connection attempt of the pair, from the TCP connect to
  // the last re-subscription.
  std::chrono::milliseconds connect_timeout{2000};
  // Reconnect backoff: full jitter over an exponentially growing ceiling.
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{5000};
  // Outstanding commands (queued or awaiting a reply) before command()
  // refuses: bounds memory when Redis is slower than the callers.
  std::size_t max_pending = 100'000;
};

struct Events {
  std::function<void()> on_connected;                                // both connections up, channels subscribed
  std::function<void(const std::string& reason)> on_disconnected;    // was connected, no longer is
  std::function<void(const std::string& reason)> on_connect_failed;  // one attempt failed
  std::function<void(const std::string& channel, const std::string& payload)> on_message;
  // Redis confirmed a subscribe() made while connected: from here on every
  // message published to channel is delivered. (Subscriptions made while not
  // connected are confirmed by on_connected instead, which comes once every
  // channel of the set is subscribed.)
  std::function<void(const std::string& channel)> on_subscribed;
};

// Monotonic counters for metrics; read from any thread.
struct Counters {
  std::uint64_t connects = 0;          // transitions to connected
  std::uint64_t disconnects = 0;       // transitions from connected to not connected
  std::uint64_t connect_failures = 0;  // failed connection attempts
  std::uint64_t commands = 0;          // commands sent to Redis
  std::uint64_t writes = 0;            // socket writes of the command connection (commands/writes = batching)
  std::uint64_t errors = 0;            // error replies from Redis
  std::uint64_t unavailable = 0;       // commands answered "unavailable:" by the client
  std::uint64_t messages = 0;          // pub/sub messages delivered to on_message
};

class Client {
 public:
  Client(Endpoint endpoint, Options options, Events events);
  ~Client();  // stop()s
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void start();
  void stop();

  bool connected() const noexcept;
  Counters counters() const noexcept;
  // The reason of the last failed attempt or disconnection ("" if none yet).
  std::string last_error() const;

  void command(std::vector<std::string> args, std::function<void(const Reply&)> done);
  // Adds/removes a channel of the subscription set. Subscribing twice or
  // unsubscribing a channel not in the set does nothing. The set survives
  // reconnections: it is subscribed again on every new connection. Both may
  // be called before start() (the first connection subscribes the set) and
  // during an outage (the next connection applies the change).
  void subscribe(std::string channel);
  void unsubscribe(std::string channel);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace conduit::redis
