// The send path: framing, the slow-consumer policy, sends from other threads,
// and the gather write at the end of a batch.
#include "ops/log.hpp"

#include <cerrno>
#include <cstring>

#include "net/uring_engine.hpp"
#include "server/connection.hpp"
#include "server/loop.hpp"
#include "server/server_core.hpp"
#include "wire/deflate.hpp"
#include "wire/frame.hpp"

namespace conduit::server {

SendStatus Connection::send(std::string_view data, MessageType type) {
  if (loop_.on_this_thread()) return send_on_loop(data, type);
  return send_from_other_thread(data, type);
}

SendStatus Connection::send_on_loop(std::string_view data, MessageType type) {
  if (state_ != State::Open) return SendStatus::Dropped;
  return enqueue_message(data, type, Admission::Check);
}

// Another thread cannot touch the queue, so it decides at call time, under
// the loop's foreign-send mutex, with the queue's size as last published by
// the loop plus the sends already admitted and not yet queued: whether the
// session still accepts sends (until its close starts) and whether the
// message fits under the cap. An admitted message is queued ahead of any
// close frame we send later (stop_foreign_sends), so "queued" is the truth.
SendStatus Connection::send_from_other_thread(std::string_view data, MessageType type) {
  const std::size_t frame = wire::unmasked_frame_size(data.size());
  const std::size_t cap = core().options().send_queue_bytes;
  std::size_t queued;
  {
    std::lock_guard lock(loop_.foreign_mutex());
    if (foreign_closed_) return SendStatus::Dropped;
    queued =
        std::size_t{queued_bytes_.load(std::memory_order_relaxed)} + foreign_bytes_.load(std::memory_order_relaxed);
    if (queued == 0 || queued + frame <= cap) {
      const std::size_t pending = foreign_bytes_.load(std::memory_order_relaxed) + frame;
      foreign_bytes_.store(pending > UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(pending),
                           std::memory_order_relaxed);
      const bool over_half = queued + frame > cap / 2;
      loop_.push_foreign({shared_from_this(), std::string(data), type, over_half});
      return over_half ? SendStatus::Backpressure : SendStatus::Queued;
    }
  }
  // Over the cap: the loop applies the slow-consumer policy (the counters
  // and the close belong to it).
  loop_.post([self = shared_from_this(), queued] {
    if (self->state_ == State::Open) self->overflow(queued);
  });
  return SendStatus::Dropped;
}

void Connection::enqueue_admitted(const ForeignSend& s) {
  // Not open any more: the connection failed (reset, timeout) after the
  // send was admitted, and its queue went with it.
  if (state_ != State::Open) return;
  // The sender was told "backpressure": promise it the on_drain that goes with it.
  if (s.over_half) high_water_ = true;
  enqueue_message(s.data, s.type, Admission::Admitted);
}

SendStatus Connection::enqueue_message(std::string_view data, MessageType type, Admission admission) {
  wire::Opcode op = type == MessageType::Text ? wire::Opcode::Text : wire::Opcode::Binary;
  const std::uint8_t* payload = reinterpret_cast<const std::uint8_t*>(data.data());
  std::size_t len = data.size();
  bool rsv1 = false;
  wire::PerMessageDeflate* const deflate = this->deflate();
  if (deflate && len >= core().deflate_config().min_compress_bytes) {
    static thread_local std::string compressed;
    compressed.clear();
    deflate->compress(payload, len, compressed);
    payload = reinterpret_cast<const std::uint8_t*>(compressed.data());
    len = compressed.size();
    rsv1 = true;
  }
  SendStatus status = enqueue_frame(op, payload, len, rsv1, admission);
  if (status != SendStatus::Dropped) loop_.counters().messages_sent.inc();
  return status;
}

void Connection::deliver_shared(net::FrameBuffer* buf, std::uint32_t begin, std::uint32_t end, std::size_t messages) {
  if (state_ != State::Open) return;
  if (admit(end - begin) == SendStatus::Dropped) return;
  queue_.append_shared(loop_.pool(), buf, begin, end);
  note_queue_bytes();
  loop_.counters().messages_sent.inc(messages);
  mark_dirty();
}

SendStatus Connection::admit(std::size_t frame_bytes) {
  const std::size_t cap = core().options().send_queue_bytes;
  const std::size_t queued = queue_.bytes() + foreign_bytes_.load(std::memory_order_relaxed);
  // An empty queue always takes one message, however large: otherwise a
  // message above the cap could never be sent at all.
  if (queued == 0 || queued + frame_bytes <= cap) {
    if (queued + frame_bytes > cap / 2) {
      high_water_ = true;
      return SendStatus::Backpressure;
    }
    return SendStatus::Queued;
  }
  overflow(queued);
  return SendStatus::Dropped;
}

void Connection::overflow(std::size_t queued) {
  loop_.counters().send_queue_overflows.inc();
  if (core().options().slow_consumer == SlowConsumerPolicy::Drop) {
    loop_.counters().messages_dropped.inc();
    return;
  }
  loop_.counters().errors[static_cast<std::size_t>(ErrorKind::SlowConsumer)].inc();
  ops::logger().warn("event=slow_consumer id={} remote={} queued_bytes={} limit={} action=close", id_, remote_address_,
                     queued, core().options().send_queue_bytes);
  // Keep only the head node (its first bytes may already be on the wire, and
  // nodes always end on frame boundaries), so the close frame follows right
  // after what the peer's socket already holds.
  if (loop_.completion_io() && write_blocked_) {
    queue_.discard_after(loop_.pool(), net::UringEngine::max_send_iov + 1);  // in flight: the kernel's until on_sent
  } else {
    queue_.discard_all_but_head(loop_.pool());
  }
  note_queue_bytes();
  start_close(1008, "slow consumer", false, PendingSends::Discard);
}

SendStatus Connection::enqueue_frame(wire::Opcode op, const std::uint8_t* data, std::size_t len, bool rsv1,
                                     Admission admission) {
  const std::size_t size = wire::unmasked_frame_size(len);
  SendStatus status = SendStatus::Queued;
  if (admission == Admission::Check) {
    status = admit(size);
    if (status == SendStatus::Dropped) return status;
  }
  // (Not with io_uring: its sends complete later, so the bytes must be queued.)
  if (size >= kWriteThroughBytes && queue_.empty() && !write_blocked_ && transport().writes_through() &&
      !loop_.completion_io()) {
    write_through(op, data, len, rsv1);
    return status;
  }
  std::uint8_t* p = queue_.reserve(loop_.pool(), size);
  queue_.commit(wire::write_unmasked_frame(p, op, rsv1, data, len));
  note_queue_bytes();
  mark_dirty();
  return status;
}

// Nothing is queued ahead of this frame, so it may leave now, straight from
// the caller's bytes (for an echo: the loop's read buffer), with no copy and
// no buffer. Small frames are not written through: corking them into one
// write per batch costs fewer syscalls than one send each.
void Connection::write_through(wire::Opcode op, const std::uint8_t* data, std::size_t len, bool rsv1) {
  std::uint8_t header[wire::max_header_size];
  const std::size_t header_len = wire::write_header(header, op, true, rsv1, len, nullptr);
  const iovec iov[2] = {{header, header_len}, {const_cast<std::uint8_t*>(data), len}};
  write_through(iov, 2);
}

// Writes iov at once (the caller checked that nothing is queued and the
// transport writes through). Only what the kernel does not take is queued,
// and then flushed at the end of the batch like any queued output.
void Connection::write_through(const iovec* iov, int count) {
  int err = 0;
  const long n = transport().write_through(fd_, iov, count, err);
  // A failure (reset, EPIPE) is not handled here: the bytes are queued whole
  // and the end-of-batch flush meets the same error and fails the connection
  // the usual way.
  std::size_t skip = n > 0 ? static_cast<std::size_t>(n) : 0;
  if (skip > 0) {
    bytes_out_ += skip;
    loop_.counters().bytes_sent.inc(skip);
  }
  std::size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  if (skip == total) {
    // Promised on_drain (Backpressure) runs from the end-of-batch flush.
    if (high_water_) mark_dirty();
    return;
  }
  std::uint8_t* p = queue_.reserve(loop_.pool(), total - skip);
  for (int i = 0; i < count; ++i) {
    const std::size_t len = iov[i].iov_len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    std::memcpy(p, static_cast<const std::uint8_t*>(iov[i].iov_base) + skip, len - skip);
    p += len - skip;
    skip = 0;
  }
  queue_.commit(total - (n > 0 ? static_cast<std::size_t>(n) : 0));
  note_queue_bytes();
  mark_dirty();
}

void Connection::stop_foreign_sends(PendingSends pending) {
  std::vector<ForeignSend> admitted;
  {
    std::lock_guard lock(loop_.foreign_mutex());
    if (foreign_closed_) return;
    foreign_closed_ = true;
    admitted = loop_.take_foreign(this);
    foreign_bytes_.store(0, std::memory_order_relaxed);
  }
  if (pending == PendingSends::Discard || state_ != State::Open) return;
  for (auto& s : admitted) enqueue_admitted(s);
}

void Connection::mark_dirty() {
  if (dirty_ || state_ == State::Closed) return;
  dirty_ = true;
  loop_.flush_later(shared_from_this());
}

void Connection::flush() {
  dirty_ = false;
  if (write_blocked_ || state_ == State::Closed) return;
  if (loop_.completion_io()) {
    submit_send();
    return;
  }
  std::uint64_t written = 0;
  int err = 0;
  Transport::WriteStatus status = transport().write(fd_, queue_, loop_.pool(), loop_.iov(), written, err);
  if (written) {
    bytes_out_ += written;
    loop_.counters().bytes_sent.inc(written);
    note_queue_bytes();
  }
  switch (status) {
    case Transport::WriteStatus::Done:
      after_flush();
      return;
    case Transport::WriteStatus::Blocked:
      write_blocked_ = true;  // EPOLLOUT edge → on_writable
      return;
    case Transport::WriteStatus::Failed:
      fail_io(err);
      return;
  }
}

void Connection::submit_send() {
  if (queue_.empty()) {
    after_flush();
    return;
  }
  const int count = queue_.gather(loop_.iov(), net::UringEngine::max_send_iov);
  if (!loop_.send(fd_, this, loop_.iov(), count)) {
    fail_io(ENOMEM);
    return;
  }
  write_blocked_ = true;  // the queue's head is the kernel's until on_sent
}

void Connection::on_sent(int result) {
  write_blocked_ = false;
  if (state_ == State::Closed) {
    release_if_quiet();
    return;
  }
  if (result <= 0) {
    fail_io(result == 0 ? EPIPE : -result);
    return;
  }
  const auto n = static_cast<std::size_t>(result);
  bytes_out_ += n;
  loop_.counters().bytes_sent.inc(n);
  queue_.consume(loop_.pool(), n);
  note_queue_bytes();
  submit_send();  // the rest, or after_flush() when all has left
  if (receive_paused_ && state_ != State::Closed) drain_parked_input();
}

void Connection::release_if_quiet() {
  if (state_ != State::Closed || receiving_ || write_blocked_ || !self_) return;
  if (receive_paused_) loop_.take_parked_input(this);
  queue_.clear(loop_.pool());
  note_queue_bytes();
  loop_.retire(std::move(self_));
}

void Connection::after_flush() {
  if (state_ == State::Closed) return;
  if (high_water_) {
    high_water_ = false;
    if (state_ == State::Open && core().handlers().on_drain) {
      guarded("on_drain", [&] { core().handlers().on_drain(*this); });
    }
  }
  if (close_sent_ && close_received_ && queue_.empty() && !transport().has_pending_output()) {
    // Close handshake complete and our close has left: the server closes the
    // TCP connection first (RFC 6455 §7.1.1). The peer sends nothing after
    // its close frame, so closing now does not reset the connection (and for
    // plain TCP the close alone sends the FIN: one syscall less per connection).
    if (!transport().close_ends_stream()) transport().shutdown_write(fd_);
    finish(close_code_, close_reason());
    return;
  }
  if (close_sent_ && !write_shut_ && failed_ && queue_.empty()) {
    // After a protocol error or an HTTP response: shut down our direction and
    // read until the peer closes (or close_timeout), so that unread input
    // does not turn our close into a reset before the peer has read it.
    transport().shutdown_write(fd_);
    write_shut_ = true;
  }
}

}  // namespace conduit::server
