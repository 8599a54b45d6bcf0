// RFC 6455 §5.2 opcodes and close codes (§7.4). Pure definitions, no I/O.
#pragma once
#include <cstdint>

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

// Close status codes (RFC 6455 §7.4.1, IANA registry).
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
inline constexpr std::uint16_t no_status = 1005;  // never on the wire
inline constexpr std::uint16_t abnormal = 1006;   // never on the wire
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t mandatory_extension = 1010;
inline constexpr std::uint16_t internal_error = 1011;
inline constexpr std::uint16_t service_restart = 1012;
inline constexpr std::uint16_t try_again_later = 1013;
inline constexpr std::uint16_t tls_handshake = 1015;  // never on the wire
}  // namespace close_code

// True for a code a peer may legitimately send in a Close frame:
// 1000-1003, 1007-1014 and the registered/private range 3000-4999.
// 1004, 1005, 1006, 1015, <1000 and >=5000 are invalid (→ 1002).
constexpr bool is_valid_wire_close_code(std::uint16_t c) noexcept {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

}  // namespace conduit::wire
