// xxHash (libxxhash): XXH3, the checksum of checkpoints written now (SIMD, several times faster
// than XXH64), and XXH64, the checksum of checkpoints written before it and the hash behind the
// deterministic data split (which must never change). A checksum names its algorithm
// ("xxh3:<hex>", "xxh64:<hex>"), so files of either kind are verified with their own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct XXH64_state_s;
struct XXH3_state_s;

namespace resumable {

// Streaming forms: update() any number of times, digest() at the end (does not reset).
class XXH64 {
 public:
  explicit XXH64(uint64_t seed = 0);
  ~XXH64();
  void update(const void* data, size_t size);
  uint64_t digest() const;

 private:
  XXH64_state_s* state_;
};

class XXH3 {
 public:
  explicit XXH3(uint64_t seed = 0);
  ~XXH3();
  void update(const void* data, size_t size);
  uint64_t digest() const;

 private:
  XXH3_state_s* state_;
};

uint64_t xxhash64(const void* data, size_t size, uint64_t seed = 0);
inline uint64_t xxhash64(std::string_view s, uint64_t seed = 0) { return xxhash64(s.data(), s.size(), seed); }
uint64_t xxh3(const void* data, size_t size, uint64_t seed = 0);
std::string hex64(uint64_t v);

}  // namespace resumable
