#include "cli/sweep_report.h"

#include <iostream>

#include "common/error.h"
#include "report/results.h"
#include "sweep/run_state.h"

namespace extrap {
namespace {

// Why a run directory given to `extrap report` has no results.
std::string why_no_results(const fs::path& dir) {
  if (fs::exists(dir / "DONE")) return "trained, not evaluated (no results/eval.json)";
  if (fs::exists(dir / "config.json")) return "training not finished (no DONE)";
  return "not a run directory (no config.json)";
}

void add_sweep_runs(const std::string& sweep_file, ReportInputs& inputs) {
  const Sweep sweep = load_sweep(sweep_file);
  for (const auto& run : sweep.runs_in_order) {
    const RunStatus status = inspect_run(sweep, run);
    if (status.state == RunState::Evaluated) {
      inputs.documents.push_back(load_results(run.dir));
    } else {
      inputs.incomplete.push_back(run.name + ": " + state_name(status.state) +
                                  (status.detail.empty() ? "" : " (" + status.detail + ")"));
    }
  }
  if (inputs.documents.empty()) {
    throw UserError(sweep_file + ": no run of this sweep has results yet (see extrap sweep status " + sweep_file + ")");
  }
}

}  // namespace

ReportInputs read_report_inputs(const std::vector<std::string>& paths, const std::string& sweep_file) {
  ReportInputs inputs;
  if (!sweep_file.empty()) add_sweep_runs(sweep_file, inputs);
  std::string first_missing;
  for (const auto& path : paths) {
    if (fs::is_directory(path) && !fs::exists(fs::path(path) / "results" / "eval.json")) {
      inputs.incomplete.push_back(path + ": " + why_no_results(path));
      if (first_missing.empty()) first_missing = path;
      continue;
    }
    inputs.documents.push_back(load_results(path));
  }
  if (inputs.documents.empty()) {
    if (!first_missing.empty()) load_results(first_missing);  // throws its "no results" error
    throw UserError("report: give run directories, results files or --sweep SWEEP.json");
  }
  return inputs;
}

void print_report(const ReportInputs& inputs, const ReportOptions& options) {
  std::cout << render_report(inputs.documents, options);
  std::ostream& notes = options.format == TableFormat::Csv ? std::cerr : std::cout;
  for (const auto& line : inputs.incomplete) notes << "missing: " << line << "\n";
}

}  // namespace extrap
