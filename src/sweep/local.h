#pragma once
// `extrap sweep run`: the sweep's runs on this machine, one after another or K at a time, each an
// `extrap sweep task` child with its own log. Torch-free.
#include <cstdint>

#include "sweep/sweep_file.h"

namespace extrap {

struct LocalOptions {
  int64_t jobs = 1;     // runs at a time
  int64_t threads = 0;  // per run; 0: the sweep file's `threads`, else the cores divided among the jobs
};

// Runs every run that is not evaluated yet (skipping those running elsewhere), printing a line as
// each starts and ends (and the end of the log of each that fails). Returns 0 when every run is
// evaluated, 128 + signal when interrupted (the children checkpoint), else 1.
int run_locally(const Sweep& sweep, const LocalOptions& options);

}  // namespace extrap
