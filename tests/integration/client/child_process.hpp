// Test helper: a server run as a child process (started with posix_spawn,
// its port read from its "listening on HOST:PORT" line, stopped by PID).
// Shared by the client and channel-client tests.
#pragma once
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace conduit_test {

using namespace std::chrono_literals;

// A child process whose stdout we read line by line until it announces its port.
class ChildProcess {
 public:
  explicit ChildProcess(std::vector<std::string> argv) : argv_(std::move(argv)) {}
  ~ChildProcess() { kill_and_wait(SIGKILL); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts it and waits for "listening on HOST:PORT"; returns the port (0 on failure).
  int start(std::chrono::milliseconds timeout = 15s) {
    int out[2];
    if (pipe(out) != 0) return 0;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    std::vector<char*> args;
    for (auto& a : argv_) args.push_back(a.data());
    args.push_back(nullptr);
    const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    if (rc != 0) {
      close(out[0]);
      pid_ = -1;
      return 0;
    }
    fd_ = out[0];
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string buffer;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (poll(&p, 1, static_cast<int>(std::max<long long>(1, left.count()))) <= 0) continue;
      char chunk[512];
      const ssize_t n = read(fd_, chunk, sizeof chunk);
      if (n <= 0) return 0;
      buffer.append(chunk, static_cast<std::size_t>(n));
      const auto at = buffer.find("listening on ");
      const auto eol = buffer.find('\n', at == std::string::npos ? 0 : at);
      if (at != std::string::npos && eol != std::string::npos) {
        const std::string line = buffer.substr(at, eol - at);
        return std::atoi(line.substr(line.rfind(':') + 1).c_str());
      }
    }
    return 0;
  }

  // Graceful stop: SIGTERM, then waits (bounded) for the exit. Returns the exit
  // status, 128 + signal when killed by one, or -1 when it did not exit within
  // the bound (then it is killed). conduitd drains and exits 0 on SIGTERM; a
  // sanitizer finding at exit (a leak) makes the status non-zero, so tests
  // check it instead of SIGKILLing the server and never seeing the report.
  int stop(std::chrono::milliseconds timeout = 30s) {
    signal(SIGTERM);
    return wait_exit(timeout);
  }

  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  // Waits (bounded) for the child to exit; see stop() for the result.
  int wait_exit(std::chrono::milliseconds timeout = 30s) {
    if (pid_ <= 0) return -1;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    pid_t r = 0;
    while ((r = waitpid(pid_, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);  // polling the child's state: there is no fd to wait on
    }
    int result = -1;
    if (r == pid_) {
      result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      pid_ = -1;
    }
    kill_and_wait(SIGKILL);
    return result;
  }

  void kill_and_wait(int sig) {
    if (pid_ > 0) {
      ::kill(pid_, sig);
      int status = 0;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
  }

 private:
  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  int fd_ = -1;
};

}  // namespace conduit_test
