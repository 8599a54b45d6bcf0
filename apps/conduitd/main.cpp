// conduitd: the Conduit daemon (echo, broadcast or per-path relay).
//
//   conduitd [--config FILE] [--listen HOST:PORT] [--mode echo|broadcast|relay] [--set key=value]...
//
// Exit status: 0 after a clean shutdown, 1 on a runtime failure (e.g. the
// address is in use), 2 on a configuration error (the message names the key).
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
#include <unordered_map>
#include <vector>

#include "conduit/server.hpp"
#include "conduit/signals.hpp"
#include "conduit/version.hpp"
#include "conduit_build_commit.hpp"
#include "ops/config.hpp"
#include "ops/log.hpp"

namespace {

constexpr const char* kUsage = R"(usage: conduitd [options]

  --config FILE         TOML configuration file (keys: docs/configuration.md)
  --listen HOST:PORT    same as --set server.listen=HOST:PORT (default 127.0.0.1:8080; port 0 = any free port)
  --mode MODE           echo | broadcast | relay (same as --set server.mode=MODE)
                        echo: each message back to its sender; broadcast: to every session;
                        relay: to every other session connected to the same path
  --set KEY=VALUE       override any key, e.g. --set heartbeat.ping_interval=10s (repeatable)
  --print-config        print the embedded default configuration and exit
  --version             print the version (and the git commit it was built from) and exit
  --help                this text

Once listening, conduitd prints "listening on HOST:PORT" on stdout (and, with
metrics.listen set, "metrics listening on HOST:PORT").
SIGTERM/SIGINT: graceful shutdown (close 1001, drain up to server.shutdown_grace); a second signal exits at once.
Exit status: 0 clean shutdown, 1 runtime failure, 2 configuration error.
)";

// Relay mode: sessions are grouped by request path (the query is ignored); a
// message goes to every other open session of the sender's group, in order per
// sender. The map is only touched on open, close and to copy a group.
class Rooms {
 public:
  void join(conduit::Session& s) {
    std::lock_guard lock(mu_);
    rooms_[room_of(s)].push_back(s.shared());
  }
  void leave(conduit::Session& s) {
    std::lock_guard lock(mu_);
    auto it = rooms_.find(room_of(s));
    if (it == rooms_.end()) return;
    auto& members = it->second;
    members.erase(std::remove_if(members.begin(), members.end(), [&](const auto& m) { return m.get() == &s; }),
                  members.end());
    if (members.empty()) rooms_.erase(it);
  }
  void relay(conduit::Session& from, std::string_view data, conduit::MessageType type) {
    thread_local std::vector<conduit::SessionPtr> peers;
    {
      std::lock_guard lock(mu_);
      auto it = rooms_.find(room_of(from));
      if (it != rooms_.end()) peers = it->second;
    }
    for (const auto& p : peers) {
      if (p.get() != &from) p->send(data, type);
    }
    peers.clear();
  }

 private:
  static std::string room_of(const conduit::Session& s) { return s.path().substr(0, s.path().find('?')); }
  std::mutex mu_;
  std::unordered_map<std::string, std::vector<conduit::SessionPtr>> rooms_;
};

[[noreturn]] void config_error(const std::string& message) {
  std::fprintf(stderr, "conduitd: config error: %s\n", message.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  conduit::ops::ConfigSources sources;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto need_value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) config_error(std::string(flag) + ": missing value");
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
      std::fwrite(conduit::ops::default_config_toml().data(), 1, conduit::ops::default_config_toml().size(), stdout);
      return 0;
    } else if (arg == "--config") {
      sources.file = need_value("--config");
    } else if (arg == "--listen") {
      sources.overrides.emplace_back("server.listen", need_value("--listen"));
    } else if (arg == "--mode") {
      sources.overrides.emplace_back("server.mode", need_value("--mode"));
    } else if (arg == "--set") {
      std::string kv = need_value("--set");
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) config_error("--set: expected KEY=VALUE, got '" + kv + "'");
      sources.overrides.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else {
      config_error("unknown argument '" + arg + "' (see --help)");
    }
  }

  conduit::ops::DaemonConfig cfg;
  try {
    cfg = conduit::ops::load_config(sources);
  } catch (const conduit::ops::ConfigError& e) {
    config_error(e.what());
  }
  conduit::ops::setup_logging(cfg.log_level, cfg.log_format);

  ::signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<conduit::Server> server;
  conduit::Server* srv = nullptr;
  conduit::ServerHandlers handlers;
  if (cfg.mode == conduit::ops::ServerMode::Echo) {
    handlers.on_message = [](conduit::Session& s, std::string_view data, conduit::MessageType type) {
      s.send(data, type);
    };
  } else if (cfg.mode == conduit::ops::ServerMode::Broadcast) {
    handlers.on_message = [&srv](conduit::Session&, std::string_view data, conduit::MessageType type) {
      srv->broadcast(data, type);
    };
  } else {
    auto rooms = std::make_shared<Rooms>();
    handlers.on_open = [rooms](conduit::Session& s) { rooms->join(s); };
    handlers.on_close = [rooms](conduit::Session& s, std::uint16_t, std::string_view) { rooms->leave(s); };
    handlers.on_message = [rooms](conduit::Session& s, std::string_view data, conduit::MessageType type) {
      rooms->relay(s, data, type);
    };
  }
  try {
    server = std::make_unique<conduit::Server>(cfg.server, std::move(handlers));
  } catch (const std::exception& e) {
    config_error(e.what());  // TLS certificate/key problems name their key
  }
  srv = server.get();
  // Before start() creates the loop threads, so that they inherit the blocked
  // SIGTERM/SIGINT; a second signal exits at once with status 130.
  conduit::ShutdownOnSignal shutdown([srv](int sig) {
    std::fprintf(stderr, "conduitd: %s received, shutting down (again to exit at once)\n",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
    srv->stop();
  });
  try {
    server->start();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "conduitd: %s\n", e.what());
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
