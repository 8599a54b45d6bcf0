// A string that most connections leave at one common value: empty (the
// negotiated subprotocol, the close reason) or "/" (the request path). It is
// one pointer in the connection instead of a 32-byte std::string, and a heap
// string is allocated only for another value. Idle connections are the
// server's memory floor, so every byte of a connection counts.
#pragma once
#include <memory>
#include <string>
#include <string_view>

namespace conduit::server {

inline const std::string& empty_string() noexcept {
  static const std::string e;
  return e;
}
inline const std::string& root_path() noexcept {
  static const std::string root = "/";
  return root;
}

template <const std::string& (*Common)() noexcept>
class RareString {
 public:
  const std::string& get() const noexcept { return value_ ? *value_ : Common(); }
  bool empty() const noexcept { return get().empty(); }

  void assign(std::string_view s) {
    if (s == Common()) {
      value_.reset();
    } else if (value_) {
      value_->assign(s);  // s may view *value_: assign handles the overlap
    } else {
      value_ = std::make_unique<std::string>(s);
    }
  }

 private:
  std::unique_ptr<std::string> value_;
};

using EmptyByDefault = RareString<&empty_string>;
using RootByDefault = RareString<&root_path>;

}  // namespace conduit::server
