// What a connection keeps while its opening handshake is in progress; freed
// once the upgrade or the HTTP response is done (no per-connection buffer while idle: an open,
// idle connection holds no request bytes).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace conduit::server {

struct HttpRoute;

struct HandshakeState {
  std::string buf;  // the request head, then (for an HTTP route) its body
  // Set once the head of a request to an HTTP route is parsed: the route,
  // where the body starts in buf and how long it is. 32-bit lengths: heads
  // are at most 16 KiB, bodies at most max_http_body_bytes (and 4 GiB), and
  // every connection in its handshake holds one of these.
  const HttpRoute* route = nullptr;
  std::uint32_t header_len = 0;
  std::uint32_t body_len = 0;
  // The route's asynchronous handler runs: input is ignored until its reply.
  bool answer_pending = false;
};

}  // namespace conduit::server
