// Benchmark-only switch: RESUMABLE_PROFILE_STEPS="FIRST:LAST:FILE" records global steps
// FIRST..LAST with torch's profiler (Kineto: CPU ops and, on a GPU, CUDA kernels and runtime calls)
// and writes a Chrome trace to FILE on rank 0. scripts/gpu-check counts kernels per step and the
// GPU's busy share from it, which says whether a step is bound by launches or by arithmetic.
// Unset in real runs, where every call is a no-op.
#pragma once

#include <cstdint>
#include <string>

namespace resumable {

class StepProfiler {
 public:
  StepProfiler(bool main_rank, bool cuda);
  void before_step(int64_t step);  // the global step about to run
  void after_step(int64_t step);   // the global step just done

 private:
  int64_t first_ = -1, last_ = -1;
  std::string file_;
  bool cuda_ = false, active_ = false;
};

}  // namespace resumable
