#include "pubsub/json_text.hpp"

#include <charconv>

namespace conduit::pubsub {

void append_json_uint(std::string& out, std::uint64_t value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  (void)ec;  // 24 bytes always hold a 64-bit value
  out.append(buf, end);
}

}  // namespace conduit::pubsub
