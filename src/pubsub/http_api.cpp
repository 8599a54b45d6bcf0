#include "pubsub/http_api.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <optional>
#include <utility>

#include "ops/log.hpp"
#include "pubsub/json_text.hpp"
#include "pubsub/protocol.hpp"
#include "pubsub/query_string.hpp"

namespace conduit::pubsub {

namespace {

// Why a request was refused: its status and the label it is counted under.
enum class Refusal : std::size_t {
  unknown_path,        // 404
  method_not_allowed,  // 405
  missing_key,         // 401: no "Authorization: apikey ..."
  wrong_key,           // 401
  body_too_large,      // 413
  invalid_json,        // 400: the body is not JSON
  invalid_request,     // 400: missing, unknown or mistyped field or parameter
  invalid_channel,     // 400: not a valid channel name (or too long)
  unavailable,         // 503: the channels are shut down, or Redis is not reachable
  outcome_unknown,     // 504: the publish's answer was lost with the connection to Redis
  count_
};

struct RefusalInfo {
  unsigned status;
  std::string_view label;
};

constexpr std::array<RefusalInfo, static_cast<std::size_t>(Refusal::count_)> kRefusals{{
    {404, "unknown_path"},
    {405, "method_not_allowed"},
    {401, "missing_key"},
    {401, "wrong_key"},
    {413, "body_too_large"},
    {400, "invalid_json"},
    {400, "invalid_request"},
    {400, "invalid_channel"},
    {503, "unavailable"},
    {504, "outcome_unknown"},
}};

enum class Endpoint : std::size_t { publish, channels, history, count_ };
constexpr std::array<std::string_view, static_cast<std::size_t>(Endpoint::count_)> kEndpoints{"publish", "channels",
                                                                                              "history"};

constexpr std::size_t kMaxHistoryLimit = 1'000'000;  // the largest history a channel can have
constexpr std::size_t kDefaultHistoryLimit = 100;

HttpResponse json_response(unsigned status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

// Compares in time that depends on the length of `given` only, never on
// where it differs from `key` (nor on key's length beyond one comparison):
// the key cannot be guessed byte by byte from response times. key is not
// empty (an empty key has no routes).
bool same_key(std::string_view given, std::string_view key) noexcept {
  unsigned char diff = given.size() == key.size() ? 0 : 1;
  for (std::size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i] ^ key[i % key.size()]);
  }
  return diff == 0;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? x + 32 : x) == (y >= 'A' && y <= 'Z' ? y + 32 : y);
         });
}

// A log field value inside double quotes: the line format has no escape.
std::string quotable(std::string_view text) {
  std::string out(text.substr(0, 200));
  std::replace(out.begin(), out.end(), '"', '\'');
  return out;
}

}  // namespace

struct HttpApi::State : std::enable_shared_from_this<HttpApi::State> {
  Channels& channels;
  HttpApiOptions options;
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Refusal::count_)> refusals{};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Endpoint::count_)> answered{};

  State(Channels& c, HttpApiOptions o) : channels(c), options(std::move(o)) {}

  // What a refusal's log line names, copied out of the request (an answer
  // that waits for Redis outlives the request's views).
  struct Origin {
    std::string remote;
    std::string method;
    std::string path;
    explicit Origin(const HttpRequest& req)
        : remote(req.remote_address), method(quotable(req.method)), path(quotable(req.path)) {}
  };

  HttpResponse refuse(const HttpRequest& req, Refusal why, std::string_view message, std::string_view allow = {}) {
    return refuse(Origin(req), why, message, allow);
  }

  HttpResponse refuse(const Origin& from, Refusal why, std::string_view message, std::string_view allow = {}) {
    const RefusalInfo& info = kRefusals[static_cast<std::size_t>(why)];
    refusals[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
    if (why == Refusal::unknown_path) {
      ops::logger().info("event=http_api_refused status={} reason={} remote={} method={} path={}", info.status,
                         info.label, from.remote, from.method, from.path);
    } else {
      ops::logger().warn("event=http_api_refused status={} reason={} remote={} method={} path={} message=\"{}\"",
                         info.status, info.label, from.remote, from.method, from.path, quotable(message));
    }
    std::string body = "{\"error\":{\"code\":";
    append_json_uint(body, info.status);
    body += ",\"message\":";
    append_json_string(body, message);
    body += "}}";
    HttpResponse r = json_response(info.status, std::move(body));
    if (!allow.empty()) r.headers.emplace_back("Allow", std::string(allow));
    return r;
  }

  // The checks every API route makes on the request head, in the documented
  // order after 404: method (405), key (401), body size (413).
  std::optional<HttpResponse> check_head(const HttpRequest& req, std::string_view method, std::string_view allow) {
    const bool method_ok = req.method == method || (method == "GET" && req.method == "HEAD");
    if (!method_ok) {
      return refuse(req, Refusal::method_not_allowed,
                    "method " + quotable(req.method) + " not allowed; allowed: " + std::string(allow), allow);
    }
    std::string_view auth = req.header("Authorization");
    const auto space = auth.find_first_of(" \t");
    if (auth.empty() || space == std::string_view::npos || !iequals(auth.substr(0, space), "apikey")) {
      return refuse(req, Refusal::missing_key, "missing API key (Authorization: apikey KEY)");
    }
    std::string_view given = auth.substr(space);
    while (!given.empty() && (given.front() == ' ' || given.front() == '\t')) given.remove_prefix(1);
    if (!same_key(given, options.api_key)) return refuse(req, Refusal::wrong_key, "wrong API key");
    if (req.content_length > options.max_body_bytes) {
      return refuse(req, Refusal::body_too_large,
                    "request body of " + std::to_string(req.content_length) + " bytes is over the limit of " +
                        std::to_string(options.max_body_bytes));
    }
    return std::nullopt;
  }

  HttpResponse ok(Endpoint endpoint, std::string body) {
    answered[static_cast<std::size_t>(endpoint)].fetch_add(1, std::memory_order_relaxed);
    return json_response(200, std::move(body));
  }

  void publish(const HttpRequest& req, HttpReply reply) {
    // One parser per loop thread: its buffers are reused from one request
    // to the next, and the views of a parse live until the next one.
    thread_local RequestParser parser;
    const ParsedRequest parsed = parser.parse_publish_body(req.body);
    if (!parsed.request) {
      const bool not_json = parsed.error.message == "invalid JSON";
      return reply(refuse(req, not_json ? Refusal::invalid_json : Refusal::invalid_request, parsed.error.message));
    }
    // The answer comes inline (local channels) or from the Redis client's
    // thread: it carries copies, never the request's views.
    channels.publish_async(
        parsed.request->channel, parsed.request->data, MessageType::Text, nullptr,
        [self = shared_from_this(), reply = std::move(reply), from = Origin(req),
         channel = std::string(parsed.request->channel)](const PublishResult& result) {
          switch (result.status) {
            case PublishStatus::ok:
              break;
            case PublishStatus::invalid_channel:
              return reply(self->refuse(from, Refusal::invalid_channel, self->invalid_channel_message(channel)));
            case PublishStatus::unavailable:
            case PublishStatus::failed:
              return reply(self->refuse(from, Refusal::unavailable, "unavailable"));
            case PublishStatus::unknown:
              return reply(self->refuse(from, Refusal::outcome_unknown, "outcome unknown"));
          }
          std::string body = "{\"offset\":";
          append_json_uint(body, result.position.offset);
          body += ",\"epoch\":";
          append_json_string(body, result.position.epoch);
          body += "}";
          reply(self->ok(Endpoint::publish, std::move(body)));
        });
  }

  void list(const HttpRequest&, HttpReply reply) {
    std::string body = "{\"channels\":[";
    bool first = true;
    for (const ChannelInfo& c : channels.list()) {
      body += first ? "{\"channel\":" : ",{\"channel\":";
      first = false;
      append_json_string(body, c.channel);
      body += ",\"subscribers\":";
      append_json_uint(body, c.subscribers);
      body += "}";
    }
    body += "]}";
    reply(ok(Endpoint::channels, std::move(body)));
  }

  void history(const HttpRequest& req, HttpReply reply) {
    const std::optional<std::string> channel = query_param(req.query, "channel");
    if (!channel) return reply(refuse(req, Refusal::invalid_request, "missing query parameter \"channel\""));
    const std::size_t max_length = channels.config().resolve(*channel).max_channel_length;
    if (!is_valid_channel_name(*channel, max_length)) {
      return reply(refuse(req, Refusal::invalid_channel, invalid_channel_message(*channel)));
    }
    std::size_t limit = kDefaultHistoryLimit;
    if (const std::optional<std::string> text = query_param(req.query, "limit")) {
      const char* end = text->data() + text->size();
      auto [ptr, ec] = std::from_chars(text->data(), end, limit);
      if (text->empty() || ec != std::errc() || ptr != end || limit > kMaxHistoryLimit) {
        return reply(refuse(req, Refusal::invalid_request,
                            "\"limit\" must be an integer from 0 to " + std::to_string(kMaxHistoryLimit)));
      }
    }
    channels.history_async(
        *channel, limit,
        [self = shared_from_this(), reply = std::move(reply), from = Origin(req)](const HistorySnapshot& snap) {
          if (snap.position.epoch.empty()) {
            return reply(self->refuse(from, Refusal::unavailable, "unavailable"));  // Redis not reachable
          }
          std::string body = "{\"offset\":";
          append_json_uint(body, snap.position.offset);
          body += ",\"epoch\":";
          append_json_string(body, snap.position.epoch);
          body += ",\"publications\":[";
          bool first = true;
          for (const ChannelPublication& p : snap.publications) {
            body += first ? "{\"offset\":" : ",{\"offset\":";
            first = false;
            append_json_uint(body, p.offset);
            body += ",\"data\":";
            body += data_of_push(p.message);  // history keeps conduit.v1 pushes
            body += "}";
          }
          body += "]}";
          reply(self->ok(Endpoint::history, std::move(body)));
        });
  }

  std::string invalid_channel_message(std::string_view channel) const {
    return "invalid channel name \"" + quotable(channel.substr(0, 64)) + (channel.size() > 64 ? "...\"" : "\"") +
           ": 1 to " + std::to_string(channels.config().resolve(channel).max_channel_length) +
           " bytes of A-Z a-z 0-9 _ - . : @ / =";
  }
};

HttpApi::HttpApi(Channels& channels, HttpApiOptions options)
    : state_(std::make_shared<State>(channels, std::move(options))) {}

HttpApi::~HttpApi() = default;

void HttpApi::add_routes(Server& server) {
  if (state_->options.api_key.empty()) return;  // disabled: every API path is the server's 404
  auto route = [&](std::string path, std::string_view method, std::string_view allow,
                   void (State::*answer)(const HttpRequest&, HttpReply)) {
    HttpRoute r;
    r.method = "*";  // a wrong method gets the API's own JSON 405
    r.path = std::move(path);
    r.match = PathMatch::Exact;
    r.max_body_bytes = state_->options.max_body_bytes;
    r.check_head = [state = state_, method = std::string(method), allow = std::string(allow)](const HttpRequest& req) {
      return state->check_head(req, method, allow);
    };
    r.async_handler = [state = state_, answer](const HttpRequest& req, HttpReply reply) {
      ((*state).*answer)(req, std::move(reply));
    };
    server.add_route(std::move(r));
  };
  route("/api/publish", "POST", "POST", &State::publish);
  route("/api/channels", "GET", "GET, HEAD", &State::list);
  route("/api/history", "GET", "GET, HEAD", &State::history);
  // Any other path under /api/: the API's JSON 404, before the key is asked.
  HttpRoute unknown;
  unknown.method = "*";
  unknown.path = "/api/";
  unknown.match = PathMatch::Prefix;
  unknown.check_head = [state = state_](const HttpRequest& req) -> std::optional<HttpResponse> {
    return state->refuse(req, Refusal::unknown_path,
                         "no such API path; the API has /api/publish, /api/channels and /api/history");
  };
  unknown.handler = [state = state_](const HttpRequest& req) {  // not reached: check_head answers
    return state->refuse(req, Refusal::unknown_path, "no such API path");
  };
  server.add_route(std::move(unknown));
}

void HttpApi::append_metrics(std::string& out) const {
  out += "# HELP conduit_http_api_requests_total HTTP API requests answered 200, by endpoint\n";
  out += "# TYPE conduit_http_api_requests_total counter\n";
  for (std::size_t i = 0; i < kEndpoints.size(); ++i) {
    out += "conduit_http_api_requests_total{endpoint=\"";
    out += kEndpoints[i];
    out += "\"} " + std::to_string(state_->answered[i].load(std::memory_order_relaxed)) + "\n";
  }
  out += "# HELP conduit_http_api_refusals_total HTTP API requests refused, by status and reason\n";
  out += "# TYPE conduit_http_api_refusals_total counter\n";
  for (std::size_t i = 0; i < kRefusals.size(); ++i) {
    out += "conduit_http_api_refusals_total{status=\"" + std::to_string(kRefusals[i].status) + "\",reason=\"";
    out += kRefusals[i].label;
    out += "\"} " + std::to_string(state_->refusals[i].load(std::memory_order_relaxed)) + "\n";
  }
}

}  // namespace conduit::pubsub
