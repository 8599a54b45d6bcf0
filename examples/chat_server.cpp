// Chat server: every message is broadcast to everyone connected, framed once
// and shared by all the send queues; joins and leaves are announced.
//
//   chat_server [PORT]        (default 9002; 0 picks a free port)
#include <conduit/server.hpp>
#include <conduit/signals.hpp>
#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  conduit::ServerOptions options;
  options.host = "127.0.0.1";
  options.port = static_cast<std::uint16_t>(argc > 1 ? std::stoi(argv[1]) : 9002);

  conduit::Server* server = nullptr;  // handlers run only after start(), when it is set
  conduit::ServerHandlers handlers;
  handlers.on_open = [&server](conduit::Session& session) {
    server->broadcast("* user " + std::to_string(session.id()) + " joined");
  };
  handlers.on_message = [&server](conduit::Session& session, std::string_view data, conduit::MessageType type) {
    if (type == conduit::MessageType::Binary) return session.close(1003, "text only");
    server->broadcast("<" + std::to_string(session.id()) + "> " + std::string(data));
  };
  handlers.on_close = [&server](conduit::Session& session, std::uint16_t, std::string_view) {
    server->broadcast("* user " + std::to_string(session.id()) + " left");
  };

  conduit::Server chat(options, std::move(handlers));
  server = &chat;
  conduit::ShutdownOnSignal shutdown([&chat](int) { chat.stop(); });  // before start()
  try {
    chat.start();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chat_server: %s\n", e.what());
    return 1;
  }
  std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(chat.port()));
  std::fflush(stdout);
  chat.wait();
}
