// Training progress as plain data: where the run is, what it has measured, and its best result.
// Fields are declared once, in visit(), which both saving and loading walk, so the two cannot
// drift. Histories keep growing across resumes; they are the checkpoint's record of the whole run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace resumable {

struct EvalResult {
  double loss = 0;       // mean token cross-entropy (no label smoothing), teacher forcing
  double token_acc = 0;  // share of target tokens predicted right, teacher forcing
  double wer = 0;        // word error rate of greedy decoding, against all references
  double per = 0;        // phoneme error rate of greedy decoding
  double words = 0;      // words evaluated

  double metric(const std::string& name) const;  // val_loss | val_token_acc | val_wer | val_per
};

struct TrainHistory {
  std::vector<double> train_loss;        // per optimizer step: mean token loss over all ranks
  std::vector<double> learning_rate;     // per optimizer step: the LR it used
  std::vector<double> epoch_train_loss;  // per completed epoch: token-weighted mean loss
  std::vector<int64_t> eval_step;        // per evaluation: global step after which it ran
  std::vector<int64_t> eval_epoch;       // per evaluation: epochs completed
  std::vector<double> val_loss;
  std::vector<double> val_token_acc;
  std::vector<double> val_wer;
  std::vector<double> val_per;
  std::vector<int64_t> resumed_at_step;  // global step of each resume

  template <class Visitor>
  void visit(Visitor&& v) {
    v("train_loss", train_loss);
    v("learning_rate", learning_rate);
    v("epoch_train_loss", epoch_train_loss);
    v("eval_step", eval_step);
    v("eval_epoch", eval_epoch);
    v("val_loss", val_loss);
    v("val_token_acc", val_token_acc);
    v("val_wer", val_wer);
    v("val_per", val_per);
    v("resumed_at_step", resumed_at_step);
  }
};

struct TrainState {
  int64_t global_step = 0;     // optimizer steps completed
  int64_t epoch = 0;           // current epoch, 0-based; equals the sampler's epoch
  int64_t batch_in_epoch = 0;  // optimizer steps completed in the current epoch
  int64_t samples_seen = 0;    // training samples consumed since the start, all ranks together
  double epoch_loss_sum = 0;   // token-loss sum so far in this epoch (for epoch_train_loss)
  double epoch_tokens = 0;     // target tokens so far in this epoch
  bool has_best = false;       // whether best_metric holds a measurement yet
  double best_metric = 0;      // best value of the configured metric
  int64_t best_step = -1;      // global step at which best_metric was measured
  bool eval_pending = false;   // the epoch's validation was interrupted by a stop: run it on resume
  // With --time-budget-minutes only (otherwise 0, so that runs without one stay bit-comparable):
  double train_seconds = 0;    // of the budget spent, all invocations together, up to this state
  int64_t fitted_epochs = 0;   // the run's epochs as fitted to the budget (0: none yet, the config's)
  // With attention "auto" on a GPU: the kernel its timing chose at the run's start, and the
  // device type it was timed on; a resume on that type keeps it, so that it stays bit-exact ("": none).
  std::string attention_kernel;
  std::string attention_device;
  TrainHistory history;

  template <class Visitor>
  void visit(Visitor&& v) {
    v("global_step", global_step);
    v("epoch", epoch);
    v("batch_in_epoch", batch_in_epoch);
    v("samples_seen", samples_seen);
    v("epoch_loss_sum", epoch_loss_sum);
    v("epoch_tokens", epoch_tokens);
    v("has_best", has_best);
    v("best_metric", best_metric);
    v("best_step", best_step);
    v("eval_pending", eval_pending, false);  // a later addition: older checkpoints lack it
    v("train_seconds", train_seconds, 0.0);          // version 3
    v("fitted_epochs", fitted_epochs, int64_t{0});   // version 3
    v("attention_kernel", attention_kernel, std::string());  // later additions
    v("attention_device", attention_device, std::string());
  }

  // Records a finished optimizer step.
  void record_step(double loss_sum, double tokens, double lr, int64_t samples);
  // Closes the epoch: appends its mean loss and moves to the next epoch.
  void finish_epoch();
  // Appends an evaluation; returns true when it is a new best of `metric` (maximize or minimize).
  bool record_eval(const EvalResult& r, const std::string& metric, bool maximize);
};

}  // namespace resumable
