// Channels and the conduit.v1 service in process, with real sockets on
// 127.0.0.1 and several loops: delivery across loops in offset order, exact
// recovery while publications keep coming, and the service's auth.
// Label mt: several loops and a publishing thread, so the TSan stage runs it.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <memory>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "conduit/pubsub.hpp"
#include "conduit/server.hpp"
#include "conduit_v1_service.hpp"
#include "raw_client.hpp"

using namespace std::chrono_literals;
using conduit_test::http_exchange;
using conduit_test::number_after;
using conduit_test::RawClient;
using conduit_test::reply_to;
using conduit_test::string_after;
using conduit_test::test_options;

namespace {

using Service = conduit_test::V1Service;

TEST(Channels, PublicationsReachEverySubscriberOnEveryLoopInOffsetOrder) {
  Service svc;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 4; ++i) {  // round robin: two per loop
    clients.push_back(std::make_unique<RawClient>(svc.server->port(), "/", std::vector<std::string>{"conduit.v1"}));
    ASSERT_NE(clients.back()->response().find("Sec-WebSocket-Protocol: conduit.v1"), std::string::npos);
    clients.back()->send_text(R"({"id":1,"subscribe":{"channel":"news"}})");
    auto r = reply_to(*clients.back(), 1);
    EXPECT_EQ(number_after(r, "offset"), 0u) << r;
  }
  constexpr int n = 200;
  std::thread publisher([&] {
    for (int i = 0; i < n; ++i) svc.service->channels().publish("news", std::to_string(i));
  });
  publisher.join();
  for (auto& c : clients) {
    for (int i = 0; i < n; ++i) {
      auto f = c->next_data_or_close();
      ASSERT_EQ(number_after(f.payload, "offset"), static_cast<std::uint64_t>(i + 1)) << f.payload;
      ASSERT_NE(f.payload.find("\"data\":" + std::to_string(i) + "}}"), std::string::npos) << f.payload;
    }
  }
  EXPECT_EQ(svc.service->channels().stats().publications_total, static_cast<std::uint64_t>(n));
  EXPECT_EQ(svc.service->channels().stats().subscriptions, 4u);
}

// The race the channel lock closes: a client that re-subscribes with `since`
// while publications keep coming sees every offset once, in order.
TEST(Channels, RecoveryWhilePublishingHasNoGapAndNoDuplicate) {
  conduit::ChannelServiceOptions opts;
  opts.channels.defaults.history_size = 100000;
  Service svc(opts);
  // The publisher keeps publishing (paced, so that subscribes land between
  // publications) until every client has re-subscribed `rounds` times; the
  // clients then read up to the final offset.
  constexpr int clients = 6;
  constexpr int rounds = 25;
  std::atomic<int> resubscribes{0};
  std::atomic<int> failed{0};
  std::atomic<std::uint64_t> total{~std::uint64_t{0}};
  // Each client's last offset: the publisher stays at most `ahead` offsets in
  // front of the slowest, so that a client slowed down (by a sanitizer, a
  // loaded machine) is never closed as a slow consumer.
  std::array<std::atomic<std::uint64_t>, clients> progress{};
  constexpr std::uint64_t ahead = 1000;
  std::thread publisher([&] {
    std::uint64_t i = 0;
    while (resubscribes.load() < clients * rounds && failed.load() == 0 && i < 200000) {
      if (conduit_test::too_far_ahead(progress, i, ahead)) {
        std::this_thread::sleep_for(100us);  // pacing behind the slowest reader
        continue;
      }
      ++i;
      svc.service->channels().publish("feed", "{\"n\":" + std::to_string(i) + "}");
      if (i % 8 == 0) std::this_thread::sleep_for(50us);  // pacing, not a wait
    }
    // The last publication comes after `total` is known, so that a client
    // waiting for one more publication always gets it.
    total.store(i + 1);
    svc.service->channels().publish("feed", "\"end\"");
  });
  std::vector<std::thread> readers;
  std::vector<std::string> failures(clients);
  for (int c = 0; c < clients; ++c) {
    readers.emplace_back([&, c] {
      try {
        conduit_test::follow_with_recovery([&] { return svc.server->port(); }, static_cast<unsigned>(c) + 7, 200, total,
                                           progress[c], resubscribes);
      } catch (const std::exception& e) {
        failures[c] = e.what();
        failed.fetch_add(1);
        progress[c].store(~std::uint64_t{0} / 2);  // no longer holds the publisher back
      }
    });
  }
  for (auto& t : readers) t.join();
  publisher.join();
  for (int c = 0; c < clients; ++c) EXPECT_EQ(failures[c], "") << "client " << c;
  EXPECT_GT(svc.service->channels().stats().recoveries_recovered_total, 0u);
}

// The uWebSockets-style use: raw messages, subscriptions made by the
// application (here on open, by path), history readable from any thread.
TEST(Channels, RawTopicsSubscribeOnOpenAndKeepHistory) {
  std::unique_ptr<conduit::Channels> channels;
  std::atomic<int> subscribed{0};
  conduit::ServerHandlers h;
  h.on_open = [&](conduit::Session& s) {
    channels->subscribe(s, s.path().substr(1), std::nullopt, [&](conduit::Session& session, const auto& r) {
      EXPECT_EQ(r.status, conduit::SubscribeStatus::ok);
      EXPECT_EQ(channels->subscription_count(session), 1u);
      subscribed.fetch_add(1);
    });
  };
  h.on_message = [&](conduit::Session& s, std::string_view d, conduit::MessageType) {
    if (d == "leave") {
      EXPECT_TRUE(channels->unsubscribe(s, s.path().substr(1)));
      EXPECT_FALSE(channels->unsubscribe(s, s.path().substr(1)));
      s.send("left");
    } else if (d == "ping?") {
      s.send("pong");
    }
  };
  conduit::Server server(test_options(2), h);
  conduit::Channels::Options opts;
  opts.config.defaults.history_size = 2;
  channels = std::make_unique<conduit::Channels>(server, opts);
  server.start();
  RawClient a(server.port(), "/sports"), b(server.port(), "/sports"), c(server.port(), "/weather");
  for (int spins = 0; subscribed.load() < 3 && spins < 10000; ++spins) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(subscribed.load(), 3);
  auto r = channels->publish("sports", std::string("\x01\x02", 2), conduit::MessageType::Binary);
  ASSERT_EQ(r.status, conduit::PublishStatus::ok);
  EXPECT_EQ(r.position.offset, 1u);
  EXPECT_EQ(channels->publish("bad name", "x").status, conduit::PublishStatus::invalid_channel);
  for (RawClient* cl : {&a, &b}) {
    auto f = cl->next_data_or_close();
    EXPECT_EQ(f.op, conduit::wire::Opcode::Binary);
    EXPECT_EQ(f.payload, std::string("\x01\x02", 2));
  }
  channels->publish("weather", "rain");
  EXPECT_EQ(c.next_data_or_close().payload, "rain");
  auto list = channels->list();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].channel, "sports");
  EXPECT_EQ(list[0].subscribers, 2u);
  // History keeps the newest two.
  channels->publish("sports", "b");
  channels->publish("sports", "c");
  auto snap = channels->history("sports", 10);
  ASSERT_EQ(snap.publications.size(), 2u);
  EXPECT_EQ(snap.publications[0].offset, 2u);
  EXPECT_EQ(snap.publications[1].message, "c");
  EXPECT_EQ(snap.position.offset, 3u);
  // Unsubscribed: no more publications. (Read b and c first: a publication
  // from another thread still on its way when the unsubscribe runs is not
  // delivered, as with Group.)
  EXPECT_EQ(a.next_data_or_close().payload, "b");
  EXPECT_EQ(a.next_data_or_close().payload, "c");
  a.send_text("leave");
  EXPECT_EQ(a.next_data_or_close().payload, "left");
  channels->publish("sports", "d");
  EXPECT_EQ(b.next_data_or_close().payload, "b");
  EXPECT_EQ(b.next_data_or_close().payload, "c");
  EXPECT_EQ(b.next_data_or_close().payload, "d");
  // a left: its next frame is the answer to this, not "d" (which was
  // published, and reached b, before this was sent).
  a.send_text("ping?");
  EXPECT_EQ(a.next_data_or_close().payload, "pong");
  EXPECT_EQ(channels->stats().subscriptions, 2u);
  server.stop();
  server.wait();
  EXPECT_EQ(channels->stats().subscriptions, 0u);
}

TEST(Channels, AuthRefusesAMissingTokenWith401CountedByReason) {
  conduit::ChannelServiceOptions opts;
  opts.jwt_secret = "s3cret";
  Service svc(opts);
  auto resp = http_exchange(svc.server->port(),
                            {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"});
  EXPECT_EQ(resp.rfind("HTTP/1.1 401", 0), 0u) << resp;
  EXPECT_NE(resp.find("token missing"), std::string::npos) << resp;
  EXPECT_NE(svc.server->metrics_text().find("conduit_handshake_failures_total{reason=\"auth_missing\"} 1"),
            std::string::npos)
      << svc.server->metrics_text();
}

}  // namespace
