#include <string>

#include "conduit/client.hpp"
#include "conduit/client_error.hpp"

namespace conduit {

namespace {

class ClientErrorCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "conduit.client"; }

  std::string message(int value) const override {
    switch (static_cast<ClientError>(value)) {
      case ClientError::invalid_url:
        return "invalid WebSocket URL (expected ws://host[:port][/path] or wss://...)";
      case ClientError::dns_failure:
        return "host name could not be resolved";
      case ClientError::connection_refused:
        return "connection refused (nothing listening on that address and port)";
      case ClientError::connection_reset:
        return "connection reset by the server";
      case ClientError::connection_aborted:
        return "connection lost without a close frame";
      case ClientError::network_unreachable:
        return "network or host unreachable";
      case ClientError::connect_timeout:
        return "TCP connect timed out";
      case ClientError::tls_failure:
        return "TLS failure";
      case ClientError::handshake_timeout:
        return "WebSocket handshake timed out";
      case ClientError::handshake_rejected:
        return "server refused the WebSocket upgrade";
      case ClientError::bad_handshake_response:
        return "invalid WebSocket upgrade response";
      case ClientError::bad_accept_key:
        return "Sec-WebSocket-Accept does not match the request key";
      case ClientError::unexpected_subprotocol:
        return "server selected a subprotocol that was not offered";
      case ClientError::unexpected_extension:
        return "server enabled an extension that was not offered";
      case ClientError::message_too_big:
        return "received message larger than max_message_bytes (closed with 1009)";
      case ClientError::protocol_error:
        return "server violated the WebSocket protocol (closed with 1002)";
      case ClientError::invalid_payload:
        return "server sent invalid UTF-8 (closed with 1007)";
      case ClientError::pong_timeout:
        return "no pong within pong_timeout: connection considered dead";
      case ClientError::closed_by_server:
        return "server closed the connection";
      case ClientError::offline_queue_full:
        return "offline queue full (offline_queue_bytes)";
      case ClientError::send_queue_full:
        return "send queue full (send_queue_bytes)";
      case ClientError::not_open:
        return "client is closed";
      case ClientError::max_attempts_reached:
        return "gave up reconnecting after max_attempts";
      case ClientError::operation_aborted:
        return "operation aborted: client closed";
    }
    return "unknown client error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& client_category() noexcept {
  static const ClientErrorCategory category;
  return category;
}

const char* to_string(ClientError e) noexcept {
  switch (e) {
    case ClientError::invalid_url:
      return "invalid_url";
    case ClientError::dns_failure:
      return "dns_failure";
    case ClientError::connection_refused:
      return "connection_refused";
    case ClientError::connection_reset:
      return "connection_reset";
    case ClientError::connection_aborted:
      return "connection_aborted";
    case ClientError::network_unreachable:
      return "network_unreachable";
    case ClientError::connect_timeout:
      return "connect_timeout";
    case ClientError::tls_failure:
      return "tls_failure";
    case ClientError::handshake_timeout:
      return "handshake_timeout";
    case ClientError::handshake_rejected:
      return "handshake_rejected";
    case ClientError::bad_handshake_response:
      return "bad_handshake_response";
    case ClientError::bad_accept_key:
      return "bad_accept_key";
    case ClientError::unexpected_subprotocol:
      return "unexpected_subprotocol";
    case ClientError::unexpected_extension:
      return "unexpected_extension";
    case ClientError::message_too_big:
      return "message_too_big";
    case ClientError::protocol_error:
      return "protocol_error";
    case ClientError::invalid_payload:
      return "invalid_payload";
    case ClientError::pong_timeout:
      return "pong_timeout";
    case ClientError::closed_by_server:
      return "closed_by_server";
    case ClientError::offline_queue_full:
      return "offline_queue_full";
    case ClientError::send_queue_full:
      return "send_queue_full";
    case ClientError::not_open:
      return "not_open";
    case ClientError::max_attempts_reached:
      return "max_attempts_reached";
    case ClientError::operation_aborted:
      return "operation_aborted";
  }
  return "unknown";
}

const char* to_string(ClientState s) noexcept {
  switch (s) {
    case ClientState::Idle:
      return "idle";
    case ClientState::Connecting:
      return "connecting";
    case ClientState::Open:
      return "open";
    case ClientState::Closing:
      return "closing";
    case ClientState::Reconnecting:
      return "reconnecting";
    case ClientState::Closed:
      return "closed";
  }
  return "unknown";
}

const char* to_string(PingPong p) noexcept {
  switch (p) {
    case PingPong::ping_sent:
      return "ping sent";
    case PingPong::ping_received:
      return "ping received";
    case PingPong::pong_sent:
      return "pong sent";
    case PingPong::pong_received:
      return "pong received";
  }
  return "unknown";
}

std::string ClientFailure::message() const {
  std::string out = code.message();
  if (http_status != 0) out += " (HTTP " + std::to_string(http_status) + ")";
  if (close_code != 0) out += " (close " + std::to_string(close_code) + ")";
  if (!detail.empty()) out += ": " + detail;
  return out;
}

}  // namespace conduit
