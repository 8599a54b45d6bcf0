// One load-generator WebSocket connection: TCP connect, TLS for wss://, the
// upgrade, masked frames out, parsed frames in. A thin driver over the wire
// layer (wire::Parser, wire::append_frame, the handshake helpers); it only
// adds the I/O and the corked write buffer.
//
// Writes are corked: frames queued while a batch of input is handled leave in
// one async_write when the batch ends, so the generator does not cost more
// syscalls than the server it measures. Nothing on the per-message path
// allocates once the buffers have grown to the run's message size.
#pragma once
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "client/url.hpp"
#include "conduit_load/load.hpp"
#include "wire/frame.hpp"
#include "wire/parser.hpp"

namespace conduit::load {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// Where every connection of a run goes.
struct Target {
  client_detail::WsUrl url;
  tcp::endpoint endpoint;
  // Set for wss://: the run's TLS client context (CA store or no verification).
  net::ssl::context* tls = nullptr;
  bool verify_peer = true;
};

// The byte stream under a connection: plain TCP or TLS over it, chosen once
// per connection. The plain/TLS choice lives here and nowhere else.
class Transport {
 public:
  Transport(net::io_context& ioc, net::ssl::context* tls) : socket_(ioc) {
    if (tls != nullptr) tls_ = std::make_unique<net::ssl::stream<tcp::socket&>>(socket_, *tls);
  }
  tcp::socket& socket() noexcept { return socket_; }
  net::ssl::stream<tcp::socket&>* tls() noexcept { return tls_.get(); }

  template <class Handler>
  void async_read_some(net::mutable_buffer buffer, Handler&& handler) {
    if (tls_)
      tls_->async_read_some(buffer, std::forward<Handler>(handler));
    else
      socket_.async_read_some(buffer, std::forward<Handler>(handler));
  }
  template <class Handler>
  void async_write(net::const_buffer buffer, Handler&& handler) {
    if (tls_)
      net::async_write(*tls_, buffer, std::forward<Handler>(handler));
    else
      net::async_write(socket_, buffer, std::forward<Handler>(handler));
  }
  void close() noexcept {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  tcp::socket socket_;
  std::unique_ptr<net::ssl::stream<tcp::socket&>> tls_;
};

class Connection;

// What a scenario does with a connection's events. Called on its worker thread.
class ConnectionEvents {
 public:
  virtual ~ConnectionEvents() = default;
  virtual void on_open(Connection& c) = 0;
  virtual void on_setup_failed(Connection& c, LoadError error, const std::string& detail) = 0;
  virtual void on_message(Connection& c, wire::Opcode op, std::uint8_t* data, std::size_t len) = 0;
  // The write buffer drained (everything queued has been handed to the kernel).
  virtual void on_drained(Connection&) {}
  // The connection is finished. code: close code received (1006 when the TCP
  // connection ended without one); by_us: we started the close handshake.
  virtual void on_closed(Connection& c, std::uint16_t code, bool by_us) = 0;
  virtual void on_protocol_error(Connection& c, std::uint16_t code, const char* reason) = 0;
};

class Connection {
 public:
  enum class State : std::uint8_t { Idle, Connecting, Upgrading, Open, Closing, Closed };

  Connection(net::io_context& ioc, ConnectionEvents& events, const Target& target, std::size_t read_buffer_bytes,
             std::uint32_t id);

  std::uint32_t id() const noexcept { return id_; }
  State state() const noexcept { return state_; }
  bool open() const noexcept { return state_ == State::Open; }
  std::size_t pending_bytes() const noexcept { return out_pending_.size(); }

  void start();

  // Appends a masked frame; it leaves with the next flush().
  void queue(wire::Opcode op, std::string_view payload) {
    if (state_ != State::Open) return;
    wire::append_frame(out_pending_, op, payload, /*masked=*/true);
  }
  void flush();

  // Starts the close handshake (1000); the socket is closed when the server answers.
  void close();
  // Drops the TCP connection now.
  void abort();

 private:
  struct Sink;

  void on_connect(const boost::system::error_code& ec);
  void send_upgrade();
  void read_some();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  void on_peer_close();
  void drain_until_eof();
  void on_write(const boost::system::error_code& ec);
  const char* check_upgrade_response(std::string_view head) const;
  void fail_setup(LoadError error, const std::string& detail);
  void abort_with_socket_close();
  void finish(std::uint16_t code);

  Transport transport_;
  ConnectionEvents& events_;
  const Target& target_;
  wire::Parser parser_;
  std::vector<std::uint8_t> read_buffer_;
  std::string out_pending_;
  std::string out_writing_;
  std::string response_;
  std::string expected_accept_;
  std::uint32_t id_;
  std::uint16_t peer_close_code_ = 0;
  State state_ = State::Idle;
  bool writing_ = false;
  bool closing_by_us_ = false;

 public:
  // Scenario state, kept here to avoid a second allocation per connection.
  std::uint64_t send_seq = 0;          // echo: next sequence number to send
  std::uint64_t recv_seq = 0;          // echo: next echo expected; fanout: next sequence expected
  std::uint64_t received = 0;          // fanout: messages received
  std::vector<std::uint64_t> sent_at;  // echo: send time of in-flight messages, ring of `pipeline`
  std::string payload;                 // echo: payload buffer (pattern after the 8-byte header)
  bool subscriber_done = false;        // fanout
  bool subscribed = false;             // fanout, channel mode: the subscribe reply came
  bool was_open = false;               // the upgrade succeeded at some point
};

}  // namespace conduit::load
