#include "client/json_check.hpp"

#include <simdjson.h>

#include <cctype>

namespace conduit::client_detail {

namespace {

constexpr int max_depth = 512;

class Checker {
 public:
  explicit Checker(std::string_view text) : s_(text) {}

  bool document() {
    skip_space();
    if (!value(0)) return false;
    skip_space();
    return i_ == s_.size();
  }

 private:
  bool at(char c) const { return i_ < s_.size() && s_[i_] == c; }
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  bool digits() {
    const std::size_t start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    return i_ > start;
  }
  bool number() {
    if (at('-')) ++i_;
    if (at('0')) {
      ++i_;
    } else if (!digits()) {
      return false;
    }
    if (at('.')) {
      ++i_;
      if (!digits()) return false;
    }
    if (at('e') || at('E')) {
      ++i_;
      if (at('+') || at('-')) ++i_;
      if (!digits()) return false;
    }
    return true;
  }
  bool string() {
    ++i_;  // opening quote
    while (i_ < s_.size()) {
      const unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') continue;
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      if (e == 'u') {
        for (int k = 0; k < 4; ++k, ++i_) {
          if (i_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_]))) return false;
        }
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return false;
      }
    }
    return false;
  }
  bool value(int depth) {
    if (i_ >= s_.size()) return false;
    switch (s_[i_]) {
      case '{': {
        if (depth >= max_depth) return false;
        ++i_;
        skip_space();
        if (at('}')) return ++i_, true;
        for (;;) {
          skip_space();
          if (!at('"') || !string()) return false;
          skip_space();
          if (!at(':')) return false;
          ++i_;
          skip_space();
          if (!value(depth + 1)) return false;
          skip_space();
          if (at('}')) return ++i_, true;
          if (!at(',')) return false;
          ++i_;
        }
      }
      case '[': {
        if (depth >= max_depth) return false;
        ++i_;
        skip_space();
        if (at(']')) return ++i_, true;
        for (;;) {
          skip_space();
          if (!value(depth + 1)) return false;
          skip_space();
          if (at(']')) return ++i_, true;
          if (!at(',')) return false;
          ++i_;
        }
      }
      case '"':
        return string();
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return number();
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

}  // namespace

bool is_json_value(std::string_view text) noexcept {
  return simdjson::validate_utf8(text.data(), text.size()) && Checker(text).document();
}

}  // namespace conduit::client_detail
