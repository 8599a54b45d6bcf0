#include "ops/log.hpp"

#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <string_view>

namespace conduit::ops {
namespace {

void json_escape(std::string_view in, spdlog::memory_buf_t& out) {
  for (char c : in) {
    switch (c) {
      case '"':
        out.append(std::string_view("\\\""));
        break;
      case '\\':
        out.append(std::string_view("\\\\"));
        break;
      case '\n':
        out.append(std::string_view("\\n"));
        break;
      case '\r':
        out.append(std::string_view("\\r"));
        break;
      case '\t':
        out.append(std::string_view("\\t"));
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out.append(std::string_view(buf));
        } else {
          out.push_back(c);
        }
    }
  }
}

// {"ts":"...","level":"info","event":"open","id":"3",...}; a message that is
// not key=value pairs becomes "msg".
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto t = std::chrono::system_clock::to_time_t(msg.time);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char ts[64];
    std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    dest.append(std::string_view("{\"ts\":\""));
    dest.append(std::string_view(ts));
    dest.append(std::string_view("\",\"level\":\""));
    auto lv = spdlog::level::to_string_view(msg.level);
    dest.append(std::string_view(lv.data(), lv.size()));
    dest.push_back('"');
    std::string_view text(msg.payload.data(), msg.payload.size());
    if (!append_pairs(text, dest)) {
      dest.append(std::string_view(",\"msg\":\""));
      json_escape(text, dest);
      dest.push_back('"');
    }
    dest.append(std::string_view("}\n"));
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }

 private:
  static bool append_pairs(std::string_view text, spdlog::memory_buf_t& dest) {
    spdlog::memory_buf_t fields;
    std::size_t i = 0;
    bool any = false;
    while (i < text.size()) {
      while (i < text.size() && text[i] == ' ') ++i;
      if (i >= text.size()) break;
      std::size_t eq = text.find('=', i);
      std::size_t sp = text.find(' ', i);
      if (eq == std::string_view::npos || (sp != std::string_view::npos && sp < eq)) return false;
      std::string_view key = text.substr(i, eq - i);
      std::string value;
      std::size_t j = eq + 1;
      if (j < text.size() && text[j] == '"') {
        ++j;
        while (j < text.size() && text[j] != '"') value.push_back(text[j++]);
        if (j >= text.size()) return false;
        ++j;
      } else {
        while (j < text.size() && text[j] != ' ') value.push_back(text[j++]);
      }
      fields.append(std::string_view(",\""));
      json_escape(key, fields);
      fields.append(std::string_view("\":\""));
      json_escape(value, fields);
      fields.push_back('"');
      any = true;
      i = j;
    }
    if (!any) return false;
    dest.append(fields.data(), fields.data() + fields.size());
    return true;
  }
};

}  // namespace

void setup_logging(const std::string& level, const std::string& format) {
  auto logger = std::make_shared<spdlog::logger>("conduit", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  if (format == "json") {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace conduit::ops
