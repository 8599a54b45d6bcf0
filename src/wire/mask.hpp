// RFC 6455 §5.3 masking: XOR with a 4-byte key, word at a time.
#pragma once
#include <cstddef>
#include <cstdint>

namespace conduit::wire {

// XORs data[0..len) with key, starting at key byte (offset % 4), so a payload
// may be unmasked in pieces: pass the number of payload bytes already unmasked.
void apply_mask(std::uint8_t* data, std::size_t len, const std::uint8_t key[4], std::size_t offset = 0) noexcept;

// Fills key with 4 unpredictable bytes (RFC 6455 §5.3: "strong source of
// entropy"). Draws from a per-thread block refilled by OpenSSL's RAND_bytes.
void random_mask_key(std::uint8_t key[4]) noexcept;

}  // namespace conduit::wire
