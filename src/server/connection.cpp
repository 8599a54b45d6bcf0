// Reading and the frame state machine. See connection.hpp for the life cycle
// and where the other concerns live. Every function here runs on the
// connection's loop thread.
#include "server/connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include "ops/log.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "server/loop.hpp"
#include "server/rare_state.hpp"
#include "server/server_core.hpp"
#include "server/tls.hpp"
#include "wire/deflate.hpp"
#include "wire/utf8.hpp"

namespace conduit::server {

namespace {
wire::ParserLimits initial_limits(const ServerOptions& o) {
  wire::ParserLimits l;
  l.max_message_bytes = o.max_message_bytes;
  l.allow_rsv1 = false;
  return l;
}
}  // namespace

Connection::Connection(Loop& loop, int fd, std::uint64_t id, std::string remote_address, bool metrics_only)
    : loop_(loop),
      id_(id),
      parser_(wire::Role::Server, initial_limits(loop.core().options())),
      remote_address_(std::move(remote_address)),
      fd_(fd),
      metrics_only_(metrics_only) {
  everyone_.conn = this;
}

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
  delete rare_.load(std::memory_order_relaxed);
}

RareState& Connection::rare_state() {
  if (RareState* r = rare()) return *r;
  auto* r = new RareState();
  rare_.store(r, std::memory_order_release);
  return *r;
}

void Connection::end_handshake() noexcept {
  RareState* r = rare();
  if (!r) return;
  r->handshake.reset();
  if (!r->deflate && !r->tls && r->path.empty() && r->subprotocol.empty() && r->close_reason.empty()) {
    rare_.store(nullptr, std::memory_order_relaxed);
    delete r;
  }
}

HandshakeState* Connection::handshake() const noexcept {
  RareState* r = rare();
  return r ? r->handshake.get() : nullptr;
}

wire::PerMessageDeflate* Connection::deflate() const noexcept {
  RareState* r = rare();
  return r ? r->deflate.get() : nullptr;
}

Transport& Connection::transport() const noexcept {
  RareState* r = rare();
  return r && r->tls ? *r->tls : plain_transport();
}

const std::string& Connection::path() const noexcept {
  RareState* r = rare();
  return r && !r->path.empty() ? r->path : root_path();
}

const std::string& Connection::subprotocol() const noexcept {
  RareState* r = rare();
  return r ? r->subprotocol : empty_string();
}

const std::string& Connection::close_reason() const noexcept {
  RareState* r = rare();
  return r ? r->close_reason : empty_string();
}

void Connection::set_close_reason(std::string_view reason) {
  if (RareState* r = rare()) {
    r->close_reason.assign(reason);  // reason may view close_reason: assign handles the overlap
  } else if (!reason.empty()) {
    rare_state().close_reason.assign(reason);
  }
}

ServerCore& Connection::core() const noexcept { return loop_.core(); }
unsigned Connection::loop_index() const noexcept { return loop_.index(); }
bool Connection::on_own_loop() const noexcept { return loop_.on_this_thread(); }

std::string Connection::remote_ip() const {
  // remote_address_ is "ip:port" or "[v6]:port"; the port is after the last colon.
  std::string_view a = remote_address_;
  a = a.substr(0, a.rfind(':'));
  if (a.size() >= 2 && a.front() == '[') a = a.substr(1, a.size() - 2);
  return std::string(a);
}

void Connection::handler_failed(const char* which, const char* what) noexcept {
  loop_.counters().errors[static_cast<std::size_t>(ErrorKind::HandlerException)].inc();
  try {
    ops::logger().error("event=handler_exception id={} remote={} handler={} what=\"{}\"", id_, remote_address_, which,
                        what);
    // The application failed, not the peer: tell it so (RFC 6455 §7.4.1) and
    // stop delivering its messages (on_message ignores a closing session).
    if (state_ == State::Open) start_close(1011, "internal error", false);
  } catch (...) {
    // Out of memory while reporting: the counter above still records it.
  }
}

void Connection::start() {
  // The listener accepted fd_ non-blocking (accept4), with TCP_NODELAY
  // inherited from the listening socket (we cork ourselves, so Nagle would
  // only add delay): no setsockopt per connection.
  self_ = shared_from_this();
  const std::int64_t now = loop_.now_ms();
  started_low_ = static_cast<std::uint32_t>(now);
  started_high_ = static_cast<std::uint16_t>(now >> 32);
  last_rx_ms_ = clock32(now);
  loop_.add(this);
  if (core().tls()) {
    rare_state().tls = core().tls()->new_session();
    if (!rare()->tls) {
      loop_.counters().handshake_failures[static_cast<std::size_t>(HandshakeFailure::TlsFailure)].inc();
      ops::logger().warn("event=tls_error remote={} reason=\"cannot create TLS session\"", remote_address_);
      finish(1006, "tls setup failed");
      return;
    }
  }
  if (loop_.completion_io()) {
    // The multishot receive reports the request once it has arrived: no
    // read before it.
    if (!loop_.receive(fd_, this)) {
      ops::logger().error("event=io_uring_error remote={} reason=\"submission queue full\"", remote_address_);
      finish(1006, "cannot receive");
      return;
    }
    receiving_ = true;
    return;
  }
  if (!loop_.watch(fd_, this)) {
    ops::logger().error("event=epoll_error remote={} reason=\"{}\"", remote_address_, std::strerror(errno));
    finish(1006, "cannot watch socket");
    return;
  }
  // No read here: registering a socket reports input that is already there
  // (EPOLL_CTL_ADD polls it once), and a read before the request has arrived
  // is a syscall that fails with EAGAIN — the common case right after accept.
}

void Connection::on_io(std::uint32_t events) {
  if (state_ == State::Closed) return;
  if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && write_blocked_) {
    on_writable();
    return;  // on_writable reads speculatively as well
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    // While our output to this peer is blocked, its input is not read
    // (backpressure); on_writable() resumes with a speculative read.
    if (write_blocked_ && state_ == State::Open) return;
    on_readable();
  }
}

// ---------------------------------------------------------------- reading

void Connection::on_readable() {
  // Always inside one of the loop's batches: output queued here is flushed
  // at the batch's end.
  std::uint8_t* buf = loop_.read_buffer();
  // A few reads per readiness event at most, so one busy peer cannot starve
  // the others on this loop; if we stop with input possibly left, we come
  // back through a post rather than waiting for an edge that will not come.
  bool more = false;
  for (int round = 0; state_ != State::Closed; ++round) {
    if (round == 4) {
      more = true;
      break;
    }
    // Backpressure: read no more than the send queue has room for, so an echo
    // client that does not read its echoes is paused (TCP pushes back on it)
    // instead of overflowing its queue. Server frames are never larger than
    // the client frames they answer, so `room` input bytes fit.
    std::size_t want = net::EventLoop::read_buffer_size;
    if (state_ == State::Open) {
      const std::size_t cap = core().options().send_queue_bytes;
      if (queue_.bytes() >= cap / 2) flush();
      if (write_blocked_ && queue_.bytes() >= cap / 2) break;
      // A message the parser already holds in part will be echoed too; count
      // it, with slack for the headers of the frames it will produce.
      const std::size_t committed = queue_.bytes() + parser_.buffered_bytes() + 64;
      std::size_t room = cap > committed ? cap - committed : 0;
      if (room == 0) break;
      if (room < want) want = room;
    }
    int err = 0;
    long n = transport().read(fd_, buf, want, err);
    if (n > 0) {
      take_input(buf, static_cast<std::size_t>(n));
      // A short read drained the socket; a new edge will report anything
      // later (the reactor polls only after this handler has re-armed).
      if (static_cast<std::size_t>(n) < want && transport().short_read_drains()) break;
      if (write_blocked_ && state_ == State::Open) break;  // backpressure; on_writable resumes
      continue;
    }
    if (n == 0) {
      on_eof();
      break;
    }
    if (err == EAGAIN || err == EWOULDBLOCK) break;
    fail_io(err);
    break;
  }
  if (state_ == State::Closed) return;
  if (!dirty_ && transport().has_pending_output()) mark_dirty();  // TLS handshake records
  if (write_blocked_ && state_ == State::Open) return;            // resumed by on_writable
  if (more && !read_posted_) {
    read_posted_ = true;
    loop_.post([self = shared_from_this()] {
      self->read_posted_ = false;
      if (self->state_ != State::Closed) self->on_readable();
    });
  }
}

void Connection::take_input(std::uint8_t* data, std::size_t len) {
  bytes_in_ += len;
  loop_.counters().bytes_received.inc(len);
  last_rx_ms_ = clock32(loop_.now_ms());
  awaiting_pong_ = false;
  process_input(data, len);
}

// ---------------------------------------------------------------- io_uring

void Connection::on_received(std::uint8_t* data, std::size_t len) {
  if (state_ == State::Closed) return;  // completions already on their way when we finished
  if (!receive_paused_ && state_ == State::Open) {
    // Backpressure, as the epoll path reads no more than the queue has room
    // for: beyond the room, the input waits (parked) and the receive stops,
    // so TCP pushes back on the peer until the sends have drained the queue.
    const std::size_t room = input_room();
    if (len > room) {
      if (room > 0) take_input(data, room);
      if (state_ == State::Closed) return;
      data += room;
      len -= room;
      pause_receive();
    }
  }
  if (receive_paused_) {
    loop_.parked_input(this).bytes.append(reinterpret_cast<const char*>(data), len);
    last_rx_ms_ = clock32(loop_.now_ms());
    awaiting_pong_ = false;
    return;
  }
  take_input(data, len);
  if (state_ == State::Open && queue_.bytes() + parser_.buffered_bytes() >= core().options().send_queue_bytes / 2) {
    pause_receive();
  }
}

std::size_t Connection::input_room() const noexcept {
  const std::size_t cap = core().options().send_queue_bytes;
  const std::size_t committed = queue_.bytes() + parser_.buffered_bytes() + 64;
  return cap > committed ? cap - committed : 0;
}

void Connection::pause_receive() {
  receive_paused_ = true;
  if (receiving_) loop_.cancel_receive(this);
}

void Connection::on_receive_stopped(int result) {
  receiving_ = false;
  if (state_ == State::Closed) {
    release_if_quiet();
    return;
  }
  const bool again = result > 0 || result == -ENOBUFS || result == -ECANCELED;
  if (receive_paused_) {
    // The end (EOF, an error) comes after the parked input, as it came.
    if (!again) {
      auto& parked = loop_.parked_input(this);
      parked.ended = true;
      parked.result = result;
    }
    drain_parked_input();
    return;
  }
  if (result == 0) {
    on_eof();
  } else if (again) {
    // Ended by the kernel after data, or the buffer ring ran dry for a
    // moment (the buffers go back as completions are handled): re-arm.
    resume_receive();
  } else {
    fail_io(-result);
  }
}

// While paused: hands the parked input to the parser as the queue makes room
// for it, then the end of the stream if it came, then resumes receiving once
// the queue is below half its cap.
void Connection::drain_parked_input() {
  Loop::ParkedInput parked = loop_.take_parked_input(this);
  std::size_t done = 0;
  while (done < parked.bytes.size() && state_ == State::Open) {
    const std::size_t room = input_room();
    if (room == 0) break;
    const std::size_t n = std::min(room, parked.bytes.size() - done);
    take_input(reinterpret_cast<std::uint8_t*>(parked.bytes.data()) + done, n);
    done += n;
  }
  if (state_ == State::Closed) return;
  if (done < parked.bytes.size() && state_ == State::Open) {
    parked.bytes.erase(0, done);
    loop_.parked_input(this) = std::move(parked);
    return;
  }
  // Closing: the rest only matters for a close frame (process_input ignores
  // data after our close, as the epoll path does).
  if (done < parked.bytes.size()) {
    take_input(reinterpret_cast<std::uint8_t*>(parked.bytes.data()) + done, parked.bytes.size() - done);
    if (state_ == State::Closed) return;
  }
  if (parked.ended) {
    if (parked.result == 0) {
      on_eof();
    } else {
      fail_io(-parked.result);
    }
    return;
  }
  if (queue_.bytes() < core().options().send_queue_bytes / 2) resume_receive();
}

void Connection::resume_receive() {
  receive_paused_ = false;
  if (receiving_ || state_ == State::Closed) return;
  if (!loop_.receive(fd_, this)) {
    fail_io(ENOMEM);
    return;
  }
  receiving_ = true;
}

void Connection::on_writable() {
  write_blocked_ = false;
  flush();
  // Reading was paused while we were blocked; input edges that came meanwhile
  // were ignored, so read speculatively.
  if (state_ != State::Closed && !write_blocked_) on_readable();
}

void Connection::process_input(std::uint8_t* data, std::size_t len) {
  if (state_ == State::Handshake) {
    if (const HandshakeState* h = handshake(); h && h->route) {
      read_request_body(data, len);
    } else {
      process_handshake(data, len);
    }
    return;
  }
  if (failed_ || close_received_) return;  // draining until EOF: ignore the rest
  parser_.consume(data, len, *this);
}

void Connection::on_eof() {
  if (state_ == State::Handshake) {
    finish(1006, "closed during handshake");
  } else if (close_received_ || (close_sent_ && failed_)) {
    finish(close_code_, close_reason());
  } else {
    finish(1006, close_sent_ ? "peer closed without answering our close" : "peer closed without close frame");
  }
}

void Connection::fail_io(int err) {
  if (state_ == State::Closed) return;
  if (err == EPROTO) {  // only the TLS transport reports EPROTO
    if (state_ == State::Handshake) {
      loop_.counters().handshake_failures[static_cast<std::size_t>(HandshakeFailure::TlsFailure)].inc();
    }
    loop_.counters().errors[static_cast<std::size_t>(ErrorKind::Tls)].inc();
    ops::logger().warn("event=tls_error remote={} reason=\"{}\"", remote_address_, transport().last_error());
    finish(1006, "TLS failure");
    return;
  }
  if (state_ == State::Open || state_ == State::Closing) {
    loop_.counters().errors[static_cast<std::size_t>(ErrorKind::ConnectionReset)].inc();
  }
  finish(close_received_ ? close_code_ : 1006, err ? std::strerror(err) : "i/o error");
}

// ---------------------------------------------------------------- frames in

void Connection::on_message(wire::Opcode op, std::uint8_t* data, std::size_t len, bool compressed) {
  if (state_ != State::Open) return;  // after our close: discard (RFC 6455 §1.4)
  loop_.counters().messages_received.inc();
  const auto& on_message = core().handlers().on_message;
  MessageType type = op == wire::Opcode::Text ? MessageType::Text : MessageType::Binary;
  if (compressed) {
    wire::PerMessageDeflate* const deflate = this->deflate();
    if (!deflate) {
      on_error(1002, "compressed frame without negotiated extension");
      return;
    }
    static thread_local std::string inflated;
    switch (deflate->decompress(data, len, inflated, core().options().max_message_bytes)) {
      case wire::InflateResult::Ok:
        break;
      case wire::InflateResult::TooBig:
        on_error(1009, "message too big after decompression");
        return;
      case wire::InflateResult::Corrupt:
        on_error(1007, "invalid compressed data");
        return;
    }
    if (type == MessageType::Text &&
        !wire::is_valid_utf8(reinterpret_cast<const std::uint8_t*>(inflated.data()), inflated.size())) {
      on_error(1007, "invalid UTF-8 in text message");
      return;
    }
    std::string local;
    local.swap(inflated);  // the handler may send, which may reuse the scratch buffer
    if (on_message) guarded("on_message", [&] { on_message(*this, local, type); });
    if (inflated.capacity() < local.capacity() && local.capacity() <= 1 << 20) inflated.swap(local);
    return;
  }
  if (on_message) {
    guarded("on_message", [&] { on_message(*this, std::string_view(reinterpret_cast<const char*>(data), len), type); });
  }
}

void Connection::on_ping(const std::uint8_t* data, std::size_t len) {
  if (state_ != State::Open) return;
  enqueue_frame(wire::Opcode::Pong, data, len, false, Admission::Control);
}

void Connection::on_pong(const std::uint8_t*, std::size_t) {
  awaiting_pong_ = false;  // any frame counts as liveness; a pong is the usual one
}

void Connection::on_error(std::uint16_t code, const char* reason) {
  ErrorKind kind = code == 1007   ? ErrorKind::InvalidPayload
                   : code == 1009 ? ErrorKind::MessageTooBig
                                  : ErrorKind::ProtocolError;
  loop_.counters().errors[static_cast<std::size_t>(kind)].inc();
  ops::logger().warn("event=protocol_error id={} remote={} code={} reason=\"{}\"", id_, remote_address_, code, reason);
  start_close(code, reason, true);
}

}  // namespace conduit::server
