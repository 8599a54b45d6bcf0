#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <tuple>

#include "conduit/config.hpp"
#include "pubsub/channel_name.hpp"

namespace conduit {

namespace {

constexpr std::string_view kDefaults =
    R"(# conduitd embedded defaults. Every key is documented in docs/configuration.md.
[server]
listen = "127.0.0.1:8080"
mode = "pubsub"               # pubsub | echo | broadcast | relay
threads = 1                   # event loops; 0 = one per core
io = "epoll"                  # epoll | io_uring (falls back to epoll where io_uring is unavailable)
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
publish_rate = 0              # pubsub: publish requests per second per connection; 0 = no limit

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

[channels]                    # pubsub mode
history_size = 100            # publications kept per channel for recovery; 0 = no history
history_ttl = "5m"            # and at most this old; "0s" = no age limit
max_subscriptions_per_connection = 128
max_channel_length = 255      # bytes
# A namespace (the part of a channel name before ':') overrides any of these:
# [channels.namespaces.chat]
# history_size = 0

[api]                         # HTTP API: POST /api/publish, GET /api/channels, GET /api/history
key = ""                      # "Authorization: apikey KEY"; "" = API disabled (404)
max_body_bytes = "64KiB"      # larger request bodies → 413

[auth]                        # JWT (HS256) at the WebSocket handshake
jwt_secret = ""               # "" (and no jwt_secret_file) = no auth: everything allowed
jwt_secret_file = ""          # read at startup, trailing newlines dropped; exclusive with jwt_secret
leeway = "0s"                 # clock skew allowed for exp and nbf (whole seconds)

[redis]                       # pubsub only: channels shared by every node on the same Redis
url = ""                      # redis://[:password@]host[:port][/db]; "" = channels local to this node
prefix = "conduit"            # prefix of every key and pub/sub channel name in Redis
meta_ttl = "24h"              # a channel's offset and epoch live this long after its last publication
max_backlog_bytes = "64MiB"   # received from Redis, not yet queued: above it a channel is resynced later

[web]
enabled = true                # the chat at /, /dashboard, /conduit.js and /stats (files built into conduitd)
)";

enum class Kind { String, Integer, Number, Boolean, Duration, Size, StringArray };

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
    case Kind::Number:
      return "a number";
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
double get_number(const toml::node& n, const std::string& key, double lo, double hi) {
  double v = 0;
  if (n.is_integer())
    v = static_cast<double>(*n.value<std::int64_t>());
  else if (n.is_floating_point())
    v = *n.value<double>();
  else
    throw ConfigError(key, "expected " + type_name(Kind::Number));
  if (!std::isfinite(v) || v < lo || v > hi) {
    std::ostringstream msg;
    msg << "must be between " << lo << " and " << hi << ", got " << v;
    throw ConfigError(key, msg.str());
  }
  return v;
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

// API keys and secrets travel in a header line: visible ASCII only.
std::string get_token(const toml::node& n, const std::string& key) {
  std::string v = get_string(n, key);
  for (char c : v) {
    if (c <= ' ' || c > '~') throw ConfigError(key, "must be visible ASCII characters only (no spaces)");
  }
  return v;
}

// A HOST:PORT value (server.listen, metrics.listen); a bad one names its key.
void get_listen(const toml::node& n, const std::string& key, std::string& host, std::uint16_t& port) {
  try {
    std::tie(host, port) = parse_listen(get_string(n, key));
  } catch (const std::invalid_argument& e) {
    throw ConfigError(key, e.what());
  }
}

std::map<std::string, KeySpec> base_schema() {
  return {
      {"server.listen",
       {Kind::String, [](DaemonConfig& c, const toml::node& n,
                         const std::string& k) { get_listen(n, k, c.server.host, c.server.port); }}},
      {"server.mode",
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          std::string m = get_string(n, k);
          if (m == "pubsub")
            c.mode = ServerMode::Pubsub;
          else if (m == "echo")
            c.mode = ServerMode::Echo;
          else if (m == "broadcast")
            c.mode = ServerMode::Broadcast;
          else if (m == "relay")
            c.mode = ServerMode::Relay;
          else
            throw ConfigError(k, "expected \"pubsub\", \"echo\", \"broadcast\" or \"relay\", got \"" + m + "\"");
        }}},
      {"server.threads",
       {Kind::Integer, [](DaemonConfig& c, const toml::node& n,
                          const std::string& k) { c.server.threads = static_cast<unsigned>(get_int(n, k, 0, 1024)); }}},
      {"server.io",
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          std::string v = get_string(n, k);
          if (v == "epoll")
            c.server.io = IoEngine::Epoll;
          else if (v == "io_uring")
            c.server.io = IoEngine::IoUring;
          else
            throw ConfigError(k, "expected \"epoll\" or \"io_uring\", got \"" + v + "\"");
        }}},
      {"server.backlog",
       {Kind::Integer, [](DaemonConfig& c, const toml::node& n,
                          const std::string& k) { c.server.backlog = static_cast<int>(get_int(n, k, 1, 65535)); }}},
      {"server.handshake_timeout",
       {Kind::Duration,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.handshake_timeout = get_duration(n, k);
          if (c.server.handshake_timeout.count() <= 0) throw ConfigError(k, "must be greater than 0");
        }}},
      {"server.close_timeout",
       {Kind::Duration,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.close_timeout = get_duration(n, k);
          if (c.server.close_timeout.count() <= 0) throw ConfigError(k, "must be greater than 0");
        }}},
      {"server.shutdown_grace",
       {Kind::Duration, [](DaemonConfig& c, const toml::node& n,
                           const std::string& k) { c.server.shutdown_grace = get_duration(n, k); }}},
      {"server.max_connections",
       {Kind::Integer,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.max_connections = static_cast<std::size_t>(get_int(n, k, 0, 100000000));
        }}},
      {"server.max_connections_per_ip",
       {Kind::Integer,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.max_connections_per_ip = static_cast<std::size_t>(get_int(n, k, 0, 100000000));
        }}},
      {"server.retry_after",
       {Kind::Integer,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.retry_after_seconds = static_cast<unsigned>(get_int(n, k, 0, 86400));
        }}},
      {"server.allowed_origins",
       {Kind::StringArray, [](DaemonConfig& c, const toml::node& n,
                              const std::string& k) { c.server.allowed_origins = get_strings(n, k); }}},
      {"server.subprotocols",
       {Kind::StringArray,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) { c.server.subprotocols = get_strings(n, k); }}},
      {"server.require_subprotocol",
       {Kind::Boolean, [](DaemonConfig& c, const toml::node& n,
                          const std::string& k) { c.server.require_subprotocol = get_bool(n, k); }}},
      {"limits.max_message_bytes",
       {Kind::Size,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.max_message_bytes = get_size(n, k);
          if (c.server.max_message_bytes == 0) throw ConfigError(k, "must be greater than 0");
          if (c.server.max_message_bytes > (std::size_t{1} << 31)) throw ConfigError(k, "must be at most 2GiB");
        }}},
      {"limits.send_queue_bytes",
       {Kind::Size,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.send_queue_bytes = get_size(n, k);
          if (c.server.send_queue_bytes < 1024) throw ConfigError(k, "must be at least 1024");
        }}},
      {"limits.slow_consumer",
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          std::string v = get_string(n, k);
          if (v == "close")
            c.server.slow_consumer = SlowConsumerPolicy::Close;
          else if (v == "drop")
            c.server.slow_consumer = SlowConsumerPolicy::Drop;
          else
            throw ConfigError(k, "expected \"close\" or \"drop\", got \"" + v + "\"");
        }}},
      {"heartbeat.ping_interval",
       {Kind::Duration, [](DaemonConfig& c, const toml::node& n,
                           const std::string& k) { c.server.heartbeat.ping_interval = get_duration(n, k); }}},
      {"heartbeat.pong_timeout",
       {Kind::Duration,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.heartbeat.pong_timeout = get_duration(n, k);
          if (c.server.heartbeat.pong_timeout.count() <= 0) throw ConfigError(k, "must be greater than 0");
        }}},
      {"compression.enabled",
       {Kind::Boolean, [](DaemonConfig& c, const toml::node& n,
                          const std::string& k) { c.server.compression.enabled = get_bool(n, k); }}},
      {"compression.level",
       {Kind::Integer,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.compression.level = static_cast<int>(get_int(n, k, 1, 9));
        }}},
      {"compression.server_no_context_takeover",
       {Kind::Boolean, [](DaemonConfig& c, const toml::node& n,
                          const std::string& k) { c.server.compression.server_no_context_takeover = get_bool(n, k); }}},
      {"compression.client_no_context_takeover",
       {Kind::Boolean, [](DaemonConfig& c, const toml::node& n,
                          const std::string& k) { c.server.compression.client_no_context_takeover = get_bool(n, k); }}},
      {"compression.server_max_window_bits",
       {Kind::Integer,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.compression.server_max_window_bits = static_cast<int>(get_int(n, k, 8, 15));
        }}},
      {"compression.client_max_window_bits",
       {Kind::Integer,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.server.compression.client_max_window_bits = static_cast<int>(get_int(n, k, 8, 15));
        }}},
      {"compression.min_bytes",
       {Kind::Size, [](DaemonConfig& c, const toml::node& n,
                       const std::string& k) { c.server.compression.min_compress_bytes = get_size(n, k); }}},
      {"web.enabled",
       {Kind::Boolean,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) { c.web_enabled = get_bool(n, k); }}},
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
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          std::string v = get_string(n, k);
          auto level = parse_log_level(v);
          if (!level) throw ConfigError(k, "expected trace|debug|info|warn|error|critical|off, got \"" + v + "\"");
          c.log_level = *level;
        }}},
      {"log.format",
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          std::string v = get_string(n, k);
          if (v == "text")
            c.log_format = LogFormat::text;
          else if (v == "json")
            c.log_format = LogFormat::json;
          else
            throw ConfigError(k, "expected \"text\" or \"json\", got \"" + v + "\"");
        }}},
      {"limits.publish_rate",
       {Kind::Number, [](DaemonConfig& c, const toml::node& n,
                         const std::string& k) { c.pubsub.publish_rate = get_number(n, k, 0, 1'000'000); }}},
      {"api.key",
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) { c.pubsub.api_key = get_token(n, k); }}},
      {"api.max_body_bytes",
       {Kind::Size,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.pubsub.api_max_body_bytes = get_size(n, k);
          if (c.pubsub.api_max_body_bytes == 0) throw ConfigError(k, "must be greater than 0");
          if (c.pubsub.api_max_body_bytes > (std::size_t{1} << 30)) throw ConfigError(k, "must be at most 1GiB");
        }}},
      {"redis.url",
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.pubsub.redis.url = get_string(n, k);
          if (!c.pubsub.redis.url.empty() && !c.pubsub.redis.url.starts_with("redis://"))
            throw ConfigError(k, "expected redis://[:password@]host[:port][/db] or \"\"");
        }}},
      {"redis.prefix",
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.pubsub.redis.prefix = get_token(n, k);
          if (c.pubsub.redis.prefix.empty()) throw ConfigError(k, "must not be empty");
          if (c.pubsub.redis.prefix.find_first_of("{}") != std::string::npos)
            throw ConfigError(k, "must not contain { or } (they delimit the channel in key names)");
        }}},
      {"redis.meta_ttl",
       {Kind::Duration,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          const Duration d = get_duration(n, k);
          if (d.count() < 1000) throw ConfigError(k, "must be at least 1s");
          c.pubsub.redis.meta_ttl = std::chrono::duration_cast<std::chrono::milliseconds>(d);
        }}},
      {"redis.max_backlog_bytes",
       {Kind::Size,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          c.pubsub.redis.max_backlog_bytes = get_size(n, k);
          if (c.pubsub.redis.max_backlog_bytes < 65536) throw ConfigError(k, "must be at least 64KiB");
        }}},
      {"auth.jwt_secret",
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) { c.pubsub.jwt_secret = get_string(n, k); }}},
      {"auth.jwt_secret_file",
       {Kind::String,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) { c.jwt_secret_file = get_string(n, k); }}},
      {"auth.leeway",
       {Kind::Duration,
        [](DaemonConfig& c, const toml::node& n, const std::string& k) {
          const Duration d = get_duration(n, k);
          if (d.count() % 1000 != 0)
            throw ConfigError(k, "must be a whole number of seconds (token times are in seconds)");
          c.pubsub.jwt_leeway = std::chrono::duration_cast<std::chrono::seconds>(d);
        }}},
  };
}

// The keys of [channels], which [channels.namespaces.NAME] can override: one
// definition (kind, range) for both. Each sets its field of the overrides.
struct ChannelKeySpec {
  Kind kind;
  std::function<void(ChannelNamespaceOverrides&, const toml::node&, const std::string&)> apply;
};

const std::map<std::string, ChannelKeySpec>& channel_keys() {
  static const std::map<std::string, ChannelKeySpec> s = {
      {"history_size",
       {Kind::Integer,
        [](ChannelNamespaceOverrides& o, const toml::node& n, const std::string& k) {
          o.history_size = static_cast<std::size_t>(get_int(n, k, 0, 1'000'000));
        }}},
      {"history_ttl",
       {Kind::Duration, [](ChannelNamespaceOverrides& o, const toml::node& n,
                           const std::string& k) { o.history_ttl = get_duration(n, k); }}},
      {"max_subscriptions_per_connection",
       {Kind::Integer,
        [](ChannelNamespaceOverrides& o, const toml::node& n, const std::string& k) {
          o.max_subscriptions_per_connection = static_cast<std::size_t>(get_int(n, k, 1, 1'000'000));
        }}},
      {"max_channel_length",
       {Kind::Integer,
        [](ChannelNamespaceOverrides& o, const toml::node& n, const std::string& k) {
          o.max_channel_length = static_cast<std::size_t>(get_int(n, k, 1, 4096));
        }}},
  };
  return s;
}

void apply_overrides(ChannelOptions& options, const ChannelNamespaceOverrides& o) {
  if (o.history_size) options.history_size = *o.history_size;
  if (o.history_ttl) options.history_ttl = *o.history_ttl;
  if (o.max_subscriptions_per_connection)
    options.max_subscriptions_per_connection = *o.max_subscriptions_per_connection;
  if (o.max_channel_length) options.max_channel_length = *o.max_channel_length;
}

const std::map<std::string, KeySpec>& schema() {
  static const std::map<std::string, KeySpec> s = [] {
    std::map<std::string, KeySpec> keys = base_schema();
    for (const auto& [leaf, spec] : channel_keys()) {
      keys.emplace("channels." + leaf,
                   KeySpec{spec.kind, [apply = spec.apply](DaemonConfig& c, const toml::node& n, const std::string& k) {
                             ChannelNamespaceOverrides o;
                             apply(o, n, k);
                             apply_overrides(c.pubsub.channels.defaults, o);
                           }});
    }
    return keys;
  }();
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

// [channels.namespaces.NAME] tables: the namespaces' overrides.
constexpr std::string_view kNamespaces = "channels.namespaces";

// The known key an unknown one was most likely meant to be: the closest
// spelling within a few edits, or the same setting in another section
// ("server.ping_interval" → "heartbeat.ping_interval"); "" when nothing is close.
std::string closest_key(const std::string& key) {
  std::string_view leaf = key;
  if (auto dot = leaf.rfind('.'); dot != std::string_view::npos) leaf.remove_prefix(dot + 1);
  const std::size_t threshold = std::max<std::size_t>(2, key.size() / 4);
  std::string best;
  std::size_t best_distance = SIZE_MAX;
  auto consider = [&](const std::string& known) {
    const std::size_t d = edit_distance(key, known);
    const bool same_leaf = std::string_view(known).substr(known.rfind('.') + 1) == leaf;
    if ((d <= threshold || same_leaf) && d < best_distance) {
      best_distance = d;
      best = known;
    }
  };
  for (const auto& [known, spec] : schema()) consider(known);
  consider(std::string(kNamespaces));
  return best;
}

// The closest namespace key to a misspelled one ("channels.namespaces.chat.
// history_sise" → "channels.namespaces.chat.history_size"); "" when none.
std::string closest_namespace_key(const std::string& prefix, const std::string& leaf) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, leaf.size() / 4) + 1;
  for (const auto& [known, spec] : channel_keys()) {
    const std::size_t d = edit_distance(leaf, known);
    if (d < best_distance) {
      best_distance = d;
      best = prefix + known;
    }
  }
  return best;
}

ConfigError unknown_key(const std::string& key, const std::string& origin) {
  std::string suggestion = closest_key(key);
  return ConfigError(key, "unknown key" + origin + (suggestion.empty() ? "" : "; did you mean " + suggestion + "?"));
}

// The overrides of namespace `name` (declared, with no override yet, on first
// use); a name that could not be a namespace is an error naming it.
ChannelNamespaceOverrides& namespace_overrides(DaemonConfig& cfg, const std::string& name) {
  if (!pubsub::is_valid_namespace_name(name)) {
    throw ConfigError(std::string(kNamespaces) + "." + name,
                      "bad namespace name \"" + name +
                          "\": 1 or more of A-Z a-z 0-9 _ - . @ / = (no ':', which separates the namespace from the "
                          "rest of a channel name)");
  }
  return cfg.pubsub.channels.namespaces[name];
}

void apply_namespace_key(DaemonConfig& cfg, const std::string& name, const std::string& leaf, const toml::node& value,
                         const std::string& origin) {
  ChannelNamespaceOverrides& o = namespace_overrides(cfg, name);
  const std::string prefix = std::string(kNamespaces) + "." + name + ".";
  auto it = channel_keys().find(leaf);
  if (it == channel_keys().end()) {
    std::string suggestion = closest_namespace_key(prefix, leaf);
    throw ConfigError(prefix + leaf, "unknown key" + origin +
                                         " (a namespace overrides history_size, history_ttl, "
                                         "max_subscriptions_per_connection or max_channel_length)" +
                                         (suggestion.empty() ? "" : "; did you mean " + suggestion + "?"));
  }
  it->second.apply(o, value, prefix + leaf);
}

// [channels.namespaces.NAME] tables (or the equivalent inline tables).
void apply_namespaces(DaemonConfig& cfg, const toml::node& node, const std::string& origin) {
  const toml::table* namespaces = node.as_table();
  if (!namespaces) {
    throw ConfigError(std::string(kNamespaces),
                      "expected tables, e.g. [channels.namespaces.chat] with history_size = 0");
  }
  for (const auto& [name_key, ns_node] : *namespaces) {
    const std::string name(name_key.str());
    const toml::table* keys = ns_node.as_table();
    if (!keys) {
      throw ConfigError(std::string(kNamespaces) + "." + name,
                        "expected a table, e.g. [channels.namespaces." + name + "] with history_size = 0");
    }
    namespace_overrides(cfg, name);  // declared even when it overrides nothing
    for (const auto& [leaf_key, value] : *keys)
      apply_namespace_key(cfg, name, std::string(leaf_key.str()), value, origin);
  }
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
      if (key == kNamespaces) {
        apply_namespaces(cfg, leaf_node, origin);
        continue;
      }
      auto it = schema().find(key);
      if (it == schema().end()) throw unknown_key(key, origin);
      it->second.apply(cfg, leaf_node, key);
    }
  }
}

// Calls apply with the --set value read as a TOML value when it parses as one
// (numbers, booleans, arrays, quoted strings) and as a plain string
// otherwise. For string-typed keys a TOML value of another type is taken as
// its text (plain words that happen to be TOML, e.g. true, stay what they
// look like).
void with_override_value(Kind kind, const std::string& value, const std::function<void(const toml::node&)>& apply) {
  toml::table parsed;
  bool as_toml = false;
  try {
    parsed = toml::parse("v = " + value);
    as_toml = true;
  } catch (const toml::parse_error&) {
  }
  if (as_toml && parsed.contains("v") && !(kind == Kind::String && !parsed.get("v")->is_string())) {
    apply(*parsed.get("v"));
    return;
  }
  apply(toml::value<std::string>(value));
}

void apply_override(DaemonConfig& cfg, const std::string& key, const std::string& value) {
  const std::string ns_prefix = std::string(kNamespaces) + ".";
  if (key.rfind(ns_prefix, 0) == 0) {
    // channels.namespaces.NAME.KEY: NAME may hold dots, KEY does not.
    const std::string rest = key.substr(ns_prefix.size());
    const auto dot = rest.rfind('.');
    if (dot == std::string::npos || dot == 0) {
      throw ConfigError(key, "expected channels.namespaces.NAME.KEY, e.g. channels.namespaces.chat.history_size");
    }
    const std::string name = rest.substr(0, dot);
    const std::string leaf = rest.substr(dot + 1);
    auto it = channel_keys().find(leaf);
    const Kind kind = it == channel_keys().end() ? Kind::String : it->second.kind;
    with_override_value(kind, value,
                        [&](const toml::node& n) { apply_namespace_key(cfg, name, leaf, n, " (from --set)"); });
    return;
  }
  auto it = schema().find(key);
  if (it == schema().end()) throw unknown_key(key, " (from --set)");
  with_override_value(it->second.kind, value, [&](const toml::node& n) { it->second.apply(cfg, n, key); });
}

// auth.jwt_secret_file: the secret is the file's content without its
// trailing line break(s). Read once, at load: a secret that cannot be read
// must stop the start, never leave the daemon running without auth.
std::string read_secret_file(const std::string& path) {
  const std::string key = "auth.jwt_secret_file";
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw ConfigError(key, "cannot read file '" + path + "'" + (err ? std::string(": ") + std::strerror(err) : ""));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw ConfigError(key, "cannot read file '" + path + "'");
  std::string secret = ss.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty())
    throw ConfigError(key, "file '" + path + "' is empty (a secret is needed; unset the key to run without auth)");
  return secret;
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
  if (!cfg.pubsub.redis.url.empty() && cfg.mode != ServerMode::Pubsub) {
    throw ConfigError("redis.url", "only server.mode = \"pubsub\" uses Redis (channels); unset it or use pubsub");
  }
  if (!cfg.jwt_secret_file.empty()) {
    if (!cfg.pubsub.jwt_secret.empty()) {
      throw ConfigError("auth.jwt_secret_file", "auth.jwt_secret and auth.jwt_secret_file are both set; set one");
    }
    cfg.pubsub.jwt_secret = read_secret_file(cfg.jwt_secret_file);
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

// A table key: bare when TOML allows it (A-Z a-z 0-9 _ -), quoted otherwise.
std::string toml_key(const std::string& key) {
  const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
  });
  return bare ? key : toml_string(key);
}

// The shortest decimal text that reads back as the same double ("10", "0.5").
std::string toml_number(double v) {
  char buf[400];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  if (ec != std::errc()) return std::to_string(v);
  return std::string(buf, end);
}

std::string listen_text(const std::string& host, std::uint16_t port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

std::string to_toml(const DaemonConfig& c) {
  const ServerOptions& o = c.server;
  auto duration = [](Duration d) { return toml_string(format_duration(d)); };
  auto boolean = [](bool b) { return std::string(b ? "true" : "false"); };
  const char* mode = c.mode == ServerMode::Pubsub      ? "pubsub"
                     : c.mode == ServerMode::Echo      ? "echo"
                     : c.mode == ServerMode::Broadcast ? "broadcast"
                                                       : "relay";
  const ChannelServiceOptions& p = c.pubsub;
  const ChannelOptions& ch = p.channels.defaults;
  std::ostringstream out;
  out << "[server]\n"
      << "listen = " << toml_string(listen_text(o.host, o.port)) << "\n"
      << "mode = " << toml_string(mode) << "\n"
      << "threads = " << o.threads << "\n"
      << "io = " << toml_string(o.io == IoEngine::IoUring ? "io_uring" : "epoll") << "\n"
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
      << "publish_rate = " << toml_number(p.publish_rate) << "\n"
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
      << "\n[web]\n"
      << "enabled = " << boolean(c.web_enabled) << "\n"
      << "\n[log]\n"
      << "level = " << toml_string(to_string(c.log_level)) << "\n"
      << "format = " << toml_string(c.log_format == LogFormat::json ? "json" : "text") << "\n"
      << "\n[channels]\n"
      << "history_size = " << ch.history_size << "\n"
      << "history_ttl = " << duration(ch.history_ttl) << "\n"
      << "max_subscriptions_per_connection = " << ch.max_subscriptions_per_connection << "\n"
      << "max_channel_length = " << ch.max_channel_length << "\n";
  for (const auto& [name, ns] : p.channels.namespaces) {
    out << "\n[channels.namespaces." << toml_key(name) << "]\n";
    if (ns.history_size) out << "history_size = " << *ns.history_size << "\n";
    if (ns.history_ttl) out << "history_ttl = " << duration(*ns.history_ttl) << "\n";
    if (ns.max_subscriptions_per_connection)
      out << "max_subscriptions_per_connection = " << *ns.max_subscriptions_per_connection << "\n";
    if (ns.max_channel_length) out << "max_channel_length = " << *ns.max_channel_length << "\n";
  }
  // The key and the secret are printed as configured (the output is a
  // configuration that gives the same daemon): treat it as a secret.
  out << "\n[api]\n"
      << "key = " << toml_string(p.api_key) << "\n"
      << "max_body_bytes = " << p.api_max_body_bytes << "\n"
      << "\n[auth]\n"
      << "jwt_secret = " << toml_string(c.jwt_secret_file.empty() ? p.jwt_secret : std::string()) << "\n"
      << "jwt_secret_file = " << toml_string(c.jwt_secret_file) << "\n"
      << "leeway = " << duration(std::chrono::duration_cast<Duration>(p.jwt_leeway)) << "\n"
      << "\n[redis]\n"
      << "url = " << toml_string(p.redis.url) << "\n"
      << "prefix = " << toml_string(p.redis.prefix) << "\n"
      << "meta_ttl = " << duration(std::chrono::duration_cast<Duration>(p.redis.meta_ttl)) << "\n"
      << "max_backlog_bytes = " << p.redis.max_backlog_bytes << "\n";
  return out.str();
}

}  // namespace conduit
