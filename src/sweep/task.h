#pragma once
// One run of a sweep, the unit of `sweep run` and of a Slurm array task: `extrap train ... --resume`
// unless the run is DONE, then `extrap eval` unless its results are current, each a child process
// whose output goes where this process's goes (the run's log). Torch-free.
#include <cstdint>
#include <string>
#include <vector>

#include "sweep/sweep_file.h"

namespace extrap {

struct TaskOptions {
  int64_t threads = 0;            // --threads of train and eval; 0: theirs (every core)
  int64_t parallel_per_task = 1;  // > 1: train and evaluate as `srun --ntasks N --kill-on-bad-exit=1 extrap ...`
};

// The two commands, as printed into the log before they run.
std::vector<std::string> train_command(const SweepRun& run, const TaskOptions& options, const fs::path& extrap);
std::vector<std::string> eval_command(const Sweep& sweep, const SweepRun& run, const TaskOptions& options,
                                      const fs::path& extrap);

// Runs what the run still needs and records the attempt; returns 0, or the exit status of the
// command that failed (128 + signal when interrupted: then no later stage starts).
int run_task(const Sweep& sweep, const SweepRun& run, const TaskOptions& options);

// One line for a log: the command with each argument that needs it in single quotes.
std::string shell_line(const std::vector<std::string>& args);
std::string shell_quote(const std::string& text);

}  // namespace extrap
