// conduitd configuration: embedded defaults, then a TOML file, then flags.
// Every key is known and typed; anything else is an error that names the key
// (conduitd exits with status 2).
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "conduit/options.hpp"

namespace conduit::ops {

class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string key, const std::string& message)
      : std::runtime_error(key.empty() ? message : key + ": " + message), key_(std::move(key)) {}
  const std::string& key() const noexcept { return key_; }

 private:
  std::string key_;
};

// echo: every message back to its sender. broadcast: every message to every
// open session. relay: every message to the other sessions on the same path.
enum class ServerMode { Echo, Broadcast, Relay };

struct DaemonConfig {
  ServerOptions server;
  ServerMode mode = ServerMode::Echo;
  std::string log_level = "info";
  std::string log_format = "text";  // "text" | "json"
};

struct ConfigSources {
  std::string file;                                            // --config FILE ("" = none)
  std::vector<std::pair<std::string, std::string>> overrides;  // --listen, --mode, --set k=v, in order
};

// The embedded default configuration (valid TOML, every key with its default).
std::string_view default_config_toml();

// Throws ConfigError.
DaemonConfig load_config(const ConfigSources& sources);

// "250ms", "25s", "1m", "2h" → milliseconds. Throws std::invalid_argument.
Duration parse_duration(std::string_view text);
// 65536, "64KiB", "1MiB", "1GiB", "100KB" → bytes. Throws std::invalid_argument.
std::size_t parse_size(std::string_view text);
// "HOST:PORT", "[::1]:PORT". Throws std::invalid_argument.
std::pair<std::string, std::uint16_t> parse_listen(std::string_view text);

}  // namespace conduit::ops
