// Channels: publish/subscribe by name on a conduit::Server, with per-channel
// history so that a subscriber that reconnects gets exactly what it missed.
//
//   conduit::Channels channels(server, {});            // before server.start()
//   handlers.on_open = [&](conduit::Session& s) { channels.subscribe(s, "news"); };
//   channels.publish("news", "hello");                  // any thread
//
// Every publication gets the channel's next offset (1, 2, 3, ...) and carries
// the channel's epoch (a random string naming one life of the channel's
// history). A publication is framed once, into one buffer that every
// subscriber's send queue references, on every loop.
//
// Ordering and recovery. Each channel has one lock, taken by publish (to
// assign the offset, keep the publication in history and hand it to the
// loops that have subscribers) and by subscribe (to read history and join the
// live stream in one step). There is no lock over all channels on the publish
// path (the registry is sharded). Because history is read and the subscriber
// joins under the same lock that orders publications, a subscriber sees every
// publication after its starting position exactly once, in offset order: the
// ones it missed in SubscribeResult::publications, then the live ones.
//
// Threads. publish(), history() and list() may be called from any thread.
// subscribe() and unsubscribe() run on the session's loop (called from
// another thread, they are posted there and the callback runs there).
// A session leaves every channel when it closes. An unsubscribe is immediate:
// publications still on their way to the session's loop when it runs (made
// on another thread just before) are not delivered to it.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/message.hpp"
#include "conduit/server.hpp"
#include "conduit/session.hpp"
#include "conduit/stream_position.hpp"

namespace conduit {

// ---- configuration ----------------------------------------------------------

struct ChannelOptions {
  // Publications kept for recovery; 0 turns history off.
  std::size_t history_size = 100;
  // Publications older than this are dropped from history; 0 means no age
  // limit (history_size alone bounds it).
  std::chrono::milliseconds history_ttl{std::chrono::minutes(5)};
  // A subscribe is refused when the session already holds this many
  // subscriptions (resolved for the namespace of the channel subscribed,
  // compared with the session's total).
  std::size_t max_subscriptions_per_connection = 128;
  // Longest accepted channel name, in bytes.
  std::size_t max_channel_length = 255;
};

// One namespace's overrides: a key that is not set keeps the default.
struct ChannelNamespaceOverrides {
  std::optional<std::size_t> history_size;
  std::optional<std::chrono::milliseconds> history_ttl;
  std::optional<std::size_t> max_subscriptions_per_connection;
  std::optional<std::size_t> max_channel_length;
};

// A channel's namespace is the part of its name before the first ':'
// ("chat:lobby" is in namespace "chat"); a name without ':' is in none.
// The Redis engine: channels shared by every node connected to the same
// Redis (and prefix). Publish runs one script in Redis that assigns the
// offset, appends to the channel's history stream and publishes to the
// nodes; each node subscribes in Redis to the channels it has subscribers
// for and frames what arrives once for all of them.
struct ChannelRedisOptions {
  // redis://[:password@]host[:port][/db]; empty: the local engine (channels
  // live in this process only).
  std::string url;
  // Prefix of every key and pub/sub channel name in Redis.
  std::string prefix = "conduit";
  // How long a channel's offset and epoch live in Redis after its last
  // publication (at least history_ttl).
  std::chrono::milliseconds meta_ttl{std::chrono::hours(24)};
  // Bytes received from Redis and not yet taken by the loops above which the
  // node drops what arrives for a channel and resyncs the channel from the
  // Redis history once the loops catch up.
  std::size_t max_backlog_bytes = 64u << 20;
  std::chrono::milliseconds connect_timeout{2000};
};

// "" when url is a Redis URL the engine accepts, else what is wrong with it.
std::string redis_url_error(std::string_view url);

struct ChannelConfig {
  ChannelOptions defaults;
  std::map<std::string, ChannelNamespaceOverrides, std::less<>> namespaces;

  // The defaults with the overrides of channel's namespace applied; a
  // namespace that is not declared gets the defaults unchanged.
  ChannelOptions resolve(std::string_view channel) const;
};

// A channel name is 1..max_channel_length bytes of A-Z a-z 0-9 _ - . : @ / =
// ('*' is excluded: it is the wildcard of token permission patterns).
bool is_valid_channel_name(std::string_view name, std::size_t max_length = 255) noexcept;

// ---- channels ----------------------------------------------------------------

// StreamPosition (conduit/stream_position.hpp): a channel's offset and epoch.

// A publication as kept in history. `message` is what subscribers were sent
// (see Channels::Format); the view is valid while the object that handed it
// out (a SubscribeResult during its callback, a HistorySnapshot) lives.
struct ChannelPublication {
  std::uint64_t offset = 0;
  std::string_view message;
};

enum class SubscribeStatus : std::uint8_t {
  ok,                      // subscribed (recovered tells how `since` went)
  already_subscribed,      // the session already holds this channel
  too_many_subscriptions,  // max_subscriptions_per_connection reached
  invalid_channel,         // not a valid channel name (or too long)
  not_open,                // the session is closing or closed
  unavailable,             // Redis engine: Redis is not reachable, the channel's position is unknown
};

struct SubscribeResult {
  SubscribeStatus status = SubscribeStatus::ok;
  StreamPosition position;  // the channel's current position
  // With `since`: true when every publication after it is in `publications`
  // (possibly none); false when the epoch differs, since.offset is above the
  // channel's last offset or history no longer holds since.offset + 1 (then
  // `publications` is empty and the application must reload). Without
  // `since`: false.
  bool recovered = false;
  std::vector<ChannelPublication> publications;  // oldest first; valid during the callback
};

enum class PublishStatus : std::uint8_t {
  ok,
  invalid_channel,  // not a valid channel name (or too long)
  unavailable,      // not published: the channels are shut down, or (Redis engine) Redis is not reachable
  unknown,          // Redis engine: sent, but the connection to Redis was lost before its answer:
                    // it may or may not have been published
  failed,           // Redis engine: Redis refused it (an error reply, logged): not published
};

struct PublishResult {
  PublishStatus status = PublishStatus::ok;
  StreamPosition position;  // ok: the offset given to this publication, and the epoch
};

// What history() returns: the channel's position and its newest publications.
struct HistorySnapshot {
  StreamPosition position;
  std::vector<ChannelPublication> publications;   // oldest first
  std::vector<std::shared_ptr<const void>> keep;  // holds the bytes the views point into
};

struct ChannelInfo {
  std::string channel;
  std::size_t subscribers = 0;  // on this server
};

// Counters for metrics (monotonic totals and current gauges).
struct ChannelStats {
  std::uint64_t channels = 0;       // channels alive (with subscribers or history)
  std::uint64_t subscriptions = 0;  // subscriptions alive
  std::uint64_t publications_total = 0;
  std::uint64_t deliveries_total = 0;  // publications handed to a subscriber's queue
  std::uint64_t history_bytes = 0;     // bytes held by history
  std::uint64_t recoveries_recovered_total = 0;
  std::uint64_t recoveries_failed_total = 0;
};

class Channels {
 public:
  enum class Format : std::uint8_t {
    // Subscribers receive the published data as it is, with the type given.
    raw,
    // Subscribers receive the conduit.v1 push (text):
    //   {"push":{"channel":C,"offset":N,"epoch":E,"data":DATA}}
    // DATA must be one well-formed JSON value (the caller checks it).
    conduit_v1,
  };
  struct Options {
    ChannelConfig config;
    Format format = Format::raw;
    ChannelRedisOptions redis;  // url empty: the local engine
  };

  // Before server.start() (adds a close hook and a metrics source; throws
  // std::logic_error after). The server must outlive the Channels. Starts
  // one thread (history expiry, once a second): with conduit::ShutdownOnSignal,
  // construct it after the ShutdownOnSignal so that the thread inherits the
  // blocked signals, as the loops do.
  Channels(Server& server, Options options);
  ~Channels();
  Channels(const Channels&) = delete;
  Channels& operator=(const Channels&) = delete;

  using SubscribeCallback = std::function<void(Session&, const SubscribeResult&)>;
  // Subscribes session to channel, with recovery from `since` when given. The
  // callback runs on the session's loop once the session is in the live
  // stream and before any live publication reaches it: what it sends (a
  // reply, the recovered publications) precedes the live publications.
  void subscribe(Session& session, std::string_view channel, std::optional<StreamPosition> since = {},
                 SubscribeCallback done = {});
  // The session's loop thread only. False when the session was not subscribed.
  bool unsubscribe(Session& session, std::string_view channel);
  // Subscriptions the session holds (its loop thread only).
  std::size_t subscription_count(const Session& session) const;

  // Assigns the next offset, keeps the publication in history and delivers it
  // to every subscriber on every loop. `except`, when it is a subscriber, does
  // not get this publication (a relay leaving out the sender); everyone else
  // does, history too.
  // Local engine: any thread; never blocks on I/O; done runs before
  // publish_async returns. Redis engine: done runs on the Redis client's
  // thread once Redis answered (keep it short; it must not call the
  // blocking publish() or history()); `except` is not supported there
  // (std::invalid_argument).
  using PublishCallback = std::function<void(const PublishResult&)>;
  void publish_async(std::string_view channel, std::string_view data, MessageType type, const Session* except,
                     PublishCallback done);
  // publish_async, waiting for the result. Redis engine: blocks the calling
  // thread until Redis answers, so it throws std::logic_error on an event
  // loop thread (use publish_async there).
  PublishResult publish(std::string_view channel, std::string_view data, MessageType type = MessageType::Text,
                        const Session* except = nullptr);

  // The newest `limit` publications still in history. A channel that does
  // not exist yet is reported at offset 0 with a fresh epoch. Redis engine:
  // read from Redis; done runs on the Redis client's thread (with
  // position.epoch empty when Redis was not reachable); history() blocks as
  // publish() does.
  using HistoryCallback = std::function<void(const HistorySnapshot&)>;
  void history_async(std::string_view channel, std::size_t limit, HistoryCallback done);
  HistorySnapshot history(std::string_view channel, std::size_t limit);
  // Channels with subscribers on this server.
  std::vector<ChannelInfo> list() const;
  ChannelStats stats() const;
  const ChannelConfig& config() const noexcept;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// ---- the conduit.v1 service ---------------------------------------------------
//
// conduit.v1 (the protocol of conduitd --mode pubsub) on top of Channels: the
// JSON requests and replies, an HTTP API for backends (POST /api/publish, GET
// /api/channels, GET /api/history) and JWT auth at the handshake. Construct it
// before server.start() and forward the server's handlers to it:
//
//   std::unique_ptr<conduit::ChannelService> service;
//   conduit::ServerHandlers h;
//   h.on_upgrade = [&](const conduit::UpgradeInfo& u) { return service->on_upgrade(u); };
//   h.on_open = [&](conduit::Session& s) { service->on_open(s); };
//   h.on_message = [&](conduit::Session& s, std::string_view d, conduit::MessageType t) {
//     service->on_message(s, d, t); };
//   conduit::Server server(options, h);
//   service = std::make_unique<conduit::ChannelService>(server, service_options);
//   server.start();
//
// The service owns Session::user_data of its sessions (set at the upgrade).
// It starts a thread of its own (token expiry) besides the Channels' one:
// construct it after a conduit::ShutdownOnSignal, as conduitd does.

struct ChannelServiceOptions {
  ChannelConfig channels;
  // HTTP API: disabled (404) when empty; requests need `Authorization: apikey KEY`.
  std::string api_key;
  std::size_t api_max_body_bytes = 65536;
  // JWT auth (HS256): off when empty (everything allowed).
  std::string jwt_secret;
  std::chrono::seconds jwt_leeway{0};
  // Publish requests per second per connection (a token bucket with a burst
  // of max(1, rate)); 0 = no limit.
  double publish_rate = 0;
  // The Redis engine (url empty: local channels).
  ChannelRedisOptions redis;
};

class ChannelService {
 public:
  ChannelService(Server& server, ChannelServiceOptions options);
  ~ChannelService();
  ChannelService(const ChannelService&) = delete;
  ChannelService& operator=(const ChannelService&) = delete;

  // The handshake check: selects conduit.v1 when offered (speaks it to
  // clients that offer no subprotocol too), refuses a client that offers
  // only other subprotocols (400), and with auth on verifies the token
  // (`?token=` or `Authorization: Bearer`), refusing with 401 and a one-line
  // reason counted in conduit_handshake_failures_total{reason="auth_<why>"}.
  // Server handlers to forward (see above).
  conduit::UpgradeDecision on_upgrade(const conduit::UpgradeInfo& info);
  void on_open(Session& session);
  void on_message(Session& session, std::string_view data, MessageType type);

  Channels& channels() noexcept;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace conduit
