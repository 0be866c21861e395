#include "resumable/distributed/data_parallel.h"

#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

#include "resumable/distributed/distributed.h"

namespace resumable {

DataParallel::DataParallel(torch::nn::Module& model, Distributed& dist, DataParallelOptions options)
    : model_(model), dist_(dist) {
  std::unordered_map<size_t, std::string> names;
  for (const auto& p : model.named_parameters()) {
    names[params_.size()] = p.key();
    params_.push_back(p.value());
  }
  broadcast_from_rank0();
  // Buckets in reverse parameter order, as DDP does: backward produces the last layers' gradients
  // first, so the first bucket fills (and its allreduce starts) early. The assignment is fixed for
  // the whole run (never rebuilt), so summation order, and hence every bit of a resumed run, is
  // the same as in an uninterrupted one.
  std::vector<at::Tensor> reversed(params_.rbegin(), params_.rend());
  std::vector<int64_t> indices;
  for (size_t i = params_.size(); i-- > 0;) indices.push_back(static_cast<int64_t>(i));
  auto [buckets, limits] = c10d::compute_bucket_assignment_by_size(
      reversed, {static_cast<size_t>(options.bucket_bytes)}, std::vector<bool>(params_.size(), false), indices);
  // Gradients are views into the buckets (DDP's gradient_as_bucket_view=True): each is copied
  // (and divided by the world size) into its bucket once, and the optimizer reads it there, so
  // the copy back out after the allreduce is gone. On a GPU that is one kernel launch less per
  // parameter and step (a step of these small models is bound by launches), and the gradients
  // take no memory beside the buckets. zero_grad() sets them to none: the reducer copies
  // the fresh gradient in and points it at its bucket again.
  reducer_ = std::make_unique<c10d::Reducer>(
      params_, std::move(buckets), dist.group(), std::vector<bool>(params_.size(), false),
      options.bucket_bytes, /*find_unused_parameters=*/false, /*gradient_as_bucket_view=*/true, std::move(names),
      /*first_bucket_bytes_cap=*/options.bucket_bytes, /*skip_all_reduce_unused_params=*/false,
      /*use_python_reducer=*/false, /*bucket_bytes_cap_list=*/std::vector<int64_t>{});
}

DataParallel::~DataParallel() = default;

void DataParallel::zero_grad() {
  for (auto& p : params_) p.mutable_grad().reset();
}

void DataParallel::before_forward() { reducer_->prepare_for_forward(); }

void DataParallel::before_backward(const at::Tensor& loss) { reducer_->prepare_for_backward({loss}); }

void DataParallel::broadcast_from_rank0() {
  if (dist_.world_size() == 1) return;
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> tensors = params_;
  for (const auto& b : model_.buffers()) tensors.push_back(b);
  c10d::broadcast_coalesced(dist_.group(), tensors, 256 << 20, 0);
}

}  // namespace resumable
