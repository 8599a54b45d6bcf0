// permessage-deflate input (wire::PerMessageDeflate), as a connection that
// negotiated compression inflates it. Two modes, picked by the input:
//
//   random streams: each message of the input is inflated as received from a
//     peer (any bytes: valid, truncated or corrupt deflate data, bombs).
//     decompress() answers Ok, TooBig (the connection closes 1009) or Corrupt
//     (1007), never crashes, and never holds more than about twice the limit
//     (the output buffer stops at max_bytes + 1: one byte past the limit is how
//     "too big" is known without inflating further).
//   round trip: each message is compressed by the peer's side (context
//     takeover and window bits as negotiated) and inflated by ours: the result
//     is the original when it fits the limit, TooBig when it does not (a bomb:
//     a small compressed payload that inflates past the limit).
//
// Input: byte 0: bits 0-1 max_bytes (64, 1024, 65536, 1 MiB), bit 2 which role
// inflates, bit 3 server_no_context_takeover, bit 4 client_no_context_takeover,
// bits 5-7 window bits (8 + n); byte 1: bit 7 = round-trip mode, bits 0-3 the
// compression level; then messages, each as a length byte L and L bytes (round
// trip: one more byte first, a repeat count for the payload, to make bombs).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "wire/deflate.hpp"

using conduit::wire::DeflateParams;
using conduit::wire::InflateResult;
using conduit::wire::PerMessageDeflate;
using conduit::wire::Role;

namespace {

[[noreturn]] void fail(const char* what, std::size_t max_bytes, std::size_t got) {
  std::fprintf(stderr, "\nFUZZ INVARIANT (deflate): %s (max_bytes=%zu, output %zu bytes)\n", what, max_bytes, got);
  std::abort();
}

void check_bounds(InflateResult r, const std::string& out, std::size_t max_bytes) {
  if (out.size() > max_bytes + 1) fail("output grew past max_bytes + 1", max_bytes, out.size());
  if (out.capacity() > 2 * (max_bytes + 1) + 64)
    fail("output buffer grew past twice the limit", max_bytes, out.capacity());
  if (r == InflateResult::Ok && out.size() > max_bytes) fail("Ok with more than max_bytes", max_bytes, out.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static constexpr std::size_t kMax[4] = {64, 1024, 65536, 1 << 20};
  const std::size_t max_bytes = kMax[data[0] & 3];
  const Role inflating = (data[0] & 4) ? Role::Client : Role::Server;
  const Role compressing = inflating == Role::Server ? Role::Client : Role::Server;
  DeflateParams params;
  params.server_no_context_takeover = (data[0] & 8) != 0;
  params.client_no_context_takeover = (data[0] & 16) != 0;
  params.server_max_window_bits = 8 + ((data[0] >> 5) & 7);
  params.client_max_window_bits = 8 + ((data[0] >> 5) & 7);
  const bool round_trip = (data[1] & 0x80) != 0;
  const int level = 1 + (data[1] & 0x0F) % 9;

  PerMessageDeflate ours(inflating, params, level);
  PerMessageDeflate peer(compressing, params, level);
  std::string out, compressed, original;
  std::size_t pos = 2;
  std::size_t produced = 0;  // bound the work per input (round trip builds payloads)
  while (pos < size) {
    std::size_t repeat = 1;
    if (round_trip) repeat = 1 + (std::size_t{data[pos++]} << 4);  // up to 4081 copies
    if (pos >= size) break;
    const std::size_t len = data[pos++];
    const std::size_t n = len <= size - pos ? len : size - pos;
    const std::uint8_t* msg = data + pos;
    pos += n;
    if (!round_trip) {
      const InflateResult r = ours.decompress(msg, n, out, max_bytes);
      check_bounds(r, out, max_bytes);
      if (r != InflateResult::Ok) break;  // the connection closes (1009 or 1007)
      continue;
    }
    if (n == 0) repeat = 1;
    if (produced + n * repeat > (std::size_t{512} << 10)) break;
    produced += n * repeat;
    original.clear();
    for (std::size_t k = 0; k < repeat; ++k) original.append(reinterpret_cast<const char*>(msg), n);
    compressed.clear();
    peer.compress(reinterpret_cast<const std::uint8_t*>(original.data()), original.size(), compressed);
    const InflateResult r =
        ours.decompress(reinterpret_cast<const std::uint8_t*>(compressed.data()), compressed.size(), out, max_bytes);
    check_bounds(r, out, max_bytes);
    if (original.size() <= max_bytes) {
      if (r != InflateResult::Ok) fail("valid compressed message refused", max_bytes, original.size());
      if (out != original) {
        std::fprintf(stderr, "\nmessage of %zu bytes (compressed %zu) came back as %zu bytes\n", original.size(),
                     compressed.size(), out.size());
        fail("round trip changed the message", max_bytes, out.size());
      }
    } else {
      if (r != InflateResult::TooBig)
        fail("message above the limit (a bomb) not refused as TooBig", max_bytes, out.size());
      break;  // the connection closes 1009
    }
  }
  return 0;
}
