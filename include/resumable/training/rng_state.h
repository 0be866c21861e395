// This rank's random number generators: the CPU generator (dropout on CPU) and, on GPU runs, the
// current CUDA device's. Each training step starts them afresh from (seed, step, rank): any rank
// can tell every other rank's streams without asking it, so a checkpoint written by any one rank
// (the survivors of a lost rank's) continues exactly as the uninterrupted run, dropout masks and all.
#pragma once

#include <ATen/core/Tensor.h>

namespace resumable {

struct RngSnapshot {
  at::Tensor cpu;   // uint8 state of the default CPU generator
  at::Tensor cuda;  // uint8 state of the current CUDA device's generator; undefined on CPU runs
};

RngSnapshot capture_rng(bool cuda);
void restore_rng(const RngSnapshot& snapshot);
// Seeds every generator of this process from (seed, rank): the fresh start of a rank.
void seed_rng(int64_t seed, int rank, bool cuda);
// The streams `rank` starts training step `step` with (1-based, as global_step after it)...
void seed_rng_for_step(int64_t seed, int64_t step, int rank, bool cuda);
// ...and their states, computed here for any rank without touching this process's streams.
RngSnapshot rng_for_step(int64_t seed, int64_t step, int rank, bool cuda);

}  // namespace resumable
