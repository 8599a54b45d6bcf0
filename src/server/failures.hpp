// Why an opening handshake failed and what went wrong on an open connection:
// the label sets of conduit_handshake_failures_total{reason} and
// conduit_errors_total{kind}. Kept apart from the counters so the admission
// policy can name a failure without knowing how it is counted.
#pragma once
#include <cstdint>

namespace conduit::server {

enum class HandshakeFailure : std::uint8_t {
  BadRequest,        // 400: malformed upgrade request
  BadVersion,        // 426
  OriginRejected,    // 403
  OverCapacity,      // 503: server.max_connections
  PerIpCapacity,     // 503: server.max_connections_per_ip
  ShuttingDown,      // 503
  NoSubprotocol,     // 400: server.require_subprotocol
  RefusedByHook,     // status chosen by the accept hook
  HookFailed,        // 500: the accept hook threw
  Timeout,           // server.handshake_timeout (slowloris)
  HeaderTooLarge,    // 431
  NotFound,          // 404 for a plain request to an unknown path
  TlsFailure,        // TLS handshake failed
  MethodNotAllowed,  // 405: an HTTP route's path with another method
  LengthRequired,    // 411: an HTTP request body without Content-Length
  BodyTooLarge,      // 413: an HTTP request body over max_http_body_bytes
  Count
};
const char* to_string(HandshakeFailure f) noexcept;

enum class ErrorKind : std::uint8_t {
  ProtocolError,    // 1002
  InvalidPayload,   // 1007
  MessageTooBig,    // 1009
  ConnectionReset,  // ECONNRESET / EPIPE / other socket errors
  PongTimeout,
  CloseTimeout,  // peer did not complete the close handshake
  SlowConsumer,  // send queue overflow → 1008
  Tls,
  HandlerException,  // an application handler threw → 1011 (or 500 from the accept hook)
  AcceptFailed,      // accept(2) failed (EMFILE, ENFILE, ENOBUFS...): retried after 100 ms
  Count
};
const char* to_string(ErrorKind k) noexcept;

}  // namespace conduit::server
