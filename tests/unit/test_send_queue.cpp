// The send queue's per-loop pool of large owned buffers: queued frames above
// a chunk are recycled instead of malloc/free per message, within bounds.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "net/send_queue.hpp"

using namespace conduit::net;

TEST(SendQueuePool, LargeFrameBufferIsReusedAfterItLeaves) {
  NodePool pool;
  SendQueue q;
  std::uint8_t* first = q.reserve(pool, 16384 + 4);
  std::memset(first, 'a', 16384 + 4);
  q.commit(16384 + 4);
  iovec iov[4];
  ASSERT_EQ(q.gather(iov, 4), 1);
  EXPECT_EQ(iov[0].iov_len, 16384u + 4);
  EXPECT_EQ(pool.large_bytes(), 0u);
  q.consume(pool, 16384 + 4);  // written: the buffer goes back to the pool, not to malloc
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(pool.large_bytes(), 32768u);
  std::uint8_t* second = q.reserve(pool, 20000);  // same size class (32 KiB): the same buffer
  EXPECT_EQ(second, first);
  EXPECT_EQ(pool.large_bytes(), 0u);
  q.commit(20000);
  q.clear(pool);
  EXPECT_EQ(pool.large_bytes(), 32768u);
}

TEST(SendQueuePool, SizeClassesArePowersOfTwoFrom4KiB) {
  EXPECT_EQ(NodePool::large_capacity(2049), 4096u);
  EXPECT_EQ(NodePool::large_capacity(4096), 4096u);
  EXPECT_EQ(NodePool::large_capacity(4097), 8192u);
  EXPECT_EQ(NodePool::large_capacity(16388), 32768u);
  EXPECT_EQ(NodePool::large_capacity(NodePool::large_max), NodePool::large_max);
}

TEST(SendQueuePool, ReserveIsBounded) {
  NodePool pool;
  std::vector<FrameBuffer*> held;
  for (int i = 0; i < 40; ++i) held.push_back(pool.get_large(8192));
  int kept = 0;
  for (FrameBuffer* b : held) {
    if (pool.put_large(b)) {
      ++kept;
    } else {
      b->release();
    }
  }
  EXPECT_EQ(kept, 16);  // at most 16 buffers per size class stay in the pool
  // Above 1 MiB nothing is pooled: such a frame is rare, and holding one would pin a lot.
  FrameBuffer* huge = pool.get_large(NodePool::large_max + 1);
  EXPECT_EQ(huge->capacity, NodePool::large_max + 1);
  EXPECT_FALSE(pool.put_large(huge));
  huge->release();
}

TEST(SendQueuePool, PoolBytesAreBounded) {
  NodePool pool;
  std::vector<FrameBuffer*> held;
  for (int i = 0; i < 8; ++i) held.push_back(pool.get_large(1 << 20));
  int kept = 0;
  for (FrameBuffer* b : held) {
    if (pool.put_large(b)) {
      ++kept;
    } else {
      b->release();
    }
  }
  EXPECT_EQ(kept, 4);  // 4 MiB in all per loop
}
