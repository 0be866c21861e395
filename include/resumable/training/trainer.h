// The training run: builds every component from the resolved config and the resume plan (it never
// sees the command line), then
//   restore -> loop { step, record, maybe validate, if due save, maybe stop } -> exit code.
// SavePolicy decides *when* to save, the CheckpointManager *how*, and the checkpoint schema *what*:
// each component registers one save and one load in `components_`.
// With async_save, a save costs the training thread only its snapshot (state dicts aliasing the
// live tensors); rank 0's writer thread copies them before the next optimizer step and writes them
// with the same protocol, one at a time, and the outcome reaches every rank through the next
// step's allreduce.
#pragma once

#include <chrono>
#include <functional>
#include <future>
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
#include "resumable/training/save_policy.h"
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
    bool stop_requested = false;  // a rank received a stop signal
    bool minutes_due = false;     // rank 0's clock says save_every_minutes (or a failed save's backoff) has passed
    bool backing_off = false;     // rank 0's clock: periodic saves wait after a failed one
    bool deadline = false;        // rank 0: the job's end leaves room for one more save only
    // Rank 0's background save, as of this step's allreduce.
    bool save_in_flight = false;  // still writing: a new save must wait for it
    bool background_saved = false, background_failed = false;  // one finished since the last step
  };
  // Rank 0's save, from its snapshot to its outcome.
  struct SaveJob {
    std::string reason;
    std::string weights;  // the replicas' digest, for the log
    PendingBest built;    // the snapshot and its record
    bool is_best = false, new_best = false;
    double paused_seconds = 0;       // what the training thread paid: all of it, or the snapshot
    // Background saves: the state aliases live tensors until the writer thread has copied it;
    // the training thread must not step the optimizer before `copied` is ready.
    std::shared_future<void> copied;
    bool copy_awaited = false;
    bool state_is_copy = false;  // built.state no longer aliases live tensors
    std::shared_ptr<SnapshotArena> arena;  // where the copy goes (the trainer keeps it for the next)
    std::future<SaveReport> report;  // a background write's result
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
  StepResult train_step(const std::vector<int64_t>& global_batch);
  // Collective, after a resume: compares the batch about to be trained with the checkpoint's
  // record (ids and words; each rank's tensors of the first one). False when it differs and
  // --allow-data-drift does not allow it: the run must stop before training on it.
  bool verify_resumed_batch(const std::vector<int64_t>& global_batch);
  // Rank 0: whether the job's end leaves room for one more save only (then `deadline_note_` says why).
  bool deadline_near();
  // Rank 0: what the next save will take, as measured (or guessed from the model's size before any).
  double expected_save_seconds() const;
  EpochEnd end_epoch();
  // nullopt when a stop request interrupted it (every rank alike).
  std::optional<EvalResult> validate();
  // Collective: gathers every rank's RNG; rank 0 writes, the others wait for its outcome (bounded
  // by save_timeout_s and rank 0's heartbeat). Publishes best.pt as well while the best so far
  // is not in it. Returns whether last.pt now holds this step.
  bool save_checkpoint(const char* reason);
  // Rank 0's part of a save; returns "S" (saved), "B" (snapshot taken, writing in the background)
  // or "F" + why. Never throws.
  std::string write_checkpoint_on_main(const char* reason, const std::string& weights, bool background);
  // The write itself (any thread): last.pt, best.pt, snapshot, retention.
  SaveReport write_save(const SaveJob& job);
  SaveReport write_save_at_low_priority(const SaveJob& job);  // the writer thread's, at nice 19
  // Rank 0, training thread: takes the write's result (rethrowing its error), updates best.pt's
  // bookkeeping and logs. Returns "S" or "F" + why.
  std::string finish_save(SaveJob& job, const std::function<SaveReport()>& result);
  // Collective, the start of every save: checks the replicas, gathers every rank's RNG state and
  // starts the clock of the training thread's pause. Returns the weights' digest.
  std::string prepare_collective_save();
  // Collective. A save of `reason` that may run in the background: snapshot now, write later.
  void start_background_save(const char* reason);
  // Rank 0: collects a background write that has finished, for the next step's allreduce.
  void poll_background_save();
  // Rank 0, before the optimizer changes the weights: waits until a background save has its copy.
  void await_snapshot_copy();
  // Collective: waits for rank 0's background write; returns its outcome on every rank ("S",
  // "F" + why, or "" when none was in flight).
  std::string drain_background_save();
  // Counts a failed save (SavePolicy starts its backoff); true when --max-failed-saves is reached.
  // `same_outage`: the step's agreed backing_off, so that every rank counts alike.
  bool count_failed_save(bool same_outage);
  // After a resume: best.pt must hold the step the checkpoint calls best (a save that died
  // between last.pt and best.pt, or a best that was never published, is mended here).
  void republish_best(const LoadedCheckpoint& ck);
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
  CheckpointManager checkpoints_;
  SavePolicy save_policy_;
  std::unique_ptr<MetricsLog> metrics_;  // rank 0, while training
  // Every rank's generator states, gathered for the save in progress (the "rng" component).
  std::vector<at::Tensor> rng_cpu_, rng_cuda_;

  std::optional<ResumeVerifier> verifier_;  // after a resume, until the recorded batches are checked
  // Rank 0 with background saves: computes the resume proof's probe on the writer thread.
  G2PTransformer probe_model_{nullptr};
  bool defer_probe_ = false;  // the save being built leaves its probe to the writer thread
  std::unique_ptr<Deadline> deadline_;      // rank 0, when the job's end is known
  MovingMax save_seconds_{5}, step_seconds_{20};
  double resume_read_seconds_ = 0, validation_seconds_ = 0;
  std::string deadline_note_;
  std::optional<WallClock::time_point> deadline_seen_;  // the end last logged
  WallClock::time_point started_ = WallClock::now();  // --deadline in seconds counts from here
  std::optional<TimeBudget> time_budget_;  // rank 0, with --time-budget-minutes
  // The budget's clock: this invocation's time counts from its start (loading and start-up are
  // part of what the budget must cover), on top of what the resumed checkpoint had spent.
  std::chrono::steady_clock::time_point budget_clock_ = std::chrono::steady_clock::now();
  double budget_spent_before_ = 0;

  bool best_unpublished_ = false;  // best.pt does not hold the best step yet (it is new, or its save failed)
  std::optional<PendingBest> pending_best_;  // rank 0: that best's state, when its own save failed
  std::chrono::steady_clock::time_point last_report_time_, last_step_time_;
  int64_t samples_since_report_ = 0;
  double samples_per_second_ = 0;
  std::chrono::steady_clock::time_point save_started_;  // the save in progress, on the training thread
  const char* deferred_save_ = nullptr;  // a periodic save that came due while one was in flight
  std::optional<bool> unreported_save_;  // rank 0: a background save's outcome, for the next step
  // Rank 0: the memory background saves copy into, made (and faulted in) beside the first steps.
  std::shared_ptr<SnapshotArena> snapshot_arena_;
  std::future<std::shared_ptr<SnapshotArena>> arena_ready_;
  // Rank 0's background save, at most one. Last member: destroyed first, its destructor waits
  // for the write, which uses the members above.
  std::unique_ptr<SaveJob> in_flight_;
};

}  // namespace resumable
