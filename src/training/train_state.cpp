#include "resumable/training/train_state.h"

#include <cmath>
#include <stdexcept>

namespace resumable {

double EvalResult::metric(const std::string& name) const {
  if (name == "val_loss") return loss;
  if (name == "val_token_acc") return token_acc;
  if (name == "val_wer") return wer;
  if (name == "val_per") return per;
  throw std::invalid_argument("unknown metric '" + name + "'");
}

void TrainState::record_step(double loss_sum, double tokens, double lr, int64_t samples) {
  history.train_loss.push_back(tokens > 0 ? loss_sum / tokens : 0);
  history.learning_rate.push_back(lr);
  epoch_loss_sum += loss_sum;
  epoch_tokens += tokens;
  samples_seen += samples;
  ++global_step;
  ++batch_in_epoch;
}

void TrainState::finish_epoch() {
  history.epoch_train_loss.push_back(epoch_tokens > 0 ? epoch_loss_sum / epoch_tokens : 0);
  epoch_loss_sum = 0;
  epoch_tokens = 0;
  batch_in_epoch = 0;
  ++epoch;
}

bool TrainState::record_eval(const EvalResult& r, const std::string& metric, bool maximize) {
  history.eval_step.push_back(global_step);
  history.eval_epoch.push_back(epoch);
  history.val_loss.push_back(r.loss);
  history.val_token_acc.push_back(r.token_acc);
  history.val_wer.push_back(r.wer);
  history.val_per.push_back(r.per);
  double value = r.metric(metric);
  if (!std::isfinite(value)) return false;
  bool better = !has_best || (maximize ? value > best_metric : value < best_metric);
  if (better) {
    has_best = true;
    best_metric = value;
    best_step = global_step;
  }
  return better;
}

}  // namespace resumable
