#include "server/transport.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace conduit::server {
namespace {

class PlainTransport final : public Transport {
 public:
  long read(int fd, std::uint8_t* buf, std::size_t len, int& err) override {
    for (;;) {
      ssize_t n = ::recv(fd, buf, len, 0);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      err = errno;
      return -1;
    }
  }

  WriteStatus write(int fd, net::SendQueue& queue, net::NodePool& pool, iovec* iov, std::uint64_t& written,
                    int& err) override {
    while (!queue.empty()) {
      int cnt = queue.gather(iov, net::SendQueue::max_iov);
      ssize_t n;
      if (cnt == 1) {
        // The common case (an echo, a broadcast run in one shared buffer):
        // send(2) skips sendmsg's msghdr and iovec copy-in.
        n = ::send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
      } else {
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = static_cast<std::size_t>(cnt);
        n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
      }
      if (n > 0) {
        written += static_cast<std::uint64_t>(n);
        queue.consume(pool, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return WriteStatus::Blocked;
      err = n < 0 ? errno : EPIPE;
      return WriteStatus::Failed;
    }
    return WriteStatus::Done;
  }

  bool writes_through() const noexcept override { return true; }
  bool close_ends_stream() const noexcept override { return true; }
  long write_through(int fd, const iovec* iov, int count, int& err) override {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = static_cast<std::size_t>(count);
    for (;;) {
      ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      err = errno;
      return -1;
    }
  }
};

PlainTransport g_plain;

}  // namespace

void Transport::shutdown_write(int fd) noexcept { ::shutdown(fd, SHUT_WR); }

long Transport::write_through(int, const iovec*, int, int& err) {
  err = ENOTSUP;
  return -1;
}

Transport& plain_transport() noexcept { return g_plain; }

}  // namespace conduit::server
