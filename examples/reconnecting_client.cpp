// Reconnecting client with callbacks: says hello on every (re)connect, prints
// what it receives and its state changes, and closes cleanly on Ctrl-C.
//
//   reconnecting_client ws://127.0.0.1:9002/
#include <conduit/client.hpp>
#include <conduit/signals.hpp>
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: reconnecting_client ws://host:port/path\n");
    return 2;
  }
  conduit::ClientOptions options;
  options.reconnect.initial_delay = std::chrono::milliseconds(250);
  options.reconnect.max_delay = std::chrono::seconds(10);

  conduit::Client* client = nullptr;  // callbacks run only after start()
  conduit::ClientHandlers handlers;
  handlers.on_open = [&client](const std::string&) { client->send("hello"); };
  handlers.on_message = [](std::string_view data, conduit::MessageType) {
    std::printf("%.*s\n", static_cast<int>(data.size()), data.data());
    std::fflush(stdout);
  };
  handlers.on_state = [](const conduit::ClientStateEvent& e) {
    std::fprintf(stderr, "state: %s", conduit::to_string(e.state));
    if (e.state == conduit::ClientState::Reconnecting) std::fprintf(stderr, " in %lld ms", (long long)e.delay.count());
    std::fprintf(stderr, "%s%s\n", e.error ? ", after: " : "", e.error ? e.error.message().c_str() : "");
  };

  try {
    conduit::Client c(argv[1], options, std::move(handlers));
    client = &c;
    // Before start(): the client's I/O thread must inherit the blocked mask.
    conduit::ShutdownOnSignal shutdown([&c](int) { c.close(1000, "bye"); });
    c.start();
    c.wait();                             // until close() has finished the close handshake
  } catch (const std::system_error& e) {  // a malformed URL
    std::fprintf(stderr, "reconnecting_client: %s\n", e.what());
    return 2;
  }
}
