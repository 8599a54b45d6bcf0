// One event loop per thread (no locks on the per-message path): the loop's readiness set, the
// per-thread read buffer every connection on this loop reads into (rule 1),
// the pool of send queue nodes, the list of connections with unflushed output
// (rule 3), the coarse clock and timers used by the timeout sweep (rule 6),
// and the queue of work posted from other threads. It knows nothing of what
// runs on it: the server (or any other owner) plugs in through IoHandler and
// the end-of-batch hooks.
//
// Why the server loop is not an asio::io_context (measured, see
// docs/benchmarks.md): with Asio's reactor as the master, every batch of
// ready sockets cost three syscalls on top of the reads and writes (Asio's
// epoll_wait, our own epoll_wait on the connection set, and the epoll_ctl
// re-arming Asio's wait). At saturation a batch holds one or two sockets, so
// that was 1.5-3 extra syscalls per echoed message on a machine where a
// syscall is the dominant cost. The loop below waits once per batch: one
// epoll_wait covers the sockets, the listener, cross-thread posts (an
// eventfd) and timers (the wait's timeout). Asio is still what the client,
// the CLI and the baselines run on, and Beast parses the HTTP upgrade.
#pragma once
#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/send_queue.hpp"

namespace conduit::net {

class UringEngine;

// How a loop learns about its sockets: readiness (epoll; handlers read and
// write themselves) or completions (io_uring; the loop receives into its
// buffer ring and submits the handlers' sends, see uring_engine.hpp).
enum class IoEngine : std::uint8_t { Epoll, IoUring };

// Something with a descriptor registered on a loop's readiness set.
class IoHandler {
 public:
  virtual void on_io(std::uint32_t epoll_events) = 0;
  // Completion engine only (EventLoop::receive/send), loop thread:
  // len bytes arrived into a loop buffer, valid (and writable: parsed in
  // place) during the call only.
  virtual void on_received(std::uint8_t* data, std::size_t len) {
    (void)data;
    (void)len;
  }
  // The receive armed by EventLoop::receive() ended: 0 at EOF, > 0 when the
  // kernel ended it after delivering data (arm again to keep reading),
  // -errno otherwise (-ECANCELED after cancel_receive(), -ENOBUFS when the
  // buffer ring ran dry for a moment: arm again).
  virtual void on_receive_stopped(int result) { (void)result; }
  // A send from EventLoop::send() completed: bytes written, or -errno.
  virtual void on_sent(int result) { (void)result; }

 protected:
  ~IoHandler() = default;
};

class EventLoop {
 public:
  static constexpr std::size_t read_buffer_size = 256 * 1024;
  using Task = std::function<void()>;

  // engine IoUring falls back to Epoll when io_uring cannot be set up here;
  // engine() says which one runs and fallback_reason() why.
  explicit EventLoop(unsigned index, IoEngine engine = IoEngine::Epoll);
  virtual ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  unsigned index() const noexcept { return index_; }
  std::uint8_t* read_buffer() noexcept { return read_buffer_.get(); }
  NodePool& pool() noexcept { return pool_; }
  iovec* iov() noexcept { return iov_; }

  // Coarse monotonic time in milliseconds, refreshed after every wait; good
  // enough for heartbeats and timeouts.
  std::int64_t now_ms() const noexcept { return now_ms_; }
  void refresh_clock() noexcept;

  bool on_this_thread() const noexcept { return current_ == this; }
  static EventLoop* current() noexcept { return current_; }

  // Runs the loop on the calling thread until stop() (from any thread).
  // Returns 0 then, or the errno of an epoll_wait failure that ended it early
  // (EBADF/EINVAL/EFAULT: never expected; the caller logs it).
  int run();
  void stop() noexcept;
  std::thread& thread() noexcept { return thread_; }

  // Runs fn on the loop's thread, after the current batch (never inline).
  // Safe from any thread; from another thread it wakes the loop.
  //
  // A batch is one turn of the loop: the ready descriptors' handlers, then
  // the posted tasks, then the due timers, then the end-of-batch hooks. All
  // loop-thread code therefore runs inside a batch, and whatever it leaves
  // for the end of the batch (queued output, say) is taken care of by a hook.
  void post(Task fn);

  // One-shot timer on this loop (loop thread only); fn runs outside any batch.
  // There is no cancel: the few timers (sweep, grace, accept retry) check
  // their owner's state when they fire.
  void schedule(std::int64_t delay_ms, Task fn);

  // Registers fd (edge-triggered; in and out unless read_only) with h as its
  // handler. h must stay alive until fd is closed and the current dispatch
  // batch has ended (see retire()).
  // With the completion engine only read readiness (listeners) is watched;
  // connections use receive() and send() instead.
  bool watch(int fd, IoHandler* h, bool read_only = false) noexcept;

  // Before closing a watched descriptor (loop thread): the completion engine
  // re-arms its poll by descriptor number. Nothing to do for epoll.
  void unwatch(int fd) noexcept;

  IoEngine engine() const noexcept { return uring_ ? IoEngine::IoUring : IoEngine::Epoll; }
  bool completion_io() const noexcept { return uring_ != nullptr; }
  const std::string& fallback_reason() const noexcept { return fallback_reason_; }
  // Completion engine only (loop thread), see IoHandler: arms fd's multishot
  // receive; cancels it; sends iov (at most UringEngine::max_send_iov
  // entries are taken; the bytes must stay put until on_sent); cancels a send.
  // The handler must stay alive until its final completion arrives. Requests
  // are submitted with the batch's closing wait.
  bool receive(int fd, IoHandler* h) noexcept;
  void cancel_receive(IoHandler* h) noexcept;
  bool send(int fd, IoHandler* h, const iovec* iov, int count) noexcept;
  void cancel_send(IoHandler* h) noexcept;
  // Completion engine: call before closing a descriptor that requests were
  // prepared for in this batch (they name it by number; see UringEngine).
  void submit_prepared() noexcept;
  // Keeps an object alive until the end of the current dispatch batch, so an
  // event already fetched for it in this batch does not reach freed memory.
  void retire(std::shared_ptr<void> obj) { graveyard_.push_back(std::move(obj)); }
  void release_retired() noexcept { graveyard_.clear(); }
  // Adds fn to the hooks run, in the order they were added, at the end of
  // every batch (loop thread, or before run()). A hook may post work, which
  // runs in the next batch.
  void add_end_of_batch_hook(Task fn) { end_of_batch_hooks_.push_back(std::move(fn)); }

 private:
  struct Timer {
    std::int64_t due_ms;
    Task fn;
  };
  int wait_timeout_ms() const noexcept;
  int run_epoll();
  int run_uring();
  void end_batch();
  void run_posted();
  void run_timers();

  unsigned index_;
  int epoll_fd_;
  int wake_fd_;                         // eventfd: posts from other threads
  std::unique_ptr<UringEngine> uring_;  // null: epoll
  std::string fallback_reason_;
  std::unique_ptr<std::uint8_t[]> read_buffer_;
  NodePool pool_;
  iovec iov_[SendQueue::max_iov];
  std::int64_t now_ms_ = 0;
  std::thread thread_;
  std::vector<std::shared_ptr<void>> graveyard_;
  std::vector<Task> local_;  // posted on this thread
  std::vector<Task> running_;
  std::mutex remote_mu_;
  std::vector<Task> remote_;  // posted from other threads (guarded by remote_mu_)
  std::atomic<bool> wake_pending_{false};
  std::atomic<bool> stop_{false};
  bool woken_ = false;
  std::vector<Task> end_of_batch_hooks_;
  std::vector<Timer> timers_;  // few (sweep, grace, accept retry): a vector beats a heap
  static thread_local EventLoop* current_;
};

}  // namespace conduit::net
