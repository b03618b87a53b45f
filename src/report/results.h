#pragma once
// Results documents (written by `extrap eval`, schema in docs/results.md) and the comparison
// tables of `extrap report`. Torch-free.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace extrap {

inline constexpr const char* kResultsSchema = "extrap.eval/1";

// One line for a length's entry: "ppl 12.34 | bpb 3.627 | acc 41.2% | ..." or its error.
std::string describe_result(const nlohmann::json& entry);

// Accepts a results file or a run directory (reads RUN/results/eval.json). Throws UserError.
nlohmann::json load_results(const std::filesystem::path& path);

// Throws UserError naming the first field that does not follow the documented schema.
void validate_results(const nlohmann::json& document, const std::string& source);

enum class TableFormat { Terminal, Markdown, Csv };
TableFormat parse_table_format(const std::string& name);

// Runs x lengths table of `metric` (ppl, bpb, nll, acc, or beyond_ppl: perplexity on positions past
// the training length only).
std::string render_report(const std::vector<nlohmann::json>& documents, const std::string& metric, TableFormat format);

}  // namespace extrap
