// A server-side WebSocket connection as the application sees it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "conduit/message.hpp"

namespace conduit {

// What Session::send did with a message. The answer is decided when send()
// is called, from any thread, and it is the truth: a message reported queued
// is in the session's outbound stream, ahead of any close frame the server
// sends later (from another thread too: the loop queues it before it queues
// a close); a message reported dropped is never sent. Like any queued data,
// a queued message is still lost if the connection fails before it is
// written (reset, heartbeat timeout) or if a later send overflows the queue
// under SlowConsumerPolicy::Close (the backlog is discarded, see Dropped).
enum class SendStatus : std::uint8_t {
  // Queued; the session's queued bytes (including this message) are at most
  // half of ServerOptions::send_queue_bytes.
  Queued,
  // Queued, and the queued bytes are now above half of send_queue_bytes: the
  // peer reads slower than you send. Slow down; ServerHandlers::on_drain is
  // called once the queue has been written out.
  Backpressure,
  // Not queued and never sent: the session is closing or closed, or the
  // message did not fit under send_queue_bytes. In the latter case the
  // slow-consumer policy applied: with SlowConsumerPolicy::Drop only this
  // message is lost (conduit_messages_dropped_total); with Close the session
  // is being closed with 1008 "slow consumer" and its backlog discarded.
  Dropped,
};

// A Session lives on one event-loop thread; its handlers never run
// concurrently. send() and close() may be called from any thread (calls from
// other threads are posted to the owning loop). Keep a SessionPtr (shared())
// to use a session after the handler that received it has returned.
class Session {
 public:
  virtual ~Session() = default;

  // Queues one message (see SendStatus). Messages sent on the session's loop
  // thread are written in the order of the calls; so are those one other
  // thread sends. From another thread the message is copied and queued by
  // the loop after its current batch.
  virtual SendStatus send(std::string_view data, MessageType type = MessageType::Text) = 0;
  // Starts the close handshake (code 1000 unless given).
  virtual void close(std::uint16_t code = 1000, std::string_view reason = {}) = 0;

  virtual std::uint64_t id() const noexcept = 0;
  virtual const std::string& remote_address() const noexcept = 0;  // "ip:port"
  virtual const std::string& path() const noexcept = 0;            // request target
  virtual const std::string& subprotocol() const noexcept = 0;     // "" when none
  // Outbound bytes queued and not yet written to the socket (as of the
  // loop's last queue change when read from another thread).
  virtual std::size_t buffered_amount() const noexcept = 0;
  virtual bool is_open() const noexcept = 0;
  // The event loop the session lives on, 0 .. Server::loop_count() - 1; use
  // it with Server::post to run work next to the session.
  virtual unsigned loop_index() const noexcept = 0;

  virtual std::shared_ptr<Session> shared() = 0;

  // Per-session application data, set by the accept hook or the application.
  std::shared_ptr<void> user_data;
};

using SessionPtr = std::shared_ptr<Session>;

}  // namespace conduit
