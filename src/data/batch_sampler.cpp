#include "data/batch_sampler.h"

#include <string>

#include "common/error.h"
#include "common/random.h"

namespace extrap {

BatchSampler::BatchSampler(uint64_t seed, int64_t batch_size, int rank, int world_size)
    : seed_(seed), batch_size_(batch_size), rank_(rank), world_size_(world_size) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    throw UserError("rank " + std::to_string(rank) + " of " + std::to_string(world_size) + " processes is not a rank");
  }
  if (batch_size % world_size != 0) {
    throw UserError("train.batch_size " + std::to_string(batch_size) + " (the global batch) does not divide evenly over " +
                    std::to_string(world_size) + " processes; use a multiple of " + std::to_string(world_size));
  }
}

std::vector<int64_t> BatchSampler::offsets(int64_t step, int64_t max_offset_exclusive) const {
  std::vector<int64_t> result;
  for (int64_t row = first_row(); row < first_row() + rows_per_process(); ++row) {
    result.push_back(window_offset(seed_, step, row, max_offset_exclusive));
  }
  return result;
}

int64_t window_offset(uint64_t seed, int64_t step, int64_t row, int64_t max_offset_exclusive) {
  const uint64_t h = splitmix64(splitmix64(seed ^ 0x5eedULL) ^ splitmix64(uint64_t(step) * 0x100000001b3ULL + row));
  return int64_t(h % uint64_t(max_offset_exclusive));
}

}  // namespace extrap
