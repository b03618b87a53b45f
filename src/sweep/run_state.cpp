#include "sweep/run_state.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "common/error.h"
#include "common/files.h"

namespace extrap {
namespace {

using nlohmann::json;

fs::path stamp_file(const SweepRun& run) { return run.dir / "sweep-eval.json"; }
fs::path results_file(const SweepRun& run) { return run.dir / "results" / "eval.json"; }
fs::path attempt_file(const Sweep& sweep, const SweepRun& run) {
  return sweep.state_dir() / "attempts" / (run.name + ".json");
}

// A JSON file that another process may be rewriting (atomically) or that a crash left torn: null
// when it is missing or unreadable, so a run in that state counts as not done.
json read_json_or_null(const fs::path& path) {
  if (!fs::is_regular_file(path)) return nullptr;
  try {
    return json::parse(read_text_file(path));
  } catch (const std::exception&) {
    return nullptr;
  }
}

std::string host_name() {
  char name[256] = {};
  return gethostname(name, sizeof name - 1) == 0 ? name : "?";
}

// Slurm's "JOB_TASK" of an array task, "JOB" of a job, "" outside Slurm.
std::string slurm_job() {
  const char* array = std::getenv("SLURM_ARRAY_JOB_ID");
  const char* task = std::getenv("SLURM_ARRAY_TASK_ID");
  if (array && task) return std::string(array) + "_" + task;
  const char* job = std::getenv("SLURM_JOB_ID");
  return job ? job : "";
}

// The stamp an evaluation with the current arguments writes: compared whole.
json current_stamp(const Sweep& sweep, const SweepRun& run) {
  std::string treatments;
  for (const auto& file : sweep.eval.treatments) treatments += read_text_file(file);
  return {{"arguments", eval_arguments(sweep)},
          {"treatments_checksum", fnv1a64_hex(treatments.data(), treatments.size())},
          {"trained", read_json_or_null(run.dir / "DONE")}};
}

// Whether a "running" attempt may still be running: on this host only a live pid counts.
bool may_still_run(const json& attempt) {
  if (attempt.value("host", "") != host_name() || !attempt.contains("pid")) return true;
  return ::kill(pid_t(attempt["pid"].get<int64_t>()), 0) == 0 || errno == EPERM;
}

std::string describe_attempt(const json& attempt, const fs::path& log) {
  std::string text = attempt.value("stage", "?") + " exited " + std::to_string(attempt.value("exit", 0));
  if (!attempt.value("job", "").empty()) text += " (Slurm job " + attempt.value("job", "") + ")";
  return text + "; log " + log.string();
}

}  // namespace

const char* state_name(RunState state) {
  switch (state) {
    case RunState::Missing: return "missing";
    case RunState::Running: return "running";
    case RunState::Interrupted: return "interrupted";
    case RunState::Failed: return "failed";
    case RunState::Trained: return "trained";
    case RunState::Evaluated: return "evaluated";
  }
  return "?";
}

std::vector<std::string> eval_arguments(const Sweep& sweep) {
  const SweepEval& eval = sweep.eval;
  std::string lengths;
  for (const auto length : eval.lengths) lengths += (lengths.empty() ? "" : ",") + std::to_string(length);
  std::vector<std::string> args{"--lengths", lengths};
  if (eval.max_tokens > 0) args.insert(args.end(), {"--max-tokens", std::to_string(eval.max_tokens)});
  if (!eval.protocols.empty()) {
    std::string protocols;
    for (const auto& name : eval.protocols) protocols += (protocols.empty() ? "" : ",") + name;
    args.insert(args.end(), {"--protocol", protocols});
  }
  if (!eval.split.empty()) args.insert(args.end(), {"--split", eval.split});
  if (!eval.treatments.empty()) {
    args.push_back("--treatments");
    for (const auto& file : eval.treatments) args.push_back(file.string());
  }
  return args;
}

bool is_trained(const SweepRun& run) { return fs::exists(run.dir / "DONE"); }

bool is_evaluated(const Sweep& sweep, const SweepRun& run) {
  if (!is_trained(run)) return false;
  const json results = read_json_or_null(results_file(run));
  if (!results.is_object() || results.value("complete", true) == false) return false;
  return read_json_or_null(stamp_file(run)) == current_stamp(sweep, run);
}

void write_eval_stamp(const Sweep& sweep, const SweepRun& run) { write_json_atomic(stamp_file(run), current_stamp(sweep, run)); }

RunStatus inspect_run(const Sweep& sweep, const SweepRun& run) {
  if (is_evaluated(sweep, run)) return {RunState::Evaluated, ""};
  const json attempt = read_json_or_null(attempt_file(sweep, run));
  const std::string state = attempt.is_object() ? attempt.value("state", "") : "";
  const fs::path log = sweep.log_of(run);
  if (state == "running" && may_still_run(attempt)) {
    return {RunState::Running, "since " + attempt.value("time", "?") + " on " + attempt.value("host", "?") +
                                   (attempt.value("job", "").empty() ? "" : " (Slurm job " + attempt.value("job", "") + ")") +
                                   "; log " + log.string()};
  }
  if (state == "failed") return {RunState::Failed, describe_attempt(attempt, log)};
  if (is_trained(run)) {
    const bool stale = fs::exists(results_file(run));
    return {RunState::Trained, stale ? "results are from other eval arguments or incomplete" : "not evaluated yet"};
  }
  if (fs::exists(run.dir / "config.json")) {
    std::string detail = state == "running" ? "killed while running (no exit recorded); " : "";
    if (state == "interrupted") detail = describe_attempt(attempt, log) + "; ";
    return {RunState::Interrupted, detail + "resumes from its last checkpoint"};
  }
  return {RunState::Missing, state.empty() ? "" : "last attempt: " + describe_attempt(attempt, log)};
}

void record_attempt(const Sweep& sweep, const SweepRun& run, const std::string& state, const std::string& stage,
                    int exit_status) {
  write_json_atomic(attempt_file(sweep, run), {{"state", state},
                                               {"stage", stage},
                                               {"exit", exit_status},
                                               {"host", host_name()},
                                               {"pid", int64_t(::getpid())},
                                               {"job", slurm_job()},
                                               {"time", utc_timestamp()}});
}

}  // namespace extrap
