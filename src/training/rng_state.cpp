#include "resumable/training/rng_state.h"

#include <ATen/Context.h>
#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>

namespace resumable {
namespace {

at::Generator cuda_generator() {
  // Index -1: the current device, which the trainer sets to this rank's GPU.
  return at::globalContext().defaultGenerator(at::Device(at::kCUDA));
}

}  // namespace

RngSnapshot capture_rng(bool cuda) {
  RngSnapshot s;
  auto cpu = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    s.cpu = cpu.get_state();
  }
  if (cuda) {
    auto g = cuda_generator();
    std::lock_guard<std::mutex> lock(g.mutex());
    s.cuda = g.get_state();
  }
  return s;
}

void restore_rng(const RngSnapshot& s) {
  auto cpu = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    cpu.set_state(s.cpu);
  }
  if (s.cuda.defined()) {
    auto g = cuda_generator();
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(s.cuda);
  }
}

void seed_rng(int64_t seed, int rank, bool cuda) {
  // Distinct streams per rank so ranks do not share dropout masks.
  uint64_t s = static_cast<uint64_t>(seed) * 1000003ULL + static_cast<uint64_t>(rank);
  auto cpu = at::detail::getDefaultCPUGenerator();
  {
    std::lock_guard<std::mutex> lock(cpu.mutex());
    cpu.set_current_seed(s);
  }
  if (cuda) {
    auto g = cuda_generator();
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_current_seed(s);
  }
}

}  // namespace resumable
