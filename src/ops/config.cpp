#include "ops/config.hpp"

#include <toml++/toml.h>
#include <charconv>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <tuple>

namespace conduit::ops {

namespace {

constexpr std::string_view kDefaults =
    R"(# conduitd embedded defaults. Every key is documented in docs/configuration.md.
[server]
listen = "127.0.0.1:8080"
mode = "echo"                 # echo | broadcast | relay
threads = 1                   # event loops; 0 = one per core
backlog = 1024
handshake_timeout = "10s"     # slowloris guard
close_timeout = "5s"          # wait for the peer's close frame
shutdown_grace = "10s"        # SIGTERM: drain this long, then drop
max_connections = 10000       # 503 + Retry-After beyond this
max_connections_per_ip = 0    # 0 = unlimited
retry_after = 5               # seconds, in 503 responses
allowed_origins = []          # empty = any origin; "*.example.com" wildcards
subprotocols = []             # server preference order
require_subprotocol = false

[limits]
max_message_bytes = 65536     # larger → close 1009
send_queue_bytes = 1048576    # per-connection outbound cap
slow_consumer = "close"       # close (1008) | drop

[heartbeat]
ping_interval = "25s"         # 0s disables
pong_timeout = "10s"

[compression]
enabled = false               # permessage-deflate
level = 6
server_no_context_takeover = false
client_no_context_takeover = false
server_max_window_bits = 15
client_max_window_bits = 15
min_bytes = 64

[tls]
cert = ""                     # PEM; with key, enables wss
key = ""

[metrics]
listen = ""                   # HOST:PORT for a second, HTTP-only listener ("" = none)

[log]
level = "info"                # trace | debug | info | warn | error | off
format = "text"               # text | json
)";

enum class Kind { String, Integer, Boolean, Duration, Size, StringArray };

struct KeySpec {
  Kind kind;
  std::function<void(DaemonConfig&, const toml::node&, const std::string&)> apply;
};

std::string type_name(Kind k) {
  switch (k) {
    case Kind::String:
      return "a string";
    case Kind::Integer:
      return "an integer";
    case Kind::Boolean:
      return "true or false";
    case Kind::Duration:
      return "a duration such as \"250ms\", \"25s\" or \"1m\"";
    case Kind::Size:
      return "a size in bytes such as 65536 or \"64KiB\"";
    case Kind::StringArray:
      return "an array of strings";
  }
  return "a value";
}

std::string get_string(const toml::node& n, const std::string& key) {
  if (auto v = n.value<std::string>()) return *v;
  throw ConfigError(key, "expected " + type_name(Kind::String));
}
std::int64_t get_int(const toml::node& n, const std::string& key, std::int64_t lo, std::int64_t hi) {
  auto v = n.value<std::int64_t>();
  if (!n.is_integer() || !v) throw ConfigError(key, "expected " + type_name(Kind::Integer));
  if (*v < lo || *v > hi) {
    throw ConfigError(
        key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + std::to_string(*v));
  }
  return *v;
}
bool get_bool(const toml::node& n, const std::string& key) {
  if (!n.is_boolean()) throw ConfigError(key, "expected " + type_name(Kind::Boolean));
  return *n.value<bool>();
}
Duration get_duration(const toml::node& n, const std::string& key) {
  if (!n.is_string()) throw ConfigError(key, "expected " + type_name(Kind::Duration));
  try {
    return parse_duration(*n.value<std::string>());
  } catch (const std::invalid_argument& e) {
    throw ConfigError(key, e.what());
  }
}
std::size_t get_size(const toml::node& n, const std::string& key) {
  try {
    if (n.is_integer()) {
      auto v = *n.value<std::int64_t>();
      if (v < 0) throw std::invalid_argument("must not be negative");
      return static_cast<std::size_t>(v);
    }
    if (n.is_string()) return parse_size(*n.value<std::string>());
  } catch (const std::invalid_argument& e) {
    throw ConfigError(key, e.what());
  }
  throw ConfigError(key, "expected " + type_name(Kind::Size));
}
std::vector<std::string> get_strings(const toml::node& n, const std::string& key) {
  const toml::array* arr = n.as_array();
  if (!arr) throw ConfigError(key, "expected " + type_name(Kind::StringArray));
  std::vector<std::string> out;
  for (const toml::node& e : *arr) {
    if (!e.is_string()) throw ConfigError(key, "expected " + type_name(Kind::StringArray));
    out.push_back(*e.value<std::string>());
  }
  return out;
}

// A HOST:PORT value (server.listen, metrics.listen); a bad one names its key.
void get_listen(const toml::node& n, const std::string& key, std::string& host, std::uint16_t& port) {
  try {
    std::tie(host, port) = parse_listen(get_string(n, key));
  } catch (const std::invalid_argument& e) {
    throw ConfigError(key, e.what());
  }
}

const std::map<std::string, KeySpec>& schema() {
  static const std::map<std::string, KeySpec> s = {
      {"server.listen",
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          get_listen(n, k, c.server.host, c.server.port);
        }}},
      {"server.mode",
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          std::string m = get_string(n, k);
          if (m == "echo") c.mode = ServerMode::Echo;
          else if (m == "broadcast") c.mode = ServerMode::Broadcast;
          else if (m == "relay") c.mode = ServerMode::Relay;
          else throw ConfigError(k, "expected \"echo\", \"broadcast\" or \"relay\", got \"" + m + "\"");
        }}},
      {"server.threads",
       {Kind::Integer, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.threads = static_cast<unsigned>(get_int(n, k, 0, 1024));
        }}},
      {"server.backlog",
       {Kind::Integer, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.backlog = static_cast<int>(get_int(n, k, 1, 65535));
        }}},
      {"server.handshake_timeout",
       {Kind::Duration, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.handshake_timeout = get_duration(n, k);
          if (c.server.handshake_timeout.count() <= 0) throw ConfigError(k, "must be greater than 0");
        }}},
      {"server.close_timeout",
       {Kind::Duration, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.close_timeout = get_duration(n, k);
          if (c.server.close_timeout.count() <= 0) throw ConfigError(k, "must be greater than 0");
        }}},
      {"server.shutdown_grace",
       {Kind::Duration, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.shutdown_grace = get_duration(n, k);
        }}},
      {"server.max_connections",
       {Kind::Integer, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.max_connections = static_cast<std::size_t>(get_int(n, k, 0, 100000000));
        }}},
      {"server.max_connections_per_ip",
       {Kind::Integer, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.max_connections_per_ip = static_cast<std::size_t>(get_int(n, k, 0, 100000000));
        }}},
      {"server.retry_after",
       {Kind::Integer, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.retry_after_seconds = static_cast<unsigned>(get_int(n, k, 0, 86400));
        }}},
      {"server.allowed_origins",
       {Kind::StringArray, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.allowed_origins = get_strings(n, k);
        }}},
      {"server.subprotocols",
       {Kind::StringArray, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.subprotocols = get_strings(n, k);
        }}},
      {"server.require_subprotocol",
       {Kind::Boolean, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.require_subprotocol = get_bool(n, k);
        }}},
      {"limits.max_message_bytes",
       {Kind::Size, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.max_message_bytes = get_size(n, k);
          if (c.server.max_message_bytes == 0) throw ConfigError(k, "must be greater than 0");
          if (c.server.max_message_bytes > (std::size_t{1} << 31)) throw ConfigError(k, "must be at most 2GiB");
        }}},
      {"limits.send_queue_bytes",
       {Kind::Size, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.send_queue_bytes = get_size(n, k);
          if (c.server.send_queue_bytes < 1024) throw ConfigError(k, "must be at least 1024");
        }}},
      {"limits.slow_consumer",
       {Kind::String, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          std::string v = get_string(n, k);
          if (v == "close") c.server.slow_consumer = SlowConsumerPolicy::Close;
          else if (v == "drop") c.server.slow_consumer = SlowConsumerPolicy::Drop;
          else throw ConfigError(k, "expected \"close\" or \"drop\", got \"" + v + "\"");
        }}},
      {"heartbeat.ping_interval",
       {Kind::Duration, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.heartbeat.ping_interval = get_duration(n, k);
        }}},
      {"heartbeat.pong_timeout",
       {Kind::Duration, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.heartbeat.pong_timeout = get_duration(n, k);
          if (c.server.heartbeat.pong_timeout.count() <= 0) throw ConfigError(k, "must be greater than 0");
        }}},
      {"compression.enabled",
       {Kind::Boolean, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.compression.enabled = get_bool(n, k);
        }}},
      {"compression.level",
       {Kind::Integer, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.compression.level = static_cast<int>(get_int(n, k, 1, 9));
        }}},
      {"compression.server_no_context_takeover",
       {Kind::Boolean, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.compression.server_no_context_takeover = get_bool(n, k);
        }}},
      {"compression.client_no_context_takeover",
       {Kind::Boolean, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.compression.client_no_context_takeover = get_bool(n, k);
        }}},
      {"compression.server_max_window_bits",
       {Kind::Integer, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.compression.server_max_window_bits = static_cast<int>(get_int(n, k, 8, 15));
        }}},
      {"compression.client_max_window_bits",
       {Kind::Integer, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.compression.client_max_window_bits = static_cast<int>(get_int(n, k, 8, 15));
        }}},
      {"compression.min_bytes",
       {Kind::Size, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.compression.min_compress_bytes = get_size(n, k);
        }}},
      {"metrics.listen",
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          if (get_string(n, k).empty()) {  // "": no separate metrics listener
            c.server.metrics_host.clear();
            c.server.metrics_port = 0;
            return;
          }
          get_listen(n, k, c.server.metrics_host, c.server.metrics_port);
        }}},
      {"tls.cert",
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) { c.server.tls.cert_file = get_string(n, k); }}},
      {"tls.key",
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) { c.server.tls.key_file = get_string(n, k); }}},
      {"log.level",
       {Kind::String, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          std::string v = get_string(n, k);
          static const char* levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
          bool ok = false;
          for (const char* l : levels) ok = ok || v == l;
          if (!ok) throw ConfigError(k, "expected trace|debug|info|warn|error|critical|off, got \"" + v + "\"");
          c.log_level = v;
        }}},
      {"log.format",
       {Kind::String, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          std::string v = get_string(n, k);
          if (v != "text" && v != "json") throw ConfigError(k, "expected \"text\" or \"json\", got \"" + v + "\"");
          c.log_format = v;
        }}},
  };
  return s;
}

// Walks a parsed table and applies every leaf; unknown keys are errors.
void apply_table(DaemonConfig& cfg, const toml::table& table, const std::string& origin) {
  for (const auto& [section_key, section_node] : table) {
    std::string section(section_key.str());
    const toml::table* sub = section_node.as_table();
    if (!sub) throw ConfigError(section, "unknown key" + origin + " (settings live in sections, e.g. [server])");
    for (const auto& [leaf_key, leaf_node] : *sub) {
      std::string key = section + "." + std::string(leaf_key.str());
      auto it = schema().find(key);
      if (it == schema().end()) throw ConfigError(key, "unknown key" + origin);
      it->second.apply(cfg, leaf_node, key);
    }
  }
}

void apply_override(DaemonConfig& cfg, const std::string& key, const std::string& value) {
  auto it = schema().find(key);
  if (it == schema().end()) throw ConfigError(key, "unknown key (from --set)");
  // The value is read as a TOML value when it parses as one (numbers,
  // booleans, arrays, quoted strings) and as a plain string otherwise.
  toml::table parsed;
  bool as_toml = false;
  try {
    parsed = toml::parse("v = " + value);
    as_toml = true;
  } catch (const toml::parse_error&) {
  }
  if (as_toml && parsed.contains("v")) {
    const toml::node& node = *parsed.get("v");
    // Plain words that happen to be TOML (e.g. true) stay what they look like;
    // for string-typed keys a TOML number is still accepted as its text.
    if (it->second.kind == Kind::String && !node.is_string()) {
      it->second.apply(cfg, toml::value<std::string>(value), key);
    } else {
      it->second.apply(cfg, node, key);
    }
    return;
  }
  it->second.apply(cfg, toml::value<std::string>(value), key);
}

}  // namespace

std::string_view default_config_toml() { return kDefaults; }

Duration parse_duration(std::string_view text) {
  std::string_view t = text;
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  std::int64_t value = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (ec != std::errc() || ptr == t.data() || value < 0) {
    throw std::invalid_argument("bad duration \"" + std::string(text) + "\" (use e.g. \"250ms\", \"25s\", \"1m\")");
  }
  std::string_view unit(ptr, static_cast<std::size_t>(t.data() + t.size() - ptr));
  std::int64_t mult = 0;
  if (unit == "ms")
    mult = 1;
  else if (unit == "s")
    mult = 1000;
  else if (unit == "m")
    mult = 60'000;
  else if (unit == "h")
    mult = 3'600'000;
  else
    throw std::invalid_argument("bad duration \"" + std::string(text) + "\" (unit must be ms, s, m or h)");
  if (value > (std::int64_t{1} << 40) / mult) throw std::invalid_argument("duration too large");
  return Duration(value * mult);
}

std::size_t parse_size(std::string_view text) {
  std::uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr == text.data()) {
    throw std::invalid_argument("bad size \"" + std::string(text) + "\" (use e.g. 65536, \"64KiB\", \"1MiB\")");
  }
  std::string_view unit(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  std::uint64_t mult = 0;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "KiB")
    mult = 1024;
  else if (unit == "MiB")
    mult = 1024 * 1024;
  else if (unit == "GiB")
    mult = 1024ull * 1024 * 1024;
  else if (unit == "KB" || unit == "kB")
    mult = 1000;
  else if (unit == "MB")
    mult = 1000 * 1000;
  else if (unit == "GB")
    mult = 1000ull * 1000 * 1000;
  else
    throw std::invalid_argument("bad size unit in \"" + std::string(text) + "\" (B, KiB, MiB, GiB, KB, MB, GB)");
  return static_cast<std::size_t>(value * mult);
}

std::pair<std::string, std::uint16_t> parse_listen(std::string_view text) {
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      throw std::invalid_argument("expected HOST:PORT or [IPv6]:PORT, got \"" + std::string(text) + "\"");
    }
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      throw std::invalid_argument("expected HOST:PORT, got \"" + std::string(text) + "\"");
    }
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (host == "localhost") host = "127.0.0.1";
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535 || port_text.empty()) {
    throw std::invalid_argument("bad port in \"" + std::string(text) + "\"");
  }
  return {host, static_cast<std::uint16_t>(port)};
}

DaemonConfig load_config(const ConfigSources& sources) {
  DaemonConfig cfg;
  apply_table(cfg, toml::parse(kDefaults), " (embedded defaults)");
  if (!sources.file.empty()) {
    std::ifstream in(sources.file);
    if (!in) throw ConfigError("--config", "cannot read file '" + sources.file + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    toml::table table;
    try {
      table = toml::parse(ss.str(), sources.file);
    } catch (const toml::parse_error& e) {
      std::ostringstream msg;
      msg << "invalid TOML in '" << sources.file << "' at line " << e.source().begin.line << ": " << e.description();
      throw ConfigError("--config", msg.str());
    }
    apply_table(cfg, table, " in '" + sources.file + "'");
  }
  for (const auto& [key, value] : sources.overrides) apply_override(cfg, key, value);
  if (cfg.server.tls.cert_file.empty() != cfg.server.tls.key_file.empty()) {
    throw ConfigError(cfg.server.tls.cert_file.empty() ? "tls.cert" : "tls.key",
                      "tls.cert and tls.key must be set together");
  }
  return cfg;
}

}  // namespace conduit::ops
