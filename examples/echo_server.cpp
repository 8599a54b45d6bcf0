// Echo server: every message goes back to its sender with its type.
//
//   echo_server [PORT]        (default 9001; 0 picks a free port)
//
// SIGTERM or Ctrl-C closes every session with 1001 and exits once they are
// closed (a second signal exits at once).
#include <conduit/server.hpp>
#include <conduit/signals.hpp>
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  conduit::ServerOptions options;  // every field is documented beside its default
  options.host = "127.0.0.1";
  options.port = static_cast<std::uint16_t>(argc > 1 ? std::stoi(argv[1]) : 9001);

  conduit::ServerHandlers handlers;
  handlers.on_message = [](conduit::Session& session, std::string_view data, conduit::MessageType type) {
    session.send(data, type);
  };

  conduit::Server server(options, std::move(handlers));
  // Before start(): the loop threads must inherit the blocked signal mask.
  conduit::ShutdownOnSignal shutdown([&server](int) { server.stop(); });
  try {
    server.start();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
  std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  server.wait();
}
