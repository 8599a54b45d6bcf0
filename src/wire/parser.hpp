// Incremental RFC 6455 frame/message parser: a pure state machine with
// callbacks, fed bytes in arbitrary splits (one byte at a time works).
//
// Memory rule (GUIDE rule 1): a frame that is complete in the input and is a
// whole message is unmasked in place and handed to the handler as a view into
// the caller's buffer (zero copy). Only fragments of a message that spans
// several reads/frames are copied into the parser's message buffer, which is
// released (capacity freed) once the message is delivered. An idle parser owns
// no heap memory.
//
// Handler concept (all called synchronously from consume()):
//   void on_message(Opcode op /* Text|Binary */, std::uint8_t* data, std::size_t len, bool compressed);
//   void on_ping(const std::uint8_t* data, std::size_t len);
//   void on_pong(const std::uint8_t* data, std::size_t len);
//   void on_close(std::uint16_t code /* 1005 when the payload is empty */, std::string_view reason);
//   void on_error(std::uint16_t close_code /* 1002, 1007, 1009 */, const char* reason);
// data is valid only during the call. For uncompressed Text messages UTF-8 is
// validated incrementally (an invalid byte is reported with 1007 as soon as it
// arrives, even mid-fragment); for compressed messages (RSV1 on the first frame,
// only accepted when ParserLimits::allow_rsv1) validation is the caller's job
// after inflating.
//
// Protocol errors (→ on_error, consume() returns false, parser stays failed):
//   1002: RSV1 without allow_rsv1, RSV2/RSV3, reserved opcodes, control frame
//         with FIN=0 or payload > 125, continuation without a started message,
//         Text/Binary while a fragmented message is open, unmasked frame from a
//         client (Role::Server) or masked frame from a server (Role::Client),
//         64-bit length with the top bit set, close payload of 1 byte, invalid
//         close code, RSV1 on a continuation or control frame.
//   1007: invalid UTF-8 in a Text message or in a close reason.
//   1009: message length (sum of its frames, known from each header) above
//         max_message_bytes — detected from the header, before any payload is
//         buffered.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "wire/mask.hpp"
#include "wire/opcode.hpp"
#include "wire/utf8.hpp"

namespace conduit::wire {

enum class Role : std::uint8_t {
  Server,  // parses client frames: masking required
  Client,  // parses server frames: masking forbidden
};

struct ParserLimits {
  std::uint64_t max_message_bytes = 65536;  // payload bytes of one message (all fragments)
  bool allow_rsv1 = false;                  // true once permessage-deflate is negotiated
};

class Parser {
 public:
  explicit Parser(Role role, ParserLimits limits = {}) noexcept;

  // Parses all of [data, data + len). Payload bytes in data are unmasked in
  // place. Returns false when the stream must stop reading: after on_error, or
  // after on_close (the bytes after a close frame are ignored).
  template <class Handler>
  bool consume(std::uint8_t* data, std::size_t len, Handler& h);

  // True when no partial frame or message is held (and no heap memory).
  bool idle() const noexcept;
  // Bytes currently held for an incomplete message.
  std::size_t buffered_bytes() const noexcept;
  bool failed() const noexcept { return state_ == State::Failed; }
  bool closed() const noexcept { return state_ == State::Closed; }
  void set_limits(ParserLimits limits) noexcept { limits_ = limits; }
  const ParserLimits& limits() const noexcept { return limits_; }

 private:
  enum class State : std::uint8_t { Header, Payload, Failed, Closed };
  // Implementation details are the implementer's; keep the object small
  // (it lives in every connection).
  State state_ = State::Header;
  Role role_;
  ParserLimits limits_;
};

}  // namespace conduit::wire
