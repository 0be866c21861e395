// The training run: builds every component from the resolved config and the resume plan (it never
// sees the command line), then
//   restore -> loop { step, record, maybe validate, if due save, maybe stop } -> exit code.
// The checkpoint schema says *what* a save holds: each component registers one save and one load
// in `components_`. Saving itself (when, in the background or not, after failures, best.pt) is the
// SaveCoordinator's; the loop only tells it about each step.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <c10/core/Device.h>
#include <torch/optim/adamw.h>

#include "resumable/data/batch.h"
#include "resumable/checkpoint/checkpoint_manager.h"
#include "resumable/checkpoint/checkpoint_state.h"
#include "resumable/data/cmudict.h"
#include "resumable/config/config.h"
#include "resumable/distributed/data_parallel.h"
#include "resumable/data/distributed_sampler.h"
#include "resumable/training/evaluator.h"
#include "resumable/distributed/launch_env.h"
#include "resumable/training/loss_scaler.h"
#include "resumable/training/time_budget.h"
#include "resumable/model/model.h"
#include "resumable/metrics/metrics_log.h"
#include "resumable/training/checkpoint_schema.h"
#include "resumable/training/deadline.h"
#include "resumable/training/resume_verifier.h"
#include "resumable/training/resume_planner.h"
#include "resumable/training/run_plan.h"
#include "resumable/training/save_coordinator.h"
#include "resumable/training/rng_state.h"
#include "resumable/training/train_state.h"
#include "resumable/training/warmup_cosine_schedule.h"

namespace resumable {

class Distributed;

// The device a rank trains on: --device auto picks this rank's GPU when CUDA is available.
c10::Device choose_device(const std::string& device, const LaunchEnv& env);
// The mixed precision a rank trains with on `device`: --amp auto is bf16 on a GPU, and on a CPU only
// where the CPU has native bf16 arithmetic (AVX512-BF16 or AMX-BF16); elsewhere autocast emulates
// bf16, which made base.json's steps 3.5 times slower than fp32 on a 2-core AVX-512 Xeon without
// them. `why` says which way auto went.
std::string resolve_amp(const std::string& amp, c10::Device device, std::string* why = nullptr);

class Trainer {
 public:
  // Collective: loads data, builds the model and restores it as `plan` says.
  Trainer(RunPlan plan, const LaunchEnv& env, Distributed& dist);
  ~Trainer();

  // Trains until the end of the schedule, --max-steps, or a stop signal. Returns the exit code.
  int train();
  // --eval: test-split metrics of the planned checkpoint (with --ensemble, of it and the other
  // checkpoints' models together), printed as one JSON line. Exit code.
  int evaluate();

  const TrainConfig& config() const { return cfg_; }

 private:
  struct StepResult {
    double loss_sum = 0;  // over all ranks
    double tokens = 0;
    int64_t samples = 0;
    double lr = 0;  // the schedule's, as this step used it
    bool stop_requested = false;  // a rank received a stop signal
    bool deadline = false;        // rank 0: the job's end leaves room for one more save only
    SaveFlags saves;              // rank 0's save clock and background write, as agreed
  };
  struct EpochEnd {
    bool improved = false;     // validation found a new best
    bool interrupted = false;  // a stop request cut the validation short (it runs again on resume)
  };

  void load_data();
  void register_components();
  void check_vocabulary(const StateReader& saved) const;
  G2PTransformer load_ensemble_member(const std::string& path);  // --eval --ensemble
  void build_model();
  void choose_attention();
  void start_fresh();
  void restore(const LoadedCheckpoint& ck);
  int64_t planned_total_steps() const;
  // The run's epochs: fitted to --time-budget-minutes once measured, else --epochs.
  int64_t epochs() const;
  bool awaiting_fit() const;             // a time budget's first fit is still to come
  std::string epochs_text() const;       // "?" until then
  std::string total_steps_text() const;  // likewise
  // With a time budget: its seconds spent so far into the train state (every step and epoch end).
  void note_budget_time();
  // Collective, at an epoch end, with a time budget: rank 0 fits the epochs to the time left, all
  // ranks take its answer and re-plan the LR decay to end there.
  void fit_to_time_budget();

  int train_until_stop();
  // The validation of a finished epoch that a stop interrupted, then a save; false if stopped again.
  bool run_pending_validation();
  // Thrown (with more than one rank) where a collective failed while this rank's state is whole:
  // a step not taken, a validation left pending, a save. Any other failure stays fatal.
  struct PeerLost : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  // After PeerLost: the survivor holding the run directory's lock saves this rank's state (the last
  // step it completed) and every survivor exits kPeerLost.
  int save_after_peer_lost(const std::string& what);
  // Collective. Throws PeerLost when the step fails before it changed anything (its allreduces).
  StepResult train_step(const std::vector<int64_t>& global_batch);
  // train_step's part that talks to the other ranks and changes nothing they could miss: forward,
  // backward (the gradient allreduce), the flags' allreduce.
  struct AgreedStep {
    at::Tensor stats;  // the step's allreduce: loss, tokens, flags
    std::vector<at::Tensor> grads;
    bool finite = true;
  };
  AgreedStep compute_and_agree(const std::vector<int64_t>& global_batch, double global_tokens);
  // Collective, after a resume: compares the batch about to be trained with the checkpoint's
  // record (ids and words; each rank's tensors of the first one). False when it differs and
  // --allow-data-drift does not allow it: the run must stop before training on it.
  bool verify_resumed_batch(const std::vector<int64_t>& global_batch);
  // Rank 0: whether the job's end leaves room for one more save only (then `deadline_note_` says why).
  bool deadline_near();
  EpochEnd end_epoch();
  // nullopt when a stop request interrupted it (every rank alike).
  std::optional<EvalResult> validate();
  // Collective, the start of every save (the SaveCoordinator's SaveSource): checks the replicas.
  // Returns the weights' digest.
  std::string prepare_save();
  // Rank 0: the checkpoint's state, every component (SaveSource::build).
  c10::IValue build_checkpoint_state(bool with_probe);
  // Collective: hashes this rank's parameters and checks every rank holds the same. Returns the digest.
  std::string verify_replicas();
  void trace_samples(const std::vector<int64_t>& mine);
  void dump_batch(const std::vector<int64_t>& mine, double global_tokens);
  void report_progress(const StepResult& r, bool force_line);
  // Appends a finished validation to the history, the log and the metrics; true on a new best.
  bool record_evaluation(const EvalResult& r);

  const LaunchEnv& env_;
  Distributed& dist_;
  RunPlan run_;
  const TrainConfig& cfg_ = run_.config;  // resolved before the Trainer exists; never changed here
  const ResumePlan& plan_ = run_.resume;
  const std::string& run_dir_ = run_.run_dir;
  c10::Device device_;
  std::string amp_;                          // cfg_.amp resolved: none, bf16 or fp16
  std::unique_ptr<RunDirectoryLock> lock_;  // rank 0, while training
  StatefulMap components_;                  // what a checkpoint holds, by component name

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
  std::unique_ptr<MetricsLog> metrics_;  // rank 0, while training

  std::optional<ResumeVerifier> verifier_;  // after a resume, until the recorded batches are checked
  // Rank 0 with background saves: computes the resume proof's probe on the writer thread.
  G2PTransformer probe_model_{nullptr};
  bool skip_probe_ = false;  // the save being built leaves its probe to the writer thread (or has none)
  std::unique_ptr<Deadline> deadline_;      // rank 0, when the job's end is known
  MovingMax step_seconds_{20};
  double resume_read_seconds_ = 0, validation_seconds_ = 0;
  std::string deadline_note_;
  std::optional<WallClock::time_point> deadline_seen_;  // the end last logged
  WallClock::time_point started_ = WallClock::now();  // --deadline in seconds counts from here
  std::optional<TimeBudget> time_budget_;  // rank 0, with --time-budget-minutes
  // The budget's clock: this invocation's time counts from its start (loading and start-up are
  // part of what the budget must cover), on top of what the resumed checkpoint had spent.
  std::chrono::steady_clock::time_point budget_clock_ = std::chrono::steady_clock::now();
  double budget_spent_before_ = 0;

  std::chrono::steady_clock::time_point last_report_time_, last_step_time_;
  int64_t samples_since_report_ = 0;
  double samples_per_second_ = 0;
  // Saving, from the snapshot to best.pt. Last member: destroyed first, it waits for a background
  // write, which uses the members above.
  std::unique_ptr<SaveCoordinator> saves_;
};

}  // namespace resumable
