// conduit::mint_token: the public face of pubsub::mint_token, so that
// applications (the CLI) can mint tokens without reaching into src/pubsub.
#include "conduit/token.hpp"

#include "pubsub/jwt.hpp"

namespace conduit {

namespace {
std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
}  // namespace

std::string mint_token(const TokenSpec& spec, std::string_view secret) {
  pubsub::TokenClaims claims;
  claims.sub = spec.subject;
  if (spec.expires_at) claims.exp = unix_seconds(*spec.expires_at);
  if (spec.not_before) claims.nbf = unix_seconds(*spec.not_before);
  if (spec.subscribe || spec.publish) {
    claims.channels = pubsub::ChannelGrants{spec.subscribe.value_or(std::vector<std::string>{}),
                                            spec.publish.value_or(std::vector<std::string>{})};
  }
  return pubsub::mint_token(claims, secret);
}

}  // namespace conduit
