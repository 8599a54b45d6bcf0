// Client::Impl: the send path (the writer corks everything queued into one
// write, compressing in write order), the close frame, the requeueing of
// unsent messages, and the heartbeat.
#include "client/client_impl.hpp"

namespace conduit {

using client_detail::classify_transport_error;
using client_detail::client_deflate_config;
using client_detail::make_failure;
using client_detail::use_tuple;

void Client::Impl::requeue_unsent_locked(Conn& c) {
  std::deque<ClientMessage> back;
  for (auto& o : c.wq) {
    if (wire::is_control(o.op)) continue;
    pending_send_bytes -= std::min(pending_send_bytes, o.payload.size());
    if (app_closed || !opt.resend_unsent) continue;
    offline_bytes += o.payload.size();
    back.push_back(
        ClientMessage{o.op == wire::Opcode::Binary ? MessageType::Binary : MessageType::Text, std::move(o.payload)});
  }
  c.wq.clear();
  offline.insert(offline.begin(), std::make_move_iterator(back.begin()), std::make_move_iterator(back.end()));
}

asio::awaitable<void> Client::Impl::writer(std::shared_ptr<Impl> self, std::shared_ptr<Conn> c) {
  std::string batch;
  std::string compressed;
  while (!c->done) {
    if (c->wq.empty()) {
      c->write_signal.expires_at(asio::steady_timer::time_point::max());
      co_await c->write_signal.async_wait(use_tuple);
      continue;
    }
    // Cork: everything queued so far leaves in one write.
    batch.clear();
    std::size_t data_bytes = 0;
    bool close_written = false;
    while (!c->wq.empty()) {
      Outgoing& o = c->wq.front();
      // Compressed here, in write order, because with context takeover each
      // message's deflate output depends on every message before it.
      if (c->deflate && !wire::is_control(o.op) && o.payload.size() >= client_deflate_config().min_compress_bytes) {
        compressed.clear();
        c->deflate->compress(reinterpret_cast<const std::uint8_t*>(o.payload.data()), o.payload.size(), compressed);
        wire::append_frame(batch, o.op, compressed, /*masked=*/true, /*fin=*/true, /*rsv1=*/true);
      } else {
        wire::append_frame(batch, o.op, o.payload, /*masked=*/true);
      }
      if (!wire::is_control(o.op)) data_bytes += o.payload.size();
      if (o.op == wire::Opcode::Close) close_written = true;
      c->wq.pop_front();
      if (close_written) {
        c->wq.clear();  // nothing may follow a close frame (RFC 6455 §5.5.1)
        break;
      }
    }
    auto [ec, n] = co_await c->write(asio::buffer(batch));
    (void)n;
    {
      std::lock_guard lock(self->mu);
      self->pending_send_bytes -= std::min(self->pending_send_bytes, data_bytes);
    }
    if (batch.capacity() > (1u << 20)) std::string().swap(batch);  // no large idle buffer per connection
    if (compressed.capacity() > (1u << 20)) std::string().swap(compressed);
    if (ec) {
      if (!c->done && !c->failure && !c->sent_close) {
        c->failure = make_failure(classify_transport_error(ec), ec.message());
        self->emit_error(*c->failure);
      }
      c->abort();
      co_return;
    }
    if (close_written) {
      c->close_written = true;
      maybe_half_close(*c);
      co_return;
    }
  }
}

void Client::Impl::maybe_half_close(Conn& c) {
  if (c.half_closed || !c.close_written || !(c.got_close || c.parser.failed())) return;
  c.half_closed = true;
  boost::system::error_code ignored;
  c.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> Client::Impl::heartbeat(std::shared_ptr<Impl> self, std::shared_ptr<Conn> c) {
  const auto interval = self->opt.ping_interval;
  const auto timeout = self->opt.pong_timeout;
  auto next_ping = Clock::now() + interval;
  while (!c->done) {
    c->heartbeat.expires_at(next_ping);
    co_await c->heartbeat.async_wait(use_tuple);
    if (c->done || c->sent_close) co_return;
    const std::uint64_t reads_at_ping = c->reads;
    self->enqueue(*c, wire::Opcode::Ping, {});
    next_ping = Clock::now() + interval;
    if (timeout.count() <= 0) continue;
    c->heartbeat.expires_after(timeout);
    co_await c->heartbeat.async_wait(use_tuple);
    if (c->done || c->sent_close) co_return;
    if (c->reads == reads_at_ping) {
      // Nothing at all came back: the path is dead (NAT eviction, pulled
      // cable). A close handshake would hang too, so drop TCP and reconnect.
      ClientFailure f = make_failure(ClientError::pong_timeout,
                                     "no frame within " + std::to_string(timeout.count()) + " ms after ping");
      c->failure = f;
      self->emit_error(f);
      c->abort();
      co_return;
    }
  }
}

void Client::Impl::enqueue(Conn& c, wire::Opcode op, std::string payload) {
  if (c.done) return;
  if (op == wire::Opcode::Ping) report_ping_pong(PingPong::ping_sent, payload);
  if (op == wire::Opcode::Pong) report_ping_pong(PingPong::pong_sent, payload);
  c.wq.push_back(Outgoing{op, std::move(payload)});
  c.write_signal.cancel();
}

void Client::Impl::start_close(const std::shared_ptr<Conn>& c, std::uint16_t code, const std::string& reason) {
  if (c->sent_close || c->done) return;
  emit_state(ClientState::Closing, attempt.load(), ClientDuration{0}, {});
  enqueue(*c, wire::Opcode::Close, wire::close_payload(code, reason));
  c->sent_close = true;
  arm_watchdog(c, opt.close_timeout);
}

void Client::Impl::on_send(Outgoing o) {
  if (conn && conn->opened && !conn->done && (!conn->sent_close || conn->close_deferred)) {
    enqueue(*conn, o.op, std::move(o.payload));
    return;
  }
  // The connection ended between send() and here: keep the order by joining
  // the offline queue behind what was requeued.
  std::lock_guard lock(mu);
  pending_send_bytes -= std::min(pending_send_bytes, o.payload.size());
  if (app_closed || finished || !opt.resend_unsent) return;
  offline_bytes += o.payload.size();
  offline.push_back(
      ClientMessage{o.op == wire::Opcode::Binary ? MessageType::Binary : MessageType::Text, std::move(o.payload)});
}

}  // namespace conduit
