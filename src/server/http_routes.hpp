// The server's HTTP route table: what a plain (non-upgrade) request gets.
// Filled before the server starts (built-in routes first, then the
// application's) and read-only afterwards, so lookups take no lock.
#pragma once
#include <deque>
#include <string>
#include <string_view>

#include "conduit/http.hpp"

namespace conduit::server {

// HttpRoute under the server's namespace, so connection.hpp can name it.
struct HttpRoute : conduit::HttpRoute {};

class RouteTable {
 public:
  // Adds route; a route with the same method, path and match replaces it
  // (so an application can override a built-in route).
  void add(conduit::HttpRoute route);
  // The route for method and path: an exact match first, else the longest
  // matching prefix; among that path's routes the one with the method, else
  // one with "*". nullptr when none; then allow lists the methods routed
  // for that path ("GET, POST"), empty when the path is unknown (404).
  const HttpRoute* find(std::string_view method, std::string_view path, std::string& allow) const;

 private:
  std::deque<HttpRoute> routes_;  // a deque: pointers stay valid as routes are added
};

// The whole response for r (status line, headers, body), or "" when the
// handler set a header with CR or LF in it (the caller answers 500).
std::string make_http_response(const conduit::HttpResponse& r);

}  // namespace conduit::server
