// Message types shared by the server and the client.
#pragma once
#include <cstdint>

namespace conduit {

enum class MessageType : std::uint8_t {
  Text = 1,  // UTF-8, validated on receipt
  Binary = 2,
};

// Close status codes (RFC 6455 §7.4.1 and the IANA registry): the one table
// of them in Conduit; the wire layer uses these same constants.
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
inline constexpr std::uint16_t no_status = 1005;  // never on the wire: the close frame had no code
inline constexpr std::uint16_t abnormal = 1006;   // never on the wire: the connection dropped without a close
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t mandatory_extension = 1010;
inline constexpr std::uint16_t internal_error = 1011;
inline constexpr std::uint16_t service_restart = 1012;
inline constexpr std::uint16_t try_again_later = 1013;
inline constexpr std::uint16_t tls_handshake = 1015;  // never on the wire: the TLS handshake failed
}  // namespace close_code

}  // namespace conduit
