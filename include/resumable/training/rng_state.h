// This rank's random number generators: the CPU generator (dropout on CPU) and, on GPU runs, the
// current CUDA device's. Saved for every rank (gathered to rank 0), so a resume at the same world
// size draws the very same dropout masks as the uninterrupted run.
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

}  // namespace resumable
