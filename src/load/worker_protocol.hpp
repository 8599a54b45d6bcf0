// The text protocol between a multi-process fanout run's parent and its worker
// processes, over the workers' stdin/stdout, one line per message:
//
//   parent → worker  config SUBSCRIBERS SIZE MESSAGES WINDOW THREADS TIMEOUT_MS CONNECT_TIMEOUT_MS CONCURRENCY
//                           INSECURE URL<TAB>CA_FILE
//   worker → parent  ready OPENED FAILED ERROR DETAIL          (all its subscribers are open, or setup failed)
//   parent → worker  start                                     (every worker is ready; publishing begins)
//   worker → parent  progress N                                (every live subscriber here has messages 0..N-1)
//   worker → parent  report SUBSCRIBERS FAILED DELIVERIES GAPS OUT_OF_ORDER CORRUPT PROTOCOL_ERRORS CLOSED_EARLY
//                           LAST_NS ERROR CLOSE_CODES HIST_COUNT HIST_SUM HIST_MAX HIST_BUCKETS DETAIL
//   parent → worker  stop                                      (end early; EOF on stdin means the same)
//
// URL and CA_FILE end the config line and are split at the tab: a URL never
// contains whitespace (the URL parser rejects it), a file name may contain spaces.
#pragma once
#include <atomic>
#include <optional>
#include <sstream>
#include <string>

#include "conduit_load/load.hpp"
#include "load/histogram.hpp"

namespace conduit::load {

// Reads lines from a file descriptor with a bounded wait.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  // nullopt on EOF, error, timeout or cancel.
  std::optional<std::string> read_line(Milliseconds wait, const std::atomic<bool>* cancel);
  // Waits up to timeout_ms for input; false when nothing arrived. Sets eof().
  bool poll_read(int timeout_ms);
  bool eof() const noexcept { return eof_; }
  bool has_line() const noexcept { return buffer_.find('\n') != std::string::npos; }

 private:
  int fd_;
  std::string buffer_;
  bool eof_ = false;
};

// The config line for a worker holding `share` subscribers.
std::string format_config(const FanoutLoadOptions& options, unsigned share, unsigned concurrency);
// Parses a config line into options; false when it is not one.
bool parse_config(const std::string& line, FanoutLoadOptions& options);

// A worker's final report line, and its parse on the parent's side.
std::string format_report_line(const FanoutLoadReport& r, std::uint64_t last_delivery_ns,
                               const LatencyHistogram& histogram);
bool parse_report_line(std::istringstream& in, FanoutLoadReport& r, std::uint64_t& last_delivery_ns,
                       LatencyHistogram& histogram);

// Replaces line breaks so free text fits in one protocol line.
std::string one_line(std::string text);
LoadError load_error_from(unsigned value);
// Rest of the stream after the next space (the free-text DETAIL field).
std::string rest_of(std::istringstream& in);

}  // namespace conduit::load
