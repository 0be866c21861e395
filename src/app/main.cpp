// trainer: the command-line entry point. Parses flags and config, finds out how it was launched,
// joins the other ranks, and hands over to the Trainer. Every error a user can cause ends here as
// one line naming what is wrong, and a documented exit code (errors.h).
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <ATen/Context.h>
#include <torch/csrc/autograd/anomaly_mode.h>
#include <torch/version.h>

#include "resumable/tools/ckpt_command.h"
#include "resumable/tools/predict_command.h"
#include "resumable/config/cli.h"
#include "resumable/util/cpu_kernels.h"
#include "resumable/distributed/distributed.h"
#include "resumable/util/errors.h"
#include "resumable/distributed/launch_env.h"
#include "resumable/util/log.h"
#include "resumable/util/signals.h"
#include "resumable/training/dry_run.h"
#include "resumable/training/run_plan.h"
#include "resumable/training/trainer.h"

using namespace resumable;

namespace {

std::string one_line(std::string s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

std::string error_text(const std::exception& e) {
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) return one_line(c->what_without_backtrace());
  return one_line(e.what());
}

// torchrun reads a failing worker's error from this file (its "reply file" format).
void write_torchrun_error_file(const LaunchEnv& env, const std::string& message) {
  if (env.error_file.empty()) return;
  nlohmann::json j = {{"message",
                       {{"message", message},
                        {"extraInfo",
                         {{"py_callstack", ""},
                          {"timestamp", std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                           std::chrono::system_clock::now().time_since_epoch())
                                                           .count())}}}}}};
  std::ofstream(env.error_file) << j.dump();
}

// Launchers that cannot pass an exit code on (torchrun exits 1 whatever its workers returned)
// set RESUMABLE_EXIT_FILE; rank 0 writes its exit code there, so a wrapper script can tell
// "stopped and saved" (75) from a crash.
void write_exit_file(const LaunchEnv& env, int code) {
  const char* path = std::getenv("RESUMABLE_EXIT_FILE");
  if (!path || !*path) return;
  // Rank 0's code; and 76 from any survivor of a lost rank, since the rank lost may be rank 0 and
  // the launcher must still learn that the survivors saved.
  if (env.rank != 0 && code != exit_code::kPeerLost) return;
  std::ofstream(path) << code << "\n";
}

void set_threads(const TrainConfig& cfg, const LaunchEnv& env) {
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  int threads = cfg.threads > 0 ? static_cast<int>(cfg.threads) : std::max(1, cores / std::max(1, env.local_world_size));
  at::set_num_threads(threads);
}

// --debug: the mode for chasing a bug on one GPU (or the CPU), as Lightning's deterministic and
// detect_anomaly flags; apply_overrides() sets its config part. Deterministic kernels: cuBLAS needs
// its workspace fixed before its first call, and an op without a deterministic implementation is
// an error rather than a warning, since only then do cuDNN and memory-efficient attention pick their
// deterministic backward. Anomaly detection names the forward op of a NaN in backward.
void enter_debug_mode(const TrainConfig& cfg, const LaunchEnv& env) {
  ::setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
  at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/false);
  at::globalContext().setDeterministicCuDNN(true);
  at::globalContext().setBenchmarkCuDNN(false);
  torch::autograd::AnomalyMode::set_enabled(true);
  log::warn("debug mode: deterministic algorithms, autograd anomaly detection, evaluation on {} words, saves in the "
            "training thread (slow; not for real runs){}",
            cfg.eval_limit,
            env.world_size > 1 ? fmt::format("; meant for one process, running {} ranks", env.world_size) : "");
}

// `trainer ckpt ...` and `trainer predict ...`: the tools, which start no training.
bool is_tool(int argc, char** argv) {
  return argc > 1 && (std::string(argv[1]) == "ckpt" || std::string(argv[1]) == "predict");
}

int run(int argc, char** argv) {
  if (is_tool(argc, argv)) apply_cpu_kernels("auto");  // they run tensor code too: a bad ATEN_CPU_CAPABILITY is refused
  if (argc > 1 && std::string(argv[1]) == "ckpt") return run_ckpt_command(argc - 1, argv + 1);
  if (argc > 1 && std::string(argv[1]) == "predict") return run_predict_command(argc - 1, argv + 1);
  CliArgs cli = parse_cli(argc, argv);
  if (cli.help) {
    std::cout << cli_help_text();
    return exit_code::kDone;
  }
  if (cli.version) {
    std::cout << "trainer " << RESUMABLE_VERSION << " (torch " << TORCH_VERSION << ")\n";
    return exit_code::kDone;
  }
  TrainConfig base = cli.config_path ? load_config_file(*cli.config_path) : TrainConfig{};
  TrainConfig cfg = apply_overrides(base, cli);
  if (cli.print_config || cli.dry_run) return dry_run(cfg, cli);  // rank 0 answers; nothing is written
  LaunchEnv env = detect_launch_env(process_env());
  init_logging(env.rank, env.world_size);
  if (cli.debug) enter_debug_mode(cfg, env);
  const CpuKernelChoice kernels = apply_cpu_kernels(cfg.cpu_kernels);
  set_threads(cfg, env);

  DistributedOptions options;
  options.timeout = std::chrono::milliseconds(static_cast<int64_t>(cfg.timeout_s * 1000));
  const c10::Device device = choose_device(cfg.device, env);
  options.nccl = device.is_cuda();
  options.cuda_device = device.is_cuda() ? device.index() : 0;
  auto dist = Distributed::connect(env, options);
  log::info("joined {} rank(s) via {} (local rank {}/{}) on {}, {} thread(s) per rank, CPU kernels {}; process "
            "group {}, collective timeout {:g}s",
            env.world_size, launcher_name(env.launcher), env.local_rank, env.local_world_size,
            device.is_cuda() ? describe_cuda_device(env, device.index()) : device.str(), at::get_num_threads(),
            kernels.reason, options.nccl ? "gloo (CPU) + NCCL (CUDA)" : "gloo", cfg.timeout_s);

  int code = exit_code::kRuntimeError;
  try {
    Trainer trainer(plan_run(cfg, cli, *dist), env, *dist);
    stop_signals_become_requests();  // the loop and the evaluator poll them from here on
    code = cli.eval ? trainer.evaluate() : trainer.train();
  } catch (...) {
    // Fatal: main() logs it and exits at once. The process group must not be destroyed on the
    // way: with a dead or hung peer its destructor may block (NCCL's communicators, gloo's
    // worker threads finishing queued work), so it is left to the exit.
    dist->abandon();
    throw;
  }
  // A lost rank: the group has a dead or frozen member, and its teardown may block on it.
  if (code == exit_code::kPeerLost) {
    dist->abandon();
    return code;
  }
  // An orderly end, whatever the code (done, stopped and saved, ...): every rank got here.
  dist->shutdown();
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // As early as possible (a launcher may signal as soon as we exist): from here to the first step
  // a stop signal ends the process at once with 75, since there is nothing new to save yet. The
  // tools (ckpt, predict) keep the default dispositions.
  if (!is_tool(argc, argv)) install_stop_signal_handlers();
  LaunchEnv env;
  try {
    env = detect_launch_env(process_env());
  } catch (...) {
  }
  int code = exit_code::kRuntimeError;
  std::string message;
  try {
    code = run(argc, argv);
  } catch (const RunDirectoryBusy& e) {
    code = exit_code::kRunDirectoryBusy, message = error_text(e);
  } catch (const ConfigError& e) {
    code = exit_code::kBadInput, message = error_text(e);
  } catch (const DataError& e) {
    code = exit_code::kBadInput, message = error_text(e);
  } catch (const SaveError& e) {
    code = exit_code::kSaveFailed, message = error_text(e);
  } catch (const CheckpointError& e) {
    code = exit_code::kRuntimeError, message = error_text(e);
  } catch (const std::exception& e) {
    code = exit_code::kRuntimeError, message = error_text(e);
  }
  if (!message.empty()) {
    if (logging_ready()) log_error(message);
    else std::fprintf(stderr, "trainer: error: %s\n", message.c_str());
    write_torchrun_error_file(env, message);
  }
  write_exit_file(env, code);
  std::fflush(stdout);
  std::fflush(stderr);
  // Skip what is left to destroy on failure (statics, atexit handlers): run() has abandoned the
  // process group rather than destroyed it, and nothing else needs to block this exit.
  if (code != exit_code::kDone) std::_Exit(code);
  return code;
}
