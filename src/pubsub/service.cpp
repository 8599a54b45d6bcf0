// conduit::ChannelService: conduit.v1 sessions on top of conduit::Channels —
// the handshake check (subprotocol, JWT), the requests, per-connection limits,
// token expiry, and the service's metrics.
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "conduit/pubsub.hpp"
#include "ops/log.hpp"
#include "pubsub/channel_name.hpp"
#include "pubsub/http_api.hpp"
#include "pubsub/jwt.hpp"
#include "pubsub/protocol.hpp"
#include "pubsub/query_string.hpp"
#include "server/connection.hpp"

namespace conduit {

namespace {

using pubsub::ErrorCode;

constexpr std::string_view subprotocol_name = "conduit.v1";

// What the service keeps per session (Session::user_data). Touched on the
// session's loop thread, except token_exp, which the expiry thread reads.
struct SessionState {
  bool auth = false;  // a token was checked at the upgrade
  std::string sub;    // the token's user id ("" without auth)
  std::optional<pubsub::ChannelGrants> grants;
  std::atomic<std::int64_t> token_exp{0};  // seconds since 1970, 0 = never
  // Publish rate limit: a token bucket.
  double tokens = 0;
  std::chrono::steady_clock::time_point refilled{};
};

SessionState* state_of(Session& s) { return static_cast<SessionState*>(s.user_data.get()); }

bool may(const std::optional<pubsub::ChannelGrants>& grants, bool publish, std::string_view channel) {
  if (!grants) return false;
  for (const auto& pattern : publish ? grants->publish : grants->subscribe) {
    if (pubsub::pattern_matches(pattern, channel)) return true;
  }
  return false;
}

// Codes counted in conduit_protocol_errors_total{code}.
constexpr std::array<int, 8> counted_codes{400, 403, 404, 409, 429, 500, 503, 504};

}  // namespace

struct ChannelService::Impl {
  Impl(Server& s, ChannelServiceOptions o)
      : options(std::move(o)),
        channels(s, Channels::Options{options.channels, Channels::Format::conduit_v1, options.redis}),
        verifier(options.jwt_secret, options.jwt_leeway),
        api(channels, pubsub::HttpApiOptions{options.api_key, options.api_max_body_bytes}) {}

  ChannelServiceOptions options;
  // Before channels: a publish answered while the channels stop (the Redis
  // engine answers what is pending then) counts its error reply here.
  std::array<std::atomic<std::uint64_t>, counted_codes.size()> errors{};
  Channels channels;
  pubsub::TokenVerifier verifier;
  // POST /api/publish, GET /api/channels, GET /api/history (no routes without a key).
  pubsub::HttpApi api;

  // Token expiry: sessions by the time their token expires (seconds since
  // 1970, leeway included). A refresh adds a new entry; a stale entry is
  // recognised by the session's current expiry and skipped.
  std::mutex expiry_mutex;
  std::condition_variable expiry_cv;
  std::multimap<std::int64_t, std::weak_ptr<Session>> expiries;
  bool stopping = false;
  std::thread expiry_thread;

  bool auth_on() const { return !options.jwt_secret.empty(); }

  void count_error(ErrorCode code) {
    for (std::size_t i = 0; i < counted_codes.size(); ++i) {
      if (counted_codes[i] == static_cast<int>(code)) errors[i].fetch_add(1, std::memory_order_relaxed);
    }
  }

  void reply_error(Session& s, std::optional<std::uint64_t> id, ErrorCode code, std::string_view message) {
    count_error(code);
    ops::logger().info("event=request_refused id={} code={} message=\"{}\" request_id={}", s.id(),
                       static_cast<int>(code), message, id ? std::to_string(*id) : std::string("-"));
    std::string out;
    pubsub::append_error(out, id, code, message);
    s.send(out);
  }

  void watch_expiry(Session& s, std::int64_t exp) {
    if (exp <= 0) return;
    {
      std::lock_guard lock(expiry_mutex);
      expiries.emplace(exp + options.jwt_leeway.count(), s.shared());
    }
    expiry_cv.notify_all();
  }

  void run_expiry() {
    std::unique_lock lock(expiry_mutex);
    while (!stopping) {
      const auto now_s =
          std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
      while (!expiries.empty() && expiries.begin()->first <= now_s) {
        auto session = expiries.begin()->second.lock();
        const std::int64_t due = expiries.begin()->first;
        expiries.erase(expiries.begin());
        if (!session || !session->is_open()) continue;
        auto* st = state_of(*session);
        // A refresh moved the expiry: this entry is stale.
        if (!st || st->token_exp.load() + options.jwt_leeway.count() != due) continue;
        ops::logger().info("event=token_expired id={} sub={}", session->id(), st->sub);
        session->close(3000, "token expired");
      }
      if (expiries.empty()) {
        expiry_cv.wait(lock);
      } else {
        // Expiry is in whole seconds: wake at the next one that is due.
        const auto due = std::chrono::system_clock::time_point(std::chrono::seconds(expiries.begin()->first));
        expiry_cv.wait_until(lock, due + std::chrono::milliseconds(1));
      }
    }
  }

  void handle(Session& s, std::string_view text);
  bool channel_allowed(Session& s, const pubsub::Request& r, const SessionState& st, bool publish);
  void on_subscribe(Session& s, const pubsub::Request& r, SessionState& st);
  void on_publish(Session& s, const pubsub::Request& r, SessionState& st);
  void on_refresh(Session& s, const pubsub::Request& r, SessionState& st);

  void append_metrics(std::string& out) const {
    out += "# HELP conduit_protocol_errors_total conduit.v1 error replies by code\n";
    out += "# TYPE conduit_protocol_errors_total counter\n";
    for (std::size_t i = 0; i < counted_codes.size(); ++i) {
      out += "conduit_protocol_errors_total{code=\"" + std::to_string(counted_codes[i]) + "\"} " +
             std::to_string(errors[i].load()) + "\n";
    }
  }
};

ChannelService::ChannelService(Server& server, ChannelServiceOptions options)
    : impl_(std::make_shared<Impl>(server, std::move(options))) {
  std::weak_ptr<Impl> weak = impl_;
  server.add_metrics_source([weak](std::string& out) {
    if (auto impl = weak.lock()) {
      impl->append_metrics(out);
      impl->api.append_metrics(out);
    }
  });
  impl_->api.add_routes(server);
  if (!impl_->auth_on()) {
    ops::logger().warn(
        "event=auth_off message=\"no auth.jwt_secret: every client may subscribe and publish to every channel\"");
  }
  impl_->expiry_thread = std::thread([impl = impl_.get()] { impl->run_expiry(); });
}

ChannelService::~ChannelService() {
  {
    std::lock_guard lock(impl_->expiry_mutex);
    impl_->stopping = true;
  }
  impl_->expiry_cv.notify_all();
  if (impl_->expiry_thread.joinable()) impl_->expiry_thread.join();
}

Channels& ChannelService::channels() noexcept { return impl_->channels; }

UpgradeDecision ChannelService::on_upgrade(const UpgradeInfo& info) {
  UpgradeDecision d;
  if (!info.offered_subprotocols.empty()) {
    bool offered = false;
    for (auto p : info.offered_subprotocols) offered = offered || p == subprotocol_name;
    if (!offered) {
      d.accept = false;
      d.status = 400;
      d.reason = "this server speaks the subprotocol conduit.v1 only (or none offered)";
      d.failure_label = "unsupported_subprotocol";
      return d;
    }
    d.subprotocol = std::string(subprotocol_name);
  }
  auto state = std::make_shared<SessionState>();
  if (impl_->auth_on()) {
    std::string token;
    if (auto q = pubsub::query_param(info.query, "token")) {
      token = std::move(*q);
    } else {
      const std::string_view authz = info.header("Authorization");
      constexpr std::string_view bearer = "Bearer ";
      if (authz.size() > bearer.size() && authz.substr(0, bearer.size()) == bearer) {
        token = std::string(authz.substr(bearer.size()));
      }
    }
    auto check = impl_->verifier.verify(token, std::chrono::system_clock::now());
    if (!check) {
      d.accept = false;
      d.status = 401;
      d.reason = "token " + std::string(pubsub::to_string(check.failure)) + ": " + check.message;
      d.failure_label = "auth_" + std::string(pubsub::to_string(check.failure));
      return d;
    }
    state->auth = true;
    state->sub = check.claims->sub;
    state->grants = check.claims->channels;
    state->token_exp.store(check.claims->exp.value_or(0));
  }
  d.user_data = std::move(state);
  return d;
}

void ChannelService::on_open(Session& session) {
  auto* st = state_of(session);
  if (!st) return;
  if (st->auth) {
    ops::logger().info("event=auth_ok id={} sub={}", session.id(), st->sub);
    impl_->watch_expiry(session, st->token_exp.load());
  }
}

void ChannelService::on_message(Session& session, std::string_view data, MessageType type) {
  if (type != MessageType::Text) {
    impl_->count_error(ErrorCode::bad_request);
    ops::logger().info("event=request_refused id={} code=1003 message=\"binary frame\"", session.id());
    session.close(1003, "conduit.v1 takes text frames only");
    return;
  }
  impl_->handle(session, data);
}

void ChannelService::Impl::handle(Session& s, std::string_view text) {
  auto* st = state_of(s);
  if (!st) {
    // A session this service did not accept (its on_upgrade was not called).
    s.close(1011, "session not set up by the channel service");
    return;
  }
  thread_local pubsub::RequestParser parser;
  auto parsed = parser.parse(text);
  if (!parsed.request) {
    reply_error(s, parsed.error.id, parsed.error.code, parsed.error.message);
    return;
  }
  const pubsub::Request& r = *parsed.request;
  switch (r.op) {
    case pubsub::Op::subscribe:
      on_subscribe(s, r, *st);
      return;
    case pubsub::Op::unsubscribe: {
      if (!channels.unsubscribe(s, r.channel)) {
        reply_error(s, r.id, ErrorCode::not_subscribed, "not subscribed");
        return;
      }
      std::string out;
      pubsub::append_empty_result(out, r.id);
      s.send(out);
      return;
    }
    case pubsub::Op::publish:
      on_publish(s, r, *st);
      return;
    case pubsub::Op::refresh:
      on_refresh(s, r, *st);
      return;
  }
}

// The request's channel name is valid for its namespace and the token allows
// the operation; otherwise the error reply is sent and false returned.
bool ChannelService::Impl::channel_allowed(Session& s, const pubsub::Request& r, const SessionState& st, bool publish) {
  const ChannelOptions opts = channels.config().resolve(r.channel);
  if (auto e = pubsub::validate_channel_name(r.channel, opts.max_channel_length); e != pubsub::ChannelNameError::none) {
    reply_error(s, r.id, ErrorCode::bad_request, "invalid channel name: " + std::string(pubsub::to_string(e)));
    return false;
  }
  if (auth_on() && !may(st.grants, publish, r.channel)) {
    reply_error(s, r.id, ErrorCode::permission_denied, "permission denied");
    return false;
  }
  return true;
}

void ChannelService::Impl::on_subscribe(Session& s, const pubsub::Request& r, SessionState& st) {
  if (!channel_allowed(s, r, st, false)) return;
  std::optional<StreamPosition> since;
  if (r.since) since = StreamPosition{r.since->offset, std::string(r.since->epoch)};
  const bool with_since = since.has_value();
  const std::uint64_t id = r.id;
  channels.subscribe(s, r.channel, std::move(since),
                     [this, id, with_since](Session& session, const SubscribeResult& res) {
                       switch (res.status) {
                         case SubscribeStatus::ok:
                           break;
                         case SubscribeStatus::already_subscribed:
                           return reply_error(session, id, ErrorCode::already_subscribed, "already subscribed");
                         case SubscribeStatus::too_many_subscriptions:
                           return reply_error(session, id, ErrorCode::too_many_requests, "too many subscriptions");
                         case SubscribeStatus::invalid_channel:
                           return reply_error(session, id, ErrorCode::bad_request, "invalid channel name");
                         case SubscribeStatus::not_open:
                           return;
                         case SubscribeStatus::unavailable:
                           return reply_error(session, id, ErrorCode::unavailable, "unavailable");
                       }
                       std::string out;
                       if (!with_since) {
                         pubsub::append_subscribe_result(out, id, res.position.offset, res.position.epoch);
                       } else {
                         std::vector<std::string_view> pubs;
                         pubs.reserve(res.publications.size());
                         for (const auto& p : res.publications) pubs.push_back(pubsub::publication_of_push(p.message));
                         pubsub::append_subscribe_recovery_result(out, id, res.position.offset, res.position.epoch,
                                                                  res.recovered, pubs);
                       }
                       session.send(out);
                     });
}

void ChannelService::Impl::on_publish(Session& s, const pubsub::Request& r, SessionState& st) {
  if (!channel_allowed(s, r, st, true)) return;
  if (options.publish_rate > 0) {
    const auto now = std::chrono::steady_clock::now();
    const double burst = std::max(1.0, options.publish_rate);
    if (st.refilled == std::chrono::steady_clock::time_point{}) {
      st.tokens = burst;
    } else {
      const double elapsed = std::chrono::duration<double>(now - st.refilled).count();
      st.tokens = std::min(burst, st.tokens + elapsed * options.publish_rate);
    }
    st.refilled = now;
    if (st.tokens < 1.0) {
      reply_error(s, r.id, ErrorCode::too_many_requests, "rate limited");
      return;
    }
    st.tokens -= 1.0;
  }
  // The reply is sent from wherever the result comes (inline with local
  // channels, the Redis client's thread with Redis): Session::send is
  // thread-safe, and the connection is kept alive until then.
  std::shared_ptr<Session> conn;
  if (auto* c = dynamic_cast<server::Connection*>(&s)) conn = c->shared_from_this();
  if (!conn) throw std::invalid_argument("conduit::ChannelService: not a session of a conduit::Server");
  channels.publish_async(r.channel, r.data, MessageType::Text, nullptr,
                         [this, conn, id = r.id](const PublishResult& res) {
                           switch (res.status) {
                             case PublishStatus::ok:
                               break;
                             case PublishStatus::invalid_channel:
                               return reply_error(*conn, id, ErrorCode::bad_request, "invalid channel name");
                             case PublishStatus::unavailable:
                             case PublishStatus::failed:
                               return reply_error(*conn, id, ErrorCode::unavailable, "unavailable");
                             case PublishStatus::unknown:
                               return reply_error(*conn, id, ErrorCode::outcome_unknown, "outcome unknown");
                           }
                           std::string out;
                           pubsub::append_publish_result(out, id, res.position.offset, res.position.epoch);
                           conn->send(out);
                         });
}

void ChannelService::Impl::on_refresh(Session& s, const pubsub::Request& r, SessionState& st) {
  if (auth_on()) {
    auto check = verifier.verify(r.token, std::chrono::system_clock::now());
    if (!check) {
      reply_error(s, r.id, ErrorCode::permission_denied,
                  "invalid token: " + std::string(pubsub::to_string(check.failure)));
      return;
    }
    if (check.claims->sub != st.sub) {
      reply_error(s, r.id, ErrorCode::permission_denied, "token is for another user");
      return;
    }
    st.grants = check.claims->channels;
    const std::int64_t exp = check.claims->exp.value_or(0);
    st.token_exp.store(exp);
    watch_expiry(s, exp);
  }
  std::string out;
  pubsub::append_empty_result(out, r.id);
  s.send(out);
}

}  // namespace conduit
