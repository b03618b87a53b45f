#include "sweep/task.h"

#include <signal.h>

#include <iostream>

#include "common/interrupt.h"
#include "common/subprocess.h"
#include "sweep/run_state.h"

namespace extrap {
namespace {

// `srun --ntasks N` in front of a data-parallel stage (the c10d side reads srun's variables).
std::vector<std::string> srun_prefix(const TaskOptions& options) {
  if (options.parallel_per_task <= 1) return {};
  return {"srun", "--ntasks", std::to_string(options.parallel_per_task), "--kill-on-bad-exit=1"};
}

std::vector<std::string> with_threads(std::vector<std::string> args, const TaskOptions& options) {
  if (options.threads > 0) args.insert(args.end(), {"--threads", std::to_string(options.threads)});
  return args;
}

// Runs one stage, recording a failure; returns its exit status.
int run_stage(const Sweep& sweep, const SweepRun& run, const std::string& stage, const std::vector<std::string>& command) {
  std::cout << "+ " << shell_line(command) << std::endl;
  const int status = run_process(command);
  if (status != 0) {
    const bool interrupted = status == 130 || status == 143 || status == 128 + SIGINT || status == 128 + SIGTERM;
    record_attempt(sweep, run, interrupted ? "interrupted" : "failed", stage, status);
    std::cout << "== " << run.name << ": " << stage << " exited " << status << std::endl;
  }
  return status;
}

}  // namespace

std::string shell_quote(const std::string& text) {
  const bool plain = !text.empty() && text.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                             "0123456789_-+=.,/:@%") == std::string::npos;
  if (plain) return text;
  std::string quoted = "'";
  for (const char ch : text) quoted += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return quoted + "'";
}

std::string shell_line(const std::vector<std::string>& args) {
  std::string line;
  for (const auto& arg : args) line += (line.empty() ? "" : " ") + shell_quote(arg);
  return line;
}

std::vector<std::string> train_command(const SweepRun& run, const TaskOptions& options, const fs::path& extrap) {
  std::vector<std::string> args = srun_prefix(options);
  // --resume starts a run that has no config.json yet, and continues one that was interrupted.
  args.insert(args.end(), {extrap.string(), "train", "--config", run.config.string()});
  for (const auto& assignment : run.overrides) args.insert(args.end(), {"--set", assignment});
  args.insert(args.end(), {"--out", run.dir.string(), "--resume"});
  return with_threads(args, options);
}

std::vector<std::string> eval_command(const Sweep& sweep, const SweepRun& run, const TaskOptions& options,
                                      const fs::path& extrap) {
  std::vector<std::string> args = srun_prefix(options);
  args.insert(args.end(), {extrap.string(), "eval", "--run", run.dir.string()});
  const auto rest = eval_arguments(sweep);
  args.insert(args.end(), rest.begin(), rest.end());
  return with_threads(args, options);
}

int run_task(const Sweep& sweep, const SweepRun& run, const TaskOptions& options) {
  const InterruptGuard signals(/*second_signal_kills=*/false);
  const fs::path extrap = self_executable();
  record_attempt(sweep, run, "running", is_trained(run) ? "eval" : "train", 0);
  if (!is_trained(run)) {
    if (const int status = run_stage(sweep, run, "train", train_command(run, options, extrap))) return status;
  }
  if (signals.received()) {
    record_attempt(sweep, run, "interrupted", "eval", 128 + signals.received());
    return 128 + signals.received();
  }
  if (!is_evaluated(sweep, run)) {
    if (const int status = run_stage(sweep, run, "eval", eval_command(sweep, run, options, extrap))) return status;
    write_eval_stamp(sweep, run);
  }
  record_attempt(sweep, run, "finished", "eval", 0);
  std::cout << "== " << run.name << ": trained and evaluated" << std::endl;
  return 0;
}

}  // namespace extrap
