// permessage-deflate (RFC 7692) on zlib: offer/negotiation and per-message
// compression with the context-takeover rules. Off unless negotiated.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "wire/parser.hpp"

namespace conduit::wire {

struct DeflateConfig {
  bool enabled = false;
  bool server_no_context_takeover = false;  // server asks to reset its compressor per message
  bool client_no_context_takeover = false;  // server asks the client to do the same
  int server_max_window_bits = 15;          // 8..15 (8 is treated as 9, as zlib needs)
  int client_max_window_bits = 15;          // 8..15
  int level = 6;                            // zlib level 1..9
  std::size_t min_compress_bytes = 64;      // smaller messages are sent uncompressed
};

struct DeflateParams {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 15;
  int client_max_window_bits = 15;
};

struct DeflateNegotiation {
  DeflateParams params;
  std::string response;  // value for the response's Sec-WebSocket-Extensions
};

// Server: picks the first acceptable permessage-deflate offer in the request's
// Sec-WebSocket-Extensions value(s). nullopt when none is acceptable or
// config.enabled is false (the connection then runs uncompressed).
std::optional<DeflateNegotiation> negotiate_deflate(std::string_view offers, const DeflateConfig& config);
// Client: the offer to send, and validation of the server's answer.
std::string make_deflate_offer(const DeflateConfig& config);
std::optional<DeflateParams> accept_deflate_response(std::string_view response, const DeflateConfig& config);

enum class InflateResult : std::uint8_t { Ok, TooBig, Corrupt };

// One per connection that negotiated compression; zlib streams are created
// lazily on first use.
class PerMessageDeflate {
 public:
  PerMessageDeflate(Role role, const DeflateParams& params, int level);
  ~PerMessageDeflate();
  PerMessageDeflate(const PerMessageDeflate&) = delete;
  PerMessageDeflate& operator=(const PerMessageDeflate&) = delete;

  // Compresses one whole message payload and appends it to out (trailing
  // 00 00 FF FF removed, §7.2.1).
  void compress(const std::uint8_t* data, std::size_t len, std::string& out);
  // Compressors with the same non-negative key turn the same message into the
  // same bytes: they carry no context from one message to the next (our side
  // agreed to no context takeover) and use the same window and level, so a
  // broadcast can compress once per key instead of once per peer. -1 when the
  // output depends on what this compressor compressed before.
  int stateless_key() const noexcept;
  // Inflates one whole message payload into out (cleared first). TooBig as soon
  // as the output would exceed max_bytes (decompression bomb → 1009);
  // Corrupt for invalid deflate data (→ 1007).
  InflateResult decompress(const std::uint8_t* data, std::size_t len, std::string& out, std::size_t max_bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace conduit::wire
