// conduitd configuration: durations, sizes, listen addresses, the TOML file and
// --set overrides. Every error is a ConfigError that names the key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
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
  EXPECT_EQ(c.mode, ServerMode::Pubsub);
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
  EXPECT_EQ(load_config(sets({{"server.mode", "echo"}})).mode, ServerMode::Echo);
  EXPECT_EQ(load_config(sets({{"server.mode", "pubsub"}})).mode, ServerMode::Pubsub);
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
  for (const char* section : {"[server]", "[limits]", "[heartbeat]", "[compression]", "[metrics]", "[tls]", "[log]",
                              "[channels]", "[api]", "[auth]"}) {
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

// ---------------------------------------------------------------- channels, api, auth

TEST(ChannelsConfig, DefaultsAreTheLibraryDefaults) {
  const DaemonConfig c = load_config({});
  const conduit::ChannelOptions lib;
  const conduit::ChannelServiceOptions service;
  const conduit::ChannelOptions& d = c.pubsub.channels.defaults;
  EXPECT_EQ(d.history_size, 100u);
  EXPECT_EQ(d.history_size, lib.history_size);
  EXPECT_EQ(d.history_ttl, std::chrono::minutes(5));
  EXPECT_EQ(d.history_ttl, lib.history_ttl);
  EXPECT_EQ(d.max_subscriptions_per_connection, 128u);
  EXPECT_EQ(d.max_subscriptions_per_connection, lib.max_subscriptions_per_connection);
  EXPECT_EQ(d.max_channel_length, 255u);
  EXPECT_EQ(d.max_channel_length, lib.max_channel_length);
  EXPECT_TRUE(c.pubsub.channels.namespaces.empty());
  EXPECT_EQ(c.pubsub.api_key, "");
  EXPECT_EQ(c.pubsub.api_max_body_bytes, 65536u);
  EXPECT_EQ(c.pubsub.api_max_body_bytes, service.api_max_body_bytes);
  EXPECT_EQ(c.pubsub.jwt_secret, "");
  EXPECT_EQ(c.jwt_secret_file, "");
  EXPECT_EQ(c.pubsub.jwt_leeway, std::chrono::seconds(0));
  EXPECT_EQ(c.pubsub.publish_rate, 0.0);
}

TEST(ChannelsConfig, EveryKeyIsApplied) {
  const DaemonConfig c = load_config(sets({
      {"channels.history_size", "0"},
      {"channels.history_ttl", "90s"},
      {"channels.max_subscriptions_per_connection", "3"},
      {"channels.max_channel_length", "64"},
      {"api.key", "s3cret-Key"},
      {"api.max_body_bytes", "1MiB"},
      {"auth.jwt_secret", "hmac secret with spaces"},
      {"auth.leeway", "30s"},
      {"limits.publish_rate", "2.5"},
  }));
  const conduit::ChannelOptions& d = c.pubsub.channels.defaults;
  EXPECT_EQ(d.history_size, 0u);
  EXPECT_EQ(d.history_ttl, std::chrono::seconds(90));
  EXPECT_EQ(d.max_subscriptions_per_connection, 3u);
  EXPECT_EQ(d.max_channel_length, 64u);
  EXPECT_EQ(c.pubsub.api_key, "s3cret-Key");
  EXPECT_EQ(c.pubsub.api_max_body_bytes, 1048576u);
  EXPECT_EQ(c.pubsub.jwt_secret, "hmac secret with spaces");
  EXPECT_EQ(c.pubsub.jwt_leeway, std::chrono::seconds(30));
  EXPECT_EQ(c.pubsub.publish_rate, 2.5);
  EXPECT_EQ(load_config(sets({{"limits.publish_rate", "100"}})).pubsub.publish_rate, 100.0);
  EXPECT_EQ(load_config(sets({{"channels.history_ttl", "0s"}})).pubsub.channels.defaults.history_ttl.count(), 0);
}

TEST(ChannelsConfig, BadValuesNameTheKey) {
  struct Case {
    const char* key;
    const char* value;
  } cases[] = {
      {"channels.history_size", "-1"},
      {"channels.history_size", "1000001"},
      {"channels.history_size", "lots"},
      {"channels.history_ttl", "300"},  // no unit
      {"channels.history_ttl", "-5m"},
      {"channels.max_subscriptions_per_connection", "0"},
      {"channels.max_channel_length", "0"},
      {"channels.max_channel_length", "4097"},
      {"api.key", "has space"},
      {"api.key", "tab\tkey"},
      {"api.max_body_bytes", "0"},
      {"api.max_body_bytes", "2GiB"},
      {"api.max_body_bytes", "big"},
      {"auth.leeway", "1500ms"},  // token times are whole seconds
      {"auth.leeway", "5"},
      {"limits.publish_rate", "-1"},
      {"limits.publish_rate", "fast"},
      {"limits.publish_rate", "1000001"},
      {"limits.publish_rate", "nan"},
  };
  for (const Case& c : cases) {
    std::string msg;
    EXPECT_EQ(error_key(sets({{c.key, c.value}}), &msg), c.key) << c.key << "=" << c.value;
    EXPECT_NE(msg.find(c.key), std::string::npos) << "message must name the key: " << msg;
  }
}

TEST(ChannelsConfig, NamespacesFromFileOverrideOnlyWhatTheySet) {
  TempFile f(R"([channels]
history_size = 50

[channels.namespaces.chat]
history_size = 0
max_subscriptions_per_connection = 10

[channels.namespaces.metrics]
history_ttl = "10s"
max_channel_length = 32

[channels.namespaces."user.events"]

[channels.namespaces]
inline = { history_size = 7 }
)");
  ConfigSources s;
  s.file = f.path();
  const DaemonConfig c = load_config(s);
  const conduit::ChannelConfig& cc = c.pubsub.channels;
  EXPECT_EQ(cc.defaults.history_size, 50u);
  ASSERT_EQ(cc.namespaces.size(), 4u);
  const auto& chat = cc.namespaces.at("chat");
  EXPECT_EQ(chat.history_size, std::optional<std::size_t>(0));
  EXPECT_EQ(chat.max_subscriptions_per_connection, std::optional<std::size_t>(10));
  EXPECT_FALSE(chat.history_ttl.has_value());
  EXPECT_FALSE(chat.max_channel_length.has_value());
  const auto& metrics = cc.namespaces.at("metrics");
  EXPECT_EQ(metrics.history_ttl, std::optional<std::chrono::milliseconds>(std::chrono::seconds(10)));
  EXPECT_EQ(metrics.max_channel_length, std::optional<std::size_t>(32));
  EXPECT_FALSE(metrics.history_size.has_value());
  // Declared without overrides: the namespace exists and changes nothing.
  const auto& events = cc.namespaces.at("user.events");
  EXPECT_FALSE(events.history_size || events.history_ttl || events.max_subscriptions_per_connection ||
               events.max_channel_length);
  EXPECT_EQ(cc.namespaces.at("inline").history_size, std::optional<std::size_t>(7));
}

TEST(ChannelsConfig, NamespaceKeysFromSet) {
  const DaemonConfig c = load_config(sets({
      {"channels.namespaces.chat.history_size", "0"},
      {"channels.namespaces.chat.history_ttl", "1m"},
      {"channels.namespaces.a.b.max_channel_length", "20"},  // the name may hold dots; the key never does
  }));
  const auto& ns = c.pubsub.channels.namespaces;
  ASSERT_EQ(ns.size(), 2u);
  EXPECT_EQ(ns.at("chat").history_size, std::optional<std::size_t>(0));
  EXPECT_EQ(ns.at("chat").history_ttl, std::optional<std::chrono::milliseconds>(std::chrono::minutes(1)));
  EXPECT_EQ(ns.at("a.b").max_channel_length, std::optional<std::size_t>(20));
}

TEST(ChannelsConfig, NamespaceErrorsNameTheKey) {
  std::string msg;
  // Values are checked as in [channels].
  EXPECT_EQ(error_key(sets({{"channels.namespaces.chat.history_size", "-3"}}), &msg),
            "channels.namespaces.chat.history_size");
  EXPECT_EQ(error_key(sets({{"channels.namespaces.chat.history_ttl", "10"}}), &msg),
            "channels.namespaces.chat.history_ttl");
  EXPECT_NE(msg.find("unit is missing"), std::string::npos) << msg;
  EXPECT_EQ(error_key(sets({{"channels.namespaces.chat.max_subscriptions_per_connection", "0"}})),
            "channels.namespaces.chat.max_subscriptions_per_connection");
  // An unknown key suggests the namespace key it resembles.
  EXPECT_EQ(error_key(sets({{"channels.namespaces.chat.history_sise", "1"}}), &msg),
            "channels.namespaces.chat.history_sise");
  EXPECT_NE(msg.find("did you mean channels.namespaces.chat.history_size?"), std::string::npos) << msg;
  EXPECT_EQ(error_key(sets({{"channels.namespaces.chat.listen", "1"}}), &msg), "channels.namespaces.chat.listen");
  EXPECT_EQ(msg.find("did you mean"), std::string::npos) << msg;
  EXPECT_EQ(error_key(sets({{"channels.namespaces.history_size", "1"}}), &msg), "channels.namespaces.history_size");
  // Names: non-empty channel-name characters, no ':'.
  EXPECT_EQ(error_key(sets({{"channels.namespaces.a:b.history_size", "1"}}), &msg), "channels.namespaces.a:b");
  EXPECT_NE(msg.find("bad namespace name"), std::string::npos) << msg;
  for (const char* text :
       {"[channels.namespaces.\"\"]\nhistory_size = 1\n", "[channels.namespaces.\"a b\"]\nhistory_size = 1\n",
        "[channels.namespaces.\"chat:*\"]\nhistory_size = 1\n"}) {
    TempFile f(text);
    ConfigSources s;
    s.file = f.path();
    EXPECT_EQ(error_key(s, &msg).rfind("channels.namespaces.", 0), 0u) << text;
    EXPECT_NE(msg.find("bad namespace name"), std::string::npos) << msg;
  }
  // Shapes: namespaces are tables of tables.
  TempFile flat("[channels]\nnamespaces = 3\n");
  ConfigSources s;
  s.file = flat.path();
  EXPECT_EQ(error_key(s), "channels.namespaces");
  TempFile leaf("[channels.namespaces]\nchat = 3\n");
  s.file = leaf.path();
  EXPECT_EQ(error_key(s), "channels.namespaces.chat");
  TempFile typo("[channels.namespace.chat]\nhistory_size = 3\n");
  s.file = typo.path();
  EXPECT_EQ(error_key(s, &msg), "channels.namespace");
  EXPECT_NE(msg.find("did you mean channels.namespaces?"), std::string::npos) << msg;
  TempFile bad_key("[channels.namespaces.chat]\nhistroy_size = 3\n");
  s.file = bad_key.path();
  EXPECT_EQ(error_key(s, &msg), "channels.namespaces.chat.histroy_size");
  EXPECT_NE(msg.find("did you mean channels.namespaces.chat.history_size?"), std::string::npos) << msg;
}

TEST(ChannelsConfig, ResolveAppliesTheConfiguredNamespace) {
  const DaemonConfig c = load_config(sets({{"channels.history_size", "20"},
                                           {"channels.namespaces.chat.history_size", "0"},
                                           {"channels.namespaces.chat.max_channel_length", "40"}}));
  const conduit::ChannelConfig& cc = c.pubsub.channels;
  const conduit::ChannelOptions chat = cc.resolve("chat:lobby");
  EXPECT_EQ(chat.history_size, 0u);
  EXPECT_EQ(chat.max_channel_length, 40u);
  EXPECT_EQ(chat.history_ttl, std::chrono::minutes(5));    // not overridden: [channels]
  EXPECT_EQ(chat.max_subscriptions_per_connection, 128u);  // not overridden: [channels]
  EXPECT_EQ(cc.resolve("news").history_size, 20u);         // no namespace
  EXPECT_EQ(cc.resolve("chatter:x").history_size, 20u);    // an undeclared namespace
  EXPECT_EQ(cc.resolve("chat").history_size, 20u);         // "chat" alone is in no namespace
}

TEST(AuthConfig, SecretFileIsReadWithoutTrailingNewline) {
  TempFile secret("top-secret-value\r\n\n");
  DaemonConfig c = load_config(sets({{"auth.jwt_secret_file", secret.path()}}));
  EXPECT_EQ(c.pubsub.jwt_secret, "top-secret-value");
  EXPECT_EQ(c.jwt_secret_file, secret.path());
  TempFile inner("line one\nline two\n");  // only the trailing line break goes
  EXPECT_EQ(load_config(sets({{"auth.jwt_secret_file", inner.path()}})).pubsub.jwt_secret, "line one\nline two");
}

TEST(AuthConfig, SecretFileErrors) {
  std::string msg;
  const std::string missing = "/nonexistent-conduit-dir/jwt.secret";
  EXPECT_EQ(error_key(sets({{"auth.jwt_secret_file", missing}}), &msg), "auth.jwt_secret_file");
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
  TempFile empty("\n");
  EXPECT_EQ(error_key(sets({{"auth.jwt_secret_file", empty.path()}}), &msg), "auth.jwt_secret_file");
  EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
  TempFile secret("x\n");
  EXPECT_EQ(error_key(sets({{"auth.jwt_secret", "inline"}, {"auth.jwt_secret_file", secret.path()}}), &msg),
            "auth.jwt_secret_file");
  EXPECT_NE(msg.find("both set"), std::string::npos) << msg;
  // The check is on the merged result: a later --set clearing one is fine.
  EXPECT_EQ(
      load_config(
          sets({{"auth.jwt_secret", "inline"}, {"auth.jwt_secret_file", secret.path()}, {"auth.jwt_secret", "\"\""}}))
          .pubsub.jwt_secret,
      "x");
}

TEST(ToToml, ChannelsApiAuthRoundTrip) {
  TempFile secret("from-file\n");
  DaemonConfig c = load_config(sets({
      {"server.mode", "pubsub"},
      {"channels.history_size", "10"},
      {"channels.history_ttl", "1.5s"},
      {"channels.namespaces.chat.history_size", "0"},
      {"channels.namespaces.user.events.history_ttl", "2m"},
      {"channels.namespaces.empty.max_channel_length", "9"},
      {"api.key", "k3y"},
      {"api.max_body_bytes", "1KiB"},
      {"auth.jwt_secret_file", secret.path()},
      {"auth.leeway", "1m"},
      {"limits.publish_rate", "0.5"},
  }));
  const std::string text = conduit::to_toml(c);
  EXPECT_NE(text.find("mode = \"pubsub\""), std::string::npos) << text;
  EXPECT_NE(text.find("history_ttl = \"1500ms\""), std::string::npos) << text;
  EXPECT_NE(text.find("[channels.namespaces.chat]\nhistory_size = 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("[channels.namespaces.\"user.events\"]\nhistory_ttl = \"2m\"\n"), std::string::npos) << text;
  EXPECT_NE(text.find("publish_rate = 0.5\n"), std::string::npos) << text;
  EXPECT_NE(text.find("max_body_bytes = 1024\n"), std::string::npos) << text;
  EXPECT_NE(text.find("leeway = \"1m\"\n"), std::string::npos) << text;
  // The file's path is printed, never the secret read from it.
  EXPECT_NE(text.find("jwt_secret_file = \"" + secret.path() + "\""), std::string::npos) << text;
  EXPECT_EQ(text.find("from-file"), std::string::npos) << text;
  TempFile f(text);
  ConfigSources s;
  s.file = f.path();
  const DaemonConfig back = load_config(s);
  EXPECT_EQ(conduit::to_toml(back), text);
  EXPECT_EQ(back.pubsub.jwt_secret, "from-file");
  EXPECT_EQ(back.pubsub.publish_rate, 0.5);
  EXPECT_EQ(back.pubsub.channels.namespaces.size(), 3u);
  EXPECT_EQ(back.pubsub.channels.namespaces.at("user.events").history_ttl,
            std::optional<std::chrono::milliseconds>(std::chrono::minutes(2)));
  // An inline secret round-trips as itself.
  DaemonConfig inline_secret = load_config(sets({{"auth.jwt_secret", "abc"}, {"limits.publish_rate", "20"}}));
  const std::string inline_text = conduit::to_toml(inline_secret);
  EXPECT_NE(inline_text.find("jwt_secret = \"abc\""), std::string::npos) << inline_text;
  EXPECT_NE(inline_text.find("publish_rate = 20\n"), std::string::npos) << inline_text;
}

}  // namespace
