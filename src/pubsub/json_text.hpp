// Writing JSON text by hand for the few fixed shapes src/pubsub produces
// (replies, pushes, token claims). Appending to a caller-owned std::string
// lets a builder reuse one buffer and splice a publication's data in as the
// raw bytes it arrived as, instead of re-serializing it through a DOM.
#pragma once
#include <cstdint>
#include <string>

// append_json_string: the one JSON string escaper, shared with the client,
// logging and the CLI.
#include "conduit/json_string.hpp"

namespace conduit::pubsub {

// Appends an unsigned integer in decimal (JSON number).
void append_json_uint(std::string& out, std::uint64_t value);

}  // namespace conduit::pubsub
