#include "resumable/training/step_profiler.h"

#include <cstdlib>
#include <set>

#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>

#include "resumable/util/log.h"

namespace resumable {

namespace prof = torch::profiler::impl;

StepProfiler::StepProfiler(bool main_rank, bool cuda) : cuda_(cuda) {
  const char* spec = std::getenv("RESUMABLE_PROFILE_STEPS");
  if (!spec || !main_rank) return;
  std::string s = spec;
  auto a = s.find(':'), b = a == std::string::npos ? a : s.find(':', a + 1);
  if (b == std::string::npos) {
    log::warn("RESUMABLE_PROFILE_STEPS={}: expected FIRST:LAST:FILE; not profiling", s);
    return;
  }
  first_ = std::atoll(s.substr(0, a).c_str());
  last_ = std::atoll(s.substr(a + 1, b - a - 1).c_str());
  file_ = s.substr(b + 1);
}

void StepProfiler::before_step(int64_t step) {
  if (step != first_ || file_.empty()) return;
  std::set<prof::ActivityType> activities{prof::ActivityType::CPU};
  if (cuda_) activities.insert(prof::ActivityType::CUDA);
  prof::ProfilerConfig config(prof::ProfilerState::KINETO);
  torch::autograd::profiler::prepareProfiler(config, activities);
  torch::autograd::profiler::enableProfiler(config, activities);
  active_ = true;
}

void StepProfiler::after_step(int64_t step) {
  if (!active_ || step < last_) return;
  if (cuda_) torch::cuda::synchronize();  // every kernel of the last step inside the trace
  torch::autograd::profiler::disableProfiler()->save(file_);
  active_ = false;
  log::info("profiled steps {}..{} into {}", first_, last_, file_);
}

}  // namespace resumable
