// The conduit.v1 HTTP API (src/pubsub/http_api.*) over real HTTP on
// 127.0.0.1: publish, channels and history answers, delivery of an HTTP
// publish to a WebSocket subscriber, every refusal status with its JSON body
// and its counter, and the order of the checks (404, 405, 401, 413, 400).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "conduit/pubsub.hpp"
#include "conduit/server.hpp"
#include "pubsub/http_api.hpp"
#include "raw_client.hpp"

using namespace std::chrono_literals;
using conduit_test::http_exchange;
using conduit_test::RawClient;
using conduit_test::test_options;

namespace {

constexpr const char* kKey = "k3y-Secret";

// A server with conduit.v1 channels and the HTTP API; a WebSocket session
// opened on /sub/NAME is subscribed to channel NAME.
struct ApiServer {
  explicit ApiServer(std::string key = kKey, std::size_t max_body = 1000) {
    conduit::ServerHandlers h;
    h.on_open = [this](conduit::Session& s) {
      const std::string channel = s.path().substr(s.path().rfind('/') + 1);
      channels->subscribe(s, channel, {}, [this](conduit::Session&, const conduit::SubscribeResult& r) {
        std::lock_guard lock(mu);
        if (subscribed) subscribed->set_value(r.status == conduit::SubscribeStatus::ok);
        subscribed.reset();
      });
    };
    auto options = test_options(2);
    options.max_http_body_bytes = 100;  // below the API's own cap: the route's cap must win
    server = std::make_unique<conduit::Server>(options, h);
    conduit::Channels::Options channel_options;
    channel_options.format = conduit::Channels::Format::conduit_v1;
    channel_options.config.namespaces["short"].max_channel_length = 8;
    channels = std::make_unique<conduit::Channels>(*server, channel_options);
    api = std::make_unique<conduit::pubsub::HttpApi>(*channels, conduit::pubsub::HttpApiOptions{key, max_body});
    api->add_routes(*server);
    server->add_metrics_source([this](std::string& out) { api->append_metrics(out); });
    server->start();
  }
  ~ApiServer() {
    server->stop();
    server->wait();
  }

  // A WebSocket subscriber of channel, returned once it is in the live stream.
  std::unique_ptr<RawClient> subscriber(const std::string& channel) {
    std::future<bool> done;
    {
      std::lock_guard lock(mu);
      subscribed.emplace();
      done = subscribed->get_future();
    }
    auto client = std::make_unique<RawClient>(server->port(), "/sub/" + channel);
    if (done.wait_for(10s) != std::future_status::ready || !done.get()) throw std::runtime_error("not subscribed");
    return client;
  }

  std::string request(const std::string& method, const std::string& target, const std::string& body = "",
                      const std::string& auth = std::string("apikey ") + kKey) {
    std::string head = method + " " + target + " HTTP/1.1\r\nHost: x\r\n";
    if (!auth.empty()) head += "Authorization: " + auth + "\r\n";
    if (!body.empty() || method == "POST") head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    return http_exchange(server->port(), {head + "\r\n" + body});
  }

  std::uint64_t metric(const std::string& sample) {
    const std::string text = server->metrics_text();
    const auto at = text.find("\n" + sample + " ");
    if (at == std::string::npos) throw std::runtime_error("no metric sample " + sample);
    return std::stoull(text.substr(at + sample.size() + 2));
  }
  std::uint64_t refusals(unsigned status, const std::string& reason) {
    return metric("conduit_http_api_refusals_total{status=\"" + std::to_string(status) + "\",reason=\"" + reason +
                  "\"}");
  }

  std::mutex mu;
  std::optional<std::promise<bool>> subscribed;
  std::unique_ptr<conduit::Server> server;
  std::unique_ptr<conduit::Channels> channels;
  std::unique_ptr<conduit::pubsub::HttpApi> api;
};

std::string status_line(const std::string& r) { return r.substr(0, r.find("\r\n")); }
std::string body_of(const std::string& r) { return r.substr(r.find("\r\n\r\n") + 4); }
bool has_header(const std::string& r, const std::string& line) {
  return r.substr(0, r.find("\r\n\r\n") + 2).find("\r\n" + line + "\r\n") != std::string::npos;
}
std::string epoch_of(const std::string& body) {
  const auto at = body.find("\"epoch\":\"") + 9;
  return body.substr(at, body.find('"', at) - at);
}

// Checks a refusal: status, JSON content type, the error body with that code
// and a message containing `says`.
void expect_refusal(const std::string& r, unsigned status, const std::string& says) {
  EXPECT_EQ(status_line(r).substr(0, 12), "HTTP/1.1 " + std::to_string(status)) << r;
  EXPECT_TRUE(has_header(r, "Content-Type: application/json")) << r;
  const std::string prefix = "{\"error\":{\"code\":" + std::to_string(status) + ",\"message\":\"";
  EXPECT_EQ(body_of(r).substr(0, prefix.size()), prefix) << r;
  EXPECT_EQ(body_of(r).substr(body_of(r).size() - 3), "\"}}") << r;
  EXPECT_NE(body_of(r).find(says), std::string::npos) << r;
}

TEST(HttpApi, PublishReachesSubscribersAndHistoryAndChannelsReportIt) {
  ApiServer api;
  auto sub = api.subscriber("news");
  const std::string data = R"({"title": "hello",  "n": [1, 2.50, null]})";  // spacing kept as sent
  std::string r = api.request("POST", "/api/publish", R"({"channel":"news","data":)" + data + "}");
  ASSERT_EQ(status_line(r), "HTTP/1.1 200 OK") << r;
  EXPECT_TRUE(has_header(r, "Content-Type: application/json"));
  const std::string epoch = epoch_of(body_of(r));
  EXPECT_FALSE(epoch.empty());
  EXPECT_EQ(body_of(r), "{\"offset\":1,\"epoch\":\"" + epoch + "\"}");
  conduit_test::Frame push = sub->next();
  EXPECT_EQ(push.payload,
            "{\"push\":{\"channel\":\"news\",\"offset\":1,\"epoch\":\"" + epoch + "\",\"data\":" + data + "}}");
  for (int i = 2; i <= 4; ++i) {
    r = api.request("POST", "/api/publish", R"({"data":)" + std::to_string(i) + R"(,"channel":"news"})");
    EXPECT_EQ(body_of(r), "{\"offset\":" + std::to_string(i) + ",\"epoch\":\"" + epoch + "\"}");
    EXPECT_EQ(sub->next().payload, "{\"push\":{\"channel\":\"news\",\"offset\":" + std::to_string(i) + ",\"epoch\":\"" +
                                       epoch + "\",\"data\":" + std::to_string(i) + "}}");
  }
  // The newest `limit`, oldest first; 100 by default.
  r = api.request("GET", "/api/history?channel=news&limit=2");
  ASSERT_EQ(status_line(r), "HTTP/1.1 200 OK") << r;
  EXPECT_EQ(body_of(r), "{\"offset\":4,\"epoch\":\"" + epoch +
                            "\",\"publications\":[{\"offset\":3,\"data\":3},{\"offset\":4,\"data\":4}]}");
  r = api.request("GET", "/api/history?channel=news");
  EXPECT_EQ(body_of(r), "{\"offset\":4,\"epoch\":\"" + epoch + "\",\"publications\":[{\"offset\":1,\"data\":" + data +
                            "},{\"offset\":2,\"data\":2},{\"offset\":3,\"data\":3},{\"offset\":4,\"data\":4}]}");
  r = api.request("GET", "/api/history?limit=0&channel=news");
  EXPECT_EQ(body_of(r), "{\"offset\":4,\"epoch\":\"" + epoch + "\",\"publications\":[]}");
  // A percent-encoded name is the same channel.
  EXPECT_EQ(status_line(api.request("GET", "/api/history?channel=chat%3Alobby")), "HTTP/1.1 200 OK");
  // Channels with subscribers on this server.
  auto second = api.subscriber("news");
  auto other = api.subscriber("chat:lobby");
  r = api.request("GET", "/api/channels");
  ASSERT_EQ(status_line(r), "HTTP/1.1 200 OK") << r;
  EXPECT_EQ(body_of(r),
            R"({"channels":[{"channel":"chat:lobby","subscribers":1},{"channel":"news","subscribers":2}]})");
  // HEAD: the same head, no body.
  r = api.request("HEAD", "/api/channels");
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_EQ(body_of(r), "");
  EXPECT_EQ(api.metric("conduit_http_api_requests_total{endpoint=\"publish\"}"), 4u);
  EXPECT_EQ(api.metric("conduit_http_api_requests_total{endpoint=\"history\"}"), 4u);
  EXPECT_EQ(api.metric("conduit_http_api_requests_total{endpoint=\"channels\"}"), 2u);
}

TEST(HttpApi, EveryRefusalHasItsStatusJsonBodyAndCounter) {
  ApiServer api;
  struct Case {
    std::string method, target, body, auth;
    unsigned status;
    std::string reason, says;
  };
  const std::string key = std::string("apikey ") + kKey;
  const std::vector<Case> cases = {
      {"GET", "/api/nope", "", key, 404, "unknown_path", "no such API path"},
      {"POST", "/api/", "{}", "", 404, "unknown_path", "no such API path"},
      {"GET", "/api/publish", "", key, 405, "method_not_allowed", "allowed: POST"},
      {"DELETE", "/api/history", "", key, 405, "method_not_allowed", "allowed: GET, HEAD"},
      {"POST", "/api/channels", "{}", key, 405, "method_not_allowed", "allowed: GET, HEAD"},
      {"POST", "/api/publish", R"({"channel":"a","data":1})", "", 401, "missing_key", "missing API key"},
      {"POST", "/api/publish", R"({"channel":"a","data":1})", std::string("Bearer ") + kKey, 401, "missing_key",
       "missing API key"},
      {"GET", "/api/channels", "", "apikey", 401, "missing_key", "missing API key"},
      {"GET", "/api/channels", "", "apikey wrong", 401, "wrong_key", "wrong API key"},
      {"GET", "/api/channels", "", "apikey k3y-Secre", 401, "wrong_key", "wrong API key"},    // a prefix
      {"GET", "/api/channels", "", "apikey k3y-Secrett", 401, "wrong_key", "wrong API key"},  // longer
      {"GET", "/api/channels", "", "apikey K3Y-SECRET", 401, "wrong_key", "wrong API key"},   // the key is exact
      {"POST", "/api/publish", std::string(1001, ' '), key, 413, "body_too_large", "over the limit of 1000"},
      {"POST", "/api/publish", "{\"channel\":", key, 400, "invalid_json", "invalid JSON"},
      {"POST", "/api/publish", R"({"channel":"a","data":{"x":}})", key, 400, "invalid_json", "invalid JSON"},
      {"POST", "/api/publish", "", key, 400, "invalid_json", "invalid JSON"},
      {"POST", "/api/publish", R"([1,2])", key, 400, "invalid_request", "must be a JSON object"},
      {"POST", "/api/publish", R"({"channel":"a"})", key, 400, "invalid_request", "missing field \\\"data\\\""},
      {"POST", "/api/publish", R"({"channel":"a","data":1,"id":3})", key, 400, "invalid_request",
       "unknown field \\\"id\\\""},
      {"POST", "/api/publish", R"({"channel":7,"data":1})", key, 400, "invalid_request", "must be a string"},
      {"POST", "/api/publish", R"({"channel":"a b","data":1})", key, 400, "invalid_channel", "invalid channel name"},
      {"POST", "/api/publish", R"({"channel":"short:123456789","data":1})", key, 400, "invalid_channel",
       "1 to 8 bytes"},  // the namespace's max_channel_length
      {"POST", "/api/publish", R"({"channel":"","data":1})", key, 400, "invalid_channel", "invalid channel name"},
      {"GET", "/api/history", "", key, 400, "invalid_request", "missing query parameter"},
      {"GET", "/api/history?channel=*", "", key, 400, "invalid_channel", "invalid channel name"},
      {"GET", "/api/history?channel=news&limit=-1", "", key, 400, "invalid_request", "\\\"limit\\\" must be"},
      {"GET", "/api/history?channel=news&limit=ten", "", key, 400, "invalid_request", "\\\"limit\\\" must be"},
      {"GET", "/api/history?channel=news&limit=1000001", "", key, 400, "invalid_request", "\\\"limit\\\" must be"},
  };
  std::map<std::pair<unsigned, std::string>, std::uint64_t> expected;
  for (const Case& c : cases) {
    if (!expected.count({c.status, c.reason})) expected[{c.status, c.reason}] = api.refusals(c.status, c.reason);
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.method + " " + c.target + " [" + c.body.substr(0, 40) + "] auth=" + c.auth);
    const std::string r = api.request(c.method, c.target, c.body, c.auth);
    expect_refusal(r, c.status, c.says);
    if (c.status == 405) {
      EXPECT_TRUE(has_header(r, "Allow: " + std::string(c.target == "/api/publish" ? "POST" : "GET, HEAD")));
    }
    ++expected[{c.status, c.reason}];
  }
  for (const auto& [label, count] : expected) {
    EXPECT_EQ(api.refusals(label.first, label.second), count) << label.first << " " << label.second;
  }
  // Nothing was published by any of them.
  const std::string r = api.request("GET", "/api/history?channel=a");
  EXPECT_EQ(body_of(r).substr(0, 11), "{\"offset\":0") << r;
}

TEST(HttpApi, ChecksComeInTheDocumentedOrder) {
  ApiServer api;
  // 404 before 405 and 401: an unknown path, wrong method, no key.
  expect_refusal(api.request("PUT", "/api/unknown", "x", ""), 404, "no such API path");
  // 405 before 401: wrong method and no key.
  expect_refusal(api.request("GET", "/api/publish", "", ""), 405, "allowed: POST");
  // 401 before 413: no key (or a wrong one) and a body over every limit,
  // announced but never sent (the answer comes on the head alone).
  const std::string oversized_head = "POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n";
  expect_refusal(http_exchange(api.server->port(), {oversized_head + "\r\n"}), 401, "missing API key");
  expect_refusal(http_exchange(api.server->port(), {oversized_head + "Authorization: apikey nope\r\n\r\n"}), 401,
                 "wrong API key");
  // 413 before 400: the key, an oversized body that is not JSON either.
  expect_refusal(http_exchange(api.server->port(),
                               {"POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: apikey " + std::string(kKey) +
                                "\r\nContent-Length: 1001\r\n\r\n" + std::string(1001, '!')}),
                 413, "over the limit");
  // 401 before 400: bad JSON with a wrong key.
  expect_refusal(api.request("POST", "/api/publish", "not json", "apikey wrong"), 401, "wrong API key");
  // The API's cap (1000) applies, not the server's smaller one (100).
  const std::string big = std::string(R"({"channel":"big","data":")") + std::string(900, 'x') + "\"}";
  EXPECT_EQ(status_line(api.request("POST", "/api/publish", big)), "HTTP/1.1 200 OK");
  // The scheme is case-insensitive, the key is not.
  EXPECT_EQ(status_line(api.request("GET", "/api/channels", "", std::string("ApiKey  ") + kKey)), "HTTP/1.1 200 OK");
}

TEST(HttpApi, EmptyKeyMeansNoApiAtAll) {
  ApiServer api("");
  for (const std::string target : {"/api/publish", "/api/channels", "/api/history?channel=news", "/api/x"}) {
    const std::string r = api.request("GET", target, "", "apikey ");
    EXPECT_EQ(status_line(r), "HTTP/1.1 404 Not Found") << target;
  }
  EXPECT_EQ(status_line(api.request("POST", "/api/publish", R"({"channel":"a","data":1})", "apikey x")),
            "HTTP/1.1 404 Not Found");
  EXPECT_EQ(api.channels->history("a", 10).position.offset, 0u);  // nothing was published
}

}  // namespace
