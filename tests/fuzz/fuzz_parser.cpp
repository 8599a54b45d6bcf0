// Single-parser fuzz target (no Beast): wire::Parser in the server role fed
// the same bytes in three split patterns (whole, derived from the input, one
// byte at a time). Checks:
//   - no crash / sanitizer report (each chunk lives in its own heap block that
//     is freed after consume(), so stale views and over-reads are caught);
//   - all split patterns give the same events and the same verdict;
//   - idle() whenever the bytes fed so far end on a frame boundary with no
//     fragmented message open, and buffered_bytes() == 0 whenever idle();
//   - buffered_bytes() <= max_message_bytes + 14 + 125: a message is never
//     buffered beyond the limit; on top of it the parser may hold a split
//     header (<= 14 bytes) and a split control payload (<= 125 bytes);
//   - what is delivered obeys the contract: messages <= max_message_bytes, Text
//     is valid UTF-8, ping/pong <= 125 bytes, close code valid on the wire (or
//     1005 for an empty payload), close reason valid UTF-8.
#include "fuzz_common.hpp"

using namespace conduit::fuzz;

namespace {

[[noreturn]] void fail(const char* what, const Input& in, const Outcome* a = nullptr, const Outcome* b = nullptr) {
  std::fprintf(stderr, "\nFUZZ INVARIANT: %s (max_message_bytes=%llu seed=%u)\n", what,
               static_cast<unsigned long long>(in.max_message_bytes), in.seed);
  print_bytes(in.stream, in.stream_len);
  if (a) print_outcome("pattern A", *a);
  if (b) print_outcome("pattern B", *b);
  std::abort();
}

bool valid_close_code(unsigned c) {
  // RFC 6455 §7.4.1/§7.4.2 and the IANA registry, written out independently.
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

void check_delivered(const Outcome& o, const Input& in) {
  for (const Event& e : o.events) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(e.data.data());
    switch (e.kind) {
      case Kind::Text:
        if (!ref_utf8(p, e.data.size())) fail("Text message with invalid UTF-8 delivered", in, &o);
        [[fallthrough]];
      case Kind::Binary:
        if (e.data.size() > in.max_message_bytes) fail("message above max_message_bytes delivered", in, &o);
        break;
      case Kind::Ping:
      case Kind::Pong:
        if (e.data.size() > 125) fail("control payload above 125 bytes delivered", in, &o);
        break;
      case Kind::Close:
        if (e.code == 1005 ? !e.data.empty() : !valid_close_code(e.code)) fail("invalid close code delivered", in, &o);
        if (!ref_utf8(p, e.data.size())) fail("close reason with invalid UTF-8 delivered", in, &o);
        if (e.data.size() > 123) fail("close reason above 123 bytes delivered", in, &o);
        break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in;
  if (!decode_input(data, size, in)) return 0;
  const std::size_t len = in.stream_len;

  // Offsets where a sound parser holds nothing: frame boundaries outside a
  // fragmented message (only meaningful while the parser has not stopped, i.e.
  // every frame before the offset was accepted).
  std::vector<bool> rest_point(len + 1, false);
  rest_point[0] = true;
  bool open = false;
  for (const ScannedFrame& f : scan_frames(in.stream, len)) {
    if (!f.payload_complete) break;
    if (f.op <= 2) open = !f.fin;
    rest_point[f.offset + f.header_len + static_cast<std::size_t>(f.len)] = !open;
  }
  const std::uint64_t max = in.max_message_bytes;
  auto check = [&](const conduit::wire::Parser& p, std::size_t pos, bool) {
    if (p.buffered_bytes() > max + 14 + 125) fail("buffered_bytes() above the bound", in);
    if (rest_point[pos] && !p.idle()) fail("not idle() at a message boundary", in);
    if (p.idle() && p.buffered_bytes() != 0) fail("idle() with buffered bytes", in);
  };

  const Outcome whole = run_ours(in.stream, len, {len}, max, check);
  check_delivered(whole, in);
  const Outcome split = run_ours(in.stream, len, make_splits(len, in.seed | 2), max, check);
  if (!whole.same_as(split)) fail("whole input and random split disagree", in, &whole, &split);
  if (len <= 4096) {
    const Outcome bytewise = run_ours(in.stream, len, std::vector<std::size_t>(len, 1), max, check);
    if (!whole.same_as(bytewise)) fail("whole input and byte-at-a-time disagree", in, &whole, &bytewise);
  }
  return 0;
}
