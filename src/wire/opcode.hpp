// RFC 6455 §5.2 opcodes and close codes (§7.4). Pure definitions, no I/O.
#pragma once
#include <cstdint>

#include "conduit/message.hpp"

namespace conduit::wire {

enum class Opcode : std::uint8_t {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xA,
};

constexpr bool is_control(Opcode op) noexcept { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }

// Close status codes: the public table (include/conduit/message.hpp), so the
// wire layer and applications name a code the same way.
namespace close_code = ::conduit::close_code;

// True for a code a peer may legitimately send in a Close frame:
// 1000-1003, 1007-1014 and the registered/private range 3000-4999.
// 1004, 1005, 1006, 1015, <1000 and >=5000 are invalid (→ 1002).
constexpr bool is_valid_wire_close_code(std::uint16_t c) noexcept {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

}  // namespace conduit::wire
