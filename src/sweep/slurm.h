#pragma once
// `extrap sweep submit`: one sbatch job array for the runs not yet evaluated (one task each, its
// log RUNS/.sweep/logs/NAME.log) and a report job that runs after it, whatever its tasks' fate
// (--dependency=afterany). Torch-free.
#include <string>
#include <vector>

#include "sweep/sweep_file.h"

namespace extrap {

struct SubmitOptions {
  SlurmResources resources;  // the sweep file's, with the command line's flags laid over them
  int64_t threads = 0;       // per training process; 0: the sweep's `threads`, else cpus_per_task, else 1
  bool dry_run = false;      // write the scripts and print what would be submitted
};

// The job array's script for `runs` (task i runs runs[i]) and the report job's.
std::string array_script(const Sweep& sweep, const std::vector<const SweepRun*>& runs, const SubmitOptions& options);
std::string report_script(const Sweep& sweep, const SubmitOptions& options);

// Checks that sbatch and squeue exist and that no job of this sweep is queued, writes the scripts
// under RUNS/.sweep and submits them; prints the job ids. Nothing is written when a check fails.
void submit_sweep(const Sweep& sweep, const SubmitOptions& options);

}  // namespace extrap
