// Data parallelism through c10d's own DDP engine. The constructor broadcasts rank 0's parameters
// and buffers, then builds a c10d::Reducer: gradients are bucketed and allreduced while backward
// is still running, and arrive averaged over ranks. Use per step:
//   zero_grad(); before_forward(); loss = model(...); before_backward(loss); loss.backward();
#pragma once

#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

namespace c10d {
class Reducer;
}
namespace torch::nn {
class Module;
}

namespace resumable {

class Distributed;

struct DataParallelOptions {
  int64_t bucket_bytes = 25 << 20;
};

class DataParallel {
 public:
  DataParallel(torch::nn::Module& model, Distributed& dist, DataParallelOptions options = {});
  ~DataParallel();

  // Drops the gradients (set to none). The gradients are views into the buckets, and
  // libtorch's Optimizer::zero_grad detaches them in place first, which a view refuses.
  void zero_grad();
  void before_forward();
  void before_backward(const at::Tensor& loss);
  // Copies rank 0's parameters and buffers to every rank (start, and after loading weights).
  void broadcast_from_rank0();

 private:
  torch::nn::Module& model_;
  Distributed& dist_;
  std::vector<at::Tensor> params_;
  std::unique_ptr<c10d::Reducer> reducer_;
};

}  // namespace resumable
