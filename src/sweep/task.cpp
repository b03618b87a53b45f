#include "sweep/task.h"

#include <signal.h>

#include <atomic>
#include <iostream>

#include "common/subprocess.h"
#include "sweep/run_state.h"

namespace extrap {
namespace {

std::atomic<int> g_signal{0};
struct sigaction g_previous_int {}, g_previous_term {};

void on_signal(int signal_number) { g_signal = signal_number; }

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

SignalFlag::SignalFlag() {
  g_signal = 0;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, &g_previous_int);
  sigaction(SIGTERM, &action, &g_previous_term);
}

SignalFlag::~SignalFlag() {
  sigaction(SIGINT, &g_previous_int, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
}

int SignalFlag::received() const { return g_signal; }

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
  std::vector<std::string> args;
  if (options.parallel_per_task > 1) {
    args = {"srun", "--ntasks", std::to_string(options.parallel_per_task), "--kill-on-bad-exit=1"};
  }
  // --resume starts a run that has no config.json yet, and continues one that was interrupted.
  args.insert(args.end(), {extrap.string(), "train", "--config", run.config.string()});
  for (const auto& assignment : run.overrides) args.insert(args.end(), {"--set", assignment});
  args.insert(args.end(), {"--out", run.dir.string(), "--resume"});
  return with_threads(args, options);
}

std::vector<std::string> eval_command(const Sweep& sweep, const SweepRun& run, const TaskOptions& options,
                                      const fs::path& extrap) {
  std::vector<std::string> args{extrap.string(), "eval", "--run", run.dir.string()};
  const auto rest = eval_arguments(sweep);
  args.insert(args.end(), rest.begin(), rest.end());
  return with_threads(args, options);
}

int run_task(const Sweep& sweep, const SweepRun& run, const TaskOptions& options) {
  const SignalFlag signals;
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
