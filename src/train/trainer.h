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
  // Under torchrun or srun: how long a collective may wait for the other processes before this
  // one fails (a rank that died or hangs), and how long the rendezvous waits for the master.
  double collective_timeout_s = 300;
};

// Trains (or resumes) a run; see docs/configuration.md. Under a launcher every process trains its
// share of each global batch and only rank 0 writes the run directory. Throws UserError on bad input and Interrupted
// after a signal (with a checkpoint written).
void train(const TrainOptions& options);

}  // namespace extrap
