// Outbound bytes of one connection, as a chain of references into buffers.
//
// Invariants:
// - A FrameBuffer is immutable once another holder can see it (broadcast
//   batches are shared by every subscriber and, across threads, by every loop).
//   A connection appends in place only to a buffer it owns alone (refs == 1,
//   owner == that queue), which is how echo replies avoid an allocation each.
// - Queue nodes come from a per-loop pool: no allocation per message per
//   subscriber (serialize once, share everywhere). A broadcast that lands right after the previous
//   one in the same batch buffer extends the tail node instead of adding one,
//   so N queued broadcasts usually cost one iovec per subscriber.
// - An idle queue holds nothing: no nodes, no buffer.
#pragma once
#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace conduit::net {

struct FrameBuffer {
  std::atomic<std::uint32_t> refs{1};
  std::uint32_t capacity = 0;
  std::uint32_t size = 0;
  const void* owner = nullptr;  // the SendQueue that may still append, or nullptr when shared/sealed
  // data follows

  std::uint8_t* data() noexcept { return reinterpret_cast<std::uint8_t*>(this + 1); }
  const std::uint8_t* data() const noexcept { return reinterpret_cast<const std::uint8_t*>(this + 1); }
  std::uint32_t room() const noexcept { return capacity - size; }

  static FrameBuffer* create(std::size_t capacity) {
    void* mem = std::malloc(sizeof(FrameBuffer) + capacity);
    if (!mem) throw std::bad_alloc();
    auto* b = new (mem) FrameBuffer();
    b->capacity = static_cast<std::uint32_t>(capacity);
    return b;
  }
  void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      this->~FrameBuffer();
      std::free(this);
    }
  }
};

struct QueueNode {
  FrameBuffer* buf = nullptr;
  std::uint32_t begin = 0;
  std::uint32_t end = 0;
  QueueNode* next = nullptr;
};

// Per-loop free list of queue nodes. Single-threaded (owned by one loop).
class NodePool {
 public:
  NodePool() = default;
  NodePool(const NodePool&) = delete;
  NodePool& operator=(const NodePool&) = delete;
  ~NodePool() {
    for (std::size_t i = 0; i < chunk_count_; ++i) chunks_[i]->release();
    for (std::size_t c = 0; c < kLargeClasses; ++c) {
      for (std::size_t i = 0; i < large_count_[c]; ++i) large_[c][i]->release();
    }
    while (free_) {
      QueueNode* n = free_;
      free_ = n->next;
      delete n;
    }
  }
  QueueNode* get() {
    if (free_) {
      QueueNode* n = free_;
      free_ = n->next;
      --free_count_;
      n->next = nullptr;
      return n;
    }
    return new QueueNode();
  }
  // Owned chunks are recycled through the loop instead of malloc/free per
  // echo batch; the reserve is bounded (512 KiB) so idle loops hold little.
  FrameBuffer* get_chunk(std::size_t capacity) {
    if (chunk_count_ > 0) {
      FrameBuffer* b = chunks_[--chunk_count_];
      b->size = 0;
      b->refs.store(1, std::memory_order_relaxed);
      return b;
    }
    return FrameBuffer::create(capacity);
  }
  // Returns true when b was kept for reuse (caller then must not touch it).
  bool put_chunk(FrameBuffer* b) noexcept {
    if (chunk_count_ >= kChunkReserve) return false;
    b->owner = nullptr;
    chunks_[chunk_count_++] = b;
    return true;
  }

  // Owned buffers for frames larger than a chunk, in power-of-two size
  // classes from 4 KiB to 1 MiB. Without them every large reply queued was a
  // malloc and a free, and glibc returned the freed blocks to the kernel
  // (madvise) only to fault them back in on the next message. At most
  // kLargeReserve buffers per class and kLargeReserveBytes in all are kept.
  static constexpr std::size_t large_min = 4096;
  static constexpr std::size_t large_max = 1 << 20;
  static constexpr std::size_t large_capacity(std::size_t len) noexcept {
    std::size_t c = large_min;
    while (c < len) c <<= 1;
    return c;
  }
  FrameBuffer* get_large(std::size_t len) {
    if (len > large_max) return FrameBuffer::create(len);
    const std::size_t cls = large_class(large_capacity(len));
    if (large_count_[cls] > 0) {
      FrameBuffer* b = large_[cls][--large_count_[cls]];
      large_bytes_ -= b->capacity;
      b->size = 0;
      b->refs.store(1, std::memory_order_relaxed);
      return b;
    }
    return FrameBuffer::create(large_capacity(len));
  }
  // Bytes of large buffers the pool holds for reuse.
  std::size_t large_bytes() const noexcept { return large_bytes_; }
  // Takes back a large buffer nobody else holds; false when it was not kept.
  bool put_large(FrameBuffer* b) noexcept {
    const std::size_t c = b->capacity;
    if (c < large_min || c > large_max || (c & (c - 1)) != 0) return false;
    const std::size_t cls = large_class(c);
    if (large_count_[cls] >= kLargeReserve || large_bytes_ + c > kLargeReserveBytes) return false;
    b->owner = nullptr;
    large_[cls][large_count_[cls]++] = b;
    large_bytes_ += c;
    return true;
  }

  void put(QueueNode* n) noexcept {
    // Keep a bounded reserve so a burst does not pin memory forever.
    if (free_count_ >= 65536) {
      delete n;
      return;
    }
    n->buf = nullptr;
    n->next = free_;
    free_ = n;
    ++free_count_;
  }

 private:
  static constexpr std::size_t kChunkReserve = 256;
  static constexpr std::size_t kLargeClasses = 9;  // 4 KiB .. 1 MiB
  static constexpr std::size_t kLargeReserve = 16;
  static constexpr std::size_t kLargeReserveBytes = 4 << 20;
  static std::size_t large_class(std::size_t capacity) noexcept {
    std::size_t cls = 0;
    for (std::size_t c = large_min; c < capacity; c <<= 1) ++cls;
    return cls;
  }
  FrameBuffer* large_[kLargeClasses][kLargeReserve] = {};
  std::size_t large_count_[kLargeClasses] = {};
  std::size_t large_bytes_ = 0;
  QueueNode* free_ = nullptr;
  std::size_t free_count_ = 0;
  FrameBuffer* chunks_[kChunkReserve] = {};
  std::size_t chunk_count_ = 0;
};

class SendQueue {
 public:
  // Owned chunks are small: a batch may leave hundreds of connections with
  // output at once (flushed at the end of the batch), and small recycled
  // chunks keep that from turning into large malloc/free pairs per batch.
  static constexpr std::size_t owned_chunk = 2048;
  static constexpr int max_iov = 1024;  // IOV_MAX on Linux

  SendQueue() = default;
  SendQueue(const SendQueue&) = delete;
  SendQueue& operator=(const SendQueue&) = delete;

  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t bytes() const noexcept { return bytes_; }

  // Reserves len contiguous bytes at the end of the queue in a buffer this
  // queue owns, and returns where to write them. Call commit(len) after.
  std::uint8_t* reserve(NodePool& pool, std::size_t len) {
    if (tail_ && tail_->buf->owner == this && tail_->end == tail_->buf->size && tail_->buf->room() >= len) {
      return tail_->buf->data() + tail_->buf->size;
    }
    FrameBuffer* b = len > owned_chunk ? pool.get_large(len) : pool.get_chunk(owned_chunk);
    b->owner = this;
    QueueNode* n = pool.get();
    n->buf = b;  // the node holds the creation reference
    n->begin = n->end = 0;
    link(n);
    return b->data();
  }
  void commit(std::size_t len) noexcept {
    tail_->buf->size += static_cast<std::uint32_t>(len);
    tail_->end += static_cast<std::uint32_t>(len);
    bytes_ += len;
  }

  // Appends a reference to [begin, end) of a shared buffer.
  void append_shared(NodePool& pool, FrameBuffer* buf, std::uint32_t begin, std::uint32_t end) {
    if (tail_ && tail_->buf == buf && tail_->end == begin) {
      tail_->end = end;
    } else {
      buf->add_ref();
      QueueNode* n = pool.get();
      n->buf = buf;
      n->begin = begin;
      n->end = end;
      link(n);
    }
    bytes_ += end - begin;
  }

  // Fills iov with up to max entries from the head; returns the count.
  int gather(iovec* iov, int max) const noexcept {
    int i = 0;
    for (QueueNode* n = head_; n && i < max; n = n->next) {
      if (n->end == n->begin) continue;
      iov[i].iov_base = n->buf->data() + n->begin;
      iov[i].iov_len = n->end - n->begin;
      ++i;
    }
    return i;
  }

  // Drops the first len bytes (written to the socket).
  void consume(NodePool& pool, std::size_t len) noexcept {
    bytes_ -= len;
    while (head_ && len > 0) {
      std::size_t avail = head_->end - head_->begin;
      if (len < avail) {
        head_->begin += static_cast<std::uint32_t>(len);
        return;
      }
      len -= avail;
      pop_head(pool);
    }
  }

  // Slow-consumer close: drops every node after the head. The head node may
  // have been partly written already and nodes always end on frame
  // boundaries, so the stream stays well-formed and whatever is queued next
  // (the close frame) follows right after it.
  void discard_all_but_head(NodePool& pool) noexcept { discard_after(pool, 1); }
  // The same, keeping the first keep_nodes nodes that hold bytes (gather()
  // skips the others): those a send request still in flight may be reading
  // (io_uring), which must stay put until it completes.
  void discard_after(NodePool& pool, int keep_nodes) noexcept {
    if (!head_) return;
    QueueNode* last = head_;
    bytes_ = head_->end - head_->begin;
    for (int kept = 1; kept < keep_nodes && last->next;) {
      last = last->next;
      bytes_ += last->end - last->begin;
      if (last->end != last->begin) ++kept;
    }
    QueueNode* rest = last->next;
    last->next = nullptr;
    tail_ = last;
    if (tail_->buf->owner == this) tail_->buf->owner = nullptr;  // no appends behind a cut
    while (rest) {
      QueueNode* next = rest->next;
      release_node(pool, rest);
      rest = next;
    }
  }

  void clear(NodePool& pool) noexcept {
    while (head_) pop_head(pool);
    bytes_ = 0;
  }

 private:
  void link(QueueNode* n) noexcept {
    if (tail_) {
      // A buffer we stop appending to becomes plain shared-immutable data.
      if (tail_->buf->owner == this) tail_->buf->owner = nullptr;
      tail_->next = n;
    } else {
      head_ = n;
    }
    tail_ = n;
  }
  void pop_head(NodePool& pool) noexcept {
    QueueNode* n = head_;
    head_ = n->next;
    if (!head_) tail_ = nullptr;
    release_node(pool, n);
  }
  static void release_node(NodePool& pool, QueueNode* n) noexcept {
    FrameBuffer* b = n->buf;
    // refs == 1 means this node is the last holder anywhere, so no other
    // thread can observe the buffer any more and it may be recycled here.
    // A buffer whose size is one of the pool's classes goes back to this
    // loop's pool, wherever it was allocated (a fan-out batch of another
    // loop included): at refs == 1 nothing else can reach it.
    bool kept = false;
    if (b->refs.load(std::memory_order_acquire) == 1) {
      kept = b->capacity == owned_chunk ? pool.put_chunk(b) : pool.put_large(b);
    }
    if (!kept) b->release();
    pool.put(n);
  }

  QueueNode* head_ = nullptr;
  QueueNode* tail_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace conduit::net
