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
  int gpus_per_task = 0;    // SLURM_GPUS_PER_TASK (0: not set): Slurm shows each task only its own GPUs
  std::string visible_devices;  // CUDA_VISIBLE_DEVICES as given (empty: unset, every GPU visible)
};

using EnvMap = std::map<std::string, std::string>;
EnvMap process_env();
// This machine's name (gethostname), or "localhost" when it has none.
std::string host_name();

// Precedence: torchrun (RANK + WORLD_SIZE), then OpenMPI, then Slurm, else a single process.
// Throws std::runtime_error naming the variable when one is malformed.
LaunchEnv detect_launch_env(const EnvMap& env);

// The GPU of this rank among the `device_count` it can see, following what the launcher showed it:
// - one visible device where the launcher narrowed what the rank sees: that one, whatever the local
//   rank (Slurm's --gpus-per-task binds a GPU per task and shows it as device 0; a wrapper may set
//   CUDA_VISIBLE_DEVICES per rank);
// - as many as the ranks on this node, or more: the local rank among them (torchrun's LOCAL_RANK,
//   OpenMPI's local rank, SLURM_LOCALID), as torchrun and Lightning do;
// - exactly the task's own GPUs under Slurm's --gpus-per-task=N: the first of them.
// Throws std::runtime_error when fewer devices are visible than the ranks that need one (a node's
// only GPU for several ranks included), since NCCL refuses two ranks on one device.
int cuda_device_index(const LaunchEnv& env, int device_count);

// "cuda:I" with the physical device behind it where CUDA_VISIBLE_DEVICES renumbers them, for the log.
std::string describe_cuda_device(const LaunchEnv& env, int index);

}  // namespace resumable
