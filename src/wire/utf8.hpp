// Incremental UTF-8 validation (RFC 3629): rejects overlongs, surrogates
// (U+D800..U+DFFF), code points above U+10FFFF, and stray continuation bytes,
// as early as the first byte that makes the sequence impossible.
#pragma once
#include <cstddef>
#include <cstdint>

namespace conduit::wire {

class Utf8Validator {
 public:
  // Feeds the next bytes of a message. Returns false as soon as the bytes seen
  // so far cannot be a prefix of valid UTF-8; the validator then stays failed.
  bool feed(const std::uint8_t* data, std::size_t len) noexcept;
  // True when everything fed so far is valid and ends on a code point boundary.
  bool complete() const noexcept { return state_ == 0; }
  bool failed() const noexcept { return state_ == reject_state; }
  void reset() noexcept { state_ = 0; }

  static constexpr std::uint32_t reject_state = 1;

 private:
  std::uint32_t state_ = 0;
};

// Whole-buffer check (fast ASCII path, 8 bytes at a time).
bool is_valid_utf8(const std::uint8_t* data, std::size_t len) noexcept;

}  // namespace conduit::wire
