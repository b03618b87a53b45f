#include "sweep/slurm.h"

#include <iostream>
#include <sstream>

#include "common/error.h"
#include "common/files.h"
#include "common/subprocess.h"
#include "sweep/run_state.h"
#include "sweep/task.h"

namespace extrap {
namespace {

std::string job_name(const Sweep& sweep) { return "extrap-" + sweep.name; }

int64_t training_threads(const Sweep& sweep, const SubmitOptions& options) {
  if (options.threads > 0) return options.threads;
  if (sweep.threads > 0) return sweep.threads;
  return std::max<int64_t>(1, options.resources.cpus_per_task);
}

fs::path absolute_path(const fs::path& path) { return fs::absolute(path).lexically_normal(); }

// The #SBATCH lines both scripts share: where they run, the partition, the time limit, extras.
std::string common_directives(const Sweep& sweep, const SubmitOptions& options) {
  const SlurmResources& r = options.resources;
  std::ostringstream out;
  out << "#SBATCH --chdir=" << shell_quote(fs::current_path().string()) << "\n";
  if (!r.partition.empty()) out << "#SBATCH --partition=" << r.partition << "\n";
  if (!r.time.empty()) out << "#SBATCH --time=" << r.time << "\n";
  for (const auto& arg : r.sbatch_args) out << "#SBATCH " << arg << "\n";
  return out.str();
}

std::vector<const SweepRun*> runs_to_submit(const Sweep& sweep) {
  std::vector<const SweepRun*> runs;
  for (const auto& run : sweep.runs_in_order) {
    if (inspect_run(sweep, run).state != RunState::Evaluated) runs.push_back(&run);
  }
  return runs;
}

// Refuses a second submission while jobs of this sweep are pending or running: two tasks training
// one run directory would both write it.
void check_queue(const Sweep& sweep) {
  const ProcessOutput queued = capture_process({"squeue", "--noheader", "--me", "--name", job_name(sweep), "--format", "%i"});
  if (queued.status != 0) throw UserError("squeue failed (exit " + std::to_string(queued.status) + "): is slurmctld running?");
  std::string ids;
  std::istringstream lines(queued.out);
  for (std::string id; lines >> id;) ids += (ids.empty() ? "" : " ") + id;
  if (!ids.empty()) {
    throw UserError(sweep.file.string() + ": jobs of this sweep are still queued or running (" + ids +
                    "); wait for them or scancel them, then submit again");
  }
}

// sbatch --parsable's job id ("ID" or "ID;cluster").
std::string sbatch(const std::vector<std::string>& args) {
  const ProcessOutput result = capture_process(args);
  std::string id = result.out.substr(0, result.out.find_first_of(";\n"));
  if (result.status != 0 || id.empty()) {
    throw UserError(shell_line(args) + ": sbatch failed with exit status " + std::to_string(result.status));
  }
  return id;
}

}  // namespace

std::string array_script(const Sweep& sweep, const std::vector<const SweepRun*>& runs, const SubmitOptions& options) {
  const SlurmResources& r = options.resources;
  const fs::path state = absolute_path(sweep.state_dir());
  std::ostringstream out;
  out << "#!/bin/bash\n"
      << "# Written by `extrap sweep submit " << sweep.file.string() << "`: one task per run not yet evaluated.\n"
      << "#SBATCH --job-name=" << job_name(sweep) << "\n"
      << "#SBATCH --array=0-" << runs.size() - 1 << "\n"
      << "#SBATCH --output=" << shell_quote((state / "slurm" / "%A_%a.out").string()) << "\n"
      << common_directives(sweep, options);
  if (r.cpus_per_task > 0) out << "#SBATCH --cpus-per-task=" << r.cpus_per_task << "\n";
  if (!r.mem.empty()) out << "#SBATCH --mem=" << r.mem << "\n";
  if (r.nodes > 0) out << "#SBATCH --nodes=" << r.nodes << "\n";
  if (r.parallel_per_task > 1) out << "#SBATCH --ntasks=" << r.parallel_per_task << "\n";
  out << "set -euo pipefail\nruns=(";
  for (const auto* run : runs) out << "\n  " << shell_quote(run->name);
  out << "\n)\nname=${runs[$SLURM_ARRAY_TASK_ID]}\n"
      << "exec >>" << shell_quote((state / "logs").string() + "/") << "\"$name.log\" 2>&1\n"
      << "echo \"== $(date -u +%Y-%m-%dT%H:%M:%SZ) Slurm job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname)\"\n"
      << "exec " << shell_line({self_executable().string(), "sweep", "task", absolute_path(sweep.file).string()})
      << " --run \"$name\" --threads " << training_threads(sweep, options)
      << " --parallel-per-task " << r.parallel_per_task << "\n";
  return out.str();
}

std::string report_script(const Sweep& sweep, const SubmitOptions& options) {
  const std::string extrap = shell_quote(self_executable().string()), file = shell_quote(absolute_path(sweep.file).string());
  std::ostringstream out;
  out << "#!/bin/bash\n"
      << "# Written by `extrap sweep submit " << sweep.file.string() << "`: runs after the array, however it ended.\n"
      << "#SBATCH --job-name=" << job_name(sweep) << "-report\n"
      << "#SBATCH --output=" << shell_quote((absolute_path(sweep.state_dir()) / "report.txt").string()) << "\n"
      << common_directives(sweep, options) << "#SBATCH --cpus-per-task=1\n"
      << extrap << " sweep status " << file << "\n"
      << "echo\n"
      << extrap << " report --sweep " << file << "\n";
  return out.str();
}

void submit_sweep(const Sweep& sweep, const SubmitOptions& options) {
  if (!options.dry_run) {
    for (const char* program : {"sbatch", "squeue"}) {
      if (!on_path(program)) {
        throw UserError(std::string(program) + " not found on PATH: submitting needs Slurm's client commands "
                        "(Debian: apt-get install slurm-client); `extrap sweep run` runs the sweep here");
      }
    }
    check_queue(sweep);
  }
  const auto runs = runs_to_submit(sweep);
  if (runs.empty()) {
    std::cout << "every run of " << sweep.file.string() << " is evaluated; nothing to submit\n";
    return;
  }
  const fs::path state = sweep.state_dir();
  for (const char* folder : {"logs", "slurm"}) fs::create_directories(state / folder);
  write_file_atomic(state / "array.sbatch", array_script(sweep, runs, options));
  write_file_atomic(state / "report.sbatch", report_script(sweep, options));
  std::cout << runs.size() << " of " << sweep.runs_in_order.size() << " runs to submit; scripts "
            << (state / "array.sbatch").string() << " and " << (state / "report.sbatch").string() << "\n";
  if (options.dry_run) return;
  const std::string array = sbatch({"sbatch", "--parsable", (state / "array.sbatch").string()});
  const std::string report =
      sbatch({"sbatch", "--parsable", "--dependency=afterany:" + array, (state / "report.sbatch").string()});
  std::cout << "submitted job array " << array << " (" << runs.size() << " tasks, logs in " << (state / "logs").string()
            << "/NAME.log) and report job " << report << " (" << (state / "report.txt").string() << ")\n";
}

}  // namespace extrap
