// Prometheus text format pieces for the channel layer's metric sources.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace conduit::pubsub {

// "# HELP name help\n# TYPE name type\n"
inline std::string metric_family(std::string_view name, std::string_view type, std::string_view help) {
  std::string out;
  out.reserve(name.size() * 2 + type.size() + help.size() + 16);
  out.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ").append(name).append(" ");
  out.append(type).append("\n");
  return out;
}

// "name{labels} value\n" (labels with their braces, or "").
inline void append_sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t value) {
  out.append(name).append(labels).append(" ").append(std::to_string(value)).append("\n");
}

}  // namespace conduit::pubsub
