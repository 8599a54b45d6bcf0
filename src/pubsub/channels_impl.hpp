// One channel's shared state (see channels.cpp for how publications travel).
#pragma once
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "conduit/pubsub.hpp"
#include "net/send_queue.hpp"
#include "pubsub/history.hpp"
#include "pubsub/redis_backplane.hpp"
#include "server/fanout.hpp"

namespace conduit::server {
class Connection;
class ServerCore;
}  // namespace conduit::server

namespace conduit::pubsub {

struct ChannelState {
  ChannelState(std::string channel, ChannelOptions opts, HistoryLimits limits, std::string epoch,
               std::size_t loop_count)
      : name(std::move(channel)),
        options(opts),
        history(limits, std::move(epoch)),
        group(std::make_shared<server::GroupState>(loop_count)),
        loops(loop_count) {}
  ~ChannelState() {
    for (auto& l : loops) {
      for (auto& p : l.inbox) p.frame->release();
    }
    if (batch) batch->release();
  }
  ChannelState(const ChannelState&) = delete;
  ChannelState& operator=(const ChannelState&) = delete;

  // Consecutive framed publications, [begin, end) of frame, on their way to
  // one loop's members (one reference held).
  struct Pending {
    net::FrameBuffer* frame;
    std::uint32_t begin;
    std::uint32_t end;
    std::uint32_t messages;
    const Session* except;  // the subscriber these are not for (nullptr: none)
  };
  struct PerLoop {
    std::size_t interest = 0;    // subscriptions on this loop
    std::vector<Pending> inbox;  // offset order; drained by the loop
  };

  const std::string name;
  const ChannelOptions options;

  std::mutex mutex;   // guards everything below except group's sets (each its loop's)
  bool dead = false;  // removed from the registry: look it up again
  History history;
  std::size_t subscribers = 0;  // sum of the loops' interest
  // Members per loop; set i is touched only by loop i's thread.
  std::shared_ptr<server::GroupState> group;
  std::vector<PerLoop> loops;
  // Publications are framed one after another into this buffer (one
  // reference held) until it is full, so that a subscriber's queue extends
  // one node for a run of them instead of adding one node each. Bytes below
  // its `size` never change once written; publishers append above it under
  // `mutex`, loops read only ranges handed to them through an inbox.
  net::FrameBuffer* batch = nullptr;

  // ---- the Redis engine only (remote == off with the local engine) ----
  // subscribing: the Redis SUBSCRIBE is not confirmed yet; syncing: the
  // position (and what was missed) is being read from Redis, messages that
  // arrive meanwhile are held; live: `history` follows Redis (its position is
  // the last publication handed to the loops, its entries a cache of the
  // newest ones).
  enum class Remote : std::uint8_t { off, subscribing, syncing, live };
  Remote remote = Remote::off;
  bool synced_once = false;           // the position is known (history's is Redis')
  bool sync_in_flight = false;        // a sync request is on its way
  bool lagging = false;               // messages were dropped (backlog full): resync once drained
  std::uint64_t sync_generation = 0;  // replies to older syncs are ignored
  std::vector<RemoteMessage> held;    // arrived while syncing, in arrival order
  std::size_t held_bytes = 0;

  // A subscribe waiting for the channel to be live, or for Redis' history.
  struct Waiter {
    std::uint64_t id;
    std::shared_ptr<server::Connection> conn;
    unsigned loop;
    std::optional<StreamPosition> since;
    conduit::Channels::SubscribeCallback done;
    bool reading = false;            // a history read for it is on its way
    bool awaiting_position = false;  // Redis has `since`, the node has not delivered it yet
  };
  std::vector<Waiter> waiters;
};

// A sync to send once the channel lock is released (the Redis client may
// answer a command on the calling thread, e.g. while stopping).
struct SyncRequest {
  std::shared_ptr<ChannelState> ch;
  std::uint64_t generation = 0;
  bool has_known = false;
  StreamPosition known;
  std::uint64_t from = 0;
  std::size_t limit = 0;
};

}  // namespace conduit::pubsub

namespace conduit {

// Lookups by string_view without building a std::string.
struct ChannelNameHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// Channels' state. The local-engine parts are in channels.cpp, the Redis
// engine's (remote) parts in channels_remote.cpp.
struct Channels::Impl : std::enable_shared_from_this<Channels::Impl> {
  static constexpr std::size_t shard_count = 64;
  using ChannelState = pubsub::ChannelState;

  Impl(Server& s, Options o);

  server::ServerCore& core;
  Options options;

  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::shared_ptr<ChannelState>, ChannelNameHash, std::equal_to<>> channels;
  };
  std::array<Shard, shard_count> shards;

  // Per loop, touched only by that loop's thread: each session's subscriptions.
  struct LoopLocal {
    std::unordered_map<const Session*, std::vector<std::shared_ptr<ChannelState>>> sessions;
  };
  std::vector<LoopLocal> loops;

  std::atomic<std::uint64_t> channel_count{0};
  std::atomic<std::uint64_t> subscription_count{0};
  std::atomic<std::uint64_t> publications{0};
  std::atomic<std::uint64_t> deliveries{0};
  std::atomic<std::int64_t> history_bytes{0};
  std::atomic<std::uint64_t> recovered{0};
  std::atomic<std::uint64_t> not_recovered{0};
  std::atomic<bool> stopping{false};

  std::mutex sweep_mutex;
  std::condition_variable sweep_cv;
  std::thread sweeper;

  // ---- the Redis engine (null with the local engine) ----
  std::unique_ptr<pubsub::RedisBackplane> redis;
  // Bytes framed for the loops and not yet delivered, plus held messages.
  std::atomic<std::int64_t> backlog_bytes{0};
  std::atomic<std::uint64_t> next_waiter_id{1};
  std::array<std::atomic<std::uint64_t>, 4> remote_publishes{};  // by pubsub::RemoteOutcome
  std::atomic<std::uint64_t> resyncs_recovered{0};
  std::atomic<std::uint64_t> resyncs_failed{0};
  std::atomic<std::uint64_t> backlog_drops{0};
  std::atomic<std::uint64_t> malformed_messages{0};
  using SyncRequestPtr = std::unique_ptr<pubsub::SyncRequest>;

  Shard& shard_of(std::string_view name) { return shards[std::hash<std::string_view>{}(name) % shard_count]; }
  std::shared_ptr<ChannelState> get_or_create(std::string_view name);
  std::shared_ptr<ChannelState> find(std::string_view name);
  void remove_if_unused(const std::shared_ptr<ChannelState>& ch);
  std::vector<std::shared_ptr<ChannelState>> all_channels();

  // Under ch.mutex: frames message into the channel's batch buffer, keeps it
  // in history when keep, and hands it to every loop with subscribers.
  // Returns the loop to drain inline (the caller's own), or -1.
  int enqueue_locked(const std::shared_ptr<ChannelState>& ch, std::shared_ptr<std::string> message, MessageType type,
                     const Session* except, bool keep);
  void drain(ChannelState& ch, unsigned loop_index);
  void deliver(ChannelState& ch, unsigned loop_index, std::vector<ChannelState::Pending>& pending);
  void drop_inbox(ChannelState::PerLoop& per_loop);
  void release_subscription(const std::shared_ptr<ChannelState>& ch, unsigned loop_index);
  void on_session_closed(Session& session);
  void sweep();
  void run_sweeper();
  static void subscribe(const std::shared_ptr<Impl>& self, Session& session, std::string_view channel,
                        std::optional<StreamPosition> since, SubscribeCallback done);
  // Loop thread, under ch.mutex: joins the session's loop to the live stream
  // at the channel's position, with recovery from since out of history.
  // Returns the publications still to deliver to the loop's current members
  // (before the session joins).
  std::vector<ChannelState::Pending> join_locked(ChannelState& ch, unsigned loop_index,
                                                 const std::optional<StreamPosition>& since, SubscribeResult& result,
                                                 pubsub::RecoveryResult& recovery);
  void append_metrics(std::string& out) const;

  // ---- channels_remote.cpp ----
  void start_remote(const std::shared_ptr<Impl>& self);
  void remote_publish(const std::shared_ptr<Impl>& self, std::string_view channel, std::string_view data,
                      MessageType type, PublishCallback done);
  void remote_history(std::string_view channel, std::size_t limit, HistoryCallback done);
  // Subscribe's Redis-engine part (loop thread): joins at once when the
  // channel is live and its cache covers `since`, else waits.
  void remote_subscribe(const std::shared_ptr<Impl>& self, const std::shared_ptr<ChannelState>& ch,
                        server::Connection& conn, unsigned loop_index, std::optional<StreamPosition> since,
                        SubscribeCallback done);
  void on_remote_connected(const std::shared_ptr<Impl>& self);
  void on_remote_disconnected(const std::shared_ptr<Impl>& self);
  void on_remote_subscribed(const std::shared_ptr<Impl>& self, std::string_view channel);
  void on_remote_message(const std::shared_ptr<Impl>& self, std::string_view channel, std::string_view payload);
  void remote_sweep(const std::shared_ptr<Impl>& self);
  void resolve_waiter(const std::shared_ptr<Impl>& self, const std::shared_ptr<ChannelState>& ch, std::uint64_t id,
                      const pubsub::RemoteSyncResult* read);
  void post_resolve(const std::shared_ptr<Impl>& self, const std::shared_ptr<ChannelState>& ch, std::uint64_t id,
                    const pubsub::RemoteSyncResult& r);
  void wake_waiters_locked(const std::shared_ptr<Impl>& self, const std::shared_ptr<ChannelState>& ch);
  void refuse_waiter(const std::shared_ptr<ChannelState>& ch, std::uint64_t id);
  void send_syncs(const std::shared_ptr<Impl>& self, std::vector<SyncRequestPtr>& requests);
  void on_sync_reply(const std::shared_ptr<Impl>& self, const std::shared_ptr<ChannelState>& ch,
                     std::uint64_t generation, const pubsub::RemoteSyncResult& res);
  SyncRequestPtr take_live_message_locked(const std::shared_ptr<ChannelState>& ch, pubsub::RemoteMessage m);
  void append_remote_metrics(std::string& out) const;
};

}  // namespace conduit
