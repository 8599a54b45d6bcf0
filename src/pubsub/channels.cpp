// conduit::Channels: the channel registry, publication ordering, history and
// delivery to subscribers on every loop.
//
// How a publication travels, and why no subscriber sees a gap or a duplicate:
// - Each channel has one mutex. publish() takes it to assign the offset, keep
//   the publication in history, and append the framed publication to the
//   channel's inbox of every loop that has subscribers (`interest`). A loop's
//   inbox is drained on that loop (one post when it goes from empty to not
//   empty, or inline when the publisher is that loop's thread), so each loop
//   receives the channel's publications in offset order.
// - subscribe() runs on the session's loop and, under the same mutex, reads
//   history and takes (and then delivers to the loop's current members) the
//   loop's inbox; then it joins the session to the live set. Everything up to
//   the position it read is therefore either in the recovered publications
//   or was already delivered before the session joined, and everything after
//   it goes through the inbox to the members the session is now one of.
// - A loop's interest counts the subscriptions on it; when it drops to zero
//   the loop's inbox is dropped, and publications stop going there.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "conduit/pubsub.hpp"
#include "ops/log.hpp"
#include "pubsub/channel_name.hpp"
#include "pubsub/channels_impl.hpp"
#include "pubsub/history.hpp"
#include "pubsub/metrics_text.hpp"
#include "pubsub/protocol.hpp"
#include "server/connection.hpp"
#include "server/loop.hpp"
#include "server/server_core.hpp"
#include "wire/frame.hpp"

namespace conduit {

using pubsub::ChannelState;
using pubsub::HistoryClock;

namespace {

// A channel's frame batch buffer (see ChannelState::batch).
constexpr std::size_t batch_buffer_bytes = 16 * 1024;

server::Connection* connection_of(Session& s) { return dynamic_cast<server::Connection*>(&s); }

wire::Opcode opcode_of(MessageType type) {
  return type == MessageType::Binary ? wire::Opcode::Binary : wire::Opcode::Text;
}

pubsub::HistoryLimits limits_of(const ChannelOptions& o) { return {o.history_size, o.history_ttl}; }

}  // namespace

Channels::Impl::Impl(Server& s, Options o)
    : core(server::core_of(s)), options(std::move(o)), loops(core.loops().size()) {}

// The channel, created when missing. Returned unlocked; the caller locks it
// and retries when it finds it dead (removed meanwhile). Redis engine: a new
// channel subscribes in Redis (under the shard lock, so that a removal's
// unsubscribe and a re-creation's subscribe reach Redis in that order).
std::shared_ptr<ChannelState> Channels::Impl::get_or_create(std::string_view name) {
  Shard& shard = shard_of(name);
  std::lock_guard lock(shard.mutex);
  auto it = shard.channels.find(name);
  if (it != shard.channels.end()) return it->second;
  const ChannelOptions opts = options.config.resolve(name);
  auto ch = std::make_shared<ChannelState>(std::string(name), opts, limits_of(opts), pubsub::make_epoch(),
                                           core.loops().size());
  if (redis) {
    ch->remote = ChannelState::Remote::subscribing;
    redis->subscribe(ch->name);
  }
  shard.channels.emplace(ch->name, ch);
  channel_count.fetch_add(1, std::memory_order_relaxed);
  return ch;
}

std::shared_ptr<ChannelState> Channels::Impl::find(std::string_view name) {
  Shard& shard = shard_of(name);
  std::lock_guard lock(shard.mutex);
  auto it = shard.channels.find(name);
  return it == shard.channels.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<ChannelState>> Channels::Impl::all_channels() {
  std::vector<std::shared_ptr<ChannelState>> all;
  for (auto& shard : shards) {
    std::lock_guard lock(shard.mutex);
    for (auto& [name, ch] : shard.channels) all.push_back(ch);
  }
  return all;
}

// Removes ch when nothing needs it any more: no subscriber and (local
// engine) nothing in history. A Redis-engine channel's history is a cache of
// what Redis holds: it goes with the last subscriber.
void Channels::Impl::remove_if_unused(const std::shared_ptr<ChannelState>& ch) {
  Shard& shard = shard_of(ch->name);
  std::lock_guard shard_lock(shard.mutex);
  std::lock_guard lock(ch->mutex);
  if (ch->dead || ch->subscribers != 0) return;
  const std::size_t before = ch->history.bytes();
  if (redis) {
    ch->history.restart(ch->history.epoch(), ch->history.position().offset);
  } else {
    ch->history.expire(HistoryClock::now());
  }
  history_bytes.fetch_sub(static_cast<std::int64_t>(before - ch->history.bytes()), std::memory_order_relaxed);
  if (ch->history.size() != 0) return;
  ch->dead = true;
  backlog_bytes.fetch_sub(static_cast<std::int64_t>(ch->held_bytes), std::memory_order_relaxed);
  ch->held.clear();
  ch->held_bytes = 0;
  shard.channels.erase(ch->name);
  if (redis) redis->unsubscribe(ch->name);
  channel_count.fetch_sub(1, std::memory_order_relaxed);
}

int Channels::Impl::enqueue_locked(const std::shared_ptr<ChannelState>& ch, std::shared_ptr<std::string> message,
                                   MessageType type, const Session* except, bool keep) {
  auto* here = net::EventLoop::current();
  int inline_loop = -1;
  net::FrameBuffer* frame = nullptr;
  std::uint32_t begin = 0, end = 0;
  if (ch->subscribers != 0) {
    const std::size_t total = wire::unmasked_frame_size(message->size());
    if (!ch->batch || ch->batch->room() < total) {
      if (ch->batch) ch->batch->release();
      ch->batch = net::FrameBuffer::create(std::max(total, batch_buffer_bytes));
    }
    frame = ch->batch;
    begin = frame->size;
    frame->size += static_cast<std::uint32_t>(
        wire::write_unmasked_frame(frame->data() + begin, opcode_of(type), false, message->data(), message->size()));
    end = frame->size;
  }
  if (keep) {
    const std::size_t before = ch->history.bytes();
    const std::string_view view = *message;
    ch->history.append(std::move(message), view, HistoryClock::now());
    history_bytes.fetch_add(static_cast<std::int64_t>(ch->history.bytes()) - static_cast<std::int64_t>(before),
                            std::memory_order_relaxed);
  }
  if (!frame) return -1;
  for (unsigned i = 0; i < ch->loops.size(); ++i) {
    auto& per_loop = ch->loops[i];
    if (per_loop.interest == 0) continue;
    auto& inbox = per_loop.inbox;
    const bool was_empty = inbox.empty();
    if (!inbox.empty() && inbox.back().frame == frame && inbox.back().end == begin && inbox.back().except == except) {
      inbox.back().end = end;  // the same run: one node per subscriber
      ++inbox.back().messages;
    } else {
      frame->add_ref();
      inbox.push_back({frame, begin, end, 1, except});
    }
    backlog_bytes.fetch_add(end - begin, std::memory_order_relaxed);
    server::Loop* loop = core.loops()[i].get();
    if (loop == here) {
      inline_loop = static_cast<int>(i);
    } else if (was_empty) {
      loop->post([impl = shared_from_this(), ch, i] { impl->drain(*ch, i); });
    }
  }
  return inline_loop;
}

// Loop thread `loop_index`: delivers the loop's pending publications of ch
// to the loop's members.
void Channels::Impl::drain(ChannelState& ch, unsigned loop_index) {
  std::vector<ChannelState::Pending> pending;
  {
    std::lock_guard lock(ch.mutex);
    pending.swap(ch.loops[loop_index].inbox);
  }
  deliver(ch, loop_index, pending);
}

void Channels::Impl::deliver(ChannelState& ch, unsigned loop_index, std::vector<ChannelState::Pending>& pending) {
  if (pending.empty()) return;
  server::Loop& loop = *core.loops()[loop_index];
  const std::size_t members = ch.group->sets[loop_index].size();
  std::uint64_t messages = 0;
  std::int64_t bytes = 0;
  for (auto& p : pending) {
    if (members != 0) loop.fanout().deliver(*ch.group, p.frame, p.begin, p.end, p.messages, p.except);
    messages += p.messages;
    bytes += p.end - p.begin;
    p.frame->release();
  }
  deliveries.fetch_add(members * messages, std::memory_order_relaxed);
  backlog_bytes.fetch_sub(bytes, std::memory_order_relaxed);
  pending.clear();
}

void Channels::Impl::drop_inbox(ChannelState::PerLoop& per_loop) {
  std::int64_t bytes = 0;
  for (auto& p : per_loop.inbox) {
    bytes += p.end - p.begin;
    p.frame->release();
  }
  per_loop.inbox.clear();
  backlog_bytes.fetch_sub(bytes, std::memory_order_relaxed);
}

// Loop thread: the session leaves ch (its membership already gone or
// removed here).
void Channels::Impl::release_subscription(const std::shared_ptr<ChannelState>& ch, unsigned loop_index) {
  bool unused = false;
  {
    std::lock_guard lock(ch->mutex);
    auto& per_loop = ch->loops[loop_index];
    if (per_loop.interest > 0 && --per_loop.interest == 0) drop_inbox(per_loop);
    if (ch->subscribers > 0) --ch->subscribers;
    unused = ch->subscribers == 0;
  }
  subscription_count.fetch_sub(1, std::memory_order_relaxed);
  if (unused) remove_if_unused(ch);
}

void Channels::Impl::on_session_closed(Session& session) {
  const unsigned loop_index = session.loop_index();
  auto& local = loops[loop_index];
  auto it = local.sessions.find(&session);
  if (it == local.sessions.end()) return;
  auto subs = std::move(it->second);
  local.sessions.erase(it);
  for (auto& ch : subs) release_subscription(ch, loop_index);
}

void Channels::Impl::sweep() {
  if (redis) return;  // a Redis-engine channel's cache lives with its subscribers
  const auto now = HistoryClock::now();
  for (auto& ch : all_channels()) {
    bool unused = false;
    {
      std::lock_guard lock(ch->mutex);
      const std::size_t before = ch->history.bytes();
      ch->history.expire(now);
      history_bytes.fetch_sub(static_cast<std::int64_t>(before - ch->history.bytes()), std::memory_order_relaxed);
      unused = ch->subscribers == 0 && ch->history.size() == 0;
    }
    if (unused) remove_if_unused(ch);
  }
}

void Channels::Impl::run_sweeper() {
  std::unique_lock lock(sweep_mutex);
  while (!stopping.load()) {
    sweep_cv.wait_for(lock, std::chrono::seconds(1));
    if (stopping.load()) break;
    lock.unlock();
    sweep();
    if (redis) remote_sweep(shared_from_this());
    lock.lock();
  }
}

std::vector<ChannelState::Pending> Channels::Impl::join_locked(ChannelState& ch, unsigned loop_index,
                                                               const std::optional<StreamPosition>& since,
                                                               SubscribeResult& result,
                                                               pubsub::RecoveryResult& recovery) {
  std::vector<ChannelState::Pending> pending;
  pending.swap(ch.loops[loop_index].inbox);
  const auto now = HistoryClock::now();
  const std::size_t before = ch.history.bytes();
  if (since) {
    recovery = ch.history.recover(since->offset, since->epoch, now);
  } else {
    ch.history.expire(now);
    recovery.position = ch.history.position();
  }
  history_bytes.fetch_sub(static_cast<std::int64_t>(before - ch.history.bytes()), std::memory_order_relaxed);
  result.position = recovery.position;
  if (since) {
    result.recovered = recovery.recovered;
    (recovery.recovered ? recovered : not_recovered).fetch_add(1, std::memory_order_relaxed);
    result.publications.reserve(recovery.publications.size());
    for (const auto& e : recovery.publications) result.publications.push_back({e.offset, e.publication});
  }
  return pending;
}

void Channels::Impl::subscribe(const std::shared_ptr<Impl>& self, Session& session, std::string_view channel,
                               std::optional<StreamPosition> since, SubscribeCallback done) {
  auto* conn = connection_of(session);
  if (!conn) throw std::invalid_argument("conduit::Channels: not a session of a conduit::Server");
  const unsigned loop_index = session.loop_index();
  Impl& impl = *self;
  server::Loop& loop = *impl.core.loops()[loop_index];
  if (!loop.on_this_thread()) {
    loop.post([self, conn = conn->shared_from_this(), name = std::string(channel), since = std::move(since),
               done = std::move(done)]() mutable { subscribe(self, *conn, name, std::move(since), std::move(done)); });
    return;
  }
  SubscribeResult result;
  auto finish = [&] {
    if (done) done(session, result);
  };
  const ChannelOptions opts = impl.options.config.resolve(channel);
  if (pubsub::validate_channel_name(channel, opts.max_channel_length) != pubsub::ChannelNameError::none) {
    result.status = SubscribeStatus::invalid_channel;
    return finish();
  }
  if (!session.is_open()) {
    result.status = SubscribeStatus::not_open;
    return finish();
  }
  auto& subs = impl.loops[loop_index].sessions[&session];
  for (const auto& ch : subs) {
    if (ch->name == channel) {
      result.status = SubscribeStatus::already_subscribed;
      return finish();
    }
  }
  if (subs.size() >= opts.max_subscriptions_per_connection) {
    result.status = SubscribeStatus::too_many_subscriptions;
  } else if (impl.redis && !impl.redis->connected()) {
    result.status = SubscribeStatus::unavailable;  // the channel's position is in Redis
  }
  if (result.status != SubscribeStatus::ok) {
    if (subs.empty()) impl.loops[loop_index].sessions.erase(&session);
    return finish();
  }

  std::shared_ptr<ChannelState> ch;
  std::vector<ChannelState::Pending> pending;
  pubsub::RecoveryResult recovery;
  for (;;) {
    ch = impl.get_or_create(channel);
    std::lock_guard lock(ch->mutex);
    if (ch->dead) continue;
    ++ch->loops[loop_index].interest;
    ++ch->subscribers;
    if (!impl.redis) pending = impl.join_locked(*ch, loop_index, since, result, recovery);
    break;
  }
  impl.subscription_count.fetch_add(1, std::memory_order_relaxed);
  subs.push_back(ch);
  if (impl.redis) return impl.remote_subscribe(self, ch, *conn, loop_index, std::move(since), std::move(done));
  // Publications up to the position just read: to the members already here.
  impl.deliver(*ch, loop_index, pending);
  conn->join(ch->group);
  finish();
}

void Channels::Impl::append_metrics(std::string& out) const {
  out += pubsub::metric_family("conduit_channels_active", "gauge", "Channels alive (with subscribers or history)");
  pubsub::append_sample(out, "conduit_channels_active", "", channel_count.load());
  out += pubsub::metric_family("conduit_subscriptions_active", "gauge", "Channel subscriptions held by sessions");
  pubsub::append_sample(out, "conduit_subscriptions_active", "", subscription_count.load());
  out += pubsub::metric_family("conduit_publications_total", "counter", "Publications to channels");
  pubsub::append_sample(out, "conduit_publications_total", "", publications.load());
  out += pubsub::metric_family("conduit_deliveries_total", "counter", "Publications queued to a subscriber");
  pubsub::append_sample(out, "conduit_deliveries_total", "", deliveries.load());
  out += pubsub::metric_family("conduit_history_bytes", "gauge", "Bytes held by channel history");
  pubsub::append_sample(out, "conduit_history_bytes", "",
                        static_cast<std::uint64_t>(std::max<std::int64_t>(0, history_bytes.load())));
  out += pubsub::metric_family("conduit_recoveries_total", "counter",
                               "Subscribes with a position to recover from, by result");
  pubsub::append_sample(out, "conduit_recoveries_total", "{result=\"recovered\"}", recovered.load());
  pubsub::append_sample(out, "conduit_recoveries_total", "{result=\"failed\"}", not_recovered.load());
  if (redis) append_remote_metrics(out);
}

Channels::Channels(Server& server, Options options) : impl_(std::make_shared<Impl>(server, std::move(options))) {
  std::weak_ptr<Impl> weak = impl_;
  server.add_close_hook([weak](Session& s) {
    if (auto impl = weak.lock()) impl->on_session_closed(s);
  });
  server.add_metrics_source([weak](std::string& out) {
    if (auto impl = weak.lock()) impl->append_metrics(out);
  });
  if (!impl_->options.redis.url.empty()) {
    impl_->start_remote(impl_);
    server.add_readiness_check([weak]() -> std::string {
      auto impl = weak.lock();
      if (!impl || impl->redis->connected()) return {};
      const std::string why = impl->redis->last_error();
      return "redis unavailable: " + (why.empty() ? std::string("connecting") : why);
    });
  }
  impl_->sweeper = std::thread([impl = impl_] { impl->run_sweeper(); });
}

Channels::~Channels() {
  {
    std::lock_guard lock(impl_->sweep_mutex);
    impl_->stopping.store(true);
  }
  impl_->sweep_cv.notify_all();
  if (impl_->sweeper.joinable()) impl_->sweeper.join();
  // Answers every Redis command still pending ("unavailable: stopping")
  // while the server (which replies are posted to) still exists.
  if (impl_->redis) impl_->redis->stop();
}

const ChannelConfig& Channels::config() const noexcept { return impl_->options.config; }

void Channels::subscribe(Session& session, std::string_view channel, std::optional<StreamPosition> since,
                         SubscribeCallback done) {
  Impl::subscribe(impl_, session, channel, std::move(since), std::move(done));
}

bool Channels::unsubscribe(Session& session, std::string_view channel) {
  const unsigned loop_index = session.loop_index();
  auto& local = impl_->loops[loop_index];
  auto it = local.sessions.find(&session);
  if (it == local.sessions.end()) return false;
  auto& subs = it->second;
  auto pos = std::find_if(subs.begin(), subs.end(), [&](const auto& ch) { return ch->name == channel; });
  if (pos == subs.end()) return false;
  auto ch = std::move(*pos);
  subs.erase(pos);
  if (subs.empty()) local.sessions.erase(it);
  if (auto* conn = connection_of(session)) conn->leave(*ch->group);
  impl_->release_subscription(ch, loop_index);
  return true;
}

std::size_t Channels::subscription_count(const Session& session) const {
  const auto& local = impl_->loops[session.loop_index()];
  auto it = local.sessions.find(&session);
  return it == local.sessions.end() ? 0 : it->second.size();
}

void Channels::publish_async(std::string_view channel, std::string_view data, MessageType type, const Session* except,
                             PublishCallback done) {
  Impl& impl = *impl_;
  PublishResult result;
  const ChannelOptions opts = impl.options.config.resolve(channel);
  if (pubsub::validate_channel_name(channel, opts.max_channel_length) != pubsub::ChannelNameError::none) {
    result.status = PublishStatus::invalid_channel;
    if (done) done(result);
    return;
  }
  if (impl.core.stopped()) {
    result.status = PublishStatus::unavailable;
    if (done) done(result);
    return;
  }
  const bool v1 = impl.options.format == Format::conduit_v1;
  if (v1) type = MessageType::Text;
  if (impl.redis) {
    if (except) throw std::invalid_argument("conduit::Channels: publish with except is not supported with Redis");
    return impl.remote_publish(impl_, channel, data, type, std::move(done));
  }
  int inline_loop = -1;
  std::shared_ptr<ChannelState> ch;
  for (;;) {
    ch = impl.get_or_create(channel);
    std::lock_guard lock(ch->mutex);
    if (ch->dead) continue;
    const std::uint64_t offset = ch->history.next_offset();
    // The message every subscriber gets, built once: kept by history and
    // framed once into the buffer every subscriber's queue references.
    auto message = std::make_shared<std::string>();
    if (v1) {
      pubsub::append_push(*message, channel, offset, ch->history.epoch(), data);
    } else {
      message->assign(data);
    }
    inline_loop = impl.enqueue_locked(ch, std::move(message), type, except, true);
    result.position = ch->history.position();
    break;
  }
  impl.publications.fetch_add(1, std::memory_order_relaxed);
  if (inline_loop >= 0) impl.drain(*ch, static_cast<unsigned>(inline_loop));
  if (done) done(result);
}

namespace {
// Waits for a callback's result (the blocking forms of the Redis engine).
template <class Result>
struct Waiting {
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<Result> result;
  void set(const Result& r) {
    std::lock_guard lock(mutex);
    result = r;
    cv.notify_all();
  }
  Result get() {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return result.has_value(); });
    return std::move(*result);
  }
};
}  // namespace

PublishResult Channels::publish(std::string_view channel, std::string_view data, MessageType type,
                                const Session* except) {
  if (impl_->redis && net::EventLoop::current())
    throw std::logic_error("conduit::Channels::publish would block an event loop: use publish_async");
  auto waiting = std::make_shared<Waiting<PublishResult>>();
  publish_async(channel, data, type, except, [waiting](const PublishResult& r) { waiting->set(r); });
  return waiting->get();
}

void Channels::history_async(std::string_view channel, std::size_t limit, HistoryCallback done) {
  HistorySnapshot snap;
  const ChannelOptions opts = impl_->options.config.resolve(channel);
  if (pubsub::validate_channel_name(channel, opts.max_channel_length) != pubsub::ChannelNameError::none) {
    if (done) done(snap);
    return;
  }
  if (impl_->redis) return impl_->remote_history(channel, limit, std::move(done));
  for (;;) {
    auto ch = impl_->get_or_create(channel);
    std::lock_guard lock(ch->mutex);
    if (ch->dead) continue;
    const std::size_t before = ch->history.bytes();
    auto entries = ch->history.newest(limit, HistoryClock::now());
    impl_->history_bytes.fetch_sub(static_cast<std::int64_t>(before - ch->history.bytes()), std::memory_order_relaxed);
    snap.position = ch->history.position();
    for (auto& e : entries) {
      snap.publications.push_back({e.offset, e.publication});
      snap.keep.push_back(std::move(e.buffer));
    }
    break;
  }
  if (done) done(snap);
}

HistorySnapshot Channels::history(std::string_view channel, std::size_t limit) {
  if (impl_->redis && net::EventLoop::current())
    throw std::logic_error("conduit::Channels::history would block an event loop: use history_async");
  auto waiting = std::make_shared<Waiting<HistorySnapshot>>();
  history_async(channel, limit, [waiting](const HistorySnapshot& s) { waiting->set(s); });
  return waiting->get();
}

std::vector<ChannelInfo> Channels::list() const {
  std::vector<ChannelInfo> out;
  for (auto& shard : impl_->shards) {
    std::lock_guard lock(shard.mutex);
    for (auto& [name, ch] : shard.channels) {
      const std::size_t n = ch->group->members.load(std::memory_order_relaxed);
      if (n != 0) out.push_back({name, n});
    }
  }
  std::sort(out.begin(), out.end(), [](const ChannelInfo& a, const ChannelInfo& b) { return a.channel < b.channel; });
  return out;
}

ChannelStats Channels::stats() const {
  const Impl& i = *impl_;
  ChannelStats s;
  s.channels = i.channel_count.load();
  s.subscriptions = i.subscription_count.load();
  s.publications_total = i.publications.load();
  s.deliveries_total = i.deliveries.load();
  s.history_bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(0, i.history_bytes.load()));
  s.recoveries_recovered_total = i.recovered.load();
  s.recoveries_failed_total = i.not_recovered.load();
  return s;
}

}  // namespace conduit
