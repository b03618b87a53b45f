#pragma once
// What `extrap report` reads: results documents of its inputs, or of every run of a sweep file, and
// one line for each input or run without complete results. Torch-free.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "report/tables.h"

namespace extrap {

struct ReportInputs {
  std::vector<nlohmann::json> documents;
  std::vector<std::string> incomplete;  // "NAME: why", for runs (or run directories) without results
};

// Run directories without results are listed as incomplete as long as some input has results;
// with `sweep_file`, every run of the sweep that is not evaluated is. Throws UserError when
// nothing has results.
ReportInputs read_report_inputs(const std::vector<std::string>& inputs, const std::string& sweep_file);

// The report, then (on stderr for csv, which must stay a table) the incomplete runs.
void print_report(const ReportInputs& inputs, const ReportOptions& options);

}  // namespace extrap
