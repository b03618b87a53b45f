// Reading a sweep file and expanding it into runs.
#include "sweep/sweep_file.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"
#include "common/text.h"
#include "config/config.h"

namespace extrap {
namespace {

using nlohmann::json;

bool is_safe_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
         ch == '+' || ch == '-';
}

// A directory name that is not hidden, ".", "..", or in need of shell quoting.
bool is_safe_name(const std::string& text) {
  return !text.empty() && text[0] != '.' && std::all_of(text.begin(), text.end(), is_safe_char);
}

[[noreturn]] void fail(const std::string& key, const std::string& problem) { throw UserError(key + ": " + problem); }

// A non-empty array whose items pass `check`; throws naming `key` otherwise.
template <typename Check>
const json& nonempty_array(const json& object, const std::string& key, const std::string& what, Check check) {
  const json& value = object.at(key);
  if (!value.is_array()) fail(key, "expected an array of " + what + ", got " + value.dump());
  if (value.empty()) fail(key, "is empty (give at least one of " + what + ")");
  for (const auto& item : value) {
    if (!check(item)) fail(key, item.dump() + " is not one of " + what);
  }
  return value;
}

int64_t integer_at_least(const json& object, const std::string& key, int64_t low, const std::string& prefix = "") {
  const json& value = object.at(key);
  if (!value.is_number_integer() || value.get<int64_t>() < low) {
    fail(prefix + key, "expected an integer >= " + std::to_string(low) + ", got " + value.dump());
  }
  return value.get<int64_t>();
}

std::string string_at(const json& object, const std::string& key, const std::string& prefix = "") {
  const json& value = object.at(key);
  if (!value.is_string() || value.get<std::string>().empty()) fail(prefix + key, "expected a non-empty string, got " + value.dump());
  return value.get<std::string>();
}

std::vector<std::string> strings_at(const json& object, const std::string& key, const std::string& what) {
  const json& value = object.at(key);
  if (!value.is_array()) fail(key, "expected an array of " + what + ", got " + value.dump());
  std::vector<std::string> strings;
  for (const auto& item : value) {
    if (!item.is_string()) fail(key, item.dump() + " is not one of " + what);
    strings.push_back(item.get<std::string>());
  }
  return strings;
}

// A path in the sweep file, relative to the file (as `extends` in configs), made absolute.
fs::path file_relative(const fs::path& sweep_file, const std::string& path) {
  return fs::absolute(sweep_file.parent_path() / path).lexically_normal();
}

SweepEval read_eval(const json& given, const fs::path& file) {
  check_known_keys(given, "eval", {"lengths", "max_tokens", "protocols", "treatments", "split"});
  SweepEval eval;
  if (given.contains("lengths")) {
    eval.lengths.clear();
    const auto is_length = [](const json& item) { return item.is_number_integer() && item.get<int64_t>() > 0; };
    for (const auto& length : nonempty_array(given, "lengths", "positive integers", is_length)) {
      eval.lengths.push_back(length.get<int64_t>());
    }
  }
  if (given.contains("max_tokens")) eval.max_tokens = integer_at_least(given, "max_tokens", 1, "eval.");
  if (given.contains("protocols")) {
    const auto is_name = [](const json& item) { return item.is_string() && !item.get<std::string>().empty(); };
    for (const auto& name : nonempty_array(given, "protocols", "protocol names", is_name)) {
      eval.protocols.push_back(name.get<std::string>());
    }
  }
  if (given.contains("treatments")) {
    for (const auto& path : strings_at(given, "treatments", "treatment file paths")) {
      eval.treatments.push_back(file_relative(file, path));
      if (!fs::is_regular_file(eval.treatments.back())) {
        fail("eval.treatments", eval.treatments.back().string() + ": treatments file not found");
      }
    }
  }
  if (given.contains("split")) eval.split = string_at(given, "split", "eval.");
  return eval;
}

SlurmResources read_slurm(const json& given) {
  check_known_keys(given, "slurm", {"partition", "time", "mem", "cpus_per_task", "nodes", "parallel_per_task", "sbatch_args"});
  SlurmResources slurm;
  for (auto [key, target] : {std::pair{"partition", &slurm.partition}, {"time", &slurm.time}, {"mem", &slurm.mem}}) {
    if (given.contains(key)) *target = string_at(given, key, "slurm.");
  }
  if (given.contains("cpus_per_task")) slurm.cpus_per_task = integer_at_least(given, "cpus_per_task", 1, "slurm.");
  if (given.contains("nodes")) slurm.nodes = integer_at_least(given, "nodes", 1, "slurm.");
  if (given.contains("parallel_per_task")) slurm.parallel_per_task = integer_at_least(given, "parallel_per_task", 1, "slurm.");
  if (given.contains("sbatch_args")) slurm.sbatch_args = strings_at(given, "sbatch_args", "sbatch options");
  return slurm;
}

// "key=value" as `train --set` reads it: a string that would not parse as JSON stays bare.
std::string override_text(const std::string& key, const json& value) {
  if (value.is_string() && !json::accept(value.get<std::string>())) return key + "=" + value.get<std::string>();
  return key + "=" + value.dump();
}

struct GridAxis {
  std::string key, short_key;
  std::vector<json> values;
};

std::vector<GridAxis> read_grid(const json& grid) {
  if (!grid.is_object()) fail("grid", "expected an object of dotted keys and value lists, got " + grid.dump());
  std::vector<GridAxis> axes;
  std::vector<std::string> keys;
  for (auto it = grid.begin(); it != grid.end(); ++it) {
    const std::string where = "grid." + it.key();
    if (!it->is_array()) fail(where, "expected an array of values, got " + it->dump());
    if (it->empty()) fail(where, "is empty: a grid key needs at least one value");
    axes.push_back({it.key(), "", std::vector<json>(it->begin(), it->end())});
    keys.push_back(it.key());
  }
  const auto shorts = short_keys(keys);
  for (std::size_t a = 0; a < axes.size(); ++a) axes[a].short_key = shorts[a];
  return axes;
}

// Every combination of one value per axis, the first axis varying slowest.
std::vector<std::vector<std::size_t>> combinations(const std::vector<GridAxis>& axes) {
  std::vector<std::vector<std::size_t>> all{{}};
  for (const auto& axis : axes) {
    std::vector<std::vector<std::size_t>> longer;
    for (const auto& prefix : all) {
      for (std::size_t v = 0; v < axis.values.size(); ++v) {
        longer.push_back(prefix);
        longer.back().push_back(v);
      }
    }
    all = longer;
  }
  return all;
}

std::vector<SweepRun> expand(const Sweep& sweep, const std::vector<fs::path>& configs, const std::vector<std::string>& fixed,
                             const std::vector<GridAxis>& axes, const std::vector<std::optional<int64_t>>& seeds) {
  std::vector<SweepRun> runs;
  for (const auto& config : configs) {
    for (const auto& combination : combinations(axes)) {
      for (const auto& seed : seeds) {
        SweepRun run{config.stem().string(), config, fixed, seed, {}};
        for (std::size_t a = 0; a < axes.size(); ++a) {
          const json& value = axes[a].values[combination[a]];
          run.overrides.push_back(override_text(axes[a].key, value));
          run.name += "_" + name_part(axes[a].short_key, value.is_string() ? value.get<std::string>() : value.dump());
        }
        if (seed) {
          run.overrides.push_back("seed=" + std::to_string(*seed));
          run.name += "_seed=" + std::to_string(*seed);
        }
        run.dir = sweep.runs / run.name;
        runs.push_back(run);
      }
    }
  }
  return runs;
}

// Loads every run's config as `extrap train` will, so a bad --set or a missing file stops the sweep
// before anything runs; and no two runs may share a directory.
void check_runs(const std::vector<SweepRun>& runs) {
  for (std::size_t r = 0; r < runs.size(); ++r) {
    for (std::size_t e = 0; e < r; ++e) {
      if (runs[e].name == runs[r].name) {
        fail("runs", "two runs are both named " + runs[r].name + " (" + join_names(runs[e].overrides) + " / " +
                         join_names(runs[r].overrides) + "); give the configs different file names or grid values");
      }
    }
    try {
      const RunConfig config = load_config(runs[r].config.string(), runs[r].overrides);
      if (!fs::is_directory(config.data.dataset)) {
        throw UserError("data.dataset " + config.data.dataset + ": dataset directory not found (prepare it with extrap data)");
      }
    } catch (const UserError& e) {
      throw UserError("run " + runs[r].name + ": " + e.what());
    }
  }
}

Sweep parse(const json& document, const fs::path& file) {
  if (!document.is_object()) fail("sweep", "a sweep file must be a JSON object");
  check_known_keys(document, "", {"name", "runs", "configs", "set", "grid", "seeds", "threads", "eval", "slurm"},
                   /*allow_comments=*/true);
  Sweep sweep;
  sweep.file = file;
  sweep.name = document.contains("name") ? string_at(document, "name") : file.stem().string();
  if (!is_safe_name(sweep.name)) fail("name", "\"" + sweep.name + "\" must be made of A-Z, a-z, 0-9, '.', '_', '+', '-' and not start with '.'");
  sweep.runs = document.contains("runs") ? fs::path(string_at(document, "runs")) : fs::path("runs") / sweep.name;
  if (!document.contains("configs")) fail("configs", "required: the config files to train (relative to the sweep file)");
  std::vector<fs::path> configs;
  const auto is_path = [](const json& item) { return item.is_string() && !item.get<std::string>().empty(); };
  for (const auto& path : nonempty_array(document, "configs", "config file paths", is_path)) {
    configs.push_back(file_relative(file, path.get<std::string>()));
  }
  const auto fixed = document.contains("set") ? strings_at(document, "set", "key=value overrides") : std::vector<std::string>{};
  const auto axes = read_grid(document.value("grid", json::object()));
  std::vector<std::optional<int64_t>> seeds{std::nullopt};  // no seeds: the configs' own
  if (document.contains("seeds")) {
    seeds.clear();
    const auto is_seed = [](const json& item) { return item.is_number_integer() && item.get<int64_t>() >= 0; };
    for (const auto& seed : nonempty_array(document, "seeds", "integers >= 0", is_seed)) seeds.push_back(seed.get<int64_t>());
  }
  if (document.contains("threads")) sweep.threads = integer_at_least(document, "threads", 1);
  if (document.contains("eval")) sweep.eval = read_eval(document["eval"], file);
  if (document.contains("slurm")) sweep.slurm = read_slurm(document["slurm"]);
  sweep.runs_in_order = expand(sweep, configs, fixed, axes, seeds);
  check_runs(sweep.runs_in_order);
  return sweep;
}

}  // namespace

std::string name_part(const std::string& key, const std::string& value_text) {
  std::string value = value_text;
  for (char& ch : value) {
    if (!is_safe_char(ch)) ch = '-';
  }
  return key + "=" + value;
}

std::vector<std::string> short_keys(const std::vector<std::string>& keys) {
  std::vector<std::string> shorts;
  for (const auto& key : keys) {
    // Grow the suffix one dotted component at a time until no other key ends with it.
    std::size_t start = key.size();
    std::string suffix;
    do {
      start = start == 0 ? std::string::npos : key.rfind('.', start - 1);
      suffix = start == std::string::npos ? key : key.substr(start + 1);
      const bool shared = std::any_of(keys.begin(), keys.end(), [&](const std::string& other) {
        return other != key && (other == suffix || (other.size() > suffix.size() &&
                                                    other.compare(other.size() - suffix.size() - 1, std::string::npos,
                                                                  "." + suffix) == 0));
      });
      if (!shared) break;
    } while (start != std::string::npos);
    shorts.push_back(suffix);
  }
  return shorts;
}

const SweepRun& Sweep::find(const std::string& run_name) const {
  for (const auto& run : runs_in_order) {
    if (run.name == run_name) return run;
  }
  throw UserError(file.string() + ": no run named " + run_name + " (the sweep file changed since it was submitted?)");
}

Sweep load_sweep(const fs::path& file) {
  if (!fs::is_regular_file(file)) throw UserError(file.string() + ": sweep file not found");
  const json document = read_json_file(file);  // its errors name the file
  try {
    return parse(document, file);
  } catch (const UserError& e) {
    throw UserError(file.string() + ": " + e.what());
  }
}

}  // namespace extrap
