// The server's upgrade decision on raw request bytes: raw bytes → 101 or an
// HTTP error, never a crash. It runs the same steps, in the same order and with
// the same limits, as the server's handshake (src/server/connection.cpp,
// process_handshake): the 16 KiB header cap (431), Beast's request parser
// (400), wire::check_upgrade_request (400/426/not an upgrade → 404),
// server::HandshakePolicy (origin 403, subprotocol, capacity 503 +
// Retry-After), wire::negotiate_deflate, then the response builders. The glue
// is restated here because it lives inside the connection object today; once
// the upgrade is its own function in src/server, this target calls it instead.
//
// Checks on every response: one well-formed HTTP/1.1 response (Beast parses it,
// no bare CR or LF in the head, Content-Length equals the body); 101 only for a
// valid upgrade the policy admitted, with Sec-WebSocket-Accept equal to an
// independent SHA-1/base64 of the key, a subprotocol that the client offered and
// the server lists, and extension parameters in range.
//
// Input: byte 0 picks the server options (allowed origins, subprotocols,
// require_subprotocol, compression, at capacity, draining); the rest is what the
// client sent.
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "server/handshake_policy.hpp"
#include "wire/deflate.hpp"
#include "wire/handshake.hpp"

namespace http = boost::beast::http;
using namespace conduit;

namespace {

constexpr std::size_t kMaxRequestHeader = 16 * 1024;  // as the server's handshake

[[noreturn]] void fail(const char* what, std::string_view request, std::string_view response) {
  std::fprintf(stderr, "\nFUZZ INVARIANT (upgrade): %s\n--- request (%zu bytes)\n%.*s\n--- response\n%.*s\n", what,
               request.size(), static_cast<int>(std::min<std::size_t>(request.size(), 2000)), request.data(),
               static_cast<int>(response.size()), response.data());
  std::abort();
}

// base64(SHA-1(key + GUID)) with OpenSSL's own encoder, not wire's.
std::string reference_accept(std::string_view key) {
  std::string in = std::string(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  unsigned char out[64];
  int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
}

struct Reply {
  unsigned status = 0;  // 0: no response yet (the request is incomplete)
  std::string bytes;
  std::string key;                   // the client's key when status == 101
  std::vector<std::string> offered;  // copies: the request's views die with its parser
};

Reply decide(std::string_view raw, const ServerOptions& options, const wire::DeflateConfig& deflate, bool draining,
             std::size_t open_connections) {
  Reply r;
  std::string buf(raw.substr(0, kMaxRequestHeader));
  std::size_t pos = buf.find("\r\n\r\n");
  if (pos == std::string::npos) {
    if (buf.size() >= kMaxRequestHeader) {
      r.status = 431;
      r.bytes = wire::make_error_response(431, "request header too large");
    }
    return r;
  }
  http::request_parser<http::empty_body> parser;
  parser.header_limit(kMaxRequestHeader);
  parser.eager(false);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(buf.data(), pos + 4), ec);
  if (!parser.is_header_done() || (ec && ec != http::error::need_more && ec != http::error::unexpected_body)) {
    r.status = 400;
    r.bytes = wire::make_error_response(
        400, std::string("malformed HTTP request: ") + (ec ? ec.message() : "incomplete header"));
    return r;
  }
  const auto& req = parser.get();
  wire::UpgradeRequest up;
  up.method = req.method_string();
  up.version = req.version();
  up.target = req.target();
  for (const auto& field : req) up.headers.push_back({field.name_string(), field.value()});
  wire::UpgradeCheck check = wire::check_upgrade_request(up);
  switch (check.verdict) {
    case wire::UpgradeVerdict::NotUpgrade:
      r.status = 404;
      r.bytes = wire::make_error_response(404, "not found: " + std::string(up.target.substr(0, 200)));
      return r;
    case wire::UpgradeVerdict::BadRequest:
      r.status = 400;
      r.bytes = wire::make_error_response(400, check.reason);
      return r;
    case wire::UpgradeVerdict::BadVersion:
      r.status = 426;
      r.bytes = wire::make_error_response(426, check.reason, "Sec-WebSocket-Version: 13\r\n");
      return r;
    case wire::UpgradeVerdict::Upgrade:
      break;
  }
  std::string scratch_origin, scratch_proto, scratch_ext;
  server::AdmissionRequest adm;
  adm.origin = up.header("Origin", scratch_origin);
  for (std::string_view p : wire::split_list(up.header("Sec-WebSocket-Protocol", scratch_proto))) {
    adm.offered.push_back(p);
  }
  adm.draining = draining;
  adm.open_connections = open_connections;
  server::AdmissionDecision decision = server::HandshakePolicy(options).decide(adm);
  if (!decision.accept) {
    r.status = decision.status;
    r.bytes = wire::make_error_response(decision.status, decision.reason, decision.extra_headers);
    return r;
  }
  std::string extensions;
  if (deflate.enabled) {
    std::string_view offers = up.header("Sec-WebSocket-Extensions", scratch_ext);
    if (!offers.empty()) {
      if (auto neg = wire::negotiate_deflate(offers, deflate)) extensions = neg->response;
    }
  }
  r.status = 101;
  r.key = check.key;
  r.bytes = wire::make_accept_response(wire::compute_accept_key(check.key), decision.subprotocol, extensions);
  r.offered.assign(adm.offered.begin(), adm.offered.end());
  return r;
}

void check_response(const Reply& r, std::string_view request, const ServerOptions& options) {
  const std::string& b = r.bytes;
  const std::size_t head_end = b.find("\r\n\r\n");
  if (head_end == std::string::npos) fail("response without an end of head", request, b);
  for (std::size_t i = 0; i < head_end; ++i) {
    if (b[i] == '\r' && b[i + 1] != '\n') fail("bare CR in the response head", request, b);
    if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r')) fail("bare LF in the response head", request, b);
  }
  http::response_parser<http::string_body> parser;
  parser.eager(true);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(b.data(), b.size()), ec);
  if (ec || !parser.is_header_done()) fail("response does not parse as HTTP", request, b);
  const auto& res = parser.get();
  if (res.result_int() != r.status) fail("status line differs from the decision", request, b);
  if (r.status == 101) {
    if (res[http::field::sec_websocket_accept] != reference_accept(r.key))
      fail("wrong Sec-WebSocket-Accept", request, b);
    std::string_view proto = res[http::field::sec_websocket_protocol];
    if (!proto.empty()) {
      bool offered = false, listed = false;
      for (const std::string& o : r.offered) offered = offered || o == proto;
      for (const std::string& s : options.subprotocols) listed = listed || s == proto;
      if (!offered || !listed) fail("subprotocol not offered by the client or not listed by the server", request, b);
    } else if (options.require_subprotocol) {
      fail("101 without a subprotocol although one is required", request, b);
    }
    std::string_view ext = res[http::field::sec_websocket_extensions];
    if (!ext.empty()) {
      wire::DeflateConfig client;
      client.enabled = true;
      if (ext.substr(0, 18) != "permessage-deflate") fail("unknown extension in the 101", request, b);
      for (std::string_view bits_key : {"server_max_window_bits=", "client_max_window_bits="}) {
        auto at = ext.find(bits_key);
        if (at == std::string_view::npos) continue;
        int bits = std::atoi(std::string(ext.substr(at + bits_key.size(), 2)).c_str());
        if (bits < 8 || bits > 15) fail("window bits out of 8..15", request, b);
      }
    }
  } else {
    if (!parser.is_done()) fail("error response body shorter than its Content-Length", request, b);
    if (res.body().size() + head_end + 4 != b.size()) fail("bytes after the error response body", request, b);
    if (r.status < 400 || r.status > 599) fail("refusal with a non-error status", request, b);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t opts = data[0];
  ServerOptions options;
  if (opts & 1) options.allowed_origins = {"https://app.example", "*.example.com"};
  if (opts & 2) options.subprotocols = {"chat.v2", "chat"};
  options.require_subprotocol = (opts & 4) != 0;
  options.max_connections = 10;
  options.retry_after_seconds = 7;
  wire::DeflateConfig deflate;
  deflate.enabled = (opts & 8) != 0;
  deflate.server_no_context_takeover = (opts & 64) != 0;
  deflate.server_max_window_bits = (opts & 128) ? 10 : 15;
  const bool draining = (opts & 16) != 0;
  const std::size_t open = (opts & 32) ? 10 : 0;  // at capacity → 503

  std::string_view request(reinterpret_cast<const char*>(data + 1), size - 1);
  const Reply r = decide(request, options, deflate, draining, open);
  if (r.status == 0) {
    if (request.find("\r\n\r\n") != std::string_view::npos || request.size() >= kMaxRequestHeader) {
      fail("no response to a complete (or oversize) request", request, "");
    }
    return 0;
  }
  check_response(r, request, options);
  return 0;
}
