// channels_server: the conduit.v1 channel protocol (docs/protocol.md) on
// conduit's public API, plus a uWebSockets-style topic published by a thread.
//   ws://127.0.0.1:9003/   {"id":1,"subscribe":{"channel":"clock:utc"}}
//                          {"id":2,"publish":{"channel":"chat:lobby","data":{"text":"hi"}}}
// Reconnect and subscribe with "since" (the last offset and epoch you saw) to
// get exactly what you missed.
#include <conduit/pubsub.hpp>
#include <conduit/server.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  conduit::ServerOptions options;
  options.port = argc > 1 ? static_cast<std::uint16_t>(std::stoi(argv[1])) : 9003;

  std::unique_ptr<conduit::ChannelService> service;  // built once the server exists
  conduit::ServerHandlers handlers;
  handlers.on_upgrade = [&](const conduit::UpgradeInfo& u) { return service->on_upgrade(u); };
  handlers.on_open = [&](conduit::Session& s) { service->on_open(s); };
  handlers.on_message = [&](conduit::Session& s, std::string_view data, conduit::MessageType type) {
    service->on_message(s, data, type);
  };
  conduit::Server server(options, std::move(handlers));

  conduit::ChannelServiceOptions channel_options;
  channel_options.channels.defaults.history_size = 1000;                         // per channel
  channel_options.channels.namespaces["clock"].history_size = 10;                // a namespace of its own
  service = std::make_unique<conduit::ChannelService>(server, channel_options);  // before start()
  server.start();
  std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);

  std::jthread clock([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      // From a thread of our own: data must be one JSON value in conduit.v1.
      service->channels().publish("clock:utc", std::to_string(std::time(nullptr)));
    }
  });
  server.wait();
}
