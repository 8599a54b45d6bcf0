// Coroutine client: sends a few messages and reads the replies with
// co_await client.read(), on the application's own io_context.
//
//   coro_client ws://127.0.0.1:9001/ [COUNT]
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <conduit/client.hpp>
#include <conduit/client_coro.hpp>
#include <cstdio>
#include <string>

namespace asio = boost::asio;

asio::awaitable<void> talk(conduit::Client& client, int count, int& exit_status) {
  for (int i = 1; i <= count; ++i) {
    client.send("message " + std::to_string(i));  // queued until the connection opens
    auto [ec, reply] = co_await client.read();
    if (ec) {
      std::fprintf(stderr, "coro_client: %s\n", ec.message().c_str());
      co_return;
    }
    std::printf("%s\n", reply.data.c_str());
  }
  exit_status = 0;
  client.close();  // the io_context's run() returns once the close handshake is done
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: coro_client ws://host:port/path [COUNT]\n");
    return 2;
  }
  asio::io_context ctx;
  conduit::ClientOptions options;
  options.reconnect.enabled = false;
  conduit::Client client(ctx, argv[1], options);  // runs on ctx: no thread of its own
  int exit_status = 1;
  client.start();
  asio::co_spawn(ctx, talk(client, argc > 2 ? std::stoi(argv[2]) : 3, exit_status), asio::detached);
  ctx.run();
  return exit_status;
}
