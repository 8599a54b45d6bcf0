#include "wire/mask.hpp"

#include <openssl/rand.h>

#include <cstring>
#include <random>

namespace conduit::wire {

void apply_mask(std::uint8_t* data, std::size_t len, const std::uint8_t key[4], std::size_t offset) noexcept {
  // Rotate the key so that rotated[0] applies to data[0]; since 8 is a multiple
  // of 4 the same 8-byte pattern then applies to every 8-byte word. Unaligned
  // 8-byte loads/stores through memcpy compile to plain movs on x86-64 and
  // aarch64, so no alignment prologue is needed.
  std::uint8_t rotated[8];
  for (std::size_t i = 0; i < 8; ++i) rotated[i] = key[(offset + i) & 3];
  std::uint64_t k;
  std::memcpy(&k, rotated, 8);

  std::size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    std::uint64_t w[4];
    std::memcpy(w, data + i, 32);
    w[0] ^= k;
    w[1] ^= k;
    w[2] ^= k;
    w[3] ^= k;
    std::memcpy(data + i, w, 32);
  }
  for (; i + 8 <= len; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, data + i, 8);
    w ^= k;
    std::memcpy(data + i, &w, 8);
  }
  for (; i < len; ++i) data[i] ^= rotated[i & 7];
}

namespace {

// One RAND_bytes call per 1024 keys instead of one per frame: RAND_bytes takes
// a lock and runs the DRBG, which would dominate the cost of a small frame.
struct MaskKeyPool {
  static constexpr std::size_t kBlock = 4096;
  std::uint8_t bytes[kBlock];
  std::size_t pos = kBlock;

  void refill() noexcept {
    if (RAND_bytes(bytes, static_cast<int>(kBlock)) != 1) {
      // The OpenSSL DRBG failing is near impossible; keep keys unpredictable
      // anyway rather than reusing stale ones.
      std::random_device rd;
      for (std::size_t i = 0; i < kBlock; i += 4) {
        std::uint32_t v = rd();
        std::memcpy(bytes + i, &v, 4);
      }
    }
    pos = 0;
  }
};

thread_local MaskKeyPool mask_key_pool;

}  // namespace

void random_mask_key(std::uint8_t key[4]) noexcept {
  MaskKeyPool& pool = mask_key_pool;
  if (pool.pos + 4 > MaskKeyPool::kBlock) pool.refill();
  std::memcpy(key, pool.bytes + pool.pos, 4);
  pool.pos += 4;
}

}  // namespace conduit::wire
