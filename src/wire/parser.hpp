// Incremental RFC 6455 frame/message parser: a pure state machine with
// callbacks, fed bytes in arbitrary splits (one byte at a time works).
//
// Memory rule (no per-connection read buffer while idle): a frame that is complete in the input and is a
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
//         64-bit length with the top bit set, a length not in its minimal
//         encoding (§5.2 "MUST"), close payload of 1 byte, invalid close code,
//         RSV1 on a continuation or control frame.
//   1007: invalid UTF-8 in a Text message (a close reason with invalid UTF-8 is a bad close payload: 1002).
//   1009: message length (sum of its frames, known from each header) above
//         max_message_bytes — detected from the header, before any payload is
//         buffered.
//
// The state is set before each handler call (Closed before on_close, Failed
// before on_error), so a handler that inspects the parser sees the final state.
// A handler must not destroy the parser or call consume() re-entrantly.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
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
  explicit Parser(Role role, ParserLimits limits = {}) noexcept
      : max_message_bytes_(limits.max_message_bytes), role_(role), allow_rsv1_(limits.allow_rsv1) {}

  // Parses all of [data, data + len). Payload bytes in data are unmasked in
  // place. Returns false when the stream must stop reading: after on_error, or
  // after on_close (the bytes after a close frame are ignored).
  template <class Handler>
  bool consume(std::uint8_t* data, std::size_t len, Handler& h);

  // True when no partial frame or message is held, and so no heap memory.
  bool idle() const noexcept { return state_ != State::Payload && !held_ && message_op_ == 0; }
  // Bytes currently held for an incomplete message.
  std::size_t buffered_bytes() const noexcept {
    return held_ ? held_->message.size() + held_->control_len + held_->header_len : 0;
  }
  bool failed() const noexcept { return state_ == State::Failed; }
  bool closed() const noexcept { return state_ == State::Closed; }
  void set_limits(ParserLimits limits) noexcept {
    max_message_bytes_ = limits.max_message_bytes;
    allow_rsv1_ = limits.allow_rsv1;
  }
  ParserLimits limits() const noexcept { return {max_message_bytes_, allow_rsv1_}; }

 private:
  enum class State : std::uint8_t { Header, Payload, Failed, Closed };
  static constexpr std::size_t kMaxHeader = 14;
  static constexpr std::size_t kMaxControlPayload = 125;

  // Header size implied by the first two bytes (before the extended length is known).
  static std::size_t header_size(std::uint8_t b1) noexcept {
    const std::uint8_t len7 = b1 & 0x7F;
    return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
  }

  // Validates a complete header and loads the frame fields. Returns nullptr on
  // success, else the reason; *code receives the close code.
  const char* decode_header(const std::uint8_t* hp, std::uint16_t* code) noexcept;

  template <class Handler>
  bool fail(Handler& h, std::uint16_t code, const char* reason);
  template <class Handler>
  bool deliver_control(Handler& h, const std::uint8_t* data, std::size_t len);

  // Bytes kept across calls to consume(): the part of a message, a header or
  // a control frame that a read split. Allocated when a split happens and
  // freed as soon as it holds nothing, so that an idle parser is only the
  // frame state below (a server holds one parser per connection).
  struct Held {
    std::vector<std::uint8_t> message;  // fragments of the open message (unmasked)
    std::uint8_t header[kMaxHeader];
    std::uint8_t header_len = 0;
    std::uint8_t control_len = 0;  // bytes in control
    std::uint8_t control[kMaxControlPayload];
  };
  Held& held() {
    if (!held_) held_ = std::make_unique<Held>();
    return *held_;
  }
  void release_held_if_empty() noexcept {
    if (held_ && held_->message.empty() && held_->header_len == 0 && held_->control_len == 0) held_.reset();
  }
  std::size_t header_len() const noexcept { return held_ ? held_->header_len : 0; }

  void release_message() noexcept {
    if (held_) {
      held_->message = {};  // frees the capacity too
      release_held_if_empty();
    }
    message_op_ = 0;
  }

  bool message_is_text_uncompressed() const noexcept {
    return message_op_ == static_cast<std::uint8_t>(Opcode::Text) && !message_compressed_;
  }

  std::size_t message_size() const noexcept { return held_ ? held_->message.size() : 0; }

  // Layout: largest members first; the whole object is 40 bytes on LP64 (a
  // server holds one per connection).
  std::unique_ptr<Held> held_;  // null while nothing is split across reads
  std::uint64_t max_message_bytes_;
  std::uint64_t frame_remaining_ = 0;  // payload bytes of the current frame not yet seen
  Utf8Validator utf8_;                 // state of the open uncompressed Text message
  std::uint8_t mask_key_[4] = {};
  State state_ = State::Header;
  Role role_;
  std::uint8_t frame_op_ = 0;
  bool frame_fin_ : 1 = false;
  bool frame_masked_ : 1 = false;
  std::uint8_t mask_phase_ = 0;  // payload bytes of the current frame unmasked so far, mod 4
  std::uint8_t message_op_ = 0;  // Text/Binary of the open message, 0 when none
  bool message_compressed_ : 1 = false;
  bool allow_rsv1_ : 1;  // ParserLimits::allow_rsv1
};

inline const char* Parser::decode_header(const std::uint8_t* hp, std::uint16_t* code) noexcept {
  *code = close_code::protocol_error;
  const std::uint8_t b0 = hp[0];
  const std::uint8_t b1 = hp[1];
  const bool fin = (b0 & 0x80) != 0;
  const bool rsv1 = (b0 & 0x40) != 0;
  const std::uint8_t op = b0 & 0x0F;
  const bool masked = (b1 & 0x80) != 0;
  const std::uint8_t len7 = b1 & 0x7F;

  if (b0 & 0x30) return "RSV2/RSV3 set without a negotiated extension";
  if (op >= 0x8) {
    if (op > 0xA) return "reserved control opcode";
    if (!fin) return "fragmented control frame";
    if (len7 > kMaxControlPayload) return "control frame payload longer than 125 bytes";
    if (rsv1) return "RSV1 set on a control frame";
    if (op == 0x8 && len7 == 1) return "close frame with a 1-byte payload";
  } else if (op == 0x0) {
    if (message_op_ == 0) return "continuation frame without a started message";
    if (rsv1) return "RSV1 set on a continuation frame";
  } else if (op <= 0x2) {
    if (message_op_ != 0) return "new data frame while a fragmented message is open";
    if (rsv1 && !allow_rsv1_) return "RSV1 set without a negotiated extension";
  } else {
    return "reserved data opcode";
  }
  if (role_ == Role::Server) {
    if (!masked) return "unmasked frame from a client";
  } else if (masked) {
    return "masked frame from a server";
  }

  std::uint64_t len = len7;
  const std::uint8_t* rest = hp + 2;
  if (len7 == 126) {
    len = (std::uint64_t{rest[0]} << 8) | rest[1];
    if (len < 126) return "frame length not minimally encoded";
    rest += 2;
  } else if (len7 == 127) {
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | rest[i];
    if (len >> 63) return "64-bit frame length with the top bit set";
    if (len <= 0xFFFF) return "frame length not minimally encoded";
    rest += 8;
  }

  if (op < 0x8) {
    // Message size is checked against the sum of the frames' declared lengths,
    // so an oversize message fails before any of its payload is buffered.
    const std::uint64_t before = op == 0 ? message_size() : 0;
    if (len > max_message_bytes_ || before + len > max_message_bytes_) {
      *code = close_code::message_too_big;
      return "message larger than max_message_bytes";
    }
    if (op != 0) {
      message_op_ = op;
      message_compressed_ = rsv1;
      utf8_.reset();
    }
  }
  if (masked) std::memcpy(mask_key_, rest, 4);
  frame_op_ = op;
  frame_fin_ = fin;
  frame_masked_ = masked;
  frame_remaining_ = len;
  mask_phase_ = 0;
  return nullptr;
}

template <class Handler>
bool Parser::fail(Handler& h, std::uint16_t code, const char* reason) {
  state_ = State::Failed;
  held_.reset();
  message_op_ = 0;
  h.on_error(code, reason);
  return false;
}

template <class Handler>
bool Parser::deliver_control(Handler& h, const std::uint8_t* data, std::size_t len) {
  switch (static_cast<Opcode>(frame_op_)) {
    case Opcode::Ping:
      h.on_ping(data, len);
      return true;
    case Opcode::Pong:
      h.on_pong(data, len);
      return true;
    default:
      break;
  }
  // Close. A 1-byte payload was rejected in decode_header.
  if (len == 0) {
    state_ = State::Closed;
    release_message();
    h.on_close(close_code::no_status, std::string_view{});
    return false;
  }
  const std::uint16_t code = static_cast<std::uint16_t>((data[0] << 8) | data[1]);
  if (!is_valid_wire_close_code(code)) return fail(h, close_code::protocol_error, "invalid close code");
  // A bad close payload is a protocol error (RFC 6455 §5.5.1 and the
  // rule; Autobahn 7.5.1 accepts 1002 or 1007; Beast also answers 1002).
  if (!is_valid_utf8(data + 2, len - 2)) return fail(h, close_code::protocol_error, "invalid UTF-8 in close reason");
  state_ = State::Closed;
  release_message();
  h.on_close(code, std::string_view(reinterpret_cast<const char*>(data + 2), len - 2));
  return false;
}

template <class Handler>
bool Parser::consume(std::uint8_t* data, std::size_t len, Handler& h) {
  if (state_ == State::Failed || state_ == State::Closed) return false;
  std::uint8_t* p = data;
  std::uint8_t* const end = data + len;

  for (;;) {
    if (state_ == State::Header) {
      if (p == end) return true;
      const std::uint8_t* hp;
      std::uint8_t header_copy[kMaxHeader];
      std::size_t avail = static_cast<std::size_t>(end - p);
      if (header_len() == 0 && avail >= 2 && avail >= header_size(p[1])) {
        // Whole header in the input: decode it where it is.
        hp = p;
        p += header_size(p[1]);
      } else {
        // Accumulate a split header: first the two bytes that give its size,
        // then the rest.
        Held& k = held();
        if (k.header_len < 2) {
          const std::size_t n = std::min<std::size_t>(2 - k.header_len, avail);
          std::memcpy(k.header + k.header_len, p, n);
          k.header_len = static_cast<std::uint8_t>(k.header_len + n);
          p += n;
          avail -= n;
          if (k.header_len < 2) return true;
        }
        const std::size_t need = header_size(k.header[1]);
        const std::size_t n = std::min<std::size_t>(need - k.header_len, avail);
        std::memcpy(k.header + k.header_len, p, n);
        k.header_len = static_cast<std::uint8_t>(k.header_len + n);
        p += n;
        if (k.header_len < need) return true;
        // Decoded from a copy: the block may be freed below, before the
        // frame's fields are used.
        std::memcpy(header_copy, k.header, need);
        k.header_len = 0;
        release_held_if_empty();
        hp = header_copy;
      }
      std::uint16_t code;
      if (const char* reason = decode_header(hp, &code)) return fail(h, code, reason);
      state_ = State::Payload;

      // Fast path: a whole single-frame message present in the input is
      // unmasked in place and delivered as a view, with no copy and no
      // allocation.
      if (frame_op_ != 0 && frame_op_ < 0x8 && frame_fin_ && frame_remaining_ <= static_cast<std::uint64_t>(end - p)) {
        const std::size_t n = static_cast<std::size_t>(frame_remaining_);
        if (frame_masked_) apply_mask(p, n, mask_key_);
        if (message_is_text_uncompressed() && !is_valid_utf8(p, n)) {
          return fail(h, close_code::invalid_payload, "invalid UTF-8 in text message");
        }
        std::uint8_t* payload = p;
        p += n;
        const Opcode op = static_cast<Opcode>(message_op_);
        const bool compressed = message_compressed_;
        message_op_ = 0;
        frame_remaining_ = 0;
        state_ = State::Header;
        h.on_message(op, payload, n, compressed);
        if (state_ != State::Header) return false;  // the handler cannot change it, but stay safe
        continue;
      }
    }

    // State::Payload
    const std::size_t avail = static_cast<std::size_t>(end - p);
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(frame_remaining_, avail));
    if (frame_op_ >= 0x8) {
      // Control frame. Complete in the input and nothing held yet → view.
      const std::size_t held_control = held_ ? held_->control_len : 0;
      if (held_control == 0 && n == frame_remaining_) {
        if (frame_masked_) apply_mask(p, n, mask_key_);
        std::uint8_t* payload = p;
        p += n;
        frame_remaining_ = 0;
        state_ = State::Header;
        if (!deliver_control(h, payload, n)) return false;
        continue;
      }
      // Nothing of the payload in this read: wait for it without taking a
      // block (an empty block would make an idle parser look busy).
      if (n == 0) return true;
      Held& k = held();
      if (frame_masked_) apply_mask(p, n, mask_key_, mask_phase_);
      std::memcpy(k.control + k.control_len, p, n);
      k.control_len = static_cast<std::uint8_t>(k.control_len + n);
      mask_phase_ = static_cast<std::uint8_t>((mask_phase_ + n) & 3);
      p += n;
      frame_remaining_ -= n;
      if (frame_remaining_ != 0) return true;
      state_ = State::Header;
      // Delivered from the stack, so that the block can be freed first (an
      // idle parser holds no heap memory) and a close can release the
      // message without freeing the payload under the handler.
      std::uint8_t payload[kMaxControlPayload];
      const std::size_t payload_len = k.control_len;
      std::memcpy(payload, k.control, payload_len);
      k.control_len = 0;
      release_held_if_empty();
      if (!deliver_control(h, payload, payload_len)) return false;
      continue;
    }

    // Data frame (a fragment, or a single-frame message split across reads).
    if (n != 0) {
      if (frame_masked_) apply_mask(p, n, mask_key_, mask_phase_);
      mask_phase_ = static_cast<std::uint8_t>((mask_phase_ + n) & 3);
      if (message_is_text_uncompressed() && !utf8_.feed(p, n)) {
        return fail(h, close_code::invalid_payload, "invalid UTF-8 in text message");
      }
      std::vector<std::uint8_t>& m = held().message;
      m.insert(m.end(), p, p + n);
      p += n;
      frame_remaining_ -= n;
    }
    if (frame_remaining_ != 0) return true;
    state_ = State::Header;
    if (!frame_fin_) continue;
    if (message_is_text_uncompressed() && !utf8_.complete()) {
      return fail(h, close_code::invalid_payload, "text message ends inside a UTF-8 sequence");
    }
    const Opcode op = static_cast<Opcode>(message_op_);
    const bool compressed = message_compressed_;
    message_op_ = 0;
    // An empty vector may have a null data(); hand out a valid pointer anyway.
    h.on_message(op, message_size() == 0 ? p : held_->message.data(), message_size(), compressed);
    release_message();
  }
}

}  // namespace conduit::wire
