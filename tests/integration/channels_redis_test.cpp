// Channels with the Redis engine, in process: two servers ("nodes", two loops
// each) share channels through a real redis-server that the test starts on a
// free loopback port. Clients are raw WebSocket clients on 127.0.0.1 speaking
// conduit.v1. Label mt: the nodes, the Redis client threads and a publishing
// thread run at once, so the ThreadSanitizer stage runs it.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "conduit/pubsub.hpp"
#include "conduit/server.hpp"
#include "conduit_v1_service.hpp"
#include "raw_client.hpp"
#include "redis/redis_server.hpp"

using namespace std::chrono_literals;
using conduit_test::http_exchange;
using conduit_test::number_after;
using conduit_test::RawClient;
using conduit_test::RedisServer;
using conduit_test::reply_to;
using conduit_test::string_after;
using conduit_test::test_options;

namespace {

// One conduit.v1 node on two loops, its channels in Redis.
conduit::ChannelServiceOptions redis_options(const std::string& redis_url, std::size_t history_size,
                                             std::size_t max_backlog) {
  conduit::ChannelServiceOptions opts;
  opts.redis.max_backlog_bytes = max_backlog;
  opts.channels.defaults.history_size = history_size;
  opts.channels.defaults.history_ttl = 0ms;
  opts.redis.url = redis_url;
  opts.redis.prefix = "t";
  return opts;
}

struct Node : conduit_test::V1Service {
  explicit Node(const std::string& redis_url, std::size_t history_size = 100000, std::size_t max_backlog = 64u << 20)
      : V1Service(redis_options(redis_url, history_size, max_backlog)) {}
  // Polls /readyz (each probe a real request) until it answers `status`.
  bool wait_ready(int status) const {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string r = http_exchange(server->port(), {"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"});
      if (r.rfind("HTTP/1.1 " + std::to_string(status), 0) == 0) return true;
      std::this_thread::sleep_for(20ms);  // probe interval
    }
    return false;
  }
};

std::string subscribe(RawClient& c, std::uint64_t id, const std::string& channel) {
  c.send_text("{\"id\":" + std::to_string(id) + ",\"subscribe\":{\"channel\":\"" + channel + "\"}}");
  return reply_to(c, id);
}

std::string publish(RawClient& c, std::uint64_t id, const std::string& channel, const std::string& data,
                    std::vector<std::string>* pushes = nullptr) {
  c.send_text("{\"id\":" + std::to_string(id) + ",\"publish\":{\"channel\":\"" + channel + "\",\"data\":" + data +
              "}}");
  return reply_to(c, id, pushes);
}

// A publication made on one node reaches the subscribers of both, in one order.
TEST(ChannelsRedis, PublicationsReachSubscribersOfEveryNodeInOneOrder) {
  RedisServer redis;
  Node a(redis.url()), b(redis.url());
  ASSERT_TRUE(a.wait_ready(200));
  ASSERT_TRUE(b.wait_ready(200));
  RawClient sa(a.server->port()), sb(b.server->port()), pa(a.server->port()), pb(b.server->port());
  const std::string ra = subscribe(sa, 1, "room");
  const std::string rb = subscribe(sb, 1, "room");
  ASSERT_EQ(string_after(ra, "epoch"), string_after(rb, "epoch")) << ra << rb;
  // Both nodes publish, interleaved: every subscriber sees offsets 1..n.
  constexpr int n = 200;
  for (int i = 0; i < n; ++i) {
    RawClient& p = i % 2 ? pb : pa;
    const std::string r = publish(p, static_cast<std::uint64_t>(i + 1), "room", std::to_string(i));
    ASSERT_NE(r.find("\"result\""), std::string::npos) << r;
  }
  for (RawClient* s : {&sa, &sb}) {
    for (int i = 0; i < n; ++i) {
      auto f = s->next_data_or_close();
      ASSERT_EQ(number_after(f.payload, "offset"), static_cast<std::uint64_t>(i + 1)) << f.payload;
    }
  }
}

// Clients re-subscribe with `since` on either node while a thread publishes
// through both: each sees every offset once, in order, whichever node it is
// on and however far ahead of that node its position is.
TEST(ChannelsRedis, RecoveryOnEitherNodeWhilePublishingHasNoGapAndNoDuplicate) {
  RedisServer redis;
  Node a(redis.url()), b(redis.url());
  ASSERT_TRUE(a.wait_ready(200));
  ASSERT_TRUE(b.wait_ready(200));
  std::array<Node*, 2> nodes{&a, &b};
  constexpr int clients = 4;
  constexpr int rounds = 15;
  std::atomic<int> resubscribes{0};
  std::atomic<int> failed{0};
  std::atomic<std::uint64_t> total{~std::uint64_t{0}};
  std::array<std::atomic<std::uint64_t>, clients> progress{};
  constexpr std::uint64_t ahead = 500;
  std::string publish_failure;
  std::thread publisher([&] {
    std::uint64_t i = 0;
    while (resubscribes.load() < clients * rounds && failed.load() == 0 && i < 100000) {
      if (conduit_test::too_far_ahead(progress, i, ahead)) {
        std::this_thread::sleep_for(100us);  // pacing behind the slowest reader
        continue;
      }
      ++i;
      auto r = nodes[i % 2]->service->channels().publish("feed", "{\"n\":" + std::to_string(i) + "}");
      if (r.status != conduit::PublishStatus::ok || r.position.offset != i) {
        publish_failure = "publish " + std::to_string(i) + " got offset " + std::to_string(r.position.offset);
        failed.fetch_add(1);
        break;
      }
    }
    total.store(i + 1);
    nodes[0]->service->channels().publish("feed", "\"end\"");
  });
  std::vector<std::thread> readers;
  std::vector<std::string> failures(clients);
  for (int c = 0; c < clients; ++c) {
    readers.emplace_back([&, c] {
      try {
        conduit_test::follow_with_recovery(
            [&, rng = std::mt19937(static_cast<unsigned>(c) + 3)]() mutable {
              return nodes[rng() % 2]->server->port();
            },
            static_cast<unsigned>(c) + 11, 100, total, progress[c], resubscribes);
      } catch (const std::exception& e) {
        failures[c] = e.what();
        failed.fetch_add(1);
        progress[c].store(~std::uint64_t{0} / 2);  // no longer holds the publisher back
      }
    });
  }
  for (auto& t : readers) t.join();
  publisher.join();
  EXPECT_EQ(publish_failure, "");
  for (int c = 0; c < clients; ++c) EXPECT_EQ(failures[c], "") << "client " << c;
}

// Redis killed and started again without its data: the node stays up,
// refuses publishes and subscribes (503) and says so on /readyz; once Redis
// is back, its subscribers are told recovery_failed with the new position
// and live delivery continues from there; an old `since` is not recovered.
TEST(ChannelsRedis, RedisLostAndBackWithoutDataTellsSubscribersToReload) {
  RedisServer redis;
  Node a(redis.url());
  ASSERT_TRUE(a.wait_ready(200));
  RawClient sub(a.server->port()), pub(a.server->port());
  const std::string first = subscribe(sub, 1, "x");
  const std::string old_epoch = string_after(first, "epoch");
  ASSERT_NE(publish(pub, 1, "x", "1").find("\"offset\":1"), std::string::npos);
  ASSERT_EQ(number_after(sub.next_data_or_close().payload, "offset"), 1u);

  redis.kill();
  ASSERT_TRUE(a.wait_ready(503));
  const std::string readyz = http_exchange(a.server->port(), {"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"});
  EXPECT_NE(readyz.find("redis unavailable: "), std::string::npos) << readyz;
  EXPECT_EQ(publish(pub, 2, "x", "2"), R"({"id":2,"error":{"code":503,"message":"unavailable"}})");
  RawClient late(a.server->port());
  EXPECT_EQ(subscribe(late, 1, "y"), R"({"id":1,"error":{"code":503,"message":"unavailable"}})");

  redis.start();
  ASSERT_TRUE(a.wait_ready(200));
  auto f = sub.next_data_or_close();
  ASSERT_NE(f.payload.find("\"recovery_failed\""), std::string::npos) << f.payload;
  const std::string new_epoch = string_after(f.payload, "epoch");
  EXPECT_NE(new_epoch, old_epoch);
  EXPECT_EQ(number_after(f.payload, "offset"), 0u) << f.payload;
  // Live again, in the new epoch; the refused publication never appears.
  ASSERT_NE(publish(pub, 3, "x", "3").find("\"offset\":1"), std::string::npos);
  f = sub.next_data_or_close();
  EXPECT_NE(f.payload.find("\"offset\":1,\"epoch\":\"" + new_epoch + "\",\"data\":3"), std::string::npos) << f.payload;
  RawClient again(a.server->port());
  again.send_text(R"({"id":1,"subscribe":{"channel":"x","since":{"offset":1,"epoch":")" + old_epoch + "\"}}}");
  const std::string r = reply_to(again, 1);
  EXPECT_NE(r.find("\"recovered\":false"), std::string::npos) << r;
}

// Redis not running when the node starts: it starts anyway, /readyz is 503
// until Redis answers, then 200 and channels work.
TEST(ChannelsRedis, NodeStartsWithoutRedisAndTurnsReadyWhenItAppears) {
  RedisServer redis;
  const std::string url = redis.url();
  redis.kill();
  Node a(url);
  EXPECT_TRUE(a.wait_ready(503));
  const std::string health = http_exchange(a.server->port(), {"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"});
  EXPECT_EQ(health.rfind("HTTP/1.1 200", 0), 0u) << health;
  redis.start();
  ASSERT_TRUE(a.wait_ready(200));
  RawClient c(a.server->port());
  EXPECT_NE(subscribe(c, 1, "z").find("\"result\""), std::string::npos);
  EXPECT_NE(publish(c, 2, "z", "true").find("\"result\""), std::string::npos);
}

// A node whose loops fall behind what Redis sends: its backlog stays bounded
// (messages beyond max_backlog_bytes are dropped, not queued) and once the
// loops catch up the channel is read again from the Redis history, so the
// subscriber still gets every publication in order; with a history too short
// for the gap it gets recovery_failed instead.
void backlog_case(std::size_t history_size, bool expect_recovered) {
  RedisServer redis;
  constexpr std::size_t max_backlog = 64 * 1024;
  Node a(redis.url(), history_size, max_backlog), b(redis.url());
  ASSERT_TRUE(a.wait_ready(200));
  ASSERT_TRUE(b.wait_ready(200));
  RawClient sub(a.server->port());
  subscribe(sub, 1, "big");
  // Block both of node A's loops: what Redis sends piles up in its backlog.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> blocked{0};
  for (unsigned i = 0; i < 2; ++i) {
    ASSERT_TRUE(a.server->post(i, [released, &blocked] {
      blocked.fetch_add(1);
      released.wait();
    }));
  }
  const std::string data = "\"" + std::string(1000, 'x') + "\"";
  constexpr int n = 300;  // ~300 KB: several times the backlog limit
  for (int i = 1; i <= n; ++i) {
    auto r = b.service->channels().publish("big", data);
    ASSERT_EQ(r.status, conduit::PublishStatus::ok);
  }
  // Node A's Redis thread has taken all n (pub/sub is in order; a marker
  // publication after them on another channel is not needed: its message
  // counter is read until it stops below n or reaches n).
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::string metrics;
  while (std::chrono::steady_clock::now() < deadline) {
    metrics = a.server->metrics_text();
    if (metrics.find("conduit_redis_messages_total " + std::to_string(n + 0)) != std::string::npos) break;
    std::this_thread::sleep_for(10ms);  // probe interval
  }
  const auto backlog_at = metrics.find("\nconduit_redis_backlog_bytes ");
  ASSERT_NE(backlog_at, std::string::npos);
  const auto backlog = std::stoull(metrics.substr(backlog_at + 29));
  EXPECT_LE(backlog, max_backlog + 2 * 1100) << "backlog above its bound";
  EXPECT_EQ(metrics.find("conduit_redis_backlog_drops_total 0\n"), std::string::npos) << "nothing dropped?";
  release.set_value();
  std::uint64_t last = 0;
  bool failed_push = false;
  while (last < static_cast<std::uint64_t>(n)) {
    auto f = sub.next_data_or_close();
    ASSERT_EQ(f.op, conduit::wire::Opcode::Text) << f.payload;
    if (f.payload.find("\"recovery_failed\"") != std::string::npos) {
      failed_push = true;
      last = number_after(f.payload, "offset");
      continue;
    }
    const auto off = number_after(f.payload, "offset");
    ASSERT_EQ(off, last + 1) << "gap or duplicate";
    last = off;
  }
  EXPECT_EQ(failed_push, !expect_recovered);
}

TEST(ChannelsRedis, SlowNodeBacklogIsBoundedAndRecoversFromHistory) { backlog_case(1000, true); }
TEST(ChannelsRedis, SlowNodeBacklogBeyondHistoryTellsRecoveryFailed) { backlog_case(10, false); }

}  // namespace
