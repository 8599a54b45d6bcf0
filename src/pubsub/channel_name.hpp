// Channel names, namespaces and the per-channel options they resolve to.
//
// A channel name is 1..max_channel_length bytes from this set:
//   A-Z a-z 0-9 and  _ - . : @ / =
// Printable ASCII only: no spaces, no control bytes, nothing that needs
// escaping in JSON, a URL path or a log line. `*` is excluded on purpose: it
// is the wildcard of token permission patterns, and a channel literally named
// "chat:*" would be indistinguishable from the pattern.
//
// The namespace of a channel is the part before its first `:`
// ("chat:lobby" and "chat:room:7" are in namespace "chat"); a name without
// `:` is in no namespace (the empty string). Namespaces override options.
#pragma once
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "conduit/pubsub.hpp"

namespace conduit::pubsub {

// The options live in the public header (conduit/pubsub.hpp) so that the
// daemon's configuration can fill them; these names are the same types.
using ChannelOptions = conduit::ChannelOptions;
using ChannelNamespaceOverrides = conduit::ChannelNamespaceOverrides;
using ChannelConfig = conduit::ChannelConfig;

enum class ChannelNameError {
  none,
  empty,
  too_long,
  bad_character,
};

// "empty", "too_long", "bad_character" (also used as metric label values).
std::string_view to_string(ChannelNameError error) noexcept;

// True for the bytes listed above. Inline (as is is_valid_namespace_name),
// so that the configuration loader (src/ops, below this layer) checks
// namespace names by the same rule without linking the pub/sub library.
inline bool is_channel_name_char(char c) noexcept {
  if (c >= 'a' && c <= 'z') return true;
  if (c >= 'A' && c <= 'Z') return true;
  if (c >= '0' && c <= '9') return true;
  switch (c) {
    case '_':
    case '-':
    case '.':
    case ':':
    case '@':
    case '/':
    case '=':
      return true;
    default:
      return false;
  }
}

ChannelNameError validate_channel_name(std::string_view name, std::size_t max_length) noexcept;

// A namespace name as declared in configuration: a non-empty channel name
// without `:`.
inline bool is_valid_namespace_name(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (char c : name) {
    if (c == ':' || !is_channel_name_char(c)) return false;
  }
  return true;
}

// The part of `channel` before its first ':', or "" when there is none.
std::string_view channel_namespace(std::string_view channel) noexcept;

}  // namespace conduit::pubsub
