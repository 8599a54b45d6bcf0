// Server-side connection: the RFC 6455 engine driven by socket readiness.
//
// Life of a connection, top to bottom:
//   accepted → Handshake (request bytes accumulate in a small heap block that
//   is freed after the upgrade) → Open (frames parsed in place from the loop's
//   read buffer; replies queued and flushed with one gather write per read
//   batch) → Closing (our close frame is queued; we keep reading until the
//   peer's close or EOF, bounded by close_timeout) → Closed (socket closed,
//   on_close called once, loop forgets it).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "conduit/server.hpp"
#include "net/event_loop.hpp"
#include "net/send_queue.hpp"
#include "wire/parser.hpp"

namespace conduit::wire {
class PerMessageDeflate;
}

namespace conduit::server {

class ServerCore;
struct HandshakeState;
class TlsState;

class Connection final : public Session, public net::IoHandler, public std::enable_shared_from_this<Connection> {
 public:
  enum class State : std::uint8_t { Handshake, Open, Closing, Closed };

  Connection(ServerCore& core, net::EventLoop& loop, int fd, std::uint64_t id, std::string remote_address);
  ~Connection() override;

  // Session
  bool send(std::string_view data, MessageType type) override;
  void close(std::uint16_t code, std::string_view reason) override;
  std::uint64_t id() const noexcept override { return id_; }
  const std::string& remote_address() const noexcept override { return remote_address_; }
  const std::string& path() const noexcept override { return path_; }
  const std::string& subprotocol() const noexcept override { return subprotocol_; }
  std::size_t buffered_amount() const noexcept override { return queue_.bytes(); }
  bool is_open() const noexcept override { return state_ == State::Open; }
  std::shared_ptr<Session> shared() override { return shared_from_this(); }

  // Engine entry points (loop thread only).
  void start();
  void on_io(std::uint32_t events) override;
  void sweep(std::int64_t now_ms);  // heartbeats and timeouts
  void flush();                     // one gather write of everything queued
  // Queues a reference to an already-framed broadcast (shared buffer range).
  void deliver_shared(net::FrameBuffer* buf, std::uint32_t begin, std::uint32_t end, std::size_t messages);
  bool compressed() const noexcept { return deflate_ != nullptr; }
  void go_away();           // graceful shutdown: close 1001
  void abort_connection();  // immediate drop
  State state() const noexcept { return state_; }
  std::string remote_ip() const;
  bool dirty() const noexcept { return dirty_; }
  void clear_dirty() noexcept { dirty_ = false; }

  // Intrusive links in the loop's connection list (for the sweep and broadcast).
  Connection* prev_ = nullptr;
  Connection* next_ = nullptr;
  // Accepted on the metrics.listen address: HTTP routes only, no upgrades.
  bool metrics_only = false;

  // wire::Parser handler interface.
  void on_message(wire::Opcode op, std::uint8_t* data, std::size_t len, bool compressed);
  void on_ping(const std::uint8_t* data, std::size_t len);
  void on_pong(const std::uint8_t* data, std::size_t len);
  void on_close(std::uint16_t code, std::string_view reason);
  void on_error(std::uint16_t code, const char* reason);

 private:
  void on_readable();
  void on_writable();
  void process_input(std::uint8_t* data, std::size_t len);
  void process_handshake(std::uint8_t* data, std::size_t len);
  void complete_upgrade(std::uint8_t* rest, std::size_t rest_len);
  void refuse(unsigned status, std::string_view reason, ops::HandshakeFailure why, std::string_view extra_headers = {});
  void http_reply(unsigned status, std::string_view content_type, std::string_view body);
  void respond_and_close(std::string_view response);
  bool enqueue_frame(wire::Opcode op, const std::uint8_t* data, std::size_t len, bool rsv1, bool control);
  bool admit(std::size_t frame_bytes);  // slow-consumer policy; false = not queued
  void start_close(std::uint16_t code, std::string_view reason, bool failed);
  void after_flush();
  void mark_dirty();
  void finish(std::uint16_t code, std::string_view reason);
  void fail_io(int err);
  // Runs an application handler; an exception is logged and counted, and an
  // open session is closed with 1011. Returns false when fn threw.
  template <class Fn>
  bool guarded(const char* which, Fn&& fn) noexcept;
  void handler_failed(const char* which, const char* what) noexcept;
  void on_eof();
  bool tls() const noexcept { return tls_ != nullptr; }
  long raw_read(std::uint8_t* buf, std::size_t len, int& err);

  ServerCore& core_;
  net::EventLoop& loop_;
  int fd_;
  std::shared_ptr<Connection> self_;  // the loop's reference while the socket is open
  std::uint64_t id_;
  wire::Parser parser_;
  net::SendQueue queue_;
  std::unique_ptr<HandshakeState> handshake_;
  std::unique_ptr<wire::PerMessageDeflate> deflate_;
  std::unique_ptr<TlsState> tls_;
  std::string remote_address_;
  std::string path_;
  std::string subprotocol_;
  std::string close_reason_;
  std::int64_t started_ms_ = 0;
  std::int64_t last_rx_ms_ = 0;
  // When our last ping left (Open) or our close frame was queued (Closing):
  // one field, since a closing connection sends no more pings.
  std::int64_t timer_ms_ = 0;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
  std::uint16_t close_code_ = 1006;
  State state_ = State::Handshake;
  bool read_posted_ : 1 = false;  // a read continuation is queued
  bool write_blocked_ : 1 = false;
  bool dirty_ : 1 = false;
  bool awaiting_pong_ : 1 = false;
  bool close_sent_ : 1 = false;
  bool close_received_ : 1 = false;
  bool failed_ : 1 = false;      // protocol error: stop parsing, drain until EOF
  bool write_shut_ : 1 = false;  // shutdown(SHUT_WR) done
  bool counted_open_ : 1 = false;
  bool high_water_ : 1 = false;  // queue went above half the cap (drain callback)
};

}  // namespace conduit::server
