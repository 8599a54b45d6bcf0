#include "wire/handshake.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <cstring>
#include <memory>

namespace conduit::wire {
namespace {

constexpr char kBase64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// 0..63 for alphabet characters, 64 for '=', 255 for anything else.
constexpr std::array<std::uint8_t, 256> make_base64_values() {
  std::array<std::uint8_t, 256> v{};
  for (auto& x : v) x = 255;
  for (std::uint8_t i = 0; i < 64; ++i) v[static_cast<std::uint8_t>(kBase64Alphabet[i])] = i;
  v['='] = 64;
  return v;
}
constexpr auto kBase64Values = make_base64_values();

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool icontains(std::string_view haystack, std::string_view needle) noexcept {
  if (needle.size() > haystack.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= haystack.size(); ++i) {
    if (iequals(haystack.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

// RFC 7230 OWS is spaces and horizontal tabs.
std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

UpgradeCheck bad_request(std::string reason) {
  UpgradeCheck c;
  c.verdict = UpgradeVerdict::BadRequest;
  c.reason = std::move(reason);
  return c;
}

}  // namespace

std::string_view UpgradeRequest::header(std::string_view name, std::string& scratch) const {
  const HeaderField* first = nullptr;
  bool joined = false;
  for (const HeaderField& f : headers) {
    if (!iequals(f.name, name)) continue;
    if (!first) {
      first = &f;
      continue;
    }
    if (!joined) {
      scratch.assign(first->value);
      joined = true;
    }
    scratch.append(", ");
    scratch.append(f.value);
  }
  if (joined) return scratch;
  return first ? first->value : std::string_view{};
}

bool UpgradeRequest::has_header(std::string_view name) const {
  for (const HeaderField& f : headers) {
    if (iequals(f.name, name)) return true;
  }
  return false;
}

std::vector<std::string_view> split_list(std::string_view value) {
  std::vector<std::string_view> out;
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    const std::string_view item = trim(value.substr(0, comma));
    if (!item.empty()) out.push_back(item);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return out;
}

bool header_has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

std::string base64_encode(const std::uint8_t* data, std::size_t len) {
  std::string out;
  out.reserve((len + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) | data[i + 2];
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(kBase64Alphabet[(v >> 6) & 63]);
    out.push_back(kBase64Alphabet[v & 63]);
  }
  if (len - i == 1) {
    const std::uint32_t v = std::uint32_t{data[i]} << 16;
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.append("==");
  } else if (len - i == 2) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8);
    out.push_back(kBase64Alphabet[(v >> 18) & 63]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(kBase64Alphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

bool base64_decode(std::string_view in, std::uint8_t* out, std::size_t capacity, std::size_t& out_len) {
  out_len = 0;
  // Padding is mandatory (RFC 4648 §3.2 for this use: Sec-WebSocket-Key is
  // always 24 characters with "=="), so the length is a multiple of 4.
  if (in.size() % 4 != 0) return false;
  for (std::size_t i = 0; i < in.size(); i += 4) {
    std::uint8_t v[4];
    for (int j = 0; j < 4; ++j) v[j] = kBase64Values[static_cast<std::uint8_t>(in[i + j])];
    const bool last = i + 4 == in.size();
    if (v[0] > 63 || v[1] > 63) return false;  // '=' never in the first two places of a quantum
    std::size_t bytes = 3;
    if (v[2] == 64) {
      // "xx==": the fourth must be '=' too, and only in the last quantum.
      if (v[3] != 64 || !last) return false;
      bytes = 1;
    } else if (v[3] == 64) {
      if (v[2] > 63 || !last) return false;
      bytes = 2;
    } else if (v[2] > 63 || v[3] > 63) {
      return false;
    }
    if (capacity - out_len < bytes) return false;
    const std::uint32_t word = (std::uint32_t{v[0]} << 18) | (std::uint32_t{v[1]} << 12) |
                               (std::uint32_t{bytes >= 2 ? v[2] : 0u} << 6) | (bytes == 3 ? v[3] : 0u);
    out[out_len++] = static_cast<std::uint8_t>(word >> 16);
    if (bytes >= 2) out[out_len++] = static_cast<std::uint8_t>((word >> 8) & 0xFF);
    if (bytes == 3) out[out_len++] = static_cast<std::uint8_t>(word & 0xFF);
  }
  return true;
}

bool base64_decode(std::string_view in, std::string& out) {
  out.assign(in.size() / 4 * 3, '\0');
  std::size_t len = 0;
  const bool ok = base64_decode(in, reinterpret_cast<std::uint8_t*>(out.data()), out.size(), len);
  out.resize(ok ? len : 0);
  return ok;
}

void compute_accept_key(std::string_view client_key, AcceptKey& out) {
  // SHA-1 over key + GUID in a stack buffer; keys longer than a valid one
  // (24 characters) are hashed through a heap copy, which only the client's
  // own checks and tests ever do.
  char stack[64 + websocket_guid.size()];
  std::string heap;
  const char* input = stack;
  const std::size_t input_len = client_key.size() + websocket_guid.size();
  if (client_key.size() <= 64) {
    std::memcpy(stack, client_key.data(), client_key.size());
    std::memcpy(stack + client_key.size(), websocket_guid.data(), websocket_guid.size());
  } else {
    heap.append(client_key).append(websocket_guid);
    input = heap.data();
  }
  // The digest is fetched once and each thread keeps its context: EVP_Digest
  // with EVP_sha1() looks the algorithm up (under a lock) and allocates a
  // context on every call, which showed in profiles of upgrade storms.
  static EVP_MD* const sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  struct ContextDeleter {
    void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
  };
  static thread_local std::unique_ptr<EVP_MD_CTX, ContextDeleter> ctx(EVP_MD_CTX_new());
  unsigned char digest[EVP_MAX_MD_SIZE] = {};
  unsigned int digest_len = 0;
  if (!sha1 || !ctx || EVP_DigestInit_ex2(ctx.get(), sha1, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), input, input_len) != 1 || EVP_DigestFinal_ex(ctx.get(), digest, &digest_len) != 1) {
    // Not expected (SHA-1 is in OpenSSL's default provider); the one-shot
    // form is the fallback, so the answer is always computed.
    EVP_Digest(input, input_len, digest, &digest_len, EVP_sha1(), nullptr);
  }
  // 20 bytes of SHA-1 are 28 characters of base64, the last one '='.
  std::size_t o = 0;
  for (std::size_t i = 0; i < 18; i += 3) {
    const std::uint32_t v = (std::uint32_t{digest[i]} << 16) | (std::uint32_t{digest[i + 1]} << 8) | digest[i + 2];
    out[o++] = kBase64Alphabet[(v >> 18) & 63];
    out[o++] = kBase64Alphabet[(v >> 12) & 63];
    out[o++] = kBase64Alphabet[(v >> 6) & 63];
    out[o++] = kBase64Alphabet[v & 63];
  }
  const std::uint32_t v = (std::uint32_t{digest[18]} << 16) | (std::uint32_t{digest[19]} << 8);
  out[o++] = kBase64Alphabet[(v >> 18) & 63];
  out[o++] = kBase64Alphabet[(v >> 12) & 63];
  out[o++] = kBase64Alphabet[(v >> 6) & 63];
  out[o++] = '=';
}

std::string compute_accept_key(std::string_view client_key) {
  AcceptKey key;
  compute_accept_key(client_key, key);
  return std::string(key.data(), key.size());
}

std::string generate_client_key() {
  std::uint8_t nonce[16];
  if (RAND_bytes(nonce, sizeof nonce) != 1) {
    // Practically unreachable; a predictable key only weakens the (non
    // security-relevant) proxy cache busting, so fall back rather than fail.
    for (std::size_t i = 0; i < sizeof nonce; ++i) nonce[i] = static_cast<std::uint8_t>(i * 37 + 11);
  }
  return base64_encode(nonce, sizeof nonce);
}

UpgradeCheck check_upgrade_request(const UpgradeRequest& req) {
  std::string scratch;
  // Only a request that asks for WebSocket gets WebSocket verdicts; anything
  // else is plain HTTP and goes to the routes (404/405 there).
  if (!header_has_token(req.header("Upgrade", scratch), "websocket")) {
    UpgradeCheck c;
    c.verdict = UpgradeVerdict::NotUpgrade;
    return c;
  }
  if (req.method != "GET") return bad_request("WebSocket upgrade requires method GET");
  if (req.version < 11) return bad_request("WebSocket upgrade requires HTTP/1.1");
  if (!req.has_header("Host")) return bad_request("missing Host header");
  if (!header_has_token(req.header("Connection", scratch), "upgrade")) {
    return bad_request("Connection header must contain \"Upgrade\"");
  }
  if (!req.has_header("Sec-WebSocket-Key")) return bad_request("missing Sec-WebSocket-Key");
  const std::string_view key = trim(req.header("Sec-WebSocket-Key", scratch));
  // Decoded into a fixed buffer (no allocation per upgrade): one byte of room
  // beyond 16 so that a longer key fails the size check, not the decoder.
  std::uint8_t decoded[17];
  std::size_t decoded_len = 0;
  if (!base64_decode(key, decoded, sizeof decoded, decoded_len) || decoded_len != 16) {
    return bad_request("Sec-WebSocket-Key must be base64 of 16 bytes");
  }
  if (!req.has_header("Sec-WebSocket-Version")) return bad_request("missing Sec-WebSocket-Version");
  if (trim(req.header("Sec-WebSocket-Version", scratch)) != "13") {
    UpgradeCheck c;
    c.verdict = UpgradeVerdict::BadVersion;
    c.reason = "unsupported Sec-WebSocket-Version (want 13)";
    return c;
  }
  UpgradeCheck c;
  c.verdict = UpgradeVerdict::Upgrade;
  // A view of the request's own field: a key that had been joined from
  // several fields (in scratch) contains ", " and failed to decode above.
  c.key = key;
  return c;
}

namespace {
constexpr std::string_view kAcceptHead =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ";
constexpr std::string_view kProtocolField = "Sec-WebSocket-Protocol: ";
constexpr std::string_view kExtensionsField = "Sec-WebSocket-Extensions: ";
}  // namespace

std::size_t accept_response_size(std::string_view accept_key, std::string_view subprotocol,
                                 std::string_view extensions) noexcept {
  std::size_t n = kAcceptHead.size() + accept_key.size() + 2 + 2;
  if (!subprotocol.empty()) n += kProtocolField.size() + subprotocol.size() + 2;
  if (!extensions.empty()) n += kExtensionsField.size() + extensions.size() + 2;
  return n;
}

std::size_t write_accept_response(char* out, std::string_view accept_key, std::string_view subprotocol,
                                  std::string_view extensions) noexcept {
  char* p = out;
  auto put = [&p](std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  };
  put(kAcceptHead);
  put(accept_key);
  put("\r\n");
  if (!subprotocol.empty()) {
    put(kProtocolField);
    put(subprotocol);
    put("\r\n");
  }
  if (!extensions.empty()) {
    put(kExtensionsField);
    put(extensions);
    put("\r\n");
  }
  put("\r\n");
  return static_cast<std::size_t>(p - out);
}

std::string make_accept_response(std::string_view accept_key, std::string_view subprotocol,
                                 std::string_view extensions) {
  std::string out(accept_response_size(accept_key, subprotocol, extensions), '\0');
  write_accept_response(out.data(), accept_key, subprotocol, extensions);
  return out;
}

std::string_view status_text(unsigned status) {
  switch (status) {
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 426:
      return "Upgrade Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

std::string make_error_response(unsigned status, std::string_view reason, std::string_view extra_headers) {
  const std::size_t body_len = reason.size() + 1;
  std::string out;
  out.reserve(128 + extra_headers.size() + body_len);
  out.append("HTTP/1.1 ");
  out.append(std::to_string(status));
  out.push_back(' ');
  out.append(status_text(status));
  out.append("\r\nContent-Type: text/plain\r\nContent-Length: ");
  out.append(std::to_string(body_len));
  out.append("\r\nConnection: close\r\n");
  // RFC 6455 §4.4: a 426 must say which version we speak; add it unless the
  // caller already did.
  if (status == 426 && !icontains(extra_headers, "Sec-WebSocket-Version:")) {
    out.append("Sec-WebSocket-Version: 13\r\n");
  }
  out.append(extra_headers);
  out.append("\r\n");
  out.append(reason);
  out.push_back('\n');
  return out;
}

std::string make_client_request(std::string_view host_header, std::string_view target, std::string_view key,
                                const std::vector<std::string>& subprotocols, std::string_view extensions,
                                std::string_view extra_headers) {
  std::string out;
  out.reserve(200 + host_header.size() + target.size() + extensions.size() + extra_headers.size());
  out.append("GET ");
  out.append(target.empty() ? std::string_view("/") : target);
  out.append(" HTTP/1.1\r\nHost: ");
  out.append(host_header);
  out.append("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
  out.append(key);
  out.append("\r\nSec-WebSocket-Version: 13\r\n");
  if (!subprotocols.empty()) {
    out.append("Sec-WebSocket-Protocol: ");
    for (std::size_t i = 0; i < subprotocols.size(); ++i) {
      if (i) out.append(", ");
      out.append(subprotocols[i]);
    }
    out.append("\r\n");
  }
  if (!extensions.empty()) {
    out.append("Sec-WebSocket-Extensions: ");
    out.append(extensions);
    out.append("\r\n");
  }
  out.append(extra_headers);
  out.append("\r\n");
  return out;
}

}  // namespace conduit::wire
