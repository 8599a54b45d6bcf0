// Idle connections are the server's memory floor: each one is a single heap
// block (the Connection inside make_shared's block), plus state allocated
// only while it is used (see server/rare_state.hpp). This pins the size of
// that block, so that a new member is a decision, not an accident.
#include <gtest/gtest.h>

#include <cstdint>

#include "server/connection.hpp"

using conduit::server::Connection;

TEST(ConnectionLayout, IdleConnectionIsOneHeapBlockOfAtMost288Bytes) {
#if defined(__GLIBCXX__) && UINTPTR_MAX == UINT64_MAX
  // libstdc++'s make_shared block: a 16-byte control block (vtable pointer,
  // use and weak counts) followed by the object. glibc's malloc adds an
  // 8-byte header and rounds the chunk up to a multiple of 16.
  constexpr std::size_t make_shared_block = 16 + sizeof(Connection);
  constexpr std::size_t malloc_chunk = (make_shared_block + 8 + 15) / 16 * 16;
  EXPECT_LE(malloc_chunk, 288u) << "sizeof(Connection) = " << sizeof(Connection);
#else
  GTEST_SKIP() << "the block size is computed for libstdc++ on a 64-bit target";
#endif
}
