// The training run: builds every component from the config and the resume plan, then
//   restore -> loop { batch, step, record, maybe validate, maybe save, maybe stop } -> exit code.
// A policy decides *when* to save (save_due), the CheckpointManager decides *how*.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <c10/core/Device.h>
#include <torch/optim/adamw.h>

#include "resumable/batch.h"
#include "resumable/checkpoint_manager.h"
#include "resumable/checkpoint_state.h"
#include "resumable/cli.h"
#include "resumable/cmudict.h"
#include "resumable/config.h"
#include "resumable/data_parallel.h"
#include "resumable/distributed_sampler.h"
#include "resumable/evaluator.h"
#include "resumable/launch_env.h"
#include "resumable/loss_scaler.h"
#include "resumable/model.h"
#include "resumable/resume_planner.h"
#include "resumable/train_state.h"
#include "resumable/warmup_cosine_schedule.h"

namespace resumable {

class Distributed;

// The device a rank trains on: --device auto picks this rank's GPU when CUDA is available.
c10::Device choose_device(const std::string& device, int local_rank);

class Trainer {
 public:
  // Collective: plans the resume with the other ranks, loads data, builds and restores the model.
  Trainer(TrainConfig cfg, const CliArgs& cli, const LaunchEnv& env, Distributed& dist);
  ~Trainer();

  // Trains until the end of the schedule, --max-steps, or a stop signal. Returns the exit code.
  int train();
  // --eval: test-split metrics of the planned checkpoint, printed as one JSON line. Exit code.
  int evaluate();

  const TrainConfig& config() const { return cfg_; }

 private:
  struct StepResult {
    double loss_sum = 0;  // over all ranks
    double tokens = 0;
    int64_t samples = 0;
    bool stop_requested = false;  // a rank received a stop signal
    bool time_to_save = false;    // rank 0's clock says save_every_minutes has passed
  };

  void reconcile_config(const CliArgs& cli);
  void load_data();
  void build_model();
  void start_fresh();
  void restore(const LoadedCheckpoint& ck);
  int64_t planned_total_steps() const;

  StepResult train_step(const std::vector<int64_t>& global_batch);
  bool end_epoch();  // returns true when validation found a new best
  EvalResult validate();
  // Collective: gathers every rank's RNG; rank 0 writes. Returns whether the save succeeded.
  bool save_checkpoint(bool is_best, const char* reason);
  StateDict snapshot();
  // Collective: hashes this rank's parameters and checks every rank holds the same. Returns the digest.
  std::string verify_replicas();
  void trace_samples(const std::vector<int64_t>& mine);
  void report_progress(const StepResult& r, bool force_line);
  std::string data_fingerprint() const;

  TrainConfig cfg_;
  const LaunchEnv& env_;
  Distributed& dist_;
  c10::Device device_;
  ResumePlan plan_;
  std::optional<TrainConfig> saved_cfg_;  // the config of the checkpoint being resumed, if any

  std::vector<Pronunciation> entries_;
  G2PCorpus corpus_;
  EncodedCorpus data_;

  G2PTransformer model_{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::unique_ptr<DataParallel> ddp_;
  std::unique_ptr<DistributedSampler> sampler_;
  std::unique_ptr<Evaluator> evaluator_;
  WarmupCosineSchedule schedule_;
  LossScaler scaler_;
  TrainState state_;
  CheckpointManager checkpoints_;

  int64_t failed_saves_ = 0;
  std::chrono::steady_clock::time_point last_save_time_;
  std::chrono::steady_clock::time_point last_report_time_;
  int64_t samples_since_report_ = 0;
  double samples_per_second_ = 0;
};

}  // namespace resumable
