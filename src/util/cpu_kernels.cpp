#include "resumable/util/cpu_kernels.h"

#include <cstdlib>
#include <vector>

#include "resumable/util/errors.h"

namespace resumable {
namespace {

// What ATen itself demands before it dispatches to a kernel set (aten/src/ATen/native/DispatchStub.cpp):
// AVX512 = avx512vl + avx512bw + avx512dq + fma (and so avx512f), AVX2 = avx2 + fma.
std::vector<std::pair<const char*, bool>> needs(const std::string& kernels, const CpuFeatures& c) {
  if (kernels == "default") return {};
  if (kernels == "avx2") return {{"avx2", c.avx2}, {"fma", c.fma}};
  if (kernels == "avx512")
    return {{"avx512f", c.avx512f}, {"avx512vl", c.avx512vl}, {"avx512bw", c.avx512bw}, {"avx512dq", c.avx512dq},
            {"fma", c.fma}};
  throw ConfigError("CPU kernel set '" + kernels + "': expected auto, default, avx2 or avx512");
}

std::string refusal(const std::string& what, const std::string& kernels, const std::string& missing,
                    const CpuFeatures& cpu) {
  std::string best = best_cpu_kernels(cpu);
  return what + " asks for the " + kernels + " CPU kernels, but this CPU lacks " + missing +
         " (it would die with an illegal instruction): use auto" +
         (best.empty() ? std::string() : ", which picks " + best + " here");
}

}  // namespace

CpuFeatures read_cpu_features() {
  CpuFeatures c;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  c.x86_64 = true;
  c.avx2 = __builtin_cpu_supports("avx2");
  c.fma = __builtin_cpu_supports("fma");
  c.avx512f = __builtin_cpu_supports("avx512f");
  c.avx512vl = __builtin_cpu_supports("avx512vl");
  c.avx512bw = __builtin_cpu_supports("avx512bw");
  c.avx512dq = __builtin_cpu_supports("avx512dq");
#endif
  return c;
}

std::string missing_instructions(const std::string& kernels, const CpuFeatures& cpu) {
  std::string missing;
  for (const auto& [name, has] : needs(kernels, cpu))
    if (!has) missing += (missing.empty() ? "" : ", ") + std::string(name);
  return missing;
}

std::string best_cpu_kernels(const CpuFeatures& cpu) {
  if (!cpu.x86_64) return "";
  for (const char* k : {"avx512", "avx2"})
    if (missing_instructions(k, cpu).empty()) return k;
  return "default";
}

CpuKernelChoice choose_cpu_kernels(const std::string& configured, const char* user_env, const CpuFeatures& cpu) {
  if (user_env && *user_env) {
    const std::string asked = user_env;
    if (!cpu.x86_64) return {"", "ATEN_CPU_CAPABILITY=" + asked + " from the environment"};
    if (asked != "default" && asked != "avx2" && asked != "avx512")
      throw ConfigError("ATEN_CPU_CAPABILITY=" + asked + ": expected default, avx2 or avx512, or leave it unset");
    std::string missing = missing_instructions(asked, cpu);
    if (!missing.empty()) throw ConfigError(refusal("ATEN_CPU_CAPABILITY=" + asked, asked, missing, cpu));
    return {asked, asked + " (ATEN_CPU_CAPABILITY from the environment)"};
  }
  if (configured == "auto") {
    std::string best = best_cpu_kernels(cpu);
    if (best.empty()) return {"", "ATen's own choice (not an x86-64 CPU)"};
    return {best, best + " (auto: the best set this CPU runs)"};
  }
  if (!cpu.x86_64)
    throw ConfigError("cpu_kernels=" + configured + ": x86-64 kernels, but this is not an x86-64 CPU: use auto");
  std::string missing = missing_instructions(configured, cpu);
  if (!missing.empty()) throw ConfigError(refusal("cpu_kernels=" + configured, configured, missing, cpu));
  return {configured, configured + " (cpu_kernels)"};
}

CpuKernelChoice apply_cpu_kernels(const std::string& configured) {
  CpuKernelChoice choice = choose_cpu_kernels(configured, std::getenv("ATEN_CPU_CAPABILITY"), read_cpu_features());
  if (!choice.kernels.empty()) ::setenv("ATEN_CPU_CAPABILITY", choice.kernels.c_str(), /*overwrite=*/1);
  return choice;
}

}  // namespace resumable
