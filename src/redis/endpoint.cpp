// parse_url: the one parser of redis:// URLs (see client.hpp for the syntax).
#include <charconv>
#include <stdexcept>
#include <string>

#include "redis/client.hpp"

namespace conduit::redis {
namespace {

[[noreturn]] void bad(std::string_view url, const std::string& why) {
  // The password is never echoed back: the URL is shown without its userinfo.
  std::string shown(url);
  if (auto at = shown.rfind('@'); at != std::string::npos) {
    auto scheme_end = shown.find("://");
    std::size_t from = scheme_end == std::string::npos ? 0 : scheme_end + 3;
    if (from <= at) shown.replace(from, at - from, "***");
  }
  throw std::invalid_argument("invalid Redis URL \"" + shown + "\": " + why);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Endpoint parse_url(std::string_view url) {
  constexpr std::string_view scheme = "redis://";
  if (!url.starts_with(scheme)) bad(url, "expected redis://[:password@]host[:port][/db]");
  std::string_view rest = url.substr(scheme.size());
  Endpoint ep;

  std::string_view path;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = userinfo.find(':');
    if (colon == std::string_view::npos)
      bad(url, "userinfo must be \":password\" (a user name alone is not supported)");
    if (colon != 0) bad(url, "a user name is not supported: write redis://:password@host");
    std::string_view raw = userinfo.substr(1);
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '%') {
        ep.password.push_back(raw[i]);
        continue;
      }
      int hi = i + 2 < raw.size() ? hex_value(raw[i + 1]) : -1;
      int lo = i + 2 < raw.size() ? hex_value(raw[i + 2]) : -1;
      if (hi < 0 || lo < 0) bad(url, "bad percent-escape in the password");
      ep.password.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    }
    if (ep.password.empty()) bad(url, "empty password after ':'");
  }

  std::string_view port_text;
  if (rest.starts_with('[')) {
    auto close = rest.find(']');
    if (close == std::string_view::npos) bad(url, "unterminated '[' in an IPv6 host");
    ep.host = std::string(rest.substr(1, close - 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') bad(url, "unexpected text after the IPv6 host");
      port_text = after.substr(1);
      if (port_text.empty()) bad(url, "empty port after ':'");
    }
  } else {
    auto colon = rest.find(':');
    ep.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
      if (port_text.empty()) bad(url, "empty port after ':'");
    }
  }
  if (ep.host.empty()) bad(url, "no host");
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 || value > 65535)
      bad(url, "port must be a number in 1..65535");
    ep.port = static_cast<std::uint16_t>(value);
  }
  if (!path.empty()) {
    int db = 0;
    auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), db);
    if (ec != std::errc() || end != path.data() + path.size() || db < 0)
      bad(url, "database must be a non-negative number (redis://host/0)");
    ep.db = db;
  }
  return ep;
}

}  // namespace conduit::redis
