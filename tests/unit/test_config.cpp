// conduitd configuration: durations, sizes, listen addresses, the TOML file and
// --set overrides. Every error is a ConfigError that names the key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>

#include "conduit/config.hpp"

namespace {

using conduit::ConfigError;
using conduit::ConfigSources;
using conduit::DaemonConfig;
using conduit::Duration;
using conduit::load_config;
using conduit::parse_duration;
using conduit::parse_listen;
using conduit::parse_size;
using conduit::ServerMode;
using conduit::SlowConsumerPolicy;

// ---------------------------------------------------------------- parse_*

TEST(ParseDuration, Units) {
  EXPECT_EQ(parse_duration("250ms"), Duration(250));
  EXPECT_EQ(parse_duration("25s"), Duration(25'000));
  EXPECT_EQ(parse_duration("1m"), Duration(60'000));
  EXPECT_EQ(parse_duration("2h"), Duration(7'200'000));
  EXPECT_EQ(parse_duration("0s"), Duration(0));
  EXPECT_EQ(parse_duration("0ms"), Duration(0));
  EXPECT_EQ(parse_duration(" 5s "), Duration(5'000));
}

TEST(ParseDuration, DecimalsAreExactMilliseconds) {
  EXPECT_EQ(parse_duration("1.5s"), Duration(1'500));
  EXPECT_EQ(parse_duration("0.1s"), Duration(100));  // integer arithmetic: never 99
  EXPECT_EQ(parse_duration("0.001s"), Duration(1));
  EXPECT_EQ(parse_duration("0.5m"), Duration(30'000));
  EXPECT_EQ(parse_duration("1.25h"), Duration(4'500'000));
  EXPECT_EQ(parse_duration("2.0ms"), Duration(2));
}

TEST(ParseDuration, RejectsBadInput) {
  for (const char* bad : {"", "s", "ms", "abc", "10parsecs", "-5s", "5 s", "10S", "1d", "99999999999999h", ".5s", "1.s",
                          "1..5s", "1.5ms", "0.0001s", "1e3ms", "+5s", "5s5"}) {
    EXPECT_THROW(parse_duration(bad), std::invalid_argument) << '"' << bad << '"';
  }
}

TEST(ParseDuration, BareNumberIsRefusedNamingTheUnits) {
  for (const char* bare : {"10", "0", "1.5"}) {
    try {
      parse_duration(bare);
      ADD_FAILURE() << "accepted a bare number: " << bare;
    } catch (const std::invalid_argument& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("unit is missing"), std::string::npos) << what;
      EXPECT_NE(what.find("ms, s, m or h"), std::string::npos) << what;
    }
  }
}

TEST(ParseDuration, UpperBound) {
  EXPECT_EQ(parse_duration("1099511627776ms"), Duration(std::int64_t{1} << 40));
  EXPECT_THROW(parse_duration("1099511627777ms"), std::invalid_argument);
  EXPECT_THROW(parse_duration("305420h"), std::invalid_argument);
}

TEST(ParseSize, Units) {
  EXPECT_EQ(parse_size("65536"), 65536u);
  EXPECT_EQ(parse_size("10B"), 10u);
  EXPECT_EQ(parse_size("64KiB"), 65536u);
  EXPECT_EQ(parse_size("1MiB"), 1048576u);
  EXPECT_EQ(parse_size("1GiB"), 1073741824u);
  EXPECT_EQ(parse_size("100KB"), 100'000u);
  EXPECT_EQ(parse_size("100kB"), 100'000u);
  EXPECT_EQ(parse_size("2MB"), 2'000'000u);
  EXPECT_EQ(parse_size("256 KiB"), 262144u);
}

TEST(ParseSize, RejectsBadInput) {
  for (const char* bad : {"", "KiB", "lots", "-1", "12 parsecs", "1TiB", "1kib", "1.5MiB"}) {
    EXPECT_THROW(parse_size(bad), std::invalid_argument) << '"' << bad << '"';
  }
}

TEST(ParseListen, HostPort) {
  auto [h, p] = parse_listen("127.0.0.1:8080");
  EXPECT_EQ(h, "127.0.0.1");
  EXPECT_EQ(p, 8080);
  auto [h0, p0] = parse_listen("0.0.0.0:0");
  EXPECT_EQ(h0, "0.0.0.0");
  EXPECT_EQ(p0, 0);
  auto [h6, p6] = parse_listen("[::1]:9000");
  EXPECT_EQ(h6, "::1");
  EXPECT_EQ(p6, 9000);
  auto [hl, pl] = parse_listen("localhost:1");
  EXPECT_EQ(hl, "127.0.0.1");
  EXPECT_EQ(pl, 1);
}

TEST(ParseListen, RejectsBadInput) {
  for (const char* bad :
       {"", "8080", ":8080", "host", "host:", "host:65536", "host:80x", "[::1]", "[::1]8080", "[::1:8080", "host:-1"}) {
    EXPECT_THROW(parse_listen(bad), std::invalid_argument) << '"' << bad << '"';
  }
}

// ---------------------------------------------------------------- load_config

ConfigSources sets(std::initializer_list<std::pair<std::string, std::string>> kv) {
  ConfigSources s;
  for (const auto& p : kv) s.overrides.push_back(p);
  return s;
}

// Returns the key named by the ConfigError, failing the test if none is thrown.
std::string error_key(const ConfigSources& s, std::string* message = nullptr) {
  try {
    load_config(s);
  } catch (const ConfigError& e) {
    if (message) *message = e.what();
    return e.key();
  }
  ADD_FAILURE() << "expected a ConfigError";
  return "<no error>";
}

class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/conduit_test_config_XXXXXX";
    int fd = mkstemp(name);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    ::close(fd);
    path_ = name;
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(LoadConfig, DefaultsMatchServerOptions) {
  DaemonConfig c = load_config({});
  const conduit::ServerOptions o;
  EXPECT_EQ(c.mode, ServerMode::Echo);
  EXPECT_EQ(c.server.host, "127.0.0.1");
  EXPECT_EQ(c.server.port, 8080);
  EXPECT_EQ(c.server.max_connections, o.max_connections);
  EXPECT_EQ(c.server.max_connections, 10000u);
  EXPECT_EQ(c.server.max_connections_per_ip, 0u);
  EXPECT_EQ(c.server.shutdown_grace, Duration(10'000));
  EXPECT_EQ(c.server.handshake_timeout, o.handshake_timeout);
  EXPECT_EQ(c.server.close_timeout, o.close_timeout);
  EXPECT_EQ(c.server.send_queue_bytes, o.send_queue_bytes);
  EXPECT_EQ(c.server.max_message_bytes, o.max_message_bytes);
  EXPECT_EQ(c.server.slow_consumer, SlowConsumerPolicy::Close);
  EXPECT_EQ(c.server.heartbeat.ping_interval, o.heartbeat.ping_interval);
  EXPECT_EQ(c.server.heartbeat.pong_timeout, o.heartbeat.pong_timeout);
  EXPECT_TRUE(c.server.allowed_origins.empty());
  EXPECT_TRUE(c.server.subprotocols.empty());
  EXPECT_FALSE(c.server.require_subprotocol);
  EXPECT_EQ(c.server.retry_after_seconds, 5u);
  EXPECT_EQ(c.log_level, conduit::LogLevel::info);
  EXPECT_EQ(c.log_format, conduit::LogFormat::text);
  EXPECT_TRUE(c.server.tls.cert_file.empty());
  EXPECT_TRUE(c.server.metrics_host.empty());  // no separate metrics listener by default
}

TEST(LoadConfig, RelayModeAndMetricsListen) {
  EXPECT_EQ(load_config(sets({{"server.mode", "relay"}})).mode, ServerMode::Relay);
  EXPECT_EQ(error_key(sets({{"server.mode", "chat"}})), "server.mode");
  DaemonConfig c = load_config(sets({{"metrics.listen", "127.0.0.1:9100"}}));
  EXPECT_EQ(c.server.metrics_host, "127.0.0.1");
  EXPECT_EQ(c.server.metrics_port, 9100);
  c = load_config(sets({{"metrics.listen", "[::1]:0"}}));
  EXPECT_EQ(c.server.metrics_host, "::1");
  EXPECT_EQ(c.server.metrics_port, 0);
  EXPECT_EQ(error_key(sets({{"metrics.listen", "9100"}})), "metrics.listen");
  EXPECT_EQ(error_key(sets({{"metrics.listen", "127.0.0.1:99999"}})), "metrics.listen");
  EXPECT_TRUE(load_config(sets({{"metrics.listen", "\"\""}})).server.metrics_host.empty());
}

TEST(LoadConfig, FileIsApplied) {
  TempFile f(R"([server]
listen = "0.0.0.0:9001"
mode = "broadcast"
allowed_origins = ["https://a.example", "*.example.com"]
subprotocols = ["v2", "v1"]
require_subprotocol = true
max_connections_per_ip = 4
shutdown_grace = "3s"

[limits]
send_queue_bytes = "256KiB"
slow_consumer = "drop"

[log]
format = "json"
)");
  ConfigSources s;
  s.file = f.path();
  DaemonConfig c = load_config(s);
  EXPECT_EQ(c.server.host, "0.0.0.0");
  EXPECT_EQ(c.server.port, 9001);
  EXPECT_EQ(c.mode, ServerMode::Broadcast);
  EXPECT_EQ(c.server.allowed_origins, (std::vector<std::string>{"https://a.example", "*.example.com"}));
  EXPECT_EQ(c.server.subprotocols, (std::vector<std::string>{"v2", "v1"}));
  EXPECT_TRUE(c.server.require_subprotocol);
  EXPECT_EQ(c.server.max_connections_per_ip, 4u);
  EXPECT_EQ(c.server.shutdown_grace, Duration(3000));
  EXPECT_EQ(c.server.send_queue_bytes, 262144u);
  EXPECT_EQ(c.server.slow_consumer, SlowConsumerPolicy::Drop);
  EXPECT_EQ(c.log_format, conduit::LogFormat::json);
}

TEST(LoadConfig, SetOverridesFileInOrder) {
  TempFile f("[server]\nmax_connections = 50\n");
  ConfigSources s;
  s.file = f.path();
  s.overrides = {{"server.max_connections", "60"}, {"server.max_connections", "70"}};
  EXPECT_EQ(load_config(s).server.max_connections, 70u);
}

TEST(LoadConfig, SetValueParsedAsTomlWhenItParses) {
  DaemonConfig c = load_config(sets({
      {"server.allowed_origins", R"(["https://a.example", "*.b.example"])"},
      {"server.subprotocols", R"(["x"])"},
      {"server.require_subprotocol", "true"},
      {"server.max_connections", "12"},
      {"limits.send_queue_bytes", "4096"},
  }));
  EXPECT_EQ(c.server.allowed_origins, (std::vector<std::string>{"https://a.example", "*.b.example"}));
  EXPECT_EQ(c.server.subprotocols, (std::vector<std::string>{"x"}));
  EXPECT_TRUE(c.server.require_subprotocol);
  EXPECT_EQ(c.server.max_connections, 12u);
  EXPECT_EQ(c.server.send_queue_bytes, 4096u);
}

TEST(LoadConfig, SetValueIsPlainStringWhenNotToml) {
  DaemonConfig c = load_config(sets({
      {"server.listen", "127.0.0.1:0"},
      {"server.mode", "broadcast"},
      {"heartbeat.ping_interval", "200ms"},
      {"limits.send_queue_bytes", "256KiB"},
      {"limits.slow_consumer", "drop"},
      {"log.level", "warn"},
  }));
  EXPECT_EQ(c.server.port, 0);
  EXPECT_EQ(c.mode, ServerMode::Broadcast);
  EXPECT_EQ(c.server.heartbeat.ping_interval, Duration(200));
  EXPECT_EQ(c.server.send_queue_bytes, 262144u);
  EXPECT_EQ(c.server.slow_consumer, SlowConsumerPolicy::Drop);
  EXPECT_EQ(c.log_level, conduit::LogLevel::warn);
  // A quoted TOML string is the same string.
  EXPECT_EQ(load_config(sets({{"server.mode", "\"broadcast\""}})).mode, ServerMode::Broadcast);
  EXPECT_EQ(load_config(sets({{"heartbeat.pong_timeout", "\"2s\""}})).server.heartbeat.pong_timeout, Duration(2000));
}

TEST(LoadConfig, UnknownKeyNamesTheKey) {
  EXPECT_EQ(error_key(sets({{"server.no_such_key", "1"}})), "server.no_such_key");
  EXPECT_EQ(error_key(sets({{"bogus.key", "1"}})), "bogus.key");
  TempFile f("[server]\nnot_a_key = 3\n");
  ConfigSources s;
  s.file = f.path();
  std::string msg;
  EXPECT_EQ(error_key(s, &msg), "server.not_a_key");
  EXPECT_NE(msg.find("unknown key"), std::string::npos) << msg;
  TempFile top("listen = \"127.0.0.1:1\"\n");  // a key outside any section
  s.file = top.path();
  EXPECT_EQ(error_key(s), "listen");
}

TEST(LoadConfig, BadValueNamesTheKey) {
  struct Case {
    const char* key;
    const char* value;
  } cases[] = {
      {"heartbeat.ping_interval", "abc"},
      {"heartbeat.ping_interval", "-5s"},
      {"heartbeat.ping_interval", "10"},  // a number is not a duration
      {"heartbeat.pong_timeout", "0s"},
      {"server.handshake_timeout", "soon"},
      {"server.shutdown_grace", "later"},
      {"limits.max_message_bytes", "lots"},
      {"limits.max_message_bytes", "0"},
      {"limits.send_queue_bytes", "100"},  // below the 1024 floor
      {"limits.slow_consumer", "ignore"},
      {"server.max_connections", "-1"},
      {"server.max_connections", "\"5\""},  // a TOML string is not an integer
      {"server.max_connections", "many"},
      {"server.threads", "2000"},
      {"server.require_subprotocol", "yes"},
      {"server.allowed_origins", "https://a.example"},  // not an array
      {"server.allowed_origins", "[1, 2]"},
      {"server.mode", "nonsense"},
      {"server.listen", "not-an-address"},
      {"server.listen", "127.0.0.1:99999"},
      {"compression.level", "10"},
      {"compression.server_max_window_bits", "7"},
      {"log.level", "loud"},
      {"log.format", "xml"},
  };
  for (const Case& c : cases) {
    std::string msg;
    EXPECT_EQ(error_key(sets({{c.key, c.value}}), &msg), c.key) << c.key << "=" << c.value;
    EXPECT_NE(msg.find(c.key), std::string::npos) << "message must name the key: " << msg;
  }
}

TEST(LoadConfig, BadValueInFileNamesTheKey) {
  TempFile f("[limits]\nmax_message_bytes = \"big\"\n");
  ConfigSources s;
  s.file = f.path();
  EXPECT_EQ(error_key(s), "limits.max_message_bytes");
  TempFile g("[server]\nhandshake_timeout = 10\n");
  s.file = g.path();
  EXPECT_EQ(error_key(s), "server.handshake_timeout");
}

TEST(LoadConfig, BadFileNamesTheFile) {
  ConfigSources s;
  s.file = "/nonexistent-conduit-dir/conduitd.toml";
  std::string msg;
  EXPECT_EQ(error_key(s, &msg), "--config");
  EXPECT_NE(msg.find(s.file), std::string::npos) << msg;

  TempFile f("[server\nlisten = \n");
  s.file = f.path();
  EXPECT_EQ(error_key(s, &msg), "--config");
  EXPECT_NE(msg.find(f.path()), std::string::npos) << msg;
  EXPECT_NE(msg.find("line"), std::string::npos) << msg;
}

TEST(LoadConfig, TlsCertAndKeyMustComeTogether) {
  EXPECT_EQ(error_key(sets({{"tls.cert", "/tmp/c.pem"}})), "tls.key");
  EXPECT_EQ(error_key(sets({{"tls.key", "/tmp/k.pem"}})), "tls.cert");
  DaemonConfig c = load_config(sets({{"tls.cert", "/tmp/c.pem"}, {"tls.key", "/tmp/k.pem"}}));
  EXPECT_EQ(c.server.tls.cert_file, "/tmp/c.pem");
  EXPECT_EQ(c.server.tls.key_file, "/tmp/k.pem");
}

TEST(LoadConfig, EmbeddedDefaultsNameEveryDocumentedSection) {
  std::string_view d = conduit::default_config_toml();
  for (const char* section : {"[server]", "[limits]", "[heartbeat]", "[compression]", "[metrics]", "[tls]", "[log]"}) {
    EXPECT_NE(d.find(section), std::string_view::npos) << section;
  }
}

// ---------------------------------------------------------------- did you mean

TEST(LoadConfig, UnknownKeySuggestsTheClosestKnownOne) {
  std::string message;
  EXPECT_EQ(error_key(sets({{"heartbeat.ping_intervall", "5s"}}), &message), "heartbeat.ping_intervall");
  EXPECT_NE(message.find("did you mean heartbeat.ping_interval?"), std::string::npos) << message;
  // The right setting in the wrong section.
  EXPECT_EQ(error_key(sets({{"server.ping_interval", "5s"}}), &message), "server.ping_interval");
  EXPECT_NE(message.find("did you mean heartbeat.ping_interval?"), std::string::npos) << message;
  // A misspelled section in a file.
  TempFile f("[sever]\nlisten = \"127.0.0.1:1\"\n");
  ConfigSources s;
  s.file = f.path();
  EXPECT_EQ(error_key(s, &message), "sever.listen");
  EXPECT_NE(message.find("did you mean server.listen?"), std::string::npos) << message;
  // Nothing close: no suggestion rather than a silly one.
  EXPECT_EQ(error_key(sets({{"frobnicate.everything", "1"}}), &message), "frobnicate.everything");
  EXPECT_EQ(message.find("did you mean"), std::string::npos) << message;
}

TEST(LoadConfig, DurationKeyWithoutUnitSaysSo) {
  std::string message;
  EXPECT_EQ(error_key(sets({{"heartbeat.ping_interval", "10"}}), &message), "heartbeat.ping_interval");
  EXPECT_NE(message.find("unit is missing"), std::string::npos) << message;
  EXPECT_EQ(load_config(sets({{"heartbeat.ping_interval", "1.5s"}})).server.heartbeat.ping_interval, Duration(1500));
}

// ---------------------------------------------------------------- to_toml

TEST(ToToml, DefaultsRoundTrip) {
  DaemonConfig defaults = load_config({});
  TempFile f(conduit::to_toml(defaults));
  ConfigSources s;
  s.file = f.path();
  EXPECT_EQ(conduit::to_toml(load_config(s)), conduit::to_toml(defaults));
}

TEST(ToToml, EveryChangedKeyRoundTrips) {
  DaemonConfig c = load_config(sets({
      {"server.listen", "[::1]:9001"},
      {"server.mode", "relay"},
      {"server.threads", "3"},
      {"server.handshake_timeout", "1.5s"},
      {"server.shutdown_grace", "2m"},
      {"server.allowed_origins", R"(["https://a.example", "q\"uote"])"},
      {"server.require_subprotocol", "true"},
      {"limits.send_queue_bytes", "64KiB"},
      {"limits.slow_consumer", "drop"},
      {"heartbeat.ping_interval", "250ms"},
      {"heartbeat.pong_timeout", "1h"},
      {"compression.enabled", "true"},
      {"compression.client_max_window_bits", "9"},
      {"metrics.listen", "127.0.0.1:9100"},
      {"log.level", "warn"},
      {"log.format", "json"},
  }));
  std::string text = conduit::to_toml(c);
  EXPECT_NE(text.find("listen = \"[::1]:9001\""), std::string::npos) << text;
  EXPECT_NE(text.find("handshake_timeout = \"1500ms\""), std::string::npos) << text;
  EXPECT_NE(text.find("shutdown_grace = \"2m\""), std::string::npos) << text;
  EXPECT_NE(text.find("send_queue_bytes = 65536"), std::string::npos) << text;
  EXPECT_NE(text.find("level = \"warn\""), std::string::npos) << text;
  TempFile f(text);
  ConfigSources s;
  s.file = f.path();
  DaemonConfig back = load_config(s);
  EXPECT_EQ(conduit::to_toml(back), text);
  EXPECT_EQ(back.server.allowed_origins, (std::vector<std::string>{"https://a.example", "q\"uote"}));
  EXPECT_EQ(back.server.heartbeat.pong_timeout, Duration(3'600'000));
  EXPECT_EQ(back.mode, ServerMode::Relay);
  EXPECT_EQ(back.log_level, conduit::LogLevel::warn);
}

}  // namespace
