#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/run_config.h"
#include "eval/probes.h"
#include "eval/protocol.h"

namespace extrap {

inline const std::vector<int64_t> kDefaultLengths{512, 2048, 8192};

struct EvalOptions {
  std::filesystem::path run_dir;
  std::vector<int64_t> lengths;    // empty: kDefaultLengths (task protocol: its default bins)
  std::string split = "test";
  int64_t max_tokens = 65536;      // targets scored per length (see each protocol in docs/results.md)
  // Each evaluated at every length; empty: nonoverlap, or the task protocol on a task dataset.
  std::vector<ProtocolKind> protocols;
  bool task_protocol = false;      // --protocol task: a task dataset's examples per length bin (eval/task_eval.h)
  ProtocolParams protocol_params;  // --stride, --suffix-targets, --suffix-source
  std::vector<ProbeKind> probes;   // retrieval probes, each at every length, after the protocols
  ProbeParams probe_params;        // --depths, --trials, --probe-seed, --haystack, --key-digits, --needles
  std::vector<std::string> treatment_files;  // --treatments: JSON files of named variants (eval/treatment.h)
  bool include_baseline = true;    // also evaluate the untreated model (row "baseline")
  std::vector<std::string> only;   // --only: evaluate just these treatment names (empty: all)
  std::filesystem::path out;       // default RUN/results/eval.json
  std::filesystem::path dataset;   // default: the run's data.dataset
  std::string device = "cpu";
  std::optional<Precision> precision;  // default: the run's train.precision
  int64_t batch_tokens = 16384;    // windows per forward = max(1, batch_tokens / length)
  double collective_timeout_s = 300;  // under torchrun or srun (see TrainOptions)
};

// Evaluates the run's latest checkpoint under each treatment, protocol and length (see
// docs/results.md for the JSON written) and returns the results document. Under a launcher the
// processes share every row's windows and rank 0 writes the one results file; the other
// processes return an empty object.
nlohmann::json evaluate(const EvalOptions& options);

}  // namespace extrap
