#include "resumable/training/dry_run.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "resumable/checkpoint/checkpoint_state.h"
#include "resumable/data/batch.h"
#include "resumable/data/cmudict.h"
#include "resumable/data/distributed_sampler.h"
#include "resumable/data/vocabulary.h"
#include "resumable/distributed/launch_env.h"
#include "resumable/training/checkpoint_schema.h"
#include "resumable/training/deadline.h"
#include "resumable/training/resume_planner.h"
#include "resumable/training/run_plan.h"
#include "resumable/training/train_state.h"
#include "resumable/training/trainer.h"
#include "resumable/training/warmup_cosine_schedule.h"
#include "resumable/util/atomic_file.h"
#include "resumable/util/cpu_kernels.h"
#include "resumable/util/errors.h"
#include "resumable/util/log.h"

namespace resumable {
namespace {

// As the Trainer's: a time budget not fitted yet has no end.
constexpr int64_t kUnfittedEpochs = 1000000;

std::string flag_of(const std::string& field) {
  for (const auto& f : config_fields())
    if (f.name == field) return "--" + f.flag;
  return "--" + field;
}

std::string megabytes(size_t bytes) { return fmt::format("{:.1f} MB", static_cast<double>(bytes) / 1e6); }

// Where a start creating `dir` (mkdir -p) would fail; "" when it would not.
std::string creation_problem(const std::string& dir) {
  std::string at = dir;
  struct stat st;
  while (::stat(at.c_str(), &st) != 0) {
    if (errno != ENOENT) return at + ": " + std::strerror(errno);
    const std::string up = parent_directory(at);
    if (up == at) return "";
    at = up;
  }
  if (!S_ISDIR(st.st_mode)) return at + " is not a directory";
  if (::access(at.c_str(), W_OK | X_OK) != 0) return at + ": " + std::strerror(errno);
  return "";
}

// The training data as the Trainer loads it (Trainer::load_data), and the sampler it builds.
struct TrainingData {
  std::vector<Pronunciation> entries;
  G2PCorpus corpus;
  EncodedCorpus encoded;  // points into `corpus`: this struct stays where it was made
  std::unique_ptr<DistributedSampler> sampler;
};

// The plan, worked out step by step in the order a start takes them, and printed as labelled lines.
class DryRun {
 public:
  DryRun(const CliArgs& cli, const LaunchEnv& env) : cli_(cli), env_(env) {}

  void launch(const std::optional<Refusal>& problem);
  void device(const TrainConfig& cfg);
  void planning(const TrainConfig& cfg);
  void training();  // data, resume position, schedule, where it stops
  void deadline();
  void evaluation();
  void print(std::ostream& out) const;

  const RunPlan& plan() const { return plan_; }

 private:
  void line(const std::string& label, const std::string& text) { lines_.emplace_back(label, text); }
  void refuse(const Refusal& r) {
    if (!refusal_) refusal_ = r;
  }
  const TrainConfig& cfg() const { return plan_.config; }
  std::string config_origin() const;
  bool load_data(TrainingData& data);
  void check_checkpoint_fits(const TrainingData& data);

  const CliArgs& cli_;
  const LaunchEnv& env_;
  RunPlan plan_;
  ResumePreview preview_;
  std::optional<Refusal> refusal_;  // the first thing a start would stop at
  std::vector<std::pair<std::string, std::string>> lines_;
  std::string outcome_;  // what a start would do, when it is not refused
};

// ============================================================================================
// Launch: what main() resolves before any rank joins
// ============================================================================================

void DryRun::launch(const std::optional<Refusal>& problem) {
  if (problem) refuse(*problem);
  line("launch", env_.world_size == 1 ? std::string(launcher_name(env_.launcher)) + ", 1 rank"
                                      : fmt::format("{}, {} ranks, {} on this node; this is rank 0 (the others exit at "
                                                    "once)",
                                                    launcher_name(env_.launcher), env_.world_size,
                                                    env_.local_world_size));
}

// The CPU kernels and the device a start settles before any rank joins, on this machine.
void DryRun::device(const TrainConfig& given) {
  try {
    const CpuKernelChoice k =
        choose_cpu_kernels(given.cpu_kernels, std::getenv("ATEN_CPU_CAPABILITY"), read_cpu_features());
    const c10::Device device = choose_device(given.device, env_);
    line("device", fmt::format("{} on this machine, amp {}; CPU kernels {}",
                               device.is_cuda() ? describe_cuda_device(env_, device.index()) : device.str(),
                               resolve_amp(given.amp, device), k.reason));
  } catch (const std::exception& e) {
    refuse(refusal_of(e));
  }
}

// ============================================================================================
// Run directory, resume decision and config (plan_run, changing nothing)
// ============================================================================================

void DryRun::planning(const TrainConfig& given) {
  plan_ = preview_run(given, cli_, preview_);
  const std::string& dir = plan_.run_dir;
  if (!plan_.evaluate_only) {
    struct stat st;
    std::string text;
    if (::stat(dir.c_str(), &st) != 0) {
      const std::string problem = creation_problem(dir);
      if (!problem.empty())
        refuse({dir + ": cannot be created: " + problem + " (--run-dir)", exit_code::kBadInput});
      text = "does not exist yet (a start creates it)";
    } else if (!preview_.lock.exists) {
      text = "exists, no lock file yet";
    } else if (preview_.lock.held) {
      text = "its lock is held by " + (preview_.lock.holder.host.empty() ? std::string("another job")
                                                                          : preview_.lock.holder.describe()) +
             ": a start would be refused";
    } else if (!preview_.lock.holder.host.empty()) {
      text = "its lock is free; it names " + preview_.lock.holder.describe() +
             ", which ended without releasing it (a start takes it over)";
    } else {
      text = "exists, its lock is free";
    }
    line("run dir", dir + ": " + text);
  }
  if (preview_.refusal) refuse(*preview_.refusal);

  line("config", config_origin());
  std::string differing;
  for (const auto& f : config_fields()) {
    if (f.name == "run_dir") continue;
    const std::string value = field_value_text(plan_.config, f);
    if (value != field_value_text(TrainConfig{}, f))
      differing += (differing.empty() ? "" : ", ") + f.name + " " + value;
  }
  line("", "other than the defaults: " + (differing.empty() ? std::string("nothing") : differing) +
               " (--print-config prints it all as JSON)");
  for (const auto& n : plan_.notes) line("", "older checkpoint: " + n);
}

std::string DryRun::config_origin() const {
  std::string base;
  if (cli_.config_path) base = *cli_.config_path;
  else if (plan_.saved_config) base = "the one saved in " + plan_.resume.checkpoint->path;
  else base = "the built-in defaults";
  std::string overrides;
  for (const auto& [name, text] : cli_.overrides) overrides += " " + flag_of(name) + " " + text;
  if (cli_.debug) overrides += " --debug";
  return base + (overrides.empty() ? ", no command-line overrides" : ", then the command line:" + overrides);
}

// ============================================================================================
// Training: data, where it resumes, the schedule and where it stops
// ============================================================================================

bool DryRun::load_data(TrainingData& d) {
  const TrainConfig& c = cfg();
  try {
    d.entries = load_cmudict(c.data);
    d.corpus = build_corpus(d.entries, c.val_fraction, c.test_fraction, static_cast<size_t>(c.limit_words));
    if (d.corpus.train.empty() || d.corpus.validation.empty())
      throw DataError(c.data + ": the split left no training or validation words (check val_fraction, test_fraction and max_train_words)");
    d.encoded = encode_corpus(d.corpus, grapheme_vocabulary(d.entries), phoneme_vocabulary(d.entries),
                              targets_right_to_left(c));
    d.sampler = std::make_unique<DistributedSampler>(d.encoded.train_lengths(), c.seed,
                                                     SamplerOptions{c.batch_size, c.length_bucketing});
  } catch (const std::exception& e) {
    refuse(refusal_of(e));
    line("data", c.data + ": cannot be loaded");
    return false;
  }
  line("data", fmt::format("{}: {} pronunciations -> train {} samples ({} words), validation {} words, test {} words",
                           c.data, d.entries.size(), d.corpus.train.size(), d.corpus.train_words,
                           d.corpus.validation.size(), d.corpus.test.size()));
  return true;
}

// What the Trainer checks as it loads the checkpoint's components besides the weights: the
// vocabulary, then the training data (restore and load_data).
void DryRun::check_checkpoint_fits(const TrainingData& d) {
  const LoadedCheckpoint& ck = *plan_.resume.checkpoint;
  try {
    StateReader root(ck.root, ck.path);
    StateReader vocab = root[ckpt_key::kVocabulary];
    for (auto [name, v] : {std::pair{"graphemes", &d.encoded.graphemes}, std::pair{"phonemes", &d.encoded.phonemes}}) {
      std::vector<std::string> saved = vocab[name].to_strings();
      if (saved != v->symbols())
        vocab[name].fail("the dataset gives another vocabulary (" + std::to_string(v->symbols().size()) +
                         " symbols, saved " + std::to_string(saved.size()) + "): use the dictionary it was trained on");
    }
    if (plan_.resume.kind != ResumePlan::Kind::kResume) return;
    StateReader data = root[ckpt_key::kData];
    if (data["fingerprint"].to_string() != training_data_fingerprint(d.corpus) && !cfg().allow_data_drift)
      data["fingerprint"].fail("the training data differs from the checkpoint's (same dictionary, val/test fractions "
                               "and max_train_words are needed to resume; --allow-data-drift if new data is intended)");
  } catch (const std::exception& e) {
    refuse(refusal_of(e));
  }
}

void DryRun::training() {
  if (!preview_.decided || (plan_.resume.kind == ResumePlan::Kind::kResume && !plan_.saved_config)) {
    line("start", "undecided: a start stops before it knows where to start (below)");
    return;
  }
  const bool resuming = plan_.resume.kind == ResumePlan::Kind::kResume;
  if (resuming) {
    const LoadedCheckpoint& ck = *plan_.resume.checkpoint;
    line("resume", fmt::format("from {} ({}, {}): {}", ck.path, megabytes(ck.bytes), ck.checksum, position_text(ck)));
    if (preview_.would_ask)
      line("", "on a terminal a start asks first (\"Resume from ...? [Y/n]\"; no: it moves the checkpoints aside)");
    for (const auto& s : preview_.skipped) line("", "skipping the damaged " + s);
  } else {
    std::string what = "a new run";
    if (!plan_.resume.checkpoints_set_aside.empty())
      what += "; the checkpoints there would be moved aside to " + plan_.resume.checkpoints_set_aside;
    if (plan_.resume.kind == ResumePlan::Kind::kInitFrom)
      what += fmt::format(" from the weights of {} ({}); optimizer and schedule start fresh",
                          plan_.resume.checkpoint->path, position_text(*plan_.resume.checkpoint));
    line("start", what);
  }
  TrainingData d;
  if (!load_data(d)) return;
  const TrainConfig& c = cfg();
  if (plan_.resume.checkpoint) check_checkpoint_fits(d);
  DistributedSampler& sampler = *d.sampler;
  TrainState state;
  WarmupCosineSchedule schedule;
  // The Trainer's epochs() and planned_total_steps().
  auto epochs = [&] {
    if (c.time_budget_minutes <= 0) return c.epochs;
    return state.fitted_epochs > 0 ? state.fitted_epochs : kUnfittedEpochs;
  };
  auto planned_total_steps = [&] {
    if (c.total_steps > 0) return c.total_steps;
    const int64_t later_epochs = std::max<int64_t>(0, epochs() - state.epoch - 1);
    const int64_t rest = state.epoch < epochs() ? sampler.remaining_steps_in_epoch() : 0;
    return state.global_step + rest + later_epochs * sampler.steps_per_epoch();
  };
  std::vector<std::string> changes;
  int64_t saved_world = 0;

  if (resuming) {
    // Trainer::restore, on the components that decide where and how the run goes on.
    const LoadedCheckpoint& ck = *plan_.resume.checkpoint;
    const TrainConfig& saved = *plan_.saved_config;
    try {
      StateReader root(ck.root, ck.path);
      std::vector<std::string> notes;
      schedule.load_state(from_state_dict<ScheduleState>(root[ckpt_key::kLrScheduler], &notes));
      SamplerState s = from_state_dict<SamplerState>(root[ckpt_key::kSampler], &notes);
      state = from_state_dict<TrainState>(root[ckpt_key::kTrainState], &notes);
      saved_world = root[ckpt_key::kWorldSize].to_int();
      if (c.allow_data_drift) {
        s.seed = c.seed;
        if (s.dataset_size != sampler.dataset_size()) {
          changes.push_back(fmt::format("sampler: {} samples saved, {} now (--allow-data-drift): epoch {} starts over "
                                        "on the new data", s.dataset_size, sampler.dataset_size(), s.epoch));
          s.dataset_size = sampler.dataset_size();
          s.cursor = 0;
        }
      }
      try {
        sampler.load_state(s);
      } catch (const std::invalid_argument& e) {
        root[ckpt_key::kSampler].fail(e.what());
      }
    } catch (const std::exception& e) {
      refuse(refusal_of(e));
      return;
    }
    for (const auto& n : resume_changes(saved, c)) changes.push_back(n);
    if (c.batch_size != saved.batch_size) sampler.set_batch_size(c.batch_size);
    if (c.lr != saved.lr || c.min_lr != saved.min_lr) schedule.rescale_lr(c.lr, c.min_lr);
    if (c.best_metric != saved.best_metric || c.resolved_best_mode() != saved.resolved_best_mode()) {
      state.has_best = false;
      changes.push_back("best metric now " + c.best_metric + " (" + c.resolved_best_mode() + "), best.pt restarts");
    }
    if (c.time_budget_minutes != saved.time_budget_minutes && state.fitted_epochs > 0) state.fitted_epochs = 0;
    const int64_t old_total = schedule.state().total_steps, new_total = planned_total_steps();
    if (new_total != old_total) {
      schedule.replan_total(new_total);
      changes.push_back(epochs() == kUnfittedEpochs
                            ? fmt::format("LR schedule: its end is fitted to the time budget again, from lr {:.3g} at "
                                          "step {}", schedule.current_lr(), state.global_step)
                            : fmt::format("LR schedule re-planned: end step {} -> {}, cosine from lr {:.3g} at step {}",
                                          old_total, new_total, schedule.current_lr(), state.global_step));
    }

    const SamplerState& s = sampler.state();
    line("position", fmt::format("epoch {}, sample {} of {} consumed; the next step is {}, {} step(s) left in the "
                                 "epoch at global batch {}",
                                 s.epoch, s.cursor, s.dataset_size, state.global_step + 1,
                                 sampler.remaining_steps_in_epoch(), sampler.batch_size()));
    if (state.eval_pending)
      line("", fmt::format("first the validation after epoch {} that a stop interrupted", state.epoch));
    line("ranks", saved_world == env_.world_size
                      ? fmt::format("{}, as when saved", env_.world_size)
                      : fmt::format("{} now, {} when saved: every rank takes its share of the same global batches "
                                    "from the cursor, so the data order is unchanged",
                                    env_.world_size, saved_world));
    line("best", state.has_best ? fmt::format("{} {:.4f} (step {})", c.best_metric, state.best_metric, state.best_step)
                                : std::string("none yet"));
  } else {
    // Trainer::start_fresh.
    sampler.start_epoch(0);
    ScheduleState s;
    s.warmup_steps = c.warmup_steps > 0
                         ? c.warmup_steps
                         : static_cast<int64_t>(std::llround(c.warmup_epochs * sampler.steps_per_epoch()));
    s.total_steps = planned_total_steps();
    s.max_lr = c.lr;
    s.min_lr = c.min_lr;
    schedule.load_state(s);
  }
  line("changes", changes.empty() ? std::string("none") : changes.front());
  for (size_t i = 1; i < changes.size(); ++i) line("", changes[i]);

  const ScheduleState& s = schedule.state();
  if (c.time_budget_minutes > 0) {
    line("schedule", fmt::format("fitted to {:g} minutes ({} steps per epoch, global batch {}), warmup {} steps, "
                                 "lr {:g} -> {:g}",
                                 c.time_budget_minutes, sampler.steps_per_epoch(), sampler.batch_size(), s.warmup_steps,
                                 s.max_lr, s.min_lr));
    line("", epochs() == kUnfittedEpochs
                 ? fmt::format("{:.1f} minutes spent; the epochs are fitted at the second epoch end after the warmup, "
                               "until then the lr holds at its peak after the warmup",
                               state.train_seconds / 60)
                 : fmt::format("{:.1f} minutes spent; fitted so far to {} epochs, {} steps", state.train_seconds / 60,
                               epochs(), s.total_steps));
  } else {
    line("schedule", fmt::format("{} steps ({} per epoch x {} epochs, global batch {}{}), warmup {} steps, "
                                 "lr {:g} -> {:g}",
                                 s.total_steps, sampler.steps_per_epoch(), epochs(), sampler.batch_size(),
                                 c.total_steps > 0 ? "; --total-steps" : "", s.warmup_steps, s.max_lr, s.min_lr));
  }
  line("", fmt::format("lr of the next step (step {}): {:.4g}", state.global_step + 1, schedule.current_lr()));

  const std::string start = resuming ? fmt::format("resume from step {}", state.global_step) : "start a new run";
  if (state.epoch >= epochs() || (c.total_steps > 0 && state.global_step >= c.total_steps)) {
    line("stop", fmt::format("nothing to train: training already complete (epoch {}/{}, step {}; raise --{} to train "
                             "longer)",
                             state.epoch, epochs(), state.global_step,
                             c.time_budget_minutes > 0 ? "time-budget-minutes" : "epochs"));
    outcome_ = start + ", find the training complete and exit 0";
  } else if (c.max_steps > 0 && state.global_step >= c.max_steps) {
    line("stop",
         fmt::format("nothing to train: already at step {}, the --max-steps {}", state.global_step, c.max_steps));
    outcome_ = start + ", find nothing to train and exit 0";
  } else if (epochs() == kUnfittedEpochs && c.max_steps <= 0) {
    line("stop", "where the time budget's fitted schedule ends (or at a stop signal or the deadline: saved, exit 75)");
    outcome_ = start + " and train until the time budget's fitted end";
  } else {
    int64_t end = s.total_steps;
    std::string why = "the end of the schedule";
    if (c.max_steps > 0 && c.max_steps < end) {
      end = c.max_steps;
      why = fmt::format("--max-steps; the schedule keeps its {} steps", s.total_steps);
    }
    line("stop", fmt::format("at step {} ({}), or earlier at a stop signal or the deadline: saved, exit 75", end, why));
    outcome_ = start + fmt::format(" and train to step {}", end);
  }
}

// ============================================================================================
// Evaluation (--eval): which checkpoint
// ============================================================================================

void DryRun::evaluation() {
  if (!plan_.resume.checkpoint) {
    line("evaluate", "undecided: a start stops before it knows which checkpoint (below)");
    return;
  }
  const LoadedCheckpoint& ck = *plan_.resume.checkpoint;
  line("evaluate", fmt::format("{} ({}, {}): {}", ck.path, megabytes(ck.bytes), ck.checksum, position_text(ck)));
  for (const auto& m : plan_.ensemble) line("", "with " + m + " decoding together with it (--ensemble)");
  outcome_ = "evaluate " + ck.path + " on the validation and test splits and print one JSON line";
}

// ============================================================================================
// Deadline: when the job ends
// ============================================================================================

void DryRun::deadline() {
  const TrainConfig& c = cfg();
  const auto now = WallClock::now();
  const std::string rule = fmt::format("; a start saves and exits 75 once less than 2 saves + a step + {:g}s margin "
                                       "are left", c.deadline_margin_s);
  if (c.deadline == "none") {
    line("deadline", "none (--deadline none)");
  } else if (!c.deadline.empty()) {
    const auto end = parse_deadline(c.deadline, now);  // validated with the config
    const double left = end ? std::chrono::duration<double>(*end - now).count() : 0;
    line("deadline", fmt::format("--deadline {}: {} ({:.0f} s from now{}){}", c.deadline,
                                 end ? iso_local_time(*end) : "?", left,
                                 left <= 0 ? ", already past" : "", rule));
  } else if (const char* job = std::getenv("SLURM_JOB_ID"); job && *job) {
    std::string text = fmt::format("Slurm job {}: a start reads its end with `squeue -h -j {} -o %e` as training "
                                   "starts and every {:g}s (the dry run does not call squeue)",
                                   job, job, c.deadline_refresh_s);
    if (const char* end = std::getenv("SLURM_JOB_END_TIME"); end && *end) {
      char* rest = nullptr;
      const long long t = std::strtoll(end, &rest, 10);
      if (rest && !*rest && t > 0)
        text += "; the job's environment gives " + iso_local_time(WallClock::from_time_t(static_cast<std::time_t>(t))) +
                " (SLURM_JOB_END_TIME, as of the job's start)";
    }
    line("deadline", text + rule);
  } else {
    line("deadline", "none: no --deadline and not in a Slurm job (a stop signal still saves and exits 75)");
  }
}

void DryRun::print(std::ostream& out) const {
  out << "trainer --dry-run: what a start with these flags would do; nothing was trained, written or locked\n";
  for (const auto& [label, text] : lines_) out << fmt::format("{:<10}{}\n", label, text);
  if (refusal_)
    out << fmt::format("refused   a start would stop here, exit {}: {}\n", refusal_->exit_code, refusal_->message);
  out << "dry run: a start would "
      << (refusal_ ? fmt::format("be refused (exit {})", refusal_->exit_code) : outcome_) << "\n";
}

}  // namespace

int dry_run(const TrainConfig& cfg, const CliArgs& cli) {
  LaunchEnv env;
  std::optional<Refusal> launch_problem;
  try {
    env = detect_launch_env(process_env());
  } catch (const std::exception& e) {
    launch_problem = refusal_of(e);  // each process answers, as rank 0
  }
  if (env.rank != 0) return exit_code::kDone;  // rank 0 answers for the launch
  LogOptions log_options;
  log_options.to_stderr = true;            // stdout is the answer
  log_options.errors_only = !cli.dry_run;  // --print-config: the JSON alone
  init_logging(env.rank, env.world_size, log_options);

  DryRun d(cli, env);
  d.launch(launch_problem);
  if (cli.dry_run) d.device(cfg);
  d.planning(cfg);
  if (!cli.dry_run) {
    std::cout << config_to_json(d.plan().config).dump(2) << "\n";
    return exit_code::kDone;
  }
  if (d.plan().evaluate_only) {
    d.evaluation();
  } else {
    d.training();
    d.deadline();
  }
  d.print(std::cout);
  if (cli.print_config) std::cout << config_to_json(d.plan().config).dump(2) << "\n";
  return exit_code::kDone;
}

}  // namespace resumable
