// A server-side WebSocket connection as the application sees it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "conduit/message.hpp"

namespace conduit {

// A Session lives on one event-loop thread; its handlers never run
// concurrently. send() and close() may be called from any thread (calls from
// other threads are posted to the owning loop). Keep a SessionPtr (shared())
// to use a session after the handler that received it has returned.
class Session {
 public:
  virtual ~Session() = default;

  // Queues one message. Returns false when it was not queued: the session is
  // closing/closed, or the slow-consumer policy dropped it or closed the session.
  virtual bool send(std::string_view data, MessageType type = MessageType::Text) = 0;
  // Starts the close handshake (code 1000 unless given).
  virtual void close(std::uint16_t code = 1000, std::string_view reason = {}) = 0;

  virtual std::uint64_t id() const noexcept = 0;
  virtual const std::string& remote_address() const noexcept = 0;  // "ip:port"
  virtual const std::string& path() const noexcept = 0;            // request target
  virtual const std::string& subprotocol() const noexcept = 0;     // "" when none
  // Outbound bytes queued and not yet written to the socket.
  virtual std::size_t buffered_amount() const noexcept = 0;
  virtual bool is_open() const noexcept = 0;

  virtual std::shared_ptr<Session> shared() = 0;

  // Per-session application data, set by the accept hook or the application.
  std::shared_ptr<void> user_data;
};

using SessionPtr = std::shared_ptr<Session>;

}  // namespace conduit
