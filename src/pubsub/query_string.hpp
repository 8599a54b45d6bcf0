// Query strings of HTTP requests and upgrade URLs ("channel=news&limit=10").
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace conduit::pubsub {

// Decodes %XX escapes; anything else, '+' included, stays as it is (a '+' in
// a base64url token or a channel name is not a space). A '%' not followed by
// two hex digits is kept literally.
std::string percent_decode(std::string_view in);

// The decoded value of the first `name` parameter of query ("" for a bare
// "name"), or nullopt when it is absent.
std::optional<std::string> query_param(std::string_view query, std::string_view name);

}  // namespace conduit::pubsub
