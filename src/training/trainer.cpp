#include "resumable/training/trainer.h"


#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <nlohmann/json.hpp>

#include <ATen/cpu/Utils.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include "resumable/util/atomic_file.h"
#include "resumable/model/attention_kernel.h"
#include "resumable/training/checkpoint_schema.h"
#include "resumable/training/checkpoint_verify.h"
#include "resumable/training/foreach_adamw.h"
#include "resumable/training/step_profiler.h"
#include "resumable/distributed/distributed.h"
#include "resumable/util/log.h"
#include "resumable/training/rng_state.h"
#include "resumable/util/signals.h"
#include "resumable/util/xxhash64.h"

namespace resumable {
namespace {

using Clock = std::chrono::steady_clock;

// --time-budget-minutes before its first fit: an end that no run reaches.
constexpr int64_t kUnfittedEpochs = 1000000;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// c10's errors carry a C++ backtrace after their first line.
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// Test-only switch: RESUMABLE_TEST_DIE_AT="STEP:RANK" kills rank RANK (SIGKILL, as the OOM killer
// would) in step STEP after its gradient allreduce, just before the step's flag allreduce: its
// peers hold the step's averaged gradients, and the flags never come. Unset in real runs.
void die_if_told(int64_t step, int rank) {
  static const char* spec = std::getenv("RESUMABLE_TEST_DIE_AT");
  if (!spec) return;
  long long at_step = 0;
  int at_rank = -1;
  if (std::sscanf(spec, "%lld:%d", &at_step, &at_rank) == 2 && at_step == step && at_rank == rank) ::raise(SIGKILL);
}

// The dtype a resolved amp setting computes the forward pass in.
c10::ScalarType amp_dtype(const std::string& amp) {
  return amp == "bf16" ? at::kBFloat16 : amp == "fp16" ? at::kHalf : at::kFloat;
}

// Autocast for the forward pass of mixed-precision runs (no-op for amp=none).
class AutocastGuard {
 public:
  AutocastGuard(const std::string& amp, c10::DeviceType device) : device_(device), enabled_(amp != "none") {
    if (!enabled_) return;
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::set_autocast_dtype(device_, amp_dtype(amp));
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_, false);
  }

 private:
  c10::DeviceType device_;
  bool enabled_;
};

c10::impl::GenericList string_list(const std::vector<std::string>& v) {
  c10::impl::GenericList l(c10::AnyType::get());
  for (const auto& s : v) l.push_back(s);
  return l;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  long s = static_cast<long>(seconds);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

}  // namespace

c10::Device choose_device(const std::string& device, const LaunchEnv& env) {
  bool cuda = device == "cuda" || (device == "auto" && torch::cuda::is_available());
  if (!cuda) return c10::Device(c10::kCPU);
  if (!torch::cuda::is_available()) throw ConfigError("--device cuda: no CUDA device is available on this machine");
  int index = 0;
  try {
    index = cuda_device_index(env, static_cast<int>(torch::cuda::device_count()));
  } catch (const std::runtime_error& e) {
    throw ConfigError(std::string("--device cuda: ") + e.what());
  }
  c10::Device d(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  c10::impl::VirtualGuardImpl(c10::kCUDA).setDevice(d);
  return d;
}

std::string resolve_amp(const std::string& amp, c10::Device device, std::string* why) {
  if (amp != "auto") return amp;
  if (device.is_cuda()) {
    if (why) *why = "bf16 on the GPU";
    return "bf16";
  }
  auto caps = at::cpu::get_cpu_capabilities();
  auto has = [&](const char* flag) {
    auto it = caps.find(flag);
    return it != caps.end() && it->second.isBool() && it->second.toBool();
  };
  for (const char* flag : {"amx_bf16", "avx512_bf16"})
    if (has(flag)) {
      if (why) *why = std::string("bf16: this CPU has ") + flag;
      return "bf16";
    }
  if (why) *why = "none (fp32): this CPU has no native bf16 (avx512_bf16, amx_bf16), where bf16 autocast is slower";
  return "none";
}

// ============================================================================================
// Set-up
// ============================================================================================

Trainer::Trainer(RunPlan plan, const LaunchEnv& env, Distributed& dist)
    : env_(env),
      dist_(dist),
      run_(std::move(plan)),
      device_(choose_device(cfg_.device, env)),
      amp_(resolve_amp(cfg_.amp, device_)) {
  lock_ = std::move(run_.resume.lock);
  load_data();
  build_model();
  register_components();
  if (run_.evaluate_only) {
    // Only the weights matter; evaluate() loads them.
  } else if (plan_.kind == ResumePlan::Kind::kResume) {
    restore(*plan_.checkpoint);
  } else {
    start_fresh();
    if (plan_.kind == ResumePlan::Kind::kInitFrom) {
      load_model_state_dict(*model_, StateReader(plan_.checkpoint->root, plan_.checkpoint->path)[ckpt_key::kModel]);
      log::info("initialized weights from {} ({}); optimizer and schedule start fresh", plan_.checkpoint->path,
                   position_text(*plan_.checkpoint));
    }
  }
  choose_attention();
  SaveSource source;
  source.prepare = [this] { return prepare_save(); };
  source.build = [this](bool with_probe) { return build_checkpoint_state(with_probe); };
  if (probe_model_)
    source.probe = [this](c10::IValue& snapshot) { fill_snapshot_probe(probe_model_, snapshot, data_); };
  SaveCoordinatorOptions so;
  so.on_gpu = device_.is_cuda();
  so.segment = plan_.segment;
  so.resumed_from = plan_.resumed_from;
  for (const auto& p : model_->parameters()) so.state_bytes += 3.0 * static_cast<double>(p.nbytes());
  so.read_seconds = resume_read_seconds_;
  saves_ = std::make_unique<SaveCoordinator>(cfg_, dist_, state_, std::move(source), std::move(so));
  ddp_ = std::make_unique<DataParallel>(*model_, dist_, DataParallelOptions{cfg_.bucket_mb << 20});
  evaluator_ = std::make_unique<Evaluator>(data_, dist_, device_);
  if (dist_.is_main() && !run_.evaluate_only) {
    // Under the run directory's lock.
    saves_->prepare_directory(plan_.kind == ResumePlan::Kind::kResume ? &*plan_.checkpoint : nullptr);
    metrics_ = std::make_unique<MetricsLog>(run_dir_, state_.global_step,
                                            plan_.kind == ResumePlan::Kind::kResume ? plan_.checkpoint->path : "",
                                            !plan_.checkpoints_set_aside.empty());
  }
  dist_.barrier();  // nobody trains before rank 0 has prepared the checkpoint directory
}

Trainer::~Trainer() = default;  // saves_ first: a background write finishes while the lock is ours

void Trainer::load_data() {
  auto start = Clock::now();
  entries_ = load_cmudict(cfg_.data);
  corpus_ = build_corpus(entries_, cfg_.val_fraction, cfg_.test_fraction, static_cast<size_t>(cfg_.limit_words));
  if (corpus_.train.empty() || corpus_.validation.empty())
    throw DataError(cfg_.data + ": the split left no training or validation words (check val_fraction, test_fraction and max_train_words)");
  data_ = encode_corpus(corpus_, grapheme_vocabulary(entries_), phoneme_vocabulary(entries_),
                        targets_right_to_left(cfg_));
  log::info("data: {} pronunciations -> train {} samples ({} words), validation {} words, test {} words ({:.1f}s)",
               entries_.size(), corpus_.train.size(), corpus_.train_words, corpus_.validation.size(),
               corpus_.test.size(), seconds_since(start));
  // The vocabulary decides what every embedding row means: it must be the saved one (a resume
  // checks it as it loads the components).
  if (plan_.checkpoint && plan_.kind != ResumePlan::Kind::kResume)
    check_vocabulary(StateReader(plan_.checkpoint->root, plan_.checkpoint->path)[ckpt_key::kVocabulary]);
}

void Trainer::check_vocabulary(const StateReader& vocab) const {
  for (auto [name, v] : {std::pair{"graphemes", &data_.graphemes}, std::pair{"phonemes", &data_.phonemes}}) {
    std::vector<std::string> saved = vocab[name].to_strings();
    if (saved != v->symbols())
      vocab[name].fail("the dataset gives another vocabulary (" + std::to_string(v->symbols().size()) +
                       " symbols, saved " + std::to_string(saved.size()) + "): use the dictionary it was trained on");
  }
}

void Trainer::build_model() {
  ModelOptions o = model_options(cfg_, data_.graphemes.size(), data_.phonemes.size());
  // Same initial weights on every rank (rank 0's are broadcast anyway), then per-rank streams.
  torch::manual_seed(static_cast<uint64_t>(cfg_.seed));
  model_ = G2PTransformer(o);
  model_->to(device_);
  if (dist_.is_main() && cfg_.async_save) {
    // Made before the streams are seeded, so its initialization draws nothing training would; its
    // own weights are dropped at once (each probe points it at a snapshot's).
    probe_model_ = G2PTransformer(o);
    for (auto& p : probe_model_->parameters()) p.set_data(at::empty({0}, p.options()));
  }
  seed_rng(cfg_.seed, dist_.rank(), device_.is_cuda());
  optimizer_ = std::make_unique<ForeachAdamW>(
      // No lr here: every step's comes from the schedule (train_step), the one source.
      model_->parameters(), torch::optim::AdamWOptions()
                                .betas({cfg_.adam_beta1, cfg_.adam_beta2})
                                .eps(cfg_.adam_eps)
                                .weight_decay(cfg_.weight_decay));
  scaler_ = LossScaler(amp_ == "fp16");
  sampler_ = std::make_unique<DistributedSampler>(
      data_.train_lengths(), cfg_.seed, SamplerOptions{cfg_.batch_size, cfg_.length_bucketing});
  int64_t params = 0;
  for (const auto& p : model_->parameters()) params += p.numel();
  log::info("model: Transformer d_model={} heads={} layers={}+{} ff={} dropout={} -> {:.2f}M parameters on {}",
               o.d_model, o.heads, o.encoder_layers, o.decoder_layers, o.ff_dim, o.dropout, params / 1e6,
               device_.str());
  if (cfg_.amp == "auto") {
    std::string why;
    resolve_amp(cfg_.amp, device_, &why);
    log::info("amp auto: {}", why);
  }
}

// After a resume has loaded the train state, which holds an earlier timing's choice.
void Trainer::choose_attention() {
  auto kernel = parse_attention_kernel(cfg_.attention);  // nullopt: auto
  if (!kernel) {
    const std::string device_type = device_.is_cuda() ? "cuda" : "cpu";
    // Test-only switch: RESUMABLE_TEST_TIME_ATTENTION=1 times the kernels on the CPU too.
    const bool timed = device_.is_cuda() || std::getenv("RESUMABLE_TEST_TIME_ATTENTION");
    if (!timed || run_.evaluate_only) {
      kernel = AttentionKernel::kFused;  // on the CPU a step ran as fast with either (docs/configuration.md)
    } else if (auto kept = parse_attention_kernel(state_.attention_kernel);
               kept && state_.attention_device == device_type) {
      kernel = kept;
      log::info("attention auto: {}, as timed at the run's start (kept, so that the resume is exact)",
                state_.attention_kernel);
    } else {
      const int64_t heads = cfg_.heads, head_dim = cfg_.d_model / cfg_.heads;
      const int64_t batch = (cfg_.batch_size + dist_.world_size() - 1) / dist_.world_size();
      // A batch pads to its longest word (+1 for BOS/EOS): of `batch` random words, about the
      // (1 - 1/batch) quantile of the lengths.
      std::vector<size_t> lengths;
      for (const auto& e : data_.train) lengths.push_back(std::max(e.source.size(), e.target.size()));
      const size_t at = std::min(lengths.size() - 1, lengths.size() - lengths.size() / static_cast<size_t>(batch));
      std::nth_element(lengths.begin(), lengths.begin() + static_cast<std::ptrdiff_t>(at), lengths.end());
      const int64_t length = static_cast<int64_t>(lengths[at]) + 1;
      const auto dtype = amp_dtype(amp_);
      // Rank 0 times and decides for all: ranks that chose apart would compute different floats.
      std::string name, why;
      if (dist_.is_main()) {
        const double fused = time_attention_ms(AttentionKernel::kFused, device_, dtype, batch, heads, length, head_dim);
        const double math = time_attention_ms(AttentionKernel::kMath, device_, dtype, batch, heads, length, head_dim);
        // Only a clear gain moves off the default: a close call could go either way, and two
        // fresh runs of one config would then compute different floats.
        const bool use_math = math <= 0.5 * fused;
        name = attention_kernel_name(use_math ? AttentionKernel::kMath : AttentionKernel::kFused);
        why = fmt::format("{} ({:.2f} ms) over {} ({:.2f} ms; math must take at most half of fused's time), "
                          "forward and backward of a masked and a causal attention at [{} words, {} heads, {} "
                          "tokens, {}] {}",
                          name, use_math ? math : fused, use_math ? "fused" : "math", use_math ? fused : math,
                          batch, heads, length, head_dim, c10::toString(dtype));
      }
      name = dist_.broadcast_string(name);
      if (dist_.is_main()) log::info("attention auto: {}; kept in its checkpoints", why);
      kernel = parse_attention_kernel(name);
      state_.attention_kernel = name;
      state_.attention_device = device_type;
    }
  }
  model_->set_attention_kernel(*kernel);
  if (probe_model_) probe_model_->set_attention_kernel(*kernel);
}

int64_t Trainer::epochs() const {
  if (cfg_.time_budget_minutes <= 0) return cfg_.epochs;
  // Not fitted yet: no end, so the LR holds at its peak after the warmup until the first fit
  // (a guessed end would already have started the decay, too fast or too slow).
  return state_.fitted_epochs > 0 ? state_.fitted_epochs : kUnfittedEpochs;
}

bool Trainer::awaiting_fit() const { return epochs() == kUnfittedEpochs; }

std::string Trainer::epochs_text() const { return awaiting_fit() ? "?" : std::to_string(epochs()); }

std::string Trainer::total_steps_text() const {
  return awaiting_fit() ? "?" : std::to_string(schedule_.state().total_steps);
}

int64_t Trainer::planned_total_steps() const {
  if (cfg_.total_steps > 0) return cfg_.total_steps;
  // Steps done, the rest of this epoch, then full epochs: the same number whatever the world size.
  int64_t later_epochs = std::max<int64_t>(0, epochs() - state_.epoch - 1);
  int64_t rest = state_.epoch < epochs() ? sampler_->remaining_steps_in_epoch() : 0;
  return state_.global_step + rest + later_epochs * sampler_->steps_per_epoch();
}

void Trainer::start_fresh() {
  sampler_->start_epoch(0);
  ScheduleState s;
  s.warmup_steps = cfg_.warmup_steps > 0
                       ? cfg_.warmup_steps
                       : static_cast<int64_t>(std::llround(cfg_.warmup_epochs * sampler_->steps_per_epoch()));
  s.total_steps = planned_total_steps();
  s.max_lr = cfg_.lr;
  s.min_lr = cfg_.min_lr;
  schedule_.load_state(s);
  if (cfg_.time_budget_minutes > 0)
    log::info("schedule: fitted to {:g} minutes ({} steps per epoch, global batch {}), warmup {} steps, "
              "lr {:g} -> {:g}",
              cfg_.time_budget_minutes, sampler_->steps_per_epoch(), cfg_.batch_size, s.warmup_steps, s.max_lr,
              s.min_lr);
  else
    log::info("schedule: {} steps ({} per epoch x {} epochs, global batch {}), warmup {} steps, lr {:g} -> {:g}",
              s.total_steps, sampler_->steps_per_epoch(), epochs(), cfg_.batch_size, s.warmup_steps, s.max_lr,
              s.min_lr);
}

// Each component of the checkpoint: its save and its load. The schema (checkpoint_schema.cpp) says
// which components there are, in which order they load, and checks their layout.
void Trainer::register_components() {
  using namespace ckpt_key;
  components_[kConfig] = {[this] {
                            TrainConfig saved = cfg_;
                            saved.run_dir = run_dir_;
                            return c10::IValue(json_text_to_state_dict(config_to_json(saved).dump()));
                          },
                          // Parsed, checked against this run's and noted by plan_run(), before any
                          // model existed: nothing left to load.
                          [](const StateReader&, std::vector<std::string>&) {}};
  components_[kVocabulary] = {[this] {
                                StateDict vocab = new_state_dict();
                                vocab.insert("graphemes", string_list(data_.graphemes.symbols()));
                                vocab.insert("phonemes", string_list(data_.phonemes.symbols()));
                                return c10::IValue(vocab);
                              },
                              [this](const StateReader& r, std::vector<std::string>&) { check_vocabulary(r); }};
  components_[kData] = {[this] {
                          StateDict data = new_state_dict();
                          data.insert("train_samples", static_cast<int64_t>(corpus_.train.size()));
                          data.insert("train_words", static_cast<int64_t>(corpus_.train_words));
                          data.insert("fingerprint", training_data_fingerprint(corpus_));
                          return c10::IValue(data);
                        },
                        [this](const StateReader& r, std::vector<std::string>&) {
                          if (r["fingerprint"].to_string() == training_data_fingerprint(corpus_)) return;
                          if (!cfg_.allow_data_drift)
                            r["fingerprint"].fail("the training data differs from the checkpoint's (same dictionary, "
                                                  "val/test fractions and max_train_words are needed to resume; "
                                                  "--allow-data-drift if new data is intended)");
                          if (dist_.is_main())
                            log::warn("resumed on other training data than the checkpoint's (--allow-data-drift)");
                        }};
  components_[kModel] = {[this] { return c10::IValue(model_state_dict(*model_)); },
                         [this](const StateReader& r, std::vector<std::string>&) { load_model_state_dict(*model_, r); }};
  components_[kOptimizer] = {[this] { return c10::IValue(optimizer_state_dict(*optimizer_, *model_)); },
                             [this](const StateReader& r, std::vector<std::string>&) {
                               load_optimizer_state_dict(*optimizer_, *model_, r);
                             }};
  components_[kLrScheduler] = {[this] { return c10::IValue(to_state_dict(schedule_.state())); },
                               [this](const StateReader& r, std::vector<std::string>& notes) {
                                 schedule_.load_state(from_state_dict<ScheduleState>(r, &notes));
                               }};
  components_[kLossScaler] = {[this] { return c10::IValue(to_state_dict(scaler_.state())); },
                              [this](const StateReader& r, std::vector<std::string>& notes) {
                                // The scale carries over only between fp16 runs; another precision starts its own.
                                auto saved = from_state_dict<LossScalerState>(r, &notes);
                                if (scaler_.enabled() && saved.enabled) scaler_.load_state(saved);
                              }};
  components_[kSampler] = {[this] { return c10::IValue(to_state_dict(sampler_->state())); },
                           [this](const StateReader& r, std::vector<std::string>& notes) {
                             SamplerState saved = from_state_dict<SamplerState>(r, &notes);
                             // Test-only switch: RESUMABLE_TEST_SAMPLER_SKEW=N moves the restored cursor by N
                             // samples, the off-by-one of a broken resume, which the resume proof must catch.
                             if (const char* skew = std::getenv("RESUMABLE_TEST_SAMPLER_SKEW"))
                               saved.cursor += std::atoll(skew);
                             if (cfg_.allow_data_drift) {
                               // New data or a new seed, on purpose: the new order, from the saved epoch.
                               saved.seed = cfg_.seed;
                               if (saved.dataset_size != sampler_->dataset_size()) {
                                 if (dist_.is_main())
                                   log::warn("sampler: {} samples saved, {} now (--allow-data-drift): epoch {} starts "
                                             "over on the new data",
                                             saved.dataset_size, sampler_->dataset_size(), saved.epoch);
                                 saved.dataset_size = sampler_->dataset_size();
                                 saved.cursor = 0;
                               }
                             }
                             try {
                               sampler_->load_state(saved);
                             } catch (const std::invalid_argument& e) {
                               r.fail(e.what());
                             }
                           }};
  components_[kResumeProof] = {[this] {
                                 ResumeProof proof = record_resume_proof(
                                     *sampler_, cfg_.proof_batches, data_, dist_.world_size(), model_, device_,
                                     state_.global_step,
                                     state_.history.train_loss.empty() ? 0.0 : state_.history.train_loss.back(),
                                     /*probe=*/!skip_probe_);
                                 // Test-only switch: RESUMABLE_TEST_PROBE_OFFSET=X records a probe loss X off,
                                 // as if the weights written were not those it was computed with, which
                                 // `ckpt verify --deep` must report. Unset in real runs.
                                 if (const char* offset = std::getenv("RESUMABLE_TEST_PROBE_OFFSET"))
                                   proof.probe_loss += std::atof(offset);
                                 return c10::IValue(to_state_dict(proof));
                               },
                               [this](const StateReader& r, std::vector<std::string>& notes) {
                                 ResumeProof proof = from_state_dict<ResumeProof>(r, &notes);
                                 if (!proof.batch_sizes.empty()) verifier_.emplace(std::move(proof));
                               }};
  components_[kTrainState] = {[this] { return c10::IValue(to_state_dict(state_)); },
                              [this](const StateReader& r, std::vector<std::string>& notes) {
                                state_ = from_state_dict<TrainState>(r, &notes);
                              }};
  components_[kHistory] = {[this] { return c10::IValue(to_state_dict(state_.history)); },
                           [this](const StateReader& r, std::vector<std::string>& notes) {
                             state_.history = from_state_dict<TrainHistory>(r, &notes);
                           }};
  components_[kRng] = {[this] {
                         // Every rank's streams as the next step starts them (rng_state.h): what
                         // each rank continues from, known to any rank without gathering.
                         StateDict rng = new_state_dict();
                         c10::impl::GenericList cpu(c10::AnyType::get()), cuda(c10::AnyType::get());
                         for (int r = 0; r < dist_.world_size(); ++r) {
                           RngSnapshot s = rng_for_step(cfg_.seed, state_.global_step + 1, r, device_.is_cuda());
                           cpu.push_back(s.cpu);
                           if (s.cuda.defined()) cuda.push_back(s.cuda.cpu());
                         }
                         rng.insert("cpu", cpu);
                         rng.insert("cuda", cuda);
                         return c10::IValue(rng);
                       },
                       // Nothing to restore: each step seeds its streams from (seed, step, rank),
                       // whatever the world size. (Files of older trainers hold the streams each
                       // rank had; they are checked on load and then superseded by the step's.)
                       [](const StateReader&, std::vector<std::string>&) {}};
}

void Trainer::restore(const LoadedCheckpoint& ck) {
  const TrainConfig& saved = *run_.saved_config;
  std::vector<std::string> defaults = run_.notes;  // the config's, from plan_run()
  auto load_start = Clock::now();
  load_components(ck, components_, defaults);
  budget_spent_before_ = state_.train_seconds;
  const double load_seconds = seconds_since(load_start);
  resume_read_seconds_ = ck.read_seconds;
  const int64_t saved_world = StateReader(ck.root, ck.path)[ckpt_key::kWorldSize].to_int();

  // --- what changed since the checkpoint
  std::vector<std::string> notes = resume_changes(saved, cfg_);
  if (cfg_.batch_size != saved.batch_size) sampler_->set_batch_size(cfg_.batch_size);
  if (cfg_.lr != saved.lr || cfg_.min_lr != saved.min_lr) schedule_.rescale_lr(cfg_.lr, cfg_.min_lr);
  for (auto& g : optimizer_->param_groups()) {
    auto& o = static_cast<torch::optim::AdamWOptions&>(g.options());
    o.betas({cfg_.adam_beta1, cfg_.adam_beta2}).eps(cfg_.adam_eps).weight_decay(cfg_.weight_decay);
  }
  if (cfg_.best_metric != saved.best_metric || cfg_.resolved_best_mode() != saved.resolved_best_mode()) {
    state_.has_best = false;  // a best of another metric means nothing for this one
    state_.best_step = -1;
    notes.push_back("best metric now " + cfg_.best_metric + " (" + cfg_.resolved_best_mode() + "), best.pt restarts");
  }
  if (cfg_.time_budget_minutes != saved.time_budget_minutes && state_.fitted_epochs > 0)
    state_.fitted_epochs = 0;  // fitted to another budget (or to none): fitted again, from here
  int64_t old_total = schedule_.state().total_steps, new_total = planned_total_steps();
  if (new_total != old_total) {
    schedule_.replan_total(new_total);
    notes.push_back(awaiting_fit()
                        ? "LR schedule: its end is fitted to the time budget again, from lr " +
                              fmt::format("{:.3g}", schedule_.current_lr()) + " at step " +
                              std::to_string(state_.global_step)
                        : "LR schedule re-planned: end step " + std::to_string(old_total) + " -> " +
                              std::to_string(new_total) + ", cosine from lr " +
                              fmt::format("{:.3g}", schedule_.current_lr()) + " at step " +
                              std::to_string(state_.global_step));
  }
  state_.history.resumed_at_step.push_back(state_.global_step);
  // The digest a save logs for its weights, now of the weights loaded here (on this device): equal
  // digests prove the load bit-exact, also across devices, and every rank must hold the same.
  const std::string weights = verify_replicas();

  log::info("resumed from {} ({} bytes, {}): epoch {}, step {}, sample {}/{} of the epoch, lr {:.4g}; read and "
            "verified in {:.2f}s, loaded in {:.2f}s; weights {} on {}",
            ck.path, ck.bytes, ck.checksum, state_.epoch, state_.global_step, sampler_->state().cursor,
            sampler_->dataset_size(), schedule_.current_lr(), ck.read_seconds, load_seconds, weights, device_.str());
  log::info("resumed: best {} = {} (step {}); histories: {} steps, {} epochs, {} evaluations; saved by {} rank(s), now {}",
               cfg_.best_metric, state_.has_best ? fmt::format("{:.4f}", state_.best_metric) : "none",
               state_.best_step, state_.history.train_loss.size(), state_.history.epoch_train_loss.size(),
               state_.history.val_loss.size(), saved_world, dist_.world_size());
  for (const auto& n : notes) log::warn("resumed with a changed config: {}", n);
  for (const auto& n : defaults) log::info("older checkpoint: {}", n);
}

// ============================================================================================
// The loop
// ============================================================================================

int Trainer::train() {
  int code = exit_code::kRuntimeError;
  try {
    code = train_until_stop();
  } catch (...) {
    saves_->close();  // a failure too: a background write holds the newest state, it ends first
    throw;
  }
  saves_->close();              // every way out: a background write ends while the lock is ours
  if (lock_) lock_->release();  // an orderly end: the next job on this directory need not warn
  return code;
}

int Trainer::train_until_stop() {
  auto stopped = [&](const char* where) {
    log::warn("stopped by {}{} at step {}: checkpoint saved, exit {} (resume to continue)",
              signal_name(pending_stop_signal() ? pending_stop_signal() : SIGTERM), where, state_.global_step,
              exit_code::kStoppedBySignal);
    return exit_code::kStoppedBySignal;
  };
  if (state_.eval_pending && !run_pending_validation()) return stopped(" during the pending validation");
  if (state_.epoch >= epochs() || (cfg_.total_steps > 0 && state_.global_step >= cfg_.total_steps)) {
    log::info("training already complete: epoch {}/{}, step {} (raise --{} to train longer)", state_.epoch,
                 epochs(), state_.global_step, cfg_.time_budget_minutes > 0 ? "time-budget-minutes" : "epochs");
    return exit_code::kDone;
  }
  if (cfg_.max_steps > 0 && state_.global_step >= cfg_.max_steps) {
    log::info("already at step {}, the --max-steps {}: nothing to train", state_.global_step, cfg_.max_steps);
    return exit_code::kDone;
  }
  log::info("training: epoch {}/{}, step {}/{}, {} rank(s) via {}, run dir {}", state_.epoch, epochs_text(),
            state_.global_step, total_steps_text(), dist_.world_size(), launcher_name(env_.launcher), run_dir_);
  saves_->begin_training();
  if (dist_.is_main()) {
    // Rank 0 alone watches the clock (one squeue per job); its decision reaches the others
    // through the per-step allreduce.
    const char* job = std::getenv("SLURM_JOB_ID");
    deadline_ = std::make_unique<Deadline>(
        Deadline::Options{cfg_.deadline, job ? job : "", cfg_.deadline_refresh_s, started_});
    if (!deadline_->watched()) deadline_.reset();
  }
  if (dist_.is_main() && cfg_.time_budget_minutes > 0) {
    time_budget_.emplace(cfg_.time_budget_minutes * 60);
    log::info("time budget: {:.1f} of {:g} minutes spent, {} epochs: fitted at every epoch end from the second "
              "after the warmup", state_.train_seconds / 60, cfg_.time_budget_minutes, epochs_text());
  }
  last_report_time_ = last_step_time_ = Clock::now();
  StepProfiler profiler(dist_.is_main(), device_.is_cuda());
  while (true) {
    profiler.before_step(state_.global_step + 1);
    const SamplerState position = sampler_->state();
    const std::vector<int64_t> global_batch = sampler_->next_global_batch();
    if (verifier_ && !verify_resumed_batch(global_batch)) return exit_code::kRuntimeError;
    StepResult r;
    try {
      r = train_step(global_batch);
    } catch (const PeerLost& e) {
      sampler_->load_state(position);  // the step was not taken: its batch comes next
      return save_after_peer_lost(e.what());
    }
    state_.record_step(r.loss_sum, r.tokens, r.lr, r.samples);
    note_budget_time();
    profiler.after_step(state_.global_step);
    schedule_.advance();
    samples_since_report_ += r.samples;
    const double step_seconds = seconds_since(last_step_time_);
    step_seconds_.add(step_seconds);
    if (metrics_)
      metrics_->step(state_.global_step, state_.epoch, state_.history.train_loss.back(), r.lr,
                     step_seconds > 0 ? r.samples / step_seconds : 0.0);

    StepEvents ev;
    ev.step = state_.global_step;
    ev.epoch_ended = sampler_->epoch_done();
    EpochEnd e;
    try {
      if (ev.epoch_ended) e = end_epoch();
    } catch (const PeerLost& lost) {
      return save_after_peer_lost(lost.what());
    }
    if (ev.epoch_ended && !e.interrupted && !r.stop_requested) fit_to_time_budget();
    ev.epoch = state_.epoch;
    ev.new_best = e.improved;
    ev.stop = r.stop_requested || e.interrupted;
    ev.finished = state_.epoch >= epochs() || state_.global_step >= schedule_.state().total_steps;
    ev.max_steps = cfg_.max_steps > 0 && state_.global_step >= cfg_.max_steps;
    ev.minutes_due = r.saves.minutes_due;
    ev.backing_off = r.saves.backing_off;
    ev.deadline = r.deadline;
    const bool stopping = ev.finished || ev.max_steps || ev.stop || ev.deadline;
    report_progress(r, stopping || ev.epoch_ended);

    try {
      if (!saves_->after_step(ev, r.saves)) return exit_code::kSaveFailed;
    } catch (const Distributed::LimitExceeded&) {
      throw;  // every rank is alive: rank 0's save is slow, not lost
    } catch (const std::exception& failed) {
      // The step is complete: a save that failed on a collective leaves the state whole.
      if (dist_.world_size() == 1) throw;
      return save_after_peer_lost(fmt::format("step {}: the save failed: {}", state_.global_step, failed.what()));
    }
    last_step_time_ = Clock::now();  // saves and validations do not count as step time
    if (ev.stop) return stopped(e.interrupted ? " during validation" : "");
    if (ev.finished || ev.max_steps) {
      log::info("done: step {}, epoch {}, best {} = {}", state_.global_step, state_.epoch, cfg_.best_metric,
                   state_.has_best ? fmt::format("{:.4f} (step {})", state_.best_metric, state_.best_step) : "none");
      return exit_code::kDone;
    }
    if (ev.deadline) {
      if (dist_.is_main())
        log::warn("deadline: {}: checkpoint saved at step {}, exit {} (resume to continue)", deadline_note_,
                  state_.global_step, exit_code::kStoppedBySignal);
      return exit_code::kStoppedBySignal;
    }
  }
}

// A rank died or stopped answering. Every survivor still holds a whole state (data parallelism
// replicates it, and each rank's streams follow from the seed): the step it completed last, since
// a step changes nothing before its allreduces have succeeded. Survivors may differ by one step (a
// rank whose flag allreduce completed just before the loss); whichever writes, writes an exact state
// of the step it names. One writes: the holder of the run directory's lock, which rank 0 has while
// it lives and the kernel frees when it dies. Not being able to take it (rank 0 alive but frozen, or
// another survivor saving) means writing nothing: the last good checkpoint stays as it is.
int Trainer::save_after_peer_lost(const std::string& what) {
  log::error("{}: a rank died or stopped answering; this rank's state is step {}, whole", what, state_.global_step);
  std::unique_ptr<RunDirectoryLock> taken;
  if (!lock_) {
    // A dead holder's lock is free once its process is gone; a lock on NFS may take a moment longer.
    const auto until = Clock::now() + std::chrono::seconds(2);
    while (!taken) {
      try {
        taken = std::make_unique<RunDirectoryLock>(run_dir_);
      } catch (const RunDirectoryBusy&) {
        if (Clock::now() >= until) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
  if (!lock_ && !taken) {
    log::warn("not saving: the run directory's lock is held (rank 0 alive, or a survivor saving), and its holder "
              "saves; exit {} (restart to continue)",
              exit_code::kPeerLost);
    return exit_code::kPeerLost;
  }
  const std::optional<int64_t> saved = saves_->save_alone(what);
  if (saved)
    log::warn("the survivors saved step {}: exit {} (restart to continue from it)", *saved, exit_code::kPeerLost);
  else
    log::error("the survivors' save failed: the last good checkpoint is untouched; exit {}", exit_code::kPeerLost);
  return exit_code::kPeerLost;
}

bool Trainer::verify_resumed_batch(const std::vector<int64_t>& global_batch) {
  ResumeVerifier& v = *verifier_;
  const bool first = v.first();
  const int64_t saved_world = v.recorded().world_size;
  // Ids and words: every rank knows the whole global batch, so all find the same.
  std::string problem = v.compare_next(global_batch, data_);
  // Test-only switch: RESUMABLE_TEST_PROOF_FAIL_AT=K reports the K-th checked batch as differing,
  // a resume that goes wrong a few steps in, after a save may have started. Unset in real runs.
  if (const char* at = std::getenv("RESUMABLE_TEST_PROOF_FAIL_AT");
      at && problem.empty() && static_cast<long long>(v.checked()) == std::atoll(at))
    problem = "batch " + std::string(at) + " differs (injected)";
  if (problem.empty() && first && saved_world == dist_.world_size()) {
    // Each rank's own tensors, gathered so that every rank knows which differ and all stop alike.
    Batch mine = collate_rank_share(data_, global_batch, dist_.rank(), dist_.world_size(), c10::Device(c10::kCPU));
    std::vector<int64_t> digests;
    for (const auto& d : dist_.all_gather(at::tensor({static_cast<int64_t>(batch_tensor_digest(mine))}, at::kLong)))
      digests.push_back(d.item<int64_t>());
    problem = v.compare_first_batch_digests(digests);
  }
  if (!problem.empty()) {
    verifier_.reset();
    // Every rank knows the same (the digests were gathered): rank 0 says it once.
    if (cfg_.allow_data_drift) {
      if (dist_.is_main()) log::warn("resume proof: {} (allowed by --allow-data-drift)", problem);
      return true;
    }
    if (dist_.is_main())
      log::error("resume proof failed: {}; this resume would not continue the run exactly (stopping before that "
               "batch; pass --allow-data-drift if the change is intended)",
               problem);
    return false;
  }
  if (v.done()) {
    log::info("resume verified: next {} batches identical ({} rank{}{})", v.batches(), dist_.world_size(),
              dist_.world_size() == 1 ? "" : "s",
              saved_world == dist_.world_size()
                  ? ""
                  : fmt::format("; saved by {}, so each rank's tensors were not compared", saved_world));
    verifier_.reset();
  }
  return true;
}

bool Trainer::deadline_near() {
  if (!deadline_) return false;
  const auto end = deadline_->end();
  if (!end) return false;
  if (end != deadline_seen_) {
    // The first reading, or `scontrol update TimeLimit` moved the end.
    log::info("deadline: {}{} ({}){}: saves and exits 75 when less than 2 saves + a step + {:.0f}s margin are left",
              deadline_seen_ ? "moved to " : "", iso_local_time(*end), deadline_->source(),
              deadline_->source() == "--deadline" ? "" : fmt::format(", read every {:.0f}s", cfg_.deadline_refresh_s),
              effective_margin(cfg_.deadline_margin_s, std::chrono::duration<double>(*end - started_).count()));
    deadline_seen_ = end;
  }
  const double left = std::chrono::duration<double>(*end - WallClock::now()).count();
  // The next step ends the epoch: its validation runs before the next chance to save.
  const bool validation_next = sampler_->remaining_steps_in_epoch() <= 1 &&
                               ((state_.epoch + 1) % cfg_.eval_every_epochs == 0 || state_.epoch + 1 >= epochs());
  const double save = saves_->expected_save_seconds();
  const double step = step_seconds_.value() + (validation_next ? validation_seconds_ : 0.0);
  const double margin =
      effective_margin(cfg_.deadline_margin_s, std::chrono::duration<double>(*end - started_).count());
  if (!deadline_due(left, save, step, margin)) return false;
  deadline_note_ = fmt::format("{:.0f}s left until {} ({}), less than 2 x {:.2f}s to save + {:.2f}s {} + {:.0f}s margin",
                               left, iso_local_time(*end), deadline_->source(), save, step,
                               validation_next ? "for a step and the validation" : "for a step", margin);
  return true;
}

bool Trainer::run_pending_validation() {
  log::info("running the validation after epoch {} that a stop interrupted", state_.epoch);
  std::optional<EvalResult> r = validate();
  if (!r) return false;
  state_.eval_pending = false;
  record_evaluation(*r);
  // last.pt must hold the evaluation (and best.pt a new best) before anything else happens.
  if (saves_->save_now("pending validation") == SaveCoordinator::Outcome::kGiveUp)
    throw SaveError("the checkpoint after the pending validation could not be saved");
  return true;
}

Trainer::StepResult Trainer::train_step(const std::vector<int64_t>& global_batch) {
  // This rank's share (a rank left without samples trains on a zero-weight placeholder).
  std::vector<int64_t> mine = DistributedSampler::rank_share(global_batch, dist_.rank(), dist_.world_size());
  seed_rng_for_step(cfg_.seed, state_.global_step + 1, dist_.rank(), device_.is_cuda());
  // Every rank knows the whole global batch, so each normalizes by the global token count; the
  // reducer's average over ranks then gives exactly the mean over all tokens of the step.
  double global_tokens = 0;
  for (int64_t i : global_batch) global_tokens += EncodedCorpus::target_tokens(data_.train[static_cast<size_t>(i)]);
  dump_batch(mine, global_tokens);
  // The schedule is the one source of the learning rate: the optimizer and the history take this.
  const double lr = schedule_.current_lr();

  AgreedStep agreed;
  try {
    agreed = compute_and_agree(global_batch, global_tokens);
  } catch (const std::exception& failed) {
    if (dist_.world_size() == 1) throw;
    throw PeerLost(fmt::format("step {} failed before it changed any state: {}", state_.global_step + 1,
                               first_line(failed.what())));
  }
  // The step commits: nothing below talks to another rank.
  if (agreed.finite) {
    for (auto& g : optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    if (cfg_.grad_clip > 0) clip_grad_norm(agreed.grads, cfg_.grad_clip);
    optimizer_->step();
  }
  scaler_.update(!agreed.finite);
  trace_samples(mine);

  auto s = agreed.stats.accessor<double, 1>();
  StepResult r;
  r.loss_sum = s[0];
  r.tokens = s[1];
  r.samples = static_cast<int64_t>(global_batch.size());
  r.lr = lr;
  r.stop_requested = s[2] > 0;
  r.saves.minutes_due = s[3] > 0;
  r.saves.in_flight = s[4] > 0;
  r.saves.background_saved = s[5] > 0;
  r.saves.background_failed = s[6] > 0;
  r.deadline = s[7] > 0;
  r.saves.backing_off = s[8] > 0;
  return r;
}

Trainer::AgreedStep Trainer::compute_and_agree(const std::vector<int64_t>& global_batch, double global_tokens) {
  Batch batch = collate_rank_share(data_, global_batch, dist_.rank(), dist_.world_size(), device_);
  model_->train();
  ddp_->zero_grad();
  ddp_->before_forward();
  torch::Tensor loss_sum;
  {
    AutocastGuard autocast(amp_, device_.type());
    // Real tokens only: padding would cost about half the step and add nothing.
    auto packed = model_->forward_packed(batch.source, batch.target_in, batch.source_tokens, batch.target_tokens);
    auto targets = batch.target_out.reshape({-1}).index_select(0, packed.index);
    auto token_loss = torch::nn::functional::cross_entropy(
        packed.logits.to(at::kFloat), targets,
        torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(cfg_.label_smoothing).reduction(torch::kNone));
    auto token_weight = batch.weight.index_select(0, packed.index.div(batch.target_in.size(1), "floor"));
    loss_sum = (token_loss * token_weight).sum();
  }
  auto objective = scaler_.scale(loss_sum * (static_cast<double>(dist_.world_size()) / global_tokens));
  ddp_->before_backward(objective);
  objective.backward();  // the reducer's gradient allreduce

  AgreedStep out;
  for (auto& p : model_->parameters())
    if (p.grad().defined()) out.grads.push_back(p.grad());
  out.finite = scaler_.unscale(out.grads);
  saves_->before_optimizer_step();

  // One small allreduce per step carries the loss for the history and the stop/save flags, so
  // all ranks take the same decisions at the same step. It comes before the optimizer step: a
  // rank whose allreduce fails (a peer died) has changed nothing yet.
  const SaveFlags saves = saves_->local_flags();
  const bool deadline = dist_.is_main() && deadline_near();
  auto flag = [](bool b) { return b ? 1.0 : 0.0; };
  out.stats = at::tensor({loss_sum.item<double>(), batch.tokens, flag(pending_stop_signal() != 0),
                          flag(saves.minutes_due), flag(saves.in_flight), flag(saves.background_saved),
                          flag(saves.background_failed), flag(deadline), flag(saves.backing_off)},
                         at::kDouble);
  die_if_told(state_.global_step + 1, dist_.rank());
  dist_.all_reduce_sum(out.stats);
  return out;
}

void Trainer::note_budget_time() {
  if (cfg_.time_budget_minutes > 0)
    state_.train_seconds = budget_spent_before_ + seconds_since(budget_clock_);
}

void Trainer::fit_to_time_budget() {
  // At the planned end the run is done: time left over is no reason for more epochs at min_lr.
  if (cfg_.time_budget_minutes <= 0 || state_.epoch >= epochs()) return;
  note_budget_time();
  const int64_t was = epochs();
  const std::string was_text = epochs_text();
  int64_t fitted = was;
  std::optional<TimeBudget::Fit> fit;
  // The end validates (the last epoch always does) and saves, both on the clock.
  const double reserve = validation_seconds_ + saves_->expected_save_seconds();
  if (time_budget_) {
    TimeBudget::EpochEnd e;
    e.epochs_done = state_.epoch;
    e.step = state_.global_step;
    e.now = seconds_since(budget_clock_);
    e.used = state_.train_seconds;
    e.reserve = reserve;
    e.steps_per_epoch = sampler_->steps_per_epoch();
    e.warmed_up = state_.global_step >= schedule_.state().warmup_steps;
    e.planned_epochs = awaiting_fit() ? 0 : was;
    fit = time_budget_->at_epoch_end(e);
    if (fit) fitted = fit->epochs;
  }
  if (dist_.world_size() > 1) {
    at::Tensor t = at::tensor({fitted}, at::kLong);
    dist_.broadcast(t);
    fitted = t.item<int64_t>();
  }
  if (fitted == was) return;
  state_.fitted_epochs = fitted;
  schedule_.stretch_total(planned_total_steps());
  if (fit)
    log::info("time budget: {:.0f}s of {:.0f}s spent, {:.2f}s per epoch, {:.0f}s left after {:.1f}s for the last "
              "validation and save: {} epochs (were {}), the LR decays to step {}",
              state_.train_seconds, cfg_.time_budget_minutes * 60, fit->seconds_per_epoch, fit->seconds_left,
              reserve, fitted, was_text, schedule_.state().total_steps);
}

Trainer::EpochEnd Trainer::end_epoch() {
  state_.finish_epoch();
  bool last = state_.epoch >= epochs();
  EpochEnd out;
  if (state_.epoch % cfg_.eval_every_epochs == 0 || last) {
    std::optional<EvalResult> r;
    try {
      r = validate();
    } catch (const std::exception& failed) {
      if (dist_.world_size() == 1) throw;
      // Saved as a stop during validation is: the resumed run validates this epoch first.
      state_.eval_pending = true;
      sampler_->start_epoch(state_.epoch);
      throw PeerLost(fmt::format("the validation after epoch {} failed: {}", state_.epoch, failed.what()));
    }
    if (!r) {
      // Saved as pending: the resumed run validates this epoch first, as if never interrupted.
      state_.eval_pending = true;
      out.interrupted = true;
    } else {
      out.improved = record_evaluation(*r);
    }
  }
  sampler_->start_epoch(state_.epoch);
  return out;
}

bool Trainer::record_evaluation(const EvalResult& r) {
  bool improved = state_.record_eval(r, cfg_.best_metric, cfg_.resolved_best_mode() == "max");
  if (improved) saves_->note_new_best();
  log::info("epoch {} validation: loss {:.4f}, token acc {:.4f}, WER {:.2f}%, PER {:.2f}% ({} words){}", state_.epoch,
            r.loss, r.token_acc, 100 * r.wer, 100 * r.per, static_cast<int64_t>(r.words),
            improved ? "  * new best" : "");
  if (metrics_) metrics_->evaluation(state_.global_step, state_.epoch, {r.loss, r.wer, r.per, r.token_acc, improved});
  return improved;
}

std::optional<EvalResult> Trainer::validate() {
  log::info("validating after epoch {} at step {}", state_.epoch, state_.global_step);
  auto start = Clock::now();
  std::optional<EvalResult> r = evaluator_->evaluate({model_}, Split::kValidation,
                                                     {cfg_.eval_batch_size, cfg_.eval_limit, cfg_.beam_size},
                                                     [] { return pending_stop_signal() != 0; });
  // Evaluation time must not count as training throughput.
  last_report_time_ += std::chrono::duration_cast<Clock::duration>(Clock::now() - start);
  validation_seconds_ = seconds_since(start);
  return r;
}

// ============================================================================================
// Saving
// ============================================================================================

// Test-only switch: RESUMABLE_TEST_TRACE_SAMPLES=PREFIX makes each rank append
// "epoch step id id ..." per step to PREFIX.rank<r>, so tests can prove that no sample is skipped
// or repeated across a resume. Unset in real runs.
void Trainer::trace_samples(const std::vector<int64_t>& mine) {
  static const char* prefix = std::getenv("RESUMABLE_TEST_TRACE_SAMPLES");
  if (!prefix) return;
  static std::FILE* f = std::fopen((std::string(prefix) + ".rank" + std::to_string(dist_.rank())).c_str(), "a");
  if (!f) return;
  std::fprintf(f, "%lld %lld", static_cast<long long>(state_.epoch), static_cast<long long>(state_.global_step));
  for (int64_t i : mine) std::fprintf(f, " %lld", static_cast<long long>(i));
  std::fprintf(f, "\n");
  std::fflush(f);
}

// Benchmark-only switch: RESUMABLE_BENCH_DUMP_BATCHES=PREFIX makes each rank append its share of
// every step to PREFIX.rank<r>, one line per step: the global target-token count, then per example
// "source ids;target ids" (comma-separated), tab-separated. scripts/bench-ddp replays these in its
// Python DDP twin, so both train on the very same batches. Unset in real runs.
void Trainer::dump_batch(const std::vector<int64_t>& mine, double global_tokens) {
  static const char* prefix = std::getenv("RESUMABLE_BENCH_DUMP_BATCHES");
  if (!prefix) return;
  static std::FILE* f = std::fopen((std::string(prefix) + ".rank" + std::to_string(dist_.rank())).c_str(), "a");
  if (!f) return;
  std::fprintf(f, "%.0f", global_tokens);
  for (int64_t i : mine) {
    const EncodedExample& e = data_.train[static_cast<size_t>(i)];
    std::string line = "\t";
    for (size_t k = 0; k < e.source.size(); ++k) line += (k ? "," : "") + std::to_string(e.source[k]);
    line += ";";
    for (size_t k = 0; k < e.target.size(); ++k) line += (k ? "," : "") + std::to_string(e.target[k]);
    std::fputs(line.c_str(), f);
  }
  std::fputs("\n", f);
  std::fflush(f);
}

std::string Trainer::verify_replicas() {
  XXH3 h;
  for (const auto& p : model_->parameters()) {
    at::Tensor t = p.detach().to(at::kCPU).contiguous();
    h.update(t.data_ptr(), t.nbytes());
  }
  uint64_t digest = h.digest();
  at::Tensor mine = at::tensor({static_cast<int64_t>(digest)}, at::kLong);
  for (const auto& other : dist_.all_gather(mine))
    if (other.item<int64_t>() != static_cast<int64_t>(digest))
      throw std::runtime_error("ranks hold different weights at step " + std::to_string(state_.global_step) +
                               ": the data-parallel gradient averaging is broken");
  return "xxh3:" + hex64(digest);
}

std::string Trainer::prepare_save() {
  // DDP keeps replicas identical by construction; checking it costs one hash per save.
  return verify_replicas();
}

c10::IValue Trainer::build_checkpoint_state(bool with_probe) {
  skip_probe_ = !with_probe;
  try {
    c10::IValue state = save_components(components_, dist_.world_size());
    skip_probe_ = false;
    return state;
  } catch (...) {
    skip_probe_ = false;
    throw;
  }
}

void Trainer::report_progress(const StepResult& r, bool force_line) {
  if (!dist_.is_main()) return;
  bool line_due = force_line || state_.global_step % cfg_.log_every_steps == 0;
  // mpirun gives ranks a pseudo-terminal even when its own output goes to a file: no bar there.
  static const bool tty = stdout_is_terminal() && env_.launcher != Launcher::kOpenMPI;
  if (!line_due && !tty) return;
  double elapsed = seconds_since(last_report_time_);
  if (line_due && elapsed > 0) {
    samples_per_second_ = samples_since_report_ / elapsed;
    samples_since_report_ = 0;
    last_report_time_ = Clock::now();
  }
  const bool unfitted = awaiting_fit();
  const int64_t total = unfitted ? 0 : schedule_.state().total_steps;
  double steps_left = static_cast<double>(total - state_.global_step);
  double eta = unfitted                   ? cfg_.time_budget_minutes * 60 - state_.train_seconds
               : samples_per_second_ > 0 ? steps_left * cfg_.batch_size / samples_per_second_
                                         : -1;
  std::string text = fmt::format("epoch {}/{} step {}/{} loss {:.4f} lr {:.3g} {:.0f} samples/s ETA {}",
                                 state_.epoch + (state_.batch_in_epoch > 0 ? 1 : 0), epochs_text(), state_.global_step,
                                 total_steps_text(),
                                 r.tokens > 0 ? r.loss_sum / r.tokens : 0.0,
                                 state_.history.learning_rate.empty() ? 0.0 : state_.history.learning_rate.back(),
                                 samples_per_second_, format_duration(eta));
  if (tty) {
    // A bar redrawn in place on a terminal; batch logs get the plain periodic lines below.
    int width = 24, filled = total > 0 ? static_cast<int>(width * state_.global_step / total) : 0;
    std::printf("\r[%s%s] %s\033[K", std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                text.c_str());
    if (line_due) std::printf("\n");
    std::fflush(stdout);
  } else {
    log::info("{}", text);
  }
}

// ============================================================================================
// Evaluation of a checkpoint (--eval)
// ============================================================================================

int Trainer::evaluate() {
  const LoadedCheckpoint& ck = *plan_.checkpoint;
  load_model_state_dict(*model_, StateReader(ck.root, ck.path)[ckpt_key::kModel]);
  Ensemble models{model_};
  for (const auto& path : run_.ensemble) models.push_back(load_ensemble_member(path));
  nlohmann::json j = {{"checkpoint", ck.path}, {"position", position_text(ck)}, {"beam", cfg_.beam_size}};
  if (!run_.ensemble.empty()) j["ensemble"] = run_.ensemble;
  const std::string what = run_.ensemble.empty() ? ck.path : fmt::format("{} + {} more (ensemble)", ck.path, run_.ensemble.size());
  for (auto [split, name] : {std::pair{Split::kValidation, "validation"}, std::pair{Split::kTest, "test"}}) {
    auto start = Clock::now();
    std::optional<EvalResult> r = evaluator_->evaluate(models, split, {cfg_.eval_batch_size, cfg_.eval_limit, cfg_.beam_size},
                                                       [] { return pending_stop_signal() != 0; });
    if (!r) {
      log::warn("evaluation of {} stopped by {} (exit {}; nothing to save)", what,
                signal_name(pending_stop_signal() ? pending_stop_signal() : SIGTERM), exit_code::kStoppedBySignal);
      return exit_code::kStoppedBySignal;
    }
    j[name] = {{"words", r->words}, {"wer", r->wer}, {"per", r->per}, {"loss", r->loss}, {"token_acc", r->token_acc}};
    log::info("{}: WER {:.2f}%, PER {:.2f}%, loss {:.4f}, token acc {:.4f} on {} words (beam {}, {:.1f}s) of {}", name,
              100 * r->wer, 100 * r->per, r->loss, r->token_acc, static_cast<int64_t>(r->words), cfg_.beam_size,
              seconds_since(start), what);
  }
  if (dist_.is_main()) std::printf("%s\n", j.dump().c_str());
  return exit_code::kDone;
}

// A checkpoint's model, built from its own config (members may differ in architecture), on this
// rank's device. Its vocabularies must be this data's: ids mean the same symbols in every member.
G2PTransformer Trainer::load_ensemble_member(const std::string& path) {
  SavedModel m = resumable::load_ensemble_member(path, data_.graphemes, data_.phonemes, cfg_.data);
  m.model->to(device_);
  m.model->eval();
  const auto& o = m.model->options();
  log::info("ensemble member {}: d_model={} heads={} layers={}+{} ff={}", path, o.d_model, o.heads, o.encoder_layers,
            o.decoder_layers, o.ff_dim);
  return m.model;
}

}  // namespace resumable
