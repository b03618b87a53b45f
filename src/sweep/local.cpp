#include "sweep/local.h"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "common/files.h"
#include "common/interrupt.h"
#include "common/subprocess.h"
#include "sweep/run_state.h"
#include "sweep/task.h"

namespace extrap {
namespace {

int64_t threads_per_run(const Sweep& sweep, const LocalOptions& options) {
  if (options.threads > 0) return options.threads;
  if (sweep.threads > 0) return sweep.threads;
  return std::max<int64_t>(1, int64_t(std::thread::hardware_concurrency()) / options.jobs);
}

// The last `count` lines of a log, indented, for a failure's message.
std::string log_tail(const fs::path& log, std::size_t count) {
  std::ifstream in(log);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::ostringstream out;
  for (std::size_t l = lines.size() > count ? lines.size() - count : 0; l < lines.size(); ++l) out << "    " << lines[l] << "\n";
  return out.str();
}

pid_t start_task(const Sweep& sweep, const SweepRun& run, int64_t threads) {
  const fs::path log = sweep.log_of(run);
  fs::create_directories(log.parent_path());
  std::ofstream(log, std::ios::app) << "== " << utc_timestamp() << " extrap sweep run\n";
  std::cout << "== " << run.name << ": " << (is_trained(run) ? "evaluating" : "training") << " (log " << log.string()
            << ")" << std::endl;
  return start_process({self_executable().string(), "sweep", "task", sweep.file.string(), "--run", run.name,
                        "--threads", std::to_string(threads)},
                       log);
}

}  // namespace

int run_locally(const Sweep& sweep, const LocalOptions& options) {
  const InterruptGuard signals(/*second_signal_kills=*/false);
  std::vector<const SweepRun*> pending;
  for (const auto& run : sweep.runs_in_order) {
    const RunStatus status = inspect_run(sweep, run);
    if (status.state == RunState::Evaluated || status.state == RunState::Running) {
      std::cout << "== " << run.name << ": " << state_name(status.state) << " (skipping"
                << (status.detail.empty() ? "" : "; " + status.detail) << ")" << std::endl;
    } else {
      pending.push_back(&run);
    }
  }
  const int64_t threads = threads_per_run(sweep, options);
  std::map<pid_t, const SweepRun*> running;
  std::vector<std::string> failures;
  std::size_t next = 0;
  while (next < pending.size() || !running.empty()) {
    while (!signals.received() && next < pending.size() && int64_t(running.size()) < options.jobs) {
      const SweepRun* run = pending[next++];
      running[start_task(sweep, *run, threads)] = run;
    }
    if (running.empty()) break;  // interrupted before the next start
    const auto [pid, status] = wait_any_process();
    const auto ended = running.find(pid);
    if (ended == running.end()) continue;
    const SweepRun& run = *ended->second;
    running.erase(ended);
    if (status == 0) {
      std::cout << "== " << run.name << ": evaluated" << std::endl;
    } else if (!signals.received()) {
      failures.push_back(run.name + " (exit " + std::to_string(status) + ", log " + sweep.log_of(run).string() + ")");
      std::cout << "== " << run.name << ": failed with exit status " << status << "; the end of "
                << sweep.log_of(run).string() << ":\n" << log_tail(sweep.log_of(run), 5) << std::flush;
    }
  }
  if (signals.received()) {
    std::cout << "== interrupted: rerun the same command to resume" << std::endl;
    return 128 + signals.received();
  }
  if (failures.empty()) return 0;
  std::cout << "== " << failures.size() << " of " << pending.size() << " runs failed: " << failures.front();
  for (std::size_t f = 1; f < failures.size(); ++f) std::cout << ", " << failures[f];
  std::cout << std::endl;
  return 1;
}

}  // namespace extrap
