#include "resumable/training/save_coordinator.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <ctime>

#include "resumable/checkpoint/checkpoint_state.h"
#include "resumable/distributed/distributed.h"
#include "resumable/util/atomic_file.h"
#include "resumable/util/log.h"

namespace resumable {
namespace {

using Clock = std::chrono::steady_clock;

// The setting a user raises when the other ranks stop waiting for rank 0's save.
constexpr const char* kSaveTimeoutFlag = "--save-timeout-seconds, 0 = no limit";

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Test-only switch: RESUMABLE_TEST_FAIL_SAVE="STEP:KIND,..." makes rank 0's save at global step
// STEP fail. KIND "io": the write fails as a full disk would (SaveError), before anything is
// written; "bug": likewise with an unexpected exception; "copy": a background save's copy of the
// state fails on the writer thread; "build": building the state fails (every try at that step);
// "build-once": only the first try. Fault tests use it to show what every rank does then. Unset in
// real runs.
std::string injected_fault(int64_t step) {
  static const char* spec = std::getenv("RESUMABLE_TEST_FAIL_SAVE");
  if (!spec) return "";
  std::string all = spec;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t comma = all.find(',', pos);
    std::string item = all.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? all.size() : comma + 1;
    auto colon = item.find(':');
    if (colon != std::string::npos && std::atoll(item.substr(0, colon).c_str()) == step) return item.substr(colon + 1);
  }
  return "";
}

void inject_write_fault(int64_t step) {
  const std::string kind = injected_fault(step);
  if (kind == "bug") throw std::logic_error("injected fault while writing the checkpoint");
  if (kind == "io") throw SaveError("injected write failure at step " + std::to_string(step), EIO);
}

}  // namespace

struct SaveCoordinator::Job {
  std::string reason;
  std::string weights;  // the replicas' digest, for the log
  PendingBest built;    // the snapshot and its record
  bool is_best = false, new_best = false;
  double paused_seconds = 0;  // what the training thread paid: all of it, or the snapshot
  // Background saves: the state aliases live tensors until the writer thread has copied it; the
  // training thread must not step the optimizer before `copied` is ready (an exception: not copied).
  std::shared_future<void> copied;
  bool copy_awaited = false;
  bool state_is_copy = false;  // built.state no longer aliases live tensors
  // A new best whose background copy failed: the training thread's own copy, taken before the
  // optimizer step, so that a later save can still publish that best.
  std::optional<c10::IValue> rescued;
  std::shared_ptr<SnapshotArena> arena;  // where the copy goes (kept for the next save)
  std::future<SaveReport> report;        // a background write's result
};

SaveCoordinator::SaveCoordinator(const TrainConfig& cfg, Distributed& dist, const TrainState& state,
                                 SaveSource source, SaveCoordinatorOptions options)
    : cfg_(cfg),
      dist_(dist),
      state_(state),
      source_(std::move(source)),
      options_(std::move(options)),
      checkpoints_(cfg.run_dir + "/checkpoints", {cfg.keep_last, cfg.keep_every}),
      policy_(cfg) {}

SaveCoordinator::~SaveCoordinator() { close(); }

// ------------------------------------------------------------------------------------------
// Before training
// ------------------------------------------------------------------------------------------

void SaveCoordinator::prepare_directory(const LoadedCheckpoint* resumed) {
  checkpoints_.prepare();
  if (!resumed || !state_.has_best) return;
  const LoadedCheckpoint& ck = *resumed;
  std::optional<CheckpointMeta> best;
  try {
    best = read_checkpoint_meta(checkpoints_.best_path());
  } catch (const CheckpointError&) {
    // Missing or unreadable: mended below when the file of the best step is at hand.
  }
  if (best && best->step == state_.best_step) return;
  // The file that holds the best step: the one just loaded when it is the best, else the snapshot
  // of that step written by the same launch (a save that wrote it, then last.pt, and died before
  // linking best.pt). Another launch's file of that step may belong to an abandoned timeline.
  std::string source;
  if (state_.best_step == state_.global_step) {
    source = ck.path;
  } else if (ck.meta) {
    try {
      auto m = read_checkpoint_meta(checkpoints_.step_path(state_.best_step));
      if (m && m->step == state_.best_step && m->segment == ck.meta->segment)
        source = checkpoints_.step_path(state_.best_step);
    } catch (const CheckpointError&) {
    }
  }
  std::string held = best ? "step " + std::to_string(best->step) : "no checkpoint with a record of its step";
  if (source.empty()) {
    if (ck.meta)  // files of older trainers say nothing about their step: nothing to compare
      log::warn("{} holds {}, but this run's best is step {}, whose file is gone; best.pt is replaced at the next "
                "new best",
                checkpoints_.best_path(), held, state_.best_step);
    return;
  }
  try {
    publish_copy(source, checkpoints_.best_path());
    fsync_directory(checkpoints_.dir());
    log::warn("{} held {}, but the run's best is step {} (a save ended before publishing it): published {} as best.pt",
              checkpoints_.best_path(), held, state_.best_step, source);
  } catch (const SaveError& e) {
    best_unpublished_ = state_.best_step == state_.global_step;  // the next save publishes it
    log::warn("could not mend best.pt: {}", e.what());
  }
}

void SaveCoordinator::begin_training() {
  if (!dist_.is_main() || !cfg_.async_save || options_.on_gpu) return;
  // Room for the model and AdamW's two moments, faulted in beside the first steps (once, a
  // second or two per GB here), so that the first background save's copy costs what later ones do.
  const size_t bytes = (size_t{1} << 20) + static_cast<size_t>(options_.state_bytes);
  arena_ready_ = std::async(std::launch::async, [bytes] { return std::make_shared<SnapshotArena>(bytes); });
}

double SaveCoordinator::expected_save_seconds() const {
  if (!save_seconds_.empty()) return save_seconds_.value();
  // No save measured yet: the state at a slow 100 MB/s, or what reading the checkpoint took on
  // resume, whichever is more.
  return std::max(options_.state_bytes / 100e6, options_.read_seconds);
}

// ------------------------------------------------------------------------------------------
// Every step
// ------------------------------------------------------------------------------------------

void SaveCoordinator::note_new_best() { best_unpublished_ = true; }

SaveFlags SaveCoordinator::local_flags() {
  SaveFlags f;
  if (!dist_.is_main()) return f;
  f.minutes_due = policy_.minutes_due();
  f.backing_off = policy_.backing_off();
  poll_background();
  f.in_flight = in_flight_ != nullptr;
  f.background_saved = unreported_ && *unreported_;
  f.background_failed = unreported_ && !*unreported_;
  unreported_.reset();
  return f;
}

void SaveCoordinator::before_optimizer_step() {
  if (!in_flight_ || in_flight_->copy_awaited) return;
  Job& job = *in_flight_;
  auto start = Clock::now();
  job.copied.wait();
  job.copy_awaited = true;
  try {
    job.copied.get();
  } catch (const std::exception& e) {
    // Not copied: the state still aliases the live weights, which the optimizer is about to
    // change. The write fails; a new best is copied here, while its weights are still its own.
    if (job.new_best) {
      try {
        job.rescued = snapshot_copy(job.built.state);
        log::warn("step {}: the background copy of the new best failed ({}); kept in memory instead, best.pt "
                  "follows with the next save",
                  job.built.meta.step, e.what());
      } catch (const std::exception& again) {
        log::error("step {}: the new best could not be copied ({}; {}): best.pt keeps the previous best until the "
                   "next new best",
                   job.built.meta.step, e.what(), again.what());
      }
    }
  }
  job.paused_seconds += seconds_since(start);
}

bool SaveCoordinator::after_step(const StepEvents& ev, const SaveFlags& agreed) {
  auto give_up = [this] {
    log::error("stopping: {} failed save(s) in a row; the last good checkpoint is untouched",
               std::max<int64_t>(policy_.failures(), 1));
    return false;
  };
  if (agreed.background_failed) {
    if (!dist_.is_main()) log::warn("rank 0 could not write the checkpoint it saved in the background");
    if (count_failure(ev.backing_off)) return give_up();
  } else if (agreed.background_saved) {
    policy_.saved();  // every rank ends its run of failures (rank 0's clock is the one that counts)
  }
  const bool stopping = ev.finished || ev.max_steps || ev.stop || ev.deadline;
  const char* reason = policy_.reason(ev);
  if (!reason && deferred_ && !agreed.in_flight) reason = deferred_;
  if (!reason) return true;
  // A stop or the end is written before the exit, never left to a thread.
  const bool background = cfg_.async_save && !stopping;
  // A snapshot that --keep-every keeps must carry its step's name: it waits for the write instead.
  const bool kept_step = cfg_.keep_every > 0 && ev.step % cfg_.keep_every == 0;
  if (background && agreed.in_flight && SavePolicy::can_wait(reason) && !kept_step) {
    deferred_ = reason;  // one at a time: the next step after the write takes the newer state
    return true;
  }
  deferred_ = nullptr;
  if (agreed.in_flight) {
    const std::string earlier = drain_background();
    if (earlier == "S") policy_.saved();
    if (!earlier.empty() && earlier[0] == 'F' && count_failure(ev.backing_off)) return give_up();
  }
  if (background) {
    start_background(reason);
    return true;
  }
  if (save_synchronously(reason)) {
    policy_.saved();
    return true;
  }
  if (count_failure(ev.backing_off) || stopping) return give_up();
  return true;
}

SaveCoordinator::Outcome SaveCoordinator::save_now(const char* reason) {
  if (save_synchronously(reason)) {
    policy_.saved();  // every rank, as in the loop
    return Outcome::kSaved;
  }
  return count_failure(/*same_outage=*/false) ? Outcome::kGiveUp : Outcome::kFailed;
}

bool SaveCoordinator::count_failure(bool same_outage) {
  const int64_t before = policy_.failures();
  const int64_t failures = policy_.failed(same_outage);
  if (failures >= cfg_.max_failed_saves) return true;
  if (dist_.is_main() && failures > before)
    log::warn("save failed ({} in a row; the run stops at {}): periodic saves wait {:.0f}s before the next try",
              failures, cfg_.max_failed_saves, policy_.retry_seconds());
  else if (dist_.is_main())
    log::warn("save failed again during the backoff: the same outage, still {} in a row", failures);
  return false;
}

void SaveCoordinator::close() {
  if (!in_flight_) return;
  if (in_flight_->report.valid()) finish(*in_flight_, [this] { return in_flight_->report.get(); });
  in_flight_.reset();
}

std::optional<int64_t> SaveCoordinator::save_alone(const std::string& failure) {
  close();  // rank 0's background write, if any, is older: it ends first
  try {
    auto last = read_checkpoint_meta(checkpoints_.last_path());
    if (last && last->segment == options_.segment && last->step >= state_.global_step) {
      log::info("{} already holds step {} of this launch (this rank is at step {}): nothing newer to save",
                checkpoints_.last_path(), last->step, state_.global_step);
      return last->step;
    }
  } catch (const CheckpointError&) {
    // None yet, or damaged: this save is what the run resumes from.
  }
  after_failure_ = failure + " (written by rank " + std::to_string(dist_.rank()) + ")";
  save_started_ = Clock::now();
  const std::string outcome = write_on_main("after a lost rank", "", /*background=*/false);
  after_failure_.clear();
  if (outcome != "S") return std::nullopt;
  return state_.global_step;
}

// ------------------------------------------------------------------------------------------
// One save
// ------------------------------------------------------------------------------------------

bool SaveCoordinator::save_synchronously(const char* reason) {
  save_started_ = Clock::now();
  const std::string weights = source_.prepare();
  // Rank 0 writes; the others wait for its outcome as long as it is alive and the save limit
  // allows, not just for the collective timeout: a large checkpoint on a slow disk takes minutes.
  const auto limit = std::chrono::milliseconds(static_cast<int64_t>(cfg_.save_timeout_s * 1000));
  const std::string outcome = dist_.gather_after("saving a checkpoint", [&]() -> std::string {
    return dist_.is_main() ? write_on_main(reason, weights, /*background=*/false) : "";
  }, limit, kSaveTimeoutFlag)[0];
  if (outcome == "S") return true;
  if (!dist_.is_main()) log::warn("rank 0 could not save the checkpoint ({}): {}", reason, outcome.substr(1));
  return false;
}

void SaveCoordinator::start_background(const char* reason) {
  save_started_ = Clock::now();
  const std::string weights = source_.prepare();
  // No one waits: a snapshot that failed is reported with the next step, like a failed write.
  if (dist_.is_main() && write_on_main(reason, weights, /*background=*/true)[0] == 'F') unreported_ = false;
  if (in_flight_) in_flight_->paused_seconds = seconds_since(save_started_);
}

void SaveCoordinator::poll_background() {
  if (!in_flight_ || in_flight_->report.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
  unreported_ = finish(*in_flight_, [this] { return in_flight_->report.get(); }) == "S";
  in_flight_.reset();
}

std::string SaveCoordinator::drain_background() {
  const auto limit = std::chrono::milliseconds(static_cast<int64_t>(cfg_.save_timeout_s * 1000));
  std::string outcome =
      dist_.gather_after("finishing the checkpoint written in the background", [&]() -> std::string {
        if (!dist_.is_main() || !in_flight_) return "";
        std::string o = finish(*in_flight_, [this] { return in_flight_->report.get(); });
        in_flight_.reset();
        return o;
      }, limit, kSaveTimeoutFlag)[0];
  if (!outcome.empty() && outcome[0] == 'F' && !dist_.is_main())
    log::warn("rank 0 could not write the checkpoint it saved in the background: {}", outcome.substr(1));
  return outcome;
}

std::string SaveCoordinator::write_on_main(const char* reason, const std::string& weights, bool background) {
  // Whatever goes wrong here is reported to every rank as this save's outcome: a rank 0 that
  // threw out of a save would leave the others waiting for it.
  // best.pt must hold the step last.pt calls best: this very state when it is a new best, else a
  // best whose own save failed (kept until published). Before the first validation there is no
  // best to keep, and best.pt follows last.pt (as Lightning's checkpoint with no metric to
  // monitor), so even a short run has a best.pt to export.
  auto job = std::make_unique<Job>();
  job->reason = reason;
  job->weights = weights;
  job->new_best = best_unpublished_ && state_.has_best && state_.best_step == state_.global_step;
  job->is_best = job->new_best || !state_.has_best;
  CheckpointMeta meta;
  meta.step = state_.global_step;
  meta.epoch = state_.epoch;
  meta.segment = options_.segment;
  meta.resumed_from = options_.resumed_from;
  meta.saved_at = static_cast<int64_t>(std::time(nullptr));
  meta.after_failure = after_failure_;
  const std::string fault = injected_fault(meta.step);
  try {
    if (fault == "build" || fault == "build-once") throw std::runtime_error("injected fault while building the state");
    // On the CPU the state dicts alias the live tensors: a synchronous save writes them while
    // training waits, a background one copies them first (below), and its probe runs on the
    // writer thread, from the snapshot.
    job->built = PendingBest{source_.build(/*with_probe=*/!(background && source_.probe)), meta};
  } catch (const std::exception& e) {
    log::error("checkpoint not saved ({}): {}; the last good checkpoint is untouched", reason, e.what());
    if (!job->new_best) return std::string("F") + e.what();
    // The weights are still this best's (the optimizer has not stepped): built once more, without
    // the resume proof's probe (a forward pass, the part most likely to fail), and kept in memory.
    try {
      if (fault == "build") throw std::runtime_error("injected fault while building the state");
      pending_best_ = PendingBest{snapshot_copy(source_.build(/*with_probe=*/false)), meta};
      log::warn("step {}: the new best is kept in memory (without its resume probe): best.pt follows with the next "
                "save",
                meta.step);
    } catch (const std::exception& again) {
      best_unpublished_ = false;
      log::error("step {}: the new best could not be kept either ({}): best.pt keeps the previous best until the "
                 "next new best",
                 meta.step, again.what());
    }
    return std::string("F") + e.what();
  }
  if (!background) return finish(*job, [&] { return write(*job); });
  // The copy of the state, too, runs on the writer thread, overlapped with the next step's forward
  // and backward passes; the training thread waits for it only before its optimizer step.
  auto copied = std::make_shared<std::promise<void>>();
  job->copied = copied->get_future().share();
  if (!arena_ && arena_ready_.valid() && arena_ready_.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
    arena_ = arena_ready_.get();
  job->arena = arena_;
  Job* j = job.get();
  j->state_is_copy = options_.on_gpu;  // on a GPU the state dicts are copies already
  j->report = std::async(std::launch::async, [this, j, copied, fault] {
    try {
      if (fault == "copy") throw std::runtime_error("injected fault while copying the snapshot");
      if (!j->state_is_copy) {
        const size_t need = snapshot_bytes(j->built.state);
        if (!j->arena || !j->arena->reusable() || j->arena->capacity() < need)
          j->arena = std::make_shared<SnapshotArena>(need + need / 8);  // room for histories to grow
        j->built.state = snapshot_copy(j->built.state, *j->arena);
        j->state_is_copy = true;
      }
    } catch (...) {
      copied->set_exception(std::current_exception());
      throw;
    }
    copied->set_value();
    if (source_.probe) {
      try {
        source_.probe(j->built.state);
      } catch (const std::exception& e) {
        log::warn("step {}: the resume proof's probe loss could not be computed ({}); saved without it",
                  j->built.meta.step, e.what());
      }
    }
    // The copy is on the training thread's path (its optimizer step waits for it); the write is
    // not, and yields the CPU to training: where every core trains (two ranks on two cores) it
    // writes in the time they leave idle, later rather than at their cost.
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 19);
    return write(*j);
  });
  in_flight_ = std::move(job);
  return "B";
}

SaveReport SaveCoordinator::write(const Job& job) {
  inject_write_fault(job.built.meta.step);
  // pending_best_ changes only in finish(), on the training thread, after this returned.
  return checkpoints_.save(job.built.state, job.built.meta, job.is_best, pending_best_ ? &*pending_best_ : nullptr);
}

void SaveCoordinator::keep_pending_best(Job& job) {
  if (!job.new_best) return;
  if (job.rescued) {
    job.built.state = std::move(*job.rescued);
  } else if (!job.state_is_copy) {
    // A synchronous save's state aliases weights that are still this step's; a background one's
    // copy failed, and the optimizer has changed them since: they are not this best any more.
    if (job.copied.valid()) {
      best_unpublished_ = false;
      return;
    }
    job.built.state = snapshot_copy(job.built.state);
  }
  pending_best_ = std::move(job.built);
}

std::string SaveCoordinator::finish(Job& job, const std::function<SaveReport()>& result) {
  const bool background = job.copied.valid();
  const int64_t step = job.built.meta.step;
  // The writer thread may change `job` until result() has returned.
  auto keep_arena = [&] {
    if (job.arena) arena_ = job.arena;
  };
  try {
    SaveReport r = result();
    keep_arena();
    policy_.saved();
    save_seconds_.add(background ? r.written.seconds + job.paused_seconds : seconds_since(save_started_));
    if (r.best_published) {
      // A background save's best.pt is this job's step; a newer best found meanwhile is still to come.
      if (!state_.has_best || state_.best_step <= step) best_unpublished_ = false;
      pending_best_.reset();
    } else {
      keep_pending_best(job);
    }
    std::string names;
    for (const auto& p : r.paths) names += (names.empty() ? "" : ", ") + p.substr(p.find_last_of('/') + 1);
    log::info("saved {} ({}): step {}, {:.1f} MB in {:.3f}s as {}{}{}; {}{}",
              r.paths.front(), job.reason, step, r.written.bytes / 1e6, r.written.seconds, names,
              r.pruned.empty() ? "" : fmt::format(", pruned {} old snapshot(s)", r.pruned.size()),
              r.freed.empty() ? "" : fmt::format(", deleted {} old snapshot(s) first to make room on a full disk",
                                                 r.freed.size()),
              job.weights.empty() ? fmt::format("written by rank {} alone", dist_.rank())
                                  : fmt::format("weights {} identical on {} rank(s)", job.weights, dist_.world_size()),
              background ? fmt::format("; written in the background, training paused {:.3f}s for the snapshot",
                                       job.paused_seconds)
                         : fmt::format("; training paused {:.3f}s", seconds_since(save_started_)));
    for (const auto& problem : r.problems)
      log::warn("saved {}, but: {}{}", r.paths.front(), problem,
                pending_best_ ? " (best.pt follows with the next save)" : "");
    return "S";
  } catch (const std::exception& e) {
    keep_arena();
    std::string about_best;
    if (job.new_best) {
      try {
        keep_pending_best(job);
      } catch (const std::exception& copy) {
        best_unpublished_ = false;
        log::error("step {}: the new best could not be copied ({})", step, copy.what());
      }
      about_best = pending_best_ && pending_best_->meta.step == step
                       ? " (the new best is kept in memory: best.pt follows with the next save)"
                       : " (the new best's state is lost: best.pt keeps the previous best until the next new best)";
    }
    log::error("checkpoint not saved ({}): {}; the last good checkpoint is untouched{}{}", job.reason, e.what(),
               about_best, background ? fmt::format(" [step {}, written in the background]", step) : "");
    return std::string("F") + e.what();
  }
}

}  // namespace resumable
