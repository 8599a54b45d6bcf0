// conduit-send-floor: what one TCP send costs on this machine, measured the way
// a fan-out server pays for it, with no WebSocket code at all.
//
// The parent process accepts N loopback connections from a child process
// (the reader, an independent peer on its own core). Then, R times: the parent
// makes one non-blocking send(2) of B bytes on each of the N sockets (TCP_NODELAY,
// as conduitd and the baselines set it) and sleeps on a pipe until the child
// has read all of it, the way a server sleeps in epoll_wait between batches.
// The parent's CPU time (user + system, which includes the loopback receive
// path the kernel runs in the sender's context) divided by N * R is the cost of
// one send. A server that makes one send per delivery (B = one frame) cannot do
// better than sends_per_cpu_second deliveries per server-CPU-second; one that
// carries k frames per send (B = k frames) cannot do better than k times the
// figure measured with that B.
//
// Usage: conduit-send-floor --connections N --bytes B --rounds R
//                           [--writer-cpu C] [--reader-cpu C] [--json]
// Exit status 0 on success, 1 when a send was short or a step failed, 2 on bad usage.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Options {
  long connections = 1000;
  long bytes = 66;
  long rounds = 100;
  int writer_cpu = -1;
  int reader_cpu = -1;
  bool json = false;
};

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "conduit-send-floor: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) fail("sched_setaffinity");
}

// Nanosecond resolution (the scheduler's runtime), unlike the tick-based /proc figures.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

bool write_byte(int fd) {
  char c = 1;
  for (;;) {
    ssize_t n = write(fd, &c, 1);
    if (n == 1) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

bool read_byte(int fd) {
  char c = 0;
  for (;;) {
    ssize_t n = read(fd, &c, 1);
    if (n == 1) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

// The child: connects N sockets, reads everything, and after each round's
// bytes have all arrived writes one byte on `done`. Exits when the parent
// closes `go` or after the last round.
[[noreturn]] void reader(const Options& o, const sockaddr_in& addr, int done) {
  pin(o.reader_cpu);
  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(o.connections));
  for (long i = 0; i < o.connections; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket (reader)");
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) fail("connect");
    fds.push_back(fd);
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fail("epoll_create1");
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if (fcntl(fds[i], F_SETFL, O_NONBLOCK) != 0) fail("fcntl");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0) fail("epoll_ctl");
  }
  if (!write_byte(done)) fail("write (connected)");
  const auto per_round = static_cast<std::uint64_t>(o.connections) * static_cast<std::uint64_t>(o.bytes);
  std::uint64_t received = 0;
  std::vector<epoll_event> events(1024);
  std::vector<char> buffer(256 * 1024);
  for (long round = 0; round < o.rounds; ++round) {
    const std::uint64_t target = per_round * static_cast<std::uint64_t>(round + 1);
    while (received < target) {
      // Bounded: if the parent stops sending, 30 s without data ends the child.
      int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 30000);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) std::_Exit(1);
      for (int k = 0; k < n; ++k) {
        int fd = fds[events[static_cast<std::size_t>(k)].data.u64];
        for (;;) {
          ssize_t r = read(fd, buffer.data(), buffer.size());
          if (r > 0) {
            received += static_cast<std::uint64_t>(r);
            continue;
          }
          if (r < 0 && errno == EINTR) continue;
          if (r == 0) std::_Exit(1);  // the parent went away
          break;                      // EAGAIN
        }
      }
    }
    if (!write_byte(done)) std::_Exit(1);
  }
  std::_Exit(0);
}

bool parse_long(const char* text, long min, long& out) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min) return false;
  out = v;
  return true;
}

int usage() {
  std::fprintf(stderr,
               "usage: conduit-send-floor --connections N --bytes B --rounds R [--writer-cpu C] [--reader-cpu C] "
               "[--json]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    long v = 0;
    auto value = [&](long min) { return i + 1 < argc && parse_long(argv[++i], min, v); };
    if (a == "--json") {
      o.json = true;
    } else if (a == "--connections" && value(1)) {
      o.connections = v;
    } else if (a == "--bytes" && value(1)) {
      o.bytes = v;
    } else if (a == "--rounds" && value(1)) {
      o.rounds = v;
    } else if (a == "--writer-cpu" && value(0)) {
      o.writer_cpu = static_cast<int>(v);
    } else if (a == "--reader-cpu" && value(0)) {
      o.reader_cpu = static_cast<int>(v);
    } else {
      return usage();
    }
  }
  signal(SIGPIPE, SIG_IGN);

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) fail("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(listener, 4096) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    fail("listen");
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) fail("pipe2");
  pid_t child = fork();
  if (child < 0) fail("fork");
  if (child == 0) {
    close(pipe_fds[0]);
    close(listener);
    reader(o, addr, pipe_fds[1]);
  }
  close(pipe_fds[1]);
  const int done = pipe_fds[0];
  auto fail_with_child = [&](const char* what) {
    int saved = errno;
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    errno = saved;
    fail(what);
  };

  pin(o.writer_cpu);
  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(o.connections));
  for (long i = 0; i < o.connections; ++i) {
    int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) fail_with_child("accept4");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fds.push_back(fd);
  }
  if (!read_byte(done)) fail_with_child("reader did not connect");

  std::vector<char> payload(static_cast<std::size_t>(o.bytes), 'x');
  long short_sends = 0;
  const double cpu0 = process_cpu_seconds();
  const auto wall0 = std::chrono::steady_clock::now();
  for (long round = 0; round < o.rounds; ++round) {
    for (int fd : fds) {
      ssize_t n = send(fd, payload.data(), payload.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n != static_cast<ssize_t>(payload.size())) ++short_sends;
    }
    if (short_sends != 0) break;
    if (!read_byte(done)) fail_with_child("reader stopped");
  }
  const double cpu = process_cpu_seconds() - cpu0;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  for (int fd : fds) close(fd);
  int status = 0;
  if (short_sends != 0) kill(child, SIGKILL);
  waitpid(child, &status, 0);
  if (short_sends != 0) {
    std::fprintf(stderr, "conduit-send-floor: a send was short (socket buffer full); use fewer bytes\n");
    return 1;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "conduit-send-floor: the reader failed\n");
    return 1;
  }
  const double sends = static_cast<double>(o.connections) * static_cast<double>(o.rounds);
  const double per_cpu = cpu > 0 ? sends / cpu : 0;
  if (o.json) {
    std::printf(
        "{\"scenario\":\"send-floor\",\"connections\":%ld,\"bytes\":%ld,\"rounds\":%ld,\"sends\":%.0f,"
        "\"sender_cpu_seconds\":%.9f,\"seconds\":%.9f,\"sends_per_cpu_second\":%.1f,\"us_per_send\":%.3f,"
        "\"error\":\"none\"}\n",
        o.connections, o.bytes, o.rounds, sends, cpu, wall, per_cpu, sends > 0 ? cpu / sends * 1e6 : 0);
  } else {
    std::printf("%ld connections x %ld rounds of %ld-byte sends: %.0f sends per sender-CPU-second (%.2f us each)\n",
                o.connections, o.rounds, o.bytes, per_cpu, sends > 0 ? cpu / sends * 1e6 : 0);
  }
  return 0;
}
