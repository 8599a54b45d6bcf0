// Differential fuzz target: the same client byte stream (what a server reads
// after the upgrade) goes to our wire::Parser (Role::Server, fed in chunks
// derived from the input) and to Boost.Beast's websocket::stream in the server
// role, reading from an in-memory beast::test::stream after accepting a canned
// upgrade request. Both must deliver the same messages, pings, pongs and close
// up to the first error, and end with the same verdict class.
//
// Known, RFC-legitimate differences are normalised explicitly (see
// "Divergences" below): the stream is cut before the first frame on which the
// two implementations are expected to disagree, the prefix must match
// exactly, and then the whole stream must produce exactly the documented pair
// of verdicts. Anything else aborts with both outcomes printed.
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>

#include "fuzz_common.hpp"

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;
using namespace conduit::fuzz;

namespace {

constexpr char kUpgradeRequest[] =
    "GET /chat HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

Verdict classify_beast_error(const beast::error_code& ec) {
  if (ec == net::error::eof) return Verdict::Ok;  // input ended, possibly mid-frame
  if (ec == websocket::error::closed) return Verdict::Closed;
  if (ec == websocket::error::message_too_big) return Verdict::TooBig;
  // Invalid UTF-8 in a text message (bad_frame_payload) is 1007; in a close
  // reason (bad_close_payload) it is a bad close payload, 1002, for both.
  if (ec == websocket::error::bad_frame_payload) return Verdict::BadUtf8;
  if (ec == websocket::error::bad_opcode || ec == websocket::error::bad_data_frame ||
      ec == websocket::error::bad_continuation || ec == websocket::error::bad_reserved_bits ||
      ec == websocket::error::bad_control_fragment || ec == websocket::error::bad_control_size ||
      ec == websocket::error::bad_unmasked_frame || ec == websocket::error::bad_masked_frame ||
      ec == websocket::error::bad_size || ec == websocket::error::bad_close_code ||
      ec == websocket::error::bad_close_size || ec == websocket::error::bad_close_payload)
    return Verdict::ProtocolError;
  std::fprintf(stderr, "FUZZ HARNESS: unexpected Beast error %s\n", ec.message().c_str());
  std::abort();
}

Outcome run_beast(const std::uint8_t* stream, std::size_t len, std::uint64_t max_message_bytes) {
  Outcome out;
  net::io_context ioc;
  beast::test::stream peer(ioc);
  websocket::stream<beast::test::stream> ws(ioc);
  ws.next_layer().connect(peer);  // our replies (101, pongs, close) go to peer
  ws.next_layer().append(beast::string_view(kUpgradeRequest, sizeof kUpgradeRequest - 1));
  ws.next_layer().append(beast::string_view(reinterpret_cast<const char*>(stream), len));
  ws.next_layer().close_remote();  // after the bytes: eof
  ws.read_message_max(max_message_bytes);
  ws.auto_fragment(false);
  ws.set_option(websocket::permessage_deflate{});  // all off: no extension offered or accepted
  ws.control_callback([&out](websocket::frame_type kind, beast::string_view payload) {
    switch (kind) {
      case websocket::frame_type::ping:
        out.events.push_back({Kind::Ping, 0, std::string(payload)});
        break;
      case websocket::frame_type::pong:
        out.events.push_back({Kind::Pong, 0, std::string(payload)});
        break;
      case websocket::frame_type::close:
        break;  // recorded from ws.reason() below
    }
  });
  beast::error_code ec;
  ws.accept(ec);
  if (ec) {
    std::fprintf(stderr, "FUZZ HARNESS: Beast refused the canned upgrade: %s\n", ec.message().c_str());
    std::abort();
  }
  for (;;) {
    beast::flat_buffer buffer;
    ws.read(buffer, ec);
    if (ec) {
      out.verdict = classify_beast_error(ec);
      out.detail = ec.message();
      if (out.verdict == Verdict::Closed) {
        const auto& cr = ws.reason();
        // Beast reports an empty close payload as code 0 ("none"); the
        // contract of our parser reports it as 1005 (no status), §7.1.5.
        const std::uint16_t code = cr.code == websocket::close_code::none ? conduit::wire::close_code::no_status
                                                                          : static_cast<std::uint16_t>(cr.code);
        out.events.push_back({Kind::Close, code, std::string(cr.reason.data(), cr.reason.size())});
      }
      return out;
    }
    const auto data = buffer.data();
    out.events.push_back({ws.got_text() ? Kind::Text : Kind::Binary, 0,
                          std::string(static_cast<const char*>(data.data()), data.size())});
  }
}

// ---- Divergences --------------------------------------------------------------
//
// D1  64-bit length with the most significant bit set (RFC 6455 §5.2: "the
//     most significant bit MUST be 0"). Our parser fails with 1002. Beast has no
//     such check: the length is canonical (>= 65536), so it fails later with
//     message_too_big (1009). When the header is otherwise valid we expect
//     ours = 1002, Beast = 1009; otherwise both report 1002 for the other
//     violation.
// D2  Close code 1014. IANA registered 1014 ("Bad Gateway", RFC 6455 §7.4.2
//     range 1000-2999 is for the protocol and its registry); our parser accepts
//     it as a valid wire code. Beast treats 1014 as reserved (bad_close_code,
//     1002). Expected: ours = close(1014) (or 1002 if the reason is not UTF-8),
//     Beast = 1002.
// D3  Close code >= 5000. RFC 6455 §7.4.2 defines codes only up to 4999; our
//     parser rejects the rest with 1002. Beast accepts any code >= 3000.
//     Expected: ours = 1002, Beast = close(code) (or 1002 for a non-UTF-8 reason).
// D4  Close frame with a 1-byte payload (invalid, §5.5.1 / §7.1.5) whose
//     payload byte has not arrived yet. Our parser fails with 1002 as soon as
//     the header is complete (the length alone makes the frame invalid); Beast
//     buffers a control frame's whole payload before looking at it, so when
//     the input ends first it reports nothing (eof). Expected: ours = 1002,
//     Beast = ok(incomplete) (or 1002 for another header violation it checks
//     first).
// D5  Beast bug, not an RFC choice: a Text message whose last fragment is an
//     empty FIN continuation frame is delivered by Beast even when its UTF-8
//     is incomplete (e.g. "a\xE2" + empty final frame): Beast runs its
//     end-of-message UTF-8 check only when a frame carries payload bytes.
//     RFC 6455 §8.1 requires failing the connection (1007), which is what our
//     parser does. Expected: ours = 1007, Beast delivers that Text message
//     (and goes on reading; what follows is not compared).
// In every case the stream is first cut before the divergent frame and the
// prefix must match exactly; the divergent frame ends the connection on both
// sides, so nothing after it matters.
enum class Divergence { None, MsbLength, Close1014, CloseAbove4999, EarlyClose1Byte, EmptyFinalFragmentBadUtf8 };

struct DivergentFrame {
  Divergence kind = Divergence::None;
  ScannedFrame frame;
  bool message_open = false;  // a fragmented data message is open before it
  std::string text_so_far;    // EmptyFinalFragmentBadUtf8: the Text message's payload
};

DivergentFrame find_divergence(const std::uint8_t* stream, std::size_t len) {
  DivergentFrame d;
  bool open = false;
  bool text = false;
  std::string text_so_far;  // payload of the open Text message
  for (const ScannedFrame& f : scan_frames(stream, len)) {
    if (f.header_len == 0) break;
    if (f.op < 8 && f.len >> 63) {
      d = {Divergence::MsbLength, f, open};
      return d;
    }
    if (f.op == 0x8 && f.payload_complete && f.payload.size() >= 2) {
      const unsigned code = (static_cast<unsigned char>(f.payload[0]) << 8) | static_cast<unsigned char>(f.payload[1]);
      if (code == 1014 || code >= 5000) {
        d = {code == 1014 ? Divergence::Close1014 : Divergence::CloseAbove4999, f, open};
        return d;
      }
    }
    if (f.op == 0x8 && f.len7 == 1 && !f.payload_complete) {
      d = {Divergence::EarlyClose1Byte, f, open};
      return d;
    }
    if (!f.payload_complete) break;
    // (a header violation in the empty frame would be 1002 on both sides)
    if (f.op == 0 && f.fin && f.len == 0 && open && text && f.masked && !f.rsv1 && !f.rsv2 && !f.rsv3 &&
        !ref_utf8(reinterpret_cast<const std::uint8_t*>(text_so_far.data()), text_so_far.size())) {
      d = {Divergence::EmptyFinalFragmentBadUtf8, f, open};
      d.text_so_far = text_so_far;
      return d;
    }
    if (f.op == 1 || f.op == 2) {
      text = f.op == 1;
      text_so_far.clear();
    }
    if (f.op <= 2) text_so_far += f.payload;
    if (f.op == 1 || f.op == 2 || f.op == 0) open = !f.fin;
  }
  return d;
}

[[noreturn]] void report_mismatch(const char* what, const std::uint8_t* stream, std::size_t len, const Input& in,
                                  const Outcome& ours, const Outcome& theirs) {
  std::fprintf(stderr, "\nFUZZ MISMATCH (%s), max_message_bytes=%llu seed=%u\n", what,
               static_cast<unsigned long long>(in.max_message_bytes), in.seed);
  print_bytes(stream, len);
  print_outcome("conduit wire::Parser", ours);
  print_outcome("Boost.Beast        ", theirs);
  std::abort();
}

// Expected (ours, Beast) verdicts on the divergent frame, reached in a sound state.
void check_divergence(const DivergentFrame& d, const Outcome& ours, const Outcome& theirs, const std::uint8_t* stream,
                      std::size_t len, const Input& in) {
  const ScannedFrame& f = d.frame;
  Verdict want_ours, want_beast;
  std::uint16_t close_code = 0;
  if (d.kind == Divergence::EmptyFinalFragmentBadUtf8) {
    // When the empty final frame carries another header violation (e.g. a
    // length that is not minimally encoded), both fail it with 1002 before
    // any UTF-8 question arises: identical outcomes are agreement.
    if (ours.verdict == Verdict::ProtocolError && theirs.verdict == Verdict::ProtocolError &&
        ours.events.size() == theirs.events.size() &&
        std::equal(ours.events.begin(), ours.events.end(), theirs.events.begin())) {
      return;
    }
    // The header is valid (both accepted the fragments before it); Beast
    // delivers the message, we fail with 1007 and deliver nothing more.
    const std::size_t n = ours.events.size();
    const bool ok = ours.verdict == Verdict::BadUtf8 && theirs.events.size() > n &&
                    std::equal(ours.events.begin(), ours.events.end(), theirs.events.begin()) &&
                    theirs.events[n] == Event{Kind::Text, 0, d.text_so_far};
    if (!ok) {
      std::fprintf(stderr, "expected on the empty final fragment at offset %zu: ours 1007, Beast delivers the text\n",
                   f.offset);
      report_mismatch("documented divergence did not hold", stream, len, in, ours, theirs);
    }
    return;
  }
  if (d.kind == Divergence::MsbLength) {
    // Header violations Beast checks before the length (all 1002 in both).
    const bool data_op_ok = f.op == 0 ? d.message_open : !d.message_open;
    const bool other_violation = f.rsv1 || f.rsv2 || f.rsv3 || !f.masked || !data_op_ok || (f.op != 0 && f.op > 2);
    want_ours = Verdict::ProtocolError;
    want_beast = other_violation ? Verdict::ProtocolError : Verdict::TooBig;
  } else if (d.kind == Divergence::EarlyClose1Byte) {
    const bool header_ok = f.fin && !f.rsv1 && !f.rsv2 && !f.rsv3 && f.masked;
    want_ours = Verdict::ProtocolError;
    want_beast = header_ok ? Verdict::Ok : Verdict::ProtocolError;
  } else {
    const bool header_ok = f.fin && !f.rsv1 && !f.rsv2 && !f.rsv3 && f.masked && f.len7 <= 125;
    close_code = static_cast<std::uint16_t>((static_cast<unsigned char>(f.payload[0]) << 8) |
                                            static_cast<unsigned char>(f.payload[1]));
    const bool reason_ok = ref_utf8(reinterpret_cast<const std::uint8_t*>(f.payload.data()) + 2, f.payload.size() - 2);
    // A close reason that is not UTF-8 is a bad close payload: 1002 on both sides.
    const Verdict accepted = reason_ok ? Verdict::Closed : Verdict::ProtocolError;
    if (!header_ok) {
      want_ours = want_beast = Verdict::ProtocolError;
    } else if (d.kind == Divergence::Close1014) {
      want_ours = accepted, want_beast = Verdict::ProtocolError;
    } else {
      want_ours = Verdict::ProtocolError, want_beast = accepted;
    }
  }
  // Events before the divergent frame are equal (checked on the prefix); the
  // only extra event allowed is the accepted close itself.
  auto strip_close = [](const Outcome& o) {
    std::vector<Event> ev = o.events;
    if (o.verdict == Verdict::Closed && !ev.empty() && ev.back().kind == Kind::Close) ev.pop_back();
    return ev;
  };
  bool ok = ours.verdict == want_ours && theirs.verdict == want_beast && strip_close(ours) == strip_close(theirs);
  if (ok && ours.verdict == Verdict::Closed) ok = ours.events.back().code == close_code;
  if (ok && theirs.verdict == Verdict::Closed) ok = theirs.events.back().code == close_code;
  if (!ok) {
    std::fprintf(stderr, "expected on the divergent frame at offset %zu: ours %s, Beast %s\n", f.offset,
                 verdict_name(want_ours), verdict_name(want_beast));
    report_mismatch("documented divergence did not hold", stream, len, in, ours, theirs);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in;
  if (!decode_input(data, size, in)) return 0;
  const std::uint8_t* stream = in.stream;
  const std::size_t len = in.stream_len;

  const DivergentFrame d = find_divergence(stream, len);
  const std::size_t common = d.kind == Divergence::None ? len : d.frame.offset;

  const Outcome ours = run_ours(stream, common, make_splits(common, in.seed), in.max_message_bytes);
  const Outcome theirs = run_beast(stream, common, in.max_message_bytes);
  if (!ours.same_as(theirs)) report_mismatch("verdicts differ", stream, common, in, ours, theirs);
  static const bool verbose = std::getenv("FUZZ_VERBOSE") != nullptr;  // for replaying one input
  if (verbose) {
    print_outcome("conduit (common prefix)", ours);
    print_outcome("Beast   (common prefix)", theirs);
  }

  if (d.kind != Divergence::None && ours.verdict == Verdict::Ok) {
    const Outcome ours_full = run_ours(stream, len, make_splits(len, in.seed), in.max_message_bytes);
    const Outcome theirs_full = run_beast(stream, len, in.max_message_bytes);
    if (verbose) {
      print_outcome("conduit (divergent frame)", ours_full);
      print_outcome("Beast   (divergent frame)", theirs_full);
    }
    check_divergence(d, ours_full, theirs_full, stream, len, in);
  }
  return 0;
}
