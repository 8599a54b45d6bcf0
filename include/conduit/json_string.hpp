// Writing a JSON string literal by hand. Conduit builds its few fixed JSON
// shapes (conduit.v1 replies and pushes, token claims, HTTP API answers, JSON
// log lines, `conduit sub` output) by appending to a buffer rather than through
// a DOM, so that a publication's data can be spliced in as the raw bytes it
// arrived as. This is the one escaper they all share: a second copy would sooner
// or later disagree with it on some control byte.
#pragma once
#include <cstddef>
#include <string_view>

namespace conduit {

// Appends `text` to `out` as a JSON string literal (RFC 8259 §7): in double
// quotes, with '"' and '\\' escaped, the control bytes U+0000..U+001F written
// as \b \f \n \r \t or \u00XX, and every other byte copied as it is. The input
// is expected to be UTF-8 and is not validated here (a caller that takes text
// from outside checks it first).
//
// `Out` is a byte buffer with append(const char* first, const char* last) and
// push_back(char): std::string, or fmt/spdlog's memory buffer.
template <class Out>
void append_json_string(Out& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run_start = 0;  // bytes before i since the last escape: copied in one append
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.data() + run_start, text.data() + i);
    run_start = i + 1;
    char escape = 0;
    switch (c) {
      case '"':
        escape = '"';
        break;
      case '\\':
        escape = '\\';
        break;
      case '\n':
        escape = 'n';
        break;
      case '\r':
        escape = 'r';
        break;
      case '\t':
        escape = 't';
        break;
      case '\b':
        escape = 'b';
        break;
      case '\f':
        escape = 'f';
        break;
      default:
        break;
    }
    out.push_back('\\');
    if (escape != 0) {
      out.push_back(escape);
    } else {
      const char code[] = {'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
      out.append(code, code + sizeof code);
    }
  }
  out.append(text.data() + run_start, text.data() + text.size());
  out.push_back('"');
}

}  // namespace conduit
