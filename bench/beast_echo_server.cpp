// In-repo baseline: a WebSocket echo server written the way Boost.Beast's own
// advanced async server example is (one strand and one websocket::stream per
// connection, async_read into a flat_buffer, async_write of the same message
// with the same text/binary flag, one thread running the io_context).
//
// It exists so that every Conduit performance claim is a ratio against a
// known, idiomatic Beast server measured in the same run (GUIDE rule 7).
// Keep it idiomatic: optimising it would make the ratios meaningless.
//
// Usage: beast-echo-baseline [--port P]   (P = 0 picks a free port)
// Prints "listening on PORT" on stdout once it accepts connections.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
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

  void run() {
    // The session's handlers all run on its strand; start there.
    net::dispatch(ws_.get_executor(), beast::bind_front_handler(&EchoSession::on_run, shared_from_this()));
  }

 private:
  void on_run() {
    // The one deviation from Beast's example: TCP_NODELAY, as Conduit sets it.
    // Without it Beast's default auto-fragmentation (4 KiB frames, one send
    // each) meets Nagle + delayed ACK and every 16 KiB echo stalls ~40 ms,
    // which would measure the kernel's timers, not Beast.
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true), ignored);
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(beast::http::field::server, "beast-echo-baseline"); }));
    ws_.read_message_max(max_message_bytes);
    ws_.async_accept(beast::bind_front_handler(&EchoSession::on_accept, shared_from_this()));
  }

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
    // Each connection gets its own strand, as in Beast's example.
    acceptor_.async_accept(net::make_strand(ioc_), beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
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
