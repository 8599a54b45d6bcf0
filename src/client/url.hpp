// ws:// and wss:// URL parsing for the client (RFC 6455 §3): scheme, host
// (name, IPv4, or [IPv6] literal), port, and the request target.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace conduit::client_detail {

struct WsUrl {
  bool secure = false;       // wss
  std::string host;          // without brackets: "::1", "example.com"
  std::uint16_t port = 80;   // explicit or the scheme's default (80/443)
  std::string target = "/";  // path + "?" + query, never empty
  std::string host_header;   // Host: value ("[::1]:8080", "example.com")
  bool host_is_ip = false;   // literal address: no SNI, IP-address certificate check
};

// nullopt for anything that is not a valid ws/wss URL (including fragments,
// which RFC 6455 §3 forbids, and user-info, which we do not support).
std::optional<WsUrl> parse_ws_url(std::string_view url);

}  // namespace conduit::client_detail
