// conduit::Client against real servers on loopback: Python websockets, Node ws,
// conduitd, and raw servers for the answers no correct server gives. Servers
// are child processes started here on kernel-chosen ports; every wait is on an
// event with a deadline.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "child_process.hpp"
#include "conduit/client.hpp"
#include "conduit/client_coro.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using conduit::Client;
using conduit::ClientError;
using conduit::ClientState;
using conduit::MessageType;
using conduit_test::ChildProcess;

const std::string python = CONDUIT_TEST_PYTHON;
const std::string node = CONDUIT_TEST_NODE;
const std::string test_dir = CONDUIT_CLIENT_TEST_DIR;
const std::string conduitd = CONDUIT_TEST_CONDUITD;

std::vector<std::string> python_server(std::vector<std::string> args) {
  std::vector<std::string> argv{python, test_dir + "/servers.py"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// Everything a client reported, with a condition variable to wait on.
struct Recorder {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<MessageType, std::string>> messages;
  std::vector<conduit::ClientFailure> errors;
  std::vector<conduit::ClientStateEvent> states;
  std::vector<Clock::time_point> state_times;
  std::vector<Clock::time_point> error_times;
  int opens = 0;
  std::string subprotocol;

  conduit::ClientHandlers handlers(bool with_messages = true) {
    conduit::ClientHandlers h;
    h.on_open = [this](const std::string& sp) {
      std::lock_guard lock(mu);
      ++opens;
      subprotocol = sp;
      cv.notify_all();
    };
    if (with_messages) {
      h.on_message = [this](std::string_view data, MessageType type) {
        std::lock_guard lock(mu);
        messages.emplace_back(type, std::string(data));
        cv.notify_all();
      };
    }
    h.on_error = [this](const conduit::ClientFailure& f) {
      std::lock_guard lock(mu);
      errors.push_back(f);
      error_times.push_back(Clock::now());
      cv.notify_all();
    };
    h.on_state = [this](const conduit::ClientStateEvent& e) {
      std::lock_guard lock(mu);
      states.push_back(e);
      state_times.push_back(Clock::now());
      cv.notify_all();
    };
    return h;
  }

  template <class Pred>
  bool wait_for(Pred pred, std::chrono::milliseconds timeout = 15s) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, pred);
  }
  std::size_t count_state(ClientState s) {
    return static_cast<std::size_t>(
        std::count_if(states.begin(), states.end(), [s](const auto& e) { return e.state == s; }));
  }
};

std::string url_for(int port, const std::string& host = "127.0.0.1", const std::string& scheme = "ws") {
  return scheme + "://" + host + ":" + std::to_string(port) + "/";
}

void expect_echo(Client& client, Recorder& rec) {
  ASSERT_FALSE(client.send("hello"));
  const std::string binary("\x00\x01\xff\x80", 4);
  ASSERT_FALSE(client.send(binary, MessageType::Binary));
  const std::string large(300000, 'L');
  ASSERT_FALSE(client.send(large));
  ASSERT_TRUE(rec.wait_for([&] { return rec.messages.size() >= 3; }));
  std::lock_guard lock(rec.mu);
  EXPECT_EQ(rec.messages[0], std::make_pair(MessageType::Text, std::string("hello")));
  EXPECT_EQ(rec.messages[1], std::make_pair(MessageType::Binary, binary));
  EXPECT_EQ(rec.messages[2], std::make_pair(MessageType::Text, large));
}

void close_and_wait(Client& client) {
  client.close();
  ASSERT_TRUE(client.wait(10s));
  EXPECT_EQ(client.state(), ClientState::Closed);
  EXPECT_FALSE(client.final_error());
}

TEST(ClientEcho, PythonWebsockets) {
  ChildProcess server(python_server({"echo"}));
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  Client client(url_for(port) + "some/path?q=1", {}, rec.handlers());
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }));
  expect_echo(client, rec);
  close_and_wait(client);
}

TEST(ClientEcho, NodeWs) {
  ChildProcess server({node, test_dir + "/node_echo_server.js"});
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  Client client(url_for(port), {}, rec.handlers());
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }));
  expect_echo(client, rec);
  close_and_wait(client);
}

TEST(ClientEcho, Conduitd) {
  ChildProcess server(
      {conduitd, "--listen", "127.0.0.1:0", "--mode", "echo", "--set", "limits.max_message_bytes=1048576"});
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  Client client(url_for(port), {}, rec.handlers());
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }));
  expect_echo(client, rec);
  close_and_wait(client);
  EXPECT_EQ(server.stop(), 0) << "conduitd must drain and exit 0 on SIGTERM";
}

// Whether this machine has an IPv6 loopback: ::1 can be bound.
bool have_ipv6_loopback() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

TEST(ClientEcho, Ipv6Loopback) {
  // Skipped only where ::1 really is absent; a server that fails to start on a
  // machine that has it is a failure.
  if (!have_ipv6_loopback()) GTEST_SKIP() << "no IPv6 loopback on this machine (::1 cannot be bound)";
  ChildProcess server(python_server({"echo", "--host", "::1"}));
  const int port = server.start();
  ASSERT_GT(port, 0) << "the IPv6 echo server did not start although ::1 can be bound";
  Recorder rec;
  Client client("ws://[::1]:" + std::to_string(port) + "/v6", {}, rec.handlers());
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }));
  expect_echo(client, rec);
  close_and_wait(client);
}

TEST(ClientEcho, SubprotocolSelected) {
  ChildProcess server(python_server({"echo", "--subprotocol", "chat.v2"}));
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  conduit::ClientOptions options;
  options.subprotocols = {"chat.v1", "chat.v2"};
  Client client(url_for(port), options, rec.handlers());
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }));
  EXPECT_EQ(client.subprotocol(), "chat.v2");
  close_and_wait(client);
}

// ClientOptions::compression: permessage-deflate offered and used with
// independent servers; the handshake texts come from on_handshake.
struct HandshakeText {
  std::mutex mu;
  std::string request;
  std::string response;
  void attach(conduit::ClientHandlers& h) {
    h.on_handshake = [this](std::string_view req, std::string_view resp) {
      std::lock_guard lock(mu);
      request = req;
      response = resp;
    };
  }
};

TEST(ClientCompression, NodeWsPerMessageDeflate) {
  ChildProcess server({node, test_dir + "/node_echo_server.js", "--deflate"});
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  HandshakeText text;
  conduit::ClientHandlers handlers = rec.handlers();
  text.attach(handlers);
  conduit::ClientOptions options;
  options.compression = true;
  Client client(url_for(port), options, std::move(handlers));
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }));
  {
    std::lock_guard lock(text.mu);
    EXPECT_NE(text.request.find("Sec-WebSocket-Extensions: permessage-deflate"), std::string::npos) << text.request;
    EXPECT_NE(text.response.find("permessage-deflate"), std::string::npos) << text.response;
  }
  expect_echo(client, rec);  // the server compresses every echo: the client inflates them
  // What we sent (300 kB of one letter among them) reached the server compressed.
  ASSERT_FALSE(client.send("bytes-read?"));
  ASSERT_TRUE(rec.wait_for([&] { return rec.messages.size() >= 4; }));
  {
    std::lock_guard lock(rec.mu);
    EXPECT_LT(std::stoul(rec.messages[3].second), 20000u) << "server read " << rec.messages[3].second << " bytes";
  }
  close_and_wait(client);
}

TEST(ClientCompression, ConduitdPerMessageDeflate) {
  ChildProcess server({conduitd, "--listen", "127.0.0.1:0", "--mode", "echo", "--set",
                       "limits.max_message_bytes=1048576", "--set", "compression.enabled=true"});
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  HandshakeText text;
  conduit::ClientHandlers handlers = rec.handlers();
  text.attach(handlers);
  conduit::ClientOptions options;
  options.compression = true;
  Client client(url_for(port), options, std::move(handlers));
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }));
  {
    std::lock_guard lock(text.mu);
    EXPECT_NE(text.response.find("Sec-WebSocket-Extensions: permessage-deflate"), std::string::npos) << text.response;
  }
  expect_echo(client, rec);
  close_and_wait(client);
}

TEST(ClientCompression, OffByDefault) {
  ChildProcess server({node, test_dir + "/node_echo_server.js", "--deflate"});
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  HandshakeText text;
  conduit::ClientHandlers handlers = rec.handlers();
  text.attach(handlers);
  Client client(url_for(port), {}, std::move(handlers));
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }));
  {
    std::lock_guard lock(text.mu);
    EXPECT_EQ(text.request.find("Sec-WebSocket-Extensions"), std::string::npos) << text.request;
    EXPECT_EQ(text.response.find("Sec-WebSocket-Extensions"), std::string::npos) << text.response;
  }
  expect_echo(client, rec);
  close_and_wait(client);
}

// max_message_bytes applies to the inflated size: a small compressed frame
// that inflates past it is refused with 1009 (decompression bomb).
TEST(ClientCompression, InflatedSizeLimited) {
  ChildProcess server({node, test_dir + "/node_echo_server.js", "--deflate"});
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  conduit::ClientOptions options;
  options.compression = true;
  options.max_message_bytes = 1000;
  options.reconnect.enabled = false;
  Client client(url_for(port), options, rec.handlers());
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }));
  ASSERT_FALSE(client.send(std::string(5000, 'x')));  // ~30 bytes on the wire each way
  ASSERT_TRUE(client.wait(15s));
  EXPECT_EQ(client.final_error(), ClientError::message_too_big);
  std::lock_guard lock(rec.mu);
  EXPECT_TRUE(rec.messages.empty());
  ASSERT_FALSE(rec.errors.empty());
  EXPECT_EQ(rec.errors[0].close_code, 1009);
}

// The coroutine interface: co_await client.read() in an asio::awaitable.
TEST(ClientEcho, CoroutineRead) {
  ChildProcess server(python_server({"echo"}));
  const int port = server.start();
  ASSERT_GT(port, 0);
  boost::asio::io_context ctx;
  Recorder rec;
  Client client(ctx, url_for(port), {}, rec.handlers(/*with_messages=*/false));
  client.start();
  std::vector<std::string> received;
  std::error_code end;
  boost::asio::co_spawn(
      ctx,
      [&]() -> boost::asio::awaitable<void> {
        for (int i = 0; i < 3; ++i) client.send("m" + std::to_string(i));
        for (;;) {
          auto [ec, msg] = co_await client.read();
          if (ec) {
            end = ec;
            co_return;
          }
          received.push_back(msg.data);
          if (received.size() == 3) client.close();
        }
      },
      boost::asio::detached);
  std::thread runner([&] { ctx.run_for(20s); });
  ASSERT_TRUE(client.wait(20s));
  runner.join();
  EXPECT_EQ(received, (std::vector<std::string>{"m0", "m1", "m2"}));
  EXPECT_EQ(end, ClientError::not_open);
}

TEST(ClientHandshake, RejectedWithStatusAndBody) {
  ChildProcess server(python_server({"reject", "--status", "403", "--body", "origin not allowed"}));
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  conduit::ClientOptions options;
  options.reconnect.enabled = false;
  Client client(url_for(port), options, rec.handlers());
  client.start();
  ASSERT_TRUE(client.wait(15s));
  std::lock_guard lock(rec.mu);
  ASSERT_EQ(rec.errors.size(), 1u);
  EXPECT_EQ(rec.errors[0].code, ClientError::handshake_rejected);
  EXPECT_EQ(rec.errors[0].http_status, 403u);
  EXPECT_EQ(rec.errors[0].http_body, "origin not allowed");
  EXPECT_EQ(client.final_error(), ClientError::handshake_rejected);
}

TEST(ClientHandshake, BadAcceptKey) {
  ChildProcess server(python_server({"bad-accept"}));
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  conduit::ClientOptions options;
  options.reconnect.enabled = false;
  Client client(url_for(port), options, rec.handlers());
  client.start();
  ASSERT_TRUE(client.wait(15s));
  EXPECT_EQ(client.final_error(), ClientError::bad_accept_key);
  std::lock_guard lock(rec.mu);
  EXPECT_EQ(rec.opens, 0);
}

TEST(ClientHandshake, UnexpectedSubprotocol) {
  ChildProcess server(python_server({"bad-subprotocol"}));
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  conduit::ClientOptions options;
  options.reconnect.enabled = false;
  options.subprotocols = {"chat"};
  Client client(url_for(port), options, rec.handlers());
  client.start();
  ASSERT_TRUE(client.wait(15s));
  EXPECT_EQ(client.final_error(), ClientError::unexpected_subprotocol);
  std::lock_guard lock(rec.mu);
  ASSERT_EQ(rec.errors.size(), 1u);
  EXPECT_EQ(rec.errors[0].subprotocol, "never-offered");
}

TEST(ClientHandshake, ConnectionRefusedIsTyped) {
  // Bind and close a port so nothing listens on it.
  boost::asio::io_context ctx;
  boost::asio::ip::tcp::acceptor acceptor(ctx, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const int port = acceptor.local_endpoint().port();
  acceptor.close();
  conduit::ClientOptions options;
  options.reconnect.enabled = false;
  Client client(url_for(port), options);
  client.start();
  ASSERT_TRUE(client.wait(15s));
  EXPECT_EQ(client.final_error(), ClientError::connection_refused);
}

TEST(ClientHandshake, InvalidUrlThrows) {
  EXPECT_THROW(Client("http://example.com/"), std::system_error);
  EXPECT_THROW(Client("ws://[::1/"), std::system_error);
  EXPECT_THROW(Client("ws://host:99999/"), std::system_error);
  EXPECT_THROW(Client("ws://host/#fragment"), std::system_error);
}

TEST(ClientReconnect, RetryAfterHonoured) {
  ChildProcess server(python_server({"reject", "--status", "503", "--retry-after", "2", "--reject-count", "1"}));
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  conduit::ClientOptions options;
  options.reconnect.initial_delay = 50ms;  // without Retry-After it would retry within 50 ms
  Client client(url_for(port), options, rec.handlers());
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }, 20s));
  {
    std::lock_guard lock(rec.mu);
    ASSERT_FALSE(rec.errors.empty());
    EXPECT_EQ(rec.errors[0].code, ClientError::handshake_rejected);
    EXPECT_EQ(rec.errors[0].http_status, 503u);
    auto reconnecting = std::find_if(rec.states.begin(), rec.states.end(),
                                     [](const auto& e) { return e.state == ClientState::Reconnecting; });
    ASSERT_NE(reconnecting, rec.states.end());
    EXPECT_GE(reconnecting->delay, 2000ms);
    // The second Connecting came at least 2 s after the 503.
    std::vector<Clock::time_point> connecting;
    for (std::size_t i = 0; i < rec.states.size(); ++i) {
      if (rec.states[i].state == ClientState::Connecting) connecting.push_back(rec.state_times[i]);
    }
    ASSERT_GE(connecting.size(), 2u);
    EXPECT_GE(connecting[1] - rec.error_times[0], 2000ms);
  }
  close_and_wait(client);
}

// Retry-After as an HTTP-date, counted from the response's Date header.
TEST(ClientReconnect, RetryAfterHttpDateHonoured) {
  ChildProcess server(
      python_server({"reject", "--status", "503", "--retry-after-date-in", "2", "--reject-count", "1"}));
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  conduit::ClientOptions options;
  options.reconnect.initial_delay = 50ms;  // without Retry-After it would retry within 50 ms
  Client client(url_for(port), options, rec.handlers());
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }, 20s));
  {
    std::lock_guard lock(rec.mu);
    ASSERT_FALSE(rec.errors.empty());
    EXPECT_EQ(rec.errors[0].http_status, 503u);
    EXPECT_NE(rec.errors[0].detail.find("Retry-After 2000 ms"), std::string::npos) << rec.errors[0].detail;
    auto reconnecting = std::find_if(rec.states.begin(), rec.states.end(),
                                     [](const auto& e) { return e.state == ClientState::Reconnecting; });
    ASSERT_NE(reconnecting, rec.states.end());
    // Date and Retry-After are 2 s apart; the jittered backoff (at most 50 ms) is below it.
    EXPECT_EQ(reconnecting->delay, 2000ms);
  }
  close_and_wait(client);
}

TEST(ClientReconnect, CloseTryAgainLaterWaitsForHint) {
  ChildProcess server(python_server({"close-after", "--close-code", "1013", "--close-reason", "retry after 1"}));
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  conduit::ClientOptions options;
  options.reconnect.initial_delay = 10ms;
  Client client(url_for(port), options, rec.handlers());
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.count_state(ClientState::Reconnecting) >= 1; }));
  {
    std::lock_guard lock(rec.mu);
    auto reconnecting = std::find_if(rec.states.begin(), rec.states.end(),
                                     [](const auto& e) { return e.state == ClientState::Reconnecting; });
    EXPECT_GE(reconnecting->delay, 1000ms);
    EXPECT_EQ(reconnecting->error, ClientError::closed_by_server);
  }
  client.close();
  ASSERT_TRUE(client.wait(10s));
}

// Server killed and restarted on the same port: the client comes back within
// the backoff bound; the attempt counter grows while connections do not stay
// up for healthy_after, and resets once one does.
TEST(ClientReconnect, ServerRestartBackoffAndHealthyReset) {
  ChildProcess first(python_server({"echo"}));
  const int port = first.start();
  ASSERT_GT(port, 0);
  const std::string port_text = std::to_string(port);
  Recorder rec;
  conduit::ClientOptions options;
  options.reconnect.initial_delay = 100ms;
  options.reconnect.max_delay = 1600ms;
  options.reconnect.healthy_after = 1500ms;
  Client client(url_for(port), options, rec.handlers());
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }));

  first.kill_and_wait(SIGKILL);
  // Several failed attempts while it is down.
  ASSERT_TRUE(rec.wait_for([&] { return client.attempt() >= 4; }, 20s));
  ChildProcess second(python_server({"echo", "--port", port_text}));
  ASSERT_EQ(second.start(), port);
  const auto back_at = Clock::now();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 2; }, 20s));
  const auto reopened_after = Clock::now() - back_at;
  {
    std::lock_guard lock(rec.mu);
    // Every Reconnecting delay stays inside its full-jitter window.
    for (const auto& e : rec.states) {
      if (e.state != ClientState::Reconnecting) continue;
      const auto window = std::min<long long>(1600, 100LL << std::min(e.attempt - 1, 20u));
      EXPECT_LE(e.delay.count(), window) << "attempt " << e.attempt;
    }
  }
  // The wait pending when the server came back is at most one max_delay window.
  EXPECT_LE(reopened_after, 1600ms + 1000ms);
  const unsigned attempts_before = client.attempt();
  EXPECT_GE(attempts_before, 4u);  // not reset by the bare reconnect

  // Dropped again before healthy_after: the counter keeps growing.
  second.kill_and_wait(SIGKILL);
  ASSERT_TRUE(rec.wait_for([&] { return client.attempt() > attempts_before; }, 20s));
  ChildProcess third(python_server({"echo", "--port", port_text}));
  ASSERT_EQ(third.start(), port);
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 3; }, 20s));
  EXPECT_GT(client.attempt(), attempts_before);

  // Stays up past healthy_after: the next loss starts again from attempt 1.
  std::this_thread::sleep_for(options.reconnect.healthy_after + 300ms);  // the healthy period under test
  std::size_t reconnects_before;
  {
    std::lock_guard lock(rec.mu);
    reconnects_before = rec.count_state(ClientState::Reconnecting);
  }
  third.kill_and_wait(SIGKILL);
  ASSERT_TRUE(rec.wait_for([&] { return rec.count_state(ClientState::Reconnecting) > reconnects_before; }));
  {
    std::lock_guard lock(rec.mu);
    auto last = std::find_if(rec.states.rbegin(), rec.states.rend(),
                             [](const auto& e) { return e.state == ClientState::Reconnecting; });
    EXPECT_EQ(last->attempt, 1u);
    EXPECT_LE(last->delay, 100ms);
  }
  client.close();
  ASSERT_TRUE(client.wait(10s));
}

TEST(ClientReconnect, OfflineQueueDeliveredInOrder) {
  ChildProcess first(python_server({"echo"}));
  const int port = first.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  conduit::ClientOptions options;
  options.reconnect.initial_delay = 100ms;
  options.reconnect.max_delay = 400ms;
  options.offline_queue_bytes = 4096;
  Client client(url_for(port), options, rec.handlers());
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }));
  first.kill_and_wait(SIGKILL);
  ASSERT_TRUE(rec.wait_for([&] { return rec.count_state(ClientState::Reconnecting) >= 1; }));
  for (int i = 0; i < 200; ++i) ASSERT_FALSE(client.send("msg-" + std::to_string(i))) << i;
  // Bounded: what does not fit is refused, not silently dropped.
  EXPECT_EQ(client.send(std::string(4096, 'x')), ClientError::offline_queue_full);
  ChildProcess second(python_server({"echo", "--port", std::to_string(port)}));
  ASSERT_EQ(second.start(), port);
  ASSERT_TRUE(rec.wait_for([&] { return rec.messages.size() >= 200; }, 20s));
  {
    std::lock_guard lock(rec.mu);
    ASSERT_EQ(rec.messages.size(), 200u);
    for (int i = 0; i < 200; ++i) EXPECT_EQ(rec.messages[i].second, "msg-" + std::to_string(i));
  }
  close_and_wait(client);
}

TEST(ClientReconnect, OfflineQueueZeroRejects) {
  conduit::ClientOptions options;
  options.offline_queue_bytes = 0;
  Client client("ws://127.0.0.1:9/", options);
  EXPECT_EQ(client.send("x"), ClientError::offline_queue_full);
}

// A TCP proxy that can silently stop forwarding while keeping both sockets
// open: what a NAT eviction looks like to the endpoints.
class BlackholeProxy {
 public:
  explicit BlackholeProxy(int upstream_port)
      : acceptor_(ctx_, {boost::asio::ip::make_address("127.0.0.1"), 0}), upstream_port_(upstream_port) {
    accept();
    thread_ = std::thread([this] { ctx_.run(); });
  }
  ~BlackholeProxy() {
    ctx_.stop();
    thread_.join();
  }
  int port() const { return acceptor_.local_endpoint().port(); }
  void set_blackhole(bool on) { blackhole_.store(on); }
  // Reads forwarded from the client to the server: after the last data
  // message, each one is a heartbeat frame (a ping, or a pong).
  int upstream_reads() const { return upstream_reads_.load(); }

 private:
  using tcp = boost::asio::ip::tcp;
  struct Pair {
    explicit Pair(boost::asio::io_context& ctx) : client(ctx), server(ctx) {}
    tcp::socket client, server;
    std::array<char, 16384> up{}, down{};
  };

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      auto pair = std::make_shared<Pair>(ctx_);
      pair->client = std::move(s);
      pair->server.async_connect(
          {boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(upstream_port_)},
          [this, pair](boost::system::error_code cec) {
            if (cec) return;
            pump(pair, pair->client, pair->server, pair->up);
            pump(pair, pair->server, pair->client, pair->down);
          });
      accept();
    });
  }

  void pump(std::shared_ptr<Pair> pair, tcp::socket& from, tcp::socket& to, std::array<char, 16384>& buf) {
    from.async_read_some(
        boost::asio::buffer(buf), [this, pair, &from, &to, &buf](boost::system::error_code ec, std::size_t n) {
          if (ec) return;
          if (&from == &pair->client) upstream_reads_.fetch_add(1);
          if (blackhole_.load()) {  // swallow: no RST, no FIN, nothing
            pump(pair, from, to, buf);
            return;
          }
          boost::asio::async_write(to, boost::asio::buffer(buf.data(), n),
                                   [this, pair, &from, &to, &buf](boost::system::error_code wec, std::size_t) {
                                     if (!wec) pump(pair, from, to, buf);
                                   });
        });
  }

  boost::asio::io_context ctx_;
  tcp::acceptor acceptor_;
  int upstream_port_;
  std::atomic<bool> blackhole_{false};
  std::atomic<int> upstream_reads_{0};
  std::thread thread_;
};

TEST(ClientHeartbeat, PongTimeoutThroughSilentProxy) {
  ChildProcess server(python_server({"echo"}));
  const int port = server.start();
  ASSERT_GT(port, 0);
  BlackholeProxy proxy(port);
  Recorder rec;
  conduit::ClientOptions options;
  options.ping_interval = 200ms;
  options.pong_timeout = 300ms;
  options.reconnect.initial_delay = 50ms;
  Client client(url_for(proxy.port()), options, rec.handlers());
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }));
  ASSERT_FALSE(client.send("alive"));
  ASSERT_TRUE(rec.wait_for([&] { return !rec.messages.empty(); }));
  // Pings are answered while the path works: no error over several intervals.
  // The event: three more client->server reads at the proxy (nothing else is
  // sent now, so each is a ping), i.e. three ping intervals have passed.
  const int reads_before = proxy.upstream_reads();
  const auto deadline = Clock::now() + 15s;
  while (proxy.upstream_reads() < reads_before + 3 && Clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);  // polling an atomic counter set by the proxy thread
  }
  ASSERT_GE(proxy.upstream_reads(), reads_before + 3) << "the client sent no pings";
  {
    std::lock_guard lock(rec.mu);
    EXPECT_TRUE(rec.errors.empty()) << "error while pings were answered: " << rec.errors[0].code.message();
    EXPECT_EQ(rec.opens, 1);
  }
  proxy.set_blackhole(true);
  const auto silenced_at = Clock::now();
  ASSERT_TRUE(rec.wait_for([&] {
    return std::any_of(rec.errors.begin(), rec.errors.end(),
                       [](const auto& f) { return f.code == ClientError::pong_timeout; });
  }));
  // Detected within one ping interval plus the pong timeout (plus scheduling slack).
  EXPECT_LE(Clock::now() - silenced_at, 200ms + 300ms + 700ms);
  {
    std::lock_guard lock(rec.mu);
    EXPECT_EQ(rec.opens, 1);
  }
  // ... and the client reconnects once the path works again.
  proxy.set_blackhole(false);
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens >= 2; }));
  close_and_wait(client);
}

// "No frame at all (pong or anything else) within pong_timeout": a server that
// never answers pings but keeps sending data is alive. Shown to fail with
// --period-ms 1000 (data slower than pong_timeout): pong_timeout is reported.
TEST(ClientHeartbeat, AnyFrameCountsAsLiveness) {
  ChildProcess server(python_server({"chatty", "--period-ms", "50"}));
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  conduit::ClientOptions options;
  options.ping_interval = 100ms;
  options.pong_timeout = 300ms;
  Client client(url_for(port), options, rec.handlers());
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }));
  // 30 ticks at 50 ms: about 15 ping intervals, none of them ever answered by a pong.
  ASSERT_TRUE(rec.wait_for([&] { return rec.messages.size() >= 30 || !rec.errors.empty(); }, 30s));
  {
    std::lock_guard lock(rec.mu);
    EXPECT_TRUE(rec.errors.empty()) << "data frames must count as liveness; got: " << rec.errors[0].message();
    EXPECT_GE(rec.messages.size(), 30u);
    EXPECT_EQ(rec.opens, 1);
  }
  close_and_wait(client);
}

// A free port nothing listens on (bound, then closed: connecting gets RST).
int refused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(ClientReconnect, MaxAttemptsReached) {
  const int port = refused_port();
  ASSERT_GT(port, 0);
  Recorder rec;
  conduit::ClientOptions options;
  options.reconnect.initial_delay = 10ms;
  options.reconnect.max_delay = 50ms;
  options.reconnect.max_attempts = 3;
  Client client(url_for(port), options, rec.handlers());
  client.start();
  ASSERT_TRUE(client.wait(20s)) << "the client must give up after max_attempts";
  EXPECT_EQ(client.state(), ClientState::Closed);
  EXPECT_EQ(client.final_error(), ClientError::max_attempts_reached);
  std::lock_guard lock(rec.mu);
  EXPECT_EQ(rec.opens, 0);
  // The first connection, then max_attempts reconnects, each refused; then the
  // final max_attempts_reached, once.
  ASSERT_EQ(rec.errors.size(), 1u + 3u + 1u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(rec.errors[i].code, ClientError::connection_refused) << i;
  EXPECT_EQ(rec.errors[4].code, ClientError::max_attempts_reached) << rec.errors[4].message();
}

// The kernel drops SYNs for a listener whose accept queue is full: what a
// firewall that drops packets looks like to a connecting client.
TEST(ClientReconnect, ConnectTimeout) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ASSERT_EQ(::listen(listener, 0), 0);  // never accepted: the queue fills with the fillers below
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    const int f = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(f, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fillers.push_back(f);
  }
  Recorder rec;
  conduit::ClientOptions options;
  options.connect_timeout = 300ms;
  options.reconnect.max_attempts = 1;
  Client client(url_for(ntohs(addr.sin_port)), options, rec.handlers());
  const auto started = Clock::now();
  client.start();
  ASSERT_TRUE(client.wait(20s));
  const auto took = Clock::now() - started;
  {
    std::lock_guard lock(rec.mu);
    // The first connection and one reconnect (max_attempts = 1) time out, then the client gives up.
    ASSERT_EQ(rec.errors.size(), 3u);
    EXPECT_EQ(rec.errors[0].code, ClientError::connect_timeout) << rec.errors[0].message();
    EXPECT_EQ(rec.errors[1].code, ClientError::connect_timeout) << rec.errors[1].message();
    EXPECT_EQ(rec.errors[2].code, ClientError::max_attempts_reached) << rec.errors[2].message();
  }
  EXPECT_EQ(client.final_error(), ClientError::max_attempts_reached);
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 10s);
  for (int f : fillers) ::close(f);
  ::close(listener);
}

// send() while open beyond send_queue_bytes accepted and not yet written fails
// with send_queue_full, and the message is not queued.
TEST(ClientEcho, SendQueueFull) {
  ChildProcess server(python_server({"no-read", "--rcvbuf", "4096"}));
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  conduit::ClientOptions options;
  options.send_queue_bytes = 256 * 1024;
  options.ping_interval = 0ms;
  Client client(url_for(port), options, rec.handlers());
  client.start();
  ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1; }));
  const std::string chunk(64 * 1024, 'q');
  std::error_code result;
  std::size_t accepted = 0;
  const auto deadline = Clock::now() + 30s;
  // Bounded: the server never reads, so socket buffers and then the queue fill up.
  while (accepted < 4096 && Clock::now() < deadline) {
    result = client.send(chunk);
    if (result) break;
    ++accepted;
    if (accepted % 16 == 0) std::this_thread::sleep_for(5ms);  // lets the I/O thread hand bytes to the socket
  }
  EXPECT_EQ(result, ClientError::send_queue_full) << "after " << accepted << " messages accepted";
  EXPECT_GT(accepted, 0u);
  client.close();
  client.wait(10s);
}

// ---- rollout ---------------------------------------------------------------------------

// A raw WebSocket connection that completes the upgrade and then never reads nor
// answers: during a drain it keeps conduitd waiting for its close (close_timeout).
int open_unresponsive_websocket(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return -1;
  const std::string request =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) return -1;
  std::string head;
  const auto deadline = Clock::now() + 15s;
  while (head.find("\r\n\r\n") == std::string::npos && Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char c;
    if (::read(fd, &c, 1) != 1) break;  // byte by byte: nothing past the head is consumed
    head += c;
  }
  if (head.rfind("HTTP/1.1 101", 0) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// End-to-end rollout: conduitd is told to stop; every client gets close 1001;
// while it drains (held open by a peer that never answers its close) a new
// upgrade gets conduitd's own 503 with Retry-After, and the client waits at
// least that long; the clients' reconnect delays are jittered; once conduitd
// is restarted on the same port every client is back.
TEST(ClientRollout, DrainRetryAfterAndJitteredReconnect) {
  constexpr int clients_count = 20;
  const std::vector<std::string> base{conduitd,
                                      "--mode",
                                      "echo",
                                      "--set",
                                      "server.close_timeout=5s",
                                      "--set",
                                      "server.shutdown_grace=10s",
                                      "--set",
                                      "server.retry_after=1"};
  auto with_listen = [&](const std::string& listen) {
    std::vector<std::string> argv = base;
    argv.insert(argv.begin() + 1, {"--listen", listen});
    return argv;
  };
  auto first = std::make_unique<ChildProcess>(with_listen("127.0.0.1:0"));
  const int port = first->start();
  ASSERT_GT(port, 0);

  boost::asio::io_context ctx;  // all clients share one I/O thread
  auto guard = boost::asio::make_work_guard(ctx);
  std::thread io([&] { ctx.run(); });

  conduit::ClientOptions options;
  options.ping_interval = 0ms;
  options.reconnect.initial_delay = 400ms;
  options.reconnect.max_delay = 3000ms;
  std::vector<std::unique_ptr<Recorder>> recs;
  std::vector<std::unique_ptr<Client>> clients;
  std::mutex mu;
  std::condition_variable cv;
  int closes_1001 = 0;
  for (int i = 0; i < clients_count; ++i) {
    recs.push_back(std::make_unique<Recorder>());
    auto h = recs.back()->handlers();
    h.on_close = [&](std::uint16_t code, std::string_view, bool by_server) {
      std::lock_guard lock(mu);
      if (code == 1001 && by_server) ++closes_1001;
      cv.notify_all();
    };
    clients.push_back(std::make_unique<Client>(ctx, url_for(port), options, h));
    clients.back()->start();
  }
  for (auto& r : recs) ASSERT_TRUE(r->wait_for([&] { return r->opens == 1; }, 60s));
  const int holder = open_unresponsive_websocket(port);
  ASSERT_GE(holder, 0);

  first->signal(SIGTERM);
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return closes_1001 == clients_count; })) << closes_1001;
  }
  // conduitd is draining (the holder has not answered its 1001): a new client
  // meets its 503 + Retry-After: 1 and must wait at least 1 s before retrying.
  Recorder probe_rec;
  conduit::ClientOptions probe_options = options;
  probe_options.reconnect.initial_delay = 10ms;
  Client probe(url_for(port), probe_options, probe_rec.handlers());
  probe.start();
  ASSERT_TRUE(probe_rec.wait_for([&] { return probe_rec.count_state(ClientState::Reconnecting) >= 1; }, 30s));
  {
    std::lock_guard lock(probe_rec.mu);
    ASSERT_FALSE(probe_rec.errors.empty());
    EXPECT_EQ(probe_rec.errors[0].code, ClientError::handshake_rejected) << probe_rec.errors[0].message();
    EXPECT_EQ(probe_rec.errors[0].http_status, 503u);
    auto reconnecting = std::find_if(probe_rec.states.begin(), probe_rec.states.end(),
                                     [](const auto& e) { return e.state == ClientState::Reconnecting; });
    EXPECT_GE(reconnecting->delay, 1000ms) << "Retry-After: 1 from conduitd's 503 must be honoured";
  }
  EXPECT_EQ(first->wait_exit(30s), 0) << "conduitd must finish its drain and exit 0";
  ::close(holder);

  auto second = std::make_unique<ChildProcess>(with_listen("127.0.0.1:" + std::to_string(port)));
  ASSERT_EQ(second->start(), port);
  for (auto& r : recs) ASSERT_TRUE(r->wait_for([&] { return r->opens == 2; }, 60s));
  ASSERT_TRUE(probe_rec.wait_for([&] { return probe_rec.opens == 1; }, 60s));

  // Jitter: the first wait after the 1001 is drawn from uniform(0, window), so
  // twenty clients do not share one delay (a fixed delay would be one value).
  std::vector<long long> first_delays;
  for (auto& r : recs) {
    std::lock_guard lock(r->mu);
    auto it = std::find_if(r->states.begin(), r->states.end(),
                           [](const auto& e) { return e.state == ClientState::Reconnecting; });
    ASSERT_NE(it, r->states.end());
    EXPECT_LE(it->delay, options.reconnect.max_delay);
    first_delays.push_back(it->delay.count());
  }
  std::sort(first_delays.begin(), first_delays.end());
  const auto distinct = std::unique(first_delays.begin(), first_delays.end()) - first_delays.begin();
  EXPECT_GE(distinct, clients_count / 2) << "reconnect delays are not jittered";

  for (auto& c : clients) c->close();
  for (auto& c : clients) EXPECT_TRUE(c->wait(30s));
  probe.close();
  EXPECT_TRUE(probe.wait(30s));
  clients.clear();
  guard.reset();
  io.join();
  EXPECT_EQ(second->stop(), 0);
}

// ---- TLS ------------------------------------------------------------------------------

struct TlsFiles {
  std::filesystem::path dir;
  bool ok = false;
};

// A CA, a server certificate it signs (localhost + 127.0.0.1), and an unrelated CA.
TlsFiles make_tls_files() {
  TlsFiles f;
  f.dir = std::filesystem::temp_directory_path() / ("conduit-client-tls-" + std::to_string(getpid()));
  std::filesystem::create_directories(f.dir);
  const std::string d = f.dir.string();
  const std::string script =
      "set -e; cd '" + d +
      "'; "
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=conduit test CA' "
      "2>/dev/null; "
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other-ca.pem -days 2 -subj '/CN=other CA' "
      "2>/dev/null; "
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=localhost' 2>/dev/null; "
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext; "
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
      "-extfile san.ext 2>/dev/null; "
      "openssl req -newkey rsa:2048 -nodes -keyout wrong.key -out wrong.csr -subj '/CN=other.example' 2>/dev/null; "
      "printf 'subjectAltName=DNS:other.example\\n' > wrong.ext; "
      "openssl x509 -req -in wrong.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out wrong.pem -days 2 "
      "-extfile wrong.ext 2>/dev/null";
  f.ok = std::system(("sh -c \"" + script + "\"").c_str()) == 0;
  return f;
}

TEST(ClientTls, OwnCaVerifies) {
  TlsFiles tls = make_tls_files();
  ASSERT_TRUE(tls.ok);
  ChildProcess server(
      python_server({"echo", "--cert", (tls.dir / "server.pem").string(), "--key", (tls.dir / "server.key").string()}));
  const int port = server.start();
  ASSERT_GT(port, 0);
  for (const std::string host : {"localhost", "127.0.0.1"}) {  // SNI + DNS name; IP SAN
    Recorder rec;
    conduit::ClientOptions options;
    options.ca_file = (tls.dir / "ca.pem").string();
    options.reconnect.enabled = false;
    Client client(url_for(port, host, "wss"), options, rec.handlers());
    client.start();
    ASSERT_TRUE(rec.wait_for([&] { return rec.opens == 1 || !rec.errors.empty(); })) << host;
    {
      std::lock_guard lock(rec.mu);
      ASSERT_TRUE(rec.errors.empty()) << host << ": " << rec.errors[0].message();
    }
    expect_echo(client, rec);
    close_and_wait(client);
  }
  std::filesystem::remove_all(tls.dir);
}

TEST(ClientTls, WrongCaIsAClearTlsError) {
  TlsFiles tls = make_tls_files();
  ASSERT_TRUE(tls.ok);
  ChildProcess server(
      python_server({"echo", "--cert", (tls.dir / "server.pem").string(), "--key", (tls.dir / "server.key").string()}));
  const int port = server.start();
  ASSERT_GT(port, 0);
  Recorder rec;
  conduit::ClientOptions options;
  options.ca_file = (tls.dir / "other-ca.pem").string();
  options.reconnect.enabled = false;
  Client client(url_for(port, "localhost", "wss"), options, rec.handlers());
  client.start();
  ASSERT_TRUE(client.wait(15s));
  EXPECT_EQ(client.final_error(), ClientError::tls_failure);
  {
    std::lock_guard lock(rec.mu);
    ASSERT_EQ(rec.errors.size(), 1u);
    EXPECT_NE(rec.errors[0].detail.find("certificate verify failed"), std::string::npos) << rec.errors[0].detail;
    EXPECT_NE(rec.errors[0].message().find("unable to get local issuer certificate"), std::string::npos)
        << rec.errors[0].message();
    EXPECT_EQ(rec.opens, 0);
  }

  // Right CA, but the certificate names another host: refused too.
  ChildProcess wrong_name_server(
      python_server({"echo", "--cert", (tls.dir / "wrong.pem").string(), "--key", (tls.dir / "wrong.key").string()}));
  const int wrong_name_port = wrong_name_server.start();
  ASSERT_GT(wrong_name_port, 0);
  Recorder rec2;
  options.ca_file = (tls.dir / "ca.pem").string();
  Client wrong_host(url_for(wrong_name_port, "localhost", "wss"), options, rec2.handlers());
  wrong_host.start();
  ASSERT_TRUE(wrong_host.wait(15s));
  EXPECT_EQ(wrong_host.final_error(), ClientError::tls_failure);

  // insecure skips verification (tests only).
  Recorder rec3;
  options.ca_file = (tls.dir / "other-ca.pem").string();
  options.insecure = true;
  Client insecure(url_for(port, "localhost", "wss"), options, rec3.handlers());
  insecure.start();
  ASSERT_TRUE(rec3.wait_for([&] { return rec3.opens == 1; }));
  close_and_wait(insecure);
  std::filesystem::remove_all(tls.dir);
}

// ---- reconnect storm ------------------------------------------------------------------------

// 500 clients lose their server, which is down for 3 s and then back. Full jitter
// must spread the reconnects: no 100 ms window after the restart may hold more
// than 10% of them. Prints the distribution.
TEST(ClientStorm, FiveHundredClientsSpreadOut) {
  constexpr int clients_count = 500;
  ChildProcess first(python_server({"echo"}));
  const int port = first.start();
  ASSERT_GT(port, 0);

  boost::asio::io_context ctx;  // all clients share one I/O thread
  auto guard = boost::asio::make_work_guard(ctx);
  std::thread io([&] { ctx.run(); });

  std::mutex mu;
  std::condition_variable cv;
  int opens = 0;
  int lost = 0;
  std::vector<Clock::time_point> reopen_times;
  bool measuring = false;
  std::vector<std::unique_ptr<Client>> clients;
  conduit::ClientOptions options;  // library defaults: initial 500ms, max 30s
  options.ping_interval = 0ms;
  for (int i = 0; i < clients_count; ++i) {
    conduit::ClientHandlers h;
    h.on_open = [&](const std::string&) {
      std::lock_guard lock(mu);
      ++opens;
      if (measuring) reopen_times.push_back(Clock::now());
      cv.notify_all();
    };
    h.on_close = [&](std::uint16_t, std::string_view, bool) {
      std::lock_guard lock(mu);
      ++lost;
      cv.notify_all();
    };
    clients.push_back(std::make_unique<Client>(ctx, url_for(port), options, h));
    clients.back()->start();
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 60s, [&] { return opens == clients_count; })) << opens;
  }
  first.kill_and_wait(SIGKILL);
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 30s, [&] { return lost == clients_count; })) << lost;
    measuring = true;
  }
  std::this_thread::sleep_for(3s);  // the outage under test
  ChildProcess second(python_server({"echo", "--port", std::to_string(port)}));
  ASSERT_EQ(second.start(), port);
  const auto back_at = Clock::now();
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 90s, [&] { return reopen_times.size() == clients_count; })) << reopen_times.size();
  }
  std::map<long long, int> windows;
  long long last_window = 0;
  for (auto t : reopen_times) {
    const long long w =
        std::max<long long>(0, std::chrono::duration_cast<std::chrono::milliseconds>(t - back_at).count() / 100);
    ++windows[w];
    last_window = std::max(last_window, w);
  }
  int busiest = 0;
  std::printf("reconnect storm: %d clients, server down 3 s; reconnects per 100 ms window after it was back:\n",
              clients_count);
  for (long long w = 0; w <= last_window; ++w) {
    const int n = windows.count(w) ? windows[w] : 0;
    busiest = std::max(busiest, n);
    std::printf("  %5lld-%5lld ms %4d %s\n", w * 100, w * 100 + 100, n,
                std::string(static_cast<std::size_t>(n), '#').c_str());
  }
  std::printf("busiest window: %d of %d (%.1f%%); all back after %lld ms\n", busiest, clients_count,
              100.0 * busiest / clients_count, (last_window + 1) * 100);
  EXPECT_LE(busiest, clients_count / 10);

  for (auto& c : clients) c->close();
  for (auto& c : clients) EXPECT_TRUE(c->wait(30s));
  clients.clear();
  guard.reset();
  io.join();
}

}  // namespace
