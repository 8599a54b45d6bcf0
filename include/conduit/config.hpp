// conduitd's configuration as a library API: the embedded defaults, then a TOML
// file, then `--set KEY=VALUE` overrides, merged into one DaemonConfig. Every
// key is known and typed (docs/configuration.md lists them); anything else is a
// ConfigError that names the key, and an unknown key suggests the closest known
// one. Also the value grammars every Conduit program shares: durations, sizes
// and listen addresses.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conduit/log.hpp"
#include "conduit/options.hpp"
#include "conduit/pubsub.hpp"

namespace conduit {

class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string key, const std::string& message)
      : std::runtime_error(key.empty() ? message : key + ": " + message), key_(std::move(key)) {}
  // The configuration key (e.g. "heartbeat.ping_interval") or the flag
  // ("--config") the error is about.
  const std::string& key() const noexcept { return key_; }

 private:
  std::string key_;
};

// pubsub: channels over the conduit.v1 protocol (conduit::ChannelService).
// echo: every message back to its sender. broadcast: every message to every
// open session. relay: every message to the other sessions on the same path.
enum class ServerMode { Pubsub, Echo, Broadcast, Relay };

struct DaemonConfig {
  ServerOptions server;
  ServerMode mode = ServerMode::Pubsub;
  // [channels] (with its namespaces), [api], [auth] and limits.publish_rate:
  // what --mode pubsub hands to conduit::ChannelService. With
  // auth.jwt_secret_file set, pubsub.jwt_secret holds the file's content.
  ChannelServiceOptions pubsub;
  // auth.jwt_secret_file as configured ("" = none); kept so that to_toml
  // prints the path rather than the secret read from it.
  std::string jwt_secret_file;
  // web.enabled: serve the pages built into conduitd (the chat at /, the
  // dashboard, the JavaScript client) and the /stats JSON the dashboard reads.
  bool web_enabled = true;
  LogLevel log_level = LogLevel::info;
  LogFormat log_format = LogFormat::text;
};

struct ConfigSources {
  std::string file;                                            // --config FILE ("" = none)
  std::vector<std::pair<std::string, std::string>> overrides;  // --listen, --mode, --set k=v, in order
};

// The embedded default configuration (valid TOML, every key with its default
// and a comment).
std::string_view default_config_toml();

// Merges the defaults, the file and the overrides, in that order, and checks
// the result (e.g. tls.cert and tls.key set together). Throws ConfigError.
DaemonConfig load_config(const ConfigSources& sources);

// The configuration as TOML with every key (what `conduitd --print-config`
// prints). load_config of this text as a file gives the same configuration.
std::string to_toml(const DaemonConfig& config);

// Durations, one grammar for conduitd's keys and the CLI's flags: a
// non-negative number, integer or decimal, immediately followed by a unit:
// ms, s, m or h. "250ms", "25s", "1.5s", "0.5m", "2h", "0s". A bare number
// ("10") is refused (the unit is not guessed), as is a value that is not a
// whole number of milliseconds ("1.5ms") or larger than 2^40 ms (~35 years).
// Surrounding spaces are ignored. Throws std::invalid_argument with a message
// that shows the expected form.
Duration parse_duration(std::string_view text);

// 65536, "64KiB", "1MiB", "1GiB", "100KB" → bytes. Throws std::invalid_argument.
std::size_t parse_size(std::string_view text);

// "HOST:PORT", "[::1]:PORT" ("localhost" becomes 127.0.0.1). Throws std::invalid_argument.
std::pair<std::string, std::uint16_t> parse_listen(std::string_view text);

}  // namespace conduit
