// Server options. Every limit has a safe default; docs/configuration.md lists
// the matching conduitd keys.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace conduit {

using Duration = std::chrono::milliseconds;

enum class SlowConsumerPolicy : std::uint8_t {
  Close,  // discard the backlog, send close 1008 "slow consumer", stop queueing
  Drop,   // drop the new message and count it
};

// How the event loops drive their sockets (ServerOptions::io).
enum class IoEngine : std::uint8_t {
  Epoll,    // readiness (epoll) and one recv/send system call each
  IoUring,  // completions: multishot receives into a provided buffer ring, the
            // batch's sends submitted with the loop's wait (no system call per
            // message). Falls back to Epoll, with one log line, where io_uring
            // cannot be set up (kernel too old or io_uring disabled) and for TLS.
};

struct HeartbeatOptions {
  // After this long without any frame from the peer the server sends a ping.
  // 0 disables heartbeats. Default 25s: under the ~30s idle reaping of NATs.
  Duration ping_interval{25000};
  // No frame at all (pong or otherwise) within this long after our ping → the
  // connection is dropped and counted as a pong timeout. Default 10s.
  Duration pong_timeout{10000};
};

struct CompressionOptions {
  bool enabled = false;  // permessage-deflate (RFC 7692); off by default
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 15;
  int client_max_window_bits = 15;
  int level = 6;
  std::size_t min_compress_bytes = 64;  // smaller messages go out uncompressed
};

struct TlsOptions {
  std::string cert_file;  // PEM; TLS is enabled when both are set
  std::string key_file;   // PEM
};

struct ServerOptions {
  std::string host = "127.0.0.1";  // listen address (IPv4 or IPv6 literal)
  std::uint16_t port = 8080;       // 0 = pick a free port (see Server::port())
  unsigned threads = 1;            // event loops; 0 = one per core
  int backlog = 1024;              // listen(2) backlog
  // Event-loop engine. Default Epoll: io_uring measured 1.03x at 20 B (noise)
  // and 0.91x at 16 KiB echo per server-CPU-second (docs/benchmarks.md). The environment variable
  // CONDUIT_IO ("epoll" or "io_uring"), when set, overrides this field
  // (it runs a whole test suite on either engine).
  IoEngine io = IoEngine::Epoll;
  // Optional second listener for the HTTP routes only (/metrics, /healthz,
  // /readyz and the application's, see Server::add_route), e.g. on an address Prometheus can reach and clients cannot;
  // WebSocket upgrades there get 404. Empty host = none (the routes are always
  // served on the main port as well). Port 0 = pick one (Server::metrics_port()).
  std::string metrics_host;
  std::uint16_t metrics_port = 0;

  // A connection that has not completed its upgrade request in this time is
  // dropped (slowloris). Default 10s.
  Duration handshake_timeout{10000};
  // After we send a close frame, wait this long for the peer's close before
  // dropping the TCP connection. Default 5s.
  Duration close_timeout{5000};

  // Largest accepted message (all fragments; after inflation when compressed).
  // Larger → close 1009, detected from the frame header. Default 64 KiB.
  std::size_t max_message_bytes = 65536;
  // Cap on a connection's queued outbound bytes; see slow_consumer. Default 1 MiB.
  std::size_t send_queue_bytes = 1 << 20;
  SlowConsumerPolicy slow_consumer = SlowConsumerPolicy::Close;
  // Largest body an HTTP route accepts (Content-Length); larger → 413 without
  // reading it. The body is held in memory until the handler has run, and
  // handshake_timeout bounds how long it may take to arrive. Default 64 KiB.
  std::size_t max_http_body_bytes = 65536;

  // Admission: refused upgrades get the status below and are counted.
  std::vector<std::string> allowed_origins;  // exact or "*.example.com"; empty = all
  std::size_t max_connections = 10000;       // 503 + Retry-After beyond this
  std::size_t max_connections_per_ip = 0;    // 0 = unlimited
  std::vector<std::string> subprotocols;     // server preference order
  bool require_subprotocol = false;          // offered-but-unsupported → 400
  unsigned retry_after_seconds = 5;          // Retry-After on 503

  Duration shutdown_grace{10000};  // Server::stop(): time allowed to drain

  HeartbeatOptions heartbeat;
  CompressionOptions compression;
  TlsOptions tls;
};

}  // namespace conduit
