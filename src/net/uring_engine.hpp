// The io_uring side of an EventLoop (server.io = "io_uring"): completions
// instead of readiness. A connection's socket has one multishot receive armed
// whose data lands in the loop's provided buffer ring (no read syscall per
// message, and no buffer held by an idle connection), and its output leaves
// as send requests prepared during the batch and submitted together with the
// next wait: one io_uring_enter per loop iteration covers every send of the
// batch and the wait for the next completions, so there is no syscall per
// message at all. Listening sockets and the loop's wake descriptor keep
// readiness semantics through multishot polls.
//
// Loop thread only: the ring is set up (start) and torn down (stop) by the
// thread that runs the loop, its single issuer, with completion work
// deferred to the wait.
#pragma once
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct io_uring_sqe;
struct io_uring_buf_ring;

namespace conduit::net {

class IoHandler;

class UringEngine {
 public:
  // Buffers of the provided ring: a message up to 32 KiB (plus its header)
  // arrives in one buffer and is parsed in place; the ring is returned to the
  // kernel buffer by buffer as soon as each completion has been handled.
  static constexpr unsigned buffer_count = 64;  // a power of two (2 MiB a loop)
  static constexpr std::size_t buffer_size = 32 * 1024;
  // Iovecs per send request: a longer queue leaves in several requests.
  static constexpr int max_send_iov = 64;

  // nullptr when io_uring cannot be used here (old kernel, disabled by
  // sysctl, seccomp, no memory for the rings); why_not then says why. Only
  // probes: the ring itself is set up by start().
  static std::unique_ptr<UringEngine> create(int wake_fd, std::string& why_not);
  ~UringEngine();
  UringEngine(const UringEngine&) = delete;
  UringEngine& operator=(const UringEngine&) = delete;

  // On the loop's thread, before anything but watch() is called: sets up the
  // ring and the buffer ring; 0 or an errno. stop() tears them down (also on
  // the loop's thread, when it stops).
  int start() noexcept;
  void stop() noexcept;

  // Readiness of fd (POLLIN) reported to h->on_io(EPOLLIN) (listeners); may
  // be called before start().
  bool watch(int fd, IoHandler* h) noexcept;
  // Stops watching fd (before it is closed: the poll is re-armed by number).
  void unwatch(int fd) noexcept;
  // Arms the multishot receive of fd: h->on_received() for each chunk, then
  // one h->on_receive_stopped() when it ends (see IoHandler).
  bool receive(int fd, IoHandler* h) noexcept;
  void cancel_receive(IoHandler* h) noexcept;
  // One send of iov (copied: it need not outlive the call; the bytes must
  // stay put until h->on_sent()).
  bool send(int fd, IoHandler* h, const iovec* iov, int count) noexcept;
  void cancel_send(IoHandler* h) noexcept;

  // Submits the requests prepared so far now. A request names its socket by
  // descriptor number, so whoever closes a descriptor calls this first:
  // otherwise a request still waiting for the batch's end could reach
  // whatever socket reuses the number.
  void submit_prepared() noexcept;
  // Submits what the batch prepared and waits up to timeout_ms (-1: no limit,
  // 0: do not wait) for completions, then hands each to its handler. woken
  // is set when the wake descriptor fired. Returns 0 or an errno.
  int submit_wait_dispatch(int timeout_ms, bool& woken);
  // Receives and sends still owed a final completion.
  std::size_t outstanding() const noexcept { return outstanding_; }

 private:
  UringEngine() = default;
  io_uring_sqe* next_sqe() noexcept;
  void dispatch(bool& woken);
  bool arm_poll(int fd, std::uint64_t tag, IoHandler* h) noexcept;

  struct Ring;
  std::unique_ptr<Ring> ring_;
  std::uint8_t* buffers_ = nullptr;  // buffer_count * buffer_size
  io_uring_buf_ring* buf_ring_ = nullptr;
  int wake_fd_ = -1;
  std::size_t outstanding_ = 0;
  // Polled descriptors, for re-arming a multishot poll the kernel ended.
  struct Watched {
    int fd;
    IoHandler* h;
  };
  std::vector<Watched> watched_;
  // A sendmsg request's header and iovecs, one slot per submission queue
  // entry: the kernel copies them when it takes the request, so a slot is
  // free again after the submit (allocated with the first gather send).
  struct SendSlot {
    msghdr msg;
    iovec iov[max_send_iov];
  };
  std::vector<SendSlot> send_slots_;
};

}  // namespace conduit::net
