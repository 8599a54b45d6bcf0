// A position in a channel's stream, shared by the server side
// (conduit/pubsub.hpp) and the client side (conduit/channel_client.hpp).
#pragma once
#include <cstdint>
#include <string>

namespace conduit {

// The offset of the channel's last publication (0 before the first) and the
// epoch it belongs to: a position a client can hand back to recover from.
// The same offset under another epoch means nothing.
struct StreamPosition {
  std::uint64_t offset = 0;
  std::string epoch;
  friend bool operator==(const StreamPosition&, const StreamPosition&) = default;
};

}  // namespace conduit
