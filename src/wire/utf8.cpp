// UTF-8 validation as a small DFA over byte classes. The classes and states
// are chosen so that every invalid sequence is rejected at the first byte that
// makes it impossible (an overlong E0 80.. fails on the 80, a surrogate
// ED A0.. on the A0, F4 90.. on the 90), which is what lets the parser close
// with 1007 mid-message instead of at the end.
#include "wire/utf8.hpp"

#include <array>
#include <cstring>

namespace conduit::wire {
namespace {

// Byte classes.
constexpr std::uint8_t kAscii = 0;    // 00..7F
constexpr std::uint8_t kCont80 = 1;   // 80..8F
constexpr std::uint8_t kCont90 = 2;   // 90..9F
constexpr std::uint8_t kContA0 = 3;   // A0..BF
constexpr std::uint8_t kInvalid = 4;  // C0, C1, F5..FF: never valid anywhere
constexpr std::uint8_t kLead2 = 5;    // C2..DF
constexpr std::uint8_t kLeadE0 = 6;   // E0: second byte must be A0..BF (no overlongs)
constexpr std::uint8_t kLead3 = 7;    // E1..EC, EE, EF
constexpr std::uint8_t kLeadED = 8;   // ED: second byte must be 80..9F (no surrogates)
constexpr std::uint8_t kLeadF0 = 9;   // F0: second byte must be 90..BF (no overlongs)
constexpr std::uint8_t kLead4 = 10;   // F1..F3
constexpr std::uint8_t kLeadF4 = 11;  // F4: second byte must be 80..8F (<= U+10FFFF)
constexpr std::uint8_t kClassCount = 12;

// States. kAccept and kReject must match the header's contract (0 and 1).
constexpr std::uint8_t kAccept = 0;
constexpr std::uint8_t kReject = 1;
constexpr std::uint8_t kNeed1 = 2;    // one more continuation byte (any 80..BF)
constexpr std::uint8_t kNeed2 = 3;    // two more, the next one unrestricted
constexpr std::uint8_t kNeed3 = 4;    // three more, the next one unrestricted
constexpr std::uint8_t kAfterE0 = 5;  // next must be A0..BF, then kNeed1
constexpr std::uint8_t kAfterED = 6;  // next must be 80..9F, then kNeed1
constexpr std::uint8_t kAfterF0 = 7;  // next must be 90..BF, then kNeed2
constexpr std::uint8_t kAfterF4 = 8;  // next must be 80..8F, then kNeed2
constexpr std::uint8_t kStateCount = 9;
static_assert(kReject == Utf8Validator::reject_state);

constexpr std::array<std::uint8_t, 256> make_classes() {
  std::array<std::uint8_t, 256> c{};
  for (int b = 0; b < 256; ++b) {
    std::uint8_t cls = kInvalid;
    if (b <= 0x7F)
      cls = kAscii;
    else if (b <= 0x8F)
      cls = kCont80;
    else if (b <= 0x9F)
      cls = kCont90;
    else if (b <= 0xBF)
      cls = kContA0;
    else if (b <= 0xC1)
      cls = kInvalid;
    else if (b <= 0xDF)
      cls = kLead2;
    else if (b == 0xE0)
      cls = kLeadE0;
    else if (b == 0xED)
      cls = kLeadED;
    else if (b <= 0xEF)
      cls = kLead3;
    else if (b == 0xF0)
      cls = kLeadF0;
    else if (b <= 0xF3)
      cls = kLead4;
    else if (b == 0xF4)
      cls = kLeadF4;
    c[static_cast<std::size_t>(b)] = cls;
  }
  return c;
}

constexpr std::array<std::uint8_t, kStateCount * kClassCount> make_transitions() {
  std::array<std::uint8_t, kStateCount * kClassCount> t{};
  for (auto& v : t) v = kReject;
  auto set = [&t](std::uint8_t from, std::uint8_t cls, std::uint8_t to) { t[from * kClassCount + cls] = to; };
  set(kAccept, kAscii, kAccept);
  set(kAccept, kLead2, kNeed1);
  set(kAccept, kLeadE0, kAfterE0);
  set(kAccept, kLead3, kNeed2);
  set(kAccept, kLeadED, kAfterED);
  set(kAccept, kLeadF0, kAfterF0);
  set(kAccept, kLead4, kNeed3);
  set(kAccept, kLeadF4, kAfterF4);
  for (std::uint8_t cls : {kCont80, kCont90, kContA0}) {
    set(kNeed1, cls, kAccept);
    set(kNeed2, cls, kNeed1);
    set(kNeed3, cls, kNeed2);
  }
  set(kAfterE0, kContA0, kNeed1);
  set(kAfterED, kCont80, kNeed1);
  set(kAfterED, kCont90, kNeed1);
  set(kAfterF0, kCont90, kNeed2);
  set(kAfterF0, kContA0, kNeed2);
  set(kAfterF4, kCont80, kNeed2);
  return t;
}

constexpr auto kClasses = make_classes();
constexpr auto kTransitions = make_transitions();

constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

// Returns the number of leading bytes of [p, p+len) that are ASCII, checked 8 at
// a time (text messages are mostly ASCII, and this is where their time goes).
inline std::size_t ascii_prefix(const std::uint8_t* p, std::size_t len) noexcept {
  std::size_t i = 0;
  for (; i + 16 <= len; i += 16) {
    std::uint64_t a, b;
    std::memcpy(&a, p + i, 8);
    std::memcpy(&b, p + i + 8, 8);
    if ((a | b) & kHighBits) break;
  }
  for (; i + 8 <= len; i += 8) {
    std::uint64_t a;
    std::memcpy(&a, p + i, 8);
    if (a & kHighBits) break;
  }
  while (i < len && p[i] < 0x80) ++i;
  return i;
}

// Runs the DFA from state over [p, p+len); stops early on reject. Re-enters the
// ASCII fast path whenever it is back at a code point boundary.
inline std::uint32_t run(std::uint32_t state, const std::uint8_t* p, std::size_t len) noexcept {
  std::size_t i = 0;
  while (i < len) {
    if (state == kAccept) {
      i += ascii_prefix(p + i, len - i);
      if (i == len) break;
    }
    state = kTransitions[state * kClassCount + kClasses[p[i]]];
    if (state == kReject) return kReject;
    ++i;
  }
  return state;
}

}  // namespace

bool Utf8Validator::feed(const std::uint8_t* data, std::size_t len) noexcept {
  if (state_ == kReject) return false;
  state_ = run(state_, data, len);
  return state_ != kReject;
}

bool is_valid_utf8(const std::uint8_t* data, std::size_t len) noexcept { return run(kAccept, data, len) == kAccept; }

}  // namespace conduit::wire
