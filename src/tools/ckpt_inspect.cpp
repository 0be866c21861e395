// `ckpt list`, `ckpt info`, `ckpt verify`, `ckpt diff`: read-only views of checkpoints. Every view
// is built from the checkpoint schema (checkpoint_schema.h), so a new component shows up here
// without a change.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "resumable/tools/ckpt_command.h"
#include "resumable/training/checkpoint_verify.h"
#include "resumable/training/resume_proof.h"
#include "resumable/util/atomic_file.h"
#include "resumable/util/errors.h"
#include "resumable/util/log.h"

namespace resumable {
namespace {

using json = nlohmann::json;

int64_t mtime_of(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_mtime) : 0;
}

std::vector<std::string> pt_files(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() > 3 && name[0] != '.' && name.compare(name.size() - 3, 3, ".pt") == 0) out.push_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

json summary_json(const CheckpointSummary& s) {
  json j = {{"path", s.path},
            {"checksum", s.checksum},
            {"bytes", s.bytes},
            {"format_version", s.format_version},
            {"trainer_version", s.trainer_version},
            {"component_versions", s.component_versions},
            {"world_size", s.world_size},
            {"step", s.global_step},
            {"epoch", s.epoch},
            {"epoch_cursor", s.epoch_cursor},
            {"dataset_size", s.dataset_size},
            {"lr", s.lr},
            {"schedule_total_steps", s.total_steps},
            {"best_metric", s.has_best ? json(s.best_metric) : json(nullptr)},
            {"best_step", s.has_best ? json(s.best_step) : json(nullptr)},
            {"eval_pending", s.eval_pending},
            {"history", {{"steps", s.history_steps}, {"epochs", s.history_epochs}, {"evaluations", s.history_evals}}},
            {"resumed_at_step", s.resumed_at_step},
            {"parameters", s.parameters},
            {"vocabulary", {{"graphemes", s.graphemes}, {"phonemes", s.phonemes}}}};
  if (s.history_evals > 0)
    j["last_evaluation"] = {{"val_loss", s.last_val_loss}, {"val_wer", s.last_val_wer}, {"val_per", s.last_val_per}};
  else
    j["last_evaluation"] = nullptr;
  return j;
}

json meta_json(const std::optional<CheckpointMeta>& m) {
  if (!m) return nullptr;
  json from = json::array();
  for (const auto& a : m->resumed_from) from.push_back({{"path", a.path}, {"checksum", a.checksum}});
  json j = {{"step", m->step}, {"epoch", m->epoch}, {"segment", m->segment}, {"saved_at", m->saved_at},
            {"resumed_from", from}};
  j["after_failure"] = m->after_failure.empty() ? json(nullptr) : json(m->after_failure);
  return j;
}

std::string or_dash(bool known, double v, const char* format) {
  if (!known) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

void print_json(const json& j) { std::cout << j.dump(2) << "\n"; }

}  // namespace

// ---------------------------------------------------------------------------------------------
int ckpt_list(const std::vector<std::string>& raw) {
  ToolArgs a = parse_tool_args("ckpt list", raw, {}, {"--json"});
  if (a.positional.size() != 1) throw ConfigError("ckpt list: expected one RUN_DIR or CKPT_DIR (see trainer ckpt list --help)");
  std::string dir = a.positional[0];
  if (!is_directory(dir)) throw ConfigError("ckpt list: " + dir + ": not a directory (expected a RUN_DIR or its checkpoints/)");
  if (is_directory(dir + "/checkpoints")) dir += "/checkpoints";

  struct Row {
    std::string name, path;
    std::vector<std::string> marks;
  };
  std::vector<Row> rows;
  std::vector<std::string> names = pt_files(dir);
  // last, best, then numbered snapshots newest first, then anything else; backups at the end.
  auto rank = [](const std::string& n) { return n == "last.pt" ? 0 : n == "best.pt" ? 1 : n.rfind("step-", 0) == 0 ? 2 : 3; };
  std::stable_sort(names.begin(), names.end(), [&](const std::string& x, const std::string& y) {
    if (rank(x) != rank(y)) return rank(x) < rank(y);
    return rank(x) == 2 ? x > y : x < y;
  });
  for (const auto& n : names) {
    Row r{n, dir + "/" + n, {}};
    if (n == "last.pt") r.marks.push_back("last");
    if (n == "best.pt") r.marks.push_back("best");
    rows.push_back(r);
  }
  for (const auto& n : pt_files(dir + "/backup")) rows.push_back({"backup/" + n, dir + "/backup/" + n, {"backup"}});
  if (rows.empty()) throw ConfigError("ckpt list: " + dir + ": no checkpoint (*.pt) files here");

  json out = json::array();
  std::map<std::string, std::string> by_checksum;  // the file a checksum first appeared as (last, best)
  // last.pt, best.pt and a snapshot are often one file under three names (hard links): read it once.
  std::map<std::pair<dev_t, ino_t>, std::pair<std::optional<CheckpointMeta>, CheckpointSummary>> verified;
  int damaged = 0;
  for (auto& r : rows) {
    json j = {{"name", r.name}, {"path", r.path}};
    try {
      struct stat st{};
      const bool stated = ::stat(r.path.c_str(), &st) == 0;
      std::pair<std::optional<CheckpointMeta>, CheckpointSummary> found;
      if (stated && verified.count({st.st_dev, st.st_ino})) {
        found = verified.at({st.st_dev, st.st_ino});
      } else {
        LoadedCheckpoint ck = read_checkpoint(r.path);
        found = {ck.meta, verify_checkpoint(ck)};
        if (stated) verified[{st.st_dev, st.st_ino}] = found;
      }
      const auto& [meta, s] = found;
      // A numbered snapshot with the bytes of last.pt or best.pt is marked as the same file.
      if (r.marks.empty() || r.marks[0] == "backup") {
        for (const char* mark : {"last", "best"})
          if (by_checksum.count(std::string(mark)) && by_checksum[mark] == s.checksum) r.marks.push_back("=" + std::string(mark));
      } else {
        by_checksum[r.marks[0]] = s.checksum;
      }
      j.update({{"step", s.global_step}, {"epoch", s.epoch}, {"bytes", s.bytes}, {"checksum", s.checksum},
                {"saved_at", meta && meta->saved_at > 0 ? meta->saved_at : mtime_of(r.path)},
                {"val_loss", s.history_evals ? json(s.last_val_loss) : json(nullptr)},
                {"val_wer", s.history_evals ? json(s.last_val_wer) : json(nullptr)},
                {"after_failure", meta && !meta->after_failure.empty() ? json(meta->after_failure) : json(nullptr)},
                {"status", "OK"}});
    } catch (const CheckpointError& e) {
      ++damaged;
      struct stat st{};
      j.update({{"step", nullptr}, {"epoch", nullptr}, {"bytes", ::stat(r.path.c_str(), &st) == 0 ? st.st_size : 0},
                {"saved_at", mtime_of(r.path)}, {"val_loss", nullptr}, {"val_wer", nullptr},
                {"status", std::string("DAMAGED: ") + e.what()}});
    }
    j["marks"] = r.marks;
    out.push_back(j);
  }
  if (a.has("--json")) {
    print_json({{"directory", dir}, {"checkpoints", out}, {"damaged", damaged}});
    return exit_code::kDone;
  }
  std::printf("%s\n", dir.c_str());
  std::printf("%-34s %8s %6s  %-19s %9s %9s %8s  %-12s %s\n", "NAME", "STEP", "EPOCH", "SAVED", "SIZE", "VAL_LOSS",
              "VAL_WER", "MARKS", "STATUS");
  for (const auto& j : out) {
    std::string marks;
    for (const auto& m : j["marks"]) marks += (marks.empty() ? "" : ",") + m.get<std::string>();
    bool ok = j["status"] == "OK";
    std::printf("%-34s %8s %6s  %-19s %9s %9s %8s  %-12s %s\n", j["name"].get<std::string>().c_str(),
                ok ? std::to_string(j["step"].get<int64_t>()).c_str() : "?",
                ok ? std::to_string(j["epoch"].get<int64_t>()).c_str() : "?",
                local_time_text(j["saved_at"].get<int64_t>()).c_str(), size_text(j["bytes"].get<double>()).c_str(),
                or_dash(!j["val_loss"].is_null(), j["val_loss"].is_null() ? 0 : j["val_loss"].get<double>(), "%.4f").c_str(),
                or_dash(!j["val_wer"].is_null(), j["val_wer"].is_null() ? 0 : 100 * j["val_wer"].get<double>(), "%.2f%%").c_str(),
                marks.empty() ? "-" : marks.c_str(),
                (j["status"].get<std::string>() +
                 (j.contains("after_failure") && !j["after_failure"].is_null() ? " (saved by the survivors of a lost rank)" : ""))
                    .c_str());
  }
  return exit_code::kDone;
}

// ---------------------------------------------------------------------------------------------
int ckpt_info(const std::vector<std::string>& raw) {
  ToolArgs a = parse_tool_args("ckpt info", raw, {}, {"--json", "--tensors"});
  if (a.positional.size() != 1) throw ConfigError("ckpt info: expected one checkpoint FILE (see trainer ckpt info --help)");
  LoadedCheckpoint ck = read_checkpoint(a.positional[0]);
  CheckpointSummary s = summarize_checkpoint(ck);
  StateReader root(ck.root, ck.path);
  TrainConfig cfg = saved_config(ck);
  json config = json::parse(state_to_json_text(root[ckpt_key::kConfig]));
  json tensors = json::array();
  StateReader model = root[ckpt_key::kModel];
  for (const auto& name : model.keys()) {
    at::Tensor t = model[name].to_tensor();
    tensors.push_back({{"name", name}, {"shape", t.sizes().vec()}, {"dtype", std::string(c10::toString(t.scalar_type()))},
                       {"numel", t.numel()}});
  }
  if (a.has("--json")) {
    json j = summary_json(s);
    j["meta"] = meta_json(ck.meta);
    j["best_metric_name"] = cfg.best_metric;
    j["config"] = config;
    j["tensor_count"] = tensors.size();
    if (a.has("--tensors")) j["tensors"] = tensors;
    print_json(j);
    return exit_code::kDone;
  }
  std::string versions;
  for (const auto& spec : checkpoint_components())
    versions += (versions.empty() ? "" : ", ") + std::string(spec.name) +
                (s.component_versions.at(spec.name) ? " v" + std::to_string(s.component_versions.at(spec.name)) : " (absent)");
  std::printf("checkpoint   %s\n", s.path.c_str());
  std::printf("file         %s, %s, format %lld, written by trainer %s\n", size_text(s.bytes).c_str(), s.checksum.c_str(),
              static_cast<long long>(s.format_version), s.trainer_version.c_str());
  std::printf("components   %s\n", versions.c_str());
  if (ck.meta)
    std::printf("saved        %s by %lld rank(s), launch segment %lld\n", local_time_text(ck.meta->saved_at).c_str(),
                static_cast<long long>(s.world_size), static_cast<long long>(ck.meta->segment));
  else
    std::printf("saved        by %lld rank(s) (no meta record: an older trainer's file)\n", static_cast<long long>(s.world_size));
  if (ck.meta && !ck.meta->after_failure.empty())
    std::printf("             by the survivors of a lost rank: %s\n", ck.meta->after_failure.c_str());
  std::printf("position     step %lld, epoch %lld done, sample %lld/%lld of the next epoch\n",
              static_cast<long long>(s.global_step), static_cast<long long>(s.epoch),
              static_cast<long long>(s.epoch_cursor), static_cast<long long>(s.dataset_size));
  std::printf("schedule     LR of the next step %.4g, step %lld of %lld (warmup + cosine)\n", s.lr,
              static_cast<long long>(s.schedule_step), static_cast<long long>(s.total_steps));
  if (s.has_best)
    std::printf("best         %s = %.4f at step %lld\n", cfg.best_metric.c_str(), s.best_metric, static_cast<long long>(s.best_step));
  else
    std::printf("best         none yet (no validation; best.pt follows last.pt until the first)\n");
  if (s.history_evals > 0)
    std::printf("last eval    val_loss %.4f, WER %.2f%%, PER %.2f%%\n", s.last_val_loss, 100 * s.last_val_wer, 100 * s.last_val_per);
  if (s.eval_pending) std::printf("pending      the validation of epoch %lld (a stop interrupted it)\n", static_cast<long long>(s.epoch));
  std::printf("histories    %zu steps, %zu epochs, %zu evaluations\n", s.history_steps, s.history_epochs, s.history_evals);
  std::string resumes;
  for (int64_t r : s.resumed_at_step) resumes += (resumes.empty() ? "step " : ", ") + std::to_string(r);
  std::printf("resumed at   %s\n", resumes.empty() ? "never" : resumes.c_str());
  if (ck.meta)
    for (const auto& from : ck.meta->resumed_from) std::printf("resumed from %s (%s)\n", from.path.c_str(), from.checksum.c_str());
  if (root.has(ckpt_key::kResumeProof)) {
    ResumeProof proof = from_state_dict<ResumeProof>(root[ckpt_key::kResumeProof]);
    std::printf("resume proof the next %zu global batches (%zu sample ids) and %lld rank(s)' first-batch tensors; "
                "last loss %.4f, probe loss %.4f on %s (%zu samples)\n",
                proof.batch_sizes.size(), proof.sample_ids.size(), static_cast<long long>(proof.world_size),
                proof.last_loss, proof.probe_loss, proof.probe_device.c_str(), proof.probe_samples.size());
  } else {
    std::printf("resume proof none (written before it existed)\n");
  }
  std::printf("model        %.3fM parameters in %zu tensors; vocabulary %lld graphemes, %lld phonemes\n",
              s.parameters / 1e6, tensors.size(), static_cast<long long>(s.graphemes), static_cast<long long>(s.phonemes));
  std::printf("config       %s\n", config.dump().c_str());
  if (a.has("--tensors"))
    for (const auto& t : tensors) {
      std::string shape;
      for (const auto& d : t["shape"]) shape += (shape.empty() ? "" : "x") + std::to_string(d.get<int64_t>());
      std::printf("  %-48s %-14s %-6s %lld\n", t["name"].get<std::string>().c_str(), shape.empty() ? "scalar" : shape.c_str(),
                  t["dtype"].get<std::string>().c_str(), static_cast<long long>(t["numel"].get<int64_t>()));
    }
  return exit_code::kDone;
}

// ---------------------------------------------------------------------------------------------
int ckpt_verify(const std::vector<std::string>& raw) {
  ToolArgs a = parse_tool_args("ckpt verify", raw, {"--data"}, {"--json", "--deep"});
  if (a.positional.empty()) throw ConfigError("ckpt verify: expected one or more checkpoint files");
  if (a.has("--data") && !a.has("--deep")) throw ConfigError("ckpt verify: --data goes with --deep");
  const bool text = !a.has("--json");
  int bad = 0;
  json out = json::array();
  for (const auto& path : a.positional) {
    try {
      LoadedCheckpoint ck = read_checkpoint(path);
      CheckpointSummary s = verify_checkpoint(ck);
      json entry = {{"path", path}, {"ok", true}, {"step", s.global_step}, {"epoch", s.epoch}, {"bytes", s.bytes},
                    {"checksum", s.checksum}, {"world_size", s.world_size}};
      std::string deep_line;
      if (a.has("--deep")) {
        DeepVerification d = deep_verify_checkpoint(ck, a.value("--data").value_or(""));
        if (!d.recorded) {
          entry["deep"] = {{"recorded", false}};
          deep_line = "deep: no probe in this file (written before the resume proof): nothing to recompute";
        } else {
          entry["deep"] = {{"recorded", true},          {"ok", d.ok()},
                           {"probe_loss", d.recorded_loss}, {"recomputed_loss", d.recomputed_loss},
                           {"tolerance", d.tolerance},   {"samples", d.samples},
                           {"tokens", d.tokens},         {"recorded_on", d.recorded_on},
                           {"last_loss", d.last_loss},   {"data", d.data}};
          deep_line = fmt::format(
              "deep: probe loss {:.6f} recorded on {}, {:.6f} recomputed on cpu ({} samples, {} tokens of {}): "
              "|difference| {:.2e} {} {:.2e}; the last step's training loss was {:.4f} (dropout on: not recomputed)",
              d.recorded_loss, d.recorded_on, d.recomputed_loss, d.samples, d.tokens, d.data,
              std::abs(d.recomputed_loss - d.recorded_loss), d.ok() ? "<=" : ">", d.tolerance, d.last_loss);
          if (!d.ok()) {
            entry["ok"] = false;
            entry["problem"] = path + ": " + deep_line;
          }
        }
      }
      out.push_back(entry);
      if (text && entry["ok"].get<bool>())
        std::printf("OK   %s  step %lld, epoch %lld, %.1f MB, %s, saved by %lld rank(s)\n", path.c_str(),
                    static_cast<long long>(s.global_step), static_cast<long long>(s.epoch), s.bytes / 1e6,
                    s.checksum.c_str(), static_cast<long long>(s.world_size));
      else if (text)
        std::printf("BAD  %s: the weights do not give the loss they were saved with\n", path.c_str());
      if (text && !deep_line.empty()) std::printf("     %s\n", deep_line.c_str());
      if (!entry["ok"].get<bool>()) ++bad;
    } catch (const CheckpointError& e) {
      out.push_back({{"path", path}, {"ok", false}, {"problem", e.what()}});
      if (text) std::printf("BAD  %s\n", e.what());
      ++bad;
    }
  }
  if (!text) print_json(out);
  return bad == 0 ? exit_code::kDone : exit_code::kRuntimeError;
}

// ---------------------------------------------------------------------------------------------
namespace {

// One leaf that differs: a value, or a tensor (with its max |a-b| when the shapes agree).
struct Difference {
  std::string path, a, b;
  bool tensor = false;
  double max_abs = -1;  // tensors of equal shape and type
};

std::string scalar_text(const c10::IValue& v) {
  if (v.isString()) return "\"" + v.toStringRef() + "\"";
  if (v.isInt()) return std::to_string(v.toInt());
  if (v.isBool()) return v.toBool() ? "true" : "false";
  if (v.isNone()) return "null";
  if (v.isDouble()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v.toDouble());
    return buf;
  }
  return v.tagKind();
}

std::string shape_text(const at::Tensor& t) {
  std::string s = std::string(c10::toString(t.scalar_type())) + "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? "," : "") + std::to_string(t.size(i));
  return s + "]";
}

bool scalar_list(const c10::List<c10::IValue>& l) {
  for (const auto& v : l) {
    c10::IValue x = v;
    if (x.isTensor() || x.isGenericDict() || x.isList()) return false;
  }
  return true;
}

// Walks both trees; `tensors` counts the tensors compared (equal or not), per top-level component.
void compare(const c10::IValue& a, const c10::IValue& b, const std::string& path, std::vector<Difference>& out,
             std::map<std::string, std::pair<int, int>>& tensors) {
  const std::string component = path.substr(0, path.find('.'));
  if (a.isTensor() && b.isTensor()) {
    at::Tensor x = a.toTensor(), y = b.toTensor();
    auto& count = tensors[component];
    ++count.first;
    if (x.dim() == 1 && y.dim() == 1 && x.scalar_type() == y.scalar_type() && x.size(0) != y.size(0)) {
      // A history that grew: say how, and whether the common part is untouched.
      int64_t common = std::min(x.size(0), y.size(0));
      bool same = at::equal(x.narrow(0, 0, common), y.narrow(0, 0, common));
      out.push_back({path, std::to_string(x.size(0)) + " entries",
                     std::to_string(y.size(0)) + " entries" +
                         (same ? " (the first " + std::to_string(common) + " equal)" : " (the common part differs)")});
      ++count.second;
    } else if (x.sizes() != y.sizes() || x.scalar_type() != y.scalar_type()) {
      out.push_back({path, shape_text(x), shape_text(y), true});
      ++count.second;
    } else if (!at::equal(x, y)) {
      double m = x.numel() == 0 ? 0 : (x.to(at::kDouble) - y.to(at::kDouble)).abs().max().item<double>();
      out.push_back({path, shape_text(x), shape_text(y), true, m});
      ++count.second;
    }
    return;
  }
  if (a.isGenericDict() && b.isGenericDict()) {
    auto da = a.toGenericDict(), db = b.toGenericDict();
    // A config key that an older trainer wrote under its former name is compared under today's.
    const bool config = path == ckpt_key::kConfig;
    auto key_of = [&](const c10::IValue& key) {
      std::string k = key.isString() ? key.toStringRef() : scalar_text(key);
      bool renamed = false;
      const ConfigField* f = config ? find_config_field(k, &renamed) : nullptr;
      return f && renamed ? f->name : k;
    };
    auto find = [&](const c10::impl::GenericDict& d, const std::string& k) {
      if (!config) return d.find(k);
      for (auto it = d.begin(); it != d.end(); ++it)
        if (key_of(it->key()) == k) return it;
      return d.end();
    };
    std::vector<std::string> keys;
    for (const auto& e : da) keys.push_back(key_of(e.key()));
    for (const auto& e : db) {
      std::string k = key_of(e.key());
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    }
    for (const auto& k : keys) {
      std::string child = path.empty() ? k : path + "." + k;
      auto ia = find(da, k), ib = find(db, k);
      if (ia == da.end()) out.push_back({child, "(absent)", ib->value().isTensor() ? shape_text(ib->value().toTensor()) : scalar_text(ib->value())});
      else if (ib == db.end()) out.push_back({child, ia->value().isTensor() ? shape_text(ia->value().toTensor()) : scalar_text(ia->value()), "(absent)"});
      else compare(ia->value(), ib->value(), child, out, tensors);
    }
    return;
  }
  if (a.isList() && b.isList()) {
    auto la = a.toList(), lb = b.toList();
    if (scalar_list(la) && scalar_list(lb)) {
      size_t common = std::min(la.size(), lb.size()), first = common;
      for (size_t i = 0; i < common && first == common; ++i)
        if (scalar_text(la.get(i)) != scalar_text(lb.get(i))) first = i;
      if (la.size() == lb.size() && first == common) return;
      std::string note = first == common ? " (the first " + std::to_string(common) + " equal)"
                                         : " (first difference at [" + std::to_string(first) + "])";
      out.push_back({path, std::to_string(la.size()) + " entries", std::to_string(lb.size()) + " entries" + note});
      return;
    }
    size_t n = std::max(la.size(), lb.size());
    for (size_t i = 0; i < n; ++i) {
      std::string child = path + "[" + std::to_string(i) + "]";
      if (i >= la.size()) out.push_back({child, "(absent)", "present"});
      else if (i >= lb.size()) out.push_back({child, "present", "(absent)"});
      else compare(la.get(i), lb.get(i), child, out, tensors);
    }
    return;
  }
  std::string ta = a.isTensor() ? shape_text(a.toTensor()) : scalar_text(a);
  std::string tb = b.isTensor() ? shape_text(b.toTensor()) : scalar_text(b);
  if (ta != tb || a.tagKind() != b.tagKind()) out.push_back({path, ta, tb});
}

}  // namespace

int ckpt_diff(const std::vector<std::string>& raw) {
  ToolArgs a = parse_tool_args("ckpt diff", raw, {}, {"--json"});
  if (a.positional.size() != 2) throw ConfigError("ckpt diff: expected two checkpoint files A B (see trainer ckpt diff --help)");
  LoadedCheckpoint ca = read_checkpoint(a.positional[0]), cb = read_checkpoint(a.positional[1]);
  CheckpointSummary sa = summarize_checkpoint(ca), sb = summarize_checkpoint(cb);
  std::vector<Difference> diffs;
  std::map<std::string, std::pair<int, int>> tensors;  // component -> (compared, differing)
  compare(ca.root, cb.root, "", diffs, tensors);

  // Grouped by component, in the schema's order, then the file's own fields.
  std::vector<std::string> order;
  for (const auto& spec : checkpoint_components()) order.push_back(spec.name);
  auto group_of = [&](const Difference& d) {
    std::string top = d.path.substr(0, std::min(d.path.find('.'), d.path.find('[')));
    return std::find(order.begin(), order.end(), top) == order.end() ? std::string("file") : top;
  };
  order.push_back("file");

  if (a.has("--json")) {
    json groups = json::object();
    for (const auto& d : diffs) {
      json j = {{"path", d.path}, {"a", d.a}, {"b", d.b}};
      if (d.tensor) j["max_abs_diff"] = d.max_abs >= 0 ? json(d.max_abs) : json(nullptr);
      groups[group_of(d)].push_back(j);
    }
    json counts = json::object();
    for (const auto& [c, n] : tensors) counts[c] = {{"tensors", n.first}, {"differing", n.second}};
    print_json({{"a", summary_json(sa)}, {"b", summary_json(sb)}, {"identical", diffs.empty()},
                {"differences", groups}, {"tensors", counts}});
    return diffs.empty() ? exit_code::kDone : exit_code::kRuntimeError;
  }
  std::printf("A  %s: step %lld, epoch %lld, %s\n", ca.path.c_str(), static_cast<long long>(sa.global_step),
              static_cast<long long>(sa.epoch), sa.checksum.c_str());
  std::printf("B  %s: step %lld, epoch %lld, %s\n", cb.path.c_str(), static_cast<long long>(sb.global_step),
              static_cast<long long>(sb.epoch), sb.checksum.c_str());
  if (diffs.empty()) {
    std::printf("identical: every component holds the same values\n");
    return exit_code::kDone;
  }
  for (const auto& group : order) {
    std::vector<const Difference*> mine;
    for (const auto& d : diffs)
      if (group_of(d) == group) mine.push_back(&d);
    auto t = tensors.count(group) ? tensors[group] : std::pair<int, int>{0, 0};
    if (mine.empty()) {
      if (t.first > 0) std::printf("%s: same (%d tensors)\n", group.c_str(), t.first);
      continue;
    }
    if (t.first > 0) std::printf("%s: %d of %d tensors differ\n", group.c_str(), t.second, t.first);
    else std::printf("%s:\n", group.c_str());
    const size_t prefix = group == "file" ? 0 : group.size() + 1;
    for (const auto* d : mine) {
      std::string name = d->path.size() > prefix ? d->path.substr(prefix) : d->path;
      if (d->tensor && d->max_abs >= 0)
        std::printf("  %-50s differs, max |a-b| = %.3g\n", name.c_str(), d->max_abs);
      else
        std::printf("  %-50s %s -> %s\n", name.c_str(), d->a.c_str(), d->b.c_str());
    }
  }
  std::printf("%zu difference(s)\n", diffs.size());
  return exit_code::kRuntimeError;
}

}  // namespace resumable
