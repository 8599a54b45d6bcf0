// HTTP routes served on the server's port(s) next to WebSocket upgrades.
//
// A plain HTTP request (one that is not a WebSocket upgrade) is matched
// against the route table: exact paths first, then the longest matching
// prefix. The built-in routes (/healthz, /readyz, /metrics) are entries of
// the same table. Each connection serves one request and is then closed
// (Connection: close), which is what probes, scrapers and webhook callers do.
//
// Refusals, in the order they are checked (the body of each is one line):
//   404  no route matches the path
//   405  a route matches the path but not the method (Allow lists the methods)
//   411  the request has a body without Content-Length (chunked is not accepted)
//   413  Content-Length is above ServerOptions::max_http_body_bytes (sent
//        without reading the body)
//   500  the handler threw
// Every refusal is counted in conduit_handshake_failures_total{reason} and
// logged; docs/errors.md lists them.
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace conduit {

struct HttpRequest {
  std::string_view method;  // as sent, e.g. "GET"
  std::string_view path;    // target without the query
  std::string_view query;   // after '?', may be empty
  std::string_view body;    // the whole body (at most max_http_body_bytes)
  std::string_view remote_address;
  std::function<std::string_view(std::string_view name)> header;  // case-insensitive; "" when absent
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "text/plain";
  // Extra header lines, e.g. {"Retry-After", "5"}. Content-Length (except
  // in a 304, which has no body), Cache-Control and Connection: close are
  // always added.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The Cache-Control value. no-store by default: an answer computed per
  // request (health, metrics, API) must not be replayed from a cache. Static
  // content may say e.g. "no-cache" (revalidate with its ETag) instead.
  // (Last, so that HttpResponse{status, type, headers, body} keeps meaning that.)
  std::string cache_control = "no-store";
};

// Runs on the event-loop thread that read the request: keep it short (no
// blocking I/O); hand long work to another thread.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

enum class PathMatch : unsigned char {
  Exact,   // the path equals HttpRoute::path
  Prefix,  // the path starts with HttpRoute::path (e.g. "/api/")
};

struct HttpRoute {
  // "GET", "POST", ... (exact, case-sensitive as HTTP says). A GET route also
  // answers HEAD: its handler runs (HttpRequest::method is "HEAD") and the
  // response goes out without its body.
  std::string method;
  std::string path;
  PathMatch match = PathMatch::Exact;
  HttpHandler handler;
};

}  // namespace conduit
