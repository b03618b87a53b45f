#pragma once
// What a sweep knows about each of its runs, from files only (so a re-submission, `status` and
// `report --sweep` agree wherever they run): the run directory (config.json, DONE, results), the
// stamp of the evaluation the sweep ran, and the record of the last attempt. Torch-free.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sweep/sweep_file.h"

namespace extrap {

enum class RunState {
  Missing,      // never started
  Running,      // an attempt is under way (or was killed without a trace: see the detail)
  Interrupted,  // trained part way (a checkpoint to resume from) and stopped by a signal or a kill
  Failed,       // the last attempt's train or eval exited with an error: see its log
  Trained,      // DONE, but no complete results from the sweep's current eval arguments
  Evaluated,    // DONE and results/eval.json complete from the current eval arguments: skipped
};
const char* state_name(RunState state);

struct RunStatus {
  RunState state = RunState::Missing;
  std::string detail;  // e.g. "train exited 1; log runs/x/.sweep/logs/rope_seed=1.log"
};
RunStatus inspect_run(const Sweep& sweep, const SweepRun& run);

// The `extrap eval` arguments after `--run DIR` (no --threads: it does not change the numbers).
std::vector<std::string> eval_arguments(const Sweep& sweep);

// Whether the run finished training and its results came from the sweep's eval arguments (and
// the treatment files' current contents) after that training.
bool is_evaluated(const Sweep& sweep, const SweepRun& run);
bool is_trained(const SweepRun& run);
// Written after a successful evaluation: RUN/sweep-eval.json (beside results/, whose files are
// all results documents that report and plot read).
void write_eval_stamp(const Sweep& sweep, const SweepRun& run);

// The record of the last attempt, RUNS/.sweep/attempts/NAME.json: {"state": running | finished |
// failed | interrupted, "stage": train | eval, "exit": N, "host", "pid", "job", "time"}.
void record_attempt(const Sweep& sweep, const SweepRun& run, const std::string& state, const std::string& stage, int exit_status);

}  // namespace extrap
