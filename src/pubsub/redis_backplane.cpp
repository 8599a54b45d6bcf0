#include "pubsub/redis_backplane.hpp"

#include <algorithm>
#include <charconv>
#include <random>
#include <utility>

namespace conduit::pubsub {

namespace {

// KEYS: meta, stream. ARGV: pub/sub channel, push head ("" for raw data),
// data, history_size, stream ttl ms, meta ttl ms, candidate epoch, type.
// A channel without meta (never published, expired, or Redis lost its data)
// starts a new life: a new epoch, offsets from 1, and any stream left from an
// older life is deleted so that its ids cannot collide with the new ones.
constexpr std::string_view publish_script = R"lua(
local e = redis.call('hget', KEYS[1], 'e')
if not e then
  e = ARGV[7]
  redis.call('del', KEYS[2])
  redis.call('hset', KEYS[1], 'e', e)
end
local s = redis.call('hincrby', KEYS[1], 's', 1)
redis.call('pexpire', KEYS[1], ARGV[6])
local so = string.format('%d', s)
local m
if ARGV[2] == '' then
  m = ARGV[3]
else
  m = ARGV[2] .. so .. ',"epoch":"' .. e .. '","data":' .. ARGV[3] .. '}}'
end
if tonumber(ARGV[4]) > 0 then
  redis.call('xadd', KEYS[2], 'MAXLEN', ARGV[4], so .. '-0', 'm', m)
  redis.call('pexpire', KEYS[2], ARGV[5])
end
redis.call('publish', ARGV[1], so .. ' ' .. e .. ' ' .. ARGV[8] .. ' ' .. m)
return {so, e}
)lua";

// KEYS: meta, stream. ARGV: candidate epoch, meta ttl ms, known epoch ("" if
// none), known offset, from offset (0: no entries), count.
// Redis behind a position a node already saw in the same epoch means Redis
// lost acknowledged publications (restarted from an older copy): their
// offsets would be given again to other publications, so the channel gets a
// new epoch and every client is told to reload.
constexpr std::string_view sync_script = R"lua(
local e = redis.call('hget', KEYS[1], 'e')
local s = tonumber(redis.call('hget', KEYS[1], 's') or '0')
if not e then
  e = ARGV[1]
  s = 0
  redis.call('del', KEYS[2])
  redis.call('hset', KEYS[1], 'e', e, 's', 0)
  redis.call('pexpire', KEYS[1], ARGV[2])
elseif e == ARGV[3] and s < tonumber(ARGV[4]) then
  e = ARGV[1]
  redis.call('del', KEYS[2])
  redis.call('hset', KEYS[1], 'e', e)
end
local r = {string.format('%d', s), e}
if tonumber(ARGV[5]) > 0 then
  r[3] = redis.call('xrange', KEYS[2], ARGV[5] .. '-0', '+', 'COUNT', ARGV[6])
end
return r
)lua";

// KEYS: meta, stream. ARGV: count, candidate epoch, meta ttl ms. A channel
// Redis does not know is created (offset 0, a new epoch), as by sync.
constexpr std::string_view history_script = R"lua(
local e = redis.call('hget', KEYS[1], 'e')
local s = redis.call('hget', KEYS[1], 's') or '0'
if not e then
  e = ARGV[2]
  s = '0'
  redis.call('del', KEYS[2])
  redis.call('hset', KEYS[1], 'e', e, 's', 0)
  redis.call('pexpire', KEYS[1], ARGV[3])
end
return {s, e, redis.call('xrevrange', KEYS[2], '+', '-', 'COUNT', ARGV[1])}
)lua";

bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

RemoteOutcome outcome_of(const redis::Reply& r) {
  if (!r.is_error()) return RemoteOutcome::ok;
  if (r.str.starts_with("unavailable: connection lost before the reply")) return RemoteOutcome::unknown;
  if (r.is_unavailable()) return RemoteOutcome::unavailable;
  return RemoteOutcome::error;
}

// A stream entry [id, [field, value]] with id "OFFSET-0" and field m.
bool parse_entry(const redis::Reply& e, RemoteMessage& out) {
  if (e.type != redis::Reply::Type::array || e.elements.size() != 2) return false;
  const auto& id = e.elements[0];
  const auto& fields = e.elements[1];
  if (id.type != redis::Reply::Type::string || fields.type != redis::Reply::Type::array || fields.elements.size() != 2)
    return false;
  const auto dash = id.str.find('-');
  if (dash == std::string::npos || !parse_u64(std::string_view(id.str).substr(0, dash), out.offset)) return false;
  if (fields.elements[0].str != "m") return false;
  out.message = fields.elements[1].str;
  return true;
}

// {offset, epoch, [entries]} as the sync and history scripts return it.
RemoteSyncResult parse_position_reply(const redis::Reply& r, bool newest_first) {
  RemoteSyncResult res;
  res.outcome = outcome_of(r);
  if (res.outcome != RemoteOutcome::ok) {
    res.error = r.str;
    return res;
  }
  if (r.type != redis::Reply::Type::array || r.elements.size() < 2 ||
      !parse_u64(r.elements[0].str, res.position.offset)) {
    res.outcome = RemoteOutcome::error;
    res.error = "unexpected reply to the position script";
    return res;
  }
  res.position.epoch = r.elements[1].str;
  if (r.elements.size() >= 3) {
    for (const auto& e : r.elements[2].elements) {
      RemoteMessage m;
      if (!parse_entry(e, m)) {
        res.outcome = RemoteOutcome::error;
        res.error = "unexpected stream entry";
        res.messages.clear();
        return res;
      }
      m.epoch = res.position.epoch;
      res.messages.push_back(std::move(m));
    }
    if (newest_first) std::reverse(res.messages.begin(), res.messages.end());
  }
  return res;
}

}  // namespace

bool parse_remote_message(std::string_view payload, RemoteMessage& out) {
  const auto sp1 = payload.find(' ');
  if (sp1 == std::string_view::npos || !parse_u64(payload.substr(0, sp1), out.offset)) return false;
  const auto sp2 = payload.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || payload.size() < sp2 + 3) return false;
  const char t = payload[sp2 + 1];
  if ((t != 't' && t != 'b') || payload[sp2 + 2] != ' ') return false;
  out.epoch.assign(payload.substr(sp1 + 1, sp2 - sp1 - 1));
  out.type = t == 'b' ? MessageType::Binary : MessageType::Text;
  out.message.assign(payload.substr(sp2 + 3));
  return !out.epoch.empty();
}

RedisBackplane::RedisBackplane(BackplaneOptions options, Events events) : options_(std::move(options)) {
  std::random_device source;
  epoch_seed_ = (std::uint64_t{source()} << 32) | source();
  redis::Options ro;
  ro.connect_timeout = options_.connect_timeout;
  redis::Events re;
  re.on_connected = std::move(events.on_connected);
  re.on_disconnected = std::move(events.on_disconnected);
  re.on_subscribed = [this, cb = std::move(events.on_subscribed)](const std::string& ch) {
    const auto name = channel_of(ch);
    if (!name.empty() && cb) cb(name);
  };
  re.on_message = [this, cb = std::move(events.on_message)](const std::string& ch, const std::string& payload) {
    const auto name = channel_of(ch);
    if (!name.empty() && cb) cb(name, payload);
  };
  client_ = std::make_unique<redis::Client>(redis::parse_url(options_.url), ro, std::move(re));
}

RedisBackplane::~RedisBackplane() { stop(); }

void RedisBackplane::start() { client_->start(); }
void RedisBackplane::stop() { client_->stop(); }
bool RedisBackplane::connected() const noexcept { return client_->connected(); }
std::string RedisBackplane::last_error() const { return client_->last_error(); }
redis::Counters RedisBackplane::counters() const noexcept { return client_->counters(); }

std::string RedisBackplane::key(char kind, std::string_view channel) const {
  std::string k;
  k.reserve(options_.prefix.size() + channel.size() + 6);
  k += options_.prefix;
  k += ':';
  k += kind;
  k += ":{";
  k += channel;
  k += '}';
  return k;
}

std::string_view RedisBackplane::channel_of(std::string_view pubsub_channel) const noexcept {
  const std::string_view p = options_.prefix;
  if (pubsub_channel.size() < p.size() + 5 || !pubsub_channel.starts_with(p) ||
      pubsub_channel.substr(p.size(), 4) != ":p:{" || !pubsub_channel.ends_with('}')) {
    return {};
  }
  return pubsub_channel.substr(p.size() + 4, pubsub_channel.size() - p.size() - 5);
}

std::string RedisBackplane::next_epoch() {
  static constexpr char hex[] = "0123456789abcdef";
  std::uint64_t bits = splitmix64(epoch_seed_ + epoch_counter_.fetch_add(1, std::memory_order_relaxed));
  std::string epoch(16, '0');
  for (auto& c : epoch) {
    c = hex[bits & 0xF];
    bits >>= 4;
  }
  return epoch;
}

void RedisBackplane::publish(const PublishArgs& a, std::function<void(const RemotePublishResult&)> done) {
  std::string head;
  if (a.conduit_v1) {
    // The push of docs/protocol.md up to its offset; channel names need no
    // JSON escaping (their characters are all plain).
    head = "{\"push\":{\"channel\":\"";
    head += a.channel;
    head += "\",\"offset\":";
  }
  const auto meta_ttl = options_.meta_ttl.count();
  const auto ttl = a.history_ttl.count() > 0 ? a.history_ttl.count() : meta_ttl;
  std::vector<std::string> args{"EVAL",
                                std::string(publish_script),
                                "2",
                                key('m', a.channel),
                                key('h', a.channel),
                                key('p', a.channel),
                                std::move(head),
                                std::string(a.data),
                                std::to_string(a.history_size),
                                std::to_string(ttl),
                                std::to_string(std::max<std::int64_t>(meta_ttl, a.history_ttl.count())),
                                next_epoch(),
                                a.type == MessageType::Binary ? "b" : "t"};
  client_->command(std::move(args), [done = std::move(done)](const redis::Reply& r) {
    RemotePublishResult res;
    res.outcome = outcome_of(r);
    if (res.outcome == RemoteOutcome::ok) {
      if (r.type != redis::Reply::Type::array || r.elements.size() != 2 ||
          !parse_u64(r.elements[0].str, res.position.offset)) {
        res.outcome = RemoteOutcome::error;
        res.error = "unexpected reply to the publish script";
      } else {
        res.position.epoch = r.elements[1].str;
      }
    } else {
      res.error = r.str;
    }
    done(res);
  });
}

void RedisBackplane::sync(std::string_view channel, const StreamPosition* known, std::uint64_t from_offset,
                          std::size_t limit, std::function<void(const RemoteSyncResult&)> done) {
  std::vector<std::string> args{"EVAL",
                                std::string(sync_script),
                                "2",
                                key('m', channel),
                                key('h', channel),
                                next_epoch(),
                                std::to_string(options_.meta_ttl.count()),
                                known ? known->epoch : std::string(),
                                std::to_string(known ? known->offset : 0),
                                std::to_string(from_offset),
                                std::to_string(std::max<std::size_t>(limit, 1))};
  client_->command(std::move(args),
                   [done = std::move(done)](const redis::Reply& r) { done(parse_position_reply(r, false)); });
}

void RedisBackplane::history(std::string_view channel, std::size_t limit,
                             std::function<void(const RemoteSyncResult&)> done) {
  std::vector<std::string> args{"EVAL",
                                std::string(history_script),
                                "2",
                                key('m', channel),
                                key('h', channel),
                                std::to_string(std::max<std::size_t>(limit, 1)),
                                next_epoch(),
                                std::to_string(options_.meta_ttl.count())};
  client_->command(std::move(args),
                   [done = std::move(done)](const redis::Reply& r) { done(parse_position_reply(r, true)); });
}

void RedisBackplane::subscribe(std::string_view channel) { client_->subscribe(key('p', channel)); }
void RedisBackplane::unsubscribe(std::string_view channel) { client_->unsubscribe(key('p', channel)); }

}  // namespace conduit::pubsub
