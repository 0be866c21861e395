// ATen's CPU kernel set (its ATEN_CPU_CAPABILITY), chosen from what this CPU really runs.
//
// ATen reads ATEN_CPU_CAPABILITY once, at the first tensor operation, and trusts it without asking
// the CPU: "avx512" on a CPU without AVX-512 (AMD EPYC 7002/7003, Intel desktop CPUs since Alder
// Lake) dies with an illegal instruction at the first step. So the trainer decides and says so in
// its log: `auto` takes the best set the CPU has (torch 2.11 picks the same by itself, AVX512 on
// the AMD Zen 4 checked), and an explicit set (the config's `cpu_kernels`, or the user's own
// ATEN_CPU_CAPABILITY) that the CPU lacks is refused at start with exit 2.
//
// Pure functions of the features they are given, so the choice is tested for any CPU; only
// read_cpu_features() asks this one.
#pragma once

#include <string>

namespace resumable {

// The x86-64 instruction sets ATen's kernel sets need (all false on other architectures).
struct CpuFeatures {
  bool x86_64 = false;
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512vl = false;
  bool avx512bw = false;
  bool avx512dq = false;
};

// This CPU's features, as cpuid and the OS report them (AVX-512 counts only where the OS saves
// its registers).
CpuFeatures read_cpu_features();

// The instruction sets `kernels` ("default", "avx2", "avx512") needs and `cpu` lacks, comma
// separated; empty when it runs. Throws ConfigError for a name ATen does not know.
std::string missing_instructions(const std::string& kernels, const CpuFeatures& cpu);

// The best kernel set `cpu` runs: "avx512", "avx2" or "default"; empty on other architectures,
// where ATen's own choice stands.
std::string best_cpu_kernels(const CpuFeatures& cpu);

struct CpuKernelChoice {
  std::string kernels;  // the ATEN_CPU_CAPABILITY to set; empty: leave ATen to choose
  std::string reason;   // one line for the log
};

// `configured` is the config's cpu_kernels (auto | default | avx2 | avx512); `user_env` the
// ATEN_CPU_CAPABILITY found in the environment (nullptr: unset), which wins, as it always has.
// Throws ConfigError naming the setting and the missing instruction sets when the CPU cannot run
// the set asked for.
CpuKernelChoice choose_cpu_kernels(const std::string& configured, const char* user_env, const CpuFeatures& cpu);

// choose_cpu_kernels() for this CPU and this process's environment, then ATEN_CPU_CAPABILITY set
// to the choice. Call before the first tensor operation.
CpuKernelChoice apply_cpu_kernels(const std::string& configured);

}  // namespace resumable
