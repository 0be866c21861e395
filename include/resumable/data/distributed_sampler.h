// Which samples each rank trains on. The epoch's sample order is a pure function of
// (seed, epoch, batch size, sample lengths), and progress is one global cursor: the number of
// samples of the epoch already consumed by all ranks together. Each step takes the next
// `batch_size` samples of the order and deals them out to the ranks. Hence a resume continues at
// the exact sample, on any number of ranks: nothing skipped, nothing repeated within the epoch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace resumable {

struct SamplerState {
  int64_t seed = 0;              // data-order seed
  int64_t epoch = 0;             // epoch whose order is being consumed (0-based)
  int64_t cursor = 0;            // samples of this epoch consumed so far, summed over ranks
  int64_t epoch_batch_size = 0;  // batch size this epoch's order was built for (length buckets)
  int64_t dataset_size = 0;      // samples per epoch; a resume on other data is refused

  template <class Visitor>
  void visit(Visitor&& v) {
    v("seed", seed);
    v("epoch", epoch);
    v("cursor", cursor);
    v("epoch_batch_size", epoch_batch_size);
    v("dataset_size", dataset_size);
  }
};

struct SamplerOptions {
  int64_t batch_size = 1;         // global: samples per optimizer step over all ranks
  bool length_bucketing = true;   // group samples of similar length into the same batch
  int64_t bucket_pool_batches = 32;  // batches sorted together when bucketing
};

class DistributedSampler {
 public:
  // `lengths[i]` orders sample i for bucketing (any monotone size measure).
  DistributedSampler(std::vector<int64_t> lengths, int64_t seed, SamplerOptions options);

  // The order of all samples in `epoch` for batches of `batch_size`: a permutation of 0..N-1.
  std::vector<int64_t> epoch_order(int64_t epoch, int64_t batch_size) const;

  // Starts `epoch` at its first sample.
  void start_epoch(int64_t epoch);
  bool epoch_done() const { return state_.cursor >= state_.dataset_size; }
  // The next step's samples for all ranks (at most batch_size), advancing the cursor.
  std::vector<int64_t> next_global_batch();
  // This rank's part of a global batch: every world_size-th sample starting at `rank`, so ranks
  // get equal shares of each length bucket. May be empty when the batch has fewer samples than ranks.
  static std::vector<int64_t> rank_share(const std::vector<int64_t>& global_batch, int rank, int world_size);

  int64_t dataset_size() const { return state_.dataset_size; }
  int64_t batch_size() const { return options_.batch_size; }
  int64_t steps_per_epoch() const;         // ceil(N / batch_size)
  int64_t remaining_steps_in_epoch() const;

  // A new batch size applies to the rest of the epoch at once (the cursor counts samples); the
  // order of the current epoch is kept, so no sample is skipped or repeated.
  void set_batch_size(int64_t batch_size) { options_.batch_size = batch_size; }

  const SamplerState& state() const { return state_; }
  // Throws std::invalid_argument when the state does not fit this dataset.
  void load_state(const SamplerState& s);

 private:
  void ensure_order();

  std::vector<int64_t> lengths_;
  SamplerOptions options_;
  SamplerState state_;
  std::vector<int64_t> order_;  // cache of epoch_order(state_.epoch, state_.epoch_batch_size)
  int64_t order_epoch_ = -1;
  int64_t order_batch_size_ = -1;
};

// splitmix64-seeded xoshiro-free generator for shuffles: portable and fully specified, unlike
// std::shuffle, whose algorithm differs between standard libraries.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();
  uint64_t below(uint64_t n);  // uniform in [0, n), no modulo bias
 private:
  uint64_t state_;
};

template <class T>
void deterministic_shuffle(std::vector<T>& v, SplitMix64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

}  // namespace resumable
