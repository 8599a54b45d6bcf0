// What a connection needs only in some cases, kept out of the Connection
// object: idle connections are the server's memory floor, and most of them
// are plain ws:// connections to "/" without subprotocol or compression. A
// connection allocates its RareState the first time it needs one of these
// and keeps it until it is destroyed; most connections never allocate one.
#pragma once
#include <memory>
#include <string>

#include "server/handshake_state.hpp"
#include "server/transport.hpp"
#include "wire/deflate.hpp"

namespace conduit::server {

// What path(), subprotocol() and the close reason read as without a RareState.
inline const std::string& empty_string() noexcept {
  static const std::string e;
  return e;
}
inline const std::string& root_path() noexcept {
  static const std::string root = "/";
  return root;
}

struct RareState {
  // A request head split across reads, or an HTTP route's body: freed after
  // the response or the upgrade.
  std::unique_ptr<HandshakeState> handshake;
  std::unique_ptr<wire::PerMessageDeflate> deflate;  // permessage-deflate, when negotiated
  TransportPtr tls;                                  // null for a plain connection
  std::string path;                                  // the request target when it is not "/" (empty: "/")
  std::string subprotocol;                           // the negotiated subprotocol
  std::string close_reason;                          // the close reason to report, when not empty
};

}  // namespace conduit::server
