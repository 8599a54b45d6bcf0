#include "load/ws_connection.hpp"

#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <cctype>

#include "wire/handshake.hpp"

namespace conduit::load {

// Frame callbacks from the parser.
struct Connection::Sink {
  Connection& c;
  void on_message(wire::Opcode op, std::uint8_t* data, std::size_t len, bool /*compressed*/) {
    if (c.state_ == State::Open || c.state_ == State::Closing) c.events_.on_message(c, op, data, len);
  }
  void on_ping(const std::uint8_t* data, std::size_t len) {
    if (c.state_ == State::Open)
      wire::append_frame(c.out_pending_, wire::Opcode::Pong, std::string_view(reinterpret_cast<const char*>(data), len),
                         true);
  }
  void on_pong(const std::uint8_t*, std::size_t) {}
  void on_close(std::uint16_t code, std::string_view) { c.peer_close_code_ = code; }
  void on_error(std::uint16_t code, const char* reason) { c.events_.on_protocol_error(c, code, reason); }
};

Connection::Connection(net::io_context& ioc, ConnectionEvents& events, const Target& target,
                       std::size_t read_buffer_bytes, std::uint32_t id)
    : transport_(ioc, target.tls),
      events_(events),
      target_(target),
      parser_(wire::Role::Client, wire::ParserLimits{64ull * 1024 * 1024, false}),
      read_buffer_(read_buffer_bytes),
      id_(id) {}

void Connection::start() {
  state_ = State::Connecting;
  transport_.socket().async_connect(target_.endpoint, [this](const boost::system::error_code& ec) { on_connect(ec); });
}

void Connection::flush() {
  if (writing_ || out_pending_.empty() || state_ == State::Closed) return;
  writing_ = true;
  out_writing_.swap(out_pending_);
  transport_.async_write(net::buffer(out_writing_),
                         [this](const boost::system::error_code& ec, std::size_t) { on_write(ec); });
}

void Connection::close() {
  if (state_ == State::Open) {
    wire::append_frame(out_pending_, wire::Opcode::Close, wire::close_payload(wire::close_code::normal, {}), true);
    state_ = State::Closing;
    closing_by_us_ = true;
    flush();
  } else if (state_ == State::Connecting || state_ == State::Upgrading || state_ == State::Idle) {
    abort();
  }
}

void Connection::abort() {
  if (state_ == State::Closed) return;
  transport_.close();
  finish(wire::close_code::abnormal);
}

void Connection::on_connect(const boost::system::error_code& ec) {
  if (state_ != State::Connecting) return;
  if (ec) return fail_setup(LoadError::ConnectFailed, ec.message());
  boost::system::error_code ignored;
  transport_.socket().set_option(tcp::no_delay(true), ignored);
  state_ = State::Upgrading;
  auto* tls = transport_.tls();
  if (tls == nullptr) return send_upgrade();
  // Names get SNI and a host-name check; literal addresses an IP check (the
  // same rules as conduit::Client).
  if (!target_.url.host_is_ip) SSL_set_tlsext_host_name(tls->native_handle(), target_.url.host.c_str());
  if (target_.verify_peer) {
    tls->set_verify_mode(net::ssl::verify_peer);
    tls->set_verify_callback(net::ssl::host_name_verification(target_.url.host));
  } else {
    tls->set_verify_mode(net::ssl::verify_none);
  }
  tls->async_handshake(net::ssl::stream_base::client, [this](const boost::system::error_code& hec) {
    if (state_ != State::Upgrading) return;
    if (hec) return fail_setup(LoadError::HandshakeFailed, "TLS: " + hec.message());
    send_upgrade();
  });
}

void Connection::send_upgrade() {
  const std::string key = wire::generate_client_key();
  expected_accept_ = wire::compute_accept_key(key);
  out_writing_ = wire::make_client_request(target_.url.host_header, target_.url.target, key, {}, {}, {});
  writing_ = true;
  transport_.async_write(net::buffer(out_writing_),
                         [this](const boost::system::error_code& ec, std::size_t) { on_write(ec); });
  read_some();
}

void Connection::read_some() {
  transport_.async_read_some(net::buffer(read_buffer_),
                             [this](const boost::system::error_code& ec, std::size_t n) { on_read(ec, n); });
}

void Connection::on_read(const boost::system::error_code& ec, std::size_t n) {
  if (state_ == State::Closed) return;
  if (ec) {
    if (state_ == State::Upgrading)
      return fail_setup(LoadError::HandshakeFailed, "connection ended during the upgrade: " + ec.message());
    return abort_with_socket_close();
  }
  std::uint8_t* data = read_buffer_.data();
  if (state_ == State::Upgrading) {
    // The 101 response is small; keep it until the blank line arrives.
    response_.append(reinterpret_cast<const char*>(data), n);
    const std::size_t end = response_.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (response_.size() > 16384) return fail_setup(LoadError::HandshakeFailed, "response header too large");
      return read_some();
    }
    if (const char* problem = check_upgrade_response(std::string_view(response_).substr(0, end + 2)))
      return fail_setup(LoadError::HandshakeFailed,
                        std::string(problem) + " (" + response_.substr(0, response_.find("\r\n")) + ")");
    const std::size_t header_bytes = end + 4;
    const std::size_t leftover = response_.size() - header_bytes;
    // Frames that arrived with the response are in read_buffer_'s tail.
    data += n - leftover;
    n = leftover;
    std::string().swap(response_);
    state_ = State::Open;
    was_open = true;
    events_.on_open(*this);
    if (state_ != State::Open) return;
  }
  if (n != 0) {
    Sink sink{*this};
    if (!parser_.consume(data, n, sink)) {
      if (parser_.closed()) return on_peer_close();
      // Protocol error: already reported; drop the connection.
      return abort_with_socket_close();
    }
  }
  flush();
  read_some();
}

void Connection::on_peer_close() {
  if (!closing_by_us_ && state_ == State::Open) {
    // Echo the close (RFC 6455 §5.5.1), then wait for the server to end TCP.
    wire::append_frame(out_pending_, wire::Opcode::Close, wire::close_payload(peer_close_code_, {}), true);
    state_ = State::Closing;
  }
  flush();
  // The server closes the TCP connection after the handshake; read until EOF
  // (the parser ignores bytes after a close).
  drain_until_eof();
}

void Connection::drain_until_eof() {
  transport_.async_read_some(net::buffer(read_buffer_), [this](const boost::system::error_code& ec, std::size_t) {
    if (state_ == State::Closed) return;
    if (ec) return abort_with_socket_close();
    drain_until_eof();
  });
}

void Connection::on_write(const boost::system::error_code& ec) {
  writing_ = false;
  if (state_ == State::Closed) return;
  if (ec) return abort_with_socket_close();
  out_writing_.clear();
  if (!out_pending_.empty()) return flush();
  if (state_ == State::Open) events_.on_drained(*this);
}

const char* Connection::check_upgrade_response(std::string_view head) const {
  if (head.substr(0, 12) != "HTTP/1.1 101") return "server did not answer 101 Switching Protocols";
  // Find Sec-WebSocket-Accept case-insensitively.
  std::size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    const std::size_t line_start = pos + 2;
    const std::size_t line_end = head.find("\r\n", line_start);
    std::string_view line = head.substr(line_start, line_end - line_start);
    const std::size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view name = line.substr(0, colon);
      constexpr std::string_view wanted = "sec-websocket-accept";
      if (name.size() == wanted.size() && std::equal(name.begin(), name.end(), wanted.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) == b;
          })) {
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
        return value == expected_accept_ ? nullptr : "wrong Sec-WebSocket-Accept";
      }
    }
    pos = line_end;
  }
  return "no Sec-WebSocket-Accept in the response";
}

// Setup (connect, TLS, upgrade) failed: the connection never opened.
void Connection::fail_setup(LoadError error, const std::string& detail) {
  transport_.close();
  state_ = State::Closed;
  events_.on_setup_failed(*this, error, detail);
}

void Connection::abort_with_socket_close() {
  transport_.close();
  finish(peer_close_code_ ? peer_close_code_ : wire::close_code::abnormal);
}

void Connection::finish(std::uint16_t code) {
  if (state_ == State::Closed) return;
  const bool was_setup = state_ == State::Connecting || state_ == State::Upgrading;
  state_ = State::Closed;
  // Release buffers now: with 10k connections, closed ones should not hold memory.
  std::string().swap(out_pending_);
  if (!writing_) std::string().swap(out_writing_);
  if (was_setup) {
    events_.on_setup_failed(*this, LoadError::ConnectFailed, "aborted during setup");
  } else {
    events_.on_closed(*this, code, closing_by_us_);
  }
}

}  // namespace conduit::load
