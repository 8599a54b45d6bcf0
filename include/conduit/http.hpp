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
//        (never for a route whose method is "*": it takes every method)
//   ---  the route's check_head, if any, may answer here (its own response)
//   411  the request has a body without Content-Length (chunked is not accepted)
//   413  Content-Length is above the route's max_body_bytes, or when that is
//        0 ServerOptions::max_http_body_bytes (sent without reading the body)
//   500  the handler threw
// Every refusal is counted in conduit_handshake_failures_total{reason} and
// logged; docs/errors.md lists them. (What check_head and the handler answer
// is the route's own business: they count and log their refusals.)
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace conduit {

struct HttpRequest {
  std::string_view method;           // as sent, e.g. "GET"
  std::string_view path;             // target without the query
  std::string_view query;            // after '?', may be empty
  std::string_view body;             // the whole body (at most max_http_body_bytes); empty in check_head
  std::uint64_t content_length = 0;  // Content-Length (0 when absent), also in check_head
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

// An asynchronous handler answers later, from any thread, by calling the
// HttpReply it is given: exactly once (later calls do nothing). Until then
// the request waits, bounded by ServerOptions::handshake_timeout (the
// connection is then closed without an answer, and a late reply does
// nothing). The request's views are valid only during the handler's call:
// copy what the answer needs. The reply must be called before the Server is
// destroyed. What it is for: answers that wait on another system (e.g. a
// publish that goes through Redis) without blocking the event loop.
using HttpReply = std::function<void(HttpResponse)>;
using HttpAsyncHandler = std::function<void(const HttpRequest&, HttpReply reply)>;

// Runs on the request head, before the body is read (HttpRequest::body is
// empty, content_length says how long it is): a response answers the request
// without reading the body; nullopt lets it go on to the size checks and the
// handler. Same thread and rules as HttpHandler. What it is for: refusing an
// unauthorised caller (401) before the size of its body is judged (413), so
// that a caller without credentials learns nothing about the limits.
using HttpHeadCheck = std::function<std::optional<HttpResponse>(const HttpRequest&)>;

enum class PathMatch : unsigned char {
  Exact,   // the path equals HttpRoute::path
  Prefix,  // the path starts with HttpRoute::path (e.g. "/api/")
};

struct HttpRoute {
  // "GET", "POST", ... (exact, case-sensitive as HTTP says). A GET route also
  // answers HEAD: its handler runs (HttpRequest::method is "HEAD") and the
  // response goes out without its body. "*" takes every method (a route that
  // answers a wrong method itself, e.g. with a body in its own format); a
  // route with the exact method is preferred over it.
  std::string method;
  std::string path;
  PathMatch match = PathMatch::Exact;
  HttpHandler handler;
  // Instead of handler (one of the two is required; with both, this one is
  // used): see HttpAsyncHandler.
  HttpAsyncHandler async_handler;
  // Optional: see HttpHeadCheck.
  HttpHeadCheck check_head;
  // Largest body accepted by this route; 0 = ServerOptions::max_http_body_bytes.
  std::size_t max_body_bytes = 0;
};

}  // namespace conduit
