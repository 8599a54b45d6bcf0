// Upgrade storm: `in_flight` connections at a time go through a whole life
// cycle (connect, upgrade, close handshake, the server's FIN) and are
// replaced as soon as they end, for upgrades per server-CPU-second figures.
//
// Raw non-blocking sockets on one epoll set, on the calling thread: the
// generator has to open and close connections faster than the server it
// measures, and an io_context with a socket object, a connection object and
// a handler allocation per connection would make it the bottleneck.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "load/worker.hpp"
#include "wire/handshake.hpp"

namespace conduit::load {
namespace {

// A fixed key: the server must answer every upgrade with the same accept
// value, which is checked on every response.
constexpr std::string_view kKey = "dGhlIHNhbXBsZSBub25jZQ==";
// Masked close frame, code 1000, mask key 0x01020304.
constexpr std::array<std::uint8_t, 8> kCloseFrame = {0x88, 0x82, 0x01, 0x02, 0x03, 0x04, 0x03 ^ 0x01, 0xE8 ^ 0x02};

struct Slot {
  enum class State : std::uint8_t { Idle, Connecting, Response, Close, Fin };
  int fd = -1;
  State state = State::Idle;
  std::string in;  // response bytes so far (reused: capacity stays)
};

class Storm {
 public:
  Storm(const UpgradeLoadOptions& o, const Target& target) : options_(o), target_(target) {
    request_ = wire::make_client_request(target.url.host_header, target.url.target, kKey, {}, {}, {});
    accept_ = "Sec-WebSocket-Accept: " + wire::compute_accept_key(kKey) + "\r\n";
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    slots_.resize(o.in_flight);
  }
  ~Storm() {
    for (Slot& s : slots_) {
      if (s.fd >= 0) ::close(s.fd);
    }
    if (epoll_ >= 0) ::close(epoll_);
  }

  UpgradeLoadReport run() {
    UpgradeLoadReport report;
    for (std::size_t i = 0; i < slots_.size(); ++i) open(i);
    const auto start = Clock::now();
    const auto window_start = start + options_.warmup;
    const auto window_end = window_start + options_.duration;
    bool measuring = false;
    std::optional<double> cpu_before;
    std::uint64_t counted_before = 0;
    Clock::time_point measured_from;
    epoll_event events[256];
    for (;;) {
      const auto now = Clock::now();
      if (!measuring && now >= window_start) {
        measuring = true;
        measured_from = now;
        counted_before = completed_;
        cpu_before = server_cpu_seconds(options_);
      }
      if (now >= window_end || cancelled(options_)) {
        if (measuring) {
          const auto end = Clock::now();
          const std::optional<double> cpu_after = server_cpu_seconds(options_);
          report.seconds = seconds_between(measured_from, end);
          report.upgrades = completed_ - counted_before;
          if (*report.seconds > 0) report.upgrades_per_second = static_cast<double>(report.upgrades) / *report.seconds;
          if (cpu_before && cpu_after) report.server_cpu_seconds = *cpu_after - *cpu_before;
          if (report.server_cpu_seconds && *report.server_cpu_seconds > 0)
            report.upgrades_per_server_cpu_second = static_cast<double>(report.upgrades) / *report.server_cpu_seconds;
        }
        break;
      }
      const int n = ::epoll_wait(epoll_, events, 256, 100);
      for (int i = 0; i < n; ++i) on_event(events[i].data.u32, events[i].events);
      // Too many failures in a row means the server is gone: stop early.
      if (failures_ > 1000 && completed_ == 0) {
        report.error = LoadError::ConnectFailed;
        report.error_detail = first_failure_;
        break;
      }
    }
    report.failures = failures_;
    if (report.error == LoadError::None && completed_ == 0 && !first_failure_.empty()) {
      report.error = LoadError::HandshakeFailed;
      report.error_detail = first_failure_;
    }
    return report;
  }

 private:
  void open(std::size_t i) {
    Slot& s = slots_[i];
    s.in.clear();
    s.fd = ::socket(target_.endpoint.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s.fd < 0) {
      fail(i, std::string("socket: ") + std::strerror(errno));
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u32 = static_cast<std::uint32_t>(i);
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, s.fd, &ev);
    s.state = Slot::State::Connecting;
    if (::connect(s.fd, target_.endpoint.data(), static_cast<socklen_t>(target_.endpoint.size())) == 0) {
      send_request(i);
    } else if (errno != EINPROGRESS) {
      fail(i, std::string("connect: ") + std::strerror(errno));
    }
  }

  void send_request(std::size_t i) {
    Slot& s = slots_[i];
    // A fresh socket's send buffer always takes the ~150-byte request whole.
    if (::send(s.fd, request_.data(), request_.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request_.size())) {
      fail(i, std::string("send request: ") + std::strerror(errno));
      return;
    }
    s.state = Slot::State::Response;
  }

  void on_event(std::uint32_t i, std::uint32_t events) {
    Slot& s = slots_[i];
    if (s.state == Slot::State::Connecting) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        fail(i, std::string("connect: ") + std::strerror(err));
        return;
      }
      send_request(i);
      if (s.state != Slot::State::Response) return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read_all(i);
  }

  void read_all(std::uint32_t i) {
    Slot& s = slots_[i];
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(s.fd, buf, sizeof buf, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        fail(i, std::string("recv: ") + std::strerror(errno));
        return;
      }
      if (n == 0) {
        if (s.state == Slot::State::Fin) {
          finish(i);
        } else {
          fail(i, "the server closed the connection before the close handshake");
        }
        return;
      }
      if (s.state == Slot::State::Fin) {
        fail(i, "bytes after the server's close frame");
        return;
      }
      s.in.append(buf, static_cast<std::size_t>(n));
      if (s.state == Slot::State::Response) {
        const std::size_t end = s.in.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        const std::string_view head(s.in.data(), end + 4);
        if (head.substr(0, 13) != "HTTP/1.1 101 " || head.find(accept_) == std::string_view::npos) {
          fail(i, "not a valid 101: " + std::string(head.substr(0, head.find('\r'))));
          return;
        }
        s.in.erase(0, end + 4);
        if (::send(s.fd, kCloseFrame.data(), kCloseFrame.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(kCloseFrame.size())) {
          fail(i, std::string("send close: ") + std::strerror(errno));
          return;
        }
        s.state = Slot::State::Close;
      }
      if (s.state == Slot::State::Close) {
        // The server's close frame: unmasked, code 1000 echoed (2 + 2 bytes).
        if (s.in.size() < 4) continue;
        if (static_cast<std::uint8_t>(s.in[0]) != 0x88 || static_cast<std::uint8_t>(s.in[1]) != 0x02 ||
            static_cast<std::uint8_t>(s.in[2]) != 0x03 || static_cast<std::uint8_t>(s.in[3]) != 0xE8 ||
            s.in.size() != 4) {
          fail(i, "the server did not answer the close with a bare close 1000");
          return;
        }
        s.state = Slot::State::Fin;
      }
    }
  }

  void finish(std::uint32_t i) {
    ::close(slots_[i].fd);
    slots_[i].fd = -1;
    ++completed_;
    open(i);
  }

  void fail(std::size_t i, std::string why) {
    ++failures_;
    if (first_failure_.empty()) first_failure_ = std::move(why);
    if (slots_[i].fd >= 0) ::close(slots_[i].fd);
    slots_[i].fd = -1;
    slots_[i].state = Slot::State::Idle;
    // Reopen, unless the server looks gone (then the run ends on its own).
    if (failures_ <= 1000 || completed_ > 0) open(i);
  }

  const UpgradeLoadOptions& options_;
  const Target& target_;
  std::string request_;
  std::string accept_;
  int epoll_ = -1;
  std::vector<Slot> slots_;
  std::uint64_t completed_ = 0;
  std::uint64_t failures_ = 0;
  std::string first_failure_;
};

}  // namespace

UpgradeLoadReport run_upgrade_load(const UpgradeLoadOptions& options) {
  UpgradeLoadReport report;
  if (options.in_flight == 0) {
    report.error = LoadError::BadOptions;
    report.error_detail = "in_flight must be at least 1";
    return report;
  }
  Setup setup = resolve(options, options.in_flight);
  if (setup.error != LoadError::None) {
    report.error = setup.error;
    report.error_detail = setup.detail;
    return report;
  }
  if (setup.target.url.secure) {
    report.error = LoadError::BadOptions;
    report.error_detail = "the upgrade storm speaks ws:// only";
    return report;
  }
  Storm storm(options, setup.target);
  return storm.run();
}

}  // namespace conduit::load
