#include "parallel/process_group.h"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <functional>

#include "parallel/backends.h"  // generated: EXTRAP_HAVE_GLOO, EXTRAP_HAVE_NCCL
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#if EXTRAP_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if EXTRAP_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "common/error.h"
#include "runtime/runtime.h"

namespace extrap {

// The backend's collectives, whichever class provides them (in LibTorch 2.x the backends no longer
// derive from c10d::ProcessGroup, so the concrete class is called directly).
struct ProcessGroup::Backend {
  std::string name;
  c10::intrusive_ptr<c10d::Store> store;
  std::function<c10::intrusive_ptr<c10d::Work>(std::vector<at::Tensor>&)> allreduce;
  std::function<c10::intrusive_ptr<c10d::Work>()> barrier;
};

namespace {

template <typename Group>
std::shared_ptr<ProcessGroup::Backend> wrap(const std::string& name, c10::intrusive_ptr<c10d::Store> store,
                                            c10::intrusive_ptr<Group> group) {
  auto backend = std::make_shared<ProcessGroup::Backend>();
  backend->name = name;
  backend->store = std::move(store);
  backend->allreduce = [group](std::vector<at::Tensor>& tensors) { return group->allreduce(tensors); };
  backend->barrier = [group] { return group->barrier(); };
  return backend;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// While alive, this process's stderr goes nowhere: c10d's socket code logs every failed connection
// attempt through glog, and the one line extrap prints on failure already carries its message.
class QuietStderr {
 public:
  QuietStderr() : saved_(::dup(STDERR_FILENO)) {
    const int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) {
      ::dup2(null, STDERR_FILENO);
      ::close(null);
    }
  }
  ~QuietStderr() {
    if (saved_ < 0) return;
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
  }
  QuietStderr(const QuietStderr&) = delete;
  QuietStderr& operator=(const QuietStderr&) = delete;

 private:
  int saved_;
};

c10::intrusive_ptr<c10d::Store> connect_store(const LaunchEnv& env, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions options;
  options.port = uint16_t(env.master_port);
  options.isServer = !env.agent_store && env.rank == 0;
  options.numWorkers = std::size_t(env.world_size);
  options.waitWorkers = false;  // creating the process group waits for every rank anyway
  options.timeout = timeout;
  options.multiTenant = true;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    const QuietStderr quiet;
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw UserError("cannot reach the master " + env.master_addr + ":" + std::to_string(env.master_port) + " from " +
                    env.describe() + " within " + std::to_string(timeout.count() / 1000) + " s: " +
                    what.substr(0, what.find('\n')));
  }
  if (env.agent_store) store = c10::make_intrusive<c10d::PrefixStore>(env.store_prefix, store);
  return store;
}

#if EXTRAP_HAVE_GLOO
std::shared_ptr<ProcessGroup::Backend> gloo_backend(const LaunchEnv& env, c10::intrusive_ptr<c10d::Store> store,
                                                    std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  // The interface that reaches the master: loopback for a one-machine job (the machine's own
  // hostname may not resolve in a container), GLOO_SOCKET_IFNAME when set, else the hostname's.
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME")) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
  } else if (is_loopback(env.master_addr)) {
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, options);
  return wrap("gloo", store, group);
}
#endif

#if EXTRAP_HAVE_NCCL
std::shared_ptr<ProcessGroup::Backend> nccl_backend(const LaunchEnv& env, c10::intrusive_ptr<c10d::Store> store,
                                                    std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, options);
  return wrap("nccl", store, group);
}
#endif

std::shared_ptr<ProcessGroup::Backend> make_backend(const LaunchEnv& env, const torch::Device& device,
                                                    c10::intrusive_ptr<c10d::Store> store,
                                                    std::chrono::milliseconds timeout) {
#if EXTRAP_HAVE_NCCL
  if (device.is_cuda()) return nccl_backend(env, store, timeout);
#endif
#if EXTRAP_HAVE_GLOO
  return gloo_backend(env, store, timeout);  // Gloo also reduces CUDA tensors (through host copies)
#else
  throw UserError("this build of extrap has no c10d backend for " + device.str() +
                  " (built without Gloo's headers" + std::string(device.is_cuda() ? " or NCCL" : "") +
                  "); run one process, or rebuild against a LibTorch that ships them");
#endif
}

// A collective that fails means another process died, hung past the timeout or left early: say so
// in one line (the backend's message runs over several).
[[noreturn]] void collective_failed(const LaunchEnv& env, const std::string& what, const std::exception& e) {
  const std::string message = e.what();
  throw std::runtime_error(what + " failed on " + env.describe() + " (another process died, hung past the " +
                           "collective timeout or stopped early): " + message.substr(0, message.find('\n')));
}

}  // namespace

ProcessGroup ProcessGroup::join(const LaunchEnv& env, const torch::Device& device, std::chrono::milliseconds timeout) {
  ProcessGroup group;
  group.env_ = env;
  if (!env.distributed()) return group;
  auto store = connect_store(env, timeout);
  group.backend_ = make_backend(env, device, store, timeout);
  group.barrier();  // every rank is up before any starts work
  return group;
}

std::string ProcessGroup::backend() const { return backend_ ? backend_->name : "none"; }

void ProcessGroup::sum_(std::vector<torch::Tensor>& tensors) const {
  if (!distributed()) return;
  try {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto& tensor : tensors) {
      std::vector<at::Tensor> one{tensor};
      works.push_back(backend_->allreduce(one));
    }
    for (const auto& work : works) work->wait();
  } catch (const std::exception& e) {
    collective_failed(env_, "all-reduce", e);
  }
}

double ProcessGroup::sum(double value) const {
  if (!distributed()) return value;
  std::vector<torch::Tensor> tensors{torch::tensor({value}, torch::kFloat64)};
  sum_(tensors);
  return tensors[0].item<double>();
}

bool ProcessGroup::any(bool flag) const { return sum(flag ? 1.0 : 0.0) > 0; }

void ProcessGroup::barrier() const {
  if (!distributed()) return;
  try {
    backend_->barrier()->wait();
  } catch (const std::exception& e) {
    collective_failed(env_, "barrier", e);
  }
}

ProcessGroup join_launcher_group(const std::string& device, double timeout_seconds) {
  return join_launcher_group(read_launch_env(), device, timeout_seconds);
}

ProcessGroup join_launcher_group(const LaunchEnv& env, const std::string& device, double timeout_seconds) {
  if (!env.distributed()) return {};
  if (timeout_seconds <= 0) throw UserError("--collective-timeout must be positive");
  const auto timeout = std::chrono::milliseconds(int64_t(timeout_seconds * 1000));
  ProcessGroup group = ProcessGroup::join(env, resolve_device(device), timeout);
  // Rank 0 reports progress; the others speak only to warn, and say who they are.
  if (!group.is_root()) {
    spdlog::set_level(spdlog::level::warn);
    spdlog::set_pattern("[%H:%M:%S] [rank " + std::to_string(env.rank) + "] %^%v%$");
  }
  spdlog::info("joined {} ({} backend, collective timeout {} s)", env.describe(), group.backend(), timeout_seconds);
  return group;
}

void all_reduce_gradients(const std::vector<torch::Tensor>& parameters, const ProcessGroup& group,
                          int64_t bucket_bytes) {
  if (!group.distributed()) return;
  std::vector<std::vector<torch::Tensor>> members(1);
  int64_t filled = 0;
  for (const auto& p : parameters) {
    const auto& grad = p.grad();
    if (!grad.defined()) continue;
    const int64_t bytes = grad.numel() * int64_t(grad.element_size());
    if (!members.back().empty() && (filled + bytes > bucket_bytes || grad.scalar_type() != members.back()[0].scalar_type())) {
      members.emplace_back();
      filled = 0;
    }
    members.back().push_back(grad);
    filled += bytes;
  }
  std::vector<torch::Tensor> buckets;
  for (const auto& grads : members) {
    std::vector<torch::Tensor> flat;
    for (const auto& g : grads) flat.push_back(g.reshape({-1}));
    if (!flat.empty()) buckets.push_back(torch::cat(flat));
  }
  group.sum_(buckets);
  for (std::size_t b = 0; b < buckets.size(); ++b) {
    int64_t offset = 0;
    for (auto& g : members[b]) {
      g.copy_(buckets[b].slice(0, offset, offset + g.numel()).view_as(g));
      offset += g.numel();
    }
  }
}

}  // namespace extrap
