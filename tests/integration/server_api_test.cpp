// The server's extension API with real sockets on 127.0.0.1: send status
// from loop threads and from other threads, the HTTP route table, end-of-batch
// hooks, posting work onto loops, and groups (fan-out to subscriber sets).
// Label mt: several loops and foreign threads, so the TSan stage runs it.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "conduit/group.hpp"
#include "conduit/server.hpp"
#include "raw_client.hpp"

using namespace std::chrono_literals;
using conduit::SendStatus;
using conduit_test::Frame;
using conduit_test::http_exchange;
using conduit_test::RawClient;
using conduit_test::test_options;
namespace wire = conduit::wire;

namespace {

// Sessions as they open and close, waited for by the test thread.
class SessionLog {
 public:
  void opened(conduit::Session& s) {
    std::lock_guard lock(mu_);
    open_.push_back(s.shared());
    cv_.notify_all();
  }
  void closed(conduit::Session& s) {
    std::lock_guard lock(mu_);
    closed_.insert(s.id());
    cv_.notify_all();
  }
  conduit::SessionPtr wait_open(std::size_t index) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, 10s, [&] { return open_.size() > index; })) throw std::runtime_error("no session opened");
    return open_[index];
  }
  void wait_closed(std::uint64_t id) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, 10s, [&] { return closed_.count(id) > 0; })) throw std::runtime_error("session not closed");
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<conduit::SessionPtr> open_;
  std::set<std::uint64_t> closed_;
};

conduit::ServerHandlers logging_handlers(SessionLog& log) {
  conduit::ServerHandlers h;
  h.on_open = [&log](conduit::Session& s) { log.opened(s); };
  h.on_close = [&log](conduit::Session& s, std::uint16_t, std::string_view) { log.closed(s); };
  return h;
}

std::uint64_t metric(const conduit::Server& server, const std::string& series) {
  const std::string text = server.metrics_text();
  auto pos = text.find("\n" + series + " ");
  if (pos == std::string::npos) throw std::runtime_error("metric not found: " + series);
  return std::stoull(text.substr(pos + series.size() + 2));
}

// ---------------------------------------------------------------- send status

TEST(SendStatus, FromAnotherThreadQueuedThenDroppedAfterClose) {
  SessionLog log;
  conduit::Server server(test_options(2), logging_handlers(log));
  server.start();
  RawClient client(server.port());
  conduit::SessionPtr s = log.wait_open(0);
  EXPECT_EQ(s->send("hello"), SendStatus::Queued);  // the test thread is no loop thread
  Frame f = client.next_data_or_close();
  EXPECT_EQ(f.payload, "hello");
  client.send_close(1000);
  log.wait_closed(s->id());
  EXPECT_EQ(s->send("too late"), SendStatus::Dropped);
  server.stop();
  server.wait();
}

TEST(SendStatus, OnLoopThreadDroppedOnceClosing) {
  std::promise<std::pair<SendStatus, SendStatus>> result;
  conduit::ServerHandlers h;
  h.on_message = [&](conduit::Session& s, std::string_view, conduit::MessageType) {
    SendStatus before = s.send("before close");
    s.close(1000, "bye");
    result.set_value({before, s.send("after close")});
  };
  conduit::Server server(test_options(1), std::move(h));
  server.start();
  RawClient client(server.port());
  client.send_text("go");
  auto statuses = result.get_future().get();
  EXPECT_EQ(statuses.first, SendStatus::Queued);
  EXPECT_EQ(statuses.second, SendStatus::Dropped);
  EXPECT_EQ(client.next_data_or_close().payload, "before close");
  Frame close = client.next_data_or_close();
  EXPECT_EQ(close.op, wire::Opcode::Close);
  EXPECT_EQ(close.close_code, 1000);
  server.stop();
  server.wait();
}

// A client that does not read: another thread sends until the server says
// Dropped (slow_consumer = drop). Every message reported Queued or
// Backpressure must then arrive, in order, and none reported Dropped.
TEST(SendStatus, FromAnotherThreadTellsTheTruthUnderBackpressure) {
  SessionLog log;
  auto options = test_options(2);
  options.send_queue_bytes = 256 * 1024;
  options.slow_consumer = conduit::SlowConsumerPolicy::Drop;
  conduit::Server server(options, logging_handlers(log));
  server.start();
  RawClient client(server.port(), "/", {}, {}, 4096);
  conduit::SessionPtr s = log.wait_open(0);
  const std::string filler(8 * 1024, 'x');
  std::vector<int> accepted;
  bool saw_backpressure = false;
  int dropped_at = -1;
  // Bounded: 64 MiB at most, far above the queue cap plus socket buffers.
  for (int i = 0; i < 8192 && dropped_at < 0; ++i) {
    SendStatus st = s->send(std::to_string(i) + ":" + filler);
    if (st == SendStatus::Dropped) {
      dropped_at = i;
    } else {
      if (st == SendStatus::Backpressure) saw_backpressure = true;
      accepted.push_back(i);
    }
  }
  ASSERT_GE(dropped_at, 0) << "the queue cap never applied";
  EXPECT_TRUE(saw_backpressure) << "no Backpressure before Dropped";
  // The loop applies the policy (and counts the drop) in a task this thread
  // posted; a task posted after it has run means it has run too.
  std::promise<void> barrier;
  ASSERT_TRUE(server.post(s->loop_index(), [&] { barrier.set_value(); }));
  ASSERT_EQ(barrier.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_EQ(metric(server, "conduit_messages_dropped_total"), 1u);
  // Now read everything: exactly the accepted messages, in order.
  for (int expected : accepted) {
    Frame f = client.next_data_or_close();
    ASSERT_EQ(f.op, wire::Opcode::Text);
    ASSERT_EQ(f.payload.substr(0, f.payload.find(':')), std::to_string(expected));
  }
  EXPECT_EQ(s->send("end"), SendStatus::Queued);
  EXPECT_EQ(client.next_data_or_close().payload, "end") << "a message reported Dropped was sent";
  server.stop();
  server.wait();
}

// Sends another thread made before the session's close started go out ahead
// of the close frame, even when the loop has not yet queued them: here the
// loop is held in a task while this thread sends, and that task then closes
// the session on the loop thread.
TEST(SendStatus, AdmittedForeignSendsPrecedeACloseFromTheLoop) {
  SessionLog log;
  conduit::Server server(test_options(2), logging_handlers(log));
  server.start();
  RawClient client(server.port());
  conduit::SessionPtr s = log.wait_open(0);
  std::promise<void> sent;
  std::shared_future<void> sent_f = sent.get_future().share();
  ASSERT_TRUE(server.post(s->loop_index(), [s, sent_f] {
    sent_f.wait_for(10s);
    s->close(4000, "done");
  }));
  for (int i = 0; i < 200; ++i) ASSERT_NE(s->send(std::to_string(i)), SendStatus::Dropped);
  sent.set_value();
  for (int i = 0; i < 200; ++i) {
    Frame f = client.next_data_or_close();
    ASSERT_EQ(f.op, wire::Opcode::Text) << "message " << i << " reported queued was not sent";
    ASSERT_EQ(f.payload, std::to_string(i));
  }
  Frame close = client.next_data_or_close();
  EXPECT_EQ(close.op, wire::Opcode::Close);
  EXPECT_EQ(close.close_code, 4000);
  EXPECT_EQ(s->send("after"), SendStatus::Dropped);
  server.stop();
  server.wait();
}

// ---------------------------------------------------------------- routes

conduit::HttpResponse text(unsigned status, std::string body) { return {status, "text/plain", {}, std::move(body)}; }

class Routes : public ::testing::Test {
 protected:
  void SetUp() override {
    auto options = test_options(2);
    options.max_http_body_bytes = 1000;
    server_ = std::make_unique<conduit::Server>(options, conduit::ServerHandlers{});
    server_->add_route({"POST", "/echo", conduit::PathMatch::Exact, [](const conduit::HttpRequest& r) {
                          return text(200, std::string(r.method) + " " + std::string(r.path) + "?" +
                                               std::string(r.query) + " [" + std::string(r.body) + "] " +
                                               std::string(r.header("X-Test")));
                        }});
    server_->add_route({"GET", "/api/", conduit::PathMatch::Prefix,
                        [](const conduit::HttpRequest& r) { return text(200, "prefix " + std::string(r.path)); }});
    server_->add_route({"GET", "/api/exact", conduit::PathMatch::Exact,
                        [](const conduit::HttpRequest&) { return text(200, "exact"); }});
    server_->add_route({"GET", "/teapot", conduit::PathMatch::Exact, [](const conduit::HttpRequest&) {
                          return conduit::HttpResponse{418, "application/json", {{"X-Kind", "teapot"}}, "{}"};
                        }});
    server_->add_route(
        {"GET", "/throws", conduit::PathMatch::Exact,
         [](const conduit::HttpRequest&) -> conduit::HttpResponse { throw std::runtime_error("boom"); }});
    server_->add_route({"GET", "/healthz", conduit::PathMatch::Exact,
                        [](const conduit::HttpRequest&) { return text(200, "overridden\n"); }});
    // Every method, a head check (key first, then its own 405) and a body cap
    // above the server's 1000.
    conduit::HttpRoute guarded{"*", "/guarded", conduit::PathMatch::Exact, [](const conduit::HttpRequest& r) {
                                 return text(200, std::string(r.method) + " " + std::to_string(r.body.size()) + "/" +
                                                      std::to_string(r.content_length));
                               }};
    guarded.check_head = [this](const conduit::HttpRequest& r) -> std::optional<conduit::HttpResponse> {
      head_checks_++;
      if (!r.body.empty()) return text(500, "the body must not be read yet");
      if (r.header("X-Key") != "k") return conduit::HttpResponse{401, "application/json", {}, "{\"no\":1}"};
      if (r.method == "DELETE") return text(405, "not this one " + std::to_string(r.content_length));
      return std::nullopt;
    };
    guarded.max_body_bytes = 2000;
    server_->add_route(std::move(guarded));
    server_->add_route({"GET", "/guarded", conduit::PathMatch::Exact,
                        [](const conduit::HttpRequest&) { return text(200, "the GET route"); }});
    server_->start();
  }
  void TearDown() override {
    server_->stop();
    server_->wait();
  }
  std::string request(std::vector<std::string> parts) { return http_exchange(server_->port(), parts); }
  static std::string status_line(const std::string& r) { return r.substr(0, r.find("\r\n")); }
  static std::string body(const std::string& r) { return r.substr(r.find("\r\n\r\n") + 4); }
  std::unique_ptr<conduit::Server> server_;
  std::atomic<int> head_checks_{0};
};

TEST_F(Routes, BodyInOneSegmentAndInSeveral) {
  std::string r =
      request({"POST /echo?a=1 HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\nContent-Length: 11\r\n\r\nhello world"});
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_EQ(body(r), "POST /echo?a=1 [hello world] yes");
  // Head split inside a line, body split in three.
  r = request({"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Le", "ngth: 26\r\n\r\nabcdefgh", "ijklmnopq", "rstuvwxyz"});
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_EQ(body(r), "POST /echo? [abcdefghijklmnopqrstuvwxyz] ");
  EXPECT_NE(r.find("Content-Length: " + std::to_string(body(r).size()) + "\r\n"), std::string::npos);
}

TEST_F(Routes, OversizedBodyIs413WithoutReadingIt) {
  const auto before = metric(*server_, "conduit_handshake_failures_total{reason=\"body_too_large\"}");
  std::string r = request({"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n"});
  EXPECT_EQ(status_line(r), "HTTP/1.1 413 Payload Too Large");
  EXPECT_EQ(metric(*server_, "conduit_handshake_failures_total{reason=\"body_too_large\"}"), before + 1);
  // At the cap exactly: accepted.
  r = request({"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + std::string(1000, 'b')});
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
}

TEST_F(Routes, WrongMethodIs405WithAllow) {
  std::string r = request({"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"});
  EXPECT_EQ(status_line(r), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_NE(r.find("\r\nAllow: POST\r\n"), std::string::npos);
  r = request({"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"});
  EXPECT_EQ(status_line(r), "HTTP/1.1 405 Method Not Allowed");
  EXPECT_GE(metric(*server_, "conduit_handshake_failures_total{reason=\"method_not_allowed\"}"), 2u);
}

TEST_F(Routes, ChunkedBodyIs411AndUnknownPathIs404) {
  std::string r =
      request({"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"});
  EXPECT_EQ(status_line(r), "HTTP/1.1 411 Length Required");
  r = request({"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"});
  EXPECT_EQ(status_line(r), "HTTP/1.1 404 Not Found");
}

TEST_F(Routes, ExactBeforePrefixAndCustomStatusAndHeaders) {
  EXPECT_EQ(body(request({"GET /api/exact HTTP/1.1\r\nHost: x\r\n\r\n"})), "exact");
  EXPECT_EQ(body(request({"GET /api/other?q HTTP/1.1\r\nHost: x\r\n\r\n"})), "prefix /api/other");
  std::string r = request({"GET /teapot HTTP/1.1\r\nHost: x\r\n\r\n"});
  EXPECT_EQ(status_line(r), "HTTP/1.1 418 Unknown");
  EXPECT_NE(r.find("\r\nContent-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nX-Kind: teapot\r\n"), std::string::npos);
  EXPECT_EQ(body(request({"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"})), "overridden\n");
  EXPECT_EQ(body(request({"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"})), "ready\n");  // built-ins stay
  r = request({"HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n"});                         // HEAD: GET's head, no body
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_NE(r.find("\r\nContent-Length: 6\r\n"), std::string::npos);
  EXPECT_EQ(body(r), "");
}

TEST_F(Routes, HeadCheckAnswersBeforeTheBodySizeIsJudged) {
  const auto too_large = metric(*server_, "conduit_handshake_failures_total{reason=\"body_too_large\"}");
  // No key and a body over every cap: the head check's 401, and the body is
  // never sent nor read.
  std::string r = request({"POST /guarded HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n"});
  EXPECT_EQ(status_line(r), "HTTP/1.1 401 Unauthorized");
  EXPECT_NE(r.find("\r\nContent-Type: application/json\r\n"), std::string::npos);
  EXPECT_EQ(body(r), "{\"no\":1}");
  // With the key: above the server's 1000 but within the route's 2000.
  r = request(
      {"POST /guarded HTTP/1.1\r\nHost: x\r\nX-Key: k\r\nContent-Length: 1500\r\n\r\n" + std::string(1500, 'x')});
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_EQ(body(r), "POST 1500/1500");
  // Over the route's cap: the server's 413, after the head check passed.
  r = request({"POST /guarded HTTP/1.1\r\nHost: x\r\nX-Key: k\r\nContent-Length: 2001\r\n\r\n"});
  EXPECT_EQ(status_line(r), "HTTP/1.1 413 Payload Too Large");
  EXPECT_EQ(metric(*server_, "conduit_handshake_failures_total{reason=\"body_too_large\"}"), too_large + 1);
  EXPECT_EQ(head_checks_.load(), 3);
}

TEST_F(Routes, StarRouteTakesEveryMethodTheExactOneIsPreferred) {
  std::string r = request({"PUT /guarded HTTP/1.1\r\nHost: x\r\nX-Key: k\r\nContent-Length: 2\r\n\r\nab"});
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");
  EXPECT_EQ(body(r), "PUT 2/2");
  r = request({"DELETE /guarded HTTP/1.1\r\nHost: x\r\nX-Key: k\r\nContent-Length: 3\r\n\r\nabc"});
  EXPECT_EQ(status_line(r), "HTTP/1.1 405 Method Not Allowed");  // the route's own answer
  EXPECT_EQ(body(r), "not this one 3");
  EXPECT_EQ(r.find("\r\nAllow:"), std::string::npos);
  // GET has a route of its own: the "*" route (and its check) is not asked.
  const int checks = head_checks_.load();
  EXPECT_EQ(body(request({"GET /guarded HTTP/1.1\r\nHost: x\r\n\r\n"})), "the GET route");
  EXPECT_EQ(head_checks_.load(), checks);
  // HEAD on the "*" route: the check's answer goes out without its body.
  r = request({"HEAD /guarded HTTP/1.1\r\nHost: x\r\n\r\n"});
  EXPECT_EQ(status_line(r), "HTTP/1.1 200 OK");  // HEAD is GET's: the GET route's head
  EXPECT_EQ(body(r), "");
}

TEST_F(Routes, ThrowingHandlerIs500AndCounted) {
  const auto before = metric(*server_, "conduit_errors_total{kind=\"handler_exception\"}");
  EXPECT_EQ(status_line(request({"GET /throws HTTP/1.1\r\nHost: x\r\n\r\n"})), "HTTP/1.1 500 Internal Server Error");
  EXPECT_EQ(metric(*server_, "conduit_errors_total{kind=\"handler_exception\"}"), before + 1);
}

TEST(RoutesAfterStart, AddingARouteAfterStartThrows) {
  conduit::Server server(test_options(1), {});
  server.start();
  EXPECT_THROW(server.add_route({"GET", "/x", conduit::PathMatch::Exact,
                                 [](const conduit::HttpRequest&) { return conduit::HttpResponse{}; }}),
               std::logic_error);
  server.stop();
  server.wait();
}

// ---------------------------------------------------------------- hooks and posts

// Replies are deferred to the end-of-batch hook, and their output must be
// written in the same batch: a task the hook posts (it runs in the next
// batch, before that batch's end) finds the session's queue already empty.
TEST(EndOfBatchHooks, RunPerLoopAndTheirOutputIsWrittenInTheSameBatch) {
  struct PerLoop {
    std::vector<std::pair<conduit::SessionPtr, std::string>> pending;  // loop thread only
  };
  std::vector<PerLoop> loops(2);
  std::atomic<int> hook_runs{0};
  std::atomic<int> unflushed{0};
  std::atomic<int> checked{0};
  std::vector<std::atomic<std::thread::id>> loop_threads(2);
  std::atomic<bool> wrong_thread{false};
  conduit::Server* srv = nullptr;
  conduit::ServerHandlers h;
  h.on_message = [&](conduit::Session& s, std::string_view d, conduit::MessageType) {
    loop_threads[s.loop_index()].store(std::this_thread::get_id());
    loops[s.loop_index()].pending.push_back({s.shared(), "later:" + std::string(d)});
  };
  conduit::Server server(test_options(2), std::move(h));
  srv = &server;
  // Hooks run in the order added: the first sends the replies, the second counts.
  server.add_end_of_batch_hook([&](unsigned loop) {
    auto id = loop_threads[loop].load();
    if (id != std::thread::id() && id != std::this_thread::get_id()) wrong_thread = true;
    for (auto& [s, reply] : loops[loop].pending) {
      s->send(reply);
      srv->post(loop, [&, s = s] {
        if (s->buffered_amount() != 0) ++unflushed;
        ++checked;
      });
    }
    loops[loop].pending.clear();
  });
  server.add_end_of_batch_hook([&](unsigned) { ++hook_runs; });
  server.start();
  RawClient a(server.port()), b(server.port());  // round robin: one per loop
  for (int i = 0; i < 20; ++i) {
    a.send_text("a" + std::to_string(i));
    b.send_text("b" + std::to_string(i));
    EXPECT_EQ(a.next_data_or_close().payload, "later:a" + std::to_string(i));
    EXPECT_EQ(b.next_data_or_close().payload, "later:b" + std::to_string(i));
  }
  // The checks were posted before the replies left: they have run or will
  // run before the loops stop.
  server.stop();
  server.wait();
  EXPECT_EQ(checked.load(), 40);
  EXPECT_EQ(unflushed.load(), 0) << "a hook's output waited for a later batch";
  EXPECT_FALSE(wrong_thread);
  EXPECT_GT(hook_runs.load(), 0);
  EXPECT_THROW(server.add_end_of_batch_hook([](unsigned) {}), std::logic_error);
}

TEST(Post, RunsOnTheGivenLoopAndOnAll) {
  SessionLog log;
  conduit::Server server(test_options(3), logging_handlers(log));
  ASSERT_EQ(server.loop_count(), 3u);
  server.start();
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(std::make_unique<RawClient>(server.port()));
  std::map<unsigned, conduit::SessionPtr> by_loop;
  for (int i = 0; i < 3; ++i) {
    auto s = log.wait_open(static_cast<std::size_t>(i));
    by_loop[s->loop_index()] = s;
  }
  ASSERT_EQ(by_loop.size(), 3u);
  // A foreign thread (this one, and a second) posts work that sends from the
  // session's own loop: on_loop sends never go through the foreign path.
  std::thread other([&] {
    for (auto& [loop, s] : by_loop) {
      EXPECT_TRUE(server.post(loop, [s = s, loop = loop] { s->send("from loop " + std::to_string(loop)); }));
    }
  });
  other.join();
  for (std::size_t i = 0; i < 3; ++i) {  // sessions open in the clients' order
    const unsigned loop = log.wait_open(i)->loop_index();
    EXPECT_EQ(clients[i]->next_data_or_close().payload, "from loop " + std::to_string(loop));
  }
  std::mutex mu;
  std::condition_variable cv;
  std::set<unsigned> ran;
  ASSERT_TRUE(server.post_to_all_loops([&](unsigned loop) {
    std::lock_guard lock(mu);
    ran.insert(loop);
    cv.notify_all();
  }));
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return ran.size() == 3; }));
  }
  EXPECT_FALSE(server.post(3, [] {}));
  server.stop();
  server.wait();
  EXPECT_FALSE(server.post(0, [] {}));
}

// ---------------------------------------------------------------- groups

TEST(Groups, PublishReachesMembersOnEveryLoopOnly) {
  conduit::Server* srv = nullptr;
  std::unique_ptr<conduit::Group> red, blue;
  SessionLog log;
  conduit::ServerHandlers h = logging_handlers(log);
  // "join:red", "leave:red", "pub:red:text" (published from the loop thread).
  h.on_message = [&](conduit::Session& s, std::string_view d, conduit::MessageType) {
    auto group = [&](std::string_view name) { return name == "red" ? red.get() : blue.get(); };
    if (d.starts_with("join:")) {
      group(d.substr(5))->join(s);
      s.send("joined");
    } else if (d.starts_with("leave:")) {
      group(d.substr(6))->leave(s);
      s.send("left");
    } else if (d.starts_with("pub:")) {
      auto rest = d.substr(4);
      group(rest.substr(0, rest.find(':')))->publish(rest.substr(rest.find(':') + 1));
    }
  };
  conduit::Server server(test_options(2), std::move(h));
  srv = &server;
  red = std::make_unique<conduit::Group>(server);
  blue = std::make_unique<conduit::Group>(server);
  server.start();
  std::vector<std::unique_ptr<RawClient>> c;
  for (int i = 0; i < 4; ++i) c.push_back(std::make_unique<RawClient>(server.port()));  // two per loop
  // 0 and 1 (different loops) in red, 2 in blue, 3 in none.
  for (int i : {0, 1}) {
    c[i]->send_text("join:red");
    ASSERT_EQ(c[i]->next_data_or_close().payload, "joined");
  }
  c[2]->send_text("join:blue");
  ASSERT_EQ(c[2]->next_data_or_close().payload, "joined");
  EXPECT_EQ(red->size(), 2u);
  EXPECT_EQ(blue->size(), 1u);

  red->publish("red from outside");  // a foreign thread
  c[0]->send_text("pub:red:red from loop");
  blue->publish("blue");
  srv->broadcast("everyone");
  for (int i : {0, 1}) {
    std::multiset<std::string> got;
    for (int k = 0; k < 3; ++k) got.insert(c[i]->next_data_or_close().payload);
    EXPECT_EQ(got, (std::multiset<std::string>{"red from outside", "red from loop", "everyone"})) << "client " << i;
  }
  EXPECT_EQ(c[2]->next_data_or_close().payload, "blue");
  EXPECT_EQ(c[2]->next_data_or_close().payload, "everyone");
  EXPECT_EQ(c[3]->next_data_or_close().payload, "everyone");

  // Leaving, and closing, take a session out.
  c[1]->send_text("leave:red");
  ASSERT_EQ(c[1]->next_data_or_close().payload, "left");
  c[0]->send_close(1000);
  ASSERT_EQ(c[0]->next_data_or_close().op, wire::Opcode::Close);
  log.wait_closed(log.wait_open(0)->id());  // sessions open in the clients' order
  EXPECT_EQ(red->size(), 0u);
  red->publish("nobody");
  srv->broadcast("last");
  EXPECT_EQ(c[1]->next_data_or_close().payload, "last") << "a session that left still got the group's message";
  red.reset();  // the handle may go while the server runs
  server.stop();
  server.wait();
}

TEST(Groups, PublishCanLeaveOneMemberOut) {
  conduit::Server* srv = nullptr;
  std::unique_ptr<conduit::Group> room;
  SessionLog log;
  std::vector<conduit::SessionPtr> sessions;
  conduit::ServerHandlers h = logging_handlers(log);
  // "join"; "others:X": X to the room but the sender; "skip1:X": X to the
  // room but client 1 (from this loop); "bcast:X"; "echo:X".
  h.on_message = [&](conduit::Session& s, std::string_view d, conduit::MessageType) {
    if (d == "join") {
      room->join(s);
      s.send("joined");
    } else if (d.starts_with("others:")) {
      room->publish(d.substr(7), conduit::MessageType::Text, &s);
    } else if (d.starts_with("skip1:")) {
      room->publish(d.substr(6), conduit::MessageType::Text, sessions[1].get());
    } else if (d.starts_with("bcast:")) {
      srv->broadcast(d.substr(6));
    } else if (d.starts_with("echo:")) {
      s.send(d.substr(5));
    }
  };
  conduit::Server server(test_options(2), std::move(h));
  srv = &server;
  room = std::make_unique<conduit::Group>(server);
  server.start();
  std::vector<std::unique_ptr<RawClient>> c;
  for (int i = 0; i < 4; ++i) {
    c.push_back(std::make_unique<RawClient>(server.port()));  // loops 0, 1, 0, 1
    sessions.push_back(log.wait_open(static_cast<std::size_t>(i)));
    c[i]->send_text("join");
    ASSERT_EQ(c[i]->next_data_or_close().payload, "joined");
  }
  ASSERT_NE(sessions[0]->loop_index(), sessions[1]->loop_index());
  ASSERT_EQ(sessions[0]->loop_index(), sessions[2]->loop_index());

  // From the sender's loop: the others get it, on both loops; the sender's
  // next message is what it asked for after (its own would have come first).
  c[0]->send_text("others:from 0");
  c[0]->send_text("echo:done");
  EXPECT_EQ(c[0]->next_data_or_close().payload, "done");
  for (int i : {1, 2, 3}) EXPECT_EQ(c[i]->next_data_or_close().payload, "from 0") << "client " << i;

  // From another loop than the one left out (its run crosses loops).
  c[2]->send_text("skip1:from 2");
  c[2]->send_text("bcast:marker 2");
  EXPECT_EQ(c[1]->next_data_or_close().payload, "marker 2");
  for (int i : {0, 2, 3}) {
    EXPECT_EQ(c[i]->next_data_or_close().payload, "from 2") << "client " << i;
    EXPECT_EQ(c[i]->next_data_or_close().payload, "marker 2") << "client " << i;
  }

  // From a thread that is none of the loops.
  room->publish("from outside", conduit::MessageType::Text, sessions[3].get());
  srv->broadcast("marker 3");
  EXPECT_EQ(c[3]->next_data_or_close().payload, "marker 3");
  for (int i : {0, 1, 2}) {
    EXPECT_EQ(c[i]->next_data_or_close().payload, "from outside") << "client " << i;
    EXPECT_EQ(c[i]->next_data_or_close().payload, "marker 3") << "client " << i;
  }
  sessions.clear();
  server.stop();
  server.wait();
}

}  // namespace
