#pragma once
// The processes of a data-parallel job, through LibTorch's own c10d: a TCPStore for the rendezvous
// and ProcessGroupGloo (CPU tensors) or ProcessGroupNCCL (CUDA, where this LibTorch has it) for the
// collectives. No launcher or collective of extrap's own: torchrun or srun start the processes,
// LaunchEnv says which one this is. A group of one process runs no collective at all.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "parallel/launch_env.h"

namespace extrap {

class ProcessGroup {
 public:
  ProcessGroup() = default;  // one process: every collective returns its input

  // Joins the job `env` describes (a group of one when it is not distributed). `timeout` bounds
  // the rendezvous and every collective, so a rank that dies or hangs makes the others fail
  // within it instead of waiting forever. An unreachable master is a UserError.
  static ProcessGroup join(const LaunchEnv& env, const torch::Device& device, std::chrono::milliseconds timeout);

  int rank() const { return env_.rank; }
  int size() const { return env_.world_size; }
  bool is_root() const { return env_.rank == 0; }
  bool distributed() const { return env_.world_size > 1; }
  const LaunchEnv& env() const { return env_; }
  std::string backend() const;  // "gloo", "nccl" or "none"

  // Sums every tensor in place across the processes. All are launched before any is waited for,
  // so the buckets of a gradient all-reduce pipeline through the backend.
  void sum_(std::vector<torch::Tensor>& tensors) const;
  double sum(double value) const;
  bool any(bool flag) const;  // true on every process when it is true on one
  void barrier() const;

  struct Backend;

 private:
  LaunchEnv env_;
  std::shared_ptr<Backend> backend_;
};

// The launcher's group (read_launch_env() unless given) for `device`, joined with `timeout_seconds`.
ProcessGroup join_launcher_group(const LaunchEnv& env, const std::string& device, double timeout_seconds);
ProcessGroup join_launcher_group(const std::string& device, double timeout_seconds);

// Sums the gradients of `parameters` across the group in flat buckets of about `bucket_bytes`
// (one all-reduce each, as DistributedDataParallel buckets them). With each process's loss
// normalised by the global batch, the sum is the global mean gradient. Parameters without a
// gradient are skipped: every process runs the same model, so they are the same on all.
void all_reduce_gradients(const std::vector<torch::Tensor>& parameters, const ProcessGroup& group,
                          int64_t bucket_bytes = int64_t(25) << 20);

}  // namespace extrap
