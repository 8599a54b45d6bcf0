// In-repo baseline for broadcast fan-out, written the way Boost.Beast's
// one-thread chat server (the CppCon 2018 example) is: a shared state holds the
// set of sessions; every message read from any session is wrapped once in a
// shared_ptr<const std::string> and handed to every session (sender included);
// each session queues it and keeps one async_write in flight at a time. That is
// one send per delivery, the design the fan-out comparison is about.
//
// Configured the way a Beast expert would run it for a one-thread comparison
// (docs/benchmarks.md repeats these settings):
//   - One thread, no strands, no mutex and no post per delivery: with one
//     thread calling run() the io_context is an implicit strand, so the shared
//     state calls each session directly (the multi-threaded chat example's
//     mutex, weak_ptr snapshot and per-session post would only add work).
//   - auto_fragment(false): one frame and one send per delivery whatever the
//     message size (the 64-byte fan-out messages fit one frame either way).
//   - TCP_NODELAY, as Conduit sets it; binary frames (the relay forwards bytes
//     and the load generator sends binary); read_message_max 64 MiB.
//   - The read buffer is reused; per message the only allocation is the one
//     shared copy every session's queue points to.
//   - timeout::suggested(server) stays on, as for the echo baseline: every
//     server in the comparison keeps a way to drop dead peers.
// Keep it idiomatic: the point is Beast at its best, not a different server.
//
// Usage: beast-broadcast-baseline [--host ADDR] [--port P]   (P = 0 picks a free port)
// Prints "listening on PORT" on stdout once it accepts connections.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr std::uint64_t max_message_bytes = 64ull * 1024 * 1024;

class BroadcastSession;

// Who is connected. Sessions join after their upgrade and leave in their
// destructor. Only the io_context's one thread touches it: no lock.
class SharedState {
 public:
  void join(BroadcastSession* session) { sessions_.insert(session); }
  void leave(BroadcastSession* session) { sessions_.erase(session); }
  // Defined after BroadcastSession.
  void send(std::string message);

 private:
  std::unordered_set<BroadcastSession*> sessions_;
};

class BroadcastSession : public std::enable_shared_from_this<BroadcastSession> {
 public:
  BroadcastSession(tcp::socket&& socket, std::shared_ptr<SharedState> state)
      : ws_(std::move(socket)), state_(std::move(state)) {}

  ~BroadcastSession() {
    if (joined_) state_->leave(this);
  }

  // Called on the one thread that runs the io_context (the accept handler).
  void run() {
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true), ignored);
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(max_message_bytes);
    ws_.auto_fragment(false);
    ws_.binary(true);  // the relay forwards bytes; the load generator sends binary
    ws_.async_accept(beast::bind_front_handler(&BroadcastSession::on_accept, shared_from_this()));
  }

  // Queues one delivery. Called on the io_context's thread (from another
  // session's read handler); async_write never completes inline, so this
  // cannot re-enter the shared state.
  void send(const std::shared_ptr<const std::string>& message) {
    queue_.push_back(message);
    if (queue_.size() > 1) return;  // a write is already in flight
    ws_.async_write(net::buffer(*queue_.front()),
                    beast::bind_front_handler(&BroadcastSession::on_write, shared_from_this()));
  }

 private:
  void on_accept(beast::error_code ec) {
    if (ec) return;
    state_->join(this);
    joined_ = true;
    do_read();
  }

  void do_read() { ws_.async_read(buffer_, beast::bind_front_handler(&BroadcastSession::on_read, shared_from_this())); }

  void on_read(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return;
    state_->send(beast::buffers_to_string(buffer_.data()));
    buffer_.consume(buffer_.size());
    do_read();
  }

  void on_write(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return;
    queue_.erase(queue_.begin());
    if (!queue_.empty())
      ws_.async_write(net::buffer(*queue_.front()),
                      beast::bind_front_handler(&BroadcastSession::on_write, shared_from_this()));
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  std::shared_ptr<SharedState> state_;
  std::vector<std::shared_ptr<const std::string>> queue_;
  bool joined_ = false;
};

void SharedState::send(std::string message) {
  auto const shared = std::make_shared<const std::string>(std::move(message));
  // Sessions only leave in their destructor, which runs from a completion
  // handler, never inside this loop: iterating the set directly is safe.
  for (auto* session : sessions_) session->send(shared);
}

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(net::io_context& ioc, tcp::endpoint endpoint, std::shared_ptr<SharedState> state)
      : ioc_(ioc), acceptor_(ioc), state_(std::move(state)) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(net::socket_base::max_listen_connections);
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  void run() { do_accept(); }

 private:
  void do_accept() {
    acceptor_.async_accept(ioc_, beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
  }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (!ec) std::make_shared<BroadcastSession>(std::move(socket), state_)->run();
    do_accept();
  }

  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  std::shared_ptr<SharedState> state_;
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
      std::cerr << "usage: beast-broadcast-baseline [--host ADDR] [--port P]\n";
      return 2;
    }
  }
  try {
    net::io_context ioc{1};
    auto state = std::make_shared<SharedState>();
    auto listener = std::make_shared<Listener>(ioc, tcp::endpoint{net::ip::make_address(host), port}, state);
    listener->run();
    net::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](beast::error_code, int) { ioc.stop(); });
    std::cout << "listening on " << listener->port() << std::endl;
    ioc.run();
  } catch (const std::exception& e) {
    std::cerr << "beast-broadcast-baseline: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
