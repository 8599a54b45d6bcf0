#include "server/http_routes.hpp"

#include "wire/handshake.hpp"

namespace conduit::server {
namespace {
bool matches(const HttpRoute& r, std::string_view path) {
  return r.match == PathMatch::Exact ? path == r.path : path.substr(0, r.path.size()) == r.path;
}
bool has_line_break(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }
}  // namespace

void RouteTable::add(conduit::HttpRoute route) {
  for (auto& r : routes_) {
    if (r.method == route.method && r.path == route.path && r.match == route.match) {
      static_cast<conduit::HttpRoute&>(r) = std::move(route);
      return;
    }
  }
  routes_.emplace_back();
  static_cast<conduit::HttpRoute&>(routes_.back()) = std::move(route);
}

const HttpRoute* RouteTable::find(std::string_view method, std::string_view path, std::string& allow) const {
  // The best path match decides which routes are candidates: every exact
  // route for the path, else every route of the longest matching prefix.
  const HttpRoute* best = nullptr;
  for (const auto& r : routes_) {
    if (!matches(r, path)) continue;
    if (!best || (r.match == PathMatch::Exact && best->match == PathMatch::Prefix) ||
        (r.match == best->match && r.path.size() > best->path.size())) {
      best = &r;
    }
  }
  allow.clear();
  if (!best) return nullptr;
  const HttpRoute* any_method = nullptr;
  for (const auto& r : routes_) {
    if (r.match != best->match || r.path != best->path) continue;
    // HEAD is GET without the body (the connection drops the body).
    if (r.method == method || (method == "HEAD" && r.method == "GET")) return &r;
    if (r.method == "*") {
      any_method = &r;
      continue;
    }
    if (!allow.empty()) allow += ", ";
    allow += r.method;
  }
  return any_method;
}

std::string make_http_response(const conduit::HttpResponse& r) {
  if (has_line_break(r.content_type) || has_line_break(r.cache_control)) return {};
  for (const auto& [name, value] : r.headers) {
    if (name.empty() || has_line_break(name) || has_line_break(value) || name.find(':') != std::string::npos) return {};
  }
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(wire::status_text(r.status));
  out += "\r\nContent-Type: " + r.content_type;
  // A 304 has no body, and its Content-Length would have to be that of the
  // 200 it stands for (RFC 9110 §8.6): leave both out.
  const bool not_modified = r.status == 304;
  if (!not_modified) out += "\r\nContent-Length: " + std::to_string(r.body.size());
  out += "\r\nCache-Control: " + r.cache_control + "\r\nConnection: close\r\n";
  for (const auto& [name, value] : r.headers) out += name + ": " + value + "\r\n";
  out += "\r\n";
  if (!not_modified) out += r.body;
  return out;
}

}  // namespace conduit::server
