#include "resumable/checkpoint/checkpoint_state.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include <nlohmann/json.hpp>

namespace resumable {
namespace {

std::string type_of(const c10::IValue& v) {
  if (v.isNone()) return "None";
  if (v.isInt()) return "an integer";
  if (v.isDouble()) return "a float";
  if (v.isBool()) return "a boolean";
  if (v.isString()) return "a string";
  if (v.isTensor()) return "a tensor";
  if (v.isGenericDict()) return "a dict";
  if (v.isList()) return "a list";
  if (v.isTuple()) return "a tuple";
  return v.tagKind();
}

std::string shape_text(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

nlohmann::json to_json(const StateReader& r) {
  const auto& v = r.value();
  if (v.isInt()) return v.toInt();
  if (v.isDouble()) return v.toDouble();
  if (v.isBool()) return v.toBool();
  if (v.isString()) return v.toStringRef();
  if (v.isNone()) return nullptr;
  if (v.isGenericDict()) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& k : r.keys()) j[k] = to_json(r[k]);
    return j;
  }
  if (v.isList()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& item : r.items()) j.push_back(to_json(item));
    return j;
  }
  r.fail("expected plain values (numbers, strings, lists, dicts), found " + type_of(v));
}

}  // namespace

StateDict new_state_dict() { return StateDict(c10::StringType::get(), c10::AnyType::get()); }

StateReader::StateReader(c10::IValue value, std::string file, std::string path)
    : value_(std::move(value)), file_(std::move(file)), path_(std::move(path)) {}

void StateReader::fail(const std::string& problem) const {
  throw CheckpointError(file_ + ": " + (path_.empty() ? std::string("top level") : "field '" + path_ + "'") + ": " +
                        problem);
}

std::string StateReader::describe() const { return type_of(value_); }

bool StateReader::has(const std::string& key) const {
  return value_.isGenericDict() && value_.toGenericDict().contains(key);
}

StateReader StateReader::operator[](const std::string& key) const {
  if (!value_.isGenericDict()) fail("expected a dict, found " + describe());
  auto d = value_.toGenericDict();
  auto it = d.find(key);
  std::string child = field_name(key);
  if (it == d.end()) StateReader(c10::IValue(), file_, child).fail("missing");
  return StateReader(it->value(), file_, child);
}

std::vector<std::string> StateReader::keys() const {
  if (!value_.isGenericDict()) fail("expected a dict, found " + describe());
  std::vector<std::string> out;
  for (const auto& kv : value_.toGenericDict()) {
    if (!kv.key().isString()) fail("expected string keys, found " + type_of(kv.key()));
    out.push_back(kv.key().toStringRef());
  }
  return out;
}

std::vector<StateReader> StateReader::items() const {
  if (!value_.isList()) fail("expected a list, found " + describe());
  std::vector<StateReader> out;
  auto list = value_.toList();
  for (size_t i = 0; i < list.size(); ++i) out.emplace_back(list.get(i), file_, path_ + "[" + std::to_string(i) + "]");
  return out;
}

int64_t StateReader::to_int() const {
  if (!value_.isInt()) fail("expected an integer, found " + describe());
  return value_.toInt();
}
double StateReader::to_double() const {
  if (value_.isInt()) return static_cast<double>(value_.toInt());
  if (!value_.isDouble()) fail("expected a number, found " + describe());
  return value_.toDouble();
}
bool StateReader::to_bool() const {
  if (!value_.isBool()) fail("expected a boolean, found " + describe());
  return value_.toBool();
}
std::string StateReader::to_string() const {
  if (!value_.isString()) fail("expected a string, found " + describe());
  return value_.toStringRef();
}

std::vector<std::string> StateReader::to_strings() const {
  std::vector<std::string> out;
  for (const auto& item : items()) out.push_back(item.to_string());
  return out;
}

at::Tensor StateReader::to_tensor(std::optional<at::ScalarType> dtype, int64_t dims) const {
  if (!value_.isTensor()) fail("expected a tensor, found " + describe());
  at::Tensor t = value_.toTensor();
  if (t.layout() != at::kStrided || !t.device().is_cpu()) fail("expected a dense CPU tensor");
  if (dtype && t.scalar_type() != *dtype)
    fail(std::string("expected dtype ") + c10::toString(*dtype) + ", found " + c10::toString(t.scalar_type()));
  if (dims >= 0 && t.dim() != dims)
    fail("expected a " + std::to_string(dims) + "-D tensor, found shape " + shape_text(t.sizes()));
  // The shape and strides come from the pickle, the bytes from another record: a shape that lies
  // about its storage would read past it, so check before any element is touched.
  if (t.numel() > 0) {
    int64_t last = t.storage_offset();
    for (int64_t d = 0; d < t.dim(); ++d) {
      if (t.stride(d) < 0) fail("negative stride");
      last += (t.size(d) - 1) * t.stride(d);
    }
    uint64_t need = (static_cast<uint64_t>(last) + 1) * t.element_size();
    if (need > t.storage().nbytes())
      fail("shape " + shape_text(t.sizes()) + " needs " + std::to_string(need) + " bytes, its data holds " +
           std::to_string(t.storage().nbytes()));
  }
  return t;
}

void ToDict::operator()(const char* k, std::vector<double>& v) {
  d.insert(k, at::tensor(v, at::kDouble).reshape({static_cast<int64_t>(v.size())}));
}
void ToDict::operator()(const char* k, std::vector<int64_t>& v) {
  d.insert(k, at::tensor(v, at::kLong).reshape({static_cast<int64_t>(v.size())}));
}
void FromDict::operator()(const char* k, std::vector<double>& v) {
  at::Tensor t = r[k].to_tensor(at::kDouble, 1).contiguous();
  v.assign(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}
void FromDict::operator()(const char* k, std::vector<int64_t>& v) {
  at::Tensor t = r[k].to_tensor(at::kLong, 1).contiguous();
  v.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

namespace {

size_t aligned(size_t n) { return (n + 63) / 64 * 64; }

}  // namespace

SnapshotArena::SnapshotArena(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20;
  size_t size = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = nullptr;
  if (size == 0 || ::posix_memalign(&p, kHuge, size) != 0) return;
  ::madvise(p, size, MADV_HUGEPAGE);  // advice only: fine if refused
  std::memset(p, 0, size);             // every page faulted in now, not during a save
  memory_ = std::shared_ptr<char>(static_cast<char*>(p), [](char* q) { std::free(q); });
  capacity_ = size;
}

at::Tensor SnapshotArena::copy(const at::Tensor& t) {
  if (!memory_ || used_ + aligned(t.nbytes()) > capacity_) return t.clone();
  auto holder = memory_;
  at::Tensor out = at::from_blob(memory_.get() + used_, t.sizes(), [holder](void*) {}, t.options());
  out.copy_(t);
  used_ += aligned(t.nbytes());
  return out;
}

namespace {

size_t tensor_bytes(const c10::IValue& v) {
  size_t n = 0;
  if (v.isTensor()) return aligned(v.toTensor().nbytes());
  if (v.isGenericDict())
    for (const auto& e : v.toGenericDict()) n += tensor_bytes(e.value());
  if (v.isList())
    for (const c10::IValue& e : v.toList()) n += tensor_bytes(e);
  if (v.isTuple())
    for (const auto& e : v.toTupleRef().elements()) n += tensor_bytes(e);
  return n;
}

c10::IValue copy_into(const c10::IValue& v, SnapshotArena* arena) {
  if (v.isTensor()) {
    const at::Tensor& t = v.toTensor();
    return arena && t.device().is_cpu() ? arena->copy(t) : t.clone();
  }
  if (v.isGenericDict()) {
    auto in = v.toGenericDict();
    c10::impl::GenericDict out(in.keyType(), in.valueType());
    for (const auto& e : in) out.insert(e.key(), copy_into(e.value(), arena));
    return out;
  }
  if (v.isList()) {
    auto in = v.toList();
    c10::impl::GenericList out(in.elementType());
    for (const c10::IValue& e : in) out.push_back(copy_into(e, arena));
    return out;
  }
  if (v.isTuple()) {
    std::vector<c10::IValue> items;
    for (const auto& e : v.toTupleRef().elements()) items.push_back(copy_into(e, arena));
    return c10::ivalue::Tuple::create(std::move(items));
  }
  return v;  // numbers, strings, None: values already
}

}  // namespace

size_t snapshot_bytes(const c10::IValue& state) { return tensor_bytes(state); }

c10::IValue snapshot_copy(const c10::IValue& state, SnapshotArena& arena) {
  arena.reset();
  return copy_into(state, &arena);
}

c10::IValue snapshot_copy(const c10::IValue& state) {
  SnapshotArena arena(tensor_bytes(state));
  return snapshot_copy(state, arena);
}

StateDict model_state_dict(const torch::nn::Module& model) {
  StateDict d = new_state_dict();
  for (const auto& p : model.named_parameters()) d.insert(p.key(), p.value().detach().to(at::kCPU));
  for (const auto& b : model.named_buffers()) d.insert(b.key(), b.value().detach().to(at::kCPU));
  return d;
}

void load_model_state_dict(torch::nn::Module& model, const StateReader& r) {
  std::vector<std::pair<std::string, at::Tensor>> targets;
  for (const auto& p : model.named_parameters()) targets.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers()) targets.emplace_back(b.key(), b.value());
  for (const auto& key : r.keys()) {
    bool known = false;
    for (const auto& t : targets) known = known || t.first == key;
    if (!known) r[key].fail("not a parameter of this model (the checkpoint has another architecture)");
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) {
    StateReader field = r[name];
    at::Tensor saved = field.to_tensor(target.scalar_type());
    if (saved.sizes() != target.sizes())
      field.fail("expected shape " + shape_text(target.sizes()) + ", found " + shape_text(saved.sizes()));
    target.copy_(saved);
  }
}

StateDict optimizer_state_dict(torch::optim::AdamW& optimizer, const torch::nn::Module& model) {
  StateDict state = new_state_dict();
  auto& slots = optimizer.state();
  for (const auto& p : model.named_parameters()) {
    auto it = slots.find(p.value().unsafeGetTensorImpl());
    if (it == slots.end()) continue;
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    StateDict entry = new_state_dict();
    entry.insert("step", s.step());
    entry.insert("exp_avg", s.exp_avg().detach().to(at::kCPU));
    entry.insert("exp_avg_sq", s.exp_avg_sq().detach().to(at::kCPU));
    if (s.max_exp_avg_sq().defined()) entry.insert("max_exp_avg_sq", s.max_exp_avg_sq().detach().to(at::kCPU));
    state.insert(p.key(), entry);
  }
  c10::impl::GenericList groups(c10::AnyType::get());
  for (auto& g : optimizer.param_groups()) {
    auto& o = static_cast<torch::optim::AdamWOptions&>(g.options());
    StateDict group = new_state_dict();
    group.insert("lr", o.lr());
    c10::impl::GenericList betas(c10::AnyType::get());
    betas.push_back(std::get<0>(o.betas()));
    betas.push_back(std::get<1>(o.betas()));
    group.insert("betas", betas);
    group.insert("eps", o.eps());
    group.insert("weight_decay", o.weight_decay());
    group.insert("amsgrad", o.amsgrad());
    c10::impl::GenericList names(c10::AnyType::get());
    for (const auto& p : model.named_parameters()) names.push_back(p.key());
    group.insert("params", names);
    groups.push_back(group);
  }
  StateDict d = new_state_dict();
  d.insert("type", std::string("AdamW"));
  d.insert("state", state);
  d.insert("param_groups", groups);
  return d;
}

void load_optimizer_state_dict(torch::optim::AdamW& optimizer, const torch::nn::Module& model, const StateReader& r) {
  if (r["type"].to_string() != "AdamW") r["type"].fail("expected \"AdamW\", found \"" + r["type"].to_string() + "\"");
  StateReader state = r["state"];
  auto params = model.named_parameters();
  for (const auto& key : state.keys())
    if (!params.contains(key)) state[key].fail("not a parameter of this model");
  auto groups = r["param_groups"].items();
  if (groups.size() != optimizer.param_groups().size())
    r["param_groups"].fail("expected " + std::to_string(optimizer.param_groups().size()) + " group(s), found " +
                           std::to_string(groups.size()));
  for (size_t i = 0; i < groups.size(); ++i) {
    auto& o = static_cast<torch::optim::AdamWOptions&>(optimizer.param_groups()[i].options());
    auto betas = groups[i]["betas"].items();
    if (betas.size() != 2) groups[i]["betas"].fail("expected 2 numbers");
    // No lr: every step takes it from the LR schedule, the one source. The saved value (the lr of
    // the step the state is at) is for readers in Python, whose optimizers keep it in the group.
    groups[i]["lr"].to_double();
    o.betas({betas[0].to_double(), betas[1].to_double()});
    o.eps(groups[i]["eps"].to_double());
    o.weight_decay(groups[i]["weight_decay"].to_double());
    o.amsgrad(groups[i]["amsgrad"].to_bool());
  }
  auto& slots = optimizer.state();
  slots.clear();
  torch::NoGradGuard no_grad;
  for (const auto& key : state.keys()) {
    const at::Tensor& param = params[key];
    StateReader entry = state[key];
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(entry["step"].to_int());
    auto load = [&](const char* name) {
      at::Tensor t = entry[name].to_tensor(param.scalar_type());
      if (t.sizes() != param.sizes()) entry[name].fail("expected shape " + shape_text(param.sizes()) + ", found " + shape_text(t.sizes()));
      return t.to(param.device()).clone();
    };
    s->exp_avg(load("exp_avg"));
    s->exp_avg_sq(load("exp_avg_sq"));
    if (entry.has("max_exp_avg_sq")) s->max_exp_avg_sq(load("max_exp_avg_sq"));
    slots[param.unsafeGetTensorImpl()] = std::move(s);
  }
}

std::string state_to_json_text(const StateReader& r) {
  nlohmann::json j = to_json(r);
  try {
    return j.dump();
  } catch (const nlohmann::json::type_error&) {
    // JSON text must be UTF-8; a flipped bit in a saved string or key is damage, not a crash.
    r.fail("holds text that is not valid UTF-8");
  }
}

StateDict json_text_to_state_dict(const std::string& json_text) {
  StateDict d = new_state_dict();
  const nlohmann::json j = nlohmann::json::parse(json_text);  // outlives the loop over its items
  for (const auto& [k, v] : j.items()) {
    if (v.is_boolean()) d.insert(k, v.get<bool>());
    else if (v.is_number_integer()) d.insert(k, v.get<int64_t>());
    else if (v.is_number()) d.insert(k, v.get<double>());
    else if (v.is_string()) d.insert(k, v.get<std::string>());
    else throw std::invalid_argument("json_text_to_state_dict: key '" + k + "' is not a plain value");
  }
  return d;
}

}  // namespace resumable
