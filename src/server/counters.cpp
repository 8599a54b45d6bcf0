#include "server/counters.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <functional>
#include <sstream>

namespace conduit::server {

const char* to_string(HandshakeFailure f) noexcept {
  switch (f) {
    case HandshakeFailure::BadRequest:
      return "bad_request";
    case HandshakeFailure::BadVersion:
      return "bad_version";
    case HandshakeFailure::OriginRejected:
      return "origin";
    case HandshakeFailure::OverCapacity:
      return "max_connections";
    case HandshakeFailure::PerIpCapacity:
      return "max_connections_per_ip";
    case HandshakeFailure::ShuttingDown:
      return "shutting_down";
    case HandshakeFailure::NoSubprotocol:
      return "subprotocol";
    case HandshakeFailure::RefusedByHook:
      return "refused";
    case HandshakeFailure::HookFailed:
      return "hook_error";
    case HandshakeFailure::Timeout:
      return "timeout";
    case HandshakeFailure::HeaderTooLarge:
      return "header_too_large";
    case HandshakeFailure::NotFound:
      return "not_found";
    case HandshakeFailure::TlsFailure:
      return "tls";
    case HandshakeFailure::MethodNotAllowed:
      return "method_not_allowed";
    case HandshakeFailure::LengthRequired:
      return "length_required";
    case HandshakeFailure::BodyTooLarge:
      return "body_too_large";
    case HandshakeFailure::Count:
      break;
  }
  return "unknown";
}

const char* to_string(ErrorKind k) noexcept {
  switch (k) {
    case ErrorKind::ProtocolError:
      return "protocol_error";
    case ErrorKind::InvalidPayload:
      return "invalid_payload";
    case ErrorKind::MessageTooBig:
      return "message_too_big";
    case ErrorKind::ConnectionReset:
      return "connection_reset";
    case ErrorKind::PongTimeout:
      return "pong_timeout";
    case ErrorKind::CloseTimeout:
      return "close_timeout";
    case ErrorKind::SlowConsumer:
      return "slow_consumer";
    case ErrorKind::Tls:
      return "tls";
    case ErrorKind::HandlerException:
      return "handler_exception";
    case ErrorKind::AcceptFailed:
      return "accept_failed";
    case ErrorKind::Count:
      break;
  }
  return "unknown";
}

std::string render_metrics(const std::vector<const ServerCounters*>& loops,
                           const std::map<std::string, std::uint64_t, std::less<>>& labeled_refusals) {
  // member: a pointer to a Counter of ServerCounters, or a function giving one.
  auto sum = [&](auto member) {
    std::uint64_t total = 0;
    for (const ServerCounters* c : loops) total += std::invoke(member, *c).get();
    return static_cast<double>(total);
  };
  // A fresh registry per scrape: counters are owned by the loops (lock-free),
  // prometheus-cpp only formats the totals.
  prometheus::Registry registry;
  auto counter = [&](const char* name, const char* help, double value) {
    prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({}).Increment(value);
  };
  prometheus::BuildGauge()
      .Name("conduit_connections_active")
      .Help("Open WebSocket connections")
      .Register(registry)
      .Add({})
      .Set(sum(&ServerCounters::connections_active));
  counter("conduit_connections_total", "WebSocket connections accepted (after the 101)",
          sum(&ServerCounters::connections_total));
  counter("conduit_messages_received_total", "Messages received", sum(&ServerCounters::messages_received));
  counter("conduit_messages_sent_total", "Messages queued to peers", sum(&ServerCounters::messages_sent));
  counter("conduit_bytes_received_total", "Bytes read from sockets", sum(&ServerCounters::bytes_received));
  counter("conduit_bytes_sent_total", "Bytes written to sockets", sum(&ServerCounters::bytes_sent));
  counter("conduit_send_queue_overflows_total", "Times a send queue hit limits.send_queue_bytes",
          sum(&ServerCounters::send_queue_overflows));
  counter("conduit_messages_dropped_total", "Messages dropped by limits.slow_consumer = drop",
          sum(&ServerCounters::messages_dropped));
  counter("conduit_pings_sent_total", "Heartbeat pings sent", sum(&ServerCounters::pings_sent));
  counter("conduit_pong_timeouts_total", "Connections dropped for not answering a ping",
          sum(&ServerCounters::pong_timeouts));

  auto& hs = prometheus::BuildCounter()
                 .Name("conduit_handshake_failures_total")
                 .Help("Refused or failed opening handshakes by reason")
                 .Register(registry);
  for (std::size_t i = 0; i < static_cast<std::size_t>(HandshakeFailure::Count); ++i) {
    hs.Add({{"reason", to_string(static_cast<HandshakeFailure>(i))}})
        .Increment(sum([i](const ServerCounters& c) -> const Counter& { return c.handshake_failures[i]; }));
  }
  for (const auto& [label, count] : labeled_refusals) {
    hs.Add({{"reason", label}})
        .Increment(static_cast<double>(count));  // Family::Add returns the existing counter for a built-in reason
  }
  auto& errs = prometheus::BuildCounter().Name("conduit_errors_total").Help("Errors by kind").Register(registry);
  for (std::size_t i = 0; i < static_cast<std::size_t>(ErrorKind::Count); ++i) {
    errs.Add({{"kind", to_string(static_cast<ErrorKind>(i))}})
        .Increment(sum([i](const ServerCounters& c) -> const Counter& { return c.errors[i]; }));
  }
  auto& closes =
      prometheus::BuildCounter().Name("conduit_closes_total").Help("Connection ends by close code").Register(registry);
  for (std::size_t i = 0; i < 16; ++i) {
    double v = sum([i](const ServerCounters& c) -> const Counter& { return c.closes_1000[i]; });
    if (i == 6) v += sum(&ServerCounters::closes_abnormal);
    closes.Add({{"code", std::to_string(1000 + i)}}).Increment(v);
  }
  closes.Add({{"code", "other"}}).Increment(sum([](const ServerCounters& c) -> const Counter& {
    return c.closes_other;
  }));

  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  return out.str();
}

}  // namespace conduit::server
