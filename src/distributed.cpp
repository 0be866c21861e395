#include "resumable/distributed.h"

#include <cstdlib>
#include <unistd.h>

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef RESUMABLE_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "resumable/mpi_rendezvous.h"

namespace resumable {
namespace {

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "127.0.0.1";
  return buf;
}

c10::intrusive_ptr<c10d::TCPStore> tcp_store(const std::string& host, int port, bool server, int world,
                                             std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(port);
  o.isServer = server;
  o.numWorkers = world;
  o.waitWorkers = false;  // the process group's own connect step synchronizes the ranks
  o.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(host, o);
}

// The store every rank uses to find the others; see libtorch-facts.md for torchrun's agent store.
c10::intrusive_ptr<c10d::Store> rendezvous(const LaunchEnv& env, std::chrono::milliseconds timeout) {
  if (env.world_size == 1) return c10::make_intrusive<c10d::HashStore>();
  switch (env.launcher) {
    case Launcher::kTorchrun: {
      bool server = !env.agent_store && env.rank == 0;
      c10::intrusive_ptr<c10d::Store> store =
          tcp_store(env.master_addr, env.master_port, server, env.world_size, timeout);
      // As torch.distributed does: a restarted attempt never reads the previous attempt's keys.
      return c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(env.restart_count),
                                                     store);
    }
    case Launcher::kOpenMPI:
      if (env.master_addr.empty() || env.master_port == 0) {
        // No address given: rank 0 serves on a free port and MPI broadcasts where.
        c10::intrusive_ptr<c10d::TCPStore> store;
        std::string address;
        if (env.rank == 0) {
          store = tcp_store("0.0.0.0", 0, true, env.world_size, timeout);
          address = (env.master_addr.empty() ? host_name() : env.master_addr) + ":" + std::to_string(store->getPort());
        }
        address = mpi_broadcast_and_finalize(address);
        if (env.rank == 0) return store;
        auto colon = address.rfind(':');
        return tcp_store(address.substr(0, colon), std::stoi(address.substr(colon + 1)), false, env.world_size,
                         timeout);
      }
      [[fallthrough]];
    case Launcher::kSlurm:
    case Launcher::kSingle:
      return tcp_store(env.master_addr, env.master_port, env.rank == 0, env.world_size, timeout);
  }
  throw std::logic_error("unknown launcher");
}

std::shared_ptr<::gloo::transport::Device> gloo_device(int world_size) {
  if (world_size == 1) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

std::unique_ptr<Distributed> Distributed::connect(const LaunchEnv& env, const DistributedOptions& options) {
  std::unique_ptr<Distributed> d(new Distributed());
  d->rank_ = env.rank;
  d->world_size_ = env.world_size;
  d->store_ = rendezvous(env, options.timeout);
  d->store_->setTimeout(options.timeout);

  auto group = c10::make_intrusive<c10d::ProcessGroup>(d->store_, env.rank, env.world_size);
  auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
  gloo_options->devices.push_back(gloo_device(env.world_size));
  auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
      c10::make_intrusive<c10d::PrefixStore>("gloo", d->store_), env.rank, env.world_size, gloo_options);
  group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
  group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
  if (options.nccl) {
#ifdef RESUMABLE_WITH_NCCL
    auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
    nccl_options->timeout = options.timeout;
    auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        c10::make_intrusive<c10d::PrefixStore>("nccl", d->store_), env.rank, env.world_size, nccl_options);
    nccl->setSequenceNumberForGroup();
    group->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, nccl);
#else
    throw std::runtime_error("--device cuda: this trainer was built without NCCL");
#endif
  }
  d->group_ = group;
  d->barrier();
  return d;
}

Distributed::~Distributed() = default;

void Distributed::barrier() {
  at::Tensor t = at::zeros({1});
  all_reduce_sum(t);
}

void Distributed::all_reduce_sum(at::Tensor& t) {
  std::vector<at::Tensor> ts{t};
  group_->allreduce(ts)->wait();
}

void Distributed::broadcast(at::Tensor& t, int root) {
  std::vector<at::Tensor> ts{t};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  group_->broadcast(ts, o)->wait();
}

std::vector<at::Tensor> Distributed::all_gather(const at::Tensor& t) {
  std::vector<at::Tensor> in{t.contiguous()};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int r = 0; r < world_size_; ++r) out[0].push_back(at::empty_like(in[0]));
  group_->allgather(out, in)->wait();
  return out[0];
}

std::string Distributed::broadcast_string(const std::string& s, int root) {
  at::Tensor len = at::tensor({static_cast<int64_t>(s.size())}, at::kLong);
  broadcast(len, root);
  at::Tensor bytes = at::zeros({len.item<int64_t>()}, at::kByte);
  if (rank_ == root && !s.empty()) std::memcpy(bytes.data_ptr(), s.data(), s.size());
  if (bytes.numel() > 0) broadcast(bytes, root);
  return std::string(static_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(bytes.numel()));
}

bool Distributed::all_true(bool ok) {
  at::Tensor failures = at::tensor({ok ? 0.0 : 1.0}, at::kDouble);
  all_reduce_sum(failures);
  return failures.item<double>() == 0.0;
}

}  // namespace resumable
