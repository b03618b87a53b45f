#pragma once
// Text made from results documents (report/results.h): one-line descriptions of rows and
// protocols for logs, and the comparison tables of `extrap report`. Torch-free.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "report/text_table.h"

namespace extrap {

// One line for a result row: "ppl 12.34 | bpb 3.627 | acc 41.2% | ..." or its error.
std::string describe_result(const nlohmann::json& entry);

// One line for a `protocols[]` entry, e.g. "nonoverlap: 65536 targets at every length".
std::string describe_protocol(const nlohmann::json& protocol);


// Runs: one line per (run, treatment), one column per (length, protocol). Su: Su's comparison
// tables (spec §2.1), one line per (run, treatment) and for each length a "natural" column (the
// nonoverlap row) and a "repeated" column (the copy part of the repeated row).
// Probe: a depth x length grid per (run, treatment, probe) (report/probe_grid.h).
enum class ReportLayout { Runs, Su, Probe };
ReportLayout parse_report_layout(const std::string& name);

struct ReportOptions {
  // ppl, bpb, nll, acc, beyond_ppl (perplexity on positions past the training length only) or em
  // (exact match of task rows); empty: the layout's default, ppl (runs; em when every input is a
  // task evaluation) or acc (su). Task rows show em, or their answer tokens' acc, nll, ppl, bpb.
  std::string metric;
  TableFormat format = TableFormat::Terminal;
  // The part of a row a cell covers: window (every scored target), natural or copy (the two
  // halves of a repeated window) or beyond (positions past the training length). Runs: every
  // column, default window. Su: the repeated column only, default copy.
  std::string part;
  ReportLayout layout = ReportLayout::Runs;
};

// The table (plus, except for csv, a legend, the protocols, one "n/a:" note per unsupported cell
// and comparability warnings). Runs layout columns are labelled "LENGTH" when the inputs hold one
// protocol, "LENGTH PROTOCOL" when they hold several; a "treatment" column appears when some line
// is not the baseline.
std::string render_report(const std::vector<nlohmann::json>& documents, const ReportOptions& options);
// The runs layout.
std::string render_report(const std::vector<nlohmann::json>& documents, const std::string& metric, TableFormat format,
                          const std::string& part = "window");

}  // namespace extrap
