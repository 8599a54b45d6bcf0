// Connection tokens: HS256 JSON Web Tokens (RFC 7519) carrying a user id and
// channel permissions.
//
// Only HS256 is accepted. The algorithm is read from the token's header and
// checked before any signature work, so `alg: none` and every other
// algorithm (HS384/512, RS*, ES*: a key-confusion attack would present an
// RS256 token signed with our HMAC secret as the "public key") are refused
// whatever the signature says. The signature is verified with libjwt.
//
// Claims read (others are ignored):
//   sub       string, the user id (for logs)
//   exp, nbf  NumericDate (seconds since 1970), checked with a leeway
//   channels  {"subscribe": [PATTERN...], "publish": [PATTERN...]}
// A token without `channels` is valid for connecting but allows neither
// subscribing nor publishing. In a PATTERN `*` matches any run of characters
// (`:` included), everything else matches itself: "chat:*" allows
// "chat:lobby" and "chat:room:7"; "*" allows every channel.
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conduit::pubsub {

enum class AuthFailure {
  missing,        // no token at all
  malformed,      // not three base64url parts with a JSON header and payload
  bad_algorithm,  // header alg is anything but "HS256"
  bad_signature,  // HMAC does not match the secret
  bad_claims,     // a claim read here has the wrong type or shape
  expired,        // now >= exp + leeway
  not_yet_valid,  // now + leeway < nbf
};

// "missing", "malformed", "bad_algorithm", "bad_signature", "bad_claims",
// "expired", "not_yet_valid": stable names for metric labels and logs.
std::string_view to_string(AuthFailure failure) noexcept;

struct ChannelGrants {
  std::vector<std::string> subscribe;  // patterns
  std::vector<std::string> publish;    // patterns
};

struct TokenClaims {
  std::string sub;
  std::optional<std::int64_t> exp;  // seconds since 1970-01-01 UTC
  std::optional<std::int64_t> nbf;
  std::optional<ChannelGrants> channels;  // absent: no subscribe, no publish

  bool may_subscribe(std::string_view channel) const noexcept;
  bool may_publish(std::string_view channel) const noexcept;
};

struct TokenCheck {
  std::optional<TokenClaims> claims;           // set when the token is accepted
  AuthFailure failure = AuthFailure::missing;  // meaningful when !claims
  std::string message;                         // one line, for the 401 body and the log
  explicit operator bool() const noexcept { return claims.has_value(); }
};

// True when `name` matches `pattern` (`*` = any run of characters, possibly
// empty). Linear in practice; worst case O(|pattern| x |name|).
bool pattern_matches(std::string_view pattern, std::string_view name) noexcept;

class TokenVerifier {
 public:
  // An empty secret accepts nothing (every token fails with bad_signature):
  // configuration must not leave auth half on.
  TokenVerifier(std::string secret, std::chrono::seconds leeway);

  // Checks, in this order: missing, malformed, bad_algorithm, bad_signature,
  // bad_claims, expired, not_yet_valid. Does not throw.
  TokenCheck verify(std::string_view token, std::chrono::system_clock::time_point now) const noexcept;

 private:
  std::string secret_;
  std::chrono::seconds leeway_;
};

// Signs `payload_json` (a JSON object, used as the claims set as it is) with
// HS256. Throws std::invalid_argument when the secret is empty or the payload
// is not a JSON object, std::runtime_error when libjwt fails.
std::string sign_hs256(std::string_view payload_json, std::string_view secret);

// Mints a token for `claims` (sub, exp, nbf and channels when set).
std::string mint_token(const TokenClaims& claims, std::string_view secret);

}  // namespace conduit::pubsub
