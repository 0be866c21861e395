#include "resumable/metrics/metrics_log.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "resumable/util/atomic_file.h"
#include "resumable/util/logging.h"

namespace resumable {
namespace {

double unix_time() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

// NAME.old-<local time>[-i]: where the logs of an earlier run go, as set-aside checkpoints do.
std::string set_aside(const std::string& path) {
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  std::string target = path + ".old-" + stamp;
  struct stat st{};
  for (int i = 1; ::stat(target.c_str(), &st) == 0; ++i) target = path + ".old-" + stamp + "-" + std::to_string(i);
  if (::rename(path.c_str(), target.c_str()) != 0)
    throw std::runtime_error("cannot move " + path + " aside: " + std::strerror(errno));
  return target;
}

bool has_content(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return false;
  if (!S_ISDIR(st.st_mode)) return st.st_size > 0;
  DIR* d = ::opendir(path.c_str());
  if (!d) return false;
  bool any = false;
  while (dirent* e = ::readdir(d))
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) any = true;
  ::closedir(d);
  return any;
}

}  // namespace

size_t cut_metrics_after(const std::string& path, int64_t last_step) {
  std::ifstream in(path);
  if (!in) return 0;
  std::string kept, line;
  size_t dropped = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    bool keep = row.is_object() && !(row.contains("step") && row["step"].is_number_integer() &&
                                     row["step"].get<int64_t>() > last_step);
    if (keep) kept += line + "\n";
    else ++dropped;
  }
  if (dropped == 0) return 0;
  AtomicFileWriter out(path);
  out.write(kept.data(), kept.size());
  out.commit();
  return dropped;
}

MetricsLog::MetricsLog(const std::string& run_dir, int64_t start_step, const std::string& resumed_from,
                       bool earlier_run_set_aside)
    : jsonl_path_(run_dir + "/metrics.jsonl") {
  const std::string tb_dir = run_dir + "/tb";
  try {
    create_directories(run_dir);
    if (earlier_run_set_aside) {
      // Another run's logs: kept beside, as its checkpoints are.
      for (const std::string& old : {jsonl_path_, tb_dir})
        if (has_content(old)) log_info("metrics: moved the earlier run's " + old + " to " + set_aside(old));
    } else if (size_t dropped = cut_metrics_after(jsonl_path_, start_step); dropped > 0) {
      log_info("metrics: dropped " + std::to_string(dropped) + " row(s) of " + jsonl_path_ +
               " logged after step " + std::to_string(start_step) + " by a run that did not save them");
    }
  } catch (const std::exception& e) {
    log_warn("metrics: cannot prepare " + jsonl_path_ + ": " + e.what() + "; no metrics.jsonl this run");
  }
  jsonl_ = std::fopen(jsonl_path_.c_str(), "a");
  if (!jsonl_) log_warn("metrics: cannot open " + jsonl_path_ + ": " + std::strerror(errno) + "; no metrics.jsonl this run");
  events_ = std::make_unique<EventFileWriter>(tb_dir);
  events_->session_start(start_step + 1);
  if (!resumed_from.empty()) {
    append(nlohmann::json{{"step", start_step}, {"event", "resume"}, {"from", resumed_from}, {"time", unix_time()}}.dump());
    events_->scalar("run/resumed_at_step", start_step, static_cast<double>(start_step));
  }
  flush();
}

MetricsLog::~MetricsLog() {
  if (jsonl_) std::fclose(jsonl_);
}

void MetricsLog::append(const std::string& line) {
  if (!jsonl_) return;
  if (std::fprintf(jsonl_, "%s\n", line.c_str()) < 0) {
    log_warn("metrics: writing " + jsonl_path_ + " failed: " + std::strerror(errno) + "; no more rows this run");
    std::fclose(jsonl_);
    jsonl_ = nullptr;
  }
}

void MetricsLog::step(int64_t step, int64_t epoch, double loss, double lr, double samples_per_s) {
  append(nlohmann::json{{"step", step}, {"epoch", epoch}, {"loss", loss}, {"lr", lr},
                        {"samples_per_s", samples_per_s}, {"time", unix_time()}}
             .dump());
  events_->scalar("train/loss", step, loss);
  events_->scalar("train/lr", step, lr);
  events_->scalar("train/samples_per_s", step, samples_per_s);
  flush();
}

void MetricsLog::evaluation(int64_t step, int64_t epoch, const EvalRow& r) {
  append(nlohmann::json{{"step", step}, {"epoch", epoch}, {"val_loss", r.loss}, {"val_wer", r.wer},
                        {"val_per", r.per}, {"val_token_acc", r.token_acc}, {"new_best", r.new_best},
                        {"time", unix_time()}}
             .dump());
  events_->scalar("val/loss", step, r.loss);
  events_->scalar("val/wer", step, r.wer);
  events_->scalar("val/per", step, r.per);
  events_->scalar("val/token_acc", step, r.token_acc);
  flush();
}

void MetricsLog::flush() {
  // Lines reach the kernel as they are written, so `tail -f` and a crash lose at most the step
  // being written; no fsync: a log is not worth a disk flush per step.
  if (jsonl_ && std::fflush(jsonl_) != 0) {
    log_warn("metrics: writing " + jsonl_path_ + " failed: " + std::strerror(errno) + "; no more rows this run");
    std::fclose(jsonl_);
    jsonl_ = nullptr;
  }
  events_->flush();
}

}  // namespace resumable
