// Opening handshake: accept key, base64, request validation, responses.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "wire/handshake.hpp"

namespace {

using namespace conduit::wire;

UpgradeRequest valid_request() {
  UpgradeRequest r;
  r.method = "GET";
  r.version = 11;
  r.target = "/chat";
  r.headers = {{"Host", "server.example.com"},
               {"Upgrade", "websocket"},
               {"Connection", "Upgrade"},
               {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
               {"Sec-WebSocket-Version", "13"}};
  return r;
}

void set_header(UpgradeRequest& r, std::string_view name, std::string_view value) {
  for (auto& f : r.headers) {
    if (f.name == name) {
      f.value = value;
      return;
    }
  }
  r.headers.push_back({name, value});
}

void remove_header(UpgradeRequest& r, std::string_view name) {
  std::erase_if(r.headers, [&](const HeaderField& f) { return f.name == name; });
}

// The value printed in RFC 6455 §1.3 and §4.2.2.
TEST(Handshake, Rfc6455ExampleAcceptKey) {
  EXPECT_EQ(compute_accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(Handshake, ValidRequestIsUpgrade) {
  const UpgradeCheck c = check_upgrade_request(valid_request());
  EXPECT_EQ(c.verdict, UpgradeVerdict::Upgrade);
  EXPECT_EQ(c.key, "dGhlIHNhbXBsZSBub25jZQ==");
}

TEST(Handshake, TokensAreCaseInsensitiveListItems) {
  UpgradeRequest r = valid_request();
  set_header(r, "Connection", "keep-alive, Upgrade");
  set_header(r, "Upgrade", "WebSocket");
  EXPECT_EQ(check_upgrade_request(r).verdict, UpgradeVerdict::Upgrade);
  set_header(r, "Connection", "  keep-alive ,\tUPGRADE ");
  set_header(r, "Upgrade", "h2c, websocket");
  EXPECT_EQ(check_upgrade_request(r).verdict, UpgradeVerdict::Upgrade);
  // Header names are case-insensitive too.
  UpgradeRequest lower;
  lower.method = "GET";
  lower.headers = {{"host", "h"},
                   {"upgrade", "websocket"},
                   {"connection", "upgrade"},
                   {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="},
                   {"sec-websocket-version", "13"}};
  EXPECT_EQ(check_upgrade_request(lower).verdict, UpgradeVerdict::Upgrade);
}

TEST(Handshake, ConnectionSplitOverSeveralFields) {
  UpgradeRequest r = valid_request();
  set_header(r, "Connection", "keep-alive");
  r.headers.push_back({"Connection", "Upgrade"});
  EXPECT_EQ(check_upgrade_request(r).verdict, UpgradeVerdict::Upgrade);
  std::string scratch;
  EXPECT_EQ(r.header("connection", scratch), "keep-alive, Upgrade");
}

TEST(Handshake, SubstringIsNotAToken) {
  UpgradeRequest r = valid_request();
  set_header(r, "Connection", "upgraded");
  EXPECT_EQ(check_upgrade_request(r).verdict, UpgradeVerdict::BadRequest);
  set_header(r, "Connection", "Upgrade");
  set_header(r, "Upgrade", "websockets");
  EXPECT_EQ(check_upgrade_request(r).verdict, UpgradeVerdict::NotUpgrade);
}

TEST(Handshake, PlainHttpIsNotUpgrade) {
  UpgradeRequest r;
  r.method = "GET";
  r.target = "/healthz";
  r.headers = {{"Host", "x"}};
  EXPECT_EQ(check_upgrade_request(r).verdict, UpgradeVerdict::NotUpgrade);
  r.method = "POST";
  EXPECT_EQ(check_upgrade_request(r).verdict, UpgradeVerdict::NotUpgrade);
}

TEST(Handshake, BadRequests) {
  struct Case {
    const char* what;
    void (*mutate)(UpgradeRequest&);
    const char* reason;
  };
  const Case cases[] = {
      {"POST", [](UpgradeRequest& r) { r.method = "POST"; }, "WebSocket upgrade requires method GET"},
      {"HTTP/1.0", [](UpgradeRequest& r) { r.version = 10; }, "WebSocket upgrade requires HTTP/1.1"},
      {"no Host", [](UpgradeRequest& r) { remove_header(r, "Host"); }, "missing Host header"},
      {"no Connection", [](UpgradeRequest& r) { remove_header(r, "Connection"); },
       "Connection header must contain \"Upgrade\""},
      {"no key", [](UpgradeRequest& r) { remove_header(r, "Sec-WebSocket-Key"); }, "missing Sec-WebSocket-Key"},
      {"short key", [](UpgradeRequest& r) { set_header(r, "Sec-WebSocket-Key", "dGhlIHNhbXBsZQ=="); },
       "Sec-WebSocket-Key must be base64 of 16 bytes"},
      {"bad chars", [](UpgradeRequest& r) { set_header(r, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZ!=="); },
       "Sec-WebSocket-Key must be base64 of 16 bytes"},
      {"no padding", [](UpgradeRequest& r) { set_header(r, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ"); },
       "Sec-WebSocket-Key must be base64 of 16 bytes"},
      {"17 bytes", [](UpgradeRequest& r) { set_header(r, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZTE="); },
       "Sec-WebSocket-Key must be base64 of 16 bytes"},
      {"two keys",
       [](UpgradeRequest& r) {
         r.headers.push_back({"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="});
       },
       "Sec-WebSocket-Key must be base64 of 16 bytes"},
      {"no version", [](UpgradeRequest& r) { remove_header(r, "Sec-WebSocket-Version"); },
       "missing Sec-WebSocket-Version"},
  };
  for (const Case& c : cases) {
    UpgradeRequest r = valid_request();
    c.mutate(r);
    const UpgradeCheck check = check_upgrade_request(r);
    EXPECT_EQ(check.verdict, UpgradeVerdict::BadRequest) << c.what;
    EXPECT_EQ(check.reason, c.reason) << c.what;
    EXPECT_TRUE(check.key.empty()) << c.what;
  }
}

TEST(Handshake, WrongVersionIs426) {
  for (const char* v : {"8", "12", "14", "13, 8", "abc"}) {
    UpgradeRequest r = valid_request();
    set_header(r, "Sec-WebSocket-Version", v);
    const UpgradeCheck c = check_upgrade_request(r);
    EXPECT_EQ(c.verdict, UpgradeVerdict::BadVersion) << v;
    EXPECT_EQ(c.reason, "unsupported Sec-WebSocket-Version (want 13)");
  }
}

TEST(Base64, RoundTripAllLengths) {
  std::vector<std::uint8_t> data;
  for (int len = 0; len < 40; ++len) {
    const std::string enc = base64_encode(data.data(), data.size());
    EXPECT_EQ(enc.size() % 4, 0u);
    std::string dec;
    ASSERT_TRUE(base64_decode(enc, dec)) << enc;
    EXPECT_EQ(dec, std::string(data.begin(), data.end()));
    data.push_back(static_cast<std::uint8_t>(len * 73 + 200));
  }
}

TEST(Base64, KnownVectors) {
  auto enc = [](std::string_view s) {
    return base64_encode(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  };
  EXPECT_EQ(enc(""), "");
  EXPECT_EQ(enc("f"), "Zg==");
  EXPECT_EQ(enc("fo"), "Zm8=");
  EXPECT_EQ(enc("foo"), "Zm9v");
  EXPECT_EQ(enc("foobar"), "Zm9vYmFy");
  std::string out;
  EXPECT_TRUE(base64_decode("Zm9vYg==", out));
  EXPECT_EQ(out, "foob");
}

TEST(Base64, RejectsMalformed) {
  std::string out;
  for (const char* bad : {"Zg=", "Zg", "Z===", "====", "Zg==Zg==", "Zm9v=Zm9", "Zm9*", "Zm 9v", "Zm9v\n", "Zm=v"}) {
    EXPECT_FALSE(base64_decode(bad, out)) << bad;
  }
}

TEST(Handshake, GeneratedClientKeysAreValidAndDistinct) {
  const std::string a = generate_client_key();
  const std::string b = generate_client_key();
  EXPECT_NE(a, b);
  std::string dec;
  ASSERT_TRUE(base64_decode(a, dec));
  EXPECT_EQ(dec.size(), 16u);
}

TEST(Handshake, ListHelpers) {
  EXPECT_EQ(split_list(" a, b ,,c\t"), (std::vector<std::string_view>{"a", "b", "c"}));
  EXPECT_TRUE(split_list("").empty());
  EXPECT_TRUE(header_has_token("foo, BAR", "bar"));
  EXPECT_FALSE(header_has_token("foobar", "bar"));
  EXPECT_FALSE(header_has_token("", "bar"));
}

TEST(Handshake, AcceptResponse) {
  EXPECT_EQ(make_accept_response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "", ""),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
  const std::string with = make_accept_response("k", "chat", "permessage-deflate");
  EXPECT_NE(with.find("\r\nSec-WebSocket-Protocol: chat\r\n"), std::string::npos);
  EXPECT_NE(with.find("\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"), std::string::npos);
  EXPECT_TRUE(with.ends_with("\r\n\r\n"));
}

TEST(Handshake, ErrorResponse) {
  EXPECT_EQ(make_error_response(400, "missing Sec-WebSocket-Key"),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 26\r\nConnection: close\r\n"
            "\r\nmissing Sec-WebSocket-Key\n");
  const std::string r426 = make_error_response(426, "unsupported Sec-WebSocket-Version (want 13)");
  EXPECT_TRUE(r426.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
  EXPECT_NE(r426.find("\r\nSec-WebSocket-Version: 13\r\n"), std::string::npos);
  const std::string r503 = make_error_response(503, "shutting down", "Retry-After: 5\r\n");
  EXPECT_NE(r503.find("\r\nRetry-After: 5\r\n\r\nshutting down\n"), std::string::npos);
  EXPECT_EQ(status_text(404), "Not Found");
}

TEST(Handshake, ClientRequest) {
  const std::string req =
      make_client_request("example.com:8080", "/ws?x=1", "KEY", {"a", "b"}, "permessage-deflate", "Origin: o\r\n");
  EXPECT_EQ(req,
            "GET /ws?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: KEY\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: a, b\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate\r\nOrigin: o\r\n\r\n");
  EXPECT_TRUE(make_client_request("h", "", "K", {}, "", "").starts_with("GET / HTTP/1.1\r\n"));
}

}  // namespace

TEST(Handshake, AcceptKeyIntoCallerStorage) {
  AcceptKey key;
  compute_accept_key("dGhlIHNhbXBsZSBub25jZQ==", key);
  EXPECT_EQ(std::string_view(key.data(), key.size()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  // A key longer than the stack buffer goes through the heap path: same result as SHA-1 over key + GUID.
  const std::string long_key(100, 'x');
  compute_accept_key(long_key, key);
  EXPECT_EQ(std::string_view(key.data(), key.size()), compute_accept_key(long_key));
}

TEST(Handshake, AcceptResponseWrittenInPlaceMatchesTheStringForm) {
  for (auto [proto, ext] : {std::pair<std::string_view, std::string_view>{"", ""},
                            {"chat", ""},
                            {"", "permessage-deflate"},
                            {"chat", "permessage-deflate; server_no_context_takeover"}}) {
    const std::string expected = make_accept_response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", proto, ext);
    ASSERT_EQ(accept_response_size("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", proto, ext), expected.size());
    std::string out(expected.size() + 8, '#');
    EXPECT_EQ(write_accept_response(out.data(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", proto, ext), expected.size());
    EXPECT_EQ(out.substr(0, expected.size()), expected);
    EXPECT_EQ(out.substr(expected.size()), std::string(8, '#'));  // nothing written past the size
  }
}

TEST(Handshake, Base64DecodeIntoABufferRespectsItsCapacity) {
  std::uint8_t out[3];
  std::size_t len = 0;
  EXPECT_TRUE(base64_decode("YWJj", out, 3, len));
  EXPECT_EQ(len, 3u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out), len), "abc");
  EXPECT_FALSE(base64_decode("YWJj", out, 2, len));
  EXPECT_FALSE(base64_decode("YW=j", out, 3, len));
}

TEST(Handshake, KeyIsAViewOfTheRequestField) {
  const UpgradeRequest req = valid_request();
  const UpgradeCheck c = check_upgrade_request(req);
  ASSERT_EQ(c.verdict, UpgradeVerdict::Upgrade);
  std::string scratch;
  const std::string_view field = req.header("Sec-WebSocket-Key", scratch);
  EXPECT_EQ(c.key, "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_GE(c.key.data(), field.data());
  EXPECT_LE(c.key.data() + c.key.size(), field.data() + field.size());
}
