// Connection tokens: every failure mode with tokens built here (by libjwt for
// other algorithms, by an independent HMAC-SHA256 for hand-made headers), the
// exp/nbf boundaries with and without leeway, claim types and patterns.
#include <gtest/gtest.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>
#include <string>

#include "pubsub/jwt.hpp"

namespace {

using conduit::pubsub::AuthFailure;
using conduit::pubsub::ChannelGrants;
using conduit::pubsub::mint_token;
using conduit::pubsub::pattern_matches;
using conduit::pubsub::sign_hs256;
using conduit::pubsub::TokenCheck;
using conduit::pubsub::TokenClaims;
using conduit::pubsub::TokenVerifier;

const std::string secret = "test-secret-0123456789";
constexpr std::int64_t now_s = 1'800'000'000;

std::chrono::system_clock::time_point at(std::int64_t seconds) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
}

TokenCheck check(const std::string& token, std::chrono::seconds leeway = std::chrono::seconds(0)) {
  return TokenVerifier(secret, leeway).verify(token, at(now_s));
}

// Expects a refusal with `failure`; returns the message.
std::string refused(const std::string& token, AuthFailure failure,
                    std::chrono::seconds leeway = std::chrono::seconds(0)) {
  const TokenCheck c = check(token, leeway);
  EXPECT_FALSE(c) << token;
  EXPECT_EQ(c.failure, failure) << token << ": " << c.message;
  EXPECT_FALSE(c.message.empty());
  EXPECT_EQ(c.message.find('\n'), std::string::npos);
  return c.message;
}

std::string base64url(std::string_view in) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(alphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(alphabet[(acc << (6 - bits)) & 63]);
  return out;
}

// A token with any header, signed with HMAC-SHA256 by OpenSSL directly (not
// through the code under test).
std::string craft(std::string_view header, std::string_view payload, std::string_view key = secret) {
  const std::string signing_input = base64url(header) + "." + base64url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac, &mac_len);
  return signing_input + "." + base64url(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
}

// A token signed by libjwt with another algorithm (or none).
std::string libjwt_token(jwt_alg_t alg, std::string_view key) {
  jwt_t* jwt = nullptr;
  EXPECT_EQ(jwt_new(&jwt), 0);
  EXPECT_EQ(jwt_add_grant(jwt, "sub", "mallory"), 0);
  EXPECT_EQ(jwt_add_grants_json(jwt, R"({"channels":{"subscribe":["*"],"publish":["*"]}})"), 0);
  EXPECT_EQ(jwt_set_alg(jwt, alg, key.empty() ? nullptr : reinterpret_cast<const unsigned char*>(key.data()),
                        static_cast<int>(key.size())),
            0);
  char* encoded = jwt_encode_str(jwt);
  std::string out = encoded ? encoded : "";
  std::free(encoded);
  jwt_free(jwt);
  return out;
}

TEST(PubsubJwt, AcceptsAMintedToken) {
  TokenClaims claims;
  claims.sub = "user-42";
  claims.exp = now_s + 60;
  claims.nbf = now_s - 60;
  claims.channels = ChannelGrants{{"news", "chat:*"}, {"chat:*"}};
  const TokenCheck c = check(mint_token(claims, secret));
  ASSERT_TRUE(c) << c.message;
  EXPECT_EQ(c.claims->sub, "user-42");
  EXPECT_EQ(c.claims->exp, now_s + 60);
  EXPECT_EQ(c.claims->nbf, now_s - 60);
  EXPECT_TRUE(c.claims->may_subscribe("news"));
  EXPECT_TRUE(c.claims->may_subscribe("chat:lobby"));
  EXPECT_FALSE(c.claims->may_subscribe("newsroom"));
  EXPECT_TRUE(c.claims->may_publish("chat:room:7"));
  EXPECT_FALSE(c.claims->may_publish("news"));
}

TEST(PubsubJwt, AcceptsAnIndependentlySignedToken) {
  const TokenCheck c = check(craft(R"({"alg":"HS256","typ":"JWT"})", R"({"sub":"u","iat":1,"channels":{}})"));
  ASSERT_TRUE(c) << c.message;
  EXPECT_EQ(c.claims->sub, "u");
  ASSERT_TRUE(c.claims->channels);
  EXPECT_FALSE(c.claims->may_subscribe("news"));  // empty lists allow nothing
}

TEST(PubsubJwt, WithoutChannelsClaimConnectsButMayNothing) {
  const TokenCheck c = check(sign_hs256(R"({"sub":"viewer"})", secret));
  ASSERT_TRUE(c) << c.message;
  EXPECT_FALSE(c.claims->channels);
  EXPECT_FALSE(c.claims->may_subscribe("news"));
  EXPECT_FALSE(c.claims->may_publish("news"));
}

TEST(PubsubJwt, Missing) { refused("", AuthFailure::missing); }

TEST(PubsubJwt, Malformed) {
  for (const std::string token : {"abc", "a.b", "a.b.c.d", "!!!.e30.sig", "e30.e30.x.", "..."}) {
    refused(token, AuthFailure::malformed);
  }
  refused(base64url("not json") + "." + base64url("{}") + ".sig", AuthFailure::malformed);
  refused(base64url(R"({"typ":"JWT"})") + "." + base64url("{}") + ".sig", AuthFailure::malformed);
  refused(base64url(R"({"alg":256})") + "." + base64url("{}") + ".sig", AuthFailure::malformed);
  // Correctly signed, but the payload is not a JSON object.
  refused(craft(R"({"alg":"HS256"})", "[1,2]"), AuthFailure::malformed);
  refused(craft(R"({"alg":"HS256"})", "{\"sub\":"), AuthFailure::malformed);
}

TEST(PubsubJwt, AlgNoneIsRefused) {
  const std::string none = libjwt_token(JWT_ALG_NONE, "");
  ASSERT_FALSE(none.empty());
  EXPECT_EQ(none.back(), '.');  // libjwt's unsigned form
  refused(none, AuthFailure::bad_algorithm);
  // Even carrying a valid HMAC of its own header and payload.
  refused(craft(R"({"alg":"none"})", R"({"sub":"x"})"), AuthFailure::bad_algorithm);
}

TEST(PubsubJwt, OtherAlgorithmsAreRefused) {
  refused(libjwt_token(JWT_ALG_HS512, secret), AuthFailure::bad_algorithm);
  refused(libjwt_token(JWT_ALG_HS384, secret), AuthFailure::bad_algorithm);
  // Key confusion: an "RS256" token whose signature is an HMAC with our secret.
  refused(craft(R"({"alg":"RS256"})", R"({"sub":"x"})"), AuthFailure::bad_algorithm);
  refused(craft(R"({"alg":"hs256"})", R"({"sub":"x"})"), AuthFailure::bad_algorithm);
  refused(craft(R"({"alg":"HS256 "})", R"({"sub":"x"})"), AuthFailure::bad_algorithm);
}

TEST(PubsubJwt, BadSignature) {
  const std::string good = sign_hs256(R"({"sub":"alice"})", secret);
  ASSERT_TRUE(check(good));
  refused(sign_hs256(R"({"sub":"alice"})", "another-secret"), AuthFailure::bad_signature);
  // Forged: alice's signature on a payload that says bob.
  const auto dot1 = good.find('.');
  const auto dot2 = good.find('.', dot1 + 1);
  const std::string forged = good.substr(0, dot1 + 1) + base64url(R"({"sub":"bob"})") + good.substr(dot2);
  refused(forged, AuthFailure::bad_signature);
  refused(good.substr(0, dot2 + 1), AuthFailure::bad_signature);         // no signature
  refused(good.substr(0, good.size() - 2), AuthFailure::bad_signature);  // truncated
  std::string flipped = good;
  flipped[dot2 + 3] = flipped[dot2 + 3] == 'A' ? 'B' : 'A';
  refused(flipped, AuthFailure::bad_signature);
  // A verifier without a secret accepts nothing.
  EXPECT_EQ(TokenVerifier("", std::chrono::seconds(0)).verify(good, at(now_s)).failure, AuthFailure::bad_signature);
}

TEST(PubsubJwt, WrongClaimTypes) {
  for (const char* payload : {
           R"({"sub":42})",
           R"({"exp":"tomorrow"})",
           R"({"nbf":true})",
           R"({"exp":null})",
           R"({"channels":["news"]})",
           R"({"channels":null})",
           R"({"channels":{"subscribe":"news"}})",
           R"({"channels":{"publish":[1]}})",
           R"({"channels":{"subscribe":["a",null]}})",
           R"({"channels":{"subscribe":[],"admin":["*"]}})",
       }) {
    const std::string message = refused(sign_hs256(payload, secret), AuthFailure::bad_claims);
    EXPECT_EQ(message.rfind("bad token claims: ", 0), 0u) << message;
  }
}

TEST(PubsubJwt, ExpiryAndNotBeforeBoundaries) {
  auto with = [](const std::string& claims) { return sign_hs256(claims, secret); };
  const auto s = [](std::int64_t v) { return std::to_string(v); };
  // exp: valid while now < exp.
  EXPECT_TRUE(check(with(R"({"exp":)" + s(now_s + 1) + "}")));
  refused(with(R"({"exp":)" + s(now_s) + "}"), AuthFailure::expired);
  refused(with(R"({"exp":)" + s(now_s - 1) + "}"), AuthFailure::expired);
  // nbf: valid once now >= nbf.
  EXPECT_TRUE(check(with(R"({"nbf":)" + s(now_s) + "}")));
  refused(with(R"({"nbf":)" + s(now_s + 1) + "}"), AuthFailure::not_yet_valid);
  // Fractional NumericDate: 0.5 s past exp is expired.
  refused(with(R"({"exp":)" + s(now_s) + ".5}"), AuthFailure::expired);
  EXPECT_TRUE(check(with(R"({"exp":)" + s(now_s + 1) + ".5}")));
  // Values far outside any clock: no overflow. (Signed by craft(): libjwt's
  // JSON library refuses integers beyond int64 when minting.)
  EXPECT_TRUE(check(craft(R"({"alg":"HS256"})", R"({"exp":1e300,"nbf":-1e300})")));
  // Valid JSON, but libjwt's JSON library cannot read an integer beyond
  // int64: the token is unreadable, not badly signed.
  refused(craft(R"({"alg":"HS256"})", R"({"exp":18446744073709551615})"), AuthFailure::malformed);
  refused(craft(R"({"alg":"HS256"})", R"({"exp":-9223372036854775808})"), AuthFailure::expired);
  refused(craft(R"({"alg":"HS256"})", R"({"nbf":1e300})"), AuthFailure::not_yet_valid);
}

TEST(PubsubJwt, LeewayStretchesBothEnds) {
  const std::chrono::seconds leeway(10);
  auto with = [](const std::string& claims) { return sign_hs256(claims, secret); };
  const auto s = [](std::int64_t v) { return std::to_string(v); };
  EXPECT_TRUE(check(with(R"({"exp":)" + s(now_s - 9) + "}"), leeway));
  refused(with(R"({"exp":)" + s(now_s - 10) + "}"), AuthFailure::expired, leeway);
  EXPECT_TRUE(check(with(R"({"nbf":)" + s(now_s + 10) + "}"), leeway));
  refused(with(R"({"nbf":)" + s(now_s + 11) + "}"), AuthFailure::not_yet_valid, leeway);
}

TEST(PubsubJwt, FailureNamesAreStable) {
  EXPECT_EQ(to_string(AuthFailure::missing), "missing");
  EXPECT_EQ(to_string(AuthFailure::malformed), "malformed");
  EXPECT_EQ(to_string(AuthFailure::bad_algorithm), "bad_algorithm");
  EXPECT_EQ(to_string(AuthFailure::bad_signature), "bad_signature");
  EXPECT_EQ(to_string(AuthFailure::bad_claims), "bad_claims");
  EXPECT_EQ(to_string(AuthFailure::expired), "expired");
  EXPECT_EQ(to_string(AuthFailure::not_yet_valid), "not_yet_valid");
}

TEST(PubsubJwt, PatternsMatchRunsIncludingColons) {
  EXPECT_TRUE(pattern_matches("news", "news"));
  EXPECT_FALSE(pattern_matches("news", "news2"));
  EXPECT_FALSE(pattern_matches("news", "new"));
  EXPECT_TRUE(pattern_matches("*", "anything:at:all"));
  EXPECT_TRUE(pattern_matches("*", ""));
  EXPECT_TRUE(pattern_matches("chat:*", "chat:lobby"));
  EXPECT_TRUE(pattern_matches("chat:*", "chat:room:7"));
  EXPECT_TRUE(pattern_matches("chat:*", "chat:"));
  EXPECT_FALSE(pattern_matches("chat:*", "chat"));
  EXPECT_FALSE(pattern_matches("chat:*", "chatx:1"));
  EXPECT_TRUE(pattern_matches("*:lobby", "chat:lobby"));
  EXPECT_FALSE(pattern_matches("*:lobby", "chat:lobby2"));
  EXPECT_TRUE(pattern_matches("a*b*c", "a__b__b__c"));
  EXPECT_TRUE(pattern_matches("a*ab", "aaab"));
  EXPECT_FALSE(pattern_matches("a*ab", "aaba"));
  EXPECT_TRUE(pattern_matches("**", "x"));
  EXPECT_TRUE(pattern_matches("", ""));
  EXPECT_FALSE(pattern_matches("", "x"));
  // Worst case stays bounded (quadratic, not exponential).
  EXPECT_FALSE(pattern_matches("*a*a*a*a*a*a*a*a*b", std::string(255, 'a')));
}

}  // namespace
