// In-process tests of conduit::Server with several event loops, driven by
// blocking raw-socket clients on their own threads. These are the tests the
// ThreadSanitizer build runs (label mt): cross-thread send, broadcast from a
// foreign thread and from loop threads, graceful stop while traffic flows.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "conduit/server.hpp"
#include "raw_client.hpp"

using namespace std::chrono_literals;

namespace {

using conduit_test::Frame;
using conduit_test::RawClient;
using conduit_test::test_options;

TEST(ServerInProcess, EchoAcrossTwoLoopsFromManyThreads) {
  conduit::ServerHandlers h;
  h.on_message = [](conduit::Session& s, std::string_view d, conduit::MessageType t) { s.send(d, t); };
  conduit::Server server(test_options(2), std::move(h));
  server.start();
  constexpr int kThreads = 6, kConns = 3, kMessages = 300;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::unique_ptr<RawClient>> clients;
      for (int c = 0; c < kConns; ++c) clients.push_back(std::make_unique<RawClient>(server.port()));
      int good = 0;
      for (int i = 0; i < kMessages; ++i) {
        for (int c = 0; c < kConns; ++c) {
          std::string msg = "t" + std::to_string(t) + "c" + std::to_string(c) + "#" + std::to_string(i);
          clients[c]->send_text(msg);
          Frame f = clients[c]->next_data_or_close();
          if (f.op == conduit::wire::Opcode::Text && f.payload == msg) ++good;
        }
      }
      ok += good;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kConns * kMessages);
  server.stop();
  server.wait();
}

TEST(ServerInProcess, SendFromForeignThreadAndBroadcastKeepOrder) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<conduit::SessionPtr> sessions;
  conduit::ServerHandlers h;
  h.on_open = [&](conduit::Session& s) {
    std::lock_guard lock(mu);
    sessions.push_back(s.shared());
    cv.notify_all();
  };
  conduit::Server server(test_options(2), std::move(h));
  server.start();
  constexpr int kClients = 8, kMessages = 400;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(std::make_unique<RawClient>(server.port()));
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return sessions.size() == kClients; }));
  }
  // Two foreign threads: one broadcasts, one sends to each session directly.
  std::thread broadcaster([&] {
    for (int i = 0; i < kMessages; ++i) server.broadcast("b" + std::to_string(i), conduit::MessageType::Text);
  });
  std::thread sender([&] {
    for (int i = 0; i < kMessages; ++i) {
      for (auto& s : sessions) s->send("d" + std::to_string(i), conduit::MessageType::Binary);
    }
  });
  broadcaster.join();
  sender.join();
  for (auto& c : clients) {
    int next_b = 0, next_d = 0;
    while (next_b < kMessages || next_d < kMessages) {
      Frame f = c->next_data_or_close();
      ASSERT_NE(f.op, conduit::wire::Opcode::Close) << f.payload;
      if (f.payload[0] == 'b') {
        ASSERT_EQ(f.op, conduit::wire::Opcode::Text);
        ASSERT_EQ(f.payload, "b" + std::to_string(next_b++));
      } else {
        ASSERT_EQ(f.op, conduit::wire::Opcode::Binary);
        ASSERT_EQ(f.payload, "d" + std::to_string(next_d++));
      }
    }
  }
  sessions.clear();
  server.stop();
  server.wait();
}

TEST(ServerInProcess, BroadcastFromLoopThreadsReachesEveryLoop) {
  conduit::Server* self = nullptr;
  conduit::ServerHandlers h;
  h.on_message = [&self](conduit::Session&, std::string_view d, conduit::MessageType t) { self->broadcast(d, t); };
  conduit::Server server(test_options(3), std::move(h));
  self = &server;
  server.start();
  constexpr int kClients = 9, kMessages = 200;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(std::make_unique<RawClient>(server.port()));
  // Wait until all are open: a marker from the last client must reach the first.
  clients.back()->send_text("ready");
  for (auto& c : clients) {
    Frame f = c->next_data_or_close();
    ASSERT_EQ(f.payload, "ready");
  }
  std::thread publisher([&] {
    for (int i = 0; i < kMessages; ++i) clients[0]->send_text("m" + std::to_string(i));
  });
  publisher.join();
  for (auto& c : clients) {
    for (int i = 0; i < kMessages; ++i) {
      Frame f = c->next_data_or_close();
      ASSERT_EQ(f.payload, "m" + std::to_string(i));
    }
  }
  server.stop();
  server.wait();
}

TEST(ServerInProcess, StopClosesEveryoneWith1001AndReturns) {
  std::atomic<int> closed{0};
  conduit::ServerHandlers h;
  h.on_message = [](conduit::Session& s, std::string_view d, conduit::MessageType t) { s.send(d, t); };
  h.on_close = [&](conduit::Session&, std::uint16_t, std::string_view) { ++closed; };
  conduit::Server server(test_options(2), std::move(h));
  server.start();
  constexpr int kClients = 20;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<RawClient>(server.port()));
    clients.back()->send_text("hi");
    ASSERT_EQ(clients.back()->next_data_or_close().payload, "hi");
  }
  auto t0 = std::chrono::steady_clock::now();
  std::thread stopper([&] { server.stop(); });
  for (auto& c : clients) {
    Frame f = c->next_data_or_close();
    ASSERT_EQ(f.op, conduit::wire::Opcode::Close);
    EXPECT_EQ(f.close_code, 1001);
    c->send_close(1001);
  }
  stopper.join();
  server.wait();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);  // well within the grace period
  EXPECT_EQ(closed.load(), kClients);
  // After the stop, nothing listens any more.
  EXPECT_THROW(RawClient c(server.port()), std::runtime_error);
}

}  // namespace

// A plain HTTP GET on a fresh socket; returns the whole response (bounded by SO_RCVTIMEO).
std::string http_get(std::uint16_t port, std::string_view path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "connect failed";
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string req = "GET " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// The accept hook sees path, query, headers, origin and offered protocols, and
// either refuses with its own status and reason or accepts with a subprotocol
// and per-session user data that the session carries into on_open.
TEST(ServerInProcess, AcceptHookInspectsRequestAndDecides) {
  std::mutex mu;
  std::vector<std::string> seen;
  conduit::ServerHandlers h;
  h.on_upgrade = [&](const conduit::UpgradeInfo& info) {
    {
      std::lock_guard lock(mu);
      std::string offered;
      for (auto p : info.offered_subprotocols) offered += std::string(p) + ",";
      seen.push_back(std::string(info.path) + "|" + std::string(info.query) + "|" +
                     std::string(info.header("x-api-key")) + "|" + std::string(info.origin) + "|" + offered);
    }
    conduit::UpgradeDecision d;
    if (info.header("X-Api-Key") != "secret") {
      d.accept = false;
      d.status = 401;
      d.reason = "bad api key";
      return d;
    }
    d.subprotocol = "chat.v2";
    d.user_data = std::make_shared<std::string>("user:" + std::string(info.query));
    return d;
  };
  h.on_open = [](conduit::Session& s) {
    auto name = std::static_pointer_cast<std::string>(s.user_data);
    s.send(name ? *name : "no user data");
  };
  conduit::Server server(test_options(1), std::move(h));
  server.start();

  RawClient refused(server.port(), "/rooms/7?who=bob", {"chat.v1"},
                    "X-Api-Key: wrong\r\nOrigin: https://a.example\r\n");
  EXPECT_EQ(refused.status(), "HTTP/1.1 401 Unauthorized");
  EXPECT_NE(refused.read_to_eof().find("bad api key"), std::string::npos);

  RawClient ok(server.port(), "/rooms/7?who=alice", {"chat.v1", "chat.v2"}, "X-Api-Key: secret\r\n");
  EXPECT_EQ(ok.status(), "HTTP/1.1 101 Switching Protocols");
  EXPECT_NE(ok.response().find("Sec-WebSocket-Protocol: chat.v2\r\n"), std::string::npos) << ok.response();
  Frame f = ok.next_data_or_close();
  EXPECT_EQ(f.op, conduit::wire::Opcode::Text);
  EXPECT_EQ(f.payload, "user:who=alice");
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0], "/rooms/7|who=bob|wrong|https://a.example|chat.v1,");
    EXPECT_EQ(seen[1], "/rooms/7|who=alice|secret||chat.v1,chat.v2,");
  }
  std::string m = server.metrics_text();
  EXPECT_NE(m.find("conduit_handshake_failures_total{reason=\"refused\"} 1"), std::string::npos) << m;
  server.stop();
  server.wait();
}

// An exception escaping a handler is the application's failure: the session
// gets close 1011, the error is counted, other sessions are unaffected; an
// exception from the accept hook is answered 500.
TEST(ServerInProcess, HandlerExceptionsBecome1011And500) {
  conduit::ServerHandlers h;
  h.on_upgrade = [](const conduit::UpgradeInfo& info) -> conduit::UpgradeDecision {
    if (info.path == "/throw") throw std::runtime_error("hook failed");
    return {};
  };
  h.on_message = [](conduit::Session& s, std::string_view d, conduit::MessageType t) {
    if (d == "boom") throw std::runtime_error("handler failed");
    s.send(d, t);
  };
  conduit::Server server(test_options(1), std::move(h));
  server.start();

  RawClient a(server.port());
  RawClient b(server.port());
  a.send_text("one");
  EXPECT_EQ(a.next_data_or_close().payload, "one");
  a.send_text("boom");
  Frame f = a.next_data_or_close();
  EXPECT_EQ(f.op, conduit::wire::Opcode::Close);
  EXPECT_EQ(f.close_code, 1011);
  EXPECT_EQ(f.payload, "internal error");
  a.send_close(1011);
  b.send_text("still here");
  EXPECT_EQ(b.next_data_or_close().payload, "still here");

  RawClient hook(server.port(), "/throw");
  EXPECT_EQ(hook.status(), "HTTP/1.1 500 Internal Server Error");

  std::string m = server.metrics_text();
  EXPECT_NE(m.find("conduit_errors_total{kind=\"handler_exception\"} 2"), std::string::npos) << m;
  EXPECT_NE(m.find("conduit_handshake_failures_total{reason=\"hook_error\"} 1"), std::string::npos) << m;
  server.stop();
  server.wait();
}

// ServerOptions::metrics_host: a second listener that serves the HTTP routes
// and refuses WebSocket upgrades; the main port keeps serving them too.
TEST(ServerInProcess, SeparateMetricsListener) {
  conduit::ServerOptions o = test_options(2);
  o.metrics_host = "127.0.0.1";
  o.metrics_port = 0;
  conduit::ServerHandlers h;
  h.on_message = [](conduit::Session& s, std::string_view d, conduit::MessageType t) { s.send(d, t); };
  conduit::Server server(o, std::move(h));
  server.start();
  ASSERT_NE(server.metrics_port(), 0);
  ASSERT_NE(server.metrics_port(), server.port());

  RawClient c(server.port());
  c.send_text("x");
  EXPECT_EQ(c.next_data_or_close().payload, "x");

  std::string m = http_get(server.metrics_port(), "/metrics");
  EXPECT_EQ(m.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << m;
  EXPECT_NE(m.find("conduit_connections_active 1"), std::string::npos) << m;
  EXPECT_EQ(http_get(server.metrics_port(), "/healthz").rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(http_get(server.port(), "/metrics").rfind("HTTP/1.1 200", 0), 0u);

  RawClient upgrade(server.metrics_port());
  EXPECT_EQ(upgrade.status(), "HTTP/1.1 404 Not Found");
  server.stop();
  server.wait();
}
