#pragma once
// Results documents (written by `extrap eval`, schema in docs/results.md) and the comparison
// tables of `extrap report`. Torch-free.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace extrap {

inline constexpr const char* kResultsSchema = "extrap.eval/3";    // rows per (treatment, protocol, length)
inline constexpr const char* kResultsSchemaV2 = "extrap.eval/2";  // one untreated model; read by upgrade_results
inline constexpr const char* kResultsSchemaV1 = "extrap.eval/1";  // one nonoverlap protocol; read by upgrade_results
inline constexpr const char* kBaselineTreatment = "baseline";     // the untreated model's treatment name

// One line for a result row: "ppl 12.34 | bpb 3.627 | acc 41.2% | ..." or its error.
std::string describe_result(const nlohmann::json& entry);

// One line for a `protocols[]` entry, e.g. "nonoverlap: 65536 targets at every length".
std::string describe_protocol(const nlohmann::json& protocol);

// Accepts a results file or a run directory (reads RUN/results/eval.json), upgrades an older
// document and validates it. Throws UserError.
nlohmann::json load_results(const std::filesystem::path& path);

// An older document as the current schema, step by step: "extrap.eval/1" to /2 (its protocol
// becomes protocols[0], every row gets "protocol": "nonoverlap"), /2 to /3 (a document without
// treatments gets "treatments": [{"name": "baseline", "overlay": {}}] and every row
// "treatment": "baseline"). "upgraded_from" records the schema read. Any other document is
// returned unchanged.
nlohmann::json upgrade_results(nlohmann::json document);

// Throws UserError naming the first field that does not follow the documented schema.
void validate_results(const nlohmann::json& document, const std::string& source);

enum class TableFormat { Terminal, Markdown, Csv };
TableFormat parse_table_format(const std::string& name);

// Runs: one line per (run, treatment), one column per (length, protocol). Su: Su's comparison
// tables (spec §2.1), one line per (run, treatment) and for each length a "natural" column (the
// nonoverlap row) and a "repeated" column (the copy part of the repeated row).
enum class ReportLayout { Runs, Su };
ReportLayout parse_report_layout(const std::string& name);

struct ReportOptions {
  // ppl, bpb, nll, acc, or beyond_ppl (perplexity on positions past the training length only);
  // empty: the layout's default, ppl (runs) or acc (su).
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
