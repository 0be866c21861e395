#include "resumable/resume_planner.h"

#include <cstdlib>
#include <iostream>
#include <unistd.h>

#include "resumable/log.h"

#include "resumable/checkpoint_manager.h"
#include "resumable/checkpoint_state.h"
#include "resumable/checkpoint_verify.h"
#include "resumable/distributed.h"

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

struct Decision {
  ResumePlan::Kind kind = ResumePlan::Kind::kFresh;
  std::string path;
  std::optional<LoadedCheckpoint> loaded;  // rank 0's copy
};

// Rank 0 alone: look at the files and decide. Throws the error every rank will report.
Decision decide(const TrainConfig& cfg, bool for_evaluation) {
  CheckpointManager manager(cfg.resolved_run_dir() + "/checkpoints", {});
  const std::string& from = cfg.resume_from;
  Decision d;
  auto check = [](const LoadedCheckpoint& ck) { verify_checkpoint(ck); };
  auto resume_file = [&](const std::string& path) {
    d.kind = ResumePlan::Kind::kResume;
    d.path = path;
    d.loaded = read_checkpoint(path);
    check(*d.loaded);
  };
  if (from != "auto" && from != "never") {
    resume_file(from);
    return d;
  }
  if (for_evaluation) {
    if (!cfg.init_from.empty()) {
      resume_file(cfg.init_from);
      return d;
    }
    if (::access(manager.best_path().c_str(), F_OK) == 0) {
      resume_file(manager.best_path());
      return d;
    }
    std::vector<std::string> skipped;
    auto good = manager.load_newest_good(skipped, check);
    if (!good) throw CheckpointError(manager.dir() + ": no readable checkpoint to evaluate (give --resume PATH)");
    d.kind = ResumePlan::Kind::kResume;
    d.path = good->path;
    d.loaded = std::move(good);
    return d;
  }
  bool has = manager.has_checkpoints();
  if (from == "never" && has) {
    if (!cfg.force)
      throw ConfigError(manager.dir() + " already holds checkpoints: use --resume auto to continue that run, or "
                        "--force to move them aside and start over");
    log::warn("--resume never --force: moved {} aside to {}", manager.dir(), manager.set_aside());
    has = false;
  }
  if (from == "auto" && has) {
    std::vector<std::string> skipped;
    auto good = manager.load_newest_good(skipped, check);
    for (const auto& why : skipped) log::warn("skipping unreadable checkpoint: {}", why);
    if (!good)
      throw CheckpointError(manager.dir() + ": no readable checkpoint (" + std::to_string(skipped.size()) +
                            " damaged); to start over instead: --resume never --force");
    if (!skipped.empty()) log::warn("falling back to the newest good checkpoint: {}", good->path);
    if (interactive() && !ask_yes("Resume from " + good->path + " (" + position_text(*good) + ")?")) {
      log::warn("not resuming: moved {} aside to {}", manager.dir(), manager.set_aside());
      has = false;
    } else {
      d.kind = ResumePlan::Kind::kResume;
      d.path = good->path;
      d.loaded = std::move(good);
      return d;
    }
  }
  if (!cfg.init_from.empty()) {
    d.kind = ResumePlan::Kind::kInitFrom;
    d.path = cfg.init_from;
    d.loaded = read_checkpoint(cfg.init_from);
    check(*d.loaded);
  }
  return d;
}

// Kind codes on the wire.
constexpr char kFresh = 'F', kResume = 'R', kInit = 'I', kConfigErr = 'C', kCheckpointErr = 'K', kOtherErr = 'E';

}  // namespace

std::string position_text(const LoadedCheckpoint& ck) {
  CheckpointSummary s = summarize_checkpoint(ck);
  return "epoch " + std::to_string(s.epoch) + ", step " + std::to_string(s.global_step);
}

ResumePlan plan_resume(const TrainConfig& cfg, Distributed& dist, bool for_evaluation) {
  Decision d;
  std::string message;
  if (dist.is_main()) {
    try {
      d = decide(cfg, for_evaluation);
      message = std::string(1, d.kind == ResumePlan::Kind::kFresh ? kFresh
                               : d.kind == ResumePlan::Kind::kResume ? kResume
                                                                      : kInit) +
                d.path;
    } catch (const ConfigError& e) {
      message = kConfigErr + std::string(e.what());
    } catch (const CheckpointError& e) {
      message = kCheckpointErr + std::string(e.what());
    } catch (const std::exception& e) {
      message = kOtherErr + std::string(e.what());
    }
  }
  message = dist.broadcast_string(message);
  const char kind = message.empty() ? kOtherErr : message[0];
  const std::string rest = message.empty() ? "no decision" : message.substr(1);
  if (kind == kConfigErr) throw ConfigError(rest);
  if (kind == kCheckpointErr) throw CheckpointError(rest);
  if (kind == kOtherErr) throw std::runtime_error(rest);

  ResumePlan plan;
  if (kind == kFresh) return plan;
  plan.kind = kind == kResume ? ResumePlan::Kind::kResume : ResumePlan::Kind::kInitFrom;
  // Every rank loads the same file; rank 0 confirms they all hold the same bytes.
  std::string problem;
  if (dist.is_main()) {
    plan.checkpoint = std::move(d.loaded);
  } else {
    try {
      plan.checkpoint = read_checkpoint(rest);
    } catch (const CheckpointError& e) {
      problem = e.what();
      log::error("{}", problem);
    }
  }
  std::string expected = dist.broadcast_string(dist.is_main() ? plan.checkpoint->checksum : "");
  bool same = problem.empty() && plan.checkpoint->checksum == expected;
  if (!dist.all_true(same))
    throw CheckpointError(rest + ": not every rank read the same checkpoint (" +
                          (problem.empty() ? "checksums differ across ranks" : problem) +
                          "); is the run directory on a file system all nodes share?");
  return plan;
}

}  // namespace resumable
