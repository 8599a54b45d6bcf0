// One event loop per thread (GUIDE rule 2): an io_context, the per-thread read
// buffer every connection on this loop reads into (rule 1), the pool of send
// queue nodes, the list of connections with unflushed output (rule 3), the
// coarse clock used by the timeout sweep (rule 6), and the loop's counters.
#pragma once
#include <sys/uio.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "net/send_queue.hpp"
#include "ops/metrics.hpp"

namespace conduit::net {

class EventLoop {
 public:
  static constexpr std::size_t read_buffer_size = 256 * 1024;

  explicit EventLoop(unsigned index)
      : index_(index), read_buffer_(new std::uint8_t[read_buffer_size]), sweep_timer_(io_) {}
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
    now_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now().time_since_epoch())
                  .count();
  }

  bool on_this_thread() const noexcept { return current_ == this; }
  static EventLoop* current() noexcept { return current_; }

  void run() {
    current_ = this;
    refresh_clock();
    io_.run();
    current_ = nullptr;
  }

  std::thread& thread() noexcept { return thread_; }

 private:
  unsigned index_;
  boost::asio::io_context io_{1};  // one thread: let Asio skip internal locking where it can
  std::unique_ptr<std::uint8_t[]> read_buffer_;
  NodePool pool_;
  iovec iov_[SendQueue::max_iov];
  ops::ServerCounters counters_;
  boost::asio::steady_timer sweep_timer_;
  std::int64_t now_ms_ = 0;
  std::thread thread_;
  static thread_local EventLoop* current_;
};

}  // namespace conduit::net
