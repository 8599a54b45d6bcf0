// The per-connection engine. See connection.hpp for the life cycle. Every
// function here runs on the connection's loop thread unless it says otherwise.
#include "server/connection.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cerrno>
#include <cstring>

#include "ops/log.hpp"
#include "server/server_core.hpp"
#include "server/tls.hpp"
#include "wire/deflate.hpp"
#include "wire/frame.hpp"
#include "wire/handshake.hpp"

namespace conduit::server {

namespace http = boost::beast::http;
using ops::ErrorKind;
using ops::HandshakeFailure;

// Request bytes of a connection still in its opening handshake; freed after.
struct HandshakeState {
  std::string buf;
};

namespace {
constexpr std::size_t kMaxRequestHeader = 16 * 1024;

wire::ParserLimits limits_for(const ServerOptions& o, bool deflate) {
  wire::ParserLimits l;
  l.max_message_bytes = o.max_message_bytes;
  l.allow_rsv1 = deflate;
  return l;
}

}  // namespace

Connection::Connection(ServerCore& core, net::EventLoop& loop, int fd, std::uint64_t id, std::string remote_address)
    : core_(core),
      loop_(loop),
      fd_(fd),
      id_(id),
      parser_(wire::Role::Server, limits_for(core.options(), false)),
      remote_address_(std::move(remote_address)) {}

Connection::~Connection() {
  if (fd_ >= 0) ::close(fd_);
}

std::string Connection::remote_ip() const {
  // remote_address_ is "ip:port" or "[v6]:port"; the port is after the last colon.
  std::string_view a = remote_address_;
  a = a.substr(0, a.rfind(':'));
  if (a.size() >= 2 && a.front() == '[') a = a.substr(1, a.size() - 2);
  return std::string(a);
}

Loop& loop_of(net::EventLoop& l) { return static_cast<Loop&>(l); }

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
  // The listener accepted fd_ non-blocking (accept4).
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // we cork ourselves (GUIDE rule 3)
  self_ = shared_from_this();
  started_ms_ = last_rx_ms_ = loop_.now_ms();
  loop_of(loop_).add(this);
  handshake_ = std::make_unique<HandshakeState>();
  if (core_.tls()) {
    tls_ = core_.tls()->new_session();
    if (!tls_) {
      loop_.counters().handshake_failures[static_cast<std::size_t>(HandshakeFailure::TlsFailure)].inc();
      ops::logger().warn("event=tls_error remote={} reason=\"cannot create TLS session\"", remote_address_);
      finish(1006, "tls setup failed");
      return;
    }
  }
  if (!loop_.watch(fd_, this)) {
    ops::logger().error("event=epoll_error remote={} reason=\"{}\"", remote_address_, std::strerror(errno));
    finish(1006, "cannot watch socket");
    return;
  }
  // Read speculatively: the request may already be here, and edge-triggered
  // readiness reports only what arrives after registration.
  on_readable();
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

long Connection::raw_read(std::uint8_t* buf, std::size_t len, int& err) {
  if (tls_) return tls_->read(fd_, buf, len, err);
  for (;;) {
    ssize_t n = ::recv(fd_, buf, len, 0);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    err = errno;
    return -1;
  }
}

void Connection::on_readable() {
  Loop& loop = loop_of(loop_);
  // Inside a dispatch batch the loop flushes at the end of the batch;
  // otherwise (start, resume, continuation) we flush at the end of this read.
  const bool nested = loop.in_batch;
  if (!nested) loop.refresh_clock();
  loop.in_batch = true;
  std::uint8_t* buf = loop.read_buffer();
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
      const std::size_t cap = core_.options().send_queue_bytes;
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
    long n = raw_read(buf, want, err);
    if (n > 0) {
      bytes_in_ += static_cast<std::uint64_t>(n);
      loop.counters().bytes_received.inc(static_cast<std::uint64_t>(n));
      last_rx_ms_ = loop.now_ms();
      awaiting_pong_ = false;
      process_input(buf, static_cast<std::size_t>(n));
      // A short read drained the socket; a new edge will report anything
      // later (the reactor polls only after this handler has re-armed).
      if (static_cast<std::size_t>(n) < want && !tls_) break;  // drained
      if (write_blocked_ && state_ == State::Open) break;      // backpressure; on_writable resumes
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
  if (!nested) {
    loop.in_batch = false;
    loop.flush_dirty();
  }
  if (state_ == State::Closed) return;
  if (tls_ && tls_->has_output() && !dirty_) mark_dirty();
  if (write_blocked_ && state_ == State::Open) return;  // resumed by on_writable
  if (more && !read_posted_) {
    read_posted_ = true;
    loop_.post([self = shared_from_this()] {
      self->read_posted_ = false;
      if (self->state_ != State::Closed) self->on_readable();
    });
  }
}

void Connection::process_input(std::uint8_t* data, std::size_t len) {
  if (state_ == State::Handshake) {
    process_handshake(data, len);
    return;
  }
  if (failed_ || close_received_) return;  // draining until EOF: ignore the rest
  parser_.consume(data, len, *this);
}

void Connection::on_eof() {
  if (state_ == State::Handshake) {
    finish(1006, "closed during handshake");
  } else if (close_received_ || (close_sent_ && failed_)) {
    finish(close_code_, close_reason_);
  } else {
    finish(1006, close_sent_ ? "peer closed without answering our close" : "peer closed without close frame");
  }
}

void Connection::fail_io(int err) {
  if (state_ == State::Closed) return;
  if (tls_ && err == EPROTO) {
    if (state_ == State::Handshake) {
      loop_.counters().handshake_failures[static_cast<std::size_t>(HandshakeFailure::TlsFailure)].inc();
    }
    loop_.counters().errors[static_cast<std::size_t>(ErrorKind::Tls)].inc();
    ops::logger().warn("event=tls_error remote={} reason=\"{}\"", remote_address_, tls_->last_error());
    finish(1006, "TLS failure");
    return;
  }
  if (state_ == State::Open || state_ == State::Closing) {
    loop_.counters().errors[static_cast<std::size_t>(ErrorKind::ConnectionReset)].inc();
  }
  finish(close_received_ ? close_code_ : 1006, err ? std::strerror(err) : "i/o error");
}

// ---------------------------------------------------------------- handshake

void Connection::process_handshake(std::uint8_t* data, std::size_t len) {
  HandshakeState& h = *handshake_;
  std::size_t old = h.buf.size();
  std::size_t room = kMaxRequestHeader - old;
  h.buf.append(reinterpret_cast<const char*>(data), std::min(len, room));
  std::size_t pos = h.buf.find("\r\n\r\n", old >= 3 ? old - 3 : 0);
  if (pos == std::string::npos) {
    if (h.buf.size() >= kMaxRequestHeader) {
      refuse(431, "request header too large", HandshakeFailure::HeaderTooLarge);
    }
    return;
  }
  std::size_t header_len = pos + 4;
  // Bytes after the request belong to the WebSocket stream (a client may
  // pipeline its first frames behind the upgrade request).
  std::size_t consumed_from_data = header_len - old;
  std::uint8_t* rest = data + consumed_from_data;
  std::size_t rest_len = len - consumed_from_data;

  http::request_parser<http::empty_body> parser;
  parser.header_limit(kMaxRequestHeader);
  parser.eager(false);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(h.buf.data(), header_len), ec);
  if (!parser.is_header_done() || (ec && ec != http::error::need_more && ec != http::error::unexpected_body)) {
    refuse(400, std::string("malformed HTTP request: ") + (ec ? ec.message() : "incomplete header"),
           HandshakeFailure::BadRequest);
    return;
  }
  const auto& req = parser.get();
  wire::UpgradeRequest up;
  up.method = req.method_string();
  up.version = req.version();
  up.target = req.target();
  for (const auto& field : req) up.headers.push_back({field.name_string(), field.value()});

  std::string target(up.target);
  auto qpos = target.find('?');
  std::string path_only = target.substr(0, qpos);
  path_ = target;

  wire::UpgradeCheck check = wire::check_upgrade_request(up);
  switch (check.verdict) {
    case wire::UpgradeVerdict::NotUpgrade: {
      if (path_only == "/healthz") {
        http_reply(200, "text/plain", "ok\n");
      } else if (path_only == "/readyz") {
        if (core_.draining()) {
          http_reply(503, "text/plain", "draining\n");
        } else {
          http_reply(200, "text/plain", "ready\n");
        }
      } else if (path_only == "/metrics") {
        http_reply(200, "text/plain; version=0.0.4", core_.metrics_text());
      } else {
        refuse(404, "not found: " + path_only.substr(0, 200), HandshakeFailure::NotFound);
      }
      return;
    }
    case wire::UpgradeVerdict::BadRequest:
      refuse(400, check.reason, HandshakeFailure::BadRequest);
      return;
    case wire::UpgradeVerdict::BadVersion:
      refuse(426, check.reason, HandshakeFailure::BadVersion, "Sec-WebSocket-Version: 13\r\n");
      return;
    case wire::UpgradeVerdict::Upgrade:
      if (metrics_only) {
        refuse(404, "no WebSocket on the metrics listener", HandshakeFailure::NotFound);
        return;
      }
      break;
  }

  std::string scratch_origin, scratch_proto, scratch_ext;
  AdmissionRequest adm;
  adm.origin = up.header("Origin", scratch_origin);
  std::string_view protocols = up.header("Sec-WebSocket-Protocol", scratch_proto);
  for (std::string_view p : wire::split_list(protocols)) adm.offered.push_back(p);
  adm.draining = core_.draining();
  // Reserve the slot first and let the policy judge the counts as they were
  // before this connection: one mechanism for every refusal, and two loops
  // admitting at once cannot both take the last slot.
  const std::string ip = remote_ip();
  core_.reserve_admission(ip, adm.open_connections, adm.open_from_ip);
  AdmissionDecision decision = core_.policy().decide(adm);
  if (!decision.accept) {
    core_.release_admission(ip);
    refuse(decision.status, decision.reason, decision.failure, decision.extra_headers);
    return;
  }
  counted_open_ = true;  // from here on finish() releases the admission
  std::string subprotocol = decision.subprotocol;

  if (core_.handlers().on_upgrade) {
    UpgradeInfo info;
    info.path = std::string_view(path_).substr(0, path_only.size());
    info.query = qpos == std::string::npos ? std::string_view() : std::string_view(path_).substr(qpos + 1);
    info.remote_address = remote_address_;
    info.origin = adm.origin;
    info.offered_subprotocols = adm.offered;
    std::vector<std::string> scratches;
    info.header = [&up, &scratches](std::string_view name) -> std::string_view {
      scratches.emplace_back();
      return up.header(name, scratches.back());
    };
    scratches.reserve(32);
    UpgradeDecision hook;
    if (!guarded("on_upgrade", [&] { hook = core_.handlers().on_upgrade(info); })) {
      counted_open_ = false;
      core_.release_admission(ip);
      refuse(500, "internal error", HandshakeFailure::HookFailed);
      return;
    }
    if (!hook.accept) {
      counted_open_ = false;
      core_.release_admission(ip);
      unsigned status = hook.status >= 400 && hook.status <= 599 ? hook.status : 403;
      refuse(status, hook.reason.empty() ? "refused" : hook.reason, HandshakeFailure::RefusedByHook);
      return;
    }
    if (!hook.subprotocol.empty()) subprotocol = hook.subprotocol;
    user_data = std::move(hook.user_data);
  }

  std::string extensions;
  if (core_.deflate_config().enabled) {
    std::string_view offers = up.header("Sec-WebSocket-Extensions", scratch_ext);
    if (!offers.empty()) {
      if (auto neg = wire::negotiate_deflate(offers, core_.deflate_config())) {
        deflate_ =
            std::make_unique<wire::PerMessageDeflate>(wire::Role::Server, neg->params, core_.deflate_config().level);
        extensions = neg->response;
      }
    }
  }
  subprotocol_ = std::move(subprotocol);
  std::string response = wire::make_accept_response(wire::compute_accept_key(check.key), subprotocol_, extensions);
  handshake_.reset();
  std::uint8_t* p = queue_.reserve(loop_.pool(), response.size());
  std::memcpy(p, response.data(), response.size());
  queue_.commit(response.size());
  mark_dirty();

  state_ = State::Open;
  parser_.set_limits(limits_for(core_.options(), deflate_ != nullptr));
  loop_.counters().connections_total.inc();
  loop_.counters().connections_active.inc();
  ops::logger().info("event=open id={} remote={} path={} subprotocol={} compression={}", id_, remote_address_, path_,
                     subprotocol_.empty() ? "-" : subprotocol_, deflate_ ? "deflate" : "none");
  if (core_.handlers().on_open) guarded("on_open", [&] { core_.handlers().on_open(*this); });
  if (rest_len > 0 && state_ == State::Open) parser_.consume(rest, rest_len, *this);
}

void Connection::refuse(unsigned status, std::string_view reason, HandshakeFailure why, std::string_view extra) {
  loop_.counters().handshake_failures[static_cast<std::size_t>(why)].inc();
  if (why == HandshakeFailure::NotFound) {
    ops::logger().info("event=http status={} remote={} path={}", status, remote_address_, path_);
  } else {
    ops::logger().warn("event=handshake_refused status={} reason=\"{}\" remote={} path={}", status, reason,
                       remote_address_, path_);
  }
  close_code_ = 1006;
  close_reason_ = std::string(reason);
  respond_and_close(wire::make_error_response(status, reason, extra));
}

// Queues a whole HTTP response; after it has left, our side is shut down and
// the connection drains until the peer closes (bounded by close_timeout).
void Connection::respond_and_close(std::string_view response) {
  handshake_.reset();
  std::uint8_t* p = queue_.reserve(loop_.pool(), response.size());
  std::memcpy(p, response.data(), response.size());
  queue_.commit(response.size());
  state_ = State::Closing;
  close_sent_ = true;
  failed_ = true;
  timer_ms_ = loop_.now_ms();
  mark_dirty();
}

void Connection::http_reply(unsigned status, std::string_view content_type, std::string_view body) {
  std::string response = "HTTP/1.1 " + std::to_string(status) + " " + std::string(wire::status_text(status)) +
                         "\r\nContent-Type: " + std::string(content_type) +
                         "\r\nContent-Length: " + std::to_string(body.size()) +
                         "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n" + std::string(body);
  respond_and_close(response);
}

// ---------------------------------------------------------------- frames in

void Connection::on_message(wire::Opcode op, std::uint8_t* data, std::size_t len, bool compressed) {
  if (state_ != State::Open) return;  // after our close: discard (RFC 6455 §1.4)
  loop_.counters().messages_received.inc();
  MessageType type = op == wire::Opcode::Text ? MessageType::Text : MessageType::Binary;
  if (compressed) {
    if (!deflate_) {
      on_error(1002, "compressed frame without negotiated extension");
      return;
    }
    static thread_local std::string inflated;
    switch (deflate_->decompress(data, len, inflated, core_.options().max_message_bytes)) {
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
    if (core_.handlers().on_message) guarded("on_message", [&] { core_.handlers().on_message(*this, local, type); });
    if (inflated.capacity() < local.capacity() && local.capacity() <= 1 << 20) inflated.swap(local);
    return;
  }
  if (core_.handlers().on_message) {
    guarded("on_message", [&] {
      core_.handlers().on_message(*this, std::string_view(reinterpret_cast<const char*>(data), len), type);
    });
  }
}

void Connection::on_ping(const std::uint8_t* data, std::size_t len) {
  if (state_ != State::Open) return;
  enqueue_frame(wire::Opcode::Pong, data, len, false, true);
}

void Connection::on_pong(const std::uint8_t*, std::size_t) {
  awaiting_pong_ = false;  // any frame counts as liveness; a pong is the usual one
}

void Connection::on_close(std::uint16_t code, std::string_view reason) {
  close_received_ = true;
  if (!close_sent_) {
    // Echo the peer's code (RFC 6455 §5.5.1); a close without a code is answered with an empty close.
    close_code_ = code;
    close_reason_ = std::string(reason);
    std::string payload = wire::close_payload(code == 1005 ? 1005 : code, {});
    enqueue_frame(wire::Opcode::Close, reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size(), false,
                  true);
    close_sent_ = true;
    timer_ms_ = loop_.now_ms();
    state_ = State::Closing;
  } else if (queue_.empty() && !write_blocked_) {
    after_flush();  // our close already left: the handshake is complete
  }
}

void Connection::on_error(std::uint16_t code, const char* reason) {
  ErrorKind kind = code == 1007   ? ErrorKind::InvalidPayload
                   : code == 1009 ? ErrorKind::MessageTooBig
                                  : ErrorKind::ProtocolError;
  loop_.counters().errors[static_cast<std::size_t>(kind)].inc();
  ops::logger().warn("event=protocol_error id={} remote={} code={} reason=\"{}\"", id_, remote_address_, code, reason);
  start_close(code, reason, true);
}

// ---------------------------------------------------------------- frames out

bool Connection::send(std::string_view data, MessageType type) {
  if (!loop_.on_this_thread()) {
    loop_.post([self = shared_from_this(), copy = std::string(data), type] {
      self->send(copy, type);
      if (!loop_of(self->loop_).in_batch) loop_of(self->loop_).schedule_flush();
    });
    return true;
  }
  if (state_ != State::Open) return false;
  wire::Opcode op = type == MessageType::Text ? wire::Opcode::Text : wire::Opcode::Binary;
  if (deflate_ && data.size() >= core_.deflate_config().min_compress_bytes) {
    static thread_local std::string compressed;
    compressed.clear();
    deflate_->compress(reinterpret_cast<const std::uint8_t*>(data.data()), data.size(), compressed);
    if (!enqueue_frame(op, reinterpret_cast<const std::uint8_t*>(compressed.data()), compressed.size(), true, false)) {
      return false;
    }
  } else if (!enqueue_frame(op, reinterpret_cast<const std::uint8_t*>(data.data()), data.size(), false, false)) {
    return false;
  }
  loop_.counters().messages_sent.inc();
  return true;
}

void Connection::deliver_shared(net::FrameBuffer* buf, std::uint32_t begin, std::uint32_t end, std::size_t messages) {
  if (state_ != State::Open) return;
  if (!admit(end - begin)) return;
  queue_.append_shared(loop_.pool(), buf, begin, end);
  loop_.counters().messages_sent.inc(messages);
  mark_dirty();
}

bool Connection::admit(std::size_t frame_bytes) {
  const std::size_t cap = core_.options().send_queue_bytes;
  const std::size_t queued = queue_.bytes();
  // An empty queue always takes one message, however large: otherwise a
  // message above the cap could never be sent at all.
  if (queued == 0 || queued + frame_bytes <= cap) {
    if (queued + frame_bytes > cap / 2) high_water_ = true;
    return true;
  }
  loop_.counters().send_queue_overflows.inc();
  if (core_.options().slow_consumer == SlowConsumerPolicy::Drop) {
    loop_.counters().messages_dropped.inc();
    return false;
  }
  loop_.counters().errors[static_cast<std::size_t>(ErrorKind::SlowConsumer)].inc();
  ops::logger().warn("event=slow_consumer id={} remote={} queued_bytes={} limit={} action=close", id_, remote_address_,
                     queued, cap);
  // Keep only the head node (its first bytes may already be on the wire, and
  // nodes always end on frame boundaries), so the close frame follows right
  // after what the peer's socket already holds.
  queue_.discard_all_but_head(loop_.pool());
  start_close(1008, "slow consumer", false);
  return false;
}

bool Connection::enqueue_frame(wire::Opcode op, const std::uint8_t* data, std::size_t len, bool rsv1, bool control) {
  std::uint8_t header[wire::max_header_size];
  std::size_t hlen = wire::write_header(header, op, true, rsv1, len, nullptr);
  if (!control && !admit(hlen + len)) return false;
  std::uint8_t* p = queue_.reserve(loop_.pool(), hlen + len);
  std::memcpy(p, header, hlen);
  if (len) std::memcpy(p + hlen, data, len);
  queue_.commit(hlen + len);
  mark_dirty();
  return true;
}

void Connection::mark_dirty() {
  if (dirty_ || state_ == State::Closed) return;
  dirty_ = true;
  Loop& loop = loop_of(loop_);
  loop.push_dirty(shared_from_this());
  if (!loop.in_batch) loop.schedule_flush();
}

void Connection::on_writable() {
  write_blocked_ = false;
  flush();
  // Reading was paused while we were blocked; input edges that came meanwhile
  // were ignored, so read speculatively.
  if (state_ != State::Closed && !write_blocked_) on_readable();
}

void Connection::flush() {
  dirty_ = false;
  if (write_blocked_ || state_ == State::Closed) return;
  iovec* iov = loop_.iov();
  for (;;) {
    if (tls_) {
      // Encrypt what is queued (bounded by the TLS layer's own output cap),
      // then push ciphertext to the socket.
      while (!queue_.empty() && tls_->can_accept_plaintext()) {
        int cnt = queue_.gather(iov, 64);
        std::size_t taken = tls_->encrypt(iov, cnt);
        queue_.consume(loop_.pool(), taken);
      }
      int err = 0;
      long sent = tls_->write_out(fd_, err);
      if (sent < 0) {
        if (err == EPROTO) loop_.counters().errors[static_cast<std::size_t>(ErrorKind::Tls)].inc();
        if (err == EAGAIN || err == EWOULDBLOCK) {
          write_blocked_ = true;  // EPOLLOUT edge → on_writable
          return;
        }
        fail_io(err);
        return;
      }
      bytes_out_ += static_cast<std::uint64_t>(sent);
      loop_.counters().bytes_sent.inc(static_cast<std::uint64_t>(sent));
      if (tls_->has_output()) continue;
      if (queue_.empty()) break;
      continue;
    }
    if (queue_.empty()) break;
    int cnt = queue_.gather(iov, net::SendQueue::max_iov);
    ssize_t n;
    if (cnt == 1) {
      // The common case (an echo, a broadcast run in one shared buffer):
      // send(2) skips sendmsg's msghdr and iovec copy-in.
      n = ::send(fd_, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
    } else {
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<std::size_t>(cnt);
      n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    }
    if (n > 0) {
      bytes_out_ += static_cast<std::uint64_t>(n);
      loop_.counters().bytes_sent.inc(static_cast<std::uint64_t>(n));
      queue_.consume(loop_.pool(), static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      write_blocked_ = true;  // EPOLLOUT edge → on_writable
      return;
    }
    fail_io(n < 0 ? errno : EPIPE);
    return;
  }
  after_flush();
}

void Connection::after_flush() {
  if (state_ == State::Closed) return;
  if (high_water_) {
    high_water_ = false;
    if (state_ == State::Open && core_.handlers().on_drain) {
      guarded("on_drain", [&] { core_.handlers().on_drain(*this); });
    }
  }
  if (close_sent_ && close_received_ && queue_.empty() && !(tls_ && tls_->has_output())) {
    // Close handshake complete and our close has left: the server closes the
    // TCP connection first (RFC 6455 §7.1.1). The peer sends nothing after
    // its close frame, so closing now does not reset the connection.
    if (tls_) tls_->shutdown_notify(fd_);
    ::shutdown(fd_, SHUT_WR);
    finish(close_code_, close_reason_);
    return;
  }
  if (close_sent_ && !write_shut_ && failed_ && queue_.empty()) {
    // After a protocol error or an HTTP response: shut down our direction and
    // read until the peer closes (or close_timeout), so that unread input
    // does not turn our close into a reset before the peer has read it.
    if (tls_) tls_->shutdown_notify(fd_);
    ::shutdown(fd_, SHUT_WR);
    write_shut_ = true;
  }
}

// ---------------------------------------------------------------- closing

void Connection::close(std::uint16_t code, std::string_view reason) {
  if (!loop_.on_this_thread()) {
    loop_.post([self = shared_from_this(), code, r = std::string(reason)] {
      self->close(code, r);
      if (!loop_of(self->loop_).in_batch) loop_of(self->loop_).schedule_flush();
    });
    return;
  }
  if (state_ != State::Open) return;
  if (!wire::is_valid_wire_close_code(code)) code = 1000;
  start_close(code, reason, false);
}

void Connection::start_close(std::uint16_t code, std::string_view reason, bool failed) {
  if (state_ == State::Closed || close_sent_) {
    failed_ = failed_ || failed;
    return;
  }
  state_ = State::Closing;
  failed_ = failed;
  close_code_ = code;
  close_reason_ = std::string(reason);
  std::string payload = wire::close_payload(code, reason);
  enqueue_frame(wire::Opcode::Close, reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size(), false,
                true);
  close_sent_ = true;
  timer_ms_ = loop_.now_ms();
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
  const ServerOptions& o = core_.options();
  switch (state_) {
    case State::Handshake:
      if (now - started_ms_ >= o.handshake_timeout.count()) {
        loop_.counters().handshake_failures[static_cast<std::size_t>(HandshakeFailure::Timeout)].inc();
        ops::logger().warn("event=handshake_timeout remote={} after_ms={}", remote_address_, now - started_ms_);
        finish(1006, "handshake timeout");
      }
      break;
    case State::Open: {
      const auto interval = o.heartbeat.ping_interval.count();
      if (interval <= 0) break;
      if (awaiting_pong_) {
        if (now - timer_ms_ >= o.heartbeat.pong_timeout.count()) {
          loop_.counters().pong_timeouts.inc();
          loop_.counters().errors[static_cast<std::size_t>(ErrorKind::PongTimeout)].inc();
          ops::logger().warn("event=pong_timeout id={} remote={} silent_ms={}", id_, remote_address_,
                             now - last_rx_ms_);
          finish(1006, "pong timeout");
        }
      } else if (now - last_rx_ms_ >= interval) {
        awaiting_pong_ = true;
        timer_ms_ = now;
        loop_.counters().pings_sent.inc();
        enqueue_frame(wire::Opcode::Ping, nullptr, 0, false, true);
      }
      break;
    }
    case State::Closing:
      if (now - timer_ms_ >= o.close_timeout.count()) {
        if (!close_received_ && !failed_) {
          loop_.counters().errors[static_cast<std::size_t>(ErrorKind::CloseTimeout)].inc();
        }
        finish(close_received_ || failed_ ? close_code_ : 1006, close_reason_);
      }
      break;
    case State::Closed:
      break;
  }
}

void Connection::finish(std::uint16_t code, std::string_view reason) {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  ::close(fd_);  // also leaves the loop's readiness set
  fd_ = -1;
  queue_.clear(loop_.pool());
  handshake_.reset();
  deflate_.reset();
  tls_.reset();
  loop_of(loop_).remove(this);
  auto self = shared_from_this();  // keep alive through the callbacks below
  if (counted_open_) {
    core_.release_admission(remote_ip());
    loop_.counters().connections_active.dec();
    loop_.counters().count_close(code);
    auto duration = loop_.now_ms() - started_ms_;
    ops::logger().info(
        "event=close id={} remote={} path={} subprotocol={} code={} reason=\"{}\" duration_ms={} bytes_in={} "
        "bytes_out={}",
        id_, remote_address_, path_, subprotocol_.empty() ? "-" : subprotocol_, code, reason, duration, bytes_in_,
        bytes_out_);
    if (core_.handlers().on_close) guarded("on_close", [&] { core_.handlers().on_close(*this, code, reason); });
  }
  core_.on_connection_finished();
  loop_.retire(std::move(self_));  // freed after the current batch
}

}  // namespace conduit::server
