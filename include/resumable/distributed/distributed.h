// The process group every rank joins, and the few collectives the trainer needs besides the
// gradient allreduce (which c10d::Reducer does). One bootstrap for every launcher:
//   launch environment -> TCPStore (or in-process store for one rank) -> c10d::ProcessGroup
//   with Gloo for CPU tensors and, on GPU runs, NCCL for CUDA tensors.
// Every collective is bounded by the timeout, so a dead peer makes the others fail, never hang.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/util/intrusive_ptr.h>

#include "resumable/distributed/launch_env.h"

namespace c10d {
class ProcessGroup;
class Store;
}  // namespace c10d

namespace resumable {

struct DistributedOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  bool nccl = false;     // add an NCCL backend for CUDA tensors
  int cuda_device = 0;   // this rank's GPU (NCCL runs)
};

class Distributed {
 public:
  // Collective over all ranks of `env`; returns once every rank has joined.
  static std::unique_ptr<Distributed> connect(const LaunchEnv& env, const DistributedOptions& options);
  ~Distributed();
  // At an orderly end, as Python's destroy_process_group(): NCCL communicators are finalized
  // instead of leaked. Not on error paths, where a communicator may be stuck with a dead peer.
  void shutdown();
  // On a fatal error, before the process exits: the process group and the store are left to the
  // exit, never destroyed, since a group whose peer died or hangs may block in its destructor
  // (NCCL's communicators; gloo's worker threads finish their queued work first). Destroying this
  // object afterwards is then harmless; no collective may follow.
  void abandon();

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  bool is_main() const { return rank_ == 0; }
  const c10::intrusive_ptr<c10d::ProcessGroup>& group() const { return group_; }

  // All collectives below take CPU tensors (Gloo) and block until done.
  void barrier();
  void all_reduce_sum(at::Tensor& t);
  void broadcast(at::Tensor& t, int root = 0);
  // Every rank's `t` (same shape and dtype on all ranks), in rank order.
  std::vector<at::Tensor> all_gather(const at::Tensor& t);
  std::string broadcast_string(const std::string& s, int root = 0);
  // True on every rank iff `ok` is true on every rank: ranks agree before they branch.
  bool all_true(bool ok);

  // Every rank runs `work` and gets every rank's result, in rank order. For work whose length no
  // collective timeout can bound: rank 0 writing or verifying a large checkpoint on a slow file
  // system, every rank reading one, a prompt. Ranks wait on the store, not in a collective, and a
  // rank still at work shows it is alive with a heartbeat: one whose heartbeat stops for the
  // collective timeout is taken as dead (as is one whose connection drops). `limit` (zero: none)
  // bounds the whole wait, and `limit_flag` names the setting a user raises when it is too short;
  // `what` names the work in errors ("saving a checkpoint"). If `work` throws, it throws on its
  // rank and every other rank gets a runtime_error naming that rank.
  // Thrown by gather_after when `limit` ran out while every rank was still alive.
  struct LimitExceeded : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  std::vector<std::string> gather_after(const std::string& what, const std::function<std::string()>& work,
                                        std::chrono::milliseconds limit = std::chrono::milliseconds(0),
                                        const char* limit_flag = "");

 private:
  Distributed() = default;
  // connect()'s part after the rendezvous: the process group, then a first barrier.
  void join(const LaunchEnv& env, const DistributedOptions& options);
  int rank_ = 0;
  int world_size_ = 1;
  std::chrono::milliseconds timeout_{0};
  int64_t slow_rounds_ = 0;  // gather_after calls so far: every rank counts the same
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
};

}  // namespace resumable
