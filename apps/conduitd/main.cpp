// conduitd: the Conduit daemon: channels over conduit.v1 (pubsub, the
// default), echo, broadcast or per-path relay.
//
//   conduitd [--config FILE] [--listen HOST:PORT] [--mode pubsub|echo|broadcast|relay] [--set key=value]...
//            [--check | --print-config]
//
// Exit status: 0 after a clean shutdown (or a valid --check), 1 on a runtime
// failure (e.g. the address is in use), 2 on a configuration error (the message
// names the key).
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "conduit/config.hpp"
#include "conduit/log.hpp"
#include "conduit/pubsub.hpp"
#include "conduit/server.hpp"
#include "conduit/signals.hpp"
#include "conduit/version.hpp"
#include "conduit_build_commit.hpp"
#include "web_site.hpp"

namespace {

constexpr const char* kUsage = R"(usage: conduitd [options]

  --config FILE         TOML configuration file (keys: docs/configuration.md)
  --listen HOST:PORT    same as --set server.listen=HOST:PORT (default 127.0.0.1:8080; port 0 = any free port)
  --mode MODE           pubsub | echo | broadcast | relay (same as --set server.mode=MODE; default pubsub)
                        pubsub: channels with history and recovery over the conduit.v1 protocol
                          (docs/protocol.md), an HTTP API under /api/ when api.key is set, JWT auth
                          when auth.jwt_secret is set;
                        echo: each message back to its sender; broadcast: to every session;
                        relay: to every other session connected to the same path
  --set KEY=VALUE       override any key, e.g. --set heartbeat.ping_interval=10s (repeatable)
  --print-config        print the merged configuration (defaults + file + --set) as TOML and exit
  --check               validate the configuration (including TLS files and auth.jwt_secret_file)
                        without binding; exit 0 if valid, 2 with the error naming the key otherwise
  --version             print the version (and the git commit it was built from) and exit
  --help                this text

Once listening, conduitd prints "listening on HOST:PORT" on stdout (and, with
metrics.listen set, "metrics listening on HOST:PORT").
SIGTERM/SIGINT: graceful shutdown (close 1001, drain up to server.shutdown_grace); a second signal exits at once.
Exit status: 0 clean shutdown, 1 runtime failure, 2 configuration error.
)";

// Relay mode: one conduit::Channels channel per request path (the query is
// ignored), history off. A session subscribes to its path's channel when it
// opens; a message is published to it with the sender left out: framed once
// and shared by the channel's other subscribers, on every loop, in one order
// per channel, with no lock over all channels and no copy per subscriber.
class Relay {
 public:
  explicit Relay(conduit::Server& server) : channels_(server, options()) {}

  // On the session's loop, from on_open: subscribed when this returns.
  void join(conduit::Session& s) { channels_.subscribe(s, channel_of(s)); }
  void relay(conduit::Session& from, std::string_view data, conduit::MessageType type) {
    channels_.publish(channel_of(from), data, type, &from);
  }

 private:
  static conduit::Channels::Options options() {
    conduit::Channels::Options o;
    o.config.defaults.history_size = 0;
    o.config.defaults.max_subscriptions_per_connection = 1;
    // A request target is at most the 16 KiB request head; escaped below it
    // grows at most threefold.
    o.config.defaults.max_channel_length = 3 * 16 * 1024;
    return o;
  }
  // The path as a channel name: bytes outside the channel-name set, and '='
  // itself, become "=HH" (an injective mapping: two paths never share a channel).
  static std::string channel_of(const conduit::Session& s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    const std::string_view path = std::string_view(s.path()).substr(0, s.path().find('?'));
    std::string out;
    out.reserve(path.size());
    for (unsigned char c : path) {
      if (c != '=' && conduit::is_valid_channel_name(std::string_view(reinterpret_cast<const char*>(&c), 1), 1)) {
        out.push_back(static_cast<char>(c));
      } else {
        out += {'=', hex[c >> 4], hex[c & 0xF]};
      }
    }
    return out;
  }

  conduit::Channels channels_;
};

// Once the configuration is loaded, the daemon's own notices go where the
// library's lines go: in log.format=json every stderr line is a JSON object.
bool g_json_log = false;

// A value for a quoted log field: the line format has no escape for '"'.
std::string quotable(std::string_view text) {
  std::string out(text);
  std::replace(out.begin(), out.end(), '"', '\'');
  return out;
}

// text: "conduitd: PLAIN"; json: the structured EVENT_LINE through the logger.
void notice(conduit::LogLevel level, const std::string& event_line, const std::string& plain) {
  if (g_json_log) {
    conduit::log(level, event_line);
  } else {
    std::fprintf(stderr, "conduitd: %s\n", plain.c_str());
  }
}

[[noreturn]] void config_error(const std::string& key, const std::string& message) {
  std::string text = key.empty() ? message : key + ": " + message;
  notice(conduit::LogLevel::critical,
         "event=config_error key=" + (key.empty() ? std::string("-") : key) + " reason=\"" + quotable(message) + "\"",
         "config error: " + text);
  std::exit(2);
}

[[noreturn]] void config_error(const conduit::ConfigError& e) {
  std::string_view what = e.what();
  if (!e.key().empty() && what.substr(0, e.key().size() + 2) == e.key() + ": ") what.remove_prefix(e.key().size() + 2);
  config_error(e.key(), std::string(what));
}

}  // namespace

int main(int argc, char** argv) {
  conduit::ConfigSources sources;
  bool print_config = false;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto need_value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) config_error(flag, "missing value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--version") {
      const std::string commit = CONDUIT_GIT_COMMIT;
      std::printf("conduitd %s%s\n", CONDUIT_VERSION, commit.empty() ? "" : (" (git " + commit + ")").c_str());
      return 0;
    } else if (arg == "--print-config") {
      print_config = true;
    } else if (arg == "--check") {
      check_only = true;
    } else if (arg == "--config") {
      sources.file = need_value("--config");
    } else if (arg == "--listen") {
      sources.overrides.emplace_back("server.listen", need_value("--listen"));
    } else if (arg == "--mode") {
      sources.overrides.emplace_back("server.mode", need_value("--mode"));
    } else if (arg == "--set") {
      std::string kv = need_value("--set");
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) config_error("--set", "expected KEY=VALUE, got '" + kv + "'");
      sources.overrides.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else {
      config_error("", "unknown argument '" + arg + "' (see --help)");
    }
  }

  conduit::DaemonConfig cfg;
  try {
    cfg = conduit::load_config(sources);
  } catch (const conduit::ConfigError& e) {
    config_error(e);
  }
  if (!cfg.pubsub.redis.url.empty()) {
    if (std::string why = conduit::redis_url_error(cfg.pubsub.redis.url); !why.empty()) config_error("redis.url", why);
  }
  if (print_config) {
    std::fputs(conduit::to_toml(cfg).c_str(), stdout);
    return 0;
  }
  conduit::LogOptions log_options;
  log_options.level = cfg.log_level;
  log_options.format = cfg.log_format;
  conduit::configure_logging(log_options);
  g_json_log = cfg.log_format == conduit::LogFormat::json;

  ::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<conduit::Server> server;
  conduit::Server* srv = nullptr;
  // pubsub: built once the server exists (it adds routes, hooks and metrics
  // to it), before start(); the handlers forward to it.
  std::unique_ptr<conduit::ChannelService> service;
  std::unique_ptr<Relay> relay;  // relay: built once the server exists, before start()
  conduit::ServerHandlers handlers;
  if (cfg.mode == conduit::ServerMode::Pubsub) {
    handlers.on_upgrade = [&service](const conduit::UpgradeInfo& u) { return service->on_upgrade(u); };
    handlers.on_open = [&service](conduit::Session& s) { service->on_open(s); };
    handlers.on_message = [&service](conduit::Session& s, std::string_view data, conduit::MessageType type) {
      service->on_message(s, data, type);
    };
  } else if (cfg.mode == conduit::ServerMode::Echo) {
    handlers.on_message = [](conduit::Session& s, std::string_view data, conduit::MessageType type) {
      s.send(data, type);
    };
  } else if (cfg.mode == conduit::ServerMode::Broadcast) {
    handlers.on_message = [&srv](conduit::Session&, std::string_view data, conduit::MessageType type) {
      srv->broadcast(data, type);
    };
  } else {
    handlers.on_open = [&relay](conduit::Session& s) { relay->join(s); };
    handlers.on_message = [&relay](conduit::Session& s, std::string_view data, conduit::MessageType type) {
      relay->relay(s, data, type);
    };
  }
  try {
    server = std::make_unique<conduit::Server>(cfg.server, std::move(handlers));
  } catch (const std::exception& e) {
    // TLS certificate/key problems: the message starts with the key.
    std::string_view what = e.what();
    auto colon = what.find(": ");
    if (what.substr(0, 4) == "tls." && colon != std::string_view::npos) {
      config_error(std::string(what.substr(0, colon)), std::string(what.substr(colon + 2)));
    }
    config_error("", std::string(what));
  }
  if (cfg.web_enabled) conduitd::add_web_routes(*server);
  if (check_only) {
    // Everything a start would check short of binding: keys, values, TLS files.
    std::printf("configuration ok\n");
    return 0;
  }
  srv = server.get();
  // Before start() creates the loop threads, so that they inherit the blocked
  // SIGTERM/SIGINT; a second signal exits at once with status 130.
  conduit::ShutdownOnSignal shutdown([srv](int sig) {
    const std::string name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    notice(conduit::LogLevel::info, "event=signal signal=" + name + " action=shutdown",
           name + " received, shutting down (again to exit at once)");
    srv->stop();
  });
  // After the signals are blocked: channels and the service start threads of
  // their own (history sweep, token expiry), which must inherit the mask like
  // the loops.
  if (cfg.mode == conduit::ServerMode::Relay) relay = std::make_unique<Relay>(*server);
  if (cfg.mode == conduit::ServerMode::Pubsub) {
    try {
      service = std::make_unique<conduit::ChannelService>(*server, cfg.pubsub);
    } catch (const std::exception& e) {
      notice(conduit::LogLevel::critical, "event=start_failed reason=\"" + quotable(e.what()) + "\"", e.what());
      return 1;
    }
  }
  try {
    server->start();
  } catch (const std::exception& e) {
    notice(conduit::LogLevel::critical, "event=start_failed reason=\"" + quotable(e.what()) + "\"", e.what());
    return 1;
  }
  auto bracketed = [](const std::string& h) { return h.find(':') != std::string::npos ? "[" + h + "]" : h; };
  std::printf("listening on %s:%u\n", bracketed(cfg.server.host).c_str(), static_cast<unsigned>(server->port()));
  if (server->metrics_port() != 0) {
    std::printf("metrics listening on %s:%u\n", bracketed(cfg.server.metrics_host).c_str(),
                static_cast<unsigned>(server->metrics_port()));
  }
  std::fflush(stdout);

  server->wait();
  std::fflush(stderr);
  // Loop threads are joined; skip destructors racing the signal thread.
  std::_Exit(0);
}
