#include "ops/log.hpp"

#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>
#include <spdlog/sinks/base_sink.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "conduit/json_string.hpp"
#include "conduit/log.hpp"

namespace conduit {
namespace {

using Buffer = spdlog::memory_buf_t;

void append(Buffer& out, std::string_view s) { out.append(s.data(), s.data() + s.size()); }

LogLevel from_spdlog(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
      return LogLevel::trace;
    case spdlog::level::debug:
      return LogLevel::debug;
    case spdlog::level::info:
      return LogLevel::info;
    case spdlog::level::warn:
      return LogLevel::warn;
    case spdlog::level::err:
      return LogLevel::error;
    case spdlog::level::critical:
      return LogLevel::critical;
    default:
      return LogLevel::off;
  }
}

spdlog::level::level_enum to_spdlog(LogLevel l) {
  switch (l) {
    case LogLevel::trace:
      return spdlog::level::trace;
    case LogLevel::debug:
      return spdlog::level::debug;
    case LogLevel::info:
      return spdlog::level::info;
    case LogLevel::warn:
      return spdlog::level::warn;
    case LogLevel::error:
      return spdlog::level::err;
    case LogLevel::critical:
      return spdlog::level::critical;
    case LogLevel::off:
      break;
  }
  return spdlog::level::off;
}

// "2026-12-04T10:15:00.123Z" (UTC, so lines from several hosts sort together).
void append_timestamp(const spdlog::details::log_msg& msg, Buffer& out) {
  auto t = std::chrono::system_clock::to_time_t(msg.time);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char ts[40];
  int n = std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  append(out, std::string_view(ts, static_cast<std::size_t>(n)));
}

// A JSON number as RFC 8259 writes one: -?(0|[1-9][0-9]*)(.[0-9]+)?. Anything
// else (an address, "007", "1e3") stays a string, so a field never changes type
// because of how its value happens to look.
bool is_json_number(std::string_view v) {
  std::size_t i = 0;
  if (i < v.size() && v[i] == '-') ++i;
  if (i >= v.size()) return false;
  if (v[i] == '0') {
    ++i;
  } else if (v[i] >= '1' && v[i] <= '9') {
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
  } else {
    return false;
  }
  if (i < v.size() && v[i] == '.') {
    ++i;
    std::size_t digits = i;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
    if (i == digits) return false;
  }
  return i == v.size();
}

// Turns `key=value key="quoted value"` into ,"key":value pairs; false when the
// line is not made of such pairs (it is then logged whole as "msg").
bool append_pairs(std::string_view text, Buffer& dest) {
  Buffer fields;
  std::size_t i = 0;
  bool any = false;
  std::string value;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    if (i >= text.size()) break;
    std::size_t eq = text.find('=', i);
    std::size_t sp = text.find(' ', i);
    if (eq == std::string_view::npos || eq == i || (sp != std::string_view::npos && sp < eq)) return false;
    std::string_view key = text.substr(i, eq - i);
    value.clear();
    bool quoted = false;
    std::size_t j = eq + 1;
    if (j < text.size() && text[j] == '"') {
      quoted = true;
      ++j;
      while (j < text.size() && text[j] != '"') value.push_back(text[j++]);
      if (j >= text.size()) return false;
      ++j;
    } else {
      while (j < text.size() && text[j] != ' ') value.push_back(text[j++]);
    }
    fields.push_back(',');
    append_json_string(fields, key);
    fields.push_back(':');
    if (!quoted && is_json_number(value)) {
      append(fields, value);
    } else {
      append_json_string(fields, value);
    }
    any = true;
    i = j;
  }
  if (!any) return false;
  dest.append(fields.data(), fields.data() + fields.size());
  return true;
}

class LineFormatter final : public spdlog::formatter {
 public:
  explicit LineFormatter(LogFormat format) : format_(format) {}
  void format(const spdlog::details::log_msg& msg, Buffer& dest) override {
    std::string_view level = to_string(from_spdlog(msg.level));
    std::string_view text(msg.payload.data(), msg.payload.size());
    if (format_ == LogFormat::text) {
      append_timestamp(msg, dest);
      dest.push_back(' ');
      append(dest, level);
      dest.push_back(' ');
      append(dest, text);
      dest.push_back('\n');
      return;
    }
    append(dest, "{\"ts\":\"");
    append_timestamp(msg, dest);
    append(dest, "\",\"level\":\"");
    append(dest, level);
    dest.push_back('"');
    if (!append_pairs(text, dest)) {
      append(dest, ",\"msg\":");
      append_json_string(dest, text);
    }
    append(dest, "}\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<LineFormatter>(format_); }

 private:
  LogFormat format_;
};

// Writes whole lines to stderr: one fwrite per line under the sink's mutex, so
// lines from several loop threads never interleave.
class StderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    Buffer line;
    formatter_->format(msg, line);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

class HandlerSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit HandlerSink(LogHandler handler) : handler_(std::move(handler)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    handler_(from_spdlog(msg.level), std::string_view(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}

 private:
  LogHandler handler_;
};

std::shared_ptr<spdlog::logger> make_logger(LogOptions options) {
  spdlog::sink_ptr sink;
  if (options.handler) {
    sink = std::make_shared<HandlerSink>(std::move(options.handler));
  } else {
    sink = std::make_shared<StderrSink>();
    sink->set_formatter(std::make_unique<LineFormatter>(options.format));
  }
  // Not registered with spdlog: the application's own spdlog setup (default
  // logger, registry, set_level) neither affects nor is affected by ours.
  auto logger = std::make_shared<spdlog::logger>("conduit", std::move(sink));
  logger->set_level(to_spdlog(options.level));
  return logger;
}

// The current logger. Replaced loggers are kept alive (a handful per process
// at most) because a loop thread may be writing through one while another
// thread reconfigures; that is why this is a raw atomic pointer.
std::mutex g_config_mu;
std::vector<std::shared_ptr<spdlog::logger>> g_loggers;
std::atomic<spdlog::logger*> g_current{nullptr};

spdlog::logger* install(LogOptions options) {
  auto logger = make_logger(std::move(options));
  std::lock_guard lock(g_config_mu);
  g_loggers.push_back(logger);
  g_current.store(logger.get(), std::memory_order_release);
  return logger.get();
}

}  // namespace

void configure_logging(LogOptions options) { install(std::move(options)); }

void silence_logging() {
  LogOptions options;
  options.level = LogLevel::off;
  install(std::move(options));
}

void log(LogLevel level, std::string_view line) {
  if (level == LogLevel::off) return;
  ops::logger().log(to_spdlog(level), "{}", line);
}

std::optional<LogLevel> parse_log_level(std::string_view name) {
  for (auto l : {LogLevel::trace, LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error, LogLevel::critical,
                 LogLevel::off}) {
    if (to_string(l) == name) return l;
  }
  return std::nullopt;
}

std::string_view to_string(LogLevel level) {
  switch (level) {
    case LogLevel::trace:
      return "trace";
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warn:
      return "warn";
    case LogLevel::error:
      return "error";
    case LogLevel::critical:
      return "critical";
    case LogLevel::off:
      break;
  }
  return "off";
}

namespace ops {

spdlog::logger& logger() noexcept {
  spdlog::logger* l = g_current.load(std::memory_order_acquire);
  if (l) return *l;
  // First use without configuration: the documented default. Two threads may
  // race here; both install a default logger and either one wins.
  return *install(LogOptions{});
}

}  // namespace ops
}  // namespace conduit
