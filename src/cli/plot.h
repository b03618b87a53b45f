#pragma once
// `extrap plot`: figures from results documents and run directories, drawn by scripts/plot.py
// (matplotlib). Torch-free.
#include <string>
#include <vector>

namespace extrap {

struct PlotOptions {
  std::vector<std::string> inputs;  // results files, run directories, metrics.jsonl files
  std::string out;                  // directory for the figures
  std::string metric;               // empty: the script's defaults
};

// Runs the plot script, passing its output through, and returns its exit status (2: bad input,
// reported by the script in one line), or 128 + the signal that ended it. Throws UserError when
// the script or a Python interpreter cannot be found.
int run_plot(const PlotOptions& options);

}  // namespace extrap
