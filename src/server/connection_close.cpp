// The close handshake, heartbeats and timeouts (the loop's sweep), the end of
// a connection, and its group memberships.
#include <unistd.h>
#include "ops/log.hpp"

#include "server/connection.hpp"
#include "server/loop.hpp"
#include "server/rare_state.hpp"
#include "server/server_core.hpp"
#include "wire/deflate.hpp"
#include "wire/frame.hpp"
#include "wire/opcode.hpp"

namespace conduit::server {

void Connection::on_close(std::uint16_t code, std::string_view reason) {
  if (!close_sent_) {
    // Sends other threads made before this point still go out, ahead of our close.
    stop_foreign_sends(PendingSends::Send);
    close_received_ = true;
    // Echo the peer's code (RFC 6455 §5.5.1); a close without a code is answered with an empty close.
    close_code_ = code;
    set_close_reason(reason);
    std::string payload = wire::close_payload(code == 1005 ? 1005 : code, {});
    enqueue_frame(wire::Opcode::Close, reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size(), false,
                  Admission::Control);
    close_sent_ = true;
    timer_ms_ = clock32(loop_.now_ms());
    state_ = State::Closing;
  } else {
    close_received_ = true;
    if (queue_.empty() && !write_blocked_) after_flush();  // our close already left: the handshake is complete
  }
}

void Connection::close(std::uint16_t code, std::string_view reason) {
  if (!loop_.on_this_thread()) {
    loop_.post([self = shared_from_this(), code, r = std::string(reason)] { self->close(code, r); });
    return;
  }
  if (state_ != State::Open) return;
  if (!wire::is_valid_wire_close_code(code)) code = 1000;
  start_close(code, reason, false);
}

void Connection::start_close(std::uint16_t code, std::string_view reason, bool failed, PendingSends pending) {
  if (state_ == State::Closed || close_sent_) {
    failed_ = failed_ || failed;
    return;
  }
  stop_foreign_sends(pending);
  state_ = State::Closing;
  failed_ = failed;
  close_code_ = code;
  set_close_reason(reason);
  std::string payload = wire::close_payload(code, reason);
  enqueue_frame(wire::Opcode::Close, reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size(), false,
                Admission::Control);
  close_sent_ = true;
  timer_ms_ = clock32(loop_.now_ms());
}

void Connection::go_away() {
  if (state_ == State::Open) start_close(1001, "going away", false);
}

// A connection still closing when the grace period ends has not completed
// its close handshake (the peer never answered our 1001): recorded as 1006,
// as the close timeout records it, not as the code we sent.
void Connection::abort_connection() {
  finish(state_ == State::Closing && (close_received_ || failed_) ? close_code_ : 1006, "server stopped");
}

void Connection::sweep(std::int64_t now) {
  const ServerOptions& o = core().options();
  switch (state_) {
    case State::Handshake:
      if (now - started_ms() >= o.handshake_timeout.count()) {
        loop_.counters().handshake_failures[static_cast<std::size_t>(HandshakeFailure::Timeout)].inc();
        ops::logger().warn("event=handshake_timeout remote={} after_ms={}", remote_address_, now - started_ms());
        finish(1006, "handshake timeout");
      }
      break;
    case State::Open: {
      const auto interval = o.heartbeat.ping_interval.count();
      if (interval <= 0) break;
      if (awaiting_pong_) {
        if (since(now, timer_ms_) >= o.heartbeat.pong_timeout.count()) {
          loop_.counters().pong_timeouts.inc();
          loop_.counters().errors[static_cast<std::size_t>(ErrorKind::PongTimeout)].inc();
          ops::logger().warn("event=pong_timeout id={} remote={} silent_ms={}", id_, remote_address_,
                             since(now, last_rx_ms_));
          finish(1006, "pong timeout");
        }
      } else if (since(now, last_rx_ms_) >= interval) {
        awaiting_pong_ = true;
        timer_ms_ = clock32(now);
        loop_.counters().pings_sent.inc();
        enqueue_frame(wire::Opcode::Ping, nullptr, 0, false, Admission::Control);
      }
      break;
    }
    case State::Closing:
      if (since(now, timer_ms_) >= o.close_timeout.count()) {
        if (!close_received_ && !failed_) {
          loop_.counters().errors[static_cast<std::size_t>(ErrorKind::CloseTimeout)].inc();
        }
        finish(close_received_ || failed_ ? close_code_ : 1006, close_reason());
      }
      break;
    case State::Closed:
      break;
  }
}

void Connection::finish(std::uint16_t code, std::string_view reason) {
  if (state_ == State::Closed) return;
  // Sends other threads made after the last batch die with the connection.
  stop_foreign_sends(PendingSends::Discard);
  state_ = State::Closed;
  // io_uring: the kernel holds our receive (and maybe a send reading the
  // queue); cancel them. Until their last completions the queue and the
  // loop's reference stay (release_if_quiet), and the socket only really
  // closes then.
  const bool in_flight = loop_.completion_io() && (receiving_ || write_blocked_);
  if (loop_.completion_io()) {
    if (receiving_) loop_.cancel_receive(this);
    if (write_blocked_) loop_.cancel_send(this);
    // Before the close: a request of ours still unsubmitted names fd_ by
    // number, which the next accept (or any thread's socket) may reuse.
    loop_.submit_prepared();
  }
  ::close(fd_);  // also leaves the loop's readiness set
  fd_ = -1;
  if (!(loop_.completion_io() && write_blocked_)) queue_.clear(loop_.pool());
  note_queue_bytes();
  // The RareState stays (other threads may still read path() and
  // subprotocol()); what it owns for the stream goes now.
  if (RareState* r = rare()) {
    r->handshake.reset();
    r->deflate.reset();
    r->tls.reset();
  }
  leave_all_groups();
  loop_.remove(this);
  auto self = shared_from_this();  // keep alive through the callbacks below
  if (counted_open_) {
    core().admission().release(remote_ip());
    loop_.counters().connections_active.dec();
    loop_.counters().count_close(code);
    auto duration = loop_.now_ms() - started_ms();
    ops::logger().info(
        "event=close id={} remote={} path={} subprotocol={} code={} reason=\"{}\" duration_ms={} bytes_in={} "
        "bytes_out={}",
        id_, remote_address_, path(), subprotocol().empty() ? "-" : subprotocol(), code, reason, duration, bytes_in_,
        bytes_out_);
    for (const auto& hook : core().close_hooks()) guarded("close_hook", [&] { hook(*this); });
    if (core().handlers().on_close) guarded("on_close", [&] { core().handlers().on_close(*this, code, reason); });
  }
  core().on_connection_finished();
  if (!in_flight) loop_.retire(std::move(self_));  // freed after the current batch
}

// ---------------------------------------------------------------- groups

bool Connection::join(const std::shared_ptr<GroupState>& group) {
  if (state_ != State::Open) return false;
  for (GroupMembership* m = groups_; m; m = m->next_of_connection) {
    if (m->keep == group) return true;
  }
  auto* m = new GroupMembership();
  m->conn = this;
  m->set = &group->sets[loop_.index()];
  m->keep = group;
  m->set->link(*m);
  group->members.fetch_add(1, std::memory_order_relaxed);
  m->next_of_connection = groups_;
  groups_ = m;
  return true;
}

void Connection::leave(const GroupState& group) {
  for (GroupMembership** link = &groups_; *link; link = &(*link)->next_of_connection) {
    GroupMembership* m = *link;
    if (m->keep.get() != &group) continue;
    *link = m->next_of_connection;
    m->set->unlink(*m);
    m->keep->members.fetch_sub(1, std::memory_order_relaxed);
    delete m;
    return;
  }
}

void Connection::leave_all_groups() noexcept {
  while (groups_) {
    GroupMembership* m = groups_;
    groups_ = m->next_of_connection;
    m->set->unlink(*m);
    m->keep->members.fetch_sub(1, std::memory_order_relaxed);
    delete m;
  }
}

}  // namespace conduit::server
