// Where libconduit's log lines go, and how they look.
//
// The library never writes to stdout (that belongs to the application) and never
// installs signal handlers. It logs operational events (open, close, protocol
// errors, refused handshakes, shutdown...) as one line each:
//
//     event=close id=7 remote=127.0.0.1:53312 code=1000 reason="bye" duration_ms=9
//
// By default those lines go to stderr as text at level info. An application
// can change the level, switch to JSON, silence the library, or take every line
// itself with a handler. Thread-safe; lines logged while the configuration
// changes go to either the old or the new destination, never nowhere.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

namespace conduit {

enum class LogLevel : std::uint8_t { trace, debug, info, warn, error, critical, off };

enum class LogFormat : std::uint8_t {
  // 2026-12-04T10:15:00.123Z info event=open id=3 remote=127.0.0.1:5000 ...
  text,
  // {"ts":"2026-12-04T10:15:00.123Z","level":"info","event":"open","id":3,...}
  // One JSON object per line. Unquoted numeric values become JSON numbers;
  // quoted values and everything else are strings; a line that is not
  // key=value pairs becomes {"msg": "..."}.
  json,
};

// Receives the level and the line as logged ("event=open id=3 ..."), without
// timestamp or newline. Called on the thread that logs (often an event-loop
// thread): keep it short and never call back into the library from it.
using LogHandler = std::function<void(LogLevel level, std::string_view line)>;

struct LogOptions {
  LogLevel level = LogLevel::info;     // lines below this level are dropped; off = silent
  LogFormat format = LogFormat::text;  // how lines written to stderr look (ignored with a handler)
  LogHandler handler;                  // empty = write to stderr
};

// Replaces the library's logging configuration (the default is LogOptions{}:
// stderr, text, info).
void configure_logging(LogOptions options);

// Same as configure_logging({.level = LogLevel::off}): the library logs nothing.
void silence_logging();

// Logs one line through the library's logger, so an application's own lines
// (e.g. "event=signal signal=SIGTERM") share its destination and format.
void log(LogLevel level, std::string_view line);

// "trace", "debug", "info", "warn", "error", "critical", "off" (the names used
// in text and JSON lines and in conduitd's log.level key); nullopt otherwise.
std::optional<LogLevel> parse_log_level(std::string_view name);
std::string_view to_string(LogLevel level);

}  // namespace conduit
