// Client failures as an enum with a std::error_category, so each one is both a
// typed value to switch on and a std::error_code to log or propagate.
// docs/errors-client.md maps every value to its cause and fix.
#pragma once
#include <string>
#include <system_error>

namespace conduit {

enum class ClientError : int {
  // 0 is reserved for "no error" (std::error_code convention).
  invalid_url = 1,         // not ws://host[:port][/path][?query] or wss://...
  dns_failure,             // host name did not resolve
  connection_refused,      // TCP RST on connect: nothing listens on that port
  connection_reset,        // TCP RST on an established connection
  connection_aborted,      // connection dropped without a close frame (EOF, abort)
  network_unreachable,     // no route to the host
  connect_timeout,         // TCP connect (all resolved addresses) took longer than connect_timeout
  tls_failure,             // TLS handshake or record error; the detail has the OpenSSL reason
  handshake_timeout,       // TLS + HTTP upgrade took longer than handshake_timeout
  handshake_rejected,      // the server answered a status other than 101 (status and body kept)
  bad_handshake_response,  // 101 without Upgrade: websocket / Connection: upgrade, or unparsable HTTP
  bad_accept_key,          // Sec-WebSocket-Accept does not match our key
  unexpected_subprotocol,  // the server selected a subprotocol we did not offer
  unexpected_extension,    // the server enabled an extension we did not offer
  message_too_big,         // a received message exceeded max_message_bytes (we closed with 1009)
  protocol_error,          // the server broke RFC 6455 framing (we closed with 1002)
  invalid_payload,         // invalid UTF-8 in a text message or close reason (we closed with 1007)
  pong_timeout,            // no frame within pong_timeout after our ping: the path is dead
  closed_by_server,        // the server closed with a code other than 1000 (code and reason kept)
  offline_queue_full,      // send() while offline and the message does not fit offline_queue_bytes
  send_queue_full,         // send() while open and more than send_queue_bytes are waiting to be written
  not_open,                // read() on a client that is closed for good
  max_attempts_reached,    // reconnect gave up after max_attempts consecutive failures
  operation_aborted,       // the client was closed/destroyed while the operation was pending
};

const std::error_category& client_category() noexcept;

inline std::error_code make_error_code(ClientError e) noexcept { return {static_cast<int>(e), client_category()}; }

// Short stable name of a value ("connection_refused"), for logs and metrics labels.
const char* to_string(ClientError e) noexcept;

}  // namespace conduit

template <>
struct std::is_error_code_enum<conduit::ClientError> : std::true_type {};
