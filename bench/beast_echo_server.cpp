// In-repo baseline: a WebSocket echo server written the way Boost.Beast's own
// async server example is (a websocket::stream per connection, async_read into
// a flat_buffer, async_write of the same message with the same text/binary
// flag), configured the way a Beast expert would run it for a one-thread
// throughput comparison.
//
// It exists so that every Conduit performance claim is a ratio against a
// known, idiomatic Beast server at its best, measured in the same run (
// rule 7). Settings, each chosen for that reason (docs/benchmarks.md repeats
// them):
//   - auto_fragment(false): one frame and one send per echo. Beast's default
//     (true) cuts every message into write_buffer_bytes (4 KiB) frames, each
//     its own send, so a 16 KiB echo would leave as four frames and four sends.
//     With auto-fragmentation off, an unmasked uncompressed write is the frame
//     header and the caller's payload in one gather write, so write_buffer_bytes
//     no longer matters and is left at its default.
//   - One thread (io_context concurrency hint 1) and no per-connection strand:
//     with one thread calling run() the io_context is an implicit strand, so
//     the strand of Beast's multi-threaded example would only add a dispatch
//     per handler.
//   - TCP_NODELAY, as Conduit sets it: a reply must leave when written, not when
//     the peer's delayed ACK arrives.
//   - read_message_max 64 MiB (the load generator's messages fit); the
//     text/binary flag of each message is echoed as received.
//   - The flat_buffer is reused for every message (consume, not reallocate), so
//     after the first message of a size no allocation is made per echo beyond
//     what Beast's operations need internally.
//   - timeout::suggested(server) stays on (handshake 30 s, idle 300 s): every
//     server in the comparison keeps a way to drop dead peers (Conduit its
//     heartbeats, uWebSockets its idleTimeout). Beast re-arms its idle timer on
//     every read; that is Beast's price for it, not a tuning mistake.
//   - permessage-deflate stays off (Beast's default), as for every server.
// Keep it idiomatic: the point is Beast at its best, not a different server.
//
// Usage: beast-echo-baseline [--host ADDR] [--port P]   (P = 0 picks a free port)
// Prints "listening on PORT" on stdout once it accepts connections.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr std::uint64_t max_message_bytes = 64ull * 1024 * 1024;

// One accepted connection: upgrade, then read a message / write it back, forever.
class EchoSession : public std::enable_shared_from_this<EchoSession> {
 public:
  explicit EchoSession(tcp::socket&& socket) : ws_(std::move(socket)) {}

  // Called on the one thread that runs the io_context (the accept handler).
  void run() {
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true), ignored);
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(beast::http::field::server, "beast-echo-baseline"); }));
    ws_.read_message_max(max_message_bytes);
    ws_.auto_fragment(false);
    ws_.async_accept(beast::bind_front_handler(&EchoSession::on_accept, shared_from_this()));
  }

 private:
  void on_accept(beast::error_code ec) {
    if (ec) return;
    do_read();
  }

  void do_read() { ws_.async_read(buffer_, beast::bind_front_handler(&EchoSession::on_read, shared_from_this())); }

  void on_read(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return;  // closed (websocket::error::closed) or failed: the session ends
    ws_.text(ws_.got_text());
    ws_.async_write(buffer_.data(), beast::bind_front_handler(&EchoSession::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return;
    buffer_.consume(buffer_.size());
    do_read();
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(net::io_context& ioc, tcp::endpoint endpoint) : ioc_(ioc), acceptor_(ioc) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(net::socket_base::max_listen_connections);
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }

  void run() { do_accept(); }

 private:
  void do_accept() {
    // The connection's socket uses the io_context's executor directly: one
    // thread runs it, so no strand is needed.
    acceptor_.async_accept(ioc_, beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (!ec) std::make_shared<EchoSession>(std::move(socket))->run();
    // EMFILE and friends: keep accepting; the load generator reports failures.
    do_accept();
  }

  net::io_context& ioc_;
  tcp::acceptor acceptor_;
};

}  // namespace

int main(int argc, char** argv) {
  unsigned short port = 0;
  std::string host = "127.0.0.1";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = static_cast<unsigned short>(std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
      host = argv[++i];
    } else {
      std::cerr << "usage: beast-echo-baseline [--host ADDR] [--port P]\n";
      return 2;
    }
  }
  try {
    net::io_context ioc{1};
    auto listener = std::make_shared<Listener>(ioc, tcp::endpoint{net::ip::make_address(host), port});
    listener->run();
    net::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](beast::error_code, int) { ioc.stop(); });
    std::cout << "listening on " << listener->port() << std::endl;
    ioc.run();
  } catch (const std::exception& e) {
    std::cerr << "beast-echo-baseline: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
