// Frame serialization (RFC 6455 §5.2). Server frames are unmasked; client
// frames carry a fresh random mask key each.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "wire/opcode.hpp"

namespace conduit::wire {

inline constexpr std::size_t max_header_size = 14;

// Writes a frame header into out (at least max_header_size bytes) and returns its
// length: 2, 4 (16-bit extended length) or 10 (64-bit) bytes, plus 4 if mask_key.
std::size_t write_header(std::uint8_t* out, Opcode op, bool fin, bool rsv1, std::uint64_t payload_len,
                         const std::uint8_t* mask_key /* nullptr = unmasked */) noexcept;

// Appends one whole frame to out. When masked is true a random key is drawn
// and the payload is masked as it is copied.
void append_frame(std::string& out, Opcode op, std::string_view payload, bool masked, bool fin = true,
                  bool rsv1 = false);

// Close frame payload: 2-byte code + reason (reason truncated to 123 bytes on
// a UTF-8 boundary). code 1005 (no status) yields an empty payload.
std::string close_payload(std::uint16_t code, std::string_view reason);

}  // namespace conduit::wire
