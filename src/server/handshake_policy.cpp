#include "server/handshake_policy.hpp"

#include <algorithm>
#include <cctype>

namespace conduit::server {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Host part of an origin "scheme://host[:port]" (IPv6 literals in brackets).
std::string_view origin_host(std::string_view origin) {
  auto scheme_end = origin.find("://");
  std::string_view rest = scheme_end == std::string_view::npos ? origin : origin.substr(scheme_end + 3);
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    return close == std::string_view::npos ? rest : rest.substr(0, close + 1);
  }
  auto colon = rest.find(':');
  auto slash = rest.find('/');
  return rest.substr(0, std::min(colon, slash));
}

}  // namespace

HandshakePolicy::HandshakePolicy(const ServerOptions& o)
    : subprotocols_(o.subprotocols),
      require_subprotocol_(o.require_subprotocol),
      max_connections_(o.max_connections),
      max_per_ip_(o.max_connections_per_ip),
      retry_after_(o.retry_after_seconds) {
  for (const std::string& entry : o.allowed_origins) {
    if (entry.size() > 2 && entry[0] == '*' && entry[1] == '.') {
      wildcard_suffixes_.push_back(lower(std::string_view(entry).substr(1)));
    } else {
      exact_origins_.push_back(lower(entry));
    }
  }
}

bool HandshakePolicy::origin_allowed(std::string_view origin) const {
  if (exact_origins_.empty() && wildcard_suffixes_.empty()) return true;
  if (origin.empty()) return false;
  std::string o = lower(origin);
  if (std::find(exact_origins_.begin(), exact_origins_.end(), o) != exact_origins_.end()) return true;
  std::string_view host = origin_host(o);
  for (const std::string& suffix : wildcard_suffixes_) {
    if (host.size() > suffix.size() && host.substr(host.size() - suffix.size()) == suffix) return true;
  }
  return false;
}

std::string HandshakePolicy::select_subprotocol(const std::vector<std::string_view>& offered) const {
  for (const std::string& mine : subprotocols_) {
    for (std::string_view theirs : offered) {
      if (theirs == mine) return mine;  // subprotocol tokens are case-sensitive (RFC 6455 §11.3.4)
    }
  }
  return {};
}

AdmissionDecision HandshakePolicy::decide(const AdmissionRequest& req) const {
  AdmissionDecision d;
  const std::string retry = "Retry-After: " + std::to_string(retry_after_) + "\r\n";
  if (req.draining) {
    d.status = 503;
    d.reason = "server is shutting down";
    d.failure = HandshakeFailure::ShuttingDown;
    d.extra_headers = retry;
    return d;
  }
  if (!origin_allowed(req.origin)) {
    d.status = 403;
    d.reason = req.origin.empty() ? "missing Origin (server.allowed_origins is set)"
                                  : "origin not allowed: " + std::string(req.origin.substr(0, 200));
    d.failure = HandshakeFailure::OriginRejected;
    return d;
  }
  if (max_connections_ > 0 && req.open_connections >= max_connections_) {
    d.status = 503;
    d.reason = "server at capacity (server.max_connections)";
    d.failure = HandshakeFailure::OverCapacity;
    d.extra_headers = retry;
    return d;
  }
  if (max_per_ip_ > 0 && req.open_from_ip >= max_per_ip_) {
    d.status = 503;
    d.reason = "too many connections from this address (server.max_connections_per_ip)";
    d.failure = HandshakeFailure::PerIpCapacity;
    d.extra_headers = retry;
    return d;
  }
  d.subprotocol = select_subprotocol(req.offered);
  if (d.subprotocol.empty() && require_subprotocol_) {
    d.status = 400;
    d.reason = req.offered.empty() ? "a subprotocol is required" : "no supported subprotocol offered";
    d.failure = HandshakeFailure::NoSubprotocol;
    return d;
  }
  d.accept = true;
  return d;
}

}  // namespace conduit::server
