#include "pubsub/jwt.hpp"

#include <jwt.h>
#include <simdjson.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <stdexcept>

#include "pubsub/json_text.hpp"

namespace conduit::pubsub {

std::string_view to_string(AuthFailure failure) noexcept {
  switch (failure) {
    case AuthFailure::missing:
      return "missing";
    case AuthFailure::malformed:
      return "malformed";
    case AuthFailure::bad_algorithm:
      return "bad_algorithm";
    case AuthFailure::bad_signature:
      return "bad_signature";
    case AuthFailure::bad_claims:
      return "bad_claims";
    case AuthFailure::expired:
      return "expired";
    case AuthFailure::not_yet_valid:
      return "not_yet_valid";
  }
  return "unknown";
}

bool pattern_matches(std::string_view pattern, std::string_view name) noexcept {
  // Greedy match with backtracking to the last `*`: each `*` only ever
  // extends its run, so the loop ends after at most |pattern| x |name| steps.
  std::size_t p = 0, n = 0;
  std::size_t star = std::string_view::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_n = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

namespace {
bool any_matches(const std::vector<std::string>& patterns, std::string_view channel) noexcept {
  for (const auto& pattern : patterns) {
    if (pattern_matches(pattern, channel)) return true;
  }
  return false;
}
}  // namespace

bool TokenClaims::may_subscribe(std::string_view channel) const noexcept {
  return channels && any_matches(channels->subscribe, channel);
}

bool TokenClaims::may_publish(std::string_view channel) const noexcept {
  return channels && any_matches(channels->publish, channel);
}

namespace {

// RFC 4648 §5 without padding (RFC 7515 §2); trailing '=' is tolerated.
std::optional<std::string> base64url_decode(std::string_view in) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '-') {
      v = 62;
    } else if (c == '_') {
      v = 63;
    } else {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

TokenCheck refuse(AuthFailure failure, std::string message) {
  TokenCheck check;
  check.failure = failure;
  check.message = std::move(message);
  return check;
}

// A NumericDate claim as whole seconds; fractions are truncated toward the
// past, values beyond int64 saturate.
std::optional<std::int64_t> numeric_date(simdjson::dom::element value) {
  std::int64_t i;
  if (!value.get_int64().get(i)) return i;
  std::uint64_t u;
  if (!value.get_uint64().get(u)) return std::numeric_limits<std::int64_t>::max();
  double d;
  if (!value.get_double().get(d)) {
    if (d >= 9.2e18) return std::numeric_limits<std::int64_t>::max();
    if (d <= -9.2e18) return std::numeric_limits<std::int64_t>::min();
    return static_cast<std::int64_t>(std::floor(d));
  }
  return std::nullopt;
}

bool read_patterns(simdjson::dom::element value, std::vector<std::string>& out) {
  simdjson::dom::array array;
  if (value.get_array().get(array)) return false;
  for (auto element : array) {
    std::string_view s;
    if (element.get_string().get(s)) return false;
    out.emplace_back(s);
  }
  return true;
}

// Reads the claims of a verified payload; nullopt + message on a wrong type.
std::optional<TokenClaims> read_claims(simdjson::dom::object payload, std::string& message) {
  TokenClaims claims;
  for (auto [key, value] : payload) {
    if (key == "sub") {
      std::string_view sub;
      if (value.get_string().get(sub)) {
        message = "claim \"sub\" must be a string";
        return std::nullopt;
      }
      claims.sub = sub;
    } else if (key == "exp" || key == "nbf") {
      auto date = numeric_date(value);
      if (!date) {
        message = "claim \"" + std::string(key) + "\" must be a number";
        return std::nullopt;
      }
      (key == "exp" ? claims.exp : claims.nbf) = *date;
    } else if (key == "channels") {
      simdjson::dom::object channels;
      if (value.get_object().get(channels)) {
        message = "claim \"channels\" must be an object";
        return std::nullopt;
      }
      ChannelGrants grants;
      for (auto [op, patterns] : channels) {
        std::vector<std::string>* list = op == "subscribe" ? &grants.subscribe
                                         : op == "publish" ? &grants.publish
                                                           : nullptr;
        if (!list) {
          message = "claim \"channels\" has a field other than \"subscribe\" and \"publish\"";
          return std::nullopt;
        }
        if (!read_patterns(patterns, *list)) {
          message = "claim \"channels." + std::string(op) + "\" must be an array of strings";
          return std::nullopt;
        }
      }
      claims.channels = std::move(grants);
    }
  }
  return claims;
}

struct JwtDeleter {
  void operator()(jwt_t* jwt) const noexcept { jwt_free(jwt); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtDeleter>;

TokenCheck verify_token(std::string_view token, const std::string& secret, std::chrono::seconds leeway,
                        std::chrono::system_clock::time_point now) {
  if (token.empty()) return refuse(AuthFailure::missing, "missing token");
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return refuse(AuthFailure::malformed, "malformed token: expected three dot-separated parts");
  }
  const auto header_json = base64url_decode(token.substr(0, dot1));
  const auto payload_json = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!header_json || !payload_json) return refuse(AuthFailure::malformed, "malformed token: bad base64url");

  simdjson::dom::parser parser;
  simdjson::dom::object header;
  if (parser.parse(*header_json).get_object().get(header)) {
    return refuse(AuthFailure::malformed, "malformed token: header is not a JSON object");
  }
  std::string_view alg;
  if (header["alg"].get_string().get(alg)) {
    return refuse(AuthFailure::malformed, "malformed token: header has no \"alg\" string");
  }
  if (alg != "HS256") return refuse(AuthFailure::bad_algorithm, "token algorithm is not HS256");

  // The payload's shape is checked before the signature, so that a token
  // that is not JSON is reported as malformed, not as badly signed.
  simdjson::dom::parser payload_parser;
  simdjson::dom::object payload;
  if (payload_parser.parse(*payload_json).get_object().get(payload)) {
    return refuse(AuthFailure::malformed, "malformed token: payload is not a JSON object");
  }

  if (secret.empty() || token.substr(dot2 + 1).empty()) {
    return refuse(AuthFailure::bad_signature, "bad token signature");
  }
  const std::string token_text(token);  // libjwt wants a NUL-terminated string
  jwt_t* raw = nullptr;
  const int rc = jwt_decode(&raw, token_text.c_str(), reinterpret_cast<const unsigned char*>(secret.data()),
                            static_cast<int>(secret.size()));
  JwtPtr decoded(raw);
  if (rc == ENOMEM) return refuse(AuthFailure::bad_signature, "token could not be checked (out of memory)");
  if (rc != 0 || !decoded) {
    // libjwt reports a bad signature and a payload its JSON library cannot
    // read (e.g. an integer beyond int64) alike; decoding again without a
    // key (no signature check) tells the two apart.
    jwt_t* unchecked = nullptr;
    const int parse_rc = jwt_decode(&unchecked, token_text.c_str(), nullptr, 0);
    JwtPtr unchecked_owner(unchecked);
    if (parse_rc != 0) return refuse(AuthFailure::malformed, "malformed token: payload not readable");
    return refuse(AuthFailure::bad_signature, "bad token signature");
  }
  if (jwt_get_alg(decoded.get()) != JWT_ALG_HS256)
    return refuse(AuthFailure::bad_algorithm, "token algorithm is not HS256");

  std::string message;
  auto claims = read_claims(payload, message);
  if (!claims) return refuse(AuthFailure::bad_claims, "bad token claims: " + message);

  const std::int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const std::int64_t slack = leeway.count();
  // Saturating comparisons: exp/nbf may be near the int64 limits.
  if (claims->exp && now_s - slack >= *claims->exp) return refuse(AuthFailure::expired, "token expired");
  if (claims->nbf && now_s + slack < *claims->nbf) return refuse(AuthFailure::not_yet_valid, "token not yet valid");

  TokenCheck check;
  check.claims = std::move(claims);
  return check;
}

}  // namespace

TokenVerifier::TokenVerifier(std::string secret, std::chrono::seconds leeway)
    : secret_(std::move(secret)),
      leeway_(leeway < std::chrono::seconds::zero() ? std::chrono::seconds::zero() : leeway) {}

TokenCheck TokenVerifier::verify(std::string_view token, std::chrono::system_clock::time_point now) const noexcept {
  try {
    return verify_token(token, secret_, leeway_, now);
  } catch (...) {
    // Allocation failure only (simdjson is used through error codes).
    return refuse(AuthFailure::malformed, "token could not be checked");
  }
}

std::string sign_hs256(std::string_view payload_json, std::string_view secret) {
  if (secret.empty()) throw std::invalid_argument("sign_hs256: empty secret");
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) throw std::runtime_error("jwt_new failed");
  JwtPtr jwt(raw);
  if (jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
                  static_cast<int>(secret.size())) != 0) {
    throw std::runtime_error("jwt_set_alg failed");
  }
  const std::string payload(payload_json);
  if (jwt_add_grants_json(jwt.get(), payload.c_str()) != 0) {
    throw std::invalid_argument("sign_hs256: payload is not a JSON object");
  }
  char* encoded = jwt_encode_str(jwt.get());
  if (!encoded) throw std::runtime_error("jwt_encode_str failed");
  std::string out(encoded);
  std::free(encoded);
  return out;
}

namespace {
void append_json_int(std::string& out, std::int64_t v) {
  if (v < 0) {
    out.push_back('-');
    append_json_uint(out, static_cast<std::uint64_t>(0) - static_cast<std::uint64_t>(v));
  } else {
    append_json_uint(out, static_cast<std::uint64_t>(v));
  }
}
void append_string_array(std::string& out, const std::vector<std::string>& items) {
  out.push_back('[');
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out.push_back(',');
    append_json_string(out, items[i]);
  }
  out.push_back(']');
}
}  // namespace

std::string mint_token(const TokenClaims& claims, std::string_view secret) {
  std::string payload = "{\"sub\":";
  append_json_string(payload, claims.sub);
  if (claims.exp) {
    payload.append(",\"exp\":");
    append_json_int(payload, *claims.exp);
  }
  if (claims.nbf) {
    payload.append(",\"nbf\":");
    append_json_int(payload, *claims.nbf);
  }
  if (claims.channels) {
    payload.append(",\"channels\":{\"subscribe\":");
    append_string_array(payload, claims.channels->subscribe);
    payload.append(",\"publish\":");
    append_string_array(payload, claims.channels->publish);
    payload.push_back('}');
  }
  payload.push_back('}');
  return sign_hs256(payload, secret);
}

}  // namespace conduit::pubsub
