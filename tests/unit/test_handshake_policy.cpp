// HandshakePolicy: admission decided before the 101 as a pure function of the
// request and the server's counts (origins, caps, draining, subprotocols).
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "server/handshake_policy.hpp"

namespace {

using conduit::ServerOptions;
using conduit::server::AdmissionDecision;
using conduit::server::AdmissionRequest;
using conduit::server::HandshakeFailure;
using conduit::server::HandshakePolicy;

ServerOptions with_origins(std::vector<std::string> origins) {
  ServerOptions o;
  o.allowed_origins = std::move(origins);
  return o;
}

AdmissionDecision decide_origin(const HandshakePolicy& p, std::string_view origin) {
  AdmissionRequest r;
  r.origin = origin;
  return p.decide(r);
}

TEST(HandshakePolicy, EmptyOriginListAllowsEverythingIncludingNoOrigin) {
  HandshakePolicy p{ServerOptions{}};
  EXPECT_TRUE(p.origin_allowed(""));
  EXPECT_TRUE(p.origin_allowed("https://evil.example"));
  AdmissionDecision d = decide_origin(p, "https://evil.example");
  EXPECT_TRUE(d.accept);
  EXPECT_EQ(d.subprotocol, "");
}

TEST(HandshakePolicy, ExactOriginMatchesCaseInsensitivelyAndNothingElse) {
  HandshakePolicy p{with_origins({"https://app.example.com"})};
  EXPECT_TRUE(p.origin_allowed("https://app.example.com"));
  EXPECT_TRUE(p.origin_allowed("HTTPS://App.Example.COM"));
  // Scheme, port and host are all part of an exact origin.
  EXPECT_FALSE(p.origin_allowed("http://app.example.com"));
  EXPECT_FALSE(p.origin_allowed("https://app.example.com:8443"));
  EXPECT_FALSE(p.origin_allowed("https://other.example.com"));
  EXPECT_FALSE(p.origin_allowed("https://app.example.com.evil.net"));
  EXPECT_FALSE(p.origin_allowed("https://x.app.example.com"));
}

TEST(HandshakePolicy, DisallowedOriginIs403WithOriginReason) {
  HandshakePolicy p{with_origins({"https://app.example.com"})};
  AdmissionDecision d = decide_origin(p, "https://evil.example");
  EXPECT_FALSE(d.accept);
  EXPECT_EQ(d.status, 403u);
  EXPECT_EQ(d.failure, HandshakeFailure::OriginRejected);
  EXPECT_NE(d.reason.find("https://evil.example"), std::string::npos) << d.reason;
  EXPECT_EQ(d.extra_headers, "");  // no Retry-After: retrying will not help
  EXPECT_TRUE(decide_origin(p, "https://app.example.com").accept);
}

TEST(HandshakePolicy, WildcardMatchesSubdomainsOfAnySchemeAndPort) {
  HandshakePolicy p{with_origins({"*.example.com"})};
  EXPECT_TRUE(p.origin_allowed("https://a.example.com"));
  EXPECT_TRUE(p.origin_allowed("http://a.b.example.com"));
  EXPECT_TRUE(p.origin_allowed("https://a.example.com:8443"));
  EXPECT_TRUE(p.origin_allowed("https://A.EXAMPLE.COM"));
  // At least one label before the suffix; the suffix must be a whole label boundary.
  EXPECT_FALSE(p.origin_allowed("https://example.com"));
  EXPECT_FALSE(p.origin_allowed("https://badexample.com"));
  EXPECT_FALSE(p.origin_allowed("https://example.com.evil.net"));
  EXPECT_FALSE(p.origin_allowed("https://a.example.org"));
  // The suffix is matched on the host, not on a path or port text.
  EXPECT_FALSE(p.origin_allowed("https://evil.net:443/.example.com"));
  EXPECT_FALSE(decide_origin(p, "https://evil.net").accept);
  EXPECT_TRUE(decide_origin(p, "https://chat.example.com").accept);
}

TEST(HandshakePolicy, ExactAndWildcardTogether) {
  HandshakePolicy p{with_origins({"https://a.example", "*.example.com"})};
  EXPECT_TRUE(p.origin_allowed("https://a.example"));
  EXPECT_TRUE(p.origin_allowed("https://x.example.com"));
  EXPECT_FALSE(p.origin_allowed("https://b.example"));
}

TEST(HandshakePolicy, MissingOriginIsRefusedWhenAListIsConfigured) {
  HandshakePolicy p{with_origins({"https://app.example.com"})};
  EXPECT_FALSE(p.origin_allowed(""));
  AdmissionDecision d = decide_origin(p, "");
  EXPECT_FALSE(d.accept);
  EXPECT_EQ(d.status, 403u);
  EXPECT_EQ(d.failure, HandshakeFailure::OriginRejected);
  EXPECT_NE(d.reason.find("missing Origin"), std::string::npos) << d.reason;
}

TEST(HandshakePolicy, MaxConnectionsIs503WithRetryAfter) {
  ServerOptions o;
  o.max_connections = 3;
  o.retry_after_seconds = 7;
  HandshakePolicy p{o};
  AdmissionRequest r;
  r.open_connections = 2;
  EXPECT_TRUE(p.decide(r).accept);
  r.open_connections = 3;
  AdmissionDecision d = p.decide(r);
  EXPECT_FALSE(d.accept);
  EXPECT_EQ(d.status, 503u);
  EXPECT_EQ(d.failure, HandshakeFailure::OverCapacity);
  EXPECT_EQ(d.extra_headers, "Retry-After: 7\r\n");
  EXPECT_NE(d.reason.find("server.max_connections"), std::string::npos) << d.reason;
}

TEST(HandshakePolicy, MaxConnectionsZeroMeansUnlimited) {
  ServerOptions o;
  o.max_connections = 0;
  HandshakePolicy p{o};
  AdmissionRequest r;
  r.open_connections = 1'000'000;
  EXPECT_TRUE(p.decide(r).accept);
}

TEST(HandshakePolicy, PerIpCapIs503WithRetryAfter) {
  ServerOptions o;
  o.max_connections_per_ip = 2;
  o.retry_after_seconds = 3;
  HandshakePolicy p{o};
  AdmissionRequest r;
  r.open_from_ip = 1;
  EXPECT_TRUE(p.decide(r).accept);
  r.open_from_ip = 2;
  AdmissionDecision d = p.decide(r);
  EXPECT_FALSE(d.accept);
  EXPECT_EQ(d.status, 503u);
  EXPECT_EQ(d.failure, HandshakeFailure::PerIpCapacity);
  EXPECT_EQ(d.extra_headers, "Retry-After: 3\r\n");
  EXPECT_NE(d.reason.find("server.max_connections_per_ip"), std::string::npos) << d.reason;
}

TEST(HandshakePolicy, PerIpZeroMeansUnlimited) {
  HandshakePolicy p{ServerOptions{}};  // default max_connections_per_ip = 0
  AdmissionRequest r;
  r.open_from_ip = 5000;
  EXPECT_TRUE(p.decide(r).accept);
}

TEST(HandshakePolicy, DrainingIs503WithRetryAfterBeforeAnyOtherCheck) {
  ServerOptions o = with_origins({"https://app.example.com"});
  o.retry_after_seconds = 5;
  HandshakePolicy p{o};
  AdmissionRequest r;
  r.draining = true;
  r.origin = "https://evil.example";  // would be 403 if not draining
  AdmissionDecision d = p.decide(r);
  EXPECT_FALSE(d.accept);
  EXPECT_EQ(d.status, 503u);
  EXPECT_EQ(d.failure, HandshakeFailure::ShuttingDown);
  EXPECT_EQ(d.extra_headers, "Retry-After: 5\r\n");
}

TEST(HandshakePolicy, OriginIsCheckedBeforeCapacity) {
  ServerOptions o = with_origins({"https://app.example.com"});
  o.max_connections = 1;
  HandshakePolicy p{o};
  AdmissionRequest r;
  r.origin = "https://evil.example";
  r.open_connections = 1;
  EXPECT_EQ(p.decide(r).status, 403u);
  r.origin = "https://app.example.com";
  EXPECT_EQ(p.decide(r).status, 503u);
}

TEST(HandshakePolicy, SubprotocolChosenByServerPreference) {
  ServerOptions o;
  o.subprotocols = {"v2.chat", "v1.chat"};
  HandshakePolicy p{o};
  // The client prefers v1, the server prefers v2: the server wins.
  EXPECT_EQ(p.select_subprotocol({"v1.chat", "v2.chat"}), "v2.chat");
  EXPECT_EQ(p.select_subprotocol({"v1.chat"}), "v1.chat");
  EXPECT_EQ(p.select_subprotocol({"other", "v1.chat"}), "v1.chat");
  EXPECT_EQ(p.select_subprotocol({"other"}), "");
  EXPECT_EQ(p.select_subprotocol({}), "");
  // Tokens are case-sensitive.
  EXPECT_EQ(p.select_subprotocol({"V2.CHAT"}), "");
  AdmissionRequest r;
  r.offered = {"v1.chat", "v2.chat"};
  AdmissionDecision d = p.decide(r);
  EXPECT_TRUE(d.accept);
  EXPECT_EQ(d.subprotocol, "v2.chat");
}

TEST(HandshakePolicy, UnsupportedSubprotocolAcceptedWithNoneWhenNotRequired) {
  ServerOptions o;
  o.subprotocols = {"v2.chat"};
  o.require_subprotocol = false;
  HandshakePolicy p{o};
  AdmissionRequest r;
  r.offered = {"mqtt"};
  AdmissionDecision d = p.decide(r);
  EXPECT_TRUE(d.accept);
  EXPECT_EQ(d.subprotocol, "");
}

TEST(HandshakePolicy, RequireSubprotocolRefusesUnsupportedWith400) {
  ServerOptions o;
  o.subprotocols = {"v2.chat"};
  o.require_subprotocol = true;
  HandshakePolicy p{o};
  AdmissionRequest r;
  r.offered = {"mqtt", "v1.chat"};
  AdmissionDecision d = p.decide(r);
  EXPECT_FALSE(d.accept);
  EXPECT_EQ(d.status, 400u);
  EXPECT_EQ(d.failure, HandshakeFailure::NoSubprotocol);
  EXPECT_EQ(d.extra_headers, "");
  // Offering none at all is refused too.
  r.offered = {};
  d = p.decide(r);
  EXPECT_FALSE(d.accept);
  EXPECT_EQ(d.status, 400u);
  // A supported one is accepted.
  r.offered = {"mqtt", "v2.chat"};
  d = p.decide(r);
  EXPECT_TRUE(d.accept);
  EXPECT_EQ(d.subprotocol, "v2.chat");
}

}  // namespace
