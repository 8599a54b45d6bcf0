// A listening socket on loop 0's readiness set. Accepted descriptors are
// handed round-robin to the loops. metrics_only: the separate metrics.listen
// address, which serves the HTTP routes and refuses WebSocket upgrades.
#pragma once
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>

#include "net/event_loop.hpp"

namespace conduit::server {

class Loop;
class ServerCore;

class Listener final : public net::IoHandler {
 public:
  Listener(ServerCore& core, Loop& loop, int fd, bool metrics_only) noexcept
      : core_(core), loop_(loop), fd_(fd), metrics_only_(metrics_only) {}
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds a non-blocking listening socket and watches it on loop. Throws
  // std::system_error naming the option key when the address is bad or taken.
  static std::unique_ptr<Listener> open(ServerCore& core, Loop& loop, const std::string& host, std::uint16_t port,
                                        int backlog, const char* key, bool metrics_only, std::uint16_t& bound_port);

  void on_io(std::uint32_t) override { accept_ready(); }
  void close() noexcept;

 private:
  void accept_ready();
  // Takes an accepted descriptor and starts its connection on the next loop.
  void adopt(int fd, const sockaddr_storage& peer);

  ServerCore& core_;
  Loop& loop_;
  int fd_;
  bool metrics_only_;
  bool paused_ = false;  // after EMFILE and friends: retried by a timer
};

}  // namespace conduit::server
