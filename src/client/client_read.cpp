// Client::Impl: the read path. Bytes from the socket go through the frame
// parser; messages go to on_message, a waiting read() or the read queue (which
// pauses reading when full); control frames are answered here.
#include <boost/asio/post.hpp>

#include "client/client_impl.hpp"
#include "wire/utf8.hpp"

namespace conduit {

using client_detail::classify_transport_error;
using client_detail::make_failure;
using client_detail::use_tuple;

struct Client::Impl::ParserEvents {
  Impl* impl;
  Conn* c;
  std::string inflated;  // scratch for compressed messages
  void on_message(wire::Opcode op, std::uint8_t* data, std::size_t len, bool compressed) {
    if (c->discard_input) return;
    const MessageType type = op == wire::Opcode::Binary ? MessageType::Binary : MessageType::Text;
    if (!compressed) {
      impl->deliver(type, std::string_view(reinterpret_cast<const char*>(data), len));
      return;
    }
    // The parser accepts RSV1 only once permessage-deflate was negotiated.
    switch (c->deflate->decompress(data, len, inflated, impl->opt.max_message_bytes)) {
      case wire::InflateResult::Ok:
        break;
      case wire::InflateResult::TooBig:
        return on_error(close_code::message_too_big, "message too big after decompression");
      case wire::InflateResult::Corrupt:
        return on_error(close_code::invalid_payload, "invalid compressed data");
    }
    if (type == MessageType::Text &&
        !wire::is_valid_utf8(reinterpret_cast<const std::uint8_t*>(inflated.data()), inflated.size())) {
      return on_error(close_code::invalid_payload, "invalid UTF-8 in text message");
    }
    impl->deliver(type, inflated);
    if (inflated.capacity() > (1u << 20)) std::string().swap(inflated);
  }
  void on_ping(const std::uint8_t* data, std::size_t len) {
    if (c->discard_input) return;
    const std::string_view payload(reinterpret_cast<const char*>(data), len);
    impl->report_ping_pong(PingPong::ping_received, payload);
    if (c->sent_close) return;
    impl->enqueue(*c, wire::Opcode::Pong, std::string(payload));
  }
  void on_pong(const std::uint8_t* data, std::size_t len) {
    if (c->discard_input) return;
    impl->report_ping_pong(PingPong::pong_received, std::string_view(reinterpret_cast<const char*>(data), len));
  }
  void on_close(std::uint16_t code, std::string_view reason) {
    if (c->discard_input) {  // the answer to the close we sent when failing the connection
      c->got_close = true;
      return;
    }
    c->got_close = true;
    c->close_code = code;
    c->close_reason = std::string(reason);
    if (!c->sent_close) {
      c->by_server = true;
      // Data not yet written would be discarded by a closing server: keep it
      // for the next connection instead, and answer the close at once.
      {
        std::lock_guard lock(impl->mu);
        impl->requeue_unsent_locked(*c);
      }
      impl->enqueue(*c, wire::Opcode::Close, wire::close_payload(code, {}));
      c->sent_close = true;
    }
  }
  void on_error(std::uint16_t code, const char* reason) {
    ClientError e = ClientError::protocol_error;
    if (code == close_code::invalid_payload) e = ClientError::invalid_payload;
    if (code == close_code::message_too_big) e = ClientError::message_too_big;
    ClientFailure f = make_failure(e, reason != nullptr ? reason : "");
    f.close_code = code;
    c->close_code = code;
    c->close_reason = f.detail;
    if (!c->failure) {
      c->failure = f;
      impl->emit_error(f);
    }
    c->discard_input = true;
    if (!c->sent_close) {
      // Fail the connection (RFC 6455 §7.1.7) with our close frame, and
      // nothing after it. What the application had already handed to send()
      // (an echo of the valid message before the bad frame, typically) still
      // goes out first: those sends are posted to this strand ahead of the
      // task below, and on_send accepts them while close_deferred is set.
      c->sent_close = true;
      c->close_deferred = true;
      std::shared_ptr<Conn> conn = impl->conn;
      if (conn.get() != c) return;  // not the current connection (cannot happen while parsing it)
      // The server's answer is awaited at most close_timeout, whether the
      // parser stopped here or (failure found after parsing, e.g. bad
      // compressed data) keeps reading until the server's close.
      impl->arm_watchdog(conn, impl->opt.close_timeout);
      asio::post(impl->strand, [impl = impl->shared_from_this(), conn, code] {
        conn->close_deferred = false;
        impl->enqueue(*conn, wire::Opcode::Close, wire::close_payload(code, {}));
      });
    }
  }
};

void Client::Impl::deliver(MessageType type, std::string_view data) {
  if (stopping.load()) return;
  if (handlers.on_message) {
    handlers.on_message(data, type);
    return;
  }
  ClientMessage m{type, std::string(data)};
  if (!readers.empty()) {
    auto r = std::move(readers.front());
    readers.pop_front();
    asio::post(strand, [r = std::move(r), m = std::move(m)]() mutable { r({}, std::move(m)); });
    return;
  }
  read_q_bytes += m.data.size();
  read_q.push_back(std::move(m));
  if (read_q_bytes > opt.read_queue_bytes) read_paused = true;
}

asio::awaitable<void> Client::Impl::reader(std::shared_ptr<Conn> c) {
  ParserEvents events{this, c.get()};
  if (!c->pending_input.empty()) {
    std::string input = std::move(c->pending_input);
    if (!c->parser.consume(reinterpret_cast<std::uint8_t*>(input.data()), input.size(), events)) {
      c->parser_stopped = true;
      maybe_half_close(*c);
      co_return;
    }
  }
  while (!c->done) {
    if (read_paused) {
      c->read_resume.expires_at(asio::steady_timer::time_point::max());
      co_await c->read_resume.async_wait(use_tuple);
      continue;
    }
    auto [ec, n] = co_await c->read_some(asio::buffer(read_buf.data(), read_buf.size()));
    if (ec) {
      if (!c->failure && !stopping.load() && !c->sent_close) {
        c->failure = make_failure(classify_transport_error(ec), ec.message());
        emit_error(*c->failure);
      }
      co_return;
    }
    ++c->reads;
    if (!c->parser.consume(read_buf.data(), n, events)) {
      c->parser_stopped = true;
      maybe_half_close(*c);
      co_return;
    }
  }
}

}  // namespace conduit
