// conduit::ChannelClient: conduit.v1 requests, replies and pushes over a
// conduit::Client, with re-subscription and exact recovery after reconnects.
//
// State lives in State under one mutex. Everything that reacts to the
// connection (on_open, on_message, on_close, on_state) runs on the client's
// I/O thread; it updates the state under the mutex and collects the
// application's callbacks, which run after the mutex is released (so a
// callback may call back into the client) and in the order they were
// collected (so deliveries keep their order: only the I/O thread delivers).
//
// Invariant per subscription: `delivered` is the position of the last
// publication handed to the application (or the position the server reported
// when there was none yet). A publication is delivered only if it comes after
// `delivered`; anything at or below it in the same epoch is a duplicate and
// dropped. The subscribe sent after each open carries `since` = `delivered`.
#include "conduit/channel_client.hpp"

#include <simdjson.h>

#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "client/json_check.hpp"
#include "conduit/json_string.hpp"

namespace conduit {

const char* to_string(RecoveryFailure reason) noexcept {
  switch (reason) {
    case RecoveryFailure::epoch_changed:
      return "epoch changed";
    case RecoveryFailure::not_in_history:
      return "no longer in history";
    case RecoveryFailure::server_reported:
      return "reported by the server";
    case RecoveryFailure::gap:
      return "gap in the live stream";
  }
  return "unknown";
}

namespace {

class ChannelClientCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "conduit.channel_client"; }
  std::string message(int value) const override {
    switch (static_cast<ChannelClientError>(value)) {
      case ChannelClientError::invalid_channel:
        return "invalid channel name (empty, or a byte outside printable ASCII)";
      case ChannelClientError::invalid_json:
        return "publish data is not one well-formed JSON value";
      case ChannelClientError::already_subscribed:
        return "already subscribed to this channel";
      case ChannelClientError::not_subscribed:
        return "not subscribed to this channel";
    }
    return "unknown channel client error";
  }
};

bool valid_channel_text(std::string_view channel) {
  if (channel.empty()) return false;
  for (unsigned char ch : channel) {
    if (ch <= 0x20 || ch >= 0x7f) return false;
  }
  return true;
}

// One publication as it arrived (views into the frame being handled).
struct PublicationView {
  std::string_view channel;
  std::uint64_t offset = 0;
  std::string_view epoch;
  std::string_view data;
  bool has_data = false;
};

// One server frame, decoded. Views point into the frame or the parser.
struct Frame {
  std::optional<std::uint64_t> id;
  bool has_result = false;
  bool has_error = false;
  bool has_push = false;
  // result
  std::optional<std::uint64_t> offset;
  std::optional<std::string_view> epoch;
  std::optional<bool> recovered;
  std::vector<PublicationView> publications;
  // error
  std::int64_t error_code = 0;
  std::string_view error_message;
  // push
  PublicationView push;
  std::optional<StreamPosition> recovery_failed;
};

namespace od = simdjson::ondemand;

// The JSON text of a value of any type, exactly as sent (trailing whitespace
// of a scalar token excluded).
simdjson::error_code raw_value(od::value v, std::string_view& out) {
  od::json_type type;
  if (auto e = v.type().get(type)) return e;
  if (type == od::json_type::object) {
    od::object o;
    if (auto e = v.get_object().get(o)) return e;
    return o.raw_json().get(out);
  }
  if (type == od::json_type::array) {
    od::array a;
    if (auto e = v.get_array().get(a)) return e;
    return a.raw_json().get(out);
  }
  out = v.raw_json_token();
  while (!out.empty() && (out.back() == ' ' || out.back() == '\t' || out.back() == '\n' || out.back() == '\r')) {
    out.remove_suffix(1);
  }
  return simdjson::SUCCESS;
}

// Fills a publication object (channel, offset, epoch, data, and in a push
// possibly recovery_failed).
simdjson::error_code read_publication(od::object obj, PublicationView& p,
                                      std::optional<StreamPosition>* recovery_failed) {
  for (auto field : obj) {
    std::string_view key;
    if (auto e = field.unescaped_key().get(key)) return e;
    od::value v;
    if (auto e = field.value().get(v)) return e;
    if (key == "channel") {
      if (auto e = v.get_string().get(p.channel)) return e;
    } else if (key == "offset") {
      if (auto e = v.get_uint64().get(p.offset)) return e;
    } else if (key == "epoch") {
      if (auto e = v.get_string().get(p.epoch)) return e;
    } else if (key == "data") {
      if (auto e = raw_value(v, p.data)) return e;
      p.has_data = true;
    } else if (key == "recovery_failed" && recovery_failed) {
      od::object rf;
      if (auto e = v.get_object().get(rf)) return e;
      StreamPosition pos;
      for (auto f : rf) {
        std::string_view k;
        if (auto e = f.unescaped_key().get(k)) return e;
        od::value fv;
        if (auto e = f.value().get(fv)) return e;
        if (k == "offset") {
          if (auto e = fv.get_uint64().get(pos.offset)) return e;
        } else if (k == "epoch") {
          std::string_view epoch;
          if (auto e = fv.get_string().get(epoch)) return e;
          pos.epoch = std::string(epoch);
        }
      }
      *recovery_failed = std::move(pos);
    }
    // Unknown fields are skipped: a newer server may add some.
  }
  return simdjson::SUCCESS;
}

simdjson::error_code decode_frame(od::parser& parser, std::string& buffer, std::string_view data, Frame& f) {
  buffer.assign(data);
  buffer.resize(data.size() + simdjson::SIMDJSON_PADDING);
  od::document doc;
  if (auto e = parser.iterate(buffer.data(), data.size(), buffer.size()).get(doc)) return e;
  od::object top;
  if (auto e = doc.get_object().get(top)) return e;
  for (auto field : top) {
    std::string_view key;
    if (auto e = field.unescaped_key().get(key)) return e;
    od::value v;
    if (auto e = field.value().get(v)) return e;
    if (key == "id") {
      std::uint64_t id = 0;
      if (auto e = v.get_uint64().get(id)) return e;
      f.id = id;
    } else if (key == "result") {
      f.has_result = true;
      od::object result;
      if (auto e = v.get_object().get(result)) return e;
      for (auto rf : result) {
        std::string_view k;
        if (auto e = rf.unescaped_key().get(k)) return e;
        od::value rv;
        if (auto e = rf.value().get(rv)) return e;
        if (k == "offset") {
          std::uint64_t o = 0;
          if (auto e = rv.get_uint64().get(o)) return e;
          f.offset = o;
        } else if (k == "epoch") {
          std::string_view s;
          if (auto e = rv.get_string().get(s)) return e;
          f.epoch = s;
        } else if (k == "recovered") {
          bool b = false;
          if (auto e = rv.get_bool().get(b)) return e;
          f.recovered = b;
        } else if (k == "publications") {
          od::array arr;
          if (auto e = rv.get_array().get(arr)) return e;
          for (auto item : arr) {
            od::object po;
            if (auto e = item.get_object().get(po)) return e;
            PublicationView p;
            if (auto e = read_publication(po, p, nullptr)) return e;
            f.publications.push_back(p);
          }
        }
      }
    } else if (key == "error") {
      f.has_error = true;
      od::object err;
      if (auto e = v.get_object().get(err)) return e;
      for (auto ef : err) {
        std::string_view k;
        if (auto e = ef.unescaped_key().get(k)) return e;
        od::value ev;
        if (auto e = ef.value().get(ev)) return e;
        if (k == "code") {
          if (auto e = ev.get_int64().get(f.error_code)) return e;
        } else if (k == "message") {
          if (auto e = ev.get_string().get(f.error_message)) return e;
        }
      }
    } else if (key == "push") {
      f.has_push = true;
      od::object push;
      if (auto e = v.get_object().get(push)) return e;
      if (auto e = read_publication(push, f.push, &f.recovery_failed)) return e;
    }
  }
  return simdjson::SUCCESS;
}

}  // namespace

const std::error_category& channel_client_category() noexcept {
  static const ChannelClientCategory category;
  return category;
}

struct ChannelClient::State {
  enum class RequestKind : std::uint8_t { subscribe, unsubscribe, publish };
  struct Request {
    RequestKind kind = RequestKind::publish;
    std::string channel;
    std::function<void(const ChannelPublishResult&)> publish_done;
  };
  struct Subscription {
    std::shared_ptr<const ChannelSubscriptionHandlers> handlers;
    // See the invariant at the top of the file; nullopt before the first result.
    std::optional<StreamPosition> delivered;
    // The subscribe in flight on the current connection (0: none). Pushes for
    // the channel are ignored until its reply: the server sends the reply
    // before any live publication of the subscription.
    std::uint64_t request_id = 0;
    bool live = false;  // the server confirmed it on the current connection
  };
  // A request made while offline, sent after the next open.
  struct Queued {
    std::uint64_t id = 0;
    std::string frame;
    Request request;
  };
  using Callback = std::function<void()>;

  std::mutex mu;
  Client* client = nullptr;
  ChannelClientHandlers handlers;
  std::size_t offline_limit = 0;
  bool open = false;
  bool closed_for_good = false;
  std::uint64_t next_id = 1;
  std::map<std::string, Subscription, std::less<>> subscriptions;
  std::unordered_map<std::uint64_t, Request> in_flight;
  std::deque<Queued> queued;
  std::size_t queued_bytes = 0;
  // Decoding: touched by the I/O thread only.
  od::parser parser;
  std::string frame_buffer;

  static void run(std::vector<Callback>& callbacks) {
    for (auto& cb : callbacks) cb();
    callbacks.clear();
  }

  std::string subscribe_frame(std::uint64_t id, std::string_view channel, const std::optional<StreamPosition>& since) {
    std::string out = "{\"id\":" + std::to_string(id) + ",\"subscribe\":{\"channel\":";
    append_json_string(out, channel);
    if (since) {
      out += ",\"since\":{\"offset\":" + std::to_string(since->offset) + ",\"epoch\":";
      append_json_string(out, since->epoch);
      out.push_back('}');
    }
    out += "}}";
    return out;
  }

  // Sends a subscribe for `channel` on the open connection (caller holds mu).
  void send_subscribe_locked(const std::string& channel, Subscription& sub) {
    const std::uint64_t id = next_id++;
    sub.request_id = id;
    sub.live = false;
    if (client->send(subscribe_frame(id, channel, sub.delivered))) {
      // The connection just ended: the next open subscribes again.
      sub.request_id = 0;
      return;
    }
    in_flight.emplace(id, Request{RequestKind::subscribe, channel, {}});
  }

  // Sends or queues a request (caller holds mu). False when it fits nowhere.
  bool submit_locked(std::uint64_t id, std::string frame, Request request) {
    if (open && !client->send(frame)) {
      in_flight.emplace(id, std::move(request));
      return true;
    }
    if (queued_bytes + frame.size() > offline_limit) return false;
    queued_bytes += frame.size();
    queued.push_back(Queued{id, std::move(frame), std::move(request)});
    return true;
  }

  // ---- connection events (I/O thread) ------------------------------------------

  void on_open() {
    std::lock_guard lock(mu);
    open = true;
    for (auto& [channel, sub] : subscriptions) send_subscribe_locked(channel, sub);
    while (!queued.empty()) {
      Queued& q = queued.front();
      if (client->send(q.frame)) break;  // ended again already: keep the rest for the next open
      queued_bytes -= q.frame.size();
      in_flight.emplace(q.id, std::move(q.request));
      queued.pop_front();
    }
  }

  // The connection ended: what was in flight is lost with it.
  void on_close(std::vector<Callback>& callbacks) {
    std::lock_guard lock(mu);
    open = false;
    fail_in_flight_locked(channel_error::connection_lost, "the connection ended before the reply", callbacks);
    for (auto& [channel, sub] : subscriptions) {
      sub.request_id = 0;
      sub.live = false;
    }
  }

  void on_closed_for_good(std::vector<Callback>& callbacks) {
    std::lock_guard lock(mu);
    open = false;
    closed_for_good = true;
    fail_in_flight_locked(channel_error::connection_lost, "the connection ended before the reply", callbacks);
    for (auto& q : queued) {
      if (q.request.publish_done) {
        callbacks.push_back([done = std::move(q.request.publish_done)] {
          ChannelPublishResult r;
          r.error = ChannelReplyError{channel_error::client_closed, "the client closed before the request was sent"};
          done(r);
        });
      }
    }
    queued.clear();
    queued_bytes = 0;
  }

  void fail_in_flight_locked(int code, const char* message, std::vector<Callback>& callbacks) {
    for (auto& [id, req] : in_flight) {
      if (req.kind == RequestKind::publish && req.publish_done) {
        callbacks.push_back([done = std::move(req.publish_done), code, message] {
          ChannelPublishResult r;
          r.error = ChannelReplyError{code, message};
          done(r);
        });
      }
    }
    in_flight.clear();
  }

  void report_error(std::vector<Callback>& callbacks, int code, std::string message) {
    if (!handlers.on_error) return;
    callbacks.push_back([this, err = ChannelReplyError{code, std::move(message)}] { handlers.on_error(err); });
  }

  void on_message(std::string_view data, MessageType type) {
    std::vector<Callback> callbacks;
    if (type != MessageType::Text) {
      report_error(callbacks, channel_error::bad_frame, "a binary message (conduit.v1 frames are text)");
      run(callbacks);
      return;
    }
    Frame f;
    if (auto e = decode_frame(parser, frame_buffer, data, f)) {
      report_error(callbacks, channel_error::bad_frame,
                   std::string("not a conduit.v1 frame: ") + simdjson::error_message(e));
      run(callbacks);
      return;
    }
    {
      std::lock_guard lock(mu);
      if (f.has_push) {
        handle_push_locked(f, callbacks);
      } else if (f.id && (f.has_result || f.has_error)) {
        handle_reply_locked(f, callbacks);
      } else if (f.has_error) {
        report_error(callbacks, static_cast<int>(f.error_code), std::string(f.error_message));
      } else {
        report_error(callbacks, channel_error::bad_frame, "a frame that is neither a reply nor a push");
      }
    }
    // Publication views point into the frame and the parser: the callbacks
    // run before this function returns.
    run(callbacks);
  }

  // `epoch` points into the frame being handled (valid while its callbacks run).
  static void deliver(std::vector<Callback>& callbacks, const std::shared_ptr<const ChannelSubscriptionHandlers>& h,
                      const PublicationView& p, const std::string& channel, std::string_view epoch, bool recovered) {
    if (!h->on_publication) return;
    callbacks.push_back([h, channel, offset = p.offset, epoch, data = p.data, recovered] {
      ReceivedPublication pub;
      pub.channel = channel;
      pub.offset = offset;
      pub.epoch = epoch;
      pub.data = data;
      pub.recovered = recovered;
      h->on_publication(pub);
    });
  }

  static void recovery_failed(std::vector<Callback>& callbacks,
                              const std::shared_ptr<const ChannelSubscriptionHandlers>& h, std::string channel,
                              RecoveryFailure reason, StreamPosition last, StreamPosition now) {
    if (!h->on_recovery_failed) return;
    callbacks.push_back([h, channel = std::move(channel), reason, last = std::move(last), now = std::move(now)] {
      ChannelRecoveryFailed f;
      f.channel = channel;
      f.reason = reason;
      f.last_delivered = last;
      f.position = now;
      h->on_recovery_failed(f);
    });
  }

  void handle_push_locked(const Frame& f, std::vector<Callback>& callbacks) {
    auto it = subscriptions.find(f.push.channel);
    // Not (or no longer) subscribed, or the subscribe reply is still to come:
    // such pushes belong to an earlier subscription of this connection.
    if (it == subscriptions.end() || !it->second.live) return;
    Subscription& sub = it->second;
    const std::string& channel = it->first;
    if (f.recovery_failed) {
      StreamPosition last = sub.delivered.value_or(StreamPosition{});
      sub.delivered = *f.recovery_failed;
      recovery_failed(callbacks, sub.handlers, channel, RecoveryFailure::server_reported, std::move(last),
                      *f.recovery_failed);
      return;
    }
    if (!f.push.has_data) {
      report_error(callbacks, channel_error::bad_frame, "a push without data or recovery_failed");
      return;
    }
    const StreamPosition pushed{f.push.offset, std::string(f.push.epoch)};
    const StreamPosition before_push{pushed.offset == 0 ? 0 : pushed.offset - 1, pushed.epoch};
    if (sub.delivered && sub.delivered->epoch == pushed.epoch) {
      if (pushed.offset <= sub.delivered->offset) return;  // already delivered
      if (pushed.offset != sub.delivered->offset + 1) {
        recovery_failed(callbacks, sub.handlers, channel, RecoveryFailure::gap, *sub.delivered, before_push);
      }
    } else if (sub.delivered) {
      recovery_failed(callbacks, sub.handlers, channel, RecoveryFailure::epoch_changed, *sub.delivered, before_push);
    }
    sub.delivered = pushed;
    deliver(callbacks, sub.handlers, f.push, channel, f.push.epoch, false);
  }

  void handle_reply_locked(const Frame& f, std::vector<Callback>& callbacks) {
    auto node = in_flight.extract(*f.id);
    if (node.empty()) return;  // a reply to a request of an earlier connection
    Request& req = node.mapped();
    std::optional<ChannelReplyError> error;
    if (f.has_error) error = ChannelReplyError{static_cast<int>(f.error_code), std::string(f.error_message)};
    switch (req.kind) {
      case RequestKind::publish: {
        if (!req.publish_done) return;
        ChannelPublishResult r;
        if (error) {
          r.error = std::move(error);
        } else if (!f.offset || !f.epoch) {
          r.error = ChannelReplyError{channel_error::bad_frame, "publish result without offset or epoch"};
        } else {
          r.position = StreamPosition{*f.offset, std::string(*f.epoch)};
        }
        callbacks.push_back([done = std::move(req.publish_done), r = std::move(r)] { done(r); });
        return;
      }
      case RequestKind::unsubscribe:
        return;  // delivery stopped when unsubscribe() was called
      case RequestKind::subscribe:
        handle_subscribe_reply_locked(f, req.channel, std::move(error), callbacks);
        return;
    }
  }

  void handle_subscribe_reply_locked(const Frame& f, const std::string& channel_name,
                                     std::optional<ChannelReplyError> error, std::vector<Callback>& callbacks) {
    auto it = subscriptions.find(channel_name);
    if (it == subscriptions.end() || it->second.request_id != *f.id) return;  // unsubscribed meanwhile
    Subscription& sub = it->second;
    const std::string& channel = it->first;
    auto handlers_copy = sub.handlers;
    sub.request_id = 0;
    if (!error && (!f.offset || !f.epoch)) {
      error = ChannelReplyError{channel_error::bad_frame, "subscribe result without offset or epoch"};
    }
    if (error) {
      if (handlers_copy->on_error) {
        callbacks.push_back([h = handlers_copy, e = std::move(*error)] { h->on_error(e); });
      }
      subscriptions.erase(it);
      return;
    }
    sub.live = true;
    const StreamPosition now{*f.offset, std::string(*f.epoch)};
    ChannelSubscribed event;
    event.position = now;
    const bool asked = sub.delivered.has_value();  // the subscribe carried since = delivered
    event.resubscribe = asked;
    if (!asked) {
      sub.delivered = now;
      callbacks.push_back([h = handlers_copy, channel, event] {
        ChannelSubscribed e = event;
        e.channel = channel;
        if (h->on_subscribed) h->on_subscribed(e);
      });
      return;
    }
    const StreamPosition last = *sub.delivered;
    // Exactly the publications after `last`, contiguous, ending at `now`: the
    // server's promise for recovered = true. Anything else is a gap.
    bool complete = f.recovered.value_or(false) && now.epoch == last.epoch && now.offset >= last.offset;
    std::vector<const PublicationView*> fresh;
    if (complete) {
      std::uint64_t expect = last.offset + 1;
      for (const PublicationView& p : f.publications) {
        if (p.offset < expect) continue;  // at or below what was delivered: duplicate
        if (p.offset != expect || !p.has_data) {
          complete = false;
          break;
        }
        fresh.push_back(&p);
        ++expect;
      }
      if (expect != now.offset + 1) complete = false;
    }
    event.recovered = complete;
    event.recovered_count = complete ? fresh.size() : 0;
    callbacks.push_back([h = handlers_copy, channel, event] {
      ChannelSubscribed e = event;
      e.channel = channel;
      if (h->on_subscribed) h->on_subscribed(e);
    });
    if (!complete) {
      RecoveryFailure reason = RecoveryFailure::not_in_history;
      if (now.epoch != last.epoch)
        reason = RecoveryFailure::epoch_changed;
      else if (f.recovered.value_or(false))
        reason = RecoveryFailure::gap;  // recovered=true yet incomplete
      sub.delivered = now;
      recovery_failed(callbacks, handlers_copy, channel, reason, last, now);
      return;
    }
    for (const PublicationView* p : fresh) deliver(callbacks, handlers_copy, *p, channel, *f.epoch, true);
    sub.delivered = now;
  }
};

namespace {
ClientOptions channel_options(ClientOptions o) {
  bool offered = false;
  for (const auto& p : o.subprotocols) offered = offered || p == "conduit.v1";
  if (!offered) o.subprotocols.insert(o.subprotocols.begin(), "conduit.v1");
  // Requests are re-sent by the channel layer (subscriptions with their
  // position, queued publishes) and never replayed by the connection: see
  // ClientOptions::resend_unsent. The offline queue is the channel layer's.
  o.resend_unsent = false;
  o.offline_queue_bytes = 0;
  return o;
}

ClientHandlers wire_handlers(const std::shared_ptr<ChannelClient::State>& state, ClientHandlers h) {
  std::weak_ptr<ChannelClient::State> weak = state;
  auto on_open = std::move(h.on_open);
  h.on_open = [weak, on_open](const std::string& subprotocol) {
    if (auto s = weak.lock()) s->on_open();
    if (on_open) on_open(subprotocol);
  };
  auto on_close = std::move(h.on_close);
  h.on_close = [weak, on_close](std::uint16_t code, std::string_view reason, bool by_server) {
    std::vector<ChannelClient::State::Callback> callbacks;
    if (auto s = weak.lock()) s->on_close(callbacks);
    if (on_close) on_close(code, reason, by_server);
    ChannelClient::State::run(callbacks);
  };
  auto on_state = std::move(h.on_state);
  h.on_state = [weak, on_state](const ClientStateEvent& e) {
    std::vector<ChannelClient::State::Callback> callbacks;
    if (e.state == ClientState::Closed) {
      if (auto s = weak.lock()) s->on_closed_for_good(callbacks);
    }
    if (on_state) on_state(e);
    ChannelClient::State::run(callbacks);
  };
  h.on_message = [weak](std::string_view data, MessageType type) {
    if (auto s = weak.lock()) s->on_message(data, type);
  };
  return h;
}
}  // namespace

ChannelClient::ChannelClient(std::string url, ClientOptions options, ChannelClientHandlers handlers)
    : state_(std::make_shared<State>()) {
  state_->offline_limit = options.offline_queue_bytes;
  state_->handlers.on_error = std::move(handlers.on_error);
  client_ = std::make_unique<Client>(std::move(url), channel_options(std::move(options)),
                                     wire_handlers(state_, std::move(handlers.connection)));
  state_->client = client_.get();
}

ChannelClient::ChannelClient(boost::asio::io_context& ctx, std::string url, ClientOptions options,
                             ChannelClientHandlers handlers)
    : state_(std::make_shared<State>()) {
  state_->offline_limit = options.offline_queue_bytes;
  state_->handlers.on_error = std::move(handlers.on_error);
  client_ = std::make_unique<Client>(ctx, std::move(url), channel_options(std::move(options)),
                                     wire_handlers(state_, std::move(handlers.connection)));
  state_->client = client_.get();
}

ChannelClient::~ChannelClient() {
  // The connection (and its I/O) ends before the state it calls into.
  client_.reset();
}

void ChannelClient::start() { client_->start(); }

std::error_code ChannelClient::subscribe(std::string_view channel, ChannelSubscriptionHandlers handlers,
                                         ChannelSubscribeOptions options) {
  if (!valid_channel_text(channel)) return make_error_code(ChannelClientError::invalid_channel);
  State& s = *state_;
  std::lock_guard lock(s.mu);
  if (s.closed_for_good) return make_error_code(ClientError::not_open);
  auto [it, inserted] = s.subscriptions.try_emplace(std::string(channel));
  if (!inserted) return make_error_code(ChannelClientError::already_subscribed);
  it->second.handlers = std::make_shared<const ChannelSubscriptionHandlers>(std::move(handlers));
  it->second.delivered = std::move(options.since);
  if (s.open) s.send_subscribe_locked(it->first, it->second);
  return {};
}

std::error_code ChannelClient::unsubscribe(std::string_view channel) {
  State& s = *state_;
  std::lock_guard lock(s.mu);
  auto it = s.subscriptions.find(channel);
  if (it == s.subscriptions.end()) return make_error_code(ChannelClientError::not_subscribed);
  const bool on_server = s.open && (it->second.live || it->second.request_id != 0);
  s.subscriptions.erase(it);
  if (on_server) {
    const std::uint64_t id = s.next_id++;
    std::string frame = "{\"id\":" + std::to_string(id) + ",\"unsubscribe\":{\"channel\":";
    append_json_string(frame, channel);
    frame += "}}";
    if (!s.client->send(frame))
      s.in_flight.emplace(id, State::Request{State::RequestKind::unsubscribe, std::string(channel), {}});
  }
  return {};
}

std::error_code ChannelClient::publish(std::string_view channel, std::string_view json_data,
                                       std::function<void(const ChannelPublishResult&)> done) {
  if (!valid_channel_text(channel)) return make_error_code(ChannelClientError::invalid_channel);
  {
    // A request whose data is not JSON would make the whole frame invalid
    // JSON, which the server answers without an id: refuse it here.
    if (!client_detail::is_json_value(json_data)) {
      return make_error_code(ChannelClientError::invalid_json);
    }
  }
  State& s = *state_;
  std::lock_guard lock(s.mu);
  if (s.closed_for_good) return make_error_code(ClientError::not_open);
  const std::uint64_t id = s.next_id++;
  std::string frame = "{\"id\":" + std::to_string(id) + ",\"publish\":{\"channel\":";
  append_json_string(frame, channel);
  frame += ",\"data\":";
  frame.append(json_data);
  frame += "}}";
  if (!s.submit_locked(id, std::move(frame),
                       State::Request{State::RequestKind::publish, std::string(channel), std::move(done)})) {
    return make_error_code(ClientError::offline_queue_full);
  }
  return {};
}

std::optional<StreamPosition> ChannelClient::position(std::string_view channel) const {
  std::lock_guard lock(state_->mu);
  auto it = state_->subscriptions.find(channel);
  if (it == state_->subscriptions.end()) return std::nullopt;
  return it->second.delivered;
}

void ChannelClient::close(std::uint16_t code, std::string_view reason) { client_->close(code, reason); }

bool ChannelClient::wait(ClientDuration timeout) { return client_->wait(timeout); }

Client& ChannelClient::connection() noexcept { return *client_; }

}  // namespace conduit
