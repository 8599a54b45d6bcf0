// wire::Parser in the client role (reading a server's frames), which the
// client library and the load generator use. Checks:
//   - no crash / sanitizer report, and the same events and verdict for three
//     split patterns of the input (whole, derived from the input, byte-wise);
//   - the client role applies exactly the server role's rules except masking:
//     the complete frames of the input, all unmasked, give the same outcome in
//     the client role as the same frames masked (with a key derived from the
//     input) give in the server role;
//   - a masked frame from a server is a protocol error (1002) at that frame:
//     the outcome is the outcome of the frames before it, then 1002 (unless
//     those frames already ended the stream);
//   - what is delivered obeys the contract (sizes, UTF-8, close codes).
#include "fuzz_common.hpp"

using namespace conduit::fuzz;
using conduit::wire::Role;

namespace {

[[noreturn]] void fail(const char* what, const Input& in, const Outcome* a = nullptr, const Outcome* b = nullptr) {
  std::fprintf(stderr, "\nFUZZ INVARIANT (client role): %s (max_message_bytes=%llu seed=%u)\n", what,
               static_cast<unsigned long long>(in.max_message_bytes), in.seed);
  print_bytes(in.stream, in.stream_len);
  if (a) print_outcome("A", *a);
  if (b) print_outcome("B", *b);
  std::abort();
}

bool valid_close_code(unsigned c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

void check_delivered(const Outcome& o, const Input& in) {
  for (const Event& e : o.events) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(e.data.data());
    if ((e.kind == Kind::Text || e.kind == Kind::Binary) && e.data.size() > in.max_message_bytes) {
      fail("message above max_message_bytes delivered", in, &o);
    }
    if (e.kind == Kind::Text && !ref_utf8(p, e.data.size())) fail("invalid UTF-8 delivered", in, &o);
    if ((e.kind == Kind::Ping || e.kind == Kind::Pong) && e.data.size() > 125) fail("control payload > 125", in, &o);
    if (e.kind == Kind::Close && (e.code == 1005 ? !e.data.empty() : !valid_close_code(e.code))) {
      fail("invalid close code delivered", in, &o);
    }
  }
}

// Re-encodes complete frames with a 4-byte mask key (derived from seed) over
// the same header fields and payload.
std::vector<std::uint8_t> masked_copy(const std::vector<ScannedFrame>& frames, std::size_t count, std::uint32_t seed) {
  std::vector<std::uint8_t> out;
  std::uint32_t x = seed * 2246822519u + 0x165667B1u;
  for (std::size_t i = 0; i < count; ++i) {
    const ScannedFrame& f = frames[i];
    out.push_back(static_cast<std::uint8_t>((f.fin ? 0x80 : 0) | (f.rsv1 ? 0x40 : 0) | (f.rsv2 ? 0x20 : 0) |
                                            (f.rsv3 ? 0x10 : 0) | f.op));
    out.push_back(static_cast<std::uint8_t>(0x80 | f.len7));
    // The extended length exactly as it was (non-minimal encodings included).
    if (f.len7 == 126) {
      for (int k = 1; k >= 0; --k) out.push_back(static_cast<std::uint8_t>(f.len >> (8 * k)));
    } else if (f.len7 == 127) {
      for (int k = 7; k >= 0; --k) out.push_back(static_cast<std::uint8_t>(f.len >> (8 * k)));
    }
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    const std::uint8_t key[4] = {static_cast<std::uint8_t>(x), static_cast<std::uint8_t>(x >> 8),
                                 static_cast<std::uint8_t>(x >> 16), static_cast<std::uint8_t>(x >> 24)};
    out.insert(out.end(), key, key + 4);
    for (std::size_t k = 0; k < f.payload.size(); ++k) {
      out.push_back(static_cast<std::uint8_t>(static_cast<std::uint8_t>(f.payload[k]) ^ key[k & 3]));
    }
  }
  return out;
}

Outcome run(const std::uint8_t* p, std::size_t n, std::uint64_t max, Role role) {
  return run_ours(p, n, {n}, max, NoCheck{}, role);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in;
  if (!decode_input(data, size, in)) return 0;
  const std::size_t len = in.stream_len;
  const std::uint64_t max = in.max_message_bytes;

  const Outcome whole = run(in.stream, len, max, Role::Client);
  check_delivered(whole, in);
  const Outcome split = run_ours(in.stream, len, make_splits(len, in.seed | 2), max, NoCheck{}, Role::Client);
  if (!whole.same_as(split)) fail("whole input and random split disagree", in, &whole, &split);
  if (len <= 4096) {
    const Outcome bytewise = run_ours(in.stream, len, std::vector<std::size_t>(len, 1), max, NoCheck{}, Role::Client);
    if (!whole.same_as(bytewise)) fail("whole input and byte-at-a-time disagree", in, &whole, &bytewise);
  }

  // The complete frames, up to the first masked one.
  const std::vector<ScannedFrame> frames = scan_frames(in.stream, len);
  std::size_t complete = 0;  // frames [0, complete) are complete and unmasked
  std::size_t prefix_len = 0;
  while (complete < frames.size() && frames[complete].payload_complete && !frames[complete].masked) {
    prefix_len = frames[complete].offset + frames[complete].header_len + static_cast<std::size_t>(frames[complete].len);
    ++complete;
  }
  const Outcome prefix = run(in.stream, prefix_len, max, Role::Client);
  const std::vector<std::uint8_t> as_client = masked_copy(frames, complete, in.seed);
  const Outcome server = run(as_client.data(), as_client.size(), max, Role::Server);
  if (!prefix.same_as(server)) fail("client role and server role disagree on the same frames", in, &prefix, &server);

  const bool masked_next = complete < frames.size() && frames[complete].header_len != 0 && frames[complete].masked;
  if (masked_next) {
    Outcome expected = prefix;
    if (expected.verdict == Verdict::Ok) expected.verdict = Verdict::ProtocolError;
    if (!whole.same_as(expected)) fail("a masked frame from a server was not a protocol error", in, &whole, &expected);
  }
  return 0;
}
