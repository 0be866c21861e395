// Who launched us and where rank 0 is: torchrun, OpenMPI's mpirun, Slurm's srun, or nobody.
// Read once from the environment at start-up; everything else takes a LaunchEnv.
#pragma once

#include <map>
#include <string>

namespace resumable {

enum class Launcher { kSingle, kTorchrun, kOpenMPI, kSlurm };
const char* launcher_name(Launcher l);

struct LaunchEnv {
  Launcher launcher = Launcher::kSingle;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr;  // empty: decided by the rendezvous (mpirun: rank 0's host)
  int master_port = 0;      // 0: not given
  bool agent_store = false; // torchrun's agent already serves the TCPStore: every rank is a client
  int restart_count = 0;    // torchrun attempt / Slurm requeue count
  std::string error_file;   // TORCHELASTIC_ERROR_FILE: where torchrun wants a failing worker's error
};

using EnvMap = std::map<std::string, std::string>;
EnvMap process_env();
// This machine's name (gethostname), or "localhost" when it has none.
std::string host_name();

// Precedence: torchrun (RANK + WORLD_SIZE), then OpenMPI, then Slurm, else a single process.
// Throws std::runtime_error naming the variable when one is malformed.
LaunchEnv detect_launch_env(const EnvMap& env);

// The GPU of this rank among `device_count` visible ones: its local rank (as torchrun's
// LOCAL_RANK, OpenMPI's local rank or SLURM_LOCALID). Throws std::runtime_error when there are more
// ranks on this node than GPUs, since NCCL refuses two ranks on one device.
int cuda_device_index(const LaunchEnv& env, int device_count);

}  // namespace resumable
