// XXH64 (Yann Collet's xxHash, 64-bit variant): the checksum of checkpoint contents and the hash
// behind the deterministic data split. Fast enough (GB/s) to verify every file on load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace resumable {

// Streaming form: update() any number of times, digest() at the end (does not reset).
class XXH64 {
 public:
  explicit XXH64(uint64_t seed = 0);
  void update(const void* data, size_t size);
  uint64_t digest() const;

 private:
  uint64_t v_[4];
  uint64_t total_ = 0;
  unsigned char buffer_[32];
  size_t buffered_ = 0;
  uint64_t seed_;
};

uint64_t xxhash64(const void* data, size_t size, uint64_t seed = 0);
inline uint64_t xxhash64(std::string_view s, uint64_t seed = 0) { return xxhash64(s.data(), s.size(), seed); }
std::string hex64(uint64_t v);

}  // namespace resumable
