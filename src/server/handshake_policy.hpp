// Admission decisions taken before the 101, as a pure function of the request
// and the server's counts, so every rule is testable without sockets.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/options.hpp"
#include "server/failures.hpp"

namespace conduit::server {

struct AdmissionRequest {
  std::string_view origin;                // empty when the request has none
  std::vector<std::string_view> offered;  // Sec-WebSocket-Protocol tokens, client order
  bool draining = false;
  std::size_t open_connections = 0;  // server-wide, before this one
  std::size_t open_from_ip = 0;      // from this client's address, before this one
};

struct AdmissionDecision {
  bool accept = false;
  unsigned status = 0;  // when refused: 400, 403 or 503
  std::string reason;   // when refused: one line for body and log
  HandshakeFailure failure = HandshakeFailure::BadRequest;
  std::string extra_headers;  // e.g. "Retry-After: 5\r\n"
  std::string subprotocol;    // when accepted: "" = none
};

class HandshakePolicy {
 public:
  explicit HandshakePolicy(const ServerOptions& options);

  AdmissionDecision decide(const AdmissionRequest& req) const;

  // allowed_origins: exact origins ("https://app.example.com", compared
  // case-insensitively) or host wildcards ("*.example.com", any scheme and
  // port, at least one label before the suffix). Empty list = allow all. A
  // request without Origin is refused when a list is configured: browsers
  // always send it, and a list exists to keep other sites' pages out.
  bool origin_allowed(std::string_view origin) const;
  // The server's most preferred protocol among those offered, or "".
  std::string select_subprotocol(const std::vector<std::string_view>& offered) const;

 private:
  std::vector<std::string> exact_origins_;      // lower-cased
  std::vector<std::string> wildcard_suffixes_;  // lower-cased ".example.com"
  std::vector<std::string> subprotocols_;
  bool require_subprotocol_;
  std::size_t max_connections_;
  std::size_t max_per_ip_;
  unsigned retry_after_;
};

}  // namespace conduit::server
