// Test helpers for in-process server tests: a blocking raw-socket WebSocket
// client (enough to drive the server from plain threads without another
// event loop in the test), one-shot HTTP requests, and test server options.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/server.hpp"
#include "wire/frame.hpp"
#include "wire/handshake.hpp"
#include "wire/parser.hpp"

namespace conduit_test {

using namespace std::chrono_literals;

struct Frame {
  conduit::wire::Opcode op;
  std::string payload;
  std::uint16_t close_code = 0;
};

// A blocking WebSocket client on a raw socket: enough to drive the server
// from plain threads without another event loop in the test.
class RawClient {
 public:
  // rcvbuf > 0: the socket's receive buffer (set before connecting), to make
  // a client that does not read push back on the server quickly.
  explicit RawClient(std::uint16_t port, std::string_view target = "/", const std::vector<std::string>& protocols = {},
                     std::string_view extra_headers = {}, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("connect failed");
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{10, 0};  // every blocking read is bounded
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string key = conduit::wire::generate_client_key();
    std::string req = conduit::wire::make_client_request("127.0.0.1:" + std::to_string(port), target, key, protocols,
                                                         {}, extra_headers);
    write_all(req);
    std::string resp;
    char c;
    while (resp.find("\r\n\r\n") == std::string::npos) {
      if (::recv(fd_, &c, 1, 0) != 1) throw std::runtime_error("handshake read failed");
      resp.push_back(c);
    }
    status_ = resp.substr(0, resp.find("\r\n"));
    response_ = resp;
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  const std::string& status() const { return status_; }
  const std::string& response() const { return response_; }
  // After a refused upgrade: the rest of the response (its body) until EOF.
  std::string read_to_eof() {
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }

  void send_text(std::string_view s) {
    std::string out;
    conduit::wire::append_frame(out, conduit::wire::Opcode::Text, s, true);
    write_all(out);
  }
  void send_close(std::uint16_t code) {
    std::string out;
    conduit::wire::append_frame(out, conduit::wire::Opcode::Close, conduit::wire::close_payload(code, ""), true);
    write_all(out);
  }

  // Reads until one frame/message is available (or throws on timeout/EOF).
  Frame next() {
    while (frames_.empty()) {
      std::uint8_t buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) throw std::runtime_error("connection ended or timed out");
      Handler h{frames_};
      parser_.consume(buf, static_cast<std::size_t>(n), h);
    }
    Frame f = std::move(frames_.front());
    frames_.erase(frames_.begin());
    return f;
  }
  // Next non-control frame, answering nothing (pings are skipped).
  Frame next_data_or_close() {
    for (;;) {
      Frame f = next();
      if (f.op == conduit::wire::Opcode::Ping || f.op == conduit::wire::Opcode::Pong) continue;
      return f;
    }
  }

 private:
  struct Handler {
    std::vector<Frame>& out;
    void on_message(conduit::wire::Opcode op, std::uint8_t* d, std::size_t n, bool) {
      out.push_back({op, std::string(reinterpret_cast<char*>(d), n)});
    }
    void on_ping(const std::uint8_t* d, std::size_t n) {
      out.push_back({conduit::wire::Opcode::Ping, std::string(reinterpret_cast<const char*>(d), n)});
    }
    void on_pong(const std::uint8_t*, std::size_t) {}
    void on_close(std::uint16_t code, std::string_view reason) {
      out.push_back({conduit::wire::Opcode::Close, std::string(reason), code});
    }
    void on_error(std::uint16_t code, const char* reason) {
      out.push_back({conduit::wire::Opcode::Close, std::string("client parser error: ") + reason, code});
    }
  };
  void write_all(std::string_view s) {
    while (!s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      s.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  int fd_ = -1;
  std::string status_;
  std::string response_;
  conduit::wire::Parser parser_{conduit::wire::Role::Client, {16 << 20, false}};
  std::vector<Frame> frames_;
};

inline conduit::ServerOptions test_options(unsigned threads) {
  conduit::ServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.threads = threads;
  o.heartbeat.ping_interval = 0ms;  // no pings in the way of exact frame sequences
  o.shutdown_grace = 5000ms;
  o.close_timeout = 1000ms;  // clients that never answer our close do not hold stop() for long
  return o;
}

// Connects to 127.0.0.1:port, writes each part with its own send(2) (so the
// server reads them separately unless they coalesce), and returns everything
// the server sends until it closes (reads bounded by a 10 s timeout).
inline std::string http_exchange(std::uint16_t port, const std::vector<std::string>& parts) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    throw std::runtime_error("connect failed");
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (const auto& p : parts) {
    if (::send(fd, p.data(), p.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(p.size())) break;
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace conduit_test
