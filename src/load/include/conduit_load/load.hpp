// Load generator engine: the measuring half of every Conduit benchmark, used by
// `conduit-loadgen` (bench/) and `conduit bench` (the CLI). Target
// `conduit_load`; this header is its interface and not part of libconduit's
// public API (it is neither under include/conduit nor installed).
//
// It speaks RFC 6455 with Conduit's own wire code on Asio sockets (no Beast
// websocket::stream): the generator must never be the bottleneck of what it
// measures. Every scenario runs on `threads` io_contexts (default one, so that
// pinning the process to one core gives it exactly one core).
//
// Scenarios:
//   echo    N connections each keep `pipeline` messages in flight against an
//           echo server; every echo is checked byte for byte.
//   fanout  N subscribers and one publisher on a broadcast server; the
//           publisher keeps a window of W messages ahead of the slowest
//           subscriber; every subscriber checks it got every message in order.
//   idle    K connections opened and held, for memory-per-connection figures.
//   upgrades  an open + close storm: `in_flight` connections at a time, each
//           one TCP connect, upgrade (the 101 checked), close handshake (1000,
//           the server's close checked) and the server's FIN, then the next.
//
// ws:// and wss:// URLs (TLS verified against the system store, `ca_file`, or
// not at all with `insecure`).
#pragma once
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conduit::load {

using Milliseconds = std::chrono::milliseconds;

enum class LoadError : std::uint8_t {
  None,
  BadUrl,           // not ws://host[:port]/path or wss://...
  BadOptions,       // e.g. zero connections, fanout size below 16 bytes, an unreadable CA file
  ConnectFailed,    // not every connection could be opened (see connect_failures)
  HandshakeFailed,  // TLS failed, or the server answered the upgrade with something else than a valid 101
  Timeout,          // fanout: not every message arrived within `timeout`
  ResourceLimit,    // more connections than the process may open (RLIMIT_NOFILE)
  WorkerFailed,     // fanout over processes: a worker process could not start, died or sent no report
};
std::string_view to_string(LoadError error);

// What every scenario needs to reach the server.
struct ConnectOptions {
  std::string url = "ws://127.0.0.1:8080/";
  // wss://: PEM file of CA certificates to trust instead of the system store.
  std::string ca_file;
  // wss://: do not verify the server's certificate (testing only).
  bool insecure = false;
  // io_context threads; connections are spread round-robin. Default 1.
  unsigned threads = 1;
  // Connections opened concurrently during setup; bounded so that a burst of
  // SYNs does not overflow the server's listen backlog. Default 256.
  unsigned connect_concurrency = 256;
  // Setup (TCP connect + upgrade) of all connections must finish within this. Default 30s.
  Milliseconds connect_timeout{30000};
  // When > 0, the CPU time this process uses during the measured window is
  // reported (see process_cpu_seconds), so results can be expressed per
  // server-CPU-second. Default 0 (not measured).
  int server_pid = 0;
  // More processes whose CPU time is added to server_pid's, for a server made
  // of several processes (e.g. two conduitd nodes and the redis-server they
  // share). Empty by default.
  std::vector<int> more_server_pids;
  // When set and it becomes true (e.g. from a signal handler), the run ends
  // early and reports what it measured so far. Checked every 100 ms.
  const std::atomic<bool>* cancel = nullptr;
};

struct EchoLoadOptions : ConnectOptions {
  unsigned connections = 100;
  std::size_t size = 20;  // payload bytes per message
  bool binary = true;     // false: text messages (ASCII payload)
  // Messages kept in flight per connection. Default 1 (send, wait for the echo, send again).
  unsigned pipeline = 1;
  // Total messages per second over all connections; 0 = closed loop (as fast
  // as the echoes come back). Sends that cannot go out because every
  // connection already has `pipeline` messages in flight are counted as `rate_misses`.
  double rate = 0;
  Milliseconds warmup{0};       // run but do not count, before the measured window
  Milliseconds duration{5000};  // measured window
};

struct FanoutLoadOptions : ConnectOptions {
  unsigned subscribers = 1000;
  std::size_t size = 64;  // payload bytes per message; at least 16 (sequence + timestamp)
  std::uint64_t messages = 1000;
  // The publisher sends message k only once every subscriber has received
  // message k - window; 0 = no wait (publish as fast as the socket takes it).
  unsigned window = 32;
  // Give up (error Timeout) when the last message has not reached every
  // subscriber this long after the first was published. Default 120s.
  Milliseconds timeout{120000};
  // Subscriber processes. 0 = automatic: one process (this one) when the
  // subscribers fit in RLIMIT_NOFILE (raised to the hard limit) with a margin
  // of 64 descriptors, else ceil(subscribers / (limit - 64)) worker processes.
  // K > 1 forces K worker processes. Splitting needs `worker_command`.
  unsigned processes = 0;
  // argv of a worker process (argv[0] is the executable path), e.g.
  // {"/path/to/conduit", "bench", "fanout-worker"}: a program that calls
  // run_fanout_worker(0, 1, ...). Empty: never split (too many subscribers is
  // then a ResourceLimit error). With worker processes, this process opens
  // only the publisher; the workers open the subscribers, report when they are
  // connected, report window progress and send their final counts and latency
  // histogram back over their stdout (see run_fanout_worker).
  std::vector<std::string> worker_command;
  // Non-empty: the server speaks conduit.v1 and this is the channel. Each
  // subscriber sends {"id":1,"subscribe":{"channel":C}} and counts as set up
  // once the reply came; the publisher sends publish requests whose `data` is
  // a JSON string of `size` characters (at least 32: sequence and publish
  // time in hex, then a fixed pattern), and subscribers check the pushes.
  std::string channel;
  // Channel mode only. Non-empty: the subscribers connect to these servers
  // (several nodes serving the same channels), spread evenly over them; the
  // publisher connects to `url`, on a thread of its own. Not with worker
  // processes. Empty (default): everything connects to `url`.
  std::vector<std::string> subscriber_urls;
};

struct UpgradeLoadOptions : ConnectOptions {
  unsigned in_flight = 64;      // connections in their life cycle at any time
  Milliseconds warmup{0};       // run but do not count, before the measured window
  Milliseconds duration{5000};  // measured window
};

struct IdleLoadOptions : ConnectOptions {
  unsigned connections = 10000;
  // How long to hold the connections once all are open; 0 = until `cancel`.
  Milliseconds hold{0};
};

// Latency distribution, in microseconds. Percentiles come from a log-linear
// histogram with 1/64 relative precision (they are upper bounds of their bucket).
// With count == 0 nothing was measured and the other fields mean nothing
// (reports print them as null / n/a).
struct LatencySummary {
  std::uint64_t count = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  double max_us = 0;
};

// Close frames received from the server, by code (1006 = the TCP connection
// ended without one).
using CloseCodeCounts = std::map<std::uint16_t, std::uint64_t>;

struct EchoLoadReport {
  LoadError error = LoadError::None;
  std::string error_detail;
  unsigned connections = 0;  // opened and upgraded
  std::uint64_t connect_failures = 0;
  std::optional<double> seconds;  // length of the measured window; none when it never started
  std::uint64_t messages = 0;     // echoes received and verified in the window (mismatches excluded)
  std::optional<double> messages_per_second;
  std::uint64_t bytes = 0;                   // payload bytes echoed in the window
  LatencySummary latency;                    // send → echo received
  std::uint64_t mismatches = 0;              // echo differs from what was sent
  std::uint64_t protocol_errors = 0;         // the server's frames broke RFC 6455
  std::uint64_t closed_early = 0;            // connections lost before the end
  std::uint64_t rate_misses = 0;             // rate > 0: sends skipped, every connection busy
  CloseCodeCounts close_codes;               // closes received before we asked for one
  std::optional<double> server_cpu_seconds;  // none = not measured (no server_pid, or unreadable)
  std::optional<double> messages_per_server_cpu_second;
};

struct FanoutLoadReport {
  LoadError error = LoadError::None;
  std::string error_detail;
  unsigned subscribers = 0;  // opened and upgraded
  std::uint64_t connect_failures = 0;
  std::uint64_t messages_published = 0;
  std::uint64_t deliveries = 0;  // messages received by subscribers
  std::uint64_t expected_deliveries = 0;
  std::optional<double> seconds;  // first publish → last delivery; none when nothing was delivered
  std::optional<double> deliveries_per_second;
  LatencySummary latency;  // publish → receive, per delivery
  // Channel mode: publish request sent → its reply (the offset) received, per
  // publication; and the publish requests answered with an error.
  LatencySummary publish_latency;
  std::uint64_t publish_errors = 0;
  std::uint64_t gaps = 0;          // messages a subscriber never got (skipped sequence numbers or missing at the end)
  std::uint64_t out_of_order = 0;  // sequence number lower than one already received
  std::uint64_t corrupt = 0;       // payload too short or not what was published
  std::uint64_t protocol_errors = 0;
  std::uint64_t closed_early = 0;      // publisher or subscribers lost before the end of the run
  std::uint64_t publisher_echoes = 0;  // the publisher's own copies (broadcast includes the sender)
  CloseCodeCounts close_codes;         // closed by the server, by code
  std::optional<double> server_cpu_seconds;
  std::optional<double> deliveries_per_server_cpu_second;
  unsigned processes = 1;  // processes that held subscribers (1 = this one)
};

struct IdleLoadReport {
  LoadError error = LoadError::None;
  std::string error_detail;
  unsigned connections = 0;
  std::uint64_t connect_failures = 0;
  double connect_seconds = 0;   // time to open all of them
  CloseCodeCounts close_codes;  // closed by the server while held
};

struct UpgradeLoadReport {
  LoadError error = LoadError::None;
  std::string error_detail;
  std::optional<double> seconds;  // length of the measured window; none when it never started
  std::uint64_t upgrades = 0;     // whole life cycles (101 verified, close answered, FIN) in the window
  std::uint64_t failures = 0;     // connect refused/reset, a bad 101 or close, in the whole run
  std::optional<double> upgrades_per_second;
  std::optional<double> server_cpu_seconds;
  std::optional<double> upgrades_per_server_cpu_second;
};

// Periodic progress (about once a second), called on an engine thread.
struct Progress {
  double elapsed_seconds = 0;
  bool measuring = false;  // false during setup and warmup
  unsigned connections = 0;
  std::uint64_t messages = 0;  // echoes, or deliveries for fanout, so far in the window
  std::uint64_t expected = 0;  // fanout: deliveries the run needs in total; 0 = open-ended (echo)
  double recent_rate = 0;      // per second over the last interval
  std::uint64_t errors = 0;
};
using ProgressCallback = std::function<void(const Progress&)>;

EchoLoadReport run_echo_load(const EchoLoadOptions& options, const ProgressCallback& progress = {});
FanoutLoadReport run_fanout_load(const FanoutLoadOptions& options, const ProgressCallback& progress = {});
// The worker side of a fanout run spread over processes: reads its
// configuration from in_fd, opens its subscribers, and talks to the parent
// (run_fanout_load) in text lines over in_fd/out_fd until the run ends.
// Returns the process exit status (0 = a report was sent).
int run_fanout_worker(int in_fd, int out_fd, const std::atomic<bool>* cancel = nullptr);
// Calls on_ready once every connection is open (or setup failed), then holds them.
// ws:// only (a wss:// URL is BadOptions): the storm measures the server's
// upgrade path, not TLS. Runs on the calling thread.
UpgradeLoadReport run_upgrade_load(const UpgradeLoadOptions& options);
IdleLoadReport run_idle_load(const IdleLoadOptions& options,
                             const std::function<void(const IdleLoadReport&)>& on_ready);

// Why a finished run does not count as a pass, in one line; empty when it
// passed. A run passes when it had no error, measured at least one message
// (delivery), lost no connection early, and every echo (delivery) was the
// right one: no mismatch, gap, reordering, corruption or protocol error.
std::string failure_reason(const EchoLoadReport& report);
std::string failure_reason(const FanoutLoadReport& report);

// Human-readable multi-line summaries and one-line JSON objects (values that
// were not measured are null).
std::string format_report(const EchoLoadReport& report);
std::string format_report(const FanoutLoadReport& report);
std::string to_json(const EchoLoadReport& report);
std::string to_json(const FanoutLoadReport& report);
std::string to_json(const IdleLoadReport& report);
std::string to_json(const UpgradeLoadReport& report);
std::string format_report(const UpgradeLoadReport& report);
std::string failure_reason(const UpgradeLoadReport& report);

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
std::uint64_t raise_file_limit();
// CPU time (user + system) used so far by a process, in seconds: the sum over
// its threads of /proc/PID/task/*/schedstat (nanosecond resolution), or
// utime + stime from /proc/PID/stat (10 ms ticks) when schedstat is missing;
// none when the process cannot be read.
std::optional<double> process_cpu_seconds(int pid);
// The CPU time of the run's server: process_cpu_seconds of server_pid plus
// that of every more_server_pids; none when server_pid is not set or any of
// them cannot be read.
std::optional<double> server_cpu_seconds(const ConnectOptions& options);

}  // namespace conduit::load
