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

uint64_t rank_seed(int64_t seed, int rank) {
  // Distinct streams per rank so ranks do not share dropout masks.
  return static_cast<uint64_t>(seed) * 1000003ULL + static_cast<uint64_t>(rank);
}

// splitmix64's finalizer: neighbouring steps get unrelated seeds.
int64_t step_seed(int64_t seed, int64_t step) {
  uint64_t z = static_cast<uint64_t>(seed) + 0x9e3779b97f4a7c15ULL * (static_cast<uint64_t>(step) + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return static_cast<int64_t>((z ^ (z >> 31)) >> 1);
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
  const uint64_t s = rank_seed(seed, rank);
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

void seed_rng_for_step(int64_t seed, int64_t step, int rank, bool cuda) { seed_rng(step_seed(seed, step), rank, cuda); }

RngSnapshot rng_for_step(int64_t seed, int64_t step, int rank, bool cuda) {
  const uint64_t s = rank_seed(step_seed(seed, step), rank);
  RngSnapshot out;
  out.cpu = at::detail::createCPUGenerator(s).get_state();
  if (cuda) {
    // The current device's generator, seeded for a moment and put back: what set_current_seed
    // leaves there is the state (seed, offset 0) the rank's own generator will hold.
    auto g = cuda_generator();
    std::lock_guard<std::mutex> lock(g.mutex());
    at::Tensor held = g.get_state();
    g.set_current_seed(s);
    out.cuda = g.get_state();
    g.set_state(held);
  }
  return out;
}

}  // namespace resumable
