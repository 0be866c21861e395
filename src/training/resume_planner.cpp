#include "resumable/training/resume_planner.h"

#include <climits>
#include <cstdlib>
#include <iostream>
#include <unistd.h>

#include "resumable/util/errors.h"
#include "resumable/util/log.h"

#include "resumable/checkpoint/checkpoint_manager.h"
#include "resumable/checkpoint/checkpoint_state.h"
#include "resumable/training/checkpoint_verify.h"
#include "resumable/distributed/distributed.h"

namespace resumable {
namespace {

bool interactive() {
  const char* ci = std::getenv("CI");
  return ::isatty(0) && ::isatty(1) && !(ci && *ci && std::string(ci) != "false");
}

bool ask_yes(const std::string& question) {
  std::cout << question << " [Y/n] " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer)) return true;
  return answer.empty() || answer[0] == 'y' || answer[0] == 'Y';
}

// The path as given, made absolute (no symlinks resolved: the file may be gone).
std::string absolute(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char buf[PATH_MAX];
  if (!::getcwd(buf, sizeof buf)) return path;
  std::string p = path.rfind("./", 0) == 0 ? path.substr(2) : path;
  return std::string(buf) + "/" + p;
}

struct Decision {
  ResumePlan::Kind kind = ResumePlan::Kind::kFresh;
  std::optional<LoadedCheckpoint> loaded;  // rank 0's copy
  std::string set_aside_to;                // where an earlier run's checkpoints were moved (dry: would be)
  std::vector<std::string> skipped;        // damaged checkpoints passed over
  bool would_ask = false;                  // dry: a start on this terminal would ask first
};

void check(const LoadedCheckpoint& ck) { verify_checkpoint(ck); }

LoadedCheckpoint load_verified(const std::string& path) {
  LoadedCheckpoint ck = read_checkpoint(path);
  check(ck);
  return ck;
}

// A file the user named (`flag` PATH): its error also says what to do next. A damaged one is
// never repaired, only passed over, so the way on is another checkpoint; a missing one is most
// often a mistyped path. (Other file-system errors already say the file is left as it is.)
CheckpointError with_next_step(const CheckpointError& e, const std::string& path, const char* flag) {
  auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  const std::string f = flag;
  std::string text = e.what();
  if (e.damaged()) {
    text += " (`trainer ckpt list " + dir + "` shows which checkpoints there are good";
    text += f == "--resume" ? "; --resume auto resumes from the run directory's newest good one)"
            : f == "--eval" ? "; --resume PATH evaluates one of them)"
                            : ")";
  } else if (::access(path.c_str(), F_OK) != 0 && ::access(dir.c_str(), F_OK) == 0) {
    text += " (check " + f + ": `trainer ckpt list " + dir + "` lists the checkpoints there)";
  }
  return CheckpointError(text, e.kind());
}

LoadedCheckpoint load_given(const std::string& path, const char* flag) {
  try {
    return load_verified(path);
  } catch (const CheckpointError& e) {
    throw with_next_step(e, path, flag);
  }
}

// --resume PATH. A restart with the same flags (a restart wrapper, a requeue, torchrun's
// --max-restarts) must not rewind the progress made since: once this run has saved checkpoints
// whose history holds a resume from PATH, the newest good one of those is where to go on.
LoadedCheckpoint resume_path(const CheckpointManager& manager, const std::string& from,
                             std::vector<std::string>& skipped) {
  std::string checksum;
  std::optional<LoadedCheckpoint> given;
  std::optional<CheckpointError> given_error;
  try {
    given = load_verified(from);
    checksum = given->checksum;
  } catch (const CheckpointError& e) {
    given_error = e;  // PATH may be gone (pruned) while its descendants are here
  }
  // Identity is the checksum while PATH can be read; only a PATH that is gone is matched by its name
  // (a name can have held other files before).
  const std::string name = given ? "" : absolute(from);
  auto descendant = manager.load_newest_good(skipped, check, [&](const CheckpointFile& f) {
    return f.meta && f.meta->descends_from(checksum, name);
  });
  for (const auto& why : skipped) log::warn("skipping unreadable checkpoint: {}", why);
  if (descendant) {
    log::info("--resume {}: this run already went on from it; continuing from {} ({}) instead", from,
              descendant->path, position_text(*descendant));
    return std::move(*descendant);
  }
  if (given_error) throw with_next_step(*given_error, from, "--resume");
  return std::move(*given);
}

// Rank 0 alone: look at the files and decide. Throws the error every rank will report. `dry`
// (--dry-run): moves nothing aside and asks nothing, only says so in the decision.
Decision decide(const TrainConfig& cfg, bool for_evaluation, bool dry) {
  CheckpointManager manager(cfg.resolved_run_dir() + "/checkpoints", {});
  const std::string& from = cfg.resume_from;
  Decision d;
  if (for_evaluation) {
    d.kind = ResumePlan::Kind::kResume;
    if (from != "auto" && from != "never") {
      d.loaded = load_given(from, "--resume");
    } else if (!cfg.init_from.empty()) {
      d.loaded = load_given(cfg.init_from, "--init-from");
    } else if (::access(manager.best_path().c_str(), F_OK) == 0) {
      d.loaded = load_given(manager.best_path(), "--eval");
    } else {
      std::vector<std::string> skipped;
      d.loaded = manager.load_newest_good(skipped, check);
      if (!d.loaded) throw CheckpointError(manager.dir() + ": no readable checkpoint to evaluate (give --resume PATH)");
    }
    return d;
  }
  if (from != "auto" && from != "never") {
    d.kind = ResumePlan::Kind::kResume;
    d.loaded = resume_path(manager, from, d.skipped);
    return d;
  }
  bool has = manager.has_checkpoints();
  if (from == "never" && has) {
    if (!cfg.force)
      throw ConfigError(manager.dir() + " already holds checkpoints: use --resume auto to continue that run, or "
                        "--force to move them aside and start over");
    if (dry) {
      d.set_aside_to = manager.set_aside_target();
    } else {
      d.set_aside_to = manager.set_aside();
      log::warn("--resume never --force: moved {} aside to {}", manager.dir(), d.set_aside_to);
    }
    has = false;
  }
  if (from == "auto" && has) {
    auto good = manager.load_newest_good(d.skipped, check);
    for (const auto& why : d.skipped) log::warn("skipping unreadable checkpoint: {}", why);
    if (!good)
      throw CheckpointError(manager.dir() + ": no readable checkpoint (" + std::to_string(d.skipped.size()) +
                            " damaged); to start over instead: --resume never --force");
    if (!d.skipped.empty()) log::warn("falling back to the newest good checkpoint: {}", good->path);
    d.would_ask = dry && interactive();
    if (!dry && interactive() && !ask_yes("Resume from " + good->path + " (" + position_text(*good) + ")?")) {
      d.set_aside_to = manager.set_aside();
      log::warn("not resuming: moved {} aside to {}", manager.dir(), d.set_aside_to);
    } else {
      d.kind = ResumePlan::Kind::kResume;
      d.loaded = std::move(good);
      return d;
    }
  }
  if (!cfg.init_from.empty()) {
    d.kind = ResumePlan::Kind::kInitFrom;
    d.loaded = load_given(cfg.init_from, "--init-from");
  }
  return d;
}

// Rank 0, training: this launch's segment and the timeline of resumes its saves carry on.
void note_lineage(const TrainConfig& cfg, const Decision& d, ResumePlan& plan) {
  plan.checkpoints_set_aside = d.set_aside_to;
  // This launch sorts after every file it could see; its saves carry the timeline's resumes.
  CheckpointManager manager(cfg.resolved_run_dir() + "/checkpoints", {});
  plan.segment = manager.highest_segment() + 1;
  if (d.kind == ResumePlan::Kind::kResume && d.loaded->meta) {
    plan.segment = std::max(plan.segment, d.loaded->meta->segment + 1);
    plan.resumed_from = d.loaded->meta->resumed_from;
  }
  if (d.kind == ResumePlan::Kind::kResume) plan.resumed_from.push_back({d.loaded->checksum, absolute(d.loaded->path)});
}

// Kind codes on the wire.
constexpr char kFresh = 'F', kResume = 'R', kInit = 'I', kConfigErr = 'C', kBusyErr = 'B', kCheckpointErr = 'K',
               kOtherErr = 'E';

// How long a starting job waits for a tool holding the run directory's lock (`trainer ckpt clean`
// holds it for the seconds its deletions take) before it gives up as on a busy directory.
constexpr std::chrono::seconds kToolLockWait{60};

}  // namespace

std::string position_text(const LoadedCheckpoint& ck) {
  CheckpointSummary s = summarize_checkpoint(ck);
  return "epoch " + std::to_string(s.epoch) + ", step " + std::to_string(s.global_step);
}

ResumePlan plan_resume(const TrainConfig& cfg, Distributed& dist, const ResumeOptions& options) {
  ResumePlan plan;
  Decision d;
  // Rank 0's part may take long (verifying a large file, a prompt): the others wait for it as long
  // as it is alive, not just for the collective timeout.
  std::string message = dist.gather_after("deciding where to resume from", [&]() -> std::string {
    if (!dist.is_main()) return "";
    try {
      if (!options.for_evaluation) {
        plan.lock = std::make_unique<RunDirectoryLock>(cfg.resolved_run_dir(),
                                                       RunDirectoryLockOptions{"", kToolLockWait});
        if (!plan.lock->taken_over_from().empty())
          log::warn("{}: took over the run directory's lock left by {}, which ended without releasing it "
                    "(crashed or killed)", plan.lock->path(), plan.lock->taken_over_from());
      }
      d = decide(cfg, options.for_evaluation, /*dry=*/false);
      char kind = d.kind == ResumePlan::Kind::kFresh ? kFresh : d.kind == ResumePlan::Kind::kResume ? kResume : kInit;
      return std::string(1, kind) + (d.loaded ? d.loaded->path : "");
    } catch (const RunDirectoryBusy& e) {
      return kBusyErr + std::string(e.what());
    } catch (const ConfigError& e) {
      return kConfigErr + std::string(e.what());
    } catch (const CheckpointError& e) {
      return kCheckpointErr + std::string(e.what());
    } catch (const std::exception& e) {
      return kOtherErr + std::string(e.what());
    }
  })[0];
  const char kind = message.empty() ? kOtherErr : message[0];
  const std::string rest = message.empty() ? "no decision" : message.substr(1);
  if (kind == kConfigErr) throw ConfigError(rest);
  if (kind == kBusyErr) throw RunDirectoryBusy(rest);
  if (kind == kCheckpointErr) throw CheckpointError(rest);
  if (kind == kOtherErr) throw std::runtime_error(rest);

  if (dist.is_main() && !options.for_evaluation) note_lineage(cfg, d, plan);
  if (kind == kFresh) return plan;
  plan.kind = kind == kResume ? ResumePlan::Kind::kResume : ResumePlan::Kind::kInitFrom;
  // Every rank loads the same file (each may take long); rank 0 confirms they all hold the same bytes.
  std::vector<std::string> checksums = dist.gather_after("reading the checkpoint to resume from", [&]() -> std::string {
    if (dist.is_main()) {
      plan.checkpoint = std::move(d.loaded);
      return plan.checkpoint->checksum;
    }
    try {
      plan.checkpoint = read_checkpoint(rest);
      return plan.checkpoint->checksum;
    } catch (const CheckpointError& e) {
      log::error("{}", e.what());
      return std::string("!") + e.what();
    }
  });
  for (size_t r = 1; r < checksums.size(); ++r)
    if (checksums[r] != checksums[0])
      throw CheckpointError(rest + ": not every rank read the same checkpoint (rank " + std::to_string(r) + ": " +
                            (checksums[r].rfind('!', 0) == 0 ? checksums[r].substr(1) : "another checksum") +
                            "); is the run directory on a file system all nodes share?");
  return plan;
}

Refusal refusal_of(const std::exception& e) {
  std::string message = e.what();
  if (auto nl = message.find('\n'); nl != std::string::npos) message.resize(nl);
  int code = exit_code::kRuntimeError;
  if (dynamic_cast<const ConfigError*>(&e) || dynamic_cast<const DataError*>(&e)) code = exit_code::kBadInput;
  if (dynamic_cast<const SaveError*>(&e)) code = exit_code::kSaveFailed;
  if (dynamic_cast<const RunDirectoryBusy*>(&e)) code = exit_code::kRunDirectoryBusy;
  return {message, code};
}

ResumePlan preview_resume(const TrainConfig& cfg, const ResumeOptions& options, ResumePreview& preview) {
  ResumePlan plan;
  if (!options.for_evaluation) {
    preview.lock = RunDirectoryLock::probe(cfg.resolved_run_dir());
    // A held lock is exit 69 (the launchers retry it; a tool's is waited for first); another
    // problem with the lock file is a bad --run-dir.
    if (!preview.lock.refusal.empty())
      preview.refusal = Refusal{preview.lock.refusal, preview.lock.held ? exit_code::kRunDirectoryBusy : exit_code::kBadInput};
  }
  // A start stops at a held lock; the decision it would make once the lock is free is still shown.
  try {
    Decision d = decide(cfg, options.for_evaluation, /*dry=*/true);
    preview.decided = true;
    preview.skipped = d.skipped;
    preview.would_ask = d.would_ask;
    if (!options.for_evaluation) note_lineage(cfg, d, plan);
    plan.kind = d.kind;
    plan.checkpoint = std::move(d.loaded);
  } catch (const std::exception& e) {
    if (!preview.refusal) preview.refusal = refusal_of(e);
  }
  return plan;
}

}  // namespace resumable
