#include "wire/deflate.hpp"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <new>
#include <vector>

namespace conduit::wire {
namespace {

constexpr std::string_view kExtensionName = "permessage-deflate";
// §7.2.1: a message's compressed data ends with an empty stored block whose
// last four bytes (00 00 FF FF) are removed on the wire and re-appended before
// inflating.
constexpr std::uint8_t kFlushTail[4] = {0x00, 0x00, 0xFF, 0xFF};

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Splits s at sep (no quoting: none of permessage-deflate's values can contain
// ',' or ';').
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    const std::size_t pos = s.find(sep);
    out.push_back(trim(s.substr(0, pos)));
    if (pos == std::string_view::npos) break;
    s.remove_prefix(pos + 1);
  }
  return out;
}

// One parsed permessage-deflate offer or response. window bits: 0 = absent,
// -1 = present without a value (only legal for client_max_window_bits).
struct Element {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 0;
  int client_max_window_bits = 0;
};

bool parse_window_bits(std::string_view value, int* out) {
  // RFC 7692 §7.1.2: the value may be a quoted-string.
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
  if (value.empty() || value.size() > 2) return false;
  if (value.size() == 2 && value[0] == '0') return false;  // "1*DIGIT without leading zero"
  int v = 0;
  const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || ptr != value.data() + value.size()) return false;
  if (v < 8 || v > 15) return false;
  *out = v;
  return true;
}

// Parses "permessage-deflate; p1; p2=v" into e. False when the element is not
// permessage-deflate or has an unknown, duplicate or malformed parameter.
bool parse_element(std::string_view element, Element& e) {
  const std::vector<std::string_view> parts = split(element, ';');
  if (!iequals(parts[0], kExtensionName)) return false;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    std::string_view name = parts[i];
    std::string_view value;
    bool has_value = false;
    if (const std::size_t eq = name.find('='); eq != std::string_view::npos) {
      value = trim(name.substr(eq + 1));
      name = trim(name.substr(0, eq));
      has_value = true;
    }
    if (iequals(name, "server_no_context_takeover")) {
      if (has_value || e.server_no_context_takeover) return false;
      e.server_no_context_takeover = true;
    } else if (iequals(name, "client_no_context_takeover")) {
      if (has_value || e.client_no_context_takeover) return false;
      e.client_no_context_takeover = true;
    } else if (iequals(name, "server_max_window_bits")) {
      if (!has_value || e.server_max_window_bits != 0) return false;
      if (!parse_window_bits(value, &e.server_max_window_bits)) return false;
    } else if (iequals(name, "client_max_window_bits")) {
      if (e.client_max_window_bits != 0) return false;
      if (!has_value) {
        e.client_max_window_bits = -1;
      } else if (!parse_window_bits(value, &e.client_max_window_bits)) {
        return false;
      }
    } else {
      return false;
    }
  }
  return true;
}

int clamp_bits(int bits) { return std::clamp(bits, 8, 15); }

}  // namespace

std::optional<DeflateNegotiation> negotiate_deflate(std::string_view offers, const DeflateConfig& config) {
  if (!config.enabled) return std::nullopt;
  for (std::string_view element : split(offers, ',')) {
    Element offer;
    if (element.empty() || !parse_element(element, offer)) continue;

    DeflateNegotiation n;
    DeflateParams& p = n.params;
    p.server_no_context_takeover = offer.server_no_context_takeover || config.server_no_context_takeover;
    p.client_no_context_takeover = offer.client_no_context_takeover || config.client_no_context_takeover;
    // Our own window: never above what the client can inflate.
    const int server_cap = clamp_bits(config.server_max_window_bits);
    p.server_max_window_bits =
        offer.server_max_window_bits > 0 ? std::min(offer.server_max_window_bits, server_cap) : server_cap;
    // The client's window: we may only lower it when the client said it
    // understands the parameter (offered it), and never above its own value.
    const int client_cap = clamp_bits(config.client_max_window_bits);
    bool answer_client_bits = false;
    if (offer.client_max_window_bits > 0) {
      p.client_max_window_bits = std::min(offer.client_max_window_bits, client_cap);
      answer_client_bits = true;
    } else if (offer.client_max_window_bits == -1 && client_cap < 15) {
      p.client_max_window_bits = client_cap;
      answer_client_bits = true;
    } else {
      p.client_max_window_bits = 15;
    }

    n.response.assign(kExtensionName);
    if (p.server_no_context_takeover) n.response.append("; server_no_context_takeover");
    if (p.client_no_context_takeover) n.response.append("; client_no_context_takeover");
    if (offer.server_max_window_bits > 0 || p.server_max_window_bits < 15) {
      n.response.append("; server_max_window_bits=").append(std::to_string(p.server_max_window_bits));
    }
    if (answer_client_bits) {
      n.response.append("; client_max_window_bits=").append(std::to_string(p.client_max_window_bits));
    }
    return n;
  }
  return std::nullopt;
}

std::string make_deflate_offer(const DeflateConfig& config) {
  std::string offer(kExtensionName);
  if (config.server_no_context_takeover) offer.append("; server_no_context_takeover");
  if (config.client_no_context_takeover) offer.append("; client_no_context_takeover");
  const int server_bits = clamp_bits(config.server_max_window_bits);
  if (server_bits < 15) offer.append("; server_max_window_bits=").append(std::to_string(server_bits));
  const int client_bits = clamp_bits(config.client_max_window_bits);
  // Valueless client_max_window_bits tells the server it may pick our window.
  if (client_bits < 15) {
    offer.append("; client_max_window_bits=").append(std::to_string(client_bits));
  } else {
    offer.append("; client_max_window_bits");
  }
  return offer;
}

std::optional<DeflateParams> accept_deflate_response(std::string_view response, const DeflateConfig& config) {
  const std::vector<std::string_view> elements = split(response, ',');
  if (elements.size() != 1) return std::nullopt;  // we offered one extension; an answer has one element
  Element e;
  if (!parse_element(elements[0], e)) return std::nullopt;
  if (e.client_max_window_bits == -1) return std::nullopt;  // a response must give a value
  DeflateParams p;
  p.server_no_context_takeover = e.server_no_context_takeover;
  p.client_no_context_takeover = e.client_no_context_takeover || config.client_no_context_takeover;
  p.server_max_window_bits = e.server_max_window_bits > 0 ? e.server_max_window_bits : 15;
  const int client_cap = clamp_bits(config.client_max_window_bits);
  p.client_max_window_bits = e.client_max_window_bits > 0 ? std::min(e.client_max_window_bits, client_cap) : client_cap;
  return p;
}

struct PerMessageDeflate::Impl {
  z_stream deflater{};
  z_stream inflater{};
  bool deflater_ready = false;
  bool inflater_ready = false;
  bool reset_deflater_per_message;
  bool reset_inflater_per_message;
  int deflate_window_bits;
  int level;

  Impl(Role role, const DeflateParams& p, int lvl)
      : reset_deflater_per_message(role == Role::Server ? p.server_no_context_takeover : p.client_no_context_takeover),
        reset_inflater_per_message(role == Role::Server ? p.client_no_context_takeover : p.server_no_context_takeover),
        // zlib refuses a raw deflate window of 8 bits; 9 is safe for a peer
        // with an 8-bit inflate window because zlib never emits distances above
        // 2^bits - 262 (250 < 256).
        deflate_window_bits(
            std::max(9, clamp_bits(role == Role::Server ? p.server_max_window_bits : p.client_max_window_bits))),
        level(std::clamp(lvl, 1, 9)) {}

  ~Impl() {
    if (deflater_ready) deflateEnd(&deflater);
    if (inflater_ready) inflateEnd(&inflater);
  }

  bool ensure_deflater() {
    if (deflater_ready) return true;
    // Negative windowBits: raw deflate, no zlib header or checksum (§7.2.1).
    if (deflateInit2(&deflater, level, Z_DEFLATED, -deflate_window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) return false;
    deflater_ready = true;
    return true;
  }

  bool ensure_inflater() {
    if (inflater_ready) return true;
    // Always inflate with the largest window: it decodes streams made with any
    // smaller window, so a peer that miscounts its window bits still works.
    if (inflateInit2(&inflater, -15) != Z_OK) return false;
    inflater_ready = true;
    return true;
  }
};

PerMessageDeflate::PerMessageDeflate(Role role, const DeflateParams& params, int level)
    : impl_(std::make_unique<Impl>(role, params, level)) {}

PerMessageDeflate::~PerMessageDeflate() = default;

int PerMessageDeflate::stateless_key() const noexcept {
  return impl_->reset_deflater_per_message ? impl_->deflate_window_bits * 16 + impl_->level : -1;
}

void PerMessageDeflate::compress(const std::uint8_t* data, std::size_t len, std::string& out) {
  Impl& im = *impl_;
  // deflateInit2 fails only when zlib cannot allocate its state.
  if (!im.ensure_deflater()) throw std::bad_alloc();
  z_stream& z = im.deflater;
  const std::size_t start = out.size();
  std::size_t used = start;
  out.resize(start + len + len / 8 + 64);
  z.next_in = const_cast<Bytef*>(data);
  z.avail_in = static_cast<uInt>(len);
  for (;;) {
    if (used == out.size()) out.resize(out.size() * 2);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    z.avail_out = static_cast<uInt>(out.size() - used);
    deflate(&z, Z_SYNC_FLUSH);
    used = out.size() - z.avail_out;
    // Done when all input is consumed and the flush did not fill the buffer
    // (a full buffer may hide more pending output).
    if (z.avail_in == 0 && z.avail_out != 0) break;
  }
  out.erase(used);  // erase, not resize: only ever shrinks here
  if (used - start >= 4 && std::equal(kFlushTail, kFlushTail + 4, out.data() + used - 4,
                                      [](std::uint8_t a, char b) { return a == static_cast<std::uint8_t>(b); })) {
    out.erase(used - 4);
  }
  // zlib emits nothing for a sync flush with no input since the previous one,
  // so an empty message can come out as zero bytes. The receiver appends
  // 00 00 FF FF to what it got; alone, those bytes read as a stored block whose
  // length field is 0xFF00 and the peer's stream is corrupt from then on. An
  // empty message is the single byte 0x00 (RFC 7692 §7.2.3.6).
  if (out.size() == start) out.push_back('\0');
  if (im.reset_deflater_per_message) deflateReset(&z);
}

InflateResult PerMessageDeflate::decompress(const std::uint8_t* data, std::size_t len, std::string& out,
                                            std::size_t max_bytes) {
  Impl& im = *impl_;
  out.clear();
  if (len == 0) {
    // No DEFLATE block at all: the empty message. Appending the 00 00 FF FF
    // tail here would leave the inflater inside a stored block header and
    // corrupt every later message, so the stream is left as it is.
    if (im.reset_inflater_per_message && im.inflater_ready) inflateReset(&im.inflater);
    return InflateResult::Ok;
  }
  if (!im.ensure_inflater()) return InflateResult::Corrupt;
  z_stream& z = im.inflater;
  // We let the output reach max_bytes + 1: producing that one extra byte is
  // how "larger than the maximum" is detected without inflating further.
  const std::size_t limit = max_bytes == SIZE_MAX ? max_bytes : max_bytes + 1;
  std::size_t used = 0;
  out.resize(std::min(limit, std::max<std::size_t>(len * 4, 1024)));

  struct Piece {
    const std::uint8_t* p;
    std::size_t n;
  };
  const Piece pieces[2] = {{data, len}, {kFlushTail, sizeof kFlushTail}};
  InflateResult result = InflateResult::Ok;
  for (const Piece& piece : pieces) {
    z.next_in = const_cast<Bytef*>(piece.p);
    z.avail_in = static_cast<uInt>(piece.n);
    for (;;) {
      if (used == out.size()) {
        if (out.size() >= limit) {
          result = InflateResult::TooBig;
          break;
        }
        out.resize(std::min(limit, out.size() * 2));
      }
      z.next_out = reinterpret_cast<Bytef*>(out.data() + used);
      z.avail_out = static_cast<uInt>(out.size() - used);
      const int rc = inflate(&z, Z_SYNC_FLUSH);
      used = out.size() - z.avail_out;
      if (rc == Z_STREAM_END) {
        // The peer closed its deflate stream with a final block (allowed,
        // §7.2.3.3); what follows starts a fresh stream.
        inflateReset(&z);
        if (z.avail_in == 0) break;
        continue;
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        result = InflateResult::Corrupt;
        break;
      }
      if (used > max_bytes) {
        result = InflateResult::TooBig;
        break;
      }
      if (z.avail_in == 0 && z.avail_out != 0) break;
      if (rc == Z_BUF_ERROR && z.avail_out != 0) {
        // No progress with input and output room left: cannot happen with
        // valid data; treat as corrupt rather than spin.
        result = InflateResult::Corrupt;
        break;
      }
    }
    if (result != InflateResult::Ok) break;
  }
  if (result != InflateResult::Ok) {
    // The stream's state is unusable after an error; the connection closes,
    // but reset so that a caller that continues does not read stale state.
    inflateReset(&z);
    out.clear();
    return result;
  }
  out.resize(used);
  if (im.reset_inflater_per_message) inflateReset(&z);
  return InflateResult::Ok;
}

}  // namespace conduit::wire
