// conduit::redis::Client against real redis-server processes started by each
// test on a free loopback port (see redis_server.hpp). Every wait is on an
// event (a callback, a reply) with a generous deadline.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <conduit/log.hpp>

#include "redis/client.hpp"
#include "redis_server.hpp"

using namespace std::chrono_literals;
using conduit::redis::Client;
using conduit::redis::Reply;
using conduit_test::RedisServer;
namespace redis = conduit::redis;

namespace {

constexpr auto kWait = 20s;

// What the client's callbacks reported, waited on from the test's thread.
struct Recorder {
  std::mutex mu;
  std::condition_variable cv;
  int connected = 0;
  std::function<void()> at_connected;  // runs on the client's thread inside on_connected
  std::vector<std::string> disconnected;
  std::vector<std::string> connect_failures;
  std::vector<std::pair<std::string, std::string>> messages;

  redis::Events events() {
    redis::Events e;
    e.on_connected = [this] {
      if (at_connected) at_connected();
      update([&] { ++connected; });
    };
    e.on_disconnected = [this](const std::string& r) { update([&] { disconnected.push_back(r); }); };
    e.on_connect_failed = [this](const std::string& r) { update([&] { connect_failures.push_back(r); }); };
    e.on_message = [this](const std::string& c, const std::string& p) { update([&] { messages.emplace_back(c, p); }); };
    return e;
  }
  void update(const std::function<void()>& f) {
    {
      std::lock_guard lock(mu);
      f();
    }
    cv.notify_all();
  }
  bool wait(const std::function<bool()>& pred, std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, pred);
  }
};

// Sends one command and waits for its reply. The state is shared with the
// callback, so a reply arriving after the wait gave up touches no dead frame.
Reply call(Client& c, std::vector<std::string> args) {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Reply> got;
  };
  auto st = std::make_shared<State>();
  c.command(std::move(args), [st](const Reply& r) {
    std::lock_guard lock(st->mu);
    st->got = r;
    st->cv.notify_all();
  });
  std::unique_lock lock(st->mu);
  if (!st->cv.wait_for(lock, kWait, [&] { return st->got.has_value(); }))
    throw std::runtime_error("no reply within 20 s");
  return *st->got;
}

redis::Options fast_options() {
  redis::Options o;
  o.connect_timeout = 2s;
  o.backoff_initial = 50ms;
  o.backoff_max = 300ms;
  return o;
}

struct Started {
  Recorder rec;
  std::unique_ptr<Client> client;
  Started(const std::string& url, redis::Options o = fast_options(), std::function<void()> at_connected = {}) {
    rec.at_connected = std::move(at_connected);
    client = std::make_unique<Client>(redis::parse_url(url), o, rec.events());
    client->start();
  }
  bool wait_connected(int n = 1) {
    return rec.wait([&] { return rec.connected >= n; });
  }
};

}  // namespace

// ---- parse_url ------------------------------------------------------------

TEST(RedisUrl, ParsesEveryPart) {
  auto e = redis::parse_url("redis://127.0.0.1");
  EXPECT_EQ(e.host, "127.0.0.1");
  EXPECT_EQ(e.port, 6379);
  EXPECT_EQ(e.password, "");
  EXPECT_EQ(e.db, 0);
  e = redis::parse_url("redis://:s3cr%40t@redis.internal:6380/5");
  EXPECT_EQ(e.host, "redis.internal");
  EXPECT_EQ(e.port, 6380);
  EXPECT_EQ(e.password, "s3cr@t");
  EXPECT_EQ(e.db, 5);
  e = redis::parse_url("redis://[::1]:7000/");
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.port, 7000);
  EXPECT_EQ(e.db, 0);
}

TEST(RedisUrl, RefusesBadInputWithTheReason) {
  auto why = [](const char* url) {
    try {
      redis::parse_url(url);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(why("http://127.0.0.1").find("expected redis://"), std::string::npos);
  EXPECT_NE(why("redis://").find("no host"), std::string::npos);
  EXPECT_NE(why("redis://:6379").find("no host"), std::string::npos);
  EXPECT_NE(why("redis://h:0").find("port must be a number in 1..65535"), std::string::npos);
  EXPECT_NE(why("redis://h:65536").find("port must be a number"), std::string::npos);
  EXPECT_NE(why("redis://h:12ab").find("port must be a number"), std::string::npos);
  EXPECT_NE(why("redis://h:").find("empty port"), std::string::npos);
  EXPECT_NE(why("redis://h/x").find("database must be a non-negative number"), std::string::npos);
  EXPECT_NE(why("redis://h/-1").find("database must be"), std::string::npos);
  EXPECT_NE(why("redis://alice:pw@h").find("a user name is not supported"), std::string::npos);
  EXPECT_NE(why("redis://pw@h").find("userinfo must be"), std::string::npos);
  EXPECT_NE(why("redis://:p%zz@h").find("bad percent-escape"), std::string::npos);
  EXPECT_NE(why("redis://[::1").find("unterminated"), std::string::npos);
  // The password never appears in the message.
  EXPECT_EQ(why("redis://:hunter2@h:99999").find("hunter2"), std::string::npos);
}

// ---- commands -------------------------------------------------------------

TEST(RedisClient, RepliesOfEveryType) {
  RedisServer server;
  Started s(server.url());
  ASSERT_TRUE(s.wait_connected());
  EXPECT_TRUE(s.client->connected());

  Reply r = call(*s.client, {"SET", "k", "v"});
  EXPECT_EQ(r.type, Reply::Type::status);
  EXPECT_EQ(r.str, "OK");
  r = call(*s.client, {"SET", "bin", std::string("a\0b\r\n", 5)});
  r = call(*s.client, {"GET", "bin"});
  EXPECT_EQ(r.type, Reply::Type::string);
  EXPECT_EQ(r.str, std::string("a\0b\r\n", 5));
  r = call(*s.client, {"INCR", "n"});
  EXPECT_EQ(r.type, Reply::Type::integer);
  EXPECT_EQ(r.integer, 1);
  r = call(*s.client, {"GET", "missing"});
  EXPECT_EQ(r.type, Reply::Type::nil);
  r = call(*s.client, {"INCR", "k"});
  EXPECT_EQ(r.type, Reply::Type::error);
  EXPECT_FALSE(r.is_unavailable());
  EXPECT_NE(r.str.find("not an integer"), std::string::npos) << r.str;
  r = call(*s.client, {"NOSUCHCOMMAND"});
  EXPECT_EQ(r.type, Reply::Type::error);

  call(*s.client, {"RPUSH", "list", "a", "b", "c"});
  r = call(*s.client, {"LRANGE", "list", "0", "-1"});
  ASSERT_EQ(r.type, Reply::Type::array);
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_EQ(r.elements[2].str, "c");

  call(*s.client, {"XADD", "stream", "1-1", "f", "v1"});
  call(*s.client, {"XADD", "stream", "2-1", "f", "v2"});
  r = call(*s.client, {"XRANGE", "stream", "-", "+"});
  ASSERT_EQ(r.type, Reply::Type::array);
  ASSERT_EQ(r.elements.size(), 2u);
  EXPECT_EQ(r.elements[1].elements[0].str, "2-1");
  ASSERT_EQ(r.elements[1].elements[1].type, Reply::Type::array);
  EXPECT_EQ(r.elements[1].elements[1].elements[1].str, "v2");

  auto c = s.client->counters();
  EXPECT_EQ(c.connects, 1u);
  EXPECT_GE(c.commands, 12u);
  EXPECT_EQ(c.errors, 2u);
}

TEST(RedisClient, SelectsTheDatabaseOfTheUrl) {
  RedisServer server;
  Started db3(server.url() + "/3");
  Started db0(server.url());
  ASSERT_TRUE(db3.wait_connected());
  ASSERT_TRUE(db0.wait_connected());
  call(*db3.client, {"SET", "where", "three"});
  EXPECT_EQ(call(*db0.client, {"GET", "where"}).type, Reply::Type::nil);
  call(*db0.client, {"SELECT", "3"});
  EXPECT_EQ(call(*db0.client, {"GET", "where"}).str, "three");
}

// 10,000 INCRs from each of two threads, without waiting for replies: each
// thread's replies come back in the order it sent them (strictly increasing
// counter values), and together they are exactly 1..20000.
TEST(RedisClient, PipelinedCommandsFromTwoThreadsKeepEachThreadsOrder) {
  RedisServer server;
  Started s(server.url());
  ASSERT_TRUE(s.wait_connected());
  constexpr int per_thread = 10'000;
  // seen[t][i]: the counter value that thread t's i-th call got back.
  std::vector<std::int64_t> seen[2] = {std::vector<std::int64_t>(per_thread, 0),
                                       std::vector<std::int64_t>(per_thread, 0)};
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  auto sender = [&](int t) {
    for (int i = 0; i < per_thread; ++i) {
      s.client->command({"INCR", "counter"}, [&, t, i](const Reply& r) {
        std::lock_guard lock(mu);
        seen[t][i] = r.type == Reply::Type::integer ? r.integer : -1;
        if (++done == 2 * per_thread) cv.notify_all();
      });
    }
  };
  std::thread a(sender, 0), b(sender, 1);
  a.join();
  b.join();
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 60s, [&] { return done == 2 * per_thread; })) << done;
  }
  std::vector<bool> hit(2 * per_thread + 1, false);
  for (int t = 0; t < 2; ++t) {
    for (int i = 0; i < per_thread; ++i) {
      ASSERT_GE(seen[t][i], 1);
      ASSERT_LE(seen[t][i], 2 * per_thread);
      if (i > 0) {
        ASSERT_LT(seen[t][i - 1], seen[t][i]) << "thread " << t << " reply " << i << " out of order";
      }
      hit[seen[t][i]] = true;
    }
  }
  for (int v = 1; v <= 2 * per_thread; ++v) ASSERT_TRUE(hit[v]) << v;
  EXPECT_EQ(s.client->counters().commands, 2u * per_thread);
}

// Commands queued while the client's thread is busy go out together: the
// first command's callback holds the thread while 1,000 more are queued, and
// all of them leave in one write.
TEST(RedisClient, CommandsQueuedTogetherLeaveInOneWrite) {
  RedisServer server;
  Started s(server.url());
  ASSERT_TRUE(s.wait_connected());
  std::mutex mu;
  std::condition_variable cv;
  bool holding = false, release = false;
  int answered = 0;
  s.client->command({"PING"}, [&](const Reply&) {
    std::unique_lock lock(mu);
    holding = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
  });
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return holding; }));
  }
  auto before = s.client->counters();
  for (int i = 0; i < 1000; ++i)
    s.client->command({"INCR", "n"}, [&](const Reply& r) {
      std::lock_guard lock(mu);
      answered += r.type == Reply::Type::integer;
      cv.notify_all();
    });
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return answered == 1000; }));
  auto after = s.client->counters();
  EXPECT_EQ(after.commands - before.commands, 1000u);
  EXPECT_EQ(after.writes - before.writes, 1u);
}

TEST(RedisClient, EvalRunsALuaScript) {
  RedisServer server;
  Started s(server.url());
  ASSERT_TRUE(s.wait_connected());
  const std::string script =
      "local n = redis.call('INCRBY', KEYS[1], ARGV[1]) "
      "redis.call('RPUSH', KEYS[2], n) "
      "return {n, redis.call('LLEN', KEYS[2]), 'done'}";
  Reply r = call(*s.client, {"EVAL", script, "2", "seq", "log", "5"});
  ASSERT_EQ(r.type, Reply::Type::array) << r.str;
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_EQ(r.elements[0].integer, 5);
  EXPECT_EQ(r.elements[1].integer, 1);
  EXPECT_EQ(r.elements[2].str, "done");
  r = call(*s.client, {"EVAL", script, "2", "seq", "log", "7"});
  EXPECT_EQ(r.elements[0].integer, 12);
  r = call(*s.client, {"EVAL", "return redis.error_reply('NOPE not today')", "0"});
  EXPECT_EQ(r.type, Reply::Type::error);
  EXPECT_EQ(r.str, "NOPE not today");
}

// ---- authentication ---------------------------------------------------------

TEST(RedisClient, AuthenticatesWithThePasswordOfTheUrl) {
  RedisServer server("pa ss");
  Started s("redis://:pa%20ss@127.0.0.1:" + std::to_string(server.port()));
  ASSERT_TRUE(s.wait_connected());
  EXPECT_EQ(call(*s.client, {"SET", "a", "1"}).str, "OK");
  // The pub/sub connection authenticated too: a subscription receives.
  s.client->subscribe("ch");
  auto deadline = std::chrono::steady_clock::now() + kWait;
  while (call(*s.client, {"PUBLISH", "ch", "hello"}).integer < 1) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
  }
  EXPECT_TRUE(s.rec.wait([&] { return !s.rec.messages.empty(); }));
}

TEST(RedisClient, WrongPasswordNeverConnectsAndSaysWhy) {
  RedisServer server("right");
  Started s("redis://:wrong@127.0.0.1:" + std::to_string(server.port()));
  ASSERT_TRUE(s.rec.wait([&] { return s.rec.connect_failures.size() >= 2; }));
  {
    std::lock_guard lock(s.rec.mu);
    EXPECT_EQ(s.rec.connected, 0);
    EXPECT_NE(s.rec.connect_failures[0].find("AUTH failed"), std::string::npos) << s.rec.connect_failures[0];
    EXPECT_NE(s.rec.connect_failures[0].find("WRONGPASS"), std::string::npos) << s.rec.connect_failures[0];
  }
  EXPECT_FALSE(s.client->connected());
  Reply r = call(*s.client, {"PING"});
  EXPECT_TRUE(r.is_unavailable()) << r.str;
  EXPECT_NE(r.str.find("AUTH failed"), std::string::npos) << r.str;
  EXPECT_GE(s.client->counters().connect_failures, 2u);
  EXPECT_EQ(s.client->counters().connects, 0u);
}

// Also: a client that has never connected announces the outage with one
// warning naming the reason, then retries at debug level.
TEST(RedisClient, MissingPasswordIsRefusedByTheServer) {
  auto lines = std::make_shared<std::pair<std::mutex, std::vector<std::pair<conduit::LogLevel, std::string>>>>();
  conduit::configure_logging({.level = conduit::LogLevel::debug, .handler = [lines](auto level, auto line) {
                                std::lock_guard lock(lines->first);
                                lines->second.emplace_back(level, std::string(line));
                              }});
  {
    RedisServer server("right");
    Started s(server.url());
    ASSERT_TRUE(s.rec.wait([&] { return s.rec.connect_failures.size() >= 3; }));
    std::lock_guard lock(s.rec.mu);
    EXPECT_NE(s.rec.connect_failures[0].find("NOAUTH"), std::string::npos) << s.rec.connect_failures[0];
  }
  conduit::configure_logging({});
  std::lock_guard lock(lines->first);
  int warnings = 0, debugs = 0;
  for (auto& [level, text] : lines->second) {
    if (!text.starts_with("event=redis_connect_failed ")) continue;
    if (level == conduit::LogLevel::warn) {
      ++warnings;
      EXPECT_NE(text.find("reason=\"PING failed: NOAUTH"), std::string::npos) << text;
    }
    debugs += level == conduit::LogLevel::debug;
  }
  EXPECT_EQ(warnings, 1);
  EXPECT_GE(debugs, 2);
}

// ---- pub/sub --------------------------------------------------------------

std::vector<long long> numsub(std::uint16_t port, const std::vector<std::string>& channels);

// Publishes until Redis reports `receivers` subscribers: the event that says a
// SUBSCRIBE/UNSUBSCRIBE took effect.
void publish_until_receivers(Client& c, const std::string& channel, std::int64_t receivers) {
  auto deadline = std::chrono::steady_clock::now() + kWait;
  while (true) {
    Reply r = call(c, {"PUBLISH", channel, "probe"});
    ASSERT_EQ(r.type, Reply::Type::integer) << r.str;
    if (r.integer == receivers) return;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "subscriber count stayed " << r.integer;
  }
}

TEST(RedisClient, PubSubDeliversInOrderAndUnsubscribeStopsDelivery) {
  RedisServer server;
  Started s(server.url());
  Started publisher(server.url());
  ASSERT_TRUE(s.wait_connected());
  ASSERT_TRUE(publisher.wait_connected());
  s.client->subscribe("news");
  s.client->subscribe("sentinel");
  s.client->subscribe("news");  // twice: still one subscription
  publish_until_receivers(*publisher.client, "news", 1);
  publish_until_receivers(*publisher.client, "sentinel", 1);
  for (int i = 0; i < 200; ++i) publisher.client->command({"PUBLISH", "news", std::to_string(i)}, nullptr);
  ASSERT_TRUE(s.rec.wait([&] {
    int n = 0;
    for (auto& m : s.rec.messages) n += m.first == "news" && m.second != "probe";
    return n == 200;
  }));
  {
    std::lock_guard lock(s.rec.mu);
    int expect = 0;
    for (auto& m : s.rec.messages)
      if (m.first == "news" && m.second != "probe") {
        EXPECT_EQ(m.second, std::to_string(expect++));
      }
  }

  s.client->unsubscribe("news");
  publish_until_receivers(*publisher.client, "news", 0);
  call(*publisher.client, {"PUBLISH", "news", "after-unsubscribe"});
  call(*publisher.client, {"PUBLISH", "sentinel", "last"});
  ASSERT_TRUE(s.rec.wait([&] { return !s.rec.messages.empty() && s.rec.messages.back().second == "last"; }));
  std::lock_guard lock(s.rec.mu);
  for (auto& m : s.rec.messages) EXPECT_NE(m.second, "after-unsubscribe");
}

// A channel subscribed before start() is subscribed by the first connection,
// before on_connected runs.
TEST(RedisClient, SubscribeBeforeStartAppliesOnTheFirstConnection) {
  RedisServer server;
  Recorder rec;
  std::vector<long long> at_connected;
  rec.at_connected = [&] { at_connected = numsub(server.port(), {"early"}); };
  Client client(redis::parse_url(server.url()), fast_options(), rec.events());
  client.subscribe("early");
  client.start();
  ASSERT_TRUE(rec.wait([&] { return rec.connected == 1; }));
  std::lock_guard lock(rec.mu);
  EXPECT_EQ(at_connected, (std::vector<long long>{1}));
}

// ---- outages --------------------------------------------------------------

// The number of subscribers of each channel, asked on a connection of its own
// (blocking: for the tests' own bookkeeping only).
std::vector<long long> numsub(std::uint16_t port, const std::vector<std::string>& channels) {
  timeval tv{5, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
  std::vector<long long> out;
  std::string cmd = "PUBSUB NUMSUB";
  for (auto& ch : channels) cmd += " " + ch;
  auto* r = c != nullptr && c->err == 0 ? static_cast<redisReply*>(redisCommand(c, cmd.c_str())) : nullptr;
  if (r != nullptr && r->type == REDIS_REPLY_ARRAY)
    for (std::size_t i = 1; i < r->elements; i += 2) out.push_back(r->element[i]->integer);
  if (r != nullptr) freeReplyObject(r);
  if (c != nullptr) redisFree(c);
  return out;
}

TEST(RedisClient, SurvivesRedisKilledAndRestartedAndResubscribes) {
  RedisServer server;
  // What Redis says about the subscriptions at the moment on_connected runs:
  // every channel must already be subscribed again.
  std::vector<std::vector<long long>> numsub_at_connected;
  Started s(server.url(), fast_options(), [&] { numsub_at_connected.push_back(numsub(server.port(), {"a", "b"})); });
  Started publisher(server.url());
  ASSERT_TRUE(s.wait_connected());
  ASSERT_TRUE(publisher.wait_connected());
  s.client->subscribe("a");
  s.client->subscribe("b");
  publish_until_receivers(*publisher.client, "a", 1);
  publish_until_receivers(*publisher.client, "b", 1);

  // A command in flight while Redis dies is answered, not lost.
  server.pause();
  std::atomic<bool> in_flight_answered{false};
  std::string in_flight_text;
  s.client->command({"INCR", "x"}, [&](const Reply& r) {
    in_flight_text = r.str;
    in_flight_answered = true;
  });
  server.kill();
  ASSERT_TRUE(s.rec.wait([&] { return !s.rec.disconnected.empty(); }));
  EXPECT_FALSE(s.client->connected());
  ASSERT_TRUE(s.rec.wait([&] { return in_flight_answered.load(); }));
  // Sent before the kill ("connection lost before the reply") or still
  // queued when the loss was seen ("not connected"): either way refused.
  EXPECT_TRUE(in_flight_text.starts_with("unavailable: ")) << in_flight_text;

  // During the outage a command is refused at once, and never replayed later.
  Reply r = call(*s.client, {"SET", "during-outage", "1"});
  EXPECT_TRUE(r.is_unavailable()) << r.str;
  EXPECT_NE(r.str.find("not connected"), std::string::npos) << r.str;

  // Restarted on the same port: the client reconnects within the backoff
  // bound, subscribes again, and says so with on_connected.
  auto restarted = std::chrono::steady_clock::now();
  server.start();
  ASSERT_TRUE(s.wait_connected(2));
  // The next attempt starts within backoff_max of the restart and succeeds
  // (a connection attempt is bounded by connect_timeout); 3 s of slack for a
  // loaded machine.
  auto bound = fast_options().backoff_max + fast_options().connect_timeout + 3s;
  EXPECT_LT(std::chrono::steady_clock::now() - restarted, bound);
  ASSERT_TRUE(publisher.wait_connected(2));
  EXPECT_TRUE(s.client->connected());
  {
    std::lock_guard lock(s.rec.mu);  // written before the count that wait_connected saw
    ASSERT_EQ(numsub_at_connected.size(), 2u);
    EXPECT_EQ(numsub_at_connected[1], (std::vector<long long>{1, 1}));
  }
  // The very first publish after on_connected reaches the subscriber.
  EXPECT_EQ(call(*publisher.client, {"PUBLISH", "a", "first"}).integer, 1);
  EXPECT_EQ(call(*publisher.client, {"PUBLISH", "b", "second"}).integer, 1);
  ASSERT_TRUE(s.rec.wait([&] { return !s.rec.messages.empty() && s.rec.messages.back().second == "second"; }));
  EXPECT_EQ(call(*s.client, {"GET", "during-outage"}).type, Reply::Type::nil);
  EXPECT_EQ(call(*s.client, {"INCR", "y"}).integer, 1);

  auto c = s.client->counters();
  EXPECT_EQ(c.connects, 2u);
  EXPECT_EQ(c.disconnects, 1u);
  EXPECT_GE(c.unavailable, 2u);
  std::lock_guard lock(s.rec.mu);
  EXPECT_EQ(s.rec.disconnected.size(), 1u);
}

// Losing only the pub/sub connection drops the pair: one state for both.
TEST(RedisClient, LosingThePubSubConnectionReconnectsThePair) {
  RedisServer server;
  std::vector<std::vector<long long>> numsub_at_connected;
  Started s(server.url(), fast_options(), [&] { numsub_at_connected.push_back(numsub(server.port(), {"a"})); });
  ASSERT_TRUE(s.wait_connected());
  s.client->subscribe("a");
  publish_until_receivers(*s.client, "a", 1);
  // Killed from a connection of the test's own: the client's command
  // connection is dropped with the pair, so it could not carry the reply.
  {
    timeval tv{5, 0};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", server.port(), tv);
    ASSERT_TRUE(c != nullptr && c->err == 0);
    auto* r = static_cast<redisReply*>(redisCommand(c, "CLIENT KILL TYPE pubsub"));
    ASSERT_TRUE(r != nullptr);
    EXPECT_EQ(r->type, REDIS_REPLY_INTEGER);
    EXPECT_EQ(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);
  }
  ASSERT_TRUE(s.rec.wait([&] { return s.rec.disconnected.size() == 1; }));
  ASSERT_TRUE(s.wait_connected(2));
  std::lock_guard lock(s.rec.mu);
  EXPECT_EQ(numsub_at_connected.back(), (std::vector<long long>{1}));
  EXPECT_EQ(s.client->counters().disconnects, 1u);
}

// A channel subscribed during an outage is subscribed on the next connection;
// one unsubscribed during the outage is not.
TEST(RedisClient, SubscriptionChangesDuringAnOutageApplyOnReconnect) {
  RedisServer server;
  std::vector<std::vector<long long>> numsub_at_connected;
  Started s(server.url(), fast_options(), [&] {
    numsub_at_connected.push_back(numsub(server.port(), {"kept", "added", "dropped"}));
  });
  ASSERT_TRUE(s.wait_connected());
  s.client->subscribe("kept");
  s.client->subscribe("dropped");
  publish_until_receivers(*s.client, "dropped", 1);
  server.kill();
  ASSERT_TRUE(s.rec.wait([&] { return s.rec.disconnected.size() == 1; }));
  s.client->subscribe("added");
  s.client->unsubscribe("dropped");
  server.start();
  ASSERT_TRUE(s.wait_connected(2));
  std::lock_guard lock(s.rec.mu);
  EXPECT_EQ(numsub_at_connected.back(), (std::vector<long long>{1, 1, 0}));
}

// An outage logs one warning (redis_disconnected), however many attempts
// fail during it (each a debug-level redis_connect_failed), and one
// redis_connected when it ends.
TEST(RedisClient, AnOutageLogsEachTransitionOnce) {
  struct Line {
    conduit::LogLevel level;
    std::string text;
  };
  auto lines = std::make_shared<std::pair<std::mutex, std::vector<Line>>>();
  conduit::configure_logging({.level = conduit::LogLevel::debug, .handler = [lines](auto level, auto line) {
                                std::lock_guard lock(lines->first);
                                lines->second.push_back({level, std::string(line)});
                              }});
  {
    RedisServer server;
    Started s(server.url());
    ASSERT_TRUE(s.wait_connected());
    server.kill();
    ASSERT_TRUE(s.rec.wait([&] { return s.rec.connect_failures.size() >= 3; }));
    server.start();
    ASSERT_TRUE(s.wait_connected(2));
  }
  conduit::configure_logging({});
  std::lock_guard lock(lines->first);
  auto count = [&](std::string_view event, conduit::LogLevel level) {
    int n = 0;
    for (auto& l : lines->second) n += l.level == level && l.text.starts_with(event);
    return n;
  };
  EXPECT_EQ(count("event=redis_connected ", conduit::LogLevel::info), 2);
  EXPECT_EQ(count("event=redis_disconnected ", conduit::LogLevel::warn), 1);
  EXPECT_EQ(count("event=redis_disconnected ", conduit::LogLevel::info), 1);  // stop()
  EXPECT_EQ(count("event=redis_connect_failed ", conduit::LogLevel::warn), 0);
  EXPECT_GE(count("event=redis_connect_failed ", conduit::LogLevel::debug), 3);
}

TEST(RedisClient, ConnectTimeoutWhenRedisDoesNotAnswer) {
  RedisServer server;
  server.pause();  // the kernel accepts the TCP connection; nobody answers
  auto o = fast_options();
  o.connect_timeout = 300ms;
  Started s(server.url(), o);
  ASSERT_TRUE(s.rec.wait([&] { return !s.rec.connect_failures.empty(); }));
  {
    std::lock_guard lock(s.rec.mu);
    EXPECT_EQ(s.rec.connect_failures[0], "connect timeout");
  }
  server.resume();
  ASSERT_TRUE(s.wait_connected());
}

TEST(RedisClient, StopWhileDisconnectedReturnsPromptly) {
  RedisServer server;
  server.kill();  // nothing listens on the port now
  auto o = fast_options();
  o.backoff_initial = 60s;  // the client sleeps in a long backoff
  o.backoff_max = 60s;
  Started s(server.url(), o);
  ASSERT_TRUE(s.rec.wait([&] { return !s.rec.connect_failures.empty(); }));
  auto t0 = std::chrono::steady_clock::now();
  s.client->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  {
    std::lock_guard lock(s.rec.mu);
    EXPECT_NE(s.rec.connect_failures[0].find("Connection refused"), std::string::npos) << s.rec.connect_failures[0];
  }
  Reply r = call(*s.client, {"PING"});
  EXPECT_EQ(r.str, "unavailable: client not running");
}

TEST(RedisClient, StopAnswersEveryPendingCommand) {
  RedisServer server;
  Started s(server.url());
  ASSERT_TRUE(s.wait_connected());
  server.pause();  // commands are sent, no reply comes back
  std::mutex mu;
  std::vector<std::string> answers;
  auto sent_before = s.client->counters().commands;
  for (int i = 0; i < 100; ++i)
    s.client->command({"INCR", "n"}, [&](const Reply& r) {
      std::lock_guard lock(mu);
      answers.push_back(r.str);
    });
  // All 100 handed to the connection (in flight, not merely queued): the
  // counter is the only sign of it, so it is polled, with a deadline.
  auto deadline = std::chrono::steady_clock::now() + kWait;
  while (s.client->counters().commands < sent_before + 100) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(1ms);
  }
  s.client->stop();
  ASSERT_EQ(answers.size(), 100u);
  for (auto& a : answers) EXPECT_EQ(a, "unavailable: stopping");
  std::lock_guard lock(s.rec.mu);
  ASSERT_EQ(s.rec.disconnected.size(), 1u);
  EXPECT_EQ(s.rec.disconnected[0], "stopping");
}

TEST(RedisClient, CommandsBeyondMaxPendingAreRefusedAtOnce) {
  RedisServer server;
  auto o = fast_options();
  o.max_pending = 100;
  Started s(server.url(), o);
  ASSERT_TRUE(s.wait_connected());
  server.pause();  // the first 100 stay outstanding
  std::mutex mu;
  std::condition_variable cv;
  int ok = 0;
  std::vector<std::string> refused;
  for (int i = 0; i < 150; ++i)
    s.client->command({"INCR", "n"}, [&](const Reply& r) {
      std::lock_guard lock(mu);
      if (r.type == Reply::Type::integer)
        ++ok;
      else
        refused.push_back(r.str);
      cv.notify_all();
    });
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return refused.size() == 50; }));
    EXPECT_EQ(ok, 0);  // Redis is stopped: the refusals did not wait for it
    EXPECT_EQ(refused[0], "unavailable: too many pending commands (max_pending=100)");
  }
  server.resume();
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return ok == 100; }));
  EXPECT_EQ(refused.size(), 50u);
}
