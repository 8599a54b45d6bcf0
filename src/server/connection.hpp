// Server-side connection: the RFC 6455 engine driven by socket readiness.
//
// Life of a connection, top to bottom:
//   accepted → Handshake (request bytes accumulate in a small heap block that
//   is freed after the upgrade or the HTTP response) → Open (frames parsed in
//   place from the loop's read buffer; replies queued and flushed with one
//   gather write per batch) → Closing (our close frame is queued; we keep
//   reading until the peer's close or EOF, bounded by close_timeout) → Closed
//   (socket closed, on_close called once, loop forgets it).
//
// The code is split by concern: connection.cpp (reading and the frame state
// machine), upgrade.cpp (HTTP request, admission, accept hook, deflate
// negotiation, HTTP routes), connection_send.cpp (send path, slow-consumer
// policy, flush, sends from other threads), connection_close.cpp (close
// handshake, sweep, finish). The socket is reached through a Transport
// (plain or TLS).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "conduit/server.hpp"
#include "net/event_loop.hpp"
#include "net/send_queue.hpp"
#include "server/failures.hpp"
#include "server/fanout.hpp"
#include "server/foreign_send.hpp"
#include "server/transport.hpp"
#include "wire/parser.hpp"

namespace conduit::wire {
struct UpgradeRequest;
}  // namespace conduit::wire

namespace conduit::wire {
class PerMessageDeflate;
}

namespace conduit::server {

class Loop;
class ServerCore;
struct HandshakeState;
struct HttpRoute;
struct RareState;

class Connection final : public Session, public net::IoHandler, public std::enable_shared_from_this<Connection> {
 public:
  enum class State : std::uint8_t { Handshake, Open, Closing, Closed };
  // What happens to sends other threads made that have not reached the
  // queue yet when the close starts.
  enum class PendingSends : std::uint8_t { Send, Discard };
  // Whether a frame goes through the slow-consumer policy: Check for
  // application messages; Admitted for a send another thread already
  // admitted; Control for control frames, which always go out.
  enum class Admission : std::uint8_t { Check, Admitted, Control };

  Connection(Loop& loop, int fd, std::uint64_t id, std::string remote_address, bool metrics_only);
  ~Connection() override;

  // Loop thread: the reply of a route's asynchronous handler (ignored unless
  // the connection is still waiting for it).
  void answer_route(const HttpResponse& response);

  // Session
  SendStatus send(std::string_view data, MessageType type) override;
  void close(std::uint16_t code, std::string_view reason) override;
  std::uint64_t id() const noexcept override { return id_; }
  const std::string& remote_address() const noexcept override { return remote_address_; }
  const std::string& path() const noexcept override;
  const std::string& subprotocol() const noexcept override;
  std::size_t buffered_amount() const noexcept override { return queued_bytes_.load(std::memory_order_relaxed); }
  bool is_open() const noexcept override { return state_ == State::Open; }
  unsigned loop_index() const noexcept override;
  std::shared_ptr<Session> shared() override { return shared_from_this(); }

  // Engine entry points (loop thread only).
  void start();
  void on_io(std::uint32_t events) override;
  // Completion engine (io_uring), see net::IoHandler.
  void on_received(std::uint8_t* data, std::size_t len) override;
  void on_receive_stopped(int result) override;
  void on_sent(int result) override;
  void sweep(std::int64_t now_ms);  // heartbeats and timeouts
  void flush();                     // one gather write of everything queued
  // Queues a reference to already-framed fan-out frames (shared buffer range).
  void deliver_shared(net::FrameBuffer* buf, std::uint32_t begin, std::uint32_t end, std::size_t messages);
  // Queues a message another thread's send() already admitted.
  void enqueue_admitted(const ForeignSend& s);
  bool compressed() const noexcept { return deflate() != nullptr; }
  wire::PerMessageDeflate* deflate() const noexcept;
  void go_away();           // graceful shutdown: close 1001
  void abort_connection();  // immediate drop
  State state() const noexcept { return state_; }
  std::string remote_ip() const;
  bool dirty() const noexcept { return dirty_; }

  bool on_own_loop() const noexcept;
  // Application groups (loop thread only). join: false when the session is
  // not open; joining twice is a no-op.
  bool join(const std::shared_ptr<GroupState>& group);
  void leave(const GroupState& group);

  // This connection's place in the set of every session on its loop, which is
  // also the loop's connection list (for the sweep and shutdown).
  Membership everyone_;
  // Written under the loop's foreign_mutex(): bytes of sends from other
  // threads admitted but not yet queued (saturating; reset to 0 whenever the
  // loop takes them). 32 bits: this sits in every connection, and a count
  // that saturates at 4 GiB is over any cap. foreign_closed_ (below) says
  // whether such sends are still accepted.
  std::atomic<std::uint32_t> foreign_bytes_{0};

 private:
  // Beside foreign_bytes_, so that the two 32-bit counters share 8 bytes.
  std::atomic<std::uint32_t> queued_bytes_{0};  // queue_.bytes() for other threads (saturating)

 public:
  // wire::Parser handler interface.
  void on_message(wire::Opcode op, std::uint8_t* data, std::size_t len, bool compressed);
  void on_ping(const std::uint8_t* data, std::size_t len);
  void on_pong(const std::uint8_t* data, std::size_t len);
  void on_close(std::uint16_t code, std::string_view reason);
  void on_error(std::uint16_t code, const char* reason);

 private:
  ServerCore& core() const noexcept;
  // The rarely used state (rare_state.hpp). rare(): null when never needed;
  // rare_state(): allocates it (loop thread only).
  RareState* rare() const noexcept { return rare_.load(std::memory_order_acquire); }
  RareState& rare_state();
  HandshakeState* handshake() const noexcept;
  Transport& transport() const noexcept;
  const std::string& close_reason() const noexcept;
  void set_close_reason(std::string_view reason);
  // Frees the RareState when the handshake leaves nothing in it. Only before
  // the session opens: from then on other threads may read path() and
  // subprotocol() through it.
  void end_handshake() noexcept;
  // connection.cpp
  void on_readable();
  void on_writable();
  void take_input(std::uint8_t* data, std::size_t len);  // bytes read, either engine
  void resume_receive();                                 // io_uring: arms the receive again
  void pause_receive();                                  // io_uring: backpressure
  std::size_t input_room() const noexcept;               // input bytes the send queue can answer
  void drain_parked_input();                             // io_uring: input held while paused
  void process_input(std::uint8_t* data, std::size_t len);
  void on_eof();
  void fail_io(int err);
  // Runs an application handler; an exception is logged and counted, and an
  // open session is closed with 1011. Returns false when fn threw.
  template <class Fn>
  bool guarded(const char* which, Fn&& fn) noexcept;
  void handler_failed(const char* which, const char* what) noexcept;
  // upgrade.cpp
  void process_handshake(std::uint8_t* data, std::size_t len);
  bool answer_head_check(const HttpRoute& route, const wire::UpgradeRequest& up, std::uint64_t body_len);
  void read_request_body(std::uint8_t* data, std::size_t len);
  void serve_route();
  void send_route_response(const HttpResponse& r, bool head);
  void complete_upgrade(std::uint8_t* rest, std::size_t rest_len);
  void refuse(unsigned status, std::string_view reason, HandshakeFailure why, std::string_view extra_headers = {});
  void respond_and_close(std::string_view response);
  // connection_send.cpp
  SendStatus send_on_loop(std::string_view data, MessageType type);
  SendStatus send_from_other_thread(std::string_view data, MessageType type);
  SendStatus enqueue_message(std::string_view data, MessageType type, Admission admission);
  SendStatus enqueue_frame(wire::Opcode op, const std::uint8_t* data, std::size_t len, bool rsv1, Admission admission);
  void write_through(wire::Opcode op, const std::uint8_t* data, std::size_t len, bool rsv1);
  void write_through(const iovec* iov, int count);
  // Frames from this size up leave at once when nothing is queued: a frame
  // that does not fit in a pooled chunk would otherwise be copied into a
  // buffer of its own.
  static constexpr std::size_t kWriteThroughBytes = net::SendQueue::owned_chunk;
  SendStatus admit(std::size_t frame_bytes);  // slow-consumer policy
  void overflow(std::size_t queued);          // the policy's action once over the cap
  void note_queue_bytes() noexcept {
    const std::size_t b = queue_.bytes();
    queued_bytes_.store(b > UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(b), std::memory_order_relaxed);
  }
  void after_flush();
  void submit_send();  // io_uring: the queue's head as one send request
  // io_uring, once Closed: the queue and the loop's reference are kept
  // until the kernel has given back every request of ours.
  void release_if_quiet();
  void mark_dirty();
  // Stops accepting sends from other threads; queues (or discards) those
  // already admitted. Called before our close frame is queued.
  void stop_foreign_sends(PendingSends pending);
  // connection_close.cpp
  void start_close(std::uint16_t code, std::string_view reason, bool failed, PendingSends pending = PendingSends::Send);
  void finish(std::uint16_t code, std::string_view reason);
  void leave_all_groups() noexcept;

  // Member order packs the object (it is the bulk of an idle connection's
  // memory): pointers and 64-bit fields first, the small ones at the end.
  Loop& loop_;
  std::shared_ptr<Connection> self_;  // the loop's reference while the socket is open
  std::uint64_t id_;
  wire::Parser parser_;
  net::SendQueue queue_;
  // Handshake buffer, deflate, TLS, path other than "/", subprotocol and
  // close reason: null for most connections. Set on the loop thread; atomic
  // because other threads may read path() and subprotocol() while a close
  // reason is being stored. Deleted with the connection.
  std::atomic<RareState*> rare_{nullptr};
  GroupMembership* groups_ = nullptr;  // application groups, linked by next_of_connection
  std::string remote_address_;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
  // The loop clock's low 32 bits (clock32), compared by since(): the spans
  // measured (heartbeat interval, pong and close timeouts) are far below the
  // 49 days at which 32 bits of milliseconds wrap, and this saves 8 bytes a
  // connection. last_rx_ms_: when input last arrived. timer_ms_: when our
  // last ping left (Open) or our close frame was queued (Closing); one
  // field, since a closing connection sends no more pings.
  std::uint32_t last_rx_ms_ = 0;
  std::uint32_t timer_ms_ = 0;
  static std::uint32_t clock32(std::int64_t ms) noexcept { return static_cast<std::uint32_t>(ms); }
  static std::int64_t since(std::int64_t now, std::uint32_t then) noexcept { return clock32(now) - then; }
  // When the connection was accepted, on the loop clock: 48 bits of
  // milliseconds (8,900 years, unlike 32 bits' 49 days: connections may
  // live longer) in 6 bytes, which pack with the small fields below.
  std::uint32_t started_low_ = 0;
  std::int64_t started_ms() const noexcept { return (std::int64_t{started_high_} << 32) | started_low_; }
  int fd_;
  std::uint16_t started_high_ = 0;
  std::uint16_t close_code_ = 1006;
  State state_ = State::Handshake;

 public:
  // Under the loop's foreign_mutex(): false only while Open; set before our
  // close frame is queued. Not a bit field: other threads read it.
  bool foreign_closed_ = true;

 private:
  bool metrics_only_ : 1 = false;   // accepted on metrics.listen: HTTP routes only, no upgrades
  bool read_posted_ : 1 = false;    // a read continuation is queued
  bool write_blocked_ : 1 = false;  // epoll: socket full; io_uring: a send in flight
  bool dirty_ : 1 = false;
  bool awaiting_pong_ : 1 = false;
  bool close_sent_ : 1 = false;
  bool close_received_ : 1 = false;
  bool failed_ : 1 = false;      // protocol error: stop parsing, drain until EOF
  bool write_shut_ : 1 = false;  // shutdown(SHUT_WR) done
  bool counted_open_ : 1 = false;
  bool high_water_ : 1 = false;      // queue went above half the cap (drain callback)
  bool path_known_ : 1 = false;      // path_ holds the request target (before that it reads "/")
  bool receiving_ : 1 = false;       // io_uring: our multishot receive is armed
  bool receive_paused_ : 1 = false;  // io_uring: receive cancelled for backpressure
};

template <class Fn>
bool Connection::guarded(const char* which, Fn&& fn) noexcept {
  try {
    fn();
    return true;
  } catch (const std::exception& e) {
    handler_failed(which, e.what());
  } catch (...) {
    handler_failed(which, "unknown exception");
  }
  return false;
}

}  // namespace conduit::server
