#include "net/event_loop.hpp"

#include "net/uring_engine.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace conduit::net {

thread_local EventLoop* EventLoop::current_ = nullptr;

namespace {
constexpr int kMaxEvents = 256;
}

EventLoop::EventLoop(unsigned index, IoEngine engine)
    : index_(index),
      epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)),
      wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      read_buffer_(new std::uint8_t[read_buffer_size]) {
  if (epoll_fd_ < 0 || wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "event loop");
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.ptr = nullptr;  // the wake descriptor is the only entry without a handler
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    throw std::system_error(errno, std::generic_category(), "event loop: eventfd");
  }
  if (engine == IoEngine::IoUring) uring_ = UringEngine::create(wake_fd_, fallback_reason_);
  refresh_clock();
}

EventLoop::~EventLoop() {
  uring_.reset();  // cancels what is still in flight before the descriptors go
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void EventLoop::refresh_clock() noexcept {
  now_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
                .count();
}

bool EventLoop::watch(int fd, IoHandler* h, bool read_only) noexcept {
  if (uring_) return uring_->watch(fd, h);
  epoll_event ev{};
  ev.events = read_only ? (EPOLLIN | EPOLLET) : (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
  ev.data.ptr = h;
  return ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool EventLoop::receive(int fd, IoHandler* h) noexcept { return uring_ && uring_->receive(fd, h); }
void EventLoop::cancel_receive(IoHandler* h) noexcept {
  if (uring_) uring_->cancel_receive(h);
}
bool EventLoop::send(int fd, IoHandler* h, const iovec* iov, int count) noexcept {
  return uring_ && uring_->send(fd, h, iov, count);
}
void EventLoop::cancel_send(IoHandler* h) noexcept {
  if (uring_) uring_->cancel_send(h);
}

void EventLoop::unwatch(int fd) noexcept {
  if (uring_) uring_->unwatch(fd);
}

void EventLoop::submit_prepared() noexcept {
  if (uring_) uring_->submit_prepared();
}

void EventLoop::post(Task fn) {
  if (on_this_thread()) {
    local_.push_back(std::move(fn));
    return;
  }
  {
    std::lock_guard lock(remote_mu_);
    remote_.push_back(std::move(fn));
  }
  // One write per drain cycle: the loop clears the flag before it takes the
  // queue, so a task pushed after that finds the flag clear and wakes it.
  if (!wake_pending_.exchange(true)) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_fd_, &one, sizeof one);
  }
}

void EventLoop::stop() noexcept {
  stop_.store(true);
  if (!on_this_thread()) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_fd_, &one, sizeof one);
  }
}

void EventLoop::schedule(std::int64_t delay_ms, Task fn) {
  timers_.push_back({now_ms_ + std::max<std::int64_t>(delay_ms, 0), std::move(fn)});
}

int EventLoop::wait_timeout_ms() const noexcept {
  if (!local_.empty()) return 0;
  std::int64_t best = -1;
  for (const auto& t : timers_) {
    std::int64_t left = t.due_ms - now_ms_;
    if (left <= 0) return 0;
    if (best < 0 || left < best) best = left;
  }
  return static_cast<int>(std::min<std::int64_t>(best, 60000));
}

int EventLoop::run() {
  current_ = this;
  const int err = uring_ ? run_uring() : run_epoll();
  graveyard_.clear();
  current_ = nullptr;
  return err;
}

// One batch (see post()): handlers, posted tasks, due timers, then the hooks,
// so output produced anywhere in the batch is flushed once at its end: one
// gather write (epoll) or one send request (io_uring) per connection per
// iteration.
void EventLoop::end_batch() {
  run_posted();
  if (!timers_.empty()) run_timers();
  for (auto& hook : end_of_batch_hooks_) hook();
  graveyard_.clear();
}

int EventLoop::run_epoll() {
  epoll_event events[kMaxEvents];
  while (!stop_.load(std::memory_order_relaxed)) {
    int n = ::epoll_wait(epoll_fd_, events, kMaxEvents, wait_timeout_ms());
    refresh_clock();
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;  // EBADF/EINVAL/EFAULT: nothing sensible left to wait on
    }
    for (int i = 0; i < n; ++i) {
      auto* h = static_cast<IoHandler*>(events[i].data.ptr);
      if (h) {
        h->on_io(events[i].events);
      } else {
        woken_ = true;
      }
    }
    end_batch();
  }
  return 0;
}

int EventLoop::run_uring() {
  if (int err = uring_->start(); err != 0) return err;
  while (!stop_.load(std::memory_order_relaxed)) {
    // Submits the previous batch's requests and waits, in one system call.
    int err = uring_->submit_wait_dispatch(wait_timeout_ms(), woken_);
    refresh_clock();
    if (err) return err;
    end_batch();
  }
  // Stopped: the connections have been closed and their receives (and any
  // sends) cancelled. Collect those last completions, so that every handler
  // waiting for one is released; bounded, should the kernel be slow.
  for (int round = 0; round < 50 && uring_->outstanding() > 0; ++round) {
    if (uring_->submit_wait_dispatch(100, woken_) != 0) break;
    end_batch();
  }
  uring_->stop();
  return 0;
}

void EventLoop::run_posted() {
  if (woken_) {
    woken_ = false;
    std::uint64_t v;
    [[maybe_unused]] auto r = ::read(wake_fd_, &v, sizeof v);
    wake_pending_.store(false);
    std::lock_guard lock(remote_mu_);
    for (auto& t : remote_) local_.push_back(std::move(t));
    remote_.clear();
  }
  if (local_.empty()) return;
  // Tasks posted while these run wait for the next iteration: a task that
  // re-posts itself cannot starve the sockets.
  running_.swap(local_);
  for (auto& t : running_) t();
  running_.clear();
}

void EventLoop::run_timers() {
  std::vector<Task> due;
  for (std::size_t i = 0; i < timers_.size();) {
    if (timers_[i].due_ms <= now_ms_) {
      due.push_back(std::move(timers_[i].fn));
      timers_[i] = std::move(timers_.back());
      timers_.pop_back();
    } else {
      ++i;
    }
  }
  for (auto& t : due) t();
}

}  // namespace conduit::net
