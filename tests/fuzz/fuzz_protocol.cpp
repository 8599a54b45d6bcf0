// libFuzzer target for the conduit.v1 request parser (pubsub::RequestParser).
// Beyond "no crash, no sanitizer report" it checks the codec's contract:
//   - an accepted request has id >= 1 and the fields its operation needs;
//   - accepted `data` is valid JSON on its own: wrapped into a new publish
//     request it is accepted again, byte for byte;
//   - a refusal has code 400 and a one-line printable ASCII message, without
//     an id when the message is "invalid JSON";
//   - the error reply built from a refusal is itself parseable JSON (checked
//     by parsing it as a request: it must fail as an unknown field "error",
//     not as invalid JSON).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "pubsub/protocol.hpp"

using conduit::pubsub::ErrorCode;
using conduit::pubsub::Op;
using conduit::pubsub::RequestParser;

namespace {
void require(bool ok) {
  if (!ok) std::abort();
}
bool printable_line(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7E) return false;
  }
  return !s.empty();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static RequestParser parser;
  static RequestParser checker;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = parser.parse(text);
  if (parsed.request) {
    const auto& r = *parsed.request;
    require(r.id >= 1);
    if (r.op == Op::publish) {
      require(!r.data.empty());
      const std::string again = R"({"id":1,"publish":{"channel":"c","data":)" + std::string(r.data) + "}}";
      const auto reparsed = checker.parse(again);
      require(reparsed.request.has_value());
      require(reparsed.request->data == r.data);
    }
    if (r.op == Op::refresh) require(r.channel.empty());
  } else {
    require(parsed.error.code == ErrorCode::bad_request || parsed.error.code == ErrorCode::internal);
    require(printable_line(parsed.error.message));
    if (parsed.error.message == "invalid JSON") require(!parsed.error.id);
    std::string reply;
    append_error(reply, parsed.error);
    const auto as_request = checker.parse(reply);
    require(!as_request.request);
    require(as_request.error.message != "invalid JSON");
  }
  return 0;
}
