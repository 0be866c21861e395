#include "resumable/data/distributed_sampler.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

namespace resumable {

uint64_t SplitMix64::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::below(uint64_t n) {
  // Rejection sampling: drop the top partial range of 2^64 so every residue is equally likely.
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = next();
  while (x >= limit);
  return x % n;
}

DistributedSampler::DistributedSampler(std::vector<int64_t> lengths, int64_t seed, SamplerOptions options)
    : lengths_(std::move(lengths)), options_(options) {
  if (options_.batch_size < 1) throw std::invalid_argument("batch_size must be >= 1");
  state_.seed = seed;
  state_.dataset_size = static_cast<int64_t>(lengths_.size());
  state_.epoch_batch_size = options_.batch_size;
}

std::vector<int64_t> DistributedSampler::epoch_order(int64_t epoch, int64_t batch_size) const {
  const int64_t n = static_cast<int64_t>(lengths_.size());
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  SplitMix64 rng(static_cast<uint64_t>(state_.seed) * 0x100000001b3ULL ^ static_cast<uint64_t>(epoch));
  deterministic_shuffle(order, rng);
  if (!options_.length_bucketing || n <= batch_size) return order;

  // Bucketing: sort pools of consecutive samples by length, cut each pool into batches, then
  // shuffle the order of the full batches. The one partial batch stays last so every batch but
  // the final one is full.
  const int64_t pool = batch_size * options_.bucket_pool_batches;
  for (int64_t start = 0; start < n; start += pool) {
    auto first = order.begin() + start, last = order.begin() + std::min(n, start + pool);
    std::stable_sort(first, last, [&](int64_t a, int64_t b) { return lengths_[a] < lengths_[b]; });
  }
  const int64_t full = n / batch_size;
  std::vector<int64_t> batches(full);
  std::iota(batches.begin(), batches.end(), 0);
  deterministic_shuffle(batches, rng);
  std::vector<int64_t> out;
  out.reserve(n);
  for (int64_t b : batches) out.insert(out.end(), order.begin() + b * batch_size, order.begin() + (b + 1) * batch_size);
  out.insert(out.end(), order.begin() + full * batch_size, order.end());
  return out;
}

void DistributedSampler::start_epoch(int64_t epoch) {
  state_.epoch = epoch;
  state_.cursor = 0;
  state_.epoch_batch_size = options_.batch_size;
}

void DistributedSampler::ensure_order() {
  if (order_epoch_ != state_.epoch || order_batch_size_ != state_.epoch_batch_size) {
    order_ = epoch_order(state_.epoch, state_.epoch_batch_size);
    order_epoch_ = state_.epoch;
    order_batch_size_ = state_.epoch_batch_size;
  }
}

std::vector<int64_t> DistributedSampler::next_global_batch() {
  if (epoch_done()) return {};
  ensure_order();
  const int64_t end = std::min(state_.dataset_size, state_.cursor + options_.batch_size);
  std::vector<int64_t> batch(order_.begin() + state_.cursor, order_.begin() + end);
  state_.cursor = end;
  return batch;
}

std::vector<int64_t> DistributedSampler::rank_share(const std::vector<int64_t>& global_batch, int rank,
                                                    int world_size) {
  std::vector<int64_t> out;
  for (size_t i = static_cast<size_t>(rank); i < global_batch.size(); i += static_cast<size_t>(world_size))
    out.push_back(global_batch[i]);
  return out;
}

int64_t DistributedSampler::steps_per_epoch() const {
  return (state_.dataset_size + options_.batch_size - 1) / options_.batch_size;
}

int64_t DistributedSampler::remaining_steps_in_epoch() const {
  return (state_.dataset_size - state_.cursor + options_.batch_size - 1) / options_.batch_size;
}

void DistributedSampler::load_state(const SamplerState& s) {
  if (s.dataset_size != state_.dataset_size)
    throw std::invalid_argument("sampler: saved dataset has " + std::to_string(s.dataset_size) +
                                " samples, this one " + std::to_string(state_.dataset_size));
  if (s.cursor < 0 || s.cursor > s.dataset_size || s.epoch < 0 || s.epoch_batch_size < 1)
    throw std::invalid_argument("sampler: saved position (epoch " + std::to_string(s.epoch) + ", cursor " +
                                std::to_string(s.cursor) + ") is out of range");
  state_ = s;
}

}  // namespace resumable
