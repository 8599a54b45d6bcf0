#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <tuple>

#include "conduit/config.hpp"

namespace conduit {

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
      return "a duration such as \"250ms\", \"1.5s\", \"25s\" or \"1m\" (units: ms, s, m, h)";
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
  std::string text;
  if (n.is_string()) {
    text = *n.value<std::string>();
  } else if (n.is_integer() || n.is_floating_point()) {
    std::ostringstream number;  // refused below with "the unit is missing"
    if (n.is_integer())
      number << *n.value<std::int64_t>();
    else
      number << *n.value<double>();
    text = number.str();
  } else {
    throw ConfigError(key, "expected " + type_name(Kind::Duration));
  }
  try {
    return parse_duration(text);
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
          auto level = parse_log_level(v);
          if (!level) throw ConfigError(k, "expected trace|debug|info|warn|error|critical|off, got \"" + v + "\"");
          c.log_level = *level;
        }}},
      {"log.format",
       {Kind::String, [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          std::string v = get_string(n, k);
          if (v == "text") c.log_format = LogFormat::text;
          else if (v == "json") c.log_format = LogFormat::json;
          else throw ConfigError(k, "expected \"text\" or \"json\", got \"" + v + "\"");
        }}},
  };
  return s;
}

// Edit distance between two keys (Levenshtein), for "did you mean".
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The known key an unknown one was most likely meant to be: the closest
// spelling within a few edits, or the same setting in another section
// ("server.ping_interval" → "heartbeat.ping_interval"); "" when nothing is close.
std::string closest_key(const std::string& key) {
  std::string_view leaf = key;
  if (auto dot = leaf.rfind('.'); dot != std::string_view::npos) leaf.remove_prefix(dot + 1);
  const std::size_t threshold = std::max<std::size_t>(2, key.size() / 4);
  std::string best;
  std::size_t best_distance = SIZE_MAX;
  for (const auto& [known, spec] : schema()) {
    const std::size_t d = edit_distance(key, known);
    const bool same_leaf = std::string_view(known).substr(known.rfind('.') + 1) == leaf;
    if ((d <= threshold || same_leaf) && d < best_distance) {
      best_distance = d;
      best = known;
    }
  }
  return best;
}

ConfigError unknown_key(const std::string& key, const std::string& origin) {
  std::string suggestion = closest_key(key);
  return ConfigError(key, "unknown key" + origin + (suggestion.empty() ? "" : "; did you mean " + suggestion + "?"));
}

// Walks a parsed table and applies every leaf; unknown keys are errors.
void apply_table(DaemonConfig& cfg, const toml::table& table, const std::string& origin) {
  for (const auto& [section_key, section_node] : table) {
    std::string section(section_key.str());
    const toml::table* sub = section_node.as_table();
    if (!sub) {
      std::string suggestion = closest_key(section);
      throw ConfigError(section, "unknown key" + origin + " (settings live in sections, e.g. [server])" +
                                     (suggestion.empty() ? "" : "; did you mean " + suggestion + "?"));
    }
    for (const auto& [leaf_key, leaf_node] : *sub) {
      std::string key = section + "." + std::string(leaf_key.str());
      auto it = schema().find(key);
      if (it == schema().end()) throw unknown_key(key, origin);
      it->second.apply(cfg, leaf_node, key);
    }
  }
}

void apply_override(DaemonConfig& cfg, const std::string& key, const std::string& value) {
  auto it = schema().find(key);
  if (it == schema().end()) throw unknown_key(key, " (from --set)");
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
  auto bad = [&](const char* why) {
    return std::invalid_argument("bad duration \"" + std::string(text) + "\": " + why +
                                 " (a number and a unit: ms, s, m or h, e.g. \"250ms\", \"1.5s\", \"25s\", \"1m\")");
  };
  std::string_view t = text;
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  // Integer arithmetic only: "0.1s" is exactly 100 ms, never 99.
  constexpr std::uint64_t kMaxMs = std::uint64_t{1} << 40;
  std::size_t i = 0;
  std::uint64_t whole = 0;
  std::size_t whole_digits = 0;
  for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i, ++whole_digits) {
    if (whole_digits >= 15) throw bad("too large");
    whole = whole * 10 + static_cast<std::uint64_t>(t[i] - '0');
  }
  if (whole_digits == 0) throw bad("it does not start with a number");
  std::uint64_t fraction = 0;
  std::uint64_t fraction_scale = 1;
  if (i < t.size() && t[i] == '.') {
    ++i;
    std::size_t start = i;
    for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) {
      if (i - start >= 9) throw bad("too many decimals");
      fraction = fraction * 10 + static_cast<std::uint64_t>(t[i] - '0');
      fraction_scale *= 10;
    }
    if (i == start) throw bad("no digit after the decimal point");
  }
  std::string_view unit = t.substr(i);
  std::uint64_t ms_per_unit = 0;
  if (unit == "ms")
    ms_per_unit = 1;
  else if (unit == "s")
    ms_per_unit = 1000;
  else if (unit == "m")
    ms_per_unit = 60'000;
  else if (unit == "h")
    ms_per_unit = 3'600'000;
  else if (unit.empty())
    throw bad("the unit is missing");
  else
    throw bad("unknown unit");
  if (whole > kMaxMs / ms_per_unit) throw bad("too large");
  if ((fraction * ms_per_unit) % fraction_scale != 0) throw bad("not a whole number of milliseconds");
  std::uint64_t ms = whole * ms_per_unit + fraction * ms_per_unit / fraction_scale;
  if (ms > kMaxMs) throw bad("too large");
  return Duration(static_cast<Duration::rep>(ms));
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

namespace {

std::string toml_string(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + '"';
}

// The largest unit that represents the value exactly: 25000 → "25s".
std::string format_duration(Duration d) {
  auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string toml_strings(const std::vector<std::string>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + toml_string(v[i]);
  return out + "]";
}

std::string listen_text(const std::string& host, std::uint16_t port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

std::string to_toml(const DaemonConfig& c) {
  const ServerOptions& o = c.server;
  auto duration = [](Duration d) { return toml_string(format_duration(d)); };
  auto boolean = [](bool b) { return std::string(b ? "true" : "false"); };
  const char* mode = c.mode == ServerMode::Echo ? "echo" : c.mode == ServerMode::Broadcast ? "broadcast" : "relay";
  std::ostringstream out;
  out << "[server]\n"
      << "listen = " << toml_string(listen_text(o.host, o.port)) << "\n"
      << "mode = " << toml_string(mode) << "\n"
      << "threads = " << o.threads << "\n"
      << "backlog = " << o.backlog << "\n"
      << "handshake_timeout = " << duration(o.handshake_timeout) << "\n"
      << "close_timeout = " << duration(o.close_timeout) << "\n"
      << "shutdown_grace = " << duration(o.shutdown_grace) << "\n"
      << "max_connections = " << o.max_connections << "\n"
      << "max_connections_per_ip = " << o.max_connections_per_ip << "\n"
      << "retry_after = " << o.retry_after_seconds << "\n"
      << "allowed_origins = " << toml_strings(o.allowed_origins) << "\n"
      << "subprotocols = " << toml_strings(o.subprotocols) << "\n"
      << "require_subprotocol = " << boolean(o.require_subprotocol) << "\n"
      << "\n[limits]\n"
      << "max_message_bytes = " << o.max_message_bytes << "\n"
      << "send_queue_bytes = " << o.send_queue_bytes << "\n"
      << "slow_consumer = " << toml_string(o.slow_consumer == SlowConsumerPolicy::Close ? "close" : "drop") << "\n"
      << "\n[heartbeat]\n"
      << "ping_interval = " << duration(o.heartbeat.ping_interval) << "\n"
      << "pong_timeout = " << duration(o.heartbeat.pong_timeout) << "\n"
      << "\n[compression]\n"
      << "enabled = " << boolean(o.compression.enabled) << "\n"
      << "level = " << o.compression.level << "\n"
      << "server_no_context_takeover = " << boolean(o.compression.server_no_context_takeover) << "\n"
      << "client_no_context_takeover = " << boolean(o.compression.client_no_context_takeover) << "\n"
      << "server_max_window_bits = " << o.compression.server_max_window_bits << "\n"
      << "client_max_window_bits = " << o.compression.client_max_window_bits << "\n"
      << "min_bytes = " << o.compression.min_compress_bytes << "\n"
      << "\n[tls]\n"
      << "cert = " << toml_string(o.tls.cert_file) << "\n"
      << "key = " << toml_string(o.tls.key_file) << "\n"
      << "\n[metrics]\n"
      << "listen = " << toml_string(o.metrics_host.empty() ? "" : listen_text(o.metrics_host, o.metrics_port)) << "\n"
      << "\n[log]\n"
      << "level = " << toml_string(to_string(c.log_level)) << "\n"
      << "format = " << toml_string(c.log_format == LogFormat::json ? "json" : "text") << "\n";
  return out.str();
}

}  // namespace conduit
