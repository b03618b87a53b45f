#include "common/process.h"

#include <sys/resource.h>

#include <thread>


namespace extrap {

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
