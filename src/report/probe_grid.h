#pragma once
// `extrap report --layout probe`: retrieval-probe rows (docs/results.md, "Probe rows") as one
// depth x length grid per (run, treatment, probe). Torch-free.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "report/text_table.h"

namespace extrap {

// One grid per (run, treatment, probe) in input order: a line per depth, then "all" (every depth)
// and "control" (the prompts without the needle), a column per length; cells are `metric`: em
// (exact match, %, the default), acc (answer-token accuracy, %), logprob (the answer's summed
// log-probability, nats) or greedy (found by greedy decoding, %, when evaluated with --greedy). CSV: one table with run, treatment and probe columns.
std::string render_probe_grid(const std::vector<nlohmann::json>& documents, const std::string& metric,
                              TableFormat format);

}  // namespace extrap
