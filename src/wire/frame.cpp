#include "wire/frame.hpp"

#include <cstring>

#include "wire/mask.hpp"

namespace conduit::wire {

std::size_t write_header(std::uint8_t* out, Opcode op, bool fin, bool rsv1, std::uint64_t payload_len,
                         const std::uint8_t* mask_key) noexcept {
  out[0] = static_cast<std::uint8_t>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | static_cast<std::uint8_t>(op));
  const std::uint8_t mask_bit = mask_key ? 0x80 : 0;
  std::size_t n;
  if (payload_len < 126) {
    out[1] = static_cast<std::uint8_t>(mask_bit | payload_len);
    n = 2;
  } else if (payload_len <= 0xFFFF) {
    out[1] = mask_bit | 126;
    out[2] = static_cast<std::uint8_t>(payload_len >> 8);
    out[3] = static_cast<std::uint8_t>(payload_len);
    n = 4;
  } else {
    out[1] = mask_bit | 127;
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(payload_len >> (56 - 8 * i));
    n = 10;
  }
  if (mask_key) {
    std::memcpy(out + n, mask_key, 4);
    n += 4;
  }
  return n;
}

std::size_t write_unmasked_frame(std::uint8_t* out, Opcode op, bool rsv1, const void* payload,
                                 std::size_t len) noexcept {
  const std::size_t h = write_header(out, op, true, rsv1, len, nullptr);
  if (len) std::memcpy(out + h, payload, len);
  return h + len;
}

namespace {

// Copies and masks in one pass (client frames): the payload is read once and
// written once, instead of memcpy followed by an in-place XOR pass.
void copy_masked(std::uint8_t* dst, const std::uint8_t* src, std::size_t len, const std::uint8_t key[4]) noexcept {
  std::uint8_t pattern[8];
  for (std::size_t i = 0; i < 8; ++i) pattern[i] = key[i & 3];
  std::uint64_t k;
  std::memcpy(&k, pattern, 8);
  std::size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, src + i, 8);
    w ^= k;
    std::memcpy(dst + i, &w, 8);
  }
  for (; i < len; ++i) dst[i] = src[i] ^ pattern[i & 7];
}

}  // namespace

void append_frame(std::string& out, Opcode op, std::string_view payload, bool masked, bool fin, bool rsv1) {
  std::uint8_t header[max_header_size];
  std::uint8_t key[4];
  if (masked) random_mask_key(key);
  const std::size_t header_len = write_header(header, op, fin, rsv1, payload.size(), masked ? key : nullptr);
  const std::size_t old_size = out.size();
  out.resize(old_size + header_len + payload.size());
  auto* dst = reinterpret_cast<std::uint8_t*>(out.data()) + old_size;
  std::memcpy(dst, header, header_len);
  dst += header_len;
  if (payload.empty()) return;
  const auto* src = reinterpret_cast<const std::uint8_t*>(payload.data());
  if (masked) {
    copy_masked(dst, src, payload.size(), key);
  } else {
    std::memcpy(dst, src, payload.size());
  }
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
  std::string out;
  if (code == 1005) return out;
  // Control frame payloads are limited to 125 bytes; 2 go to the code. Cut
  // before a continuation byte would split a code point and make the reason
  // invalid UTF-8 (the peer would then fail us with 1007).
  std::size_t cut = reason.size();
  if (cut > 123) {
    cut = 123;
    while (cut > 0 && (static_cast<std::uint8_t>(reason[cut]) & 0xC0) == 0x80) --cut;
  }
  out.reserve(2 + cut);
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code & 0xFF));
  out.append(reason.data(), cut);
  return out;
}

}  // namespace conduit::wire
