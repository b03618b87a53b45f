#pragma once
// Results documents (written by `extrap eval`, schema in docs/results.md) and the comparison
// tables of `extrap report`. Torch-free.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace extrap {

inline constexpr const char* kResultsSchema = "extrap.eval/2";
inline constexpr const char* kResultsSchemaV1 = "extrap.eval/1";  // one nonoverlap protocol; read by upgrade_results

// One line for a result row: "ppl 12.34 | bpb 3.627 | acc 41.2% | ..." or its error.
std::string describe_result(const nlohmann::json& entry);

// One line for a `protocols[]` entry, e.g. "nonoverlap: 65536 targets at every length".
std::string describe_protocol(const nlohmann::json& protocol);

// Accepts a results file or a run directory (reads RUN/results/eval.json), upgrades an
// "extrap.eval/1" document and validates it. Throws UserError.
nlohmann::json load_results(const std::filesystem::path& path);

// An "extrap.eval/1" document as "extrap.eval/2" (its protocol becomes protocols[0], every row
// gets "protocol": "nonoverlap", and "upgraded_from" records the old schema); any other document
// is returned unchanged.
nlohmann::json upgrade_results(nlohmann::json document);

// Throws UserError naming the first field that does not follow the documented schema.
void validate_results(const nlohmann::json& document, const std::string& source);

enum class TableFormat { Terminal, Markdown, Csv };
TableFormat parse_table_format(const std::string& name);

// Runs x (length, protocol) table of `metric` (ppl, bpb, nll, acc, or beyond_ppl: perplexity on
// positions past the training length only) over `part` of each row: window (every scored target),
// natural or copy (the two halves of a repeated window) or beyond (positions past the training
// length). Columns are labelled "LENGTH" when the inputs hold one protocol, "LENGTH PROTOCOL" when
// they hold several.
std::string render_report(const std::vector<nlohmann::json>& documents, const std::string& metric, TableFormat format,
                          const std::string& part = "window");

}  // namespace extrap
