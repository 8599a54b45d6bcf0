#include "net/uring_engine.hpp"

#include <liburing.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "net/event_loop.hpp"

namespace conduit::net {

namespace {
// user_data: the handler's address with the operation in its low bits
// (handlers are at least 8-byte aligned).
constexpr std::uint64_t kPoll = 1;
constexpr std::uint64_t kReceive = 2;
constexpr std::uint64_t kSend = 3;
constexpr std::uint64_t kCancel = 4;  // completions of cancel requests: ignored
constexpr std::uint64_t kWake = 5;
constexpr std::uint64_t kTagMask = 7;
constexpr unsigned kBufferGroup = 0;
constexpr unsigned kRingEntries = 512;

std::uint64_t tagged(IoHandler* h, std::uint64_t tag) noexcept { return reinterpret_cast<std::uintptr_t>(h) | tag; }
}  // namespace

struct UringEngine::Ring {
  io_uring ring{};
};

namespace {
constexpr unsigned kSetupFlags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
}

std::unique_ptr<UringEngine> UringEngine::create(int wake_fd, std::string& why_not) {
  // A probe ring with the flags and features start() needs, closed at once:
  // the real ring belongs to the loop's thread (start()). The probe runs on a
  // thread of its own because tearing a ring down sends task work, with a
  // signal notification, to the thread that created it: a blocking call
  // there with a timeout (SO_RCVTIMEO) returned EINTR.
  io_uring_params p{};
  int r = 0;
  std::thread([&] {
    io_uring probe{};
    p.flags = kSetupFlags;
    r = io_uring_queue_init_params(8, &probe, &p);
    if (r == 0) io_uring_queue_exit(&probe);
  }).join();
  if (r < 0) {
    why_not = std::string("io_uring_setup: ") + std::strerror(-r);
    return nullptr;
  }
  if (!(p.features & IORING_FEAT_SUBMIT_STABLE) || !(p.features & IORING_FEAT_EXT_ARG)) {
    why_not = "kernel lacks IORING_FEAT_SUBMIT_STABLE or IORING_FEAT_EXT_ARG";
    return nullptr;
  }
  std::unique_ptr<UringEngine> e(new UringEngine());
  e->wake_fd_ = wake_fd;
  return e;
}

// On the loop's thread, which becomes the ring's only submitter (so the
// kernel defers completion work to our wait instead of interrupting the
// thread) and the only thread the ring's teardown notifies (see create()).
int UringEngine::start() noexcept {
  ring_ = std::make_unique<Ring>();
  io_uring_params p{};
  p.flags = kSetupFlags;
  int r = io_uring_queue_init_params(kRingEntries, &ring_->ring, &p);
  if (r < 0) {
    ring_.reset();
    return -r;
  }
  // The provided buffer ring and its buffers, in one anonymous mapping each
  // (the ring must be page aligned).
  const std::size_t ring_bytes = buffer_count * sizeof(io_uring_buf);
  void* ring_mem = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ring_mem == MAP_FAILED) return ENOMEM;
  buf_ring_ = static_cast<io_uring_buf_ring*>(ring_mem);
  void* buf_mem =
      ::mmap(nullptr, buffer_count * buffer_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf_mem == MAP_FAILED) return ENOMEM;
  buffers_ = static_cast<std::uint8_t*>(buf_mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(ring_mem);
  reg.ring_entries = buffer_count;
  reg.bgid = kBufferGroup;
  r = io_uring_register_buf_ring(&ring_->ring, &reg, 0);
  if (r < 0) return -r;
  io_uring_buf_ring_init(buf_ring_);
  const int mask = io_uring_buf_ring_mask(buffer_count);
  for (unsigned i = 0; i < buffer_count; ++i) {
    io_uring_buf_ring_add(buf_ring_, buffers_ + i * buffer_size, buffer_size, static_cast<unsigned short>(i), mask,
                          static_cast<int>(i));
  }
  io_uring_buf_ring_advance(buf_ring_, buffer_count);
  if (!arm_poll(wake_fd_, kWake, nullptr)) return EBUSY;
  for (const auto& w : watched_) {
    if (!arm_poll(w.fd, kPoll, w.h)) return EBUSY;
  }
  return 0;
}

void UringEngine::stop() noexcept {
  // Exiting the ring cancels whatever is still in flight before the buffers go.
  if (ring_) io_uring_queue_exit(&ring_->ring);
  ring_.reset();
  if (buf_ring_) ::munmap(buf_ring_, buffer_count * sizeof(io_uring_buf));
  buf_ring_ = nullptr;
  if (buffers_) ::munmap(buffers_, buffer_count * buffer_size);
  buffers_ = nullptr;
}

UringEngine::~UringEngine() { stop(); }

io_uring_sqe* UringEngine::next_sqe() noexcept {
  if (!ring_) return nullptr;  // before start() or after stop()
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  if (sqe) return sqe;
  // The queue is full mid-batch (over 500 requests prepared): submit
  // them now rather than fail; the wait still happens once, at the batch's end.
  io_uring_submit(&ring_->ring);
  return io_uring_get_sqe(&ring_->ring);
}

bool UringEngine::arm_poll(int fd, std::uint64_t tag, IoHandler* h) noexcept {
  io_uring_sqe* sqe = next_sqe();
  if (!sqe) return false;
  io_uring_prep_poll_multishot(sqe, fd, POLLIN);
  io_uring_sqe_set_data64(sqe, tagged(h, tag));
  return true;
}

bool UringEngine::watch(int fd, IoHandler* h) noexcept {
  if (ring_ && !arm_poll(fd, kPoll, h)) return false;  // before start(): armed by start()
  watched_.push_back({fd, h});
  return true;
}

void UringEngine::unwatch(int fd) noexcept {
  for (auto it = watched_.begin(); it != watched_.end(); ++it) {
    if (it->fd != fd) continue;
    if (io_uring_sqe* sqe = ring_ ? next_sqe() : nullptr) {
      io_uring_prep_cancel64(sqe, tagged(it->h, kPoll), 0);
      io_uring_sqe_set_data64(sqe, kCancel);
    }
    watched_.erase(it);
    return;
  }
}

bool UringEngine::receive(int fd, IoHandler* h) noexcept {
  io_uring_sqe* sqe = next_sqe();
  if (!sqe) return false;
  io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, tagged(h, kReceive));
  ++outstanding_;
  return true;
}

bool UringEngine::send(int fd, IoHandler* h, const iovec* iov, int count) noexcept {
  io_uring_sqe* sqe = next_sqe();
  if (!sqe) return false;
  if (count == 1) {
    io_uring_prep_send(sqe, fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
  } else {
    // The kernel copies the message header and iovecs when it takes the
    // request (IORING_FEAT_SUBMIT_STABLE), so they live in the SQE's own
    // storage only until the submit: keep them in a per-request slot that
    // the next batch reuses.
    if (send_slots_.empty()) send_slots_.resize(kRingEntries);
    const auto index = static_cast<std::size_t>(sqe - ring_->ring.sq.sqes);
    SendSlot& s = send_slots_[index % send_slots_.size()];
    const int n = count < max_send_iov ? count : max_send_iov;
    std::memcpy(s.iov, iov, static_cast<std::size_t>(n) * sizeof(iovec));
    s.msg = msghdr{};
    s.msg.msg_iov = s.iov;
    s.msg.msg_iovlen = static_cast<std::size_t>(n);
    io_uring_prep_sendmsg(sqe, fd, &s.msg, MSG_NOSIGNAL);
  }
  io_uring_sqe_set_data64(sqe, tagged(h, kSend));
  ++outstanding_;
  return true;
}

void UringEngine::cancel_receive(IoHandler* h) noexcept {
  io_uring_sqe* sqe = next_sqe();
  if (!sqe) return;
  io_uring_prep_cancel64(sqe, tagged(h, kReceive), 0);
  io_uring_sqe_set_data64(sqe, kCancel);
}

void UringEngine::cancel_send(IoHandler* h) noexcept {
  io_uring_sqe* sqe = next_sqe();
  if (!sqe) return;
  io_uring_prep_cancel64(sqe, tagged(h, kSend), 0);
  io_uring_sqe_set_data64(sqe, kCancel);
}

void UringEngine::submit_prepared() noexcept {
  if (ring_ && io_uring_sq_ready(&ring_->ring) > 0) io_uring_submit(&ring_->ring);
}

int UringEngine::submit_wait_dispatch(int timeout_ms, bool& woken) {
  io_uring_cqe* cqe = nullptr;
  __kernel_timespec ts{};
  __kernel_timespec* tsp = nullptr;
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1000000;
    tsp = &ts;
  }
  // One io_uring_enter: the batch's sends (and receives, polls, cancels) go
  // in, and the wait for the next completions comes back.
  int r = io_uring_submit_and_wait_timeout(&ring_->ring, &cqe, 1, tsp, nullptr);
  if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN) return -r;
  dispatch(woken);
  return 0;
}

void UringEngine::dispatch(bool& woken) {
  io_uring* ring = &ring_->ring;
  const int mask = io_uring_buf_ring_mask(buffer_count);
  int returned = 0;
  unsigned head;
  unsigned seen = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(ring, head, cqe) {
    ++seen;
    const std::uint64_t data = cqe->user_data;
    const std::uint64_t tag = data & kTagMask;
    auto* h = reinterpret_cast<IoHandler*>(static_cast<std::uintptr_t>(data & ~kTagMask));
    const int res = cqe->res;
    const bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    switch (tag) {
      case kReceive: {
        if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
          const unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
          std::uint8_t* buf = buffers_ + static_cast<std::size_t>(bid) * buffer_size;
          h->on_received(buf, static_cast<std::size_t>(res));
          // Handled: the buffer goes back to the kernel (the parser copied
          // any incomplete tail into the connection).
          io_uring_buf_ring_add(buf_ring_, buf, buffer_size, static_cast<unsigned short>(bid), mask, returned);
          ++returned;
        }
        if (!more) {
          --outstanding_;
          h->on_receive_stopped(res);
        }
        break;
      }
      case kSend:
        --outstanding_;
        h->on_sent(res);
        break;
      case kPoll:
        if (res > 0) h->on_io(EPOLLIN);
        if (!more && res != -ECANCELED) {
          for (const auto& w : watched_) {
            if (w.h == h) {
              arm_poll(w.fd, kPoll, h);
              break;
            }
          }
        }
        break;
      case kWake:
        woken = true;
        if (!more) arm_poll(wake_fd_, kWake, nullptr);
        break;
      default:  // kCancel
        break;
    }
  }
  if (returned) io_uring_buf_ring_advance(buf_ring_, returned);
  io_uring_cq_advance(ring, seen);
}

}  // namespace conduit::net
