#include "resumable/distributed/launch_env.h"

#include <cstdlib>
#include <stdexcept>
#include <unistd.h>

extern char** environ;

namespace resumable {
namespace {

const std::string* find(const EnvMap& env, const std::string& key) {
  auto it = env.find(key);
  return it == env.end() || it->second.empty() ? nullptr : &it->second;
}

int parse_int(const EnvMap& env, const std::string& key, int fallback, bool required = false) {
  const std::string* v = find(env, key);
  if (!v) {
    if (required) throw std::runtime_error("environment variable " + key + " is not set");
    return fallback;
  }
  // Slurm writes counts like "2(x3)": the leading integer is what we want.
  size_t used = 0;
  long value = 0;
  try {
    value = std::stol(*v, &used);
  } catch (...) {
    used = 0;
  }
  if (used == 0 || value < 0)
    throw std::runtime_error("environment variable " + key + "='" + *v + "': expected a non-negative integer");
  return static_cast<int>(value);
}

void check_rank(const LaunchEnv& e, const char* rank_var, const char* size_var) {
  if (e.world_size < 1 || e.rank >= e.world_size)
    throw std::runtime_error(std::string(rank_var) + "=" + std::to_string(e.rank) + " is not below " +
                             size_var + "=" + std::to_string(e.world_size));
  if (e.local_world_size < 1) throw std::runtime_error("local world size must be >= 1");
}

}  // namespace

const char* launcher_name(Launcher l) {
  switch (l) {
    case Launcher::kSingle: return "single process";
    case Launcher::kTorchrun: return "torchrun";
    case Launcher::kOpenMPI: return "mpirun";
    case Launcher::kSlurm: return "slurm";
  }
  return "?";
}

EnvMap process_env() {
  EnvMap env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

LaunchEnv detect_launch_env(const EnvMap& env) {
  LaunchEnv e;
  if (find(env, "MASTER_ADDR")) e.master_addr = *find(env, "MASTER_ADDR");
  e.master_port = parse_int(env, "MASTER_PORT", 0);
  if (e.master_port > 65535) throw std::runtime_error("MASTER_PORT=" + std::to_string(e.master_port) + ": expected a port below 65536");

  if (find(env, "RANK") && find(env, "WORLD_SIZE")) {
    e.launcher = Launcher::kTorchrun;
    e.rank = parse_int(env, "RANK", 0, true);
    e.world_size = parse_int(env, "WORLD_SIZE", 1, true);
    e.local_rank = parse_int(env, "LOCAL_RANK", 0);
    e.local_world_size = parse_int(env, "LOCAL_WORLD_SIZE", 1);
    e.restart_count = parse_int(env, "TORCHELASTIC_RESTART_COUNT", 0);
    const std::string* agent = find(env, "TORCHELASTIC_USE_AGENT_STORE");
    e.agent_store = agent && (*agent == "True" || *agent == "true" || *agent == "1");
    if (find(env, "TORCHELASTIC_ERROR_FILE")) e.error_file = *find(env, "TORCHELASTIC_ERROR_FILE");
    if (e.world_size > 1 && (e.master_addr.empty() || e.master_port == 0))
      throw std::runtime_error("RANK/WORLD_SIZE are set but MASTER_ADDR/MASTER_PORT are not (torchrun sets all four)");
    check_rank(e, "RANK", "WORLD_SIZE");
  } else if (find(env, "OMPI_COMM_WORLD_SIZE")) {
    e.launcher = Launcher::kOpenMPI;
    e.rank = parse_int(env, "OMPI_COMM_WORLD_RANK", 0, true);
    e.world_size = parse_int(env, "OMPI_COMM_WORLD_SIZE", 1, true);
    e.local_rank = parse_int(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0);
    e.local_world_size = parse_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", 1);
    e.restart_count = parse_int(env, "SLURM_RESTART_COUNT", 0);
    check_rank(e, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE");
  } else if (find(env, "SLURM_PROCID") && find(env, "SLURM_NTASKS")) {
    e.launcher = Launcher::kSlurm;
    e.rank = parse_int(env, "SLURM_PROCID", 0, true);
    e.world_size = parse_int(env, "SLURM_NTASKS", 1, true);
    e.local_rank = parse_int(env, "SLURM_LOCALID", 0);
    e.local_world_size = parse_int(env, "SLURM_NTASKS_PER_NODE", 0);
    if (e.local_world_size == 0) e.local_world_size = parse_int(env, "SLURM_STEP_TASKS_PER_NODE", 1);
    e.restart_count = parse_int(env, "SLURM_RESTART_COUNT", 0);
    if (e.master_addr.empty() && e.world_size > 1) {
      // A one-node job needs no launch script help: its node list is one plain host name.
      const std::string* nodes = find(env, "SLURM_JOB_NODELIST");
      if (nodes && nodes->find_first_of("[,") == std::string::npos) e.master_addr = *nodes;
      else
        throw std::runtime_error("Slurm job over several nodes: set MASTER_ADDR to the first host "
                                 "(launch/slurm.sbatch does: scontrol show hostnames | head -1)");
    }
    if (e.master_port == 0 && e.world_size > 1) {
      // Jobs sharing a node must not collide on one port: derive it from the job id.
      e.master_port = 20000 + parse_int(env, "SLURM_JOB_ID", 0) % 20000;
    }
    check_rank(e, "SLURM_PROCID", "SLURM_NTASKS");
  }
  if (e.local_rank >= e.local_world_size) e.local_world_size = e.local_rank + 1;
  if (const std::string* g = find(env, "SLURM_GPUS_PER_TASK")) {
    // "2", or with a type: "a100:2".
    std::string count = g->substr(g->rfind(':') == std::string::npos ? 0 : g->rfind(':') + 1);
    e.gpus_per_task = parse_int({{"SLURM_GPUS_PER_TASK", count}}, "SLURM_GPUS_PER_TASK", 0);
  }
  if (find(env, "CUDA_VISIBLE_DEVICES")) e.visible_devices = *find(env, "CUDA_VISIBLE_DEVICES");
  return e;
}

int cuda_device_index(const LaunchEnv& env, int device_count) {
  if (device_count <= 0) throw std::runtime_error("no CUDA device is visible (check CUDA_VISIBLE_DEVICES, or use --device cpu)");
  if (env.local_world_size <= device_count) return env.local_rank;
  // One device for several ranks on the node: each rank's own where the launcher narrowed what it
  // sees (Slurm's binding, a per-rank CUDA_VISIBLE_DEVICES); the node's only GPU, shared, otherwise.
  const bool narrowed = env.gpus_per_task > 0 || !env.visible_devices.empty();
  if (device_count == 1 && narrowed) return 0;
  if (env.gpus_per_task > 0 && device_count == env.gpus_per_task) return 0;
  throw std::runtime_error(std::to_string(env.local_world_size) + " ranks on this node but " +
                           std::to_string(device_count) +
                           " visible CUDA device(s): NCCL needs a GPU per rank (start one rank per GPU, or use "
                           "--device cpu)");
}

std::string describe_cuda_device(const LaunchEnv& env, int index) {
  std::string name = "cuda:" + std::to_string(index);
  if (env.visible_devices.empty()) return name;
  // The index-th entry of the comma-separated list is the device CUDA numbers `index` here.
  size_t begin = 0;
  for (int i = 0; i < index && begin != std::string::npos; ++i) {
    begin = env.visible_devices.find(',', begin);
    if (begin != std::string::npos) ++begin;
  }
  if (begin == std::string::npos) return name;
  size_t end = env.visible_devices.find(',', begin);
  return name + " (CUDA_VISIBLE_DEVICES=" + env.visible_devices + ": device " +
         env.visible_devices.substr(begin, end == std::string::npos ? std::string::npos : end - begin) + ")";
}

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

}  // namespace resumable
