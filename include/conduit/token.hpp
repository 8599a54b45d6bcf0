// Minting connection tokens for conduit.v1 (HS256 JSON Web Tokens, RFC 7519),
// the kind conduitd verifies when auth.jwt_secret is set. For development and
// tests (`conduit token`); a production issuer usually lives in the
// application's login service, with the same claims.
#pragma once
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conduit {

struct TokenSpec {
  // `sub`: the user id conduitd logs.
  std::string subject;
  // `exp`: the token is refused from this time on; nullopt = no expiry.
  std::optional<std::chrono::system_clock::time_point> expires_at;
  // `nbf`: the token is refused before this time; nullopt = valid at once.
  std::optional<std::chrono::system_clock::time_point> not_before;
  // `channels`: channel patterns (`*` matches any run of characters, `:`
  // included) the holder may subscribe to / publish to. When both are
  // nullopt the token has no `channels` claim and allows neither; when one is
  // set the claim is written with both lists (an unset one is empty).
  std::optional<std::vector<std::string>> subscribe;
  std::optional<std::vector<std::string>> publish;
};

// The signed token (header.payload.signature, base64url). Times are written
// in whole seconds since 1970 UTC. Throws std::invalid_argument for an empty
// secret, std::runtime_error when signing fails.
std::string mint_token(const TokenSpec& spec, std::string_view secret);

}  // namespace conduit
