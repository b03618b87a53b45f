#pragma once
// `extrap sweep plan|run|submit|status|task SWEEP.json` (docs/sweeps.md), registered beside the
// other subcommands. Torch-free.
#include <memory>

#include <CLI/CLI.hpp>

namespace extrap {

struct SweepCommandOptions;

struct SweepCommand {
  CLI::App* command;
  std::shared_ptr<SweepCommandOptions> options;
  // Runs the chosen verb; returns the exit status (UserError propagates to run_cli).
  int run() const;
};

SweepCommand add_sweep_command(CLI::App& app);

}  // namespace extrap
