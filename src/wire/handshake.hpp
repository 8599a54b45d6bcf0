// RFC 6455 §4 opening handshake: request validation, accept key, responses.
// Works on already-parsed header views (HTTP parsing is Beast's job in
// src/server); no I/O here.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace conduit::wire {

inline constexpr std::string_view websocket_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

struct HeaderField {
  std::string_view name;
  std::string_view value;
};

struct UpgradeRequest {
  std::string_view method;
  unsigned version = 11;  // 10 = HTTP/1.0, 11 = HTTP/1.1
  std::string_view target;
  std::vector<HeaderField> headers;

  // Case-insensitive lookup; several fields of one name are joined with ", "
  // into scratch and a view of it is returned. Empty when absent.
  std::string_view header(std::string_view name, std::string& scratch) const;
  bool has_header(std::string_view name) const;
};

enum class UpgradeVerdict : std::uint8_t {
  Upgrade,     // valid WebSocket upgrade
  NotUpgrade,  // plain HTTP request (no Upgrade: websocket) → routes / 404
  BadRequest,  // 400 with reason
  BadVersion,  // 426 with Sec-WebSocket-Version: 13
};

struct UpgradeCheck {
  UpgradeVerdict verdict = UpgradeVerdict::BadRequest;
  std::string reason;  // one line, for the 400 body and the log
  // Sec-WebSocket-Key when verdict == Upgrade: a view into the request's
  // field, valid as long as the request's bytes are.
  std::string_view key;
};

// Validates method GET, HTTP/1.1 (or later), Host present, Upgrade contains the
// token "websocket" and Connection the token "upgrade" (case-insensitive, as
// comma-separated list tokens), Sec-WebSocket-Key base64-decoding to exactly
// 16 bytes, Sec-WebSocket-Version 13.
UpgradeCheck check_upgrade_request(const UpgradeRequest& req);

// base64(SHA-1(key + GUID)), OpenSSL SHA-1: always 28 characters. The
// array form writes into the caller's storage (the server builds its 101
// without a heap string).
using AcceptKey = std::array<char, 28>;
void compute_accept_key(std::string_view client_key, AcceptKey& out);
std::string compute_accept_key(std::string_view client_key);
// 16 random bytes (OpenSSL RAND_bytes), base64.
std::string generate_client_key();

// Comma-separated header list helpers (RFC 7230 #rule, OWS trimmed).
bool header_has_token(std::string_view value, std::string_view token);  // case-insensitive
std::vector<std::string_view> split_list(std::string_view value);

std::string base64_encode(const std::uint8_t* data, std::size_t len);
// Returns false on malformed input (bad characters, bad padding). The
// buffer form also fails when the result would not fit in capacity bytes.
bool base64_decode(std::string_view in, std::string& out);
bool base64_decode(std::string_view in, std::uint8_t* out, std::size_t capacity, std::size_t& out_len);

// "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection,
// Sec-WebSocket-Accept and, when non-empty, Sec-WebSocket-Protocol and
// Sec-WebSocket-Extensions.
std::string make_accept_response(std::string_view accept_key, std::string_view subprotocol,
                                 std::string_view extensions);
// The same response written into caller storage of accept_response_size()
// bytes; returns the bytes written.
std::size_t accept_response_size(std::string_view accept_key, std::string_view subprotocol,
                                 std::string_view extensions) noexcept;
std::size_t write_accept_response(char* out, std::string_view accept_key, std::string_view subprotocol,
                                  std::string_view extensions) noexcept;
// Error response with a text/plain body of reason + "\n", Connection: close,
// Content-Length; extra_headers are "Name: value\r\n" lines added verbatim.
std::string make_error_response(unsigned status, std::string_view reason, std::string_view extra_headers = {});
std::string_view status_text(unsigned status);

// Client side: the GET request for host[:port] and target, with key, offered
// subprotocols (comma-joined), extension offer, and extra "Name: value\r\n" lines.
std::string make_client_request(std::string_view host_header, std::string_view target, std::string_view key,
                                const std::vector<std::string>& subprotocols, std::string_view extensions,
                                std::string_view extra_headers);

}  // namespace conduit::wire
