// Retry-After (RFC 9110 §10.2.3) as a client waiting to reconnect reads it:
// delay-seconds or an HTTP-date.
#pragma once
#include <chrono>
#include <optional>
#include <string_view>

namespace conduit::client_detail {

// An HTTP-date (RFC 9110 §5.6.7): the IMF-fixdate form
// ("Sun, 06 Nov 1994 08:49:37 GMT") and the two obsolete forms a recipient
// must still accept, RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
// ("Sun Nov  6 08:49:37 1994"). nullopt for anything else.
std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view text);

// The wait a Retry-After value asks for, capped at 24 h; nullopt when it is
// malformed. For a date, the delay is counted from the response's Date header
// when it has a valid one (the server's own clock on both sides, so a skewed
// client clock does not matter), else from `now`; a date in the past is 0.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, std::string_view date_header,
                                                           std::chrono::system_clock::time_point now);

}  // namespace conduit::client_detail
