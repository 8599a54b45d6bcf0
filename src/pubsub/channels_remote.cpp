// conduit::Channels with the Redis engine: publications go through Redis,
// every node delivers what Redis publishes to its own subscribers.
//
// Why a subscriber sees every publication Redis accepted, in order, once:
// - A node follows each channel it has subscribers for. The channel's
//   history (here a cache of the newest publications) holds the node's
//   position: the last offset it handed to its loops, in Redis' epoch.
// - A channel becomes live only after Redis confirmed the SUBSCRIBE and then
//   answered the sync script with the channel's position: everything after
//   that position arrives through pub/sub. Messages that arrive while a sync
//   is on its way are held and replayed after it (those at or below the
//   position are dropped as duplicates).
// - A live channel takes a message only when it is the next offset in its
//   epoch. A gap, another epoch, a lost connection or a full backlog sends the
//   channel back to syncing: the script returns the stream entries after the
//   node's position, which the node delivers before what it held. When Redis
//   no longer has them (trimmed, or Redis lost its data and the channel got a
//   new epoch), every subscriber of the channel gets a recovery_failed push
//   with the position the stream continues from.
// - A subscribe joins the loop's live stream under the channel lock, as with
//   the local engine, at the node's position. What it missed before that comes
//   from the cache or, when the cache does not reach back to `since`, from the
//   Redis stream (read first, then the join); when Redis is ahead of the node
//   (the client saw offsets that are still on their way here) the join waits
//   until the node has delivered them.
#include <algorithm>

#include "ops/log.hpp"
#include "pubsub/channels_impl.hpp"
#include "pubsub/metrics_text.hpp"
#include "pubsub/protocol.hpp"
#include "server/connection.hpp"
#include "server/loop.hpp"
#include "server/server_core.hpp"

namespace conduit {

using pubsub::ChannelState;
using pubsub::HistoryClock;
using pubsub::RemoteMessage;
using pubsub::RemoteOutcome;
using Remote = ChannelState::Remote;

namespace {

const char* outcome_label(RemoteOutcome o) {
  switch (o) {
    case RemoteOutcome::ok:
      return "ok";
    case RemoteOutcome::unavailable:
      return "unavailable";
    case RemoteOutcome::unknown:
      return "unknown";
    case RemoteOutcome::error:
      return "error";
  }
  return "error";
}

}  // namespace

std::string redis_url_error(std::string_view url) {
  try {
    (void)redis::parse_url(url);
    return {};
  } catch (const std::exception& e) {
    return e.what();
  }
}

// ---- the remote half of Impl, with its helpers -----------------------------

namespace {

using pubsub::SyncRequest;

// Under ch.mutex: the channel goes (back) to syncing; returns the request.
SyncRequest begin_sync(const std::shared_ptr<ChannelState>& ch) {
  SyncRequest r;
  ch->remote = Remote::syncing;
  ch->sync_in_flight = true;
  r.ch = ch;
  r.generation = ++ch->sync_generation;
  if (ch->synced_once) {
    r.has_known = true;
    r.known = ch->history.position();
    // With history on, ask for what follows the node's position.
    if (ch->options.history_size > 0) {
      r.from = r.known.offset + 1;
      r.limit = ch->options.history_size;
    }
  }
  return r;
}

}  // namespace

void Channels::Impl::start_remote(const std::shared_ptr<Impl>& self) {
  pubsub::BackplaneOptions bo;
  bo.url = options.redis.url;
  bo.prefix = options.redis.prefix;
  bo.meta_ttl = options.redis.meta_ttl;
  bo.connect_timeout = options.redis.connect_timeout;
  std::weak_ptr<Impl> weak = self;
  pubsub::RedisBackplane::Events ev;
  ev.on_connected = [weak] {
    if (auto s = weak.lock()) s->on_remote_connected(s);
  };
  ev.on_disconnected = [weak](const std::string&) {
    if (auto s = weak.lock()) s->on_remote_disconnected(s);
  };
  ev.on_subscribed = [weak](std::string_view channel) {
    if (auto s = weak.lock()) s->on_remote_subscribed(s, channel);
  };
  ev.on_message = [weak](std::string_view channel, std::string_view payload) {
    if (auto s = weak.lock()) s->on_remote_message(s, channel, payload);
  };
  redis = std::make_unique<pubsub::RedisBackplane>(std::move(bo), std::move(ev));
  redis->start();
}

// ---- publish and history ----------------------------------------------------

void Channels::Impl::remote_publish(const std::shared_ptr<Impl>& self, std::string_view channel, std::string_view data,
                                    MessageType type, PublishCallback done) {
  const ChannelOptions opts = options.config.resolve(channel);
  pubsub::RedisBackplane::PublishArgs args;
  args.channel = channel;
  args.data = data;
  args.type = type;
  args.conduit_v1 = options.format == Format::conduit_v1;
  args.history_size = opts.history_size;
  args.history_ttl = opts.history_ttl;
  redis->publish(
      args, [self, done = std::move(done), name = std::string(channel)](const pubsub::RemotePublishResult& r) {
        self->remote_publishes[static_cast<std::size_t>(r.outcome)].fetch_add(1, std::memory_order_relaxed);
        PublishResult result;
        switch (r.outcome) {
          case RemoteOutcome::ok:
            result.position = r.position;
            self->publications.fetch_add(1, std::memory_order_relaxed);
            break;
          case RemoteOutcome::unavailable:
            result.status = PublishStatus::unavailable;
            break;
          case RemoteOutcome::unknown:
            result.status = PublishStatus::unknown;
            ops::logger().warn("event=redis_publish_failed channel={} result=unknown reason=\"{}\"", name, r.error);
            break;
          case RemoteOutcome::error:
            result.status = PublishStatus::failed;
            ops::logger().error("event=redis_publish_failed channel={} result=error reason=\"{}\"", name, r.error);
            break;
        }
        if (done) done(result);
      });
}

void Channels::Impl::remote_history(std::string_view channel, std::size_t limit, HistoryCallback done) {
  redis->history(channel, limit, [done = std::move(done), limit](const pubsub::RemoteSyncResult& r) {
    HistorySnapshot snap;
    if (r.outcome == RemoteOutcome::ok) {
      snap.position = r.position;
      const std::size_t skip = r.messages.size() > limit ? r.messages.size() - limit : 0;
      for (std::size_t i = skip; i < r.messages.size(); ++i) {
        auto buffer = std::make_shared<const std::string>(r.messages[i].message);
        snap.publications.push_back({r.messages[i].offset, *buffer});
        snap.keep.push_back(std::move(buffer));
      }
    }
    if (done) done(snap);
  });
}

// ---- subscribe ------------------------------------------------------------------

namespace {

// Everything one waiter's join needs, carried to its loop.
struct JoinData {
  bool has_read = false;
  pubsub::RemoteSyncResult read;  // the Redis stream from since + 1, when has_read
};

}  // namespace

void Channels::Impl::remote_subscribe(const std::shared_ptr<Impl>& self, const std::shared_ptr<ChannelState>& ch,
                                      server::Connection& conn, unsigned loop_index,
                                      std::optional<StreamPosition> since, SubscribeCallback done) {
  ChannelState::Waiter w{next_waiter_id.fetch_add(1, std::memory_order_relaxed),
                         conn.shared_from_this(),
                         loop_index,
                         std::move(since),
                         std::move(done),
                         false};
  const std::uint64_t id = w.id;
  {
    std::lock_guard lock(ch->mutex);
    ch->waiters.push_back(std::move(w));
  }
  resolve_waiter(self, ch, id, nullptr);
}

// Loop thread of the waiter: joins it when the channel is live and what it
// missed is known; otherwise leaves it waiting (asking Redis when needed).
void Channels::Impl::resolve_waiter(const std::shared_ptr<Impl>& self, const std::shared_ptr<ChannelState>& ch,
                                    std::uint64_t id, const pubsub::RemoteSyncResult* read) {
  std::unique_lock lock(ch->mutex);
  auto it = std::find_if(ch->waiters.begin(), ch->waiters.end(), [&](const auto& w) { return w.id == id; });
  if (it == ch->waiters.end()) return;
  ChannelState::Waiter& w = *it;
  server::Connection& conn = *w.conn;
  const unsigned loop_index = w.loop;
  // Still subscribed? (An unsubscribe or a close while waiting released it.)
  auto& local = loops[loop_index];
  auto sit = local.sessions.find(&conn);
  const bool held =
      sit != local.sessions.end() && std::find(sit->second.begin(), sit->second.end(), ch) != sit->second.end();
  if (!held || !conn.is_open()) {
    ch->waiters.erase(it);
    return;
  }
  if (ch->remote != Remote::live) {
    if (read) w.reading = false;
    return;  // resolved again when the channel is live
  }
  SubscribeResult result;
  const StreamPosition position = ch->history.position();
  result.position = position;
  std::vector<std::shared_ptr<const std::string>> keep;
  if (w.since) {
    const StreamPosition& since = *w.since;
    if (w.awaiting_position && (since.offset <= position.offset || since.epoch != position.epoch))
      w.awaiting_position = false;
    if (since.epoch != position.epoch) {
      // another life of the channel: not recovered
    } else if (since.offset > position.offset) {
      // The client saw offsets this node has not delivered yet: when Redis
      // has them, wait for them to arrive; otherwise the position is bogus.
      if (w.awaiting_position) return;  // woken again by the next message
      if (!read) {
        if (!w.reading) {
          w.reading = true;
          auto req_ch = ch;
          lock.unlock();
          redis->sync(req_ch->name, nullptr, 0, 0, [self, req_ch, id](const pubsub::RemoteSyncResult& r) {
            self->post_resolve(self, req_ch, id, r);
          });
        }
        return;
      }
      if (read->outcome == RemoteOutcome::ok && read->position.epoch == since.epoch &&
          read->position.offset >= since.offset) {
        w.reading = false;
        w.awaiting_position = true;
        return;  // on_remote_message resolves it once the node gets there
      }
    } else if (since.offset == position.offset) {
      result.recovered = true;
    } else {
      pubsub::RecoveryResult cached = ch->history.recover(since.offset, since.epoch, HistoryClock::now());
      if (cached.recovered) {
        result.recovered = true;
        for (auto& e : cached.publications) {
          result.publications.push_back({e.offset, e.publication});
          keep.push_back(std::move(e.buffer));
        }
      } else if (read && read->outcome == RemoteOutcome::ok && read->position.epoch == position.epoch) {
        // Redis' entries from since + 1 up to min(Redis, node), then the
        // cache up to the node's position.
        std::uint64_t next = since.offset + 1;
        for (const auto& m : read->messages) {
          if (m.offset != next || m.offset > position.offset) break;
          auto buffer = std::make_shared<const std::string>(m.message);
          result.publications.push_back({m.offset, *buffer});
          keep.push_back(std::move(buffer));
          ++next;
        }
        if (next <= position.offset) {
          pubsub::RecoveryResult rest = ch->history.recover(next - 1, position.epoch, HistoryClock::now());
          if (rest.recovered) {
            for (auto& e : rest.publications) {
              result.publications.push_back({e.offset, e.publication});
              keep.push_back(std::move(e.buffer));
            }
            next = position.offset + 1;
          }
        }
        result.recovered = next == position.offset + 1;
        if (!result.recovered) result.publications.clear();
      } else if (!read) {
        if (!w.reading) {
          w.reading = true;
          auto req_ch = ch;
          const std::size_t limit = std::max<std::size_t>(ch->options.history_size, 1);
          // Copied before the unlock: `since` lives in ch->waiters, which
          // another subscribe may reallocate once the lock is released.
          const std::uint64_t from = since.offset + 1;
          lock.unlock();
          redis->sync(req_ch->name, nullptr, from, limit, [self, req_ch, id](const pubsub::RemoteSyncResult& r) {
            self->post_resolve(self, req_ch, id, r);
          });
        }
        return;
      } else {
        // Redis could not be read: not recovered
      }
    }
    (result.recovered ? recovered : not_recovered).fetch_add(1, std::memory_order_relaxed);
  }
  // Join: publications up to the position go to the members already here,
  // the session joins, then its recovered publications precede live ones.
  std::vector<ChannelState::Pending> pending;
  pending.swap(ch->loops[loop_index].inbox);
  auto done = std::move(w.done);
  auto keep_conn = std::move(w.conn);
  const bool with_since = w.since.has_value();
  ch->waiters.erase(it);
  lock.unlock();
  deliver(*ch, loop_index, pending);
  conn.join(ch->group);
  if (!with_since) result.recovered = false;
  if (done) done(conn, result);
}

// Any thread: resolve_waiter on the waiter's loop, with what Redis answered.
void Channels::Impl::post_resolve(const std::shared_ptr<Impl>& self, const std::shared_ptr<ChannelState>& ch,
                                  std::uint64_t id, const pubsub::RemoteSyncResult& r) {
  unsigned loop_index = 0;
  {
    std::lock_guard lock(ch->mutex);
    auto it = std::find_if(ch->waiters.begin(), ch->waiters.end(), [&](const auto& w) { return w.id == id; });
    if (it == ch->waiters.end()) return;
    loop_index = it->loop;
  }
  core.loops()[loop_index]->post([self, ch, id, r] { self->resolve_waiter(self, ch, id, &r); });
}

// Under ch.mutex: every waiter gets another look on its loop.
void Channels::Impl::wake_waiters_locked(const std::shared_ptr<Impl>& self, const std::shared_ptr<ChannelState>& ch) {
  for (const auto& w : ch->waiters) {
    if (w.reading) continue;  // its read's answer resolves it
    core.loops()[w.loop]->post([self, ch, id = w.id] { self->resolve_waiter(self, ch, id, nullptr); });
  }
}

// Loop thread: a waiter Redis cannot serve (the connection to Redis is
// gone) is refused with unavailable and releases its subscription.
void Channels::Impl::refuse_waiter(const std::shared_ptr<ChannelState>& ch, std::uint64_t id) {
  std::unique_lock lock(ch->mutex);
  auto it = std::find_if(ch->waiters.begin(), ch->waiters.end(), [&](const auto& w) { return w.id == id; });
  if (it == ch->waiters.end()) return;
  auto conn = std::move(it->conn);
  auto done = std::move(it->done);
  const unsigned loop_index = it->loop;
  ch->waiters.erase(it);
  lock.unlock();
  auto& local = loops[loop_index];
  auto sit = local.sessions.find(conn.get());
  if (sit == local.sessions.end()) return;
  auto pos = std::find(sit->second.begin(), sit->second.end(), ch);
  if (pos == sit->second.end()) return;
  sit->second.erase(pos);
  if (sit->second.empty()) local.sessions.erase(sit);
  release_subscription(ch, loop_index);
  SubscribeResult result;
  result.status = SubscribeStatus::unavailable;
  if (done) done(*conn, result);
}

// ---- what Redis says (the Redis client's thread) -------------------------------

void Channels::Impl::send_syncs(const std::shared_ptr<Impl>& self, std::vector<SyncRequestPtr>& requests) {
  for (auto& rp : requests) {
    auto r = std::move(*rp);
    redis->sync(r.ch->name, r.has_known ? &r.known : nullptr, r.from, r.limit,
                [self, ch = r.ch, gen = r.generation](const pubsub::RemoteSyncResult& res) {
                  self->on_sync_reply(self, ch, gen, res);
                });
  }
  requests.clear();
}

void Channels::Impl::on_remote_connected(const std::shared_ptr<Impl>& self) {
  std::vector<SyncRequestPtr> requests;
  for (auto& ch : all_channels()) {
    std::lock_guard lock(ch->mutex);
    if (ch->dead) continue;
    requests.push_back(std::make_unique<SyncRequest>(begin_sync(ch)));
  }
  send_syncs(self, requests);
}

void Channels::Impl::on_remote_disconnected(const std::shared_ptr<Impl>& self) {
  for (auto& ch : all_channels()) {
    std::lock_guard lock(ch->mutex);
    if (ch->dead) continue;
    // Nothing arrives until the next connection, which resyncs every channel.
    if (ch->remote != Remote::subscribing) ch->remote = Remote::syncing;
    ch->sync_in_flight = false;
    ++ch->sync_generation;
    backlog_bytes.fetch_sub(static_cast<std::int64_t>(ch->held_bytes), std::memory_order_relaxed);
    ch->held.clear();
    ch->held_bytes = 0;
    for (const auto& w : ch->waiters) {
      core.loops()[w.loop]->post([self, ch, id = w.id] { self->refuse_waiter(ch, id); });
    }
  }
}

void Channels::Impl::on_remote_subscribed(const std::shared_ptr<Impl>& self, std::string_view channel) {
  auto ch = find(channel);
  if (!ch) return;
  std::vector<SyncRequestPtr> requests;
  {
    std::lock_guard lock(ch->mutex);
    if (ch->dead || ch->remote != Remote::subscribing) return;
    requests.push_back(std::make_unique<SyncRequest>(begin_sync(ch)));
  }
  send_syncs(self, requests);
}

void Channels::Impl::on_sync_reply(const std::shared_ptr<Impl>& self, const std::shared_ptr<ChannelState>& ch,
                                   std::uint64_t generation, const pubsub::RemoteSyncResult& res) {
  std::vector<SyncRequestPtr> requests;
  int inline_loop = -1;  // never: this is not a loop thread
  {
    std::lock_guard lock(ch->mutex);
    if (ch->dead || generation != ch->sync_generation) return;
    ch->sync_in_flight = false;
    if (res.outcome != RemoteOutcome::ok) {
      // Retried by the sweeper while connected, or by the next connection.
      ops::logger().warn("event=channel_resync channel={} result=error reason=\"{}\"", ch->name, res.error);
      return;
    }
    const bool resync = ch->synced_once;
    const StreamPosition known = ch->history.position();
    if (ch->lagging) {
      // Messages were dropped while this sync was on its way: read again.
      ch->lagging = false;
    }
    if (!resync) {
      const std::size_t before = ch->history.bytes();
      ch->history.restart(res.position.epoch, res.position.offset);
      history_bytes.fetch_sub(static_cast<std::int64_t>(before), std::memory_order_relaxed);
      ch->synced_once = true;
    } else {
      bool recovered_all = false;
      if (res.position.epoch == known.epoch && res.position.offset >= known.offset) {
        std::uint64_t next = known.offset + 1;
        for (const auto& m : res.messages) {
          if (m.offset < next) continue;
          if (m.offset != next) break;
          ++next;
        }
        recovered_all = next == res.position.offset + 1;
        if (recovered_all) {
          for (const auto& m : res.messages) {
            if (m.offset <= ch->history.position().offset) continue;
            enqueue_locked(ch, std::make_shared<std::string>(m.message), m.type, nullptr, true);
          }
        }
      }
      if (recovered_all) {
        resyncs_recovered.fetch_add(1, std::memory_order_relaxed);
        if (known.offset != res.position.offset) {
          ops::logger().info("event=channel_resync channel={} result=recovered from={} to={}", ch->name, known.offset,
                             res.position.offset);
        }
      } else {
        resyncs_failed.fetch_add(1, std::memory_order_relaxed);
        ops::logger().warn(
            "event=channel_resync channel={} result=failed node_offset={} node_epoch={} redis_offset={} "
            "redis_epoch={}",
            ch->name, known.offset, known.epoch, res.position.offset, res.position.epoch);
        const std::size_t before = ch->history.bytes();
        ch->history.restart(res.position.epoch, res.position.offset);
        history_bytes.fetch_sub(static_cast<std::int64_t>(before), std::memory_order_relaxed);
        if (options.format == Format::conduit_v1) {
          auto push = std::make_shared<std::string>();
          pubsub::append_recovery_failed_push(*push, ch->name, res.position.offset, res.position.epoch);
          enqueue_locked(ch, std::move(push), MessageType::Text, nullptr, false);
        }
      }
    }
    ch->remote = Remote::live;
    // What arrived meanwhile, in order.
    auto held = std::move(ch->held);
    ch->held.clear();
    backlog_bytes.fetch_sub(static_cast<std::int64_t>(ch->held_bytes), std::memory_order_relaxed);
    ch->held_bytes = 0;
    for (auto& m : held) {
      if (ch->remote != Remote::live) {
        ch->held_bytes += m.message.size();
        backlog_bytes.fetch_add(static_cast<std::int64_t>(m.message.size()), std::memory_order_relaxed);
        ch->held.push_back(std::move(m));
        continue;
      }
      if (auto req = take_live_message_locked(ch, std::move(m))) requests.push_back(std::move(req));
    }
    if (ch->remote == Remote::live) wake_waiters_locked(self, ch);
  }
  (void)inline_loop;
  send_syncs(self, requests);
}

// Under ch.mutex, a live channel: delivers m when it is the next offset,
// drops a duplicate, and starts a resync on a gap or another epoch (m held).
Channels::Impl::SyncRequestPtr Channels::Impl::take_live_message_locked(const std::shared_ptr<ChannelState>& ch,
                                                                        RemoteMessage m) {
  const StreamPosition pos = ch->history.position();
  if (m.epoch == pos.epoch && m.offset <= pos.offset) return nullptr;  // already delivered
  if (m.epoch != pos.epoch || m.offset != pos.offset + 1) {
    ch->held_bytes += m.message.size();
    backlog_bytes.fetch_add(static_cast<std::int64_t>(m.message.size()), std::memory_order_relaxed);
    ch->held.push_back(std::move(m));
    return std::make_unique<SyncRequest>(begin_sync(ch));
  }
  const MessageType type = m.type;
  enqueue_locked(ch, std::make_shared<std::string>(std::move(m.message)), type, nullptr, true);
  return nullptr;
}

void Channels::Impl::on_remote_message(const std::shared_ptr<Impl>& self, std::string_view channel,
                                       std::string_view payload) {
  RemoteMessage m;
  if (!pubsub::parse_remote_message(payload, m)) {
    malformed_messages.fetch_add(1, std::memory_order_relaxed);
    ops::logger().error("event=redis_message_malformed channel={} bytes={}", channel, payload.size());
    return;
  }
  auto ch = find(channel);
  if (!ch) return;  // no subscriber here any more
  std::vector<SyncRequestPtr> requests;
  {
    std::lock_guard lock(ch->mutex);
    if (ch->dead) return;
    const bool over =
        backlog_bytes.load(std::memory_order_relaxed) > static_cast<std::int64_t>(options.redis.max_backlog_bytes);
    switch (ch->remote) {
      case Remote::off:
      case Remote::subscribing:
        return;  // the first sync reads the position after this
      case Remote::syncing:
        if (over || ch->lagging) {
          ch->lagging = true;
          backlog_drops.fetch_add(1, std::memory_order_relaxed);
          return;
        }
        ch->held_bytes += m.message.size();
        backlog_bytes.fetch_add(static_cast<std::int64_t>(m.message.size()), std::memory_order_relaxed);
        ch->held.push_back(std::move(m));
        return;
      case Remote::live:
        if (over) {
          // The loops are behind: stop taking this channel's messages and
          // read them from the Redis history once they have caught up.
          ch->lagging = true;
          ch->remote = Remote::syncing;
          ++ch->sync_generation;
          ch->sync_in_flight = false;
          backlog_drops.fetch_add(1, std::memory_order_relaxed);
          ops::logger().warn("event=redis_backlog_full channel={} backlog_bytes={}", ch->name,
                             backlog_bytes.load(std::memory_order_relaxed));
          return;
        }
        if (auto req = take_live_message_locked(ch, std::move(m))) requests.push_back(std::move(req));
        // Waiters whose client was ahead of this node may join now.
        if (!ch->waiters.empty()) wake_waiters_locked(self, ch);
        break;
    }
  }
  send_syncs(self, requests);
}

// The sweeper's thread, once a second: channels left syncing without a
// request on its way (an error reply, a full backlog) try again.
void Channels::Impl::remote_sweep(const std::shared_ptr<Impl>& self) {
  if (!redis->connected()) return;
  const bool drained =
      backlog_bytes.load(std::memory_order_relaxed) <= static_cast<std::int64_t>(options.redis.max_backlog_bytes / 2);
  std::vector<SyncRequestPtr> requests;
  for (auto& ch : all_channels()) {
    std::lock_guard lock(ch->mutex);
    if (ch->dead || ch->remote != Remote::syncing || ch->sync_in_flight) continue;
    if (ch->lagging && !drained) continue;
    ch->lagging = false;
    requests.push_back(std::make_unique<SyncRequest>(begin_sync(ch)));
  }
  send_syncs(self, requests);
}

void Channels::Impl::append_remote_metrics(std::string& out) const {
  using pubsub::append_sample;
  using pubsub::metric_family;
  const auto c = redis->counters();
  out += metric_family("conduit_redis_connected", "gauge", "1 while both connections to Redis are up");
  append_sample(out, "conduit_redis_connected", "", redis->connected() ? 1 : 0);
  out += metric_family("conduit_redis_connects_total", "counter", "Connections to Redis established");
  append_sample(out, "conduit_redis_connects_total", "", c.connects);
  out += metric_family("conduit_redis_disconnects_total", "counter", "Connections to Redis lost");
  append_sample(out, "conduit_redis_disconnects_total", "", c.disconnects);
  out += metric_family("conduit_redis_connect_failures_total", "counter", "Failed attempts to connect to Redis");
  append_sample(out, "conduit_redis_connect_failures_total", "", c.connect_failures);
  out += metric_family("conduit_redis_commands_total", "counter", "Commands sent to Redis");
  append_sample(out, "conduit_redis_commands_total", "", c.commands);
  out += metric_family("conduit_redis_messages_total", "counter", "Publications received from Redis");
  append_sample(out, "conduit_redis_messages_total", "", c.messages);
  out += metric_family("conduit_redis_malformed_messages_total", "counter",
                       "Messages from Redis that were not publications of this prefix's format");
  append_sample(out, "conduit_redis_malformed_messages_total", "", malformed_messages.load());
  out += metric_family("conduit_redis_publishes_total", "counter", "Publishes through Redis, by result");
  for (std::size_t i = 0; i < remote_publishes.size(); ++i) {
    const std::string labels = std::string("{result=\"") + outcome_label(static_cast<RemoteOutcome>(i)) + "\"}";
    append_sample(out, "conduit_redis_publishes_total", labels, remote_publishes[i].load());
  }
  out += metric_family("conduit_redis_resyncs_total", "counter",
                       "Channels read again from Redis after a gap, a reconnection or a full backlog, by result");
  append_sample(out, "conduit_redis_resyncs_total", "{result=\"recovered\"}", resyncs_recovered.load());
  append_sample(out, "conduit_redis_resyncs_total", "{result=\"failed\"}", resyncs_failed.load());
  out += metric_family("conduit_redis_backlog_bytes", "gauge",
                       "Bytes received from Redis not yet handed to subscribers' queues");
  append_sample(out, "conduit_redis_backlog_bytes", "",
                static_cast<std::uint64_t>(std::max<std::int64_t>(0, backlog_bytes.load())));
  out += metric_family("conduit_redis_backlog_drops_total", "counter",
                       "Messages from Redis dropped because the backlog was full (their channel is resynced)");
  append_sample(out, "conduit_redis_backlog_drops_total", "", backlog_drops.load());
}

}  // namespace conduit
