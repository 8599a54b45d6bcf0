#include "pubsub/channel_name.hpp"

namespace conduit {

ChannelOptions ChannelConfig::resolve(std::string_view channel) const {
  using pubsub::channel_namespace;
  ChannelOptions options = defaults;
  const std::string_view ns = channel_namespace(channel);
  if (ns.empty()) return options;
  const auto it = namespaces.find(ns);
  if (it == namespaces.end()) return options;
  const ChannelNamespaceOverrides& o = it->second;
  if (o.history_size) options.history_size = *o.history_size;
  if (o.history_ttl) options.history_ttl = *o.history_ttl;
  if (o.max_subscriptions_per_connection)
    options.max_subscriptions_per_connection = *o.max_subscriptions_per_connection;
  if (o.max_channel_length) options.max_channel_length = *o.max_channel_length;
  return options;
}

bool is_valid_channel_name(std::string_view name, std::size_t max_length) noexcept {
  return pubsub::validate_channel_name(name, max_length) == pubsub::ChannelNameError::none;
}

}  // namespace conduit

namespace conduit::pubsub {

std::string_view to_string(ChannelNameError error) noexcept {
  switch (error) {
    case ChannelNameError::none:
      return "none";
    case ChannelNameError::empty:
      return "empty";
    case ChannelNameError::too_long:
      return "too_long";
    case ChannelNameError::bad_character:
      return "bad_character";
  }
  return "unknown";
}

ChannelNameError validate_channel_name(std::string_view name, std::size_t max_length) noexcept {
  if (name.empty()) return ChannelNameError::empty;
  if (name.size() > max_length) return ChannelNameError::too_long;
  for (char c : name) {
    if (!is_channel_name_char(c)) return ChannelNameError::bad_character;
  }
  return ChannelNameError::none;
}

std::string_view channel_namespace(std::string_view channel) noexcept {
  const auto colon = channel.find(':');
  return colon == std::string_view::npos ? std::string_view{} : channel.substr(0, colon);
}

}  // namespace conduit::pubsub
