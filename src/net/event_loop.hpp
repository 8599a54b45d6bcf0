// One event loop per thread (GUIDE rule 2): an io_context, the per-thread read
// buffer every connection on this loop reads into (rule 1), the pool of send
// queue nodes, the list of connections with unflushed output (rule 3), the
// coarse clock used by the timeout sweep (rule 6), and the loop's counters.
#pragma once
#include <sys/uio.h>

#include <sys/epoll.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "net/send_queue.hpp"
#include "ops/metrics.hpp"

namespace conduit::net {

// Something with a socket registered on a loop's readiness set.
class IoHandler {
 public:
  virtual void on_io(std::uint32_t epoll_events) = 0;

 protected:
  ~IoHandler() = default;
};

// Connection sockets are not registered with Asio's reactor: each loop keeps
// its own edge-triggered epoll set, registered once per socket for reading and
// writing, and Asio waits on that set's descriptor. Asio's per-operation
// async_wait costs an epoll_ctl(MOD) and an allocated operation every time a
// connection waits; here a wait costs nothing and a whole batch of ready
// sockets costs one Asio wait. Asio still runs the loop: posts, timers,
// accept, and the wait on the set.
class EventLoop {
 public:
  static constexpr std::size_t read_buffer_size = 256 * 1024;

  explicit EventLoop(unsigned index)
      : index_(index),
        read_buffer_(new std::uint8_t[read_buffer_size]),
        sweep_timer_(io_),
        ready_set_(io_, ::epoll_create1(EPOLL_CLOEXEC)) {}
  virtual ~EventLoop() = default;
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  boost::asio::io_context& io() noexcept { return io_; }
  unsigned index() const noexcept { return index_; }
  std::uint8_t* read_buffer() noexcept { return read_buffer_.get(); }
  NodePool& pool() noexcept { return pool_; }
  iovec* iov() noexcept { return iov_; }
  ops::ServerCounters& counters() noexcept { return counters_; }
  const ops::ServerCounters& counters() const noexcept { return counters_; }
  boost::asio::steady_timer& sweep_timer() noexcept { return sweep_timer_; }

  // Coarse monotonic time in milliseconds, refreshed by the sweep and by each
  // read batch; good enough for heartbeats and timeouts.
  std::int64_t now_ms() const noexcept { return now_ms_; }
  void refresh_clock() noexcept {
    now_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
                  .count();
  }

  bool on_this_thread() const noexcept { return current_ == this; }
  // True while a batch of events is being handled; output is flushed at its end.
  bool in_batch = false;
  static EventLoop* current() noexcept { return current_; }

  void run() {
    current_ = this;
    refresh_clock();
    wait_ready();
    io_.run();
    current_ = nullptr;
  }

  // Registers fd (edge-triggered, in and out) with h as its handler. h must
  // stay alive until fd is closed and the current dispatch batch has ended
  // (see retire()).
  bool watch(int fd, IoHandler* h) noexcept {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = h;
    return ::epoll_ctl(ready_set_.native_handle(), EPOLL_CTL_ADD, fd, &ev) == 0;
  }
  // Keeps an object alive until the end of the current dispatch batch, so an
  // event already fetched for it in this batch does not reach freed memory.
  void retire(std::shared_ptr<void> obj) { graveyard_.push_back(std::move(obj)); }
  // Called at the end of each batch of work by the owner of the loop.
  virtual void end_of_batch() {}

  std::thread& thread() noexcept { return thread_; }
  void stop_io() noexcept {
    boost::system::error_code ec;
    ready_set_.cancel(ec);
  }
  void release_retired() noexcept { graveyard_.clear(); }

 private:
  void wait_ready() {
    ready_set_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                          [this](const boost::system::error_code& ec) {
                            if (ec) return;
                            dispatch_ready();
                          });
  }
  void dispatch_ready() {
    epoll_event events[256];
    int n = ::epoll_wait(ready_set_.native_handle(), events, 256, 0);
    refresh_clock();
    // Output produced while handling the whole batch is flushed once at its
    // end (GUIDE rule 3): one gather write per connection per iteration.
    in_batch = true;
    for (int i = 0; i < n; ++i) static_cast<IoHandler*>(events[i].data.ptr)->on_io(events[i].events);
    in_batch = false;
    end_of_batch();
    graveyard_.clear();
    if (n == 256) {
      // More may be ready: come back after other queued work, without waiting.
      boost::asio::post(io_, [this] { dispatch_ready(); });
    } else {
      wait_ready();
    }
  }

  unsigned index_;
  boost::asio::io_context io_{1};  // one thread: let Asio skip internal locking where it can
  std::unique_ptr<std::uint8_t[]> read_buffer_;
  NodePool pool_;
  iovec iov_[SendQueue::max_iov];
  ops::ServerCounters counters_;
  boost::asio::steady_timer sweep_timer_;
  std::int64_t now_ms_ = 0;
  std::thread thread_;
  boost::asio::posix::stream_descriptor ready_set_;
  std::vector<std::shared_ptr<void>> graveyard_;
  static thread_local EventLoop* current_;
};

}  // namespace conduit::net
