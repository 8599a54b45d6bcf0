// topics_server: topic-style broadcast on conduit's public API.
//   ws://127.0.0.1:9002/news               subscribe to topic "news" (the path names the topic)
//   curl -d hello 127.0.0.1:9002/publish/news   publish to it over HTTP
// A client's own messages are published to its topic; a thread publishes the time to "clock".
#include <conduit/group.hpp>
#include <conduit/server.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  conduit::ServerOptions options;
  options.port = argc > 1 ? static_cast<std::uint16_t>(std::stoi(argv[1])) : 9002;
  // Filled before start() and never changed, so loop threads read it without a lock.
  std::map<std::string, std::unique_ptr<conduit::Group>, std::less<>> topics;
  auto topic = [&topics](std::string_view name) -> conduit::Group* {
    auto it = topics.find(name.substr(0, name.find('?')));
    return it == topics.end() ? nullptr : it->second.get();
  };

  conduit::ServerHandlers handlers;
  handlers.on_upgrade = [&](const conduit::UpgradeInfo& info) {
    conduit::UpgradeDecision d;
    d.accept = topic(info.path.substr(1)) != nullptr;
    d.status = 404;
    d.reason = "no such topic";
    return d;
  };
  handlers.on_open = [&](conduit::Session& s) { topic(s.path().substr(1))->join(s); };
  handlers.on_message = [&](conduit::Session& s, std::string_view data, conduit::MessageType type) {
    topic(s.path().substr(1))->publish(data, type);  // framed once for every subscriber
  };

  conduit::Server server(options, std::move(handlers));
  for (const char* name : {"news", "chat", "clock"}) topics.emplace(name, std::make_unique<conduit::Group>(server));
  server.add_route({"POST", "/publish/", conduit::PathMatch::Prefix, [&](const conduit::HttpRequest& r) {
                      conduit::Group* t = topic(r.path.substr(9));
                      if (!t) return conduit::HttpResponse{404, "text/plain", {}, "no such topic\n"};
                      t->publish(r.body);
                      return conduit::HttpResponse{200, "text/plain", {}, std::to_string(t->size()) + " subscribers\n"};
                    }});
  server.start();
  std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(server.port()));
  std::fflush(stdout);
  std::jthread clock([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      topics.at("clock")->publish(std::to_string(std::time(nullptr)));  // from a thread of our own
    }
  });
  server.wait();
}
