#include "resumable/util/xxhash64.h"

#include <cstdio>
#include <new>

#include <xxhash.h>

namespace resumable {

XXH64::XXH64(uint64_t seed) : state_(XXH64_createState()) {
  if (!state_) throw std::bad_alloc();
  XXH64_reset(state_, seed);
}
XXH64::~XXH64() { XXH64_freeState(state_); }
void XXH64::update(const void* data, size_t size) { XXH64_update(state_, data, size); }
uint64_t XXH64::digest() const { return XXH64_digest(state_); }

XXH3::XXH3(uint64_t seed) : state_(XXH3_createState()) {
  if (!state_) throw std::bad_alloc();
  XXH3_64bits_reset_withSeed(state_, seed);
}
XXH3::~XXH3() { XXH3_freeState(state_); }
void XXH3::update(const void* data, size_t size) { XXH3_64bits_update(state_, data, size); }
uint64_t XXH3::digest() const { return XXH3_64bits_digest(state_); }

uint64_t xxhash64(const void* data, size_t size, uint64_t seed) { return ::XXH64(data, size, seed); }
uint64_t xxh3(const void* data, size_t size, uint64_t seed) { return XXH3_64bits_withSeed(data, size, seed); }

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace resumable
