// The channels' Redis backplane: what Conduit keeps in Redis and how it asks.
//
// Per channel C, with the configured prefix P (the `{C}` hash tag keeps a
// channel's keys in one slot, for a future Redis Cluster):
//   P:m:{C}  hash: s = the channel's last offset, e = its epoch
//   P:h:{C}  stream: the history, entry id "OFFSET-0", field m = the message
//            subscribers are sent (the whole conduit.v1 push, or raw data)
//   P:p:{C}  pub/sub channel: "OFFSET EPOCH T MESSAGE" (T: t text, b binary)
//
// Two Lua scripts keep every change atomic, so that every node sees one order
// per channel: `publish` assigns the next offset, appends to the stream
// (bounded by history_size, expiring history_ttl after the last publication)
// and publishes; `sync` reads (creating when missing) the channel's position
// and, optionally, the stream entries from an offset on, in one step.
//
// Threads: every call may come from any thread and never blocks; every
// callback runs on the Redis client's thread (see redis/client.hpp).
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conduit/message.hpp"
#include "conduit/stream_position.hpp"
#include "redis/client.hpp"

namespace conduit::pubsub {

// One message as it travels through Redis.
struct RemoteMessage {
  std::uint64_t offset = 0;
  std::string epoch;
  MessageType type = MessageType::Text;
  std::string message;  // what subscribers are sent
};

// Parses a pub/sub payload ("OFFSET EPOCH T MESSAGE"); false when malformed.
bool parse_remote_message(std::string_view payload, RemoteMessage& out);

struct BackplaneOptions {
  std::string url;
  std::string prefix = "conduit";
  std::chrono::milliseconds meta_ttl{std::chrono::hours(24)};
  std::chrono::milliseconds connect_timeout{2000};
};

// How a publish went.
enum class RemoteOutcome : std::uint8_t {
  ok,
  unavailable,  // not sent: Redis is not connected (never published)
  unknown,      // sent, but the connection was lost before the reply
  error,        // Redis answered with an error (not published)
};

struct RemotePublishResult {
  RemoteOutcome outcome = RemoteOutcome::ok;
  StreamPosition position;
  std::string error;  // for the log when not ok
};

struct RemoteSyncResult {
  RemoteOutcome outcome = RemoteOutcome::ok;
  StreamPosition position;              // the channel's position in Redis
  std::vector<RemoteMessage> messages;  // from the asked offset on (when asked), ascending
  std::string error;
};

class RedisBackplane {
 public:
  struct Events {
    std::function<void()> on_connected;
    std::function<void(const std::string& reason)> on_disconnected;
    std::function<void(std::string_view channel)> on_subscribed;
    std::function<void(std::string_view channel, std::string_view payload)> on_message;
  };
  // Throws std::invalid_argument for a malformed url (redis::parse_url).
  RedisBackplane(BackplaneOptions options, Events events);
  ~RedisBackplane();

  void start();
  void stop();
  bool connected() const noexcept;
  std::string last_error() const;
  redis::Counters counters() const noexcept;

  struct PublishArgs {
    std::string_view channel;
    std::string_view data;
    MessageType type = MessageType::Text;
    bool conduit_v1 = false;  // build the conduit.v1 push around data (with offset and epoch)
    std::size_t history_size = 0;
    std::chrono::milliseconds history_ttl{0};
  };
  void publish(const PublishArgs& args, std::function<void(const RemotePublishResult&)> done);

  // The channel's position, created (offset 0, a new epoch) when Redis has
  // none. `known`: the position this node last had; when Redis is behind it
  // in the same epoch (Redis restarted from an older copy, so offsets after
  // its position would be given again) the script gives the channel a new
  // epoch. from_offset > 0: also the stream entries from that offset on (at
  // most `limit`).
  void sync(std::string_view channel, const StreamPosition* known, std::uint64_t from_offset, std::size_t limit,
            std::function<void(const RemoteSyncResult&)> done);

  // The newest `limit` entries and the position (a channel Redis does not
  // know is created, offset 0 and a new epoch, as sync does).
  void history(std::string_view channel, std::size_t limit, std::function<void(const RemoteSyncResult&)> done);

  void subscribe(std::string_view channel);
  void unsubscribe(std::string_view channel);

  // The channel name inside a pub/sub channel name of ours ("" when not one).
  std::string_view channel_of(std::string_view pubsub_channel) const noexcept;

 private:
  std::string key(char kind, std::string_view channel) const;
  std::string next_epoch();

  BackplaneOptions options_;
  std::unique_ptr<redis::Client> client_;
  std::uint64_t epoch_seed_ = 0;
  std::atomic<std::uint64_t> epoch_counter_{0};
};

}  // namespace conduit::pubsub
