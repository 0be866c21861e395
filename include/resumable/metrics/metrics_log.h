// What a run records for the people watching it, written by rank 0 as it trains:
//   RUN_DIR/metrics.jsonl  one JSON object per line: a row per step {step, epoch, loss, lr,
//                          samples_per_s, time}, per evaluation {step, epoch, val_loss, val_wer,
//                          val_per, val_token_acc, new_best, time}, per resume {step, event:
//                          "resume", from, time}. Evaluation rows carry no "loss" key, so the
//                          rows with one are exactly the training steps.
//   RUN_DIR/tb/            TensorBoard event files: train/loss, train/lr, train/samples_per_s,
//                          val/loss, val/wer, val/per, run/resumed_at_step.
// Both continue across resumes with no step twice: on start, metrics.jsonl is cut back to the
// steps the checkpoint holds (a killed run may have logged steps past its last save), and the new
// event file begins with a SessionLog START that makes TensorBoard drop those steps as well. When
// an earlier run's checkpoints were set aside (--resume never --force), its logs are moved aside
// too (NAME.old-<time>) instead.
// Logging never stops training: a failed write is reported once.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "resumable/metrics/event_file_writer.h"

namespace resumable {

struct EvalRow {
  double loss = 0, wer = 0, per = 0, token_acc = 0;
  bool new_best = false;
};

class MetricsLog {
 public:
  // `start_step`: the step the run starts after (0 for a new run); `resumed_from`: the checkpoint
  // resumed, empty for a new run; `earlier_run_set_aside`: the checkpoints in run_dir belonged to
  // another run and were moved aside.
  MetricsLog(const std::string& run_dir, int64_t start_step, const std::string& resumed_from,
             bool earlier_run_set_aside = false);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void step(int64_t step, int64_t epoch, double loss, double lr, double samples_per_s);
  void evaluation(int64_t step, int64_t epoch, const EvalRow& r);
  void flush();

  const std::string& jsonl_path() const { return jsonl_path_; }

 private:
  void append(const std::string& line);
  std::string jsonl_path_;
  std::FILE* jsonl_ = nullptr;
  std::unique_ptr<EventFileWriter> events_;
};

// Rewrites `path` (atomically) without the rows whose "step" is beyond `last_step`; returns how
// many it dropped. Lines that are not JSON objects (a torn last line) are dropped too.
size_t cut_metrics_after(const std::string& path, int64_t last_step);

}  // namespace resumable
