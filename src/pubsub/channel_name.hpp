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

namespace conduit::pubsub {

struct ChannelOptions {
  // Publications kept for recovery; 0 turns history off.
  std::size_t history_size = 100;
  // Publications older than this are dropped from history; 0 means no age
  // limit (history_size alone bounds it).
  std::chrono::milliseconds history_ttl{std::chrono::minutes(5)};
  // A subscribe is refused (429) when the connection already holds this many
  // subscriptions. Resolved for the namespace of the channel being
  // subscribed, and compared with the connection's total.
  std::size_t max_subscriptions_per_connection = 128;
  // Longest accepted channel name, in bytes.
  std::size_t max_channel_length = 255;
};

// One namespace's overrides: a key that is not set keeps the default.
struct ChannelNamespaceOverrides {
  std::optional<std::size_t> history_size;
  std::optional<std::chrono::milliseconds> history_ttl;
  std::optional<std::size_t> max_subscriptions_per_connection;
  std::optional<std::size_t> max_channel_length;
};

struct ChannelConfig {
  ChannelOptions defaults;
  std::map<std::string, ChannelNamespaceOverrides, std::less<>> namespaces;

  // The options for `channel`: the defaults with the overrides of its
  // namespace applied; a namespace that is not declared (or no namespace)
  // gets the defaults unchanged.
  ChannelOptions resolve(std::string_view channel) const;
};

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
