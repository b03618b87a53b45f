#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace extrap {

struct TrainOptions {
  std::string config_path;             // required for a new run; optional with --resume
  std::vector<std::string> overrides;  // --set key=value
  std::filesystem::path out;           // run directory; default runs/<name>
  bool resume = false;
  std::string device = "cpu";
};

// Trains (or resumes) a run; see docs/configuration.md. Throws UserError on bad input and Interrupted
// after a signal (with a checkpoint written).
void train(const TrainOptions& options);

// Deterministic start offset of batch row `row` at optimizer step `step`: a counter-based hash of
// (seed, step, row), so resuming needs no saved RNG state. Exposed for tests.
int64_t window_offset(uint64_t seed, int64_t step, int64_t row, int64_t max_offset_exclusive);

}  // namespace extrap
