#include "server/listener.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>
#include "ops/log.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "server/connection.hpp"
#include "server/loop.hpp"
#include "server/server_core.hpp"

namespace conduit::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::unique_ptr<Listener> Listener::open(ServerCore& core, Loop& loop, const std::string& host, std::uint16_t port,
                                         int backlog, const char* key, bool metrics_only, std::uint16_t& bound_port) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) throw std::system_error(ec, std::string(key) + ": bad address '" + host + "'");
  tcp::endpoint ep(addr, port);
  int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), std::string(key) + ": socket");
  auto fail = [&](const std::string& what) {
    int err = errno;
    ::close(fd);
    throw std::system_error(err, std::generic_category(), std::string(key) + ": " + what);
  };
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (addr.is_v6()) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, ep.data(), static_cast<socklen_t>(ep.size())) != 0) {
    fail("cannot bind " + host + ":" + std::to_string(port));
  }
  // Accepted sockets inherit TCP_NODELAY from the listening socket (Linux
  // copies the option into every connection it accepts), which saves a
  // setsockopt per connection; Connection relies on it.
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) fail("cannot set TCP_NODELAY");
  if (::listen(fd, backlog) != 0) fail("cannot listen");
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
  bound_port = ntohs(local.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                                                 : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  auto l = std::make_unique<Listener>(core, loop, fd, metrics_only);  // owns fd from here on
  if (!loop.watch(fd, l.get(), true)) {
    int err = errno;
    throw std::system_error(err, std::generic_category(), std::string(key) + ": cannot watch the listening socket");
  }
  return l;
}

Listener::~Listener() { close(); }

void Listener::close() noexcept {
  // With io_uring the loop's poll request holds the socket open after
  // close(2): shutting it down first takes it out of the listening state,
  // so the port is free (and refuses connections) at once either way.
  if (fd_ >= 0) {
    if (loop_.on_this_thread()) loop_.unwatch(fd_);
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
  }
  fd_ = -1;
}

void Listener::accept_ready() {
  // Edge-triggered: accept until the backlog is empty, in slices of 64 so a
  // connection storm does not starve the loop's other sockets.
  for (int i = 0; i < 64; ++i) {
    if (paused_ || fd_ < 0 || core_.stopped()) return;
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      adopt(fd, peer);
      continue;
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return;
    if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
    // EMFILE/ENFILE/ENOBUFS/ENOMEM: back off briefly instead of spinning; the
    // pending connections wait in the backlog.
    ops::logger().error("event=accept_error reason=\"{}\" retry_ms=100", std::strerror(err));
    loop_.counters().errors[static_cast<std::size_t>(ErrorKind::AcceptFailed)].inc();
    paused_ = true;
    loop_.schedule(100, [this] {
      paused_ = false;
      accept_ready();
    });
    return;
  }
  loop_.post([this] { accept_ready(); });
}

void Listener::adopt(int fd, const sockaddr_storage& peer) {
  std::string address;
  if (peer.ss_family == AF_INET6) {
    char ip[INET6_ADDRSTRLEN] = "?";
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&peer);
    ::inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    address = "[" + std::string(ip) + "]:" + std::to_string(ntohs(a->sin6_port));
  } else {
    // "a.b.c.d:port" by hand: inet_ntop formats IPv4 through sprintf, a
    // visible cost per connection in an accept storm.
    const auto* a = reinterpret_cast<const sockaddr_in*>(&peer);
    const std::uint32_t ip = ntohl(a->sin_addr.s_addr);
    char text[32];  // "255.255.255.255:65535" is 21
    std::size_t n = 0;
    auto decimal = [&](unsigned v) {
      char digits[5];
      int d = 0;
      do {
        digits[d++] = static_cast<char>('0' + v % 10);
        v /= 10;
      } while (v != 0 && d < 5);
      while (d > 0) text[n++] = digits[--d];
    };
    for (int shift = 24; shift >= 0; shift -= 8) {
      decimal((ip >> shift) & 0xFF);
      text[n++] = shift ? '.' : ':';
    }
    decimal(ntohs(a->sin_port));
    address.assign(text, n);
  }
  const std::uint64_t id = core_.connection_accepted();
  Loop& target = core_.next_loop();
  if (target.on_this_thread()) {
    // Starting only registers the socket (no read), so it can happen inside
    // the accepting batch: no posted task (and its allocation) per connection.
    std::make_shared<Connection>(target, fd, id, std::move(address), metrics_only_)->start();
    return;
  }
  // Another loop's connection is started from that loop's queue.
  target.post([&target, fd, id, metrics_only = metrics_only_, address = std::move(address)]() mutable {
    std::make_shared<Connection>(target, fd, id, std::move(address), metrics_only)->start();
  });
}

}  // namespace conduit::server
