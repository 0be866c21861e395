// Converting component states to and from the checkpoint's plain dict.
//  - StateReader: typed access to a loaded dict; every failure names the file and the field path
//    ("last.pt: field 'scheduler.total_steps': expected an integer, found a string").
//  - to_state_dict/load_state_dict for plain-data states that declare their fields in visit().
//  - model and AdamW state dicts keyed by parameter name, as in PyTorch.
#pragma once

#include <memory>

#include <optional>
#include <type_traits>
#include <string>
#include <vector>

#include <ATen/core/Dict.h>
#include <ATen/core/ivalue.h>
#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include "resumable/util/errors.h"

namespace resumable {

using StateDict = c10::impl::GenericDict;
StateDict new_state_dict();

class StateReader {
 public:
  StateReader(c10::IValue value, std::string file, std::string path = "");

  bool has(const std::string& key) const;
  StateReader operator[](const std::string& key) const;  // required: a missing key is an error
  std::vector<std::string> keys() const;
  std::vector<StateReader> items() const;  // elements of a list

  int64_t to_int() const;
  double to_double() const;  // ints are accepted
  bool to_bool() const;
  std::string to_string() const;
  std::vector<std::string> to_strings() const;  // a list of strings
  // A dense CPU tensor whose storage really holds its shape; dtype/dims checked when given.
  at::Tensor to_tensor(std::optional<at::ScalarType> dtype = std::nullopt, int64_t dims = -1) const;

  const c10::IValue& value() const { return value_; }
  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }
  // "path.key": how a child field is named in messages.
  std::string field_name(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  [[noreturn]] void fail(const std::string& problem) const;

 private:
  std::string describe() const;
  c10::IValue value_;
  std::string file_;
  std::string path_;
};

// --- plain-data states (visit(name, field&) for int64_t, double, bool, strings, vectors).
// A field added after checkpoints were already written is visited as (name, field&, default):
// files that lack it load with the default.
struct ToDict {
  StateDict& d;
  template <class T>
  void operator()(const char* k, T& v, const T&) { (*this)(k, v); }
  void operator()(const char* k, int64_t& v) { d.insert(k, v); }
  void operator()(const char* k, double& v) { d.insert(k, v); }
  void operator()(const char* k, bool& v) { d.insert(k, v); }
  void operator()(const char* k, std::string& v) { d.insert(k, v); }
  void operator()(const char* k, std::vector<double>& v);
  void operator()(const char* k, std::vector<int64_t>& v);
};
struct FromDict {
  template <class T>
  static std::string default_text(const T& v) {
    if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
    else if constexpr (std::is_arithmetic_v<T>) return std::to_string(v);
    else return "(empty)";
  }
  const StateReader& r;
  std::vector<std::string>* notes = nullptr;  // where a field filled with its default is said
  template <class T>
  void operator()(const char* k, T& v, const T& fallback) {
    if (r.has(k)) return (*this)(k, v);
    v = fallback;
    if (notes)
      notes->push_back(r.field_name(k) + ": not in this file (written before it existed), using its default " +
                       default_text(fallback));
  }
  void operator()(const char* k, int64_t& v) { v = r[k].to_int(); }
  void operator()(const char* k, double& v) { v = r[k].to_double(); }
  void operator()(const char* k, bool& v) { v = r[k].to_bool(); }
  void operator()(const char* k, std::string& v) { v = r[k].to_string(); }
  void operator()(const char* k, std::vector<double>& v);
  void operator()(const char* k, std::vector<int64_t>& v);
};

template <class T>
StateDict to_state_dict(T state) {
  StateDict d = new_state_dict();
  state.visit(ToDict{d});
  return d;
}
template <class T>
T from_state_dict(const StateReader& r, std::vector<std::string>* notes = nullptr) {
  T state;
  state.visit(FromDict{r, notes});
  return state;
}

// Parameters and buffers by name, on the CPU. CPU tensors are the live ones, not copies (a
// synchronous save writes them while training waits, and copying 1 GB costs a second of page
// faults); take snapshot_copy() of the state before the next optimizer step changes them.
StateDict model_state_dict(const torch::nn::Module& model);
// Copies saved tensors into the model; names, shapes and dtypes must match exactly.
void load_model_state_dict(torch::nn::Module& model, const StateReader& r);

// {"state": {param name: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [{lr, betas, ...}]}
// Its moments alias the live ones on the CPU, as model_state_dict()'s parameters do.
StateDict optimizer_state_dict(torch::optim::AdamW& optimizer, const torch::nn::Module& model);
void load_optimizer_state_dict(torch::optim::AdamW& optimizer, const torch::nn::Module& model, const StateReader& r);

// Memory for the tensors of one snapshot, in one block on transparent huge pages where the kernel
// offers them, every page touched when it is made: copying 1.4 GB into memory never touched costs
// this VM about 2 s, into touched memory about 0.1 s. A trainer keeps one for all its saves.
class SnapshotArena {
 public:
  explicit SnapshotArena(size_t bytes);
  size_t capacity() const { return capacity_; }
  // No tensor of an earlier snapshot still lives in it.
  bool reusable() const { return memory_ && memory_.use_count() == 1; }
  void reset() { used_ = 0; }
  // A contiguous copy of `t` in the arena (a plain clone when it is full); the arena's memory
  // lives as long as any tensor in it.
  at::Tensor copy(const at::Tensor& t);

 private:
  std::shared_ptr<char> memory_;
  size_t capacity_ = 0, used_ = 0;
};

// Bytes the tensors of `state` take in a snapshot.
size_t snapshot_bytes(const c10::IValue& state);
// The same state with every tensor copied: what a background save writes while training goes on.
c10::IValue snapshot_copy(const c10::IValue& state);
// The same into `arena` (reusable(), and large enough for all of it to fit).
c10::IValue snapshot_copy(const c10::IValue& state, SnapshotArena& arena);

// A plain-value dict (config and similar) as JSON text, for comparisons and messages.
std::string state_to_json_text(const StateReader& r);
// JSON text of a flat object -> dict of ints/floats/bools/strings.
StateDict json_text_to_state_dict(const std::string& json_text);

}  // namespace resumable
