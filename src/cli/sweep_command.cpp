#include "cli/sweep_command.h"

#include <iostream>
#include <map>

#include "cli/sweep_report.h"
#include "common/error.h"
#include "common/text.h"
#include "eval/probes.h"
#include "eval/protocol.h"
#include "report/text_table.h"
#include "sweep/local.h"
#include "sweep/run_state.h"
#include "sweep/slurm.h"
#include "sweep/task.h"

namespace extrap {

struct SweepCommandOptions {
  std::string file, run_name;
  CLI::App *plan = nullptr, *run = nullptr, *submit = nullptr, *status = nullptr, *task = nullptr;
  LocalOptions local;
  TaskOptions task_options;
  SubmitOptions submit_options;
  SlurmResources flags;  // given on the command line; laid over the sweep file's
  CLI::Option *partition = nullptr, *time = nullptr, *mem = nullptr, *cpus = nullptr, *nodes = nullptr,
              *parallel = nullptr, *sbatch_args = nullptr;
};

namespace {

// Protocol names are eval's to define; checked here so a typo stops the sweep before training.
void check_protocols(const Sweep& sweep) {
  for (const auto& name : sweep.eval.protocols) {
    ProbeKind probe;
    if (name == "task" || find_probe(name, probe)) continue;
    try {
      parse_protocol_names(name);
    } catch (const UserError& e) {
      throw UserError(sweep.file.string() + ": eval.protocols: " + e.what());
    }
  }
}

Sweep load_checked(const std::string& file) {
  Sweep sweep = load_sweep(file);
  check_protocols(sweep);
  return sweep;
}

void print_plan(const Sweep& sweep) {
  std::vector<std::vector<std::string>> rows{{"run", "config", "--set"}};
  for (const auto& run : sweep.runs_in_order) {
    std::string overrides;
    for (const auto& assignment : run.overrides) overrides += (overrides.empty() ? "" : " ") + shell_quote(assignment);
    rows.push_back({run.name, fs::relative(run.config).string(), overrides});
  }
  std::cout << "sweep " << sweep.name << ": " << sweep.runs_in_order.size() << " runs in " << sweep.runs.string() << "\n"
            << render_rows(rows, 3, TableFormat::Terminal) << "each: extrap train --config CONFIG --set ... --out "
            << (sweep.runs / "RUN").string() << " --resume, then extrap eval --run " << (sweep.runs / "RUN").string()
            << " " << shell_line(eval_arguments(sweep)) << "\n";
}

void print_status(const Sweep& sweep) {
  std::vector<std::vector<std::string>> rows{{"run", "state", "detail"}};
  std::map<RunState, int> counts;
  for (const auto& run : sweep.runs_in_order) {
    const RunStatus status = inspect_run(sweep, run);
    ++counts[status.state];
    rows.push_back({run.name, state_name(status.state), status.detail});
  }
  std::cout << render_rows(rows, 3, TableFormat::Terminal);
  std::vector<std::string> summary;
  for (const auto& [state, count] : counts) summary.push_back(std::to_string(count) + " " + state_name(state));
  std::cout << sweep.runs_in_order.size() << " runs: " << join_names(summary) << "\n";
}

SubmitOptions submit_options(const Sweep& sweep, const SweepCommandOptions& o) {
  SubmitOptions options = o.submit_options;
  options.resources = sweep.slurm;
  SlurmResources& r = options.resources;
  if (o.partition->count()) r.partition = o.flags.partition;
  if (o.time->count()) r.time = o.flags.time;
  if (o.mem->count()) r.mem = o.flags.mem;
  if (o.cpus->count()) r.cpus_per_task = o.flags.cpus_per_task;
  if (o.nodes->count()) r.nodes = o.flags.nodes;
  if (o.parallel->count()) r.parallel_per_task = o.flags.parallel_per_task;
  if (o.sbatch_args->count()) r.sbatch_args.insert(r.sbatch_args.end(), o.flags.sbatch_args.begin(), o.flags.sbatch_args.end());
  return options;
}

CLI::App* add_verb(CLI::App* sweep, SweepCommandOptions& o, const std::string& name, const std::string& description) {
  CLI::App* verb = sweep->add_subcommand(name, description);
  verb->add_option("sweep", o.file, "the sweep file (docs/sweeps.md)")->required();
  return verb;
}

}  // namespace

SweepCommand add_sweep_command(CLI::App& app) {
  auto o = std::make_shared<SweepCommandOptions>();
  CLI::App* sweep = app.add_subcommand("sweep", "configs x --set grids x seeds from a sweep file: list, run here, "
                                                "submit to Slurm as a job array, or show where each run stands");
  sweep->require_subcommand(1);
  o->plan = add_verb(sweep, *o, "plan", "list the runs the sweep file expands into (checks every config)");
  o->status = add_verb(sweep, *o, "status", "each run: evaluated, trained, running, interrupted, failed (with its log) or missing");
  o->run = add_verb(sweep, *o, "run", "train and evaluate every run not yet evaluated, here, then print the report");
  o->run->add_option("--jobs", o->local.jobs, "runs at a time (default 1)")->check(CLI::PositiveNumber);
  o->run->add_option("--threads", o->local.threads, "threads per run (default: the sweep's threads, else cores / jobs)")
      ->check(CLI::PositiveNumber);
  o->submit = add_verb(sweep, *o, "submit", "submit the runs not yet evaluated as one Slurm job array, and a report job after it");
  CLI::App* s = o->submit;
  o->partition = s->add_option("--partition", o->flags.partition, "Slurm partition");
  o->time = s->add_option("--time", o->flags.time, "time limit of each task, e.g. 1:00:00");
  o->cpus = s->add_option("--cpus-per-task", o->flags.cpus_per_task, "CPUs of each task (of each rank with --parallel-per-task)")
                ->check(CLI::PositiveNumber);
  o->mem = s->add_option("--mem", o->flags.mem, "memory of each task's node share, e.g. 4G");
  o->nodes = s->add_option("--nodes", o->flags.nodes, "nodes of each task")->check(CLI::PositiveNumber);
  o->parallel = s->add_option("--parallel-per-task", o->flags.parallel_per_task,
                              "train each run on N processes: srun --ntasks N extrap train (data-parallel)")
                    ->check(CLI::PositiveNumber);
  o->sbatch_args = s->add_option("--sbatch-arg", o->flags.sbatch_args, "another #SBATCH option, e.g. --account=lab");
  s->add_option("--threads", o->submit_options.threads, "threads per training process (default: cpus-per-task, else 1)")
      ->check(CLI::PositiveNumber);
  s->add_flag("--dry-run", o->submit_options.dry_run, "write the scripts under RUNS/.sweep and submit nothing");
  o->task = add_verb(sweep, *o, "task", "one run: train unless DONE, then evaluate (what each array task runs)");
  o->task->add_option("--run", o->run_name, "the run's name (sweep plan lists them)")->required();
  o->task->add_option("--threads", o->task_options.threads, "threads of train and eval")->check(CLI::PositiveNumber);
  o->task->add_option("--parallel-per-task", o->task_options.parallel_per_task, "train under srun --ntasks N")
      ->check(CLI::PositiveNumber);
  return {sweep, o};
}

int SweepCommand::run() const {
  const SweepCommandOptions& o = *options;
  const Sweep sweep = load_checked(o.file);
  if (*o.plan) {
    print_plan(sweep);
  } else if (*o.status) {
    print_status(sweep);
  } else if (*o.task) {
    return run_task(sweep, sweep.find(o.run_name), o.task_options);
  } else if (*o.submit) {
    submit_sweep(sweep, submit_options(sweep, o));
  } else if (*o.run) {
    const int status = run_locally(sweep, o.local);
    if (status > 128) return status;
    std::cout << "\n";
    try {
      print_report(read_report_inputs({}, o.file), ReportOptions{});
    } catch (const UserError&) {
      if (status == 0) throw;  // else the failures said why nothing has results
    }
    return status;
  }
  return 0;
}

}  // namespace extrap
