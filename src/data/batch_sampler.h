#pragma once
// Which windows each process reads: the one object the trainer and the evaluator share. Training
// draws a global batch of `batch_size` rows per optimizer step from a counter-based hash of
// (seed, step, row), so resuming needs no saved RNG state, and process `rank` of `world_size`
// takes the contiguous share of rows [rank * B / N, (rank + 1) * B / N): the same config trained on
// 1 or N processes sees the same windows. Evaluation and validation deal their batches out in
// turn (batch i to process i mod N), so each process gets an even share of the work.
#include <cstdint>
#include <vector>

namespace extrap {

class BatchSampler {
 public:
  // One process (rank 0 of 1) unless told otherwise. Throws UserError when the processes cannot
  // share the global batch evenly.
  BatchSampler(uint64_t seed, int64_t batch_size, int rank = 0, int world_size = 1);
  // For evaluation, which draws no windows: only its deal of batches matters.
  static BatchSampler evaluation(int rank, int world_size) { return {0, world_size, rank, world_size}; }

  int64_t rows_per_process() const { return batch_size_ / world_size_; }
  int64_t first_row() const { return rank_ * rows_per_process(); }
  // This process's rows of `step`: where each starts among `max_offset_exclusive` offsets (for a
  // task dataset, which of that many examples each row holds).
  std::vector<int64_t> offsets(int64_t step, int64_t max_offset_exclusive) const;
  // Whether evaluation batch `index` is this process's.
  bool owns(int64_t index) const { return index % world_size_ == rank_; }

 private:
  uint64_t seed_;
  int64_t batch_size_;
  int rank_, world_size_;
};

// Deterministic start offset of global batch row `row` at optimizer step `step`. Exposed for tests.
int64_t window_offset(uint64_t seed, int64_t step, int64_t row, int64_t max_offset_exclusive);

}  // namespace extrap
