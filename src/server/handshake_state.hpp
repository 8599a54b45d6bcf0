// What a connection keeps while its opening handshake is in progress; freed
// once the upgrade or the HTTP response is done (GUIDE rule 1: an open,
// idle connection holds no request bytes).
#pragma once
#include <cstddef>
#include <string>

namespace conduit::server {

struct HttpRoute;

struct HandshakeState {
  std::string buf;  // the request head, then (for an HTTP route) its body
  // Set once the head of a request to an HTTP route with a body is parsed:
  // the route, where the body starts in buf and how long it is.
  const HttpRoute* route = nullptr;
  std::size_t header_len = 0;
  std::size_t body_len = 0;
};

}  // namespace conduit::server
