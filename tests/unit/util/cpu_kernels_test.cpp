#include "resumable/util/cpu_kernels.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "resumable/util/errors.h"

using namespace resumable;

namespace {

// The CPUs the trainer meets, by their features (not this machine's).
CpuFeatures avx2_only() {  // AMD EPYC 7002/7003 (Zen 2/3), Intel Alder Lake and later desktops
  CpuFeatures c;
  c.x86_64 = c.avx2 = c.fma = true;
  return c;
}
CpuFeatures avx512() {  // Intel Xeon since Skylake-SP, AMD Zen 4
  CpuFeatures c = avx2_only();
  c.avx512f = c.avx512vl = c.avx512bw = c.avx512dq = true;
  return c;
}
CpuFeatures xeon_phi() {  // AVX-512F without VL/BW/DQ: ATen does not use its AVX-512 kernels there
  CpuFeatures c = avx2_only();
  c.avx512f = true;
  return c;
}
CpuFeatures old_x86() {  // before Haswell: no AVX2
  CpuFeatures c;
  c.x86_64 = true;
  return c;
}
CpuFeatures arm() { return CpuFeatures{}; }

std::string refusal_of(const std::string& configured, const char* env, const CpuFeatures& cpu) {
  try {
    choose_cpu_kernels(configured, env, cpu);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(CpuKernels, AutoTakesTheBestSetTheCpuRuns) {
  EXPECT_EQ(choose_cpu_kernels("auto", nullptr, avx512()).kernels, "avx512");  // Zen 4 included: set, not left to ATen
  EXPECT_EQ(choose_cpu_kernels("auto", nullptr, avx2_only()).kernels, "avx2");
  EXPECT_EQ(choose_cpu_kernels("auto", nullptr, xeon_phi()).kernels, "avx2");
  EXPECT_EQ(choose_cpu_kernels("auto", nullptr, old_x86()).kernels, "default");
  EXPECT_EQ(choose_cpu_kernels("auto", nullptr, arm()).kernels, "");  // ATen's own choice stands
}

TEST(CpuKernels, AnExplicitSetTheCpuHasIsKept) {
  EXPECT_EQ(choose_cpu_kernels("avx512", nullptr, avx512()).kernels, "avx512");
  EXPECT_EQ(choose_cpu_kernels("avx2", nullptr, avx512()).kernels, "avx2");
  EXPECT_EQ(choose_cpu_kernels("default", nullptr, avx2_only()).kernels, "default");
}

TEST(CpuKernels, AnExplicitSetTheCpuLacksIsRefusedNamingTheMissingInstructions) {
  std::string e = refusal_of("avx512", nullptr, avx2_only());
  EXPECT_NE(e.find("cpu_kernels=avx512"), std::string::npos) << e;
  EXPECT_NE(e.find("avx512f, avx512vl, avx512bw, avx512dq"), std::string::npos) << e;
  EXPECT_NE(e.find("use auto, which picks avx2 here"), std::string::npos) << e;
  e = refusal_of("avx512", nullptr, xeon_phi());
  EXPECT_NE(e.find("lacks avx512vl, avx512bw, avx512dq"), std::string::npos) << e;
  e = refusal_of("avx2", nullptr, old_x86());
  EXPECT_NE(e.find("lacks avx2, fma"), std::string::npos) << e;
  EXPECT_NE(refusal_of("avx2", nullptr, arm()).find("not an x86-64 CPU"), std::string::npos);
}

TEST(CpuKernels, TheUsersAtenCpuCapabilityWinsAndIsCheckedTheSameWay) {
  EXPECT_EQ(choose_cpu_kernels("avx512", "avx2", avx512()).kernels, "avx2");
  EXPECT_EQ(choose_cpu_kernels("auto", "default", avx2_only()).kernels, "default");
  std::string e = refusal_of("auto", "avx512", avx2_only());
  EXPECT_NE(e.find("ATEN_CPU_CAPABILITY=avx512"), std::string::npos) << e;
  EXPECT_NE(e.find("lacks avx512f"), std::string::npos) << e;
  e = refusal_of("auto", "avx1024", avx512());
  EXPECT_NE(e.find("ATEN_CPU_CAPABILITY=avx1024: expected default, avx2 or avx512"), std::string::npos) << e;
  EXPECT_EQ(refusal_of("auto", "", avx2_only()), "");  // set but empty: as unset
}

TEST(CpuKernels, ThisCpusFeaturesAgreeWithTheKernel) {
  CpuFeatures here = read_cpu_features();
  if (!here.x86_64) GTEST_SKIP() << "not an x86-64 CPU";
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, flags;
  while (std::getline(cpuinfo, line))
    if (line.rfind("flags", 0) == 0) {
      flags = line + " ";
      break;
    }
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags";
  auto has = [&](const char* f) { return flags.find(" " + std::string(f) + " ") != std::string::npos; };
  EXPECT_EQ(here.avx2, has("avx2"));
  EXPECT_EQ(here.fma, has("fma"));
  EXPECT_EQ(here.avx512f, has("avx512f"));
  EXPECT_EQ(here.avx512vl, has("avx512vl"));
  EXPECT_EQ(here.avx512bw, has("avx512bw"));
  EXPECT_EQ(here.avx512dq, has("avx512dq"));
  EXPECT_EQ(missing_instructions(best_cpu_kernels(here), here), "");
}
