// In-repo baseline for broadcast fan-out: written the way Boost.Beast's
// websocket-chat-multi example is. A shared state holds the set of sessions
// under a mutex; every message read from any session is wrapped once in a
// shared_ptr<const std::string> and posted to every session (sender included);
// each session queues it and keeps one async_write in flight at a time.
// One thread runs the io_context.
//
// This is the "one send per delivery" design that issue 5 compares against;
// keep it idiomatic, do not optimise it.
//
// Usage: beast-broadcast-baseline [--port P]   (P = 0 picks a free port)
// Prints "listening on PORT" on stdout once it accepts connections.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
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

// Who is connected. Sessions join after their upgrade and leave in their destructor.
class SharedState {
 public:
  void join(BroadcastSession* session) {
    std::lock_guard lock(mutex_);
    sessions_.insert(session);
  }
  void leave(BroadcastSession* session) {
    std::lock_guard lock(mutex_);
    sessions_.erase(session);
  }
  // Defined after BroadcastSession.
  void send(std::string message);

 private:
  std::mutex mutex_;
  std::unordered_set<BroadcastSession*> sessions_;
};

class BroadcastSession : public std::enable_shared_from_this<BroadcastSession> {
 public:
  BroadcastSession(tcp::socket&& socket, std::shared_ptr<SharedState> state)
      : ws_(std::move(socket)), state_(std::move(state)) {}

  ~BroadcastSession() {
    if (joined_) state_->leave(this);
  }

  void run() {
    net::dispatch(ws_.get_executor(), beast::bind_front_handler(&BroadcastSession::on_run, shared_from_this()));
  }

  // May be called from any thread: hop onto the session's strand.
  void send(const std::shared_ptr<const std::string>& message) {
    net::post(ws_.get_executor(), beast::bind_front_handler(&BroadcastSession::on_send, shared_from_this(), message));
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
    ws_.read_message_max(max_message_bytes);
    ws_.binary(true);  // the relay forwards bytes; the load generator sends binary
    ws_.async_accept(beast::bind_front_handler(&BroadcastSession::on_accept, shared_from_this()));
  }

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

  void on_send(const std::shared_ptr<const std::string>& message) {
    queue_.push_back(message);
    if (queue_.size() > 1) return;  // a write is already in flight
    ws_.async_write(net::buffer(*queue_.front()),
                    beast::bind_front_handler(&BroadcastSession::on_write, shared_from_this()));
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
  // Snapshot under the lock, deliver outside it, as the example does.
  std::vector<std::weak_ptr<BroadcastSession>> targets;
  {
    std::lock_guard lock(mutex_);
    targets.reserve(sessions_.size());
    for (auto* session : sessions_) targets.emplace_back(session->weak_from_this());
  }
  for (const auto& weak : targets)
    if (auto session = weak.lock()) session->send(shared);
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
    acceptor_.async_accept(net::make_strand(ioc_), beast::bind_front_handler(&Listener::on_accept, shared_from_this()));
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
