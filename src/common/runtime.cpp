#include "common/runtime.h"

#include <sys/resource.h>

#include <thread>

#include "common/error.h"

namespace extrap {

torch::Device resolve_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda") {
    if (!torch::cuda::is_available()) {
      throw UserError("--device cuda: this LibTorch build or machine has no CUDA device (use --device cpu)");
    }
    return torch::kCUDA;
  }
  throw UserError("--device " + name + ": expected cpu or cuda");
}

int configure_threads(int requested) {
  const int threads = requested > 0 ? requested : std::max(1u, std::thread::hardware_concurrency());
  torch::set_num_threads(threads);
  return threads;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

}  // namespace extrap
