// Writing JSON text by hand for the few fixed shapes src/pubsub produces
// (replies, pushes, token claims). Appending to a caller-owned std::string
// lets a builder reuse one buffer and splice a publication's data in as the
// raw bytes it arrived as, instead of re-serializing it through a DOM.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace conduit::pubsub {

// Appends `text` as a JSON string literal: quotes, backslash and control
// characters escaped (RFC 8259 §7), everything else copied byte for byte.
// Input is expected to be UTF-8; bytes are not re-validated here.
void append_json_string(std::string& out, std::string_view text);

// Appends an unsigned integer in decimal (JSON number).
void append_json_uint(std::string& out, std::uint64_t value);

}  // namespace conduit::pubsub
