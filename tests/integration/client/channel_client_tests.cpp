// conduit::ChannelClient against a real `conduitd --mode pubsub` on loopback:
// recovery across dropped connections while a publisher keeps publishing (no
// gap, no duplicate, recovered publications before live ones), and across a
// restart that lost the history (recovery reported as failed, delivery goes
// on in the new epoch). The connection is dropped by a TCP proxy in this
// process that the test cuts, so the server sees an ordinary connection loss.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "child_process.hpp"
#include "conduit/channel_client.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using conduit_test::ChildProcess;

const std::string conduitd = CONDUIT_TEST_CONDUITD;

// conduitd --mode pubsub on 127.0.0.1:port (0 = the kernel chooses), with
// `extra` arguments; not started yet.
ChildProcess pubsub_conduitd(std::vector<std::string> extra, int port = 0) {
  std::vector<std::string> argv{conduitd, "--mode", "pubsub", "--listen", "127.0.0.1:" + std::to_string(port)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return ChildProcess(std::move(argv));
}

// How long conduitd may take to say it listens (generous: sanitizer builds
// start slowly on a loaded machine).
constexpr auto start_timeout = 30s;

// A TCP proxy on 127.0.0.1 to an upstream port. cut_and_hold() drops every
// connection through it (both sides see the TCP connection end) and holds
// new ones, unconnected, until release().
class CuttableProxy {
 public:
  explicit CuttableProxy(int upstream_port) : upstream_port_(upstream_port) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listen_fd_, 16) != 0) return;
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~CuttableProxy() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      for (int fd : live_) shutdown(fd, SHUT_RDWR);
    }
    cv_.notify_all();
    shutdown(listen_fd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
    close(listen_fd_);
  }

  int port() const { return port_; }
  int connections() {
    std::lock_guard lock(mu_);
    return connected_;
  }

  void cut_and_hold() {
    std::lock_guard lock(mu_);
    holding_ = true;
    for (int fd : live_) shutdown(fd, SHUT_RDWR);
  }
  void release() {
    {
      std::lock_guard lock(mu_);
      holding_ = false;
    }
    cv_.notify_all();
  }

 private:
  void accept_loop() {
    for (;;) {
      const int fd = accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      std::lock_guard lock(mu_);
      if (stopping_) {
        close(fd);
        return;
      }
      threads_.emplace_back([this, fd] { serve(fd); });
    }
  }

  static void pump(int from, int to) {
    char buf[16384];
    for (;;) {
      const ssize_t n = recv(from, buf, sizeof buf, 0);
      if (n <= 0) break;
      ssize_t off = 0;
      while (off < n) {
        // MSG_NOSIGNAL: a write to a connection the test just cut must fail
        // with EPIPE, not kill the test with SIGPIPE.
        const ssize_t w = send(to, buf + off, static_cast<std::size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) return;
        off += w;
      }
    }
  }

  void serve(int client_fd) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return !holding_ || stopping_; });
      if (stopping_) {
        close(client_fd);
        return;
      }
    }
    const int up = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(upstream_port_));
    if (connect(up, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(up);
      close(client_fd);
      return;
    }
    {
      std::lock_guard lock(mu_);
      if (holding_ || stopping_) {  // cut while connecting upstream
        close(up);
        close(client_fd);
        return;
      }
      live_.push_back(client_fd);
      live_.push_back(up);
      ++connected_;
    }
    std::thread back([client_fd, up] {
      pump(up, client_fd);
      shutdown(client_fd, SHUT_RDWR);
      shutdown(up, SHUT_RDWR);
    });
    pump(client_fd, up);
    shutdown(client_fd, SHUT_RDWR);
    shutdown(up, SHUT_RDWR);
    back.join();
    {
      std::lock_guard lock(mu_);
      std::erase(live_, client_fd);
      std::erase(live_, up);
    }
    close(client_fd);
    close(up);
  }

  int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool holding_ = false;
  bool stopping_ = false;
  int connected_ = 0;
  std::vector<int> live_;
  std::vector<std::thread> threads_;
};

// What a subscription delivered, to wait on and check.
struct Delivered {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::uint64_t> offsets;
  std::vector<std::string> epochs;
  std::vector<std::string> data;
  std::vector<bool> recovered_flags;
  std::vector<conduit::ChannelSubscribed> subscribed;
  std::vector<std::string> subscribed_epochs;
  std::vector<conduit::ChannelRecoveryFailed> failures;
  std::vector<std::string> errors;

  conduit::ChannelSubscriptionHandlers handlers() {
    conduit::ChannelSubscriptionHandlers h;
    h.on_publication = [this](const conduit::ReceivedPublication& p) {
      std::lock_guard lock(mu);
      offsets.push_back(p.offset);
      epochs.emplace_back(p.epoch);
      data.emplace_back(p.data);
      recovered_flags.push_back(p.recovered);
      cv.notify_all();
    };
    h.on_subscribed = [this](const conduit::ChannelSubscribed& s) {
      std::lock_guard lock(mu);
      subscribed.push_back(s);
      subscribed.back().channel = {};
      cv.notify_all();
    };
    h.on_recovery_failed = [this](const conduit::ChannelRecoveryFailed& f) {
      std::lock_guard lock(mu);
      failures.push_back(f);
      failures.back().channel = {};
      cv.notify_all();
    };
    h.on_error = [this](const conduit::ChannelReplyError& e) {
      std::lock_guard lock(mu);
      errors.push_back(std::to_string(e.code) + " " + e.message);
      cv.notify_all();
    };
    return h;
  }

  bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout = 60s) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, done);
  }
};

conduit::ClientOptions fast_reconnect() {
  conduit::ClientOptions o;
  o.reconnect.initial_delay = 20ms;
  o.reconnect.max_delay = 100ms;
  o.reconnect.healthy_after = 100ms;
  return o;
}

// Publishes synchronously: returns the result once the server answered.
conduit::ChannelPublishResult publish_and_wait(conduit::ChannelClient& c, const std::string& channel,
                                               const std::string& data) {
  auto done = std::make_shared<std::promise<conduit::ChannelPublishResult>>();
  auto future = done->get_future();
  const std::error_code ec =
      c.publish(channel, data, [done](const conduit::ChannelPublishResult& r) { done->set_value(r); });
  if (ec) {
    conduit::ChannelPublishResult r;
    r.error = conduit::ChannelReplyError{-1, ec.message()};
    return r;
  }
  if (future.wait_for(30s) != std::future_status::ready) {
    conduit::ChannelPublishResult r;
    r.error = conduit::ChannelReplyError{-1, "no answer within 30 s"};
    return r;
  }
  return future.get();
}

std::string payload(std::uint64_t k) { return "{\"k\":" + std::to_string(k) + ",\"text\":\"m\\u00e9\"}"; }

TEST(ChannelClientRecovery, DroppedConnectionsWhilePublishingLoseNothingAndRepeatNothing) {
  // History large enough to hold everything published in the test: every
  // outage is within the history, so recovery must succeed each time.
  ChildProcess server = pubsub_conduitd({"--set", "channels.history_size=10000", "--set", "channels.history_ttl=0s"});
  const int port = server.start(start_timeout);
  ASSERT_GT(port, 0) << "conduitd --mode pubsub did not start";
  CuttableProxy proxy(port);
  ASSERT_GT(proxy.port(), 0);

  Delivered got;
  conduit::ChannelClient subscriber("ws://127.0.0.1:" + std::to_string(proxy.port()) + "/", fast_reconnect());
  ASSERT_FALSE(subscriber.subscribe("rec:stream", got.handlers()));
  subscriber.start();
  ASSERT_TRUE(got.wait_for([&] { return !got.subscribed.empty(); })) << "first subscribe not answered";

  conduit::ChannelClient publisher("ws://127.0.0.1:" + std::to_string(port) + "/");
  publisher.start();

  // 600 publications, one after another. At 150, 300 and 450 the
  // subscriber's connection is cut and held down for 30 more publications
  // (which it can only get by recovery); then it may reconnect while the
  // publisher keeps going, so its re-subscribe races live publications.
  constexpr std::uint64_t total = 600;
  int cuts = 0;
  std::uint64_t held_publications = 0;
  for (std::uint64_t k = 1; k <= total; ++k) {
    if (k == 151 || k == 301 || k == 451) {
      // The previous cut's re-subscribe is answered (it raced publications
      // 181.. or 331..): this cut drops a live subscription.
      ASSERT_TRUE(got.wait_for([&] { return got.subscribed.size() == 1u + cuts || !got.failures.empty(); }))
          << "no re-subscribe after cut " << cuts;
      proxy.cut_and_hold();
      ++cuts;
    }
    const auto r = publish_and_wait(publisher, "rec:stream", payload(k));
    ASSERT_FALSE(r.error) << "publish " << k << ": " << r.error->code << " " << r.error->message;
    ASSERT_EQ(r.position.offset, k);
    if (k == 180 || k == 330 || k == 480) proxy.release();
    if ((k > 150 && k <= 180) || (k > 300 && k <= 330) || (k > 450 && k <= 480)) ++held_publications;
  }
  ASSERT_TRUE(got.wait_for([&] { return got.offsets.size() >= total || !got.failures.empty(); }))
      << "delivered " << got.offsets.size() << " of " << total;

  std::lock_guard lock(got.mu);
  EXPECT_TRUE(got.failures.empty()) << "recovery reported failed: " << to_string(got.failures.front().reason);
  ASSERT_EQ(got.offsets.size(), total);
  for (std::uint64_t i = 0; i < total; ++i) {
    ASSERT_EQ(got.offsets[i], i + 1) << "gap or duplicate at delivery " << i;
    ASSERT_EQ(got.data[i], payload(i + 1));
    ASSERT_EQ(got.epochs[i], got.epochs[0]);
  }
  // The first subscribe, then one recovered re-subscribe per cut, each with
  // the publications made while the connection was held down.
  ASSERT_EQ(got.subscribed.size(), 1u + cuts);
  EXPECT_FALSE(got.subscribed[0].resubscribe);
  std::size_t recovered = 0;
  for (std::size_t i = 1; i < got.subscribed.size(); ++i) {
    EXPECT_TRUE(got.subscribed[i].resubscribe);
    EXPECT_TRUE(got.subscribed[i].recovered);
    recovered += got.subscribed[i].recovered_count;
  }
  EXPECT_GE(recovered, held_publications);
  std::size_t flagged = 0;
  for (bool f : got.recovered_flags) flagged += f ? 1 : 0;
  EXPECT_EQ(flagged, recovered);
  EXPECT_GE(proxy.connections(), 1 + cuts);
  EXPECT_TRUE(got.errors.empty());

  subscriber.close();
  publisher.close();
  EXPECT_TRUE(subscriber.wait(10s));
  EXPECT_TRUE(publisher.wait(10s));
  EXPECT_EQ(server.stop(), 0);
}

TEST(ChannelClientRecovery, RestartThatLostHistoryIsReportedAndDeliveryContinuesInTheNewEpoch) {
  ChildProcess first = pubsub_conduitd({});
  const int port = first.start(start_timeout);
  ASSERT_GT(port, 0) << "conduitd --mode pubsub did not start";

  Delivered got;
  conduit::ChannelClient subscriber("ws://127.0.0.1:" + std::to_string(port) + "/", fast_reconnect());
  ASSERT_FALSE(subscriber.subscribe("news", got.handlers()));
  subscriber.start();
  ASSERT_TRUE(got.wait_for([&] { return !got.subscribed.empty(); }));

  std::string old_epoch;
  {
    conduit::ChannelClient publisher("ws://127.0.0.1:" + std::to_string(port) + "/");
    publisher.start();
    for (int k = 1; k <= 5; ++k) {
      const auto r = publish_and_wait(publisher, "news", std::to_string(k));
      ASSERT_FALSE(r.error) << r.error->message;
      old_epoch = r.position.epoch;
    }
    publisher.close();
    publisher.wait(10s);
  }
  ASSERT_TRUE(got.wait_for([&] { return got.offsets.size() == 5; }));

  // History is in memory: the restarted server has a new epoch for "news".
  ASSERT_EQ(first.stop(), 0);
  ChildProcess second = pubsub_conduitd({}, port);
  ASSERT_EQ(second.start(start_timeout), port) << "conduitd did not restart on port " << port;
  ASSERT_TRUE(got.wait_for([&] { return !got.failures.empty(); })) << "lost history not reported";

  conduit::ChannelClient publisher("ws://127.0.0.1:" + std::to_string(port) + "/");
  publisher.start();
  std::string new_epoch;
  for (int k = 1; k <= 3; ++k) {
    const auto r = publish_and_wait(publisher, "news", "\"after " + std::to_string(k) + "\"");
    ASSERT_FALSE(r.error) << r.error->message;
    EXPECT_EQ(r.position.offset, static_cast<std::uint64_t>(k));
    new_epoch = r.position.epoch;
  }
  ASSERT_TRUE(got.wait_for([&] { return got.offsets.size() == 8; }));

  std::lock_guard lock(got.mu);
  ASSERT_EQ(got.failures.size(), 1u);
  const auto& f = got.failures[0];
  EXPECT_EQ(f.reason, conduit::RecoveryFailure::epoch_changed);
  EXPECT_EQ(f.last_delivered.offset, 5u);
  EXPECT_EQ(f.last_delivered.epoch, old_epoch);
  EXPECT_EQ(f.position.offset, 0u);
  EXPECT_EQ(f.position.epoch, new_epoch);
  EXPECT_NE(new_epoch, old_epoch);
  const std::vector<std::uint64_t> expected{1, 2, 3, 4, 5, 1, 2, 3};
  EXPECT_EQ(got.offsets, expected);
  for (int i = 5; i < 8; ++i) {
    EXPECT_EQ(got.epochs[i], new_epoch);
    EXPECT_EQ(got.data[i], "\"after " + std::to_string(i - 4) + "\"");
  }
  ASSERT_EQ(got.subscribed.size(), 2u);
  EXPECT_TRUE(got.subscribed[1].resubscribe);
  EXPECT_FALSE(got.subscribed[1].recovered);

  subscriber.close();
  publisher.close();
  EXPECT_TRUE(subscriber.wait(10s));
  EXPECT_TRUE(publisher.wait(10s));
  EXPECT_EQ(second.stop(), 0);
}

TEST(ChannelClientRequests, RefusalsAndLocalChecksAreReported) {
  ChildProcess server = pubsub_conduitd({});
  const int port = server.start(start_timeout);
  ASSERT_GT(port, 0);
  Delivered got;
  conduit::ChannelClient client("ws://127.0.0.1:" + std::to_string(port) + "/");
  // Checked before anything is sent: data that is not JSON would make the
  // whole request invalid JSON, which the server could not answer by id.
  EXPECT_EQ(client.publish("news", "{\"a\":"), conduit::ChannelClientError::invalid_json);
  EXPECT_EQ(client.publish("", "1"), conduit::ChannelClientError::invalid_channel);
  ASSERT_FALSE(client.subscribe("bad*name", got.handlers()));
  EXPECT_EQ(client.subscribe("bad*name", got.handlers()), conduit::ChannelClientError::already_subscribed);
  EXPECT_EQ(client.unsubscribe("never"), conduit::ChannelClientError::not_subscribed);
  client.start();
  ASSERT_TRUE(got.wait_for([&] { return !got.errors.empty(); }));
  {
    std::lock_guard lock(got.mu);
    EXPECT_EQ(got.errors[0].substr(0, 4), "400 ") << got.errors[0];
  }
  // The refused subscription is dropped: subscribing again is allowed.
  EXPECT_EQ(client.unsubscribe("bad*name"), conduit::ChannelClientError::not_subscribed);
  const auto r = publish_and_wait(client, "bad*name", "1");
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->code, 400);
  client.close();
  EXPECT_TRUE(client.wait(10s));
  EXPECT_EQ(server.stop(), 0);
}

TEST(ChannelClientRequests, UnsubscribeStopsDeliveryAtOnceAndSubscribingAgainStartsLive) {
  ChildProcess server = pubsub_conduitd({});
  const int port = server.start(start_timeout);
  ASSERT_GT(port, 0);
  const std::string url = "ws://127.0.0.1:" + std::to_string(port) + "/";
  conduit::ChannelClient subscriber(url);
  conduit::ChannelClient publisher(url);
  subscriber.start();
  publisher.start();
  Delivered got;
  ASSERT_FALSE(subscriber.subscribe("news", got.handlers()));
  ASSERT_TRUE(got.wait_for([&] { return got.subscribed.size() == 1; }));
  ASSERT_FALSE(publish_and_wait(publisher, "news", "1").error);
  ASSERT_TRUE(got.wait_for([&] { return got.offsets.size() == 1; }));

  // Publication 2 comes after unsubscribe() returned: whether or not the
  // server still pushes it, it must not be delivered.
  ASSERT_FALSE(subscriber.unsubscribe("news"));
  EXPECT_FALSE(subscriber.position("news"));
  ASSERT_FALSE(publish_and_wait(publisher, "news", "2").error);
  ASSERT_FALSE(subscriber.subscribe("news", got.handlers()));
  ASSERT_TRUE(got.wait_for([&] { return got.subscribed.size() == 2; }));
  ASSERT_FALSE(publish_and_wait(publisher, "news", "3").error);
  ASSERT_TRUE(got.wait_for([&] { return got.offsets.size() == 2; }));
  {
    std::lock_guard lock(got.mu);
    EXPECT_EQ(got.subscribed[1].position.offset, 2u);
    EXPECT_FALSE(got.subscribed[1].resubscribe);
    EXPECT_EQ(got.offsets, (std::vector<std::uint64_t>{1, 3}));
    EXPECT_EQ(got.data, (std::vector<std::string>{"1", "3"}));
  }
  auto position = subscriber.position("news");
  ASSERT_TRUE(position);
  EXPECT_EQ(position->offset, 3u);
  subscriber.close();
  publisher.close();
  EXPECT_TRUE(subscriber.wait(10s));
  EXPECT_TRUE(publisher.wait(10s));
  EXPECT_EQ(server.stop(), 0);
}

}  // namespace
