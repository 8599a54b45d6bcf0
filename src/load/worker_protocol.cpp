#include "load/worker_protocol.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>

namespace conduit::load {
namespace {

std::string codes_to_text(const CloseCodeCounts& codes) {
  std::string out;
  for (auto [code, n] : codes) out += fmt::format("{}{}:{}", out.empty() ? "" : ",", code, n);
  return out.empty() ? "-" : out;
}

bool codes_from_text(const std::string& text, CloseCodeCounts& codes) {
  if (text == "-") return true;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    unsigned code = 0;
    unsigned long long n = 0;
    if (std::sscanf(item.c_str(), "%u:%llu", &code, &n) != 2 || code > 65535) return false;
    codes[static_cast<std::uint16_t>(code)] += n;
  }
  return true;
}

}  // namespace

std::optional<std::string> LineReader::read_line(Milliseconds wait, const std::atomic<bool>* cancel) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (eof_ || std::chrono::steady_clock::now() >= deadline || (cancel && cancel->load())) return std::nullopt;
    poll_read(100);
  }
}

bool LineReader::poll_read(int timeout_ms) {
  pollfd pfd{fd_, POLLIN, 0};
  const int r = ::poll(&pfd, 1, timeout_ms);
  if (r < 0 && errno == EINTR) return false;
  if (r <= 0) {
    if (r < 0) eof_ = true;
    return false;
  }
  char buf[4096];
  const ssize_t n = ::read(fd_, buf, sizeof buf);
  if (n < 0 && errno == EINTR) return false;
  if (n <= 0) {
    eof_ = true;
    return false;
  }
  buffer_.append(buf, static_cast<std::size_t>(n));
  return true;
}

std::string format_config(const FanoutLoadOptions& o, unsigned share, unsigned concurrency) {
  return fmt::format("config {} {} {} {} {} {} {} {} {} {}\t{}\t{}\n", share, o.size, o.messages, o.window, o.threads,
                     o.timeout.count(), o.connect_timeout.count(), concurrency, o.insecure ? 1 : 0, o.url,
                     one_line(o.ca_file), one_line(o.channel));
}

bool parse_config(const std::string& line, FanoutLoadOptions& o) {
  std::istringstream in(line);
  std::string kind;
  long long timeout_ms = 0, connect_ms = 0;
  unsigned insecure = 0;
  if (!(in >> kind >> o.subscribers >> o.size >> o.messages >> o.window >> o.threads >> timeout_ms >> connect_ms >>
        o.connect_concurrency >> insecure) ||
      kind != "config")
    return false;
  const std::string rest = rest_of(in);
  const std::size_t tab = rest.find('\t');
  if (tab == std::string::npos) return false;
  const std::size_t tab2 = rest.find('\t', tab + 1);
  if (tab2 == std::string::npos) return false;
  o.url = rest.substr(0, tab);
  o.ca_file = rest.substr(tab + 1, tab2 - tab - 1);
  o.channel = rest.substr(tab2 + 1);
  o.insecure = insecure != 0;
  o.timeout = Milliseconds(timeout_ms);
  o.connect_timeout = Milliseconds(connect_ms);
  return true;
}

std::string format_report_line(const FanoutLoadReport& r, std::uint64_t last_delivery_ns,
                               const LatencyHistogram& histogram) {
  return fmt::format("report {} {} {} {} {} {} {} {} {} {} {} {} {}\n", r.subscribers, r.connect_failures, r.deliveries,
                     r.gaps, r.out_of_order, r.corrupt, r.protocol_errors, r.closed_early, last_delivery_ns,
                     static_cast<unsigned>(r.error), codes_to_text(r.close_codes), histogram.serialize(),
                     one_line(r.error_detail));
}

bool parse_report_line(std::istringstream& in, FanoutLoadReport& r, std::uint64_t& last_delivery_ns,
                       LatencyHistogram& histogram) {
  unsigned error = 0;
  std::string codes, hist[4];
  if (!(in >> r.subscribers >> r.connect_failures >> r.deliveries >> r.gaps >> r.out_of_order >> r.corrupt >>
        r.protocol_errors >> r.closed_early >> last_delivery_ns >> error >> codes >> hist[0] >> hist[1] >> hist[2] >>
        hist[3]))
    return false;
  r.error = load_error_from(error);
  r.error_detail = rest_of(in);
  return codes_from_text(codes, r.close_codes) &&
         histogram.parse(hist[0] + " " + hist[1] + " " + hist[2] + " " + hist[3]);
}

std::string one_line(std::string text) {
  for (char& ch : text)
    if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
  return text;
}

LoadError load_error_from(unsigned value) {
  return value <= static_cast<unsigned>(LoadError::WorkerFailed) ? static_cast<LoadError>(value)
                                                                 : LoadError::BadOptions;
}

std::string rest_of(std::istringstream& in) {
  std::string rest;
  std::getline(in, rest);
  if (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
  return rest;
}

}  // namespace conduit::load
