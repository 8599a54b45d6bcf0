// ShutdownOnSignal: SIGTERM/SIGINT blocked in the constructing thread (and so
// in every thread created after it) and read from a signalfd by one thread,
// which polls an eventfd beside it so the destructor can stop it without
// sending itself a signal.
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <system_error>
#include <thread>

#include "conduit/signals.hpp"

namespace conduit {

struct ShutdownOnSignal::Impl {
  std::function<void(int)> on_first;
  int signal_fd = -1;
  int wake_fd = -1;
  std::atomic<int> received{0};
  std::thread thread;

  void run() {
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    for (;;) {
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;  // destructor
      signalfd_siginfo info{};
      if (::read(signal_fd, &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
      const int signo = static_cast<int>(info.ssi_signo);
      int expected = 0;
      if (received.compare_exchange_strong(expected, signo)) {
        if (on_first) on_first(signo);
      } else {
        // Second signal: the operator wants out now, whatever is draining.
        std::_Exit(130);
      }
    }
  }
};

ShutdownOnSignal::ShutdownOnSignal(std::function<void(int)> on_first) : impl_(std::make_unique<Impl>()) {
  impl_->on_first = std::move(on_first);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (int err = pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0) {
    throw std::system_error(err, std::generic_category(), "pthread_sigmask");
  }
  impl_->signal_fd = ::signalfd(-1, &set, SFD_CLOEXEC);
  if (impl_->signal_fd < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
  impl_->wake_fd = ::eventfd(0, EFD_CLOEXEC);
  if (impl_->wake_fd < 0) {
    const int err = errno;
    ::close(impl_->signal_fd);
    throw std::system_error(err, std::generic_category(), "eventfd");
  }
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

ShutdownOnSignal::~ShutdownOnSignal() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(impl_->wake_fd, &one, sizeof one);
  if (impl_->thread.joinable()) impl_->thread.join();
  ::close(impl_->wake_fd);
  ::close(impl_->signal_fd);
}

int ShutdownOnSignal::received() const noexcept { return impl_->received.load(); }

}  // namespace conduit
