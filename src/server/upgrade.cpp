// The opening handshake: the HTTP request, then either a WebSocket upgrade
// (admission, accept hook, permessage-deflate negotiation, 101) or a plain
// HTTP request answered from the route table. Loop thread only.
#include "ops/log.hpp"

#include <algorithm>
#include <atomic>
#include <boost/beast/http/basic_parser.hpp>
#include <cstdint>
#include <cstring>
#include <memory>

#include "server/connection.hpp"
#include "server/http_routes.hpp"
#include "server/loop.hpp"
#include "server/rare_state.hpp"
#include "server/server_core.hpp"
#include "wire/deflate.hpp"
#include "wire/handshake.hpp"

namespace conduit::server {

namespace http = boost::beast::http;

namespace {
constexpr std::size_t kMaxRequestHeader = 16 * 1024;

// Beast's HTTP/1.1 request-head grammar without its field container: the
// method, target and fields are views of the bytes being parsed, collected
// into a per-thread UpgradeRequest whose field list keeps its capacity. An
// upgrade therefore parses its request with no allocation (the request head
// must be in one contiguous piece, which it is: the read buffer or the
// connection's handshake buffer).
class RequestHeadParser final : public http::basic_parser<true> {
 public:
  explicit RequestHeadParser(wire::UpgradeRequest& up) : up_(up) {
    up_.method = {};
    up_.target = {};
    up_.version = 11;
    up_.headers.clear();
  }

 private:
  void on_request_impl(http::verb, boost::beast::string_view method, boost::beast::string_view target, int version,
                       boost::beast::error_code&) override {
    up_.method = std::string_view(method.data(), method.size());
    up_.target = std::string_view(target.data(), target.size());
    up_.version = static_cast<unsigned>(version);
  }
  void on_response_impl(int, boost::beast::string_view, int, boost::beast::error_code&) override {}
  void on_field_impl(http::field, boost::beast::string_view name, boost::beast::string_view value,
                     boost::beast::error_code&) override {
    up_.headers.push_back({std::string_view(name.data(), name.size()), std::string_view(value.data(), value.size())});
  }
  void on_header_impl(boost::beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, boost::beast::error_code&) override {}
  std::size_t on_body_impl(boost::beast::string_view, boost::beast::error_code&) override { return 0; }
  void on_chunk_header_impl(std::uint64_t, boost::beast::string_view, boost::beast::error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view, boost::beast::error_code&) override {
    return 0;
  }
  void on_finish_impl(boost::beast::error_code&) override {}

  wire::UpgradeRequest& up_;
};

// The parsed request of the handshake in progress on this thread (one at a
// time: handshakes run from socket events, never inside one another).
wire::UpgradeRequest& request_scratch() {
  static thread_local wire::UpgradeRequest up;
  return up;
}

// Parses a complete request head (ending in CRLF CRLF) into the parser's
// request. Empty on success, else the reason it is malformed.
std::string parse_head(RequestHeadParser& parser, std::string_view head) {
  parser.header_limit(kMaxRequestHeader);
  // The body is never read by this parser: its size is judged by the route's
  // cap (413), not by Beast's default limit (1 MB), which would make a large
  // Content-Length a 400 "malformed request".
  parser.body_limit(boost::none);
  parser.eager(false);
  boost::system::error_code ec;
  parser.put(boost::asio::const_buffer(head.data(), head.size()), ec);
  if (!parser.is_header_done() || (ec && ec != http::error::need_more && ec != http::error::unexpected_body)) {
    return std::string("malformed HTTP request: ") + (ec ? ec.message() : "incomplete header");
  }
  return {};
}

wire::ParserLimits limits_for(const ServerOptions& o, bool deflate) {
  wire::ParserLimits l;
  l.max_message_bytes = o.max_message_bytes;
  l.allow_rsv1 = deflate;
  return l;
}
}  // namespace

void Connection::process_handshake(std::uint8_t* data, std::size_t len) {
  // The common case, a whole request head in one read, is parsed where it
  // lies in the loop's read buffer; only a head split across reads (or an
  // HTTP request with a body) is gathered in the connection's handshake
  // buffer, allocated for that and freed after the response.
  std::string_view head;
  std::size_t consumed_from_data = 0;
  if (!handshake()) {
    const std::string_view in(reinterpret_cast<const char*>(data), len);
    const std::size_t pos = in.find("\r\n\r\n");
    if (pos == std::string_view::npos || pos + 4 > kMaxRequestHeader) {
      rare_state().handshake = std::make_unique<HandshakeState>();
    } else {
      head = in.substr(0, pos + 4);
      consumed_from_data = head.size();
    }
  }
  if (HandshakeState* held = handshake()) {
    HandshakeState& h = *held;
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
    head = std::string_view(h.buf).substr(0, pos + 4);
    consumed_from_data = head.size() - old;
  }
  const std::size_t header_len = head.size();
  // Bytes after the request head belong to the WebSocket stream (a client may
  // pipeline its first frames behind the upgrade request) or are the body of
  // an HTTP request.
  std::uint8_t* rest = data + consumed_from_data;
  std::size_t rest_len = len - consumed_from_data;

  wire::UpgradeRequest& up = request_scratch();
  RequestHeadParser parser(up);
  if (std::string error = parse_head(parser, head); !error.empty()) {
    refuse(400, error, HandshakeFailure::BadRequest);
    return;
  }
  // "/" is path()'s value without a RareState: only another target is stored.
  if (up.target != root_path()) rare_state().path.assign(up.target);
  path_known_ = true;
  const std::string& target = path();
  const std::string_view path_only = std::string_view(target).substr(0, target.find('?'));

  wire::UpgradeCheck check = wire::check_upgrade_request(up);
  switch (check.verdict) {
    case wire::UpgradeVerdict::NotUpgrade: {
      std::string allow;
      const HttpRoute* route = core().routes().find(up.method, path_only, allow);
      if (!route && allow.empty()) {
        refuse(404, "not found: " + std::string(path_only.substr(0, 200)), HandshakeFailure::NotFound);
        return;
      }
      if (!route) {
        refuse(405, "method not allowed; allowed: " + allow, HandshakeFailure::MethodNotAllowed,
               "Allow: " + allow + "\r\n");
        return;
      }
      const std::uint64_t body_len = parser.content_length().value_or(0);
      if (route->check_head && answer_head_check(*route, up, body_len)) return;
      if (parser.chunked()) {
        refuse(411, "a request body needs Content-Length (chunked is not accepted)", HandshakeFailure::LengthRequired);
        return;
      }
      const std::uint64_t cap = std::min<std::uint64_t>(
          route->max_body_bytes != 0 ? route->max_body_bytes : core().options().max_http_body_bytes, UINT32_MAX);
      if (body_len > cap) {
        refuse(413,
               "request body of " + std::to_string(body_len) + " bytes is over the limit of " + std::to_string(cap),
               HandshakeFailure::BodyTooLarge);
        return;
      }
      if (!handshake()) {
        rare_state().handshake = std::make_unique<HandshakeState>();
        handshake()->buf.assign(head);
      }
      HandshakeState& h = *handshake();
      h.buf.resize(header_len);  // anything read past the head is in rest
      h.route = route;
      h.header_len = static_cast<std::uint32_t>(header_len);
      h.body_len = static_cast<std::uint32_t>(body_len);
      read_request_body(rest, rest_len);
      return;
    }
    case wire::UpgradeVerdict::BadRequest:
      refuse(400, check.reason, HandshakeFailure::BadRequest);
      return;
    case wire::UpgradeVerdict::BadVersion:
      refuse(426, check.reason, HandshakeFailure::BadVersion, "Sec-WebSocket-Version: 13\r\n");
      return;
    case wire::UpgradeVerdict::Upgrade:
      if (metrics_only_) {
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
  adm.draining = core().draining();
  // Reserve the slot first and let the policy judge the counts as they were
  // before this connection: one mechanism for every refusal, and two loops
  // admitting at once cannot both take the last slot.
  const std::string ip = remote_ip();
  core().admission().reserve(ip, adm.open_connections, adm.open_from_ip);
  AdmissionDecision decision = core().policy().decide(adm);
  if (!decision.accept) {
    core().admission().release(ip);
    refuse(decision.status, decision.reason, decision.failure, decision.extra_headers);
    return;
  }
  counted_open_ = true;  // from here on finish() releases the admission
  std::string subprotocol = decision.subprotocol;

  if (core().handlers().on_upgrade) {
    UpgradeInfo info;
    info.path = path_only;
    const auto qpos = target.find('?');
    info.query = qpos == std::string::npos ? std::string_view() : std::string_view(target).substr(qpos + 1);
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
    if (!guarded("on_upgrade", [&] { hook = core().handlers().on_upgrade(info); })) {
      counted_open_ = false;
      core().admission().release(ip);
      refuse(500, "internal error", HandshakeFailure::HookFailed);
      return;
    }
    if (!hook.accept) {
      counted_open_ = false;
      core().admission().release(ip);
      unsigned status = hook.status >= 400 && hook.status <= 599 ? hook.status : 403;
      if (hook.failure_label.empty()) {
        refuse(status, hook.reason.empty() ? "refused" : hook.reason, HandshakeFailure::RefusedByHook);
      } else {
        core().count_labeled_refusal(hook.failure_label);
        refuse(status, hook.reason.empty() ? "refused" : hook.reason, HandshakeFailure::Count);
      }
      return;
    }
    if (!hook.subprotocol.empty()) subprotocol = hook.subprotocol;
    user_data = std::move(hook.user_data);
  }

  std::string extensions;
  if (core().deflate_config().enabled) {
    std::string_view offers = up.header("Sec-WebSocket-Extensions", scratch_ext);
    if (!offers.empty()) {
      if (auto neg = wire::negotiate_deflate(offers, core().deflate_config())) {
        rare_state().deflate =
            std::make_unique<wire::PerMessageDeflate>(wire::Role::Server, neg->params, core().deflate_config().level);
        extensions = neg->response;
      }
    }
  }
  if (!subprotocol.empty()) rare_state().subprotocol.assign(subprotocol);
  // The 101 is written straight into the send queue (a pooled chunk), with
  // the accept key on the stack: no heap string per upgrade.
  wire::AcceptKey accept;
  wire::compute_accept_key(check.key, accept);
  const std::string_view accept_view(accept.data(), accept.size());
  const std::size_t response_len = wire::accept_response_size(accept_view, subprotocol, extensions);
  char stack_response[512];
  if (response_len <= sizeof stack_response && queue_.empty() && transport().writes_through()) {
    // Plain TCP: the 101 leaves now, from the stack. Queued, it would hold a
    // pooled chunk until the end of the batch, and an accept burst would
    // leave the loop's pool holding hundreds of them.
    const iovec iov{stack_response, wire::write_accept_response(stack_response, accept_view, subprotocol, extensions)};
    write_through(&iov, 1);
  } else {
    std::uint8_t* p = queue_.reserve(loop_.pool(), response_len);
    queue_.commit(wire::write_accept_response(reinterpret_cast<char*>(p), accept_view, subprotocol, extensions));
    note_queue_bytes();
    mark_dirty();
  }
  end_handshake();  // check.key and the request views point into its buffer (or the read buffer) until here
  complete_upgrade(rest, rest_len);
}

void Connection::complete_upgrade(std::uint8_t* rest, std::size_t rest_len) {
  state_ = State::Open;
  {
    std::lock_guard lock(loop_.foreign_mutex());
    foreign_closed_ = false;  // other threads may send from here on
  }
  parser_.set_limits(limits_for(core().options(), compressed()));
  loop_.counters().connections_total.inc();
  loop_.counters().connections_active.inc();
  ops::logger().info("event=open id={} remote={} path={} subprotocol={} compression={}", id_, remote_address_, path(),
                     subprotocol().empty() ? "-" : subprotocol(), compressed() ? "deflate" : "none");
  if (core().handlers().on_open) guarded("on_open", [&] { core().handlers().on_open(*this); });
  if (rest_len > 0 && state_ == State::Open) parser_.consume(rest, rest_len, *this);
}

// ---------------------------------------------------------------- HTTP routes

void Connection::read_request_body(std::uint8_t* data, std::size_t len) {
  HandshakeState& h = *handshake();
  const std::size_t want = std::size_t{h.header_len} + h.body_len - h.buf.size();
  // Bytes past the body (a pipelined second request) are ignored: the
  // connection closes after this response.
  h.buf.append(reinterpret_cast<const char*>(data), std::min(len, want));
  if (h.buf.size() == std::size_t{h.header_len} + h.body_len) serve_route();
}

namespace {
// The request as handlers see it; views into up (and the scratches, which
// the header lookups fill) that live while the caller's locals do.
HttpRequest make_request(const wire::UpgradeRequest& up, std::string_view remote_address,
                         std::vector<std::string>& scratches) {
  const std::string_view target = up.target;
  const auto qpos = target.find('?');
  HttpRequest req;
  req.method = up.method;
  req.path = target.substr(0, qpos);
  req.query = qpos == std::string_view::npos ? std::string_view() : target.substr(qpos + 1);
  req.remote_address = remote_address;
  scratches.reserve(32);
  req.header = [&up, &scratches](std::string_view name) -> std::string_view {
    scratches.emplace_back();
    return up.header(name, scratches.back());
  };
  return req;
}
}  // namespace

// The route's check on the head; true when it answered (the request is done).
bool Connection::answer_head_check(const HttpRoute& route, const wire::UpgradeRequest& up, std::uint64_t body_len) {
  std::vector<std::string> scratches;
  HttpRequest req = make_request(up, remote_address_, scratches);
  req.content_length = body_len;
  std::optional<HttpResponse> answer;
  try {
    answer = route.check_head(req);
  } catch (const std::exception& e) {
    ops::logger().error("event=handler_exception id={} remote={} handler=http_head_check path={} what=\"{}\"", id_,
                        remote_address_, req.path, e.what());
    answer = HttpResponse{0, {}, {}, {}};  // answered 500 below
  } catch (...) {
    answer = HttpResponse{0, {}, {}, {}};
  }
  if (!answer) return false;
  std::string response;
  if (answer->status >= 100 && answer->status <= 599) response = make_http_response(*answer);
  if (response.empty()) {
    loop_.counters().errors[static_cast<std::size_t>(ErrorKind::HandlerException)].inc();
    ops::logger().error("event=http_route_failed remote={} path={} reason=\"head check failed\"", remote_address_,
                        path());
    close_code_ = 1006;
    set_close_reason("head check failed");
    respond_and_close(wire::make_error_response(500, "internal error"));
    return true;
  }
  if (req.method == "HEAD") response.erase(response.find("\r\n\r\n") + 4);
  close_code_ = 1006;
  set_close_reason("answered by the route's head check");
  respond_and_close(response);  // the body, if any, is drained unread
  return true;
}

void Connection::serve_route() {
  HandshakeState& h = *handshake();
  if (h.answer_pending) return;  // bytes after the body: ignored while the answer is on its way
  wire::UpgradeRequest& up = request_scratch();
  RequestHeadParser parser(up);
  parse_head(parser, std::string_view(h.buf).substr(0, h.header_len));  // parsed once already: cannot fail
  std::vector<std::string> scratches;
  HttpRequest req = make_request(up, remote_address_, scratches);
  req.body = std::string_view(h.buf).substr(h.header_len);
  req.content_length = h.body_len;
  const bool head = req.method == "HEAD";
  if (h.route->async_handler) {
    h.answer_pending = true;
    // One answer only: the first call posts it to this loop, where
    // answer_route() sends it if the connection still waits.
    auto answered = std::make_shared<std::atomic<bool>>(false);
    HttpReply reply = [answered, weak = weak_from_this(), core = &core(), loop = loop_index()](HttpResponse r) {
      if (answered->exchange(true)) return;
      core->post(loop, [weak, r = std::move(r)] {
        if (auto c = weak.lock()) c->answer_route(r);
      });
    };
    try {
      h.route->async_handler(req, reply);
    } catch (const std::exception& e) {
      ops::logger().error("event=handler_exception id={} remote={} handler=http_route path={} what=\"{}\"", id_,
                          remote_address_, req.path, e.what());
      if (!answered->exchange(true)) send_route_response(HttpResponse{0, {}, {}, {}}, head);
    } catch (...) {
      if (!answered->exchange(true)) send_route_response(HttpResponse{0, {}, {}, {}}, head);
    }
    return;
  }
  HttpResponse r{0, {}, {}, {}};  // status 0: answered 500 below
  try {
    r = h.route->handler(req);
  } catch (const std::exception& e) {
    ops::logger().error("event=handler_exception id={} remote={} handler=http_route path={} what=\"{}\"", id_,
                        remote_address_, req.path, e.what());
  } catch (...) {
  }
  send_route_response(r, head);
}

void Connection::answer_route(const HttpResponse& response) {
  HandshakeState* h = handshake();
  if (state_ != State::Handshake || !h || !h->answer_pending) return;
  // The method decides whether the body goes out; the head is still in buf.
  const bool head = std::string_view(h->buf).starts_with("HEAD ");
  send_route_response(response, head);
}

// Sends a handler's response, or 500 when it is not a valid one (status 0
// stands for "the handler threw").
void Connection::send_route_response(const HttpResponse& r, bool head) {
  std::string response;
  const char* failure = nullptr;
  if (r.status < 100 || r.status > 599) {
    failure = r.status == 0 ? "handler threw" : "handler returned an invalid status";
  } else {
    response = make_http_response(r);
    if (response.empty()) failure = "handler returned a header with a line break";
  }
  if (failure) {
    loop_.counters().errors[static_cast<std::size_t>(ErrorKind::HandlerException)].inc();
    ops::logger().error("event=http_route_failed remote={} path={} reason=\"{}\"", remote_address_, path(), failure);
    close_code_ = 1006;
    set_close_reason(failure);
    respond_and_close(wire::make_error_response(500, "internal error"));
    return;
  }
  if (head) response.erase(response.find("\r\n\r\n") + 4);  // same head, no body
  respond_and_close(response);
}

void Connection::refuse(unsigned status, std::string_view reason, HandshakeFailure why, std::string_view extra) {
  // HandshakeFailure::Count: already counted under the accept hook's own label.
  if (why != HandshakeFailure::Count) loop_.counters().handshake_failures[static_cast<std::size_t>(why)].inc();
  // A request refused before its head was parsed has no path to log.
  const std::string_view path = path_known_ ? std::string_view(this->path()) : std::string_view();
  if (why == HandshakeFailure::NotFound) {
    ops::logger().info("event=http status={} remote={} path={}", status, remote_address_, path);
  } else {
    ops::logger().warn("event=handshake_refused status={} reason=\"{}\" remote={} path={}", status, reason,
                       remote_address_, path);
  }
  close_code_ = 1006;
  set_close_reason(reason);
  respond_and_close(wire::make_error_response(status, reason, extra));
}

// Queues a whole HTTP response; after it has left, our side is shut down and
// the connection drains until the peer closes (bounded by close_timeout).
void Connection::respond_and_close(std::string_view response) {
  end_handshake();
  std::uint8_t* p = queue_.reserve(loop_.pool(), response.size());
  std::memcpy(p, response.data(), response.size());
  queue_.commit(response.size());
  note_queue_bytes();
  state_ = State::Closing;
  close_sent_ = true;
  failed_ = true;
  timer_ms_ = clock32(loop_.now_ms());
  mark_dirty();
}

}  // namespace conduit::server
