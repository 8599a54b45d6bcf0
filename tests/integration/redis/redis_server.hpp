// A real redis-server for one test: started on a free 127.0.0.1 port in its
// own temporary directory, without persistence, stopped by PID.
#pragma once

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace conduit_test {

class RedisServer {
 public:
  explicit RedisServer(std::string password = "") : password_(std::move(password)) {
    char tmpl[] = "/tmp/conduit-redis-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    port_ = free_port();
    start();
  }
  ~RedisServer() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  // Starts (again, on the same port) and returns once it answers PING.
  void start() {
    std::vector<std::string> args = {CONDUIT_TEST_REDIS_SERVER,
                                     "--port",
                                     std::to_string(port_),
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--dir",
                                     dir_,
                                     "--logfile",
                                     dir_ + "/redis.log",
                                     "--daemonize",
                                     "no"};
    if (!password_.empty()) {
      args.push_back("--requirepass");
      args.push_back(password_);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("cannot spawn redis-server");
    wait_ready();
  }

  void kill() {
    if (pid_ <= 0) return;
    // No SIGCONT first: SIGKILL ends a stopped process too, and a paused
    // server must not get the chance to answer what it holds.
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void pause() { ::kill(pid_, SIGSTOP); }
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }

  std::string log() const {
    std::ifstream f(dir_ + "/redis.log");
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }

 private:
  static std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ::close(fd);
      throw std::runtime_error("cannot find a free port");
    }
    ::close(fd);
    return ntohs(a.sin_port);
  }

  // Bounded readiness probe: the server is ready when PING answers; it is
  // given up on after 20 s or as soon as the process exits.
  void wait_ready() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("redis-server exited at start:\n" + log());
      }
      timeval tv{0, 200'000};
      redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
      bool ok = false;
      if (c != nullptr && c->err == 0) {
        redisReply* r = password_.empty() ? static_cast<redisReply*>(redisCommand(c, "PING"))
                                          : static_cast<redisReply*>(redisCommand(c, "AUTH %s", password_.c_str()));
        ok = r != nullptr && r->type != REDIS_REPLY_ERROR;
        if (r != nullptr) freeReplyObject(r);
      }
      if (c != nullptr) redisFree(c);
      if (ok) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // probe interval, not a wait for an outcome
    }
    throw std::runtime_error("redis-server did not answer PING within 20 s:\n" + log());
  }

  std::string password_;
  std::string dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace conduit_test
