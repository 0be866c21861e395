#include "resumable/distributed/launch_env.h"

#include <gtest/gtest.h>

#include <stdexcept>

using namespace resumable;

TEST(LaunchEnv, NothingSetIsASingleProcess) {
  LaunchEnv e = detect_launch_env({});
  EXPECT_EQ(e.launcher, Launcher::kSingle);
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.world_size, 1);
}

TEST(LaunchEnv, Torchrun) {
  LaunchEnv e = detect_launch_env({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                                   {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29500"},
                                   {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "2"},
                                   {"TORCHELASTIC_ERROR_FILE", "/tmp/err.json"}});
  EXPECT_EQ(e.launcher, Launcher::kTorchrun);
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_addr, "node0");
  EXPECT_EQ(e.master_port, 29500);
  EXPECT_TRUE(e.agent_store);
  EXPECT_EQ(e.restart_count, 2);
  EXPECT_EQ(e.error_file, "/tmp/err.json");
}

TEST(LaunchEnv, TorchrunWinsOverMpiAndSlurm) {
  LaunchEnv e = detect_launch_env({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"},
                                   {"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                                   {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}});
  EXPECT_EQ(e.launcher, Launcher::kTorchrun);
  EXPECT_EQ(e.world_size, 2);
}

TEST(LaunchEnv, OpenMpiNeedsNoMasterAddress) {
  LaunchEnv e = detect_launch_env({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                                   {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"},
                                   {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}});
  EXPECT_EQ(e.launcher, Launcher::kOpenMPI);
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_TRUE(e.master_addr.empty());
}

TEST(LaunchEnv, SlurmDerivesHostAndPortOnOneNode) {
  LaunchEnv e = detect_launch_env({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "1"},
                                   {"SLURM_NTASKS_PER_NODE", "2"}, {"SLURM_JOB_NODELIST", "node7"},
                                   {"SLURM_JOB_ID", "4242"}, {"SLURM_RESTART_COUNT", "1"}});
  EXPECT_EQ(e.launcher, Launcher::kSlurm);
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.master_addr, "node7");
  EXPECT_EQ(e.master_port, 20000 + 4242);
  EXPECT_EQ(e.restart_count, 1);
  EXPECT_EQ(e.local_world_size, 2);
}

TEST(LaunchEnv, SlurmOverSeveralNodesNeedsMasterAddr) {
  EnvMap env{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}, {"SLURM_JOB_NODELIST", "node[1-2]"}};
  EXPECT_THROW(detect_launch_env(env), std::runtime_error);
  env["MASTER_ADDR"] = "node1";
  EXPECT_EQ(detect_launch_env(env).master_addr, "node1");
}

TEST(LaunchEnv, MalformedValuesNameTheVariable) {
  try {
    detect_launch_env({{"RANK", "x"}, {"WORLD_SIZE", "2"}});
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("RANK='x'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(detect_launch_env({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}),
               std::runtime_error);
  EXPECT_THROW(detect_launch_env({{"RANK", "0"}, {"WORLD_SIZE", "2"}}), std::runtime_error);  // no MASTER_ADDR
}

TEST(LaunchEnv, CudaDeviceIsTheLocalRank) {
  LaunchEnv e = detect_launch_env({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                                   {"MASTER_ADDR", "n1"}, {"MASTER_PORT", "29500"}});
  EXPECT_EQ(cuda_device_index(e, 4), 1);
  EXPECT_EQ(cuda_device_index(e, 8), 1);
  LaunchEnv mpi = detect_launch_env({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                                     {"OMPI_COMM_WORLD_LOCAL_RANK", "3"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}});
  EXPECT_EQ(cuda_device_index(mpi, 4), 3);
  EXPECT_EQ(cuda_device_index(LaunchEnv{}, 1), 0);
}

// Each launcher's variables as it sets them for one rank, and the devices that rank then sees.
TEST(LaunchEnv, SlurmGpusPerTaskShowsEachTaskOneGpuAsDeviceZero) {
  // sbatch --ntasks-per-node=8 --gpus-per-task=1: implicitly --gpu-bind=per_task:1, so task 3 of 8
  // sees only its own GPU, renumbered 0.
  LaunchEnv e = detect_launch_env({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "3"},
                                   {"SLURM_NTASKS_PER_NODE", "8"}, {"SLURM_JOB_NODELIST", "gpu01"},
                                   {"SLURM_JOB_ID", "42"}, {"SLURM_GPUS_PER_TASK", "1"},
                                   {"CUDA_VISIBLE_DEVICES", "3"}});
  EXPECT_EQ(e.gpus_per_task, 1);
  EXPECT_EQ(cuda_device_index(e, 1), 0);
  EXPECT_EQ(describe_cuda_device(e, 0), "cuda:0 (CUDA_VISIBLE_DEVICES=3: device 3)");
  // --gpus-per-task=a100:2: the task's own two GPUs; the rank takes the first.
  LaunchEnv two = detect_launch_env({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
                                     {"SLURM_NTASKS_PER_NODE", "4"}, {"SLURM_JOB_NODELIST", "gpu[01-02]"},
                                     {"MASTER_ADDR", "gpu01"}, {"SLURM_GPUS_PER_TASK", "a100:2"},
                                     {"CUDA_VISIBLE_DEVICES", "2,3"}});
  EXPECT_EQ(two.gpus_per_task, 2);
  EXPECT_EQ(cuda_device_index(two, 2), 0);
  EXPECT_EQ(describe_cuda_device(two, 0), "cuda:0 (CUDA_VISIBLE_DEVICES=2,3: device 2)");
}

TEST(LaunchEnv, SlurmGpusPerNodeOrGresShowsEveryTaskAllGpus) {
  // --gpus-per-node=8 or --gres=gpu:8: no per-task binding; task 3 takes its local id among all 8.
  LaunchEnv e = detect_launch_env({{"SLURM_PROCID", "11"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "3"},
                                   {"SLURM_NTASKS_PER_NODE", "8(x2)"}, {"SLURM_JOB_NODELIST", "gpu[01-02]"},
                                   {"MASTER_ADDR", "gpu01"}, {"CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7"}});
  EXPECT_EQ(e.gpus_per_task, 0);
  EXPECT_EQ(cuda_device_index(e, 8), 3);
  EXPECT_EQ(describe_cuda_device(e, 3), "cuda:3 (CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7: device 3)");
}

TEST(LaunchEnv, TorchrunTakesTheLocalRankAmongTheVisibleList) {
  LaunchEnv e = detect_launch_env({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                                   {"MASTER_ADDR", "n1"}, {"MASTER_PORT", "29500"},
                                   {"CUDA_VISIBLE_DEVICES", "GPU-5d2c,GPU-77af"}});
  EXPECT_EQ(cuda_device_index(e, 2), 1);
  EXPECT_EQ(describe_cuda_device(e, 1), "cuda:1 (CUDA_VISIBLE_DEVICES=GPU-5d2c,GPU-77af: device GPU-77af)");
  // All devices visible (no CUDA_VISIBLE_DEVICES), LOCAL_RANK=0: device 0, named plainly.
  LaunchEnv first = detect_launch_env({{"RANK", "0"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "0"},
                                       {"LOCAL_WORLD_SIZE", "8"}, {"MASTER_ADDR", "n1"}, {"MASTER_PORT", "29500"}});
  EXPECT_EQ(cuda_device_index(first, 8), 0);
  EXPECT_EQ(describe_cuda_device(first, 0), "cuda:0");
}

TEST(LaunchEnv, OpenMpiWithAPerRankVisibleDeviceUsesIt) {
  // A wrapper that sets CUDA_VISIBLE_DEVICES=$OMPI_COMM_WORLD_LOCAL_RANK: rank 2 sees one GPU.
  LaunchEnv e = detect_launch_env({{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                                   {"OMPI_COMM_WORLD_LOCAL_RANK", "2"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"},
                                   {"CUDA_VISIBLE_DEVICES", "2"}});
  EXPECT_EQ(cuda_device_index(e, 1), 0);
  EXPECT_EQ(cuda_device_index(e, 4), 2);  // without the wrapper: all four visible
}

TEST(LaunchEnv, MoreLocalRanksThanGpusIsRefused) {
  LaunchEnv e = detect_launch_env({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                                   {"MASTER_ADDR", "n1"}, {"MASTER_PORT", "29500"}});
  try {
    LaunchEnv four = e;
    four.local_world_size = 4;
    cuda_device_index(four, 2);
    FAIL() << "four ranks on two GPUs were accepted";
  } catch (const std::runtime_error& err) {
    EXPECT_NE(std::string(err.what()).find("4 ranks on this node but 2 visible CUDA device"), std::string::npos) << err.what();
  }
  EXPECT_THROW(cuda_device_index(LaunchEnv{}, 0), std::runtime_error);
  // Two ranks and the node's only GPU, nothing narrowing what each sees: they would share it.
  try {
    cuda_device_index(e, 1);
    FAIL() << "two ranks on one GPU were accepted";
  } catch (const std::runtime_error& err) {
    EXPECT_NE(std::string(err.what()).find("2 ranks on this node but 1 visible CUDA device"), std::string::npos) << err.what();
  }
  // Slurm's per-task binding of two GPUs, but three visible: not the task's own set.
  LaunchEnv slurm = detect_launch_env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "0"},
                                       {"SLURM_NTASKS_PER_NODE", "4"}, {"SLURM_JOB_NODELIST", "gpu01"},
                                       {"SLURM_GPUS_PER_TASK", "2"}});
  EXPECT_THROW(cuda_device_index(slurm, 3), std::runtime_error);
}
