#pragma once
// A sweep file (docs/sweeps.md): configs x `--set` grids x seeds, the evaluation every run gets,
// and optional Slurm resources, expanded into named runs. Loading validates the whole sweep (every
// run's config with its overrides), so a bad sweep stops before anything is written. Torch-free.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace extrap {

namespace fs = std::filesystem;

// The `extrap eval` arguments every run of the sweep is evaluated with.
struct SweepEval {
  std::vector<int64_t> lengths{512, 2048, 8192};
  int64_t max_tokens = 0;              // 0: eval's default
  std::vector<std::string> protocols;  // empty: eval's default (nonoverlap, or task on a task dataset)
  std::vector<fs::path> treatments;    // absolute paths
  std::string split;                   // empty: eval's default
};

// Resources of each array task; empty or 0: Slurm's default.
struct SlurmResources {
  std::string partition, time, mem;
  int64_t cpus_per_task = 0;
  int64_t nodes = 0;
  int64_t parallel_per_task = 1;  // > 1: training runs as `srun --ntasks N extrap train` (data-parallel)
  std::vector<std::string> sbatch_args;  // more #SBATCH lines, e.g. "--account=lab"
};

struct SweepRun {
  std::string name;               // the run directory's name: config, grid values, seed
  fs::path config;                // absolute
  std::vector<std::string> overrides;  // `set`, then the grid values, then seed=S
  std::optional<int64_t> seed;
  fs::path dir;                   // runs/NAME
};

struct Sweep {
  fs::path file;                  // as given
  std::string name;
  fs::path runs;                  // the runs directory (relative to the working directory)
  int64_t threads = 0;            // per run; 0: the runner's default
  SweepEval eval;
  SlurmResources slurm;
  std::vector<SweepRun> runs_in_order;  // configs outermost, then the grid (first key slowest), seeds innermost

  // RUNS/.sweep: scripts, logs and the record of each run's last attempt.
  fs::path state_dir() const { return runs / ".sweep"; }
  fs::path log_of(const SweepRun& run) const { return state_dir() / "logs" / (run.name + ".log"); }
  // The run called `name`; throws UserError naming the sweep file.
  const SweepRun& find(const std::string& name) const;
};

// Reads and validates `file`; every error is one UserError line starting with the file's name.
Sweep load_sweep(const fs::path& file);

// The directory-safe text of one grid value: strings unquoted, characters outside [A-Za-z0-9._+-]
// replaced by '-'.
std::string name_part(const std::string& key, const std::string& value_text);

// The shortest dotted suffix of each key that no other key ends with ("position.base" -> "base"
// unless another key also ends in ".base").
std::vector<std::string> short_keys(const std::vector<std::string>& keys);

}  // namespace extrap
