#include "resumable/distributed/distributed.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <unistd.h>

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef RESUMABLE_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "resumable/distributed/mpi_rendezvous.h"

namespace resumable {
namespace {

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

// Test-only switch: RESUMABLE_TEST_REPORT_TEARDOWN=1 makes each rank say on stderr what became of
// its process group at the end ("destroying" or "abandoned"), so tests can show that a fatal
// error never runs the group's destructor. Unset in real runs.
void report_teardown(int rank, const char* what) {
  if (std::getenv("RESUMABLE_TEST_REPORT_TEARDOWN")) std::fprintf(stderr, "rank %d: process group %s\n", rank, what);
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
  d->timeout_ = options.timeout;
  d->store_ = rendezvous(env, options.timeout);
  d->store_->setTimeout(options.timeout);
  try {
    d->join(env, options);
  } catch (...) {
    d->abandon();  // a peer that died while we joined: as on any fatal error (abandon())
    throw;
  }
  return d;
}

void Distributed::join(const LaunchEnv& env, const DistributedOptions& options) {
  // Ours from the start, so that abandon() covers a backend half set up when a peer fails.
  group_ = c10::make_intrusive<c10d::ProcessGroup>(store_, env.rank, env.world_size);
  auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
  gloo_options->devices.push_back(gloo_device(env.world_size));
  auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
      c10::make_intrusive<c10d::PrefixStore>("gloo", store_), env.rank, env.world_size, gloo_options);
  group_->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
  group_->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
  if (options.nccl) {
#ifdef RESUMABLE_WITH_NCCL
    auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
    nccl_options->timeout = options.timeout;
    auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
        c10::make_intrusive<c10d::PrefixStore>("nccl", store_), env.rank, env.world_size, nccl_options);
    nccl->setSequenceNumberForGroup();
    group_->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, nccl);
#else
    throw std::runtime_error("--device cuda: this trainer was built without NCCL");
#endif
  }
  barrier();
}

Distributed::~Distributed() {
  if (group_) report_teardown(rank_, "destroying");
}

void Distributed::shutdown() {
  if (group_) group_->shutdown();
}

void Distributed::abandon() {
  if (group_) report_teardown(rank_, "abandoned");
  (void)group_.release();  // the reference stays counted: nothing destroys the group
  (void)store_.release();
}

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

namespace {

// Beats `key` in the store about twice a second until destroyed.
class Heartbeat {
 public:
  Heartbeat(c10::intrusive_ptr<c10d::Store> store, std::string key) : store_(std::move(store)), key_(std::move(key)) {
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        try {
          store_->add(key_, 1);
        } catch (const std::exception&) {
          return;  // the store is gone: the waiters find out by themselves
        }
        for (int i = 0; i < 10 && !stop_.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  ~Heartbeat() {
    stop_.store(true);
    thread_.join();
  }

 private:
  c10::intrusive_ptr<c10d::Store> store_;
  std::string key_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string as_string(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
std::vector<uint8_t> as_bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

}  // namespace

std::vector<std::string> Distributed::gather_after(const std::string& what, const std::function<std::string()>& work,
                                                   std::chrono::milliseconds limit, const char* limit_flag) {
  if (world_size_ == 1) return {work()};
  using Clock = std::chrono::steady_clock;
  const std::string prefix = "slow/" + std::to_string(slow_rounds_++) + "/";
  auto result_key = [&](int r) { return prefix + "result/" + std::to_string(r); };
  auto beat_key = [&](int r) { return prefix + "beat/" + std::to_string(r); };

  // Our own part: 'R' + result, or 'X' + the error, so the others never wait for a rank that failed.
  {
    Heartbeat beat(store_, beat_key(rank_));
    try {
      store_->set(result_key(rank_), as_bytes("R" + work()));
    } catch (const std::exception& e) {
      store_->set(result_key(rank_), as_bytes(std::string("X") + e.what()));
      throw;
    }
  }

  const auto start = Clock::now();
  std::vector<int64_t> last_beat(world_size_, -1);
  std::vector<Clock::time_point> last_sign(world_size_, start);
  std::vector<std::string> results(world_size_);
  std::vector<int> missing;
  for (int r = 0; r < world_size_; ++r) missing.push_back(r);
  auto collect = [&](int r) {
    std::string v = as_string(store_->get(result_key(r)));
    if (v.empty() || v[0] != 'R')
      throw std::runtime_error("rank " + std::to_string(r) + " failed while " + what + ": " +
                               (v.empty() ? "no reason given" : v.substr(1)));
    results[r] = v.substr(1);
  };
  // Poll quickly at first (most of this work takes well under a second), then every 200 ms; look
  // at the heartbeats of the ranks still at work once a second.
  auto delay = std::chrono::milliseconds(2);
  auto last_look = start;
  while (!missing.empty()) {
    std::vector<std::string> keys;
    for (int r : missing) keys.push_back(result_key(r));
    if (store_->check(keys)) {
      for (int r : missing) collect(r);
      break;
    }
    auto now = Clock::now();
    if (now - last_look >= std::chrono::seconds(1)) {
      last_look = now;
      std::vector<int> still;
      for (int r : missing) {
        if (store_->check({result_key(r)})) {
          collect(r);
          continue;
        }
        still.push_back(r);
        int64_t beats = store_->add(beat_key(r), 0);
        if (beats != last_beat[r]) {
          last_beat[r] = beats;
          last_sign[r] = now;
        } else if (now - last_sign[r] > timeout_) {
          throw std::runtime_error("rank " + std::to_string(r) + " stopped responding while " + what +
                                   " (no sign of life for " + std::to_string(timeout_.count() / 1000) +
                                   " s, the --timeout-seconds)");
        }
      }
      missing = still;
    }
    if (limit.count() > 0 && now - start > limit)
      throw LimitExceeded(what + " took longer than its limit of " + std::to_string(limit.count() / 1000) + " s" +
                               (*limit_flag ? std::string(" (") + limit_flag + "; raise it for a slow file system)" : ""));
    std::this_thread::sleep_for(delay);
    delay = std::min<std::chrono::milliseconds>(delay * 3 / 2 + std::chrono::milliseconds(1), std::chrono::milliseconds(200));
  }
  // Nobody leaves before everyone has its results: rank 0 may host the store, and may exit next.
  barrier();
  return results;
}

bool Distributed::all_true(bool ok) {
  at::Tensor failures = at::tensor({ok ? 0.0 : 1.0}, at::kDouble);
  all_reduce_sum(failures);
  return failures.item<double>() == 0.0;
}

}  // namespace resumable
