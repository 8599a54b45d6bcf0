// Whether a text is one JSON value (RFC 8259 grammar, UTF-8), as conduit.v1
// requires of publish data. Numbers are checked against the grammar only:
// integers beyond 64 bits and large exponents are valid JSON, and the server
// passes them through unchanged, so the client must not refuse them either.
#pragma once
#include <string_view>

namespace conduit::client_detail {

// True when text is exactly one JSON value, optionally surrounded by JSON
// whitespace, nested at most 512 levels (deeper is refused here rather than
// risking the stack; the server's own limit is lower and answered by id).
bool is_json_value(std::string_view text) noexcept;

}  // namespace conduit::client_detail
