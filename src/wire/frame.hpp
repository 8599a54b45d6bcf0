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

// Bytes of one whole unmasked, unfragmented frame carrying len payload bytes.
constexpr std::size_t unmasked_frame_size(std::size_t len) noexcept {
  return len + (len < 126 ? 2 : len <= 0xFFFF ? 4 : 10);
}

// The server's frame builder: writes one whole unmasked frame (FIN set) into
// out, which has room for unmasked_frame_size(len) bytes; returns that size.
// Every server frame (replies, control frames, fan-out) is built here.
std::size_t write_unmasked_frame(std::uint8_t* out, Opcode op, bool rsv1, const void* payload,
                                 std::size_t len) noexcept;

// Calls fn(opcode, rsv1, payload) for each frame of a run written by
// write_unmasked_frame (unmasked, FIN set, lengths trusted).
template <class Fn>
void for_each_unmasked_frame(const std::uint8_t* p, std::size_t len, Fn&& fn) {
  std::size_t off = 0;
  while (off + 2 <= len) {
    const auto op = static_cast<Opcode>(p[off] & 0x0F);
    const bool rsv1 = (p[off] & 0x40) != 0;
    std::uint64_t plen = p[off + 1] & 0x7F;
    std::size_t h = 2;
    if (plen == 126) {
      plen = (std::uint64_t(p[off + 2]) << 8) | p[off + 3];
      h = 4;
    } else if (plen == 127) {
      plen = 0;
      for (int i = 0; i < 8; ++i) plen = (plen << 8) | p[off + 2 + i];
      h = 10;
    }
    fn(op, rsv1, std::string_view(reinterpret_cast<const char*>(p + off + h), plen));
    off += h + plen;
  }
}

// Appends one whole frame to out. When masked is true a random key is drawn
// and the payload is masked as it is copied.
void append_frame(std::string& out, Opcode op, std::string_view payload, bool masked, bool fin = true,
                  bool rsv1 = false);

// Close frame payload: 2-byte code + reason (reason truncated to 123 bytes on
// a UTF-8 boundary). code 1005 (no status) yields an empty payload.
std::string close_payload(std::uint16_t code, std::string_view reason);

}  // namespace conduit::wire
